"""One post per canonical id: Unicode-equivalent spellings of an id are one post."""

from http import HTTPStatus
from urllib.parse import quote

import httpx
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from likes.models import Like, Post
from likes.transfer import import_counts
from tests.live import gunicorn, manage, project_env

COMPOSED = "caf\u00e9"
DECOMPOSED = "cafe\u0301"


@pytest.mark.django_db
def test_both_spellings_count_on_one_post(client):
    client.post(f"/likes/{quote(COMPOSED)}", HTTP_USER_AGENT="a")
    liked = client.post(f"/likes/{quote(DECOMPOSED)}", HTTP_USER_AGENT="b")
    read = client.get(f"/likes/{quote(DECOMPOSED)}")

    assert liked.json()["post_id"] == COMPOSED
    assert liked.json()["likes"] == 2
    assert read.json() == {"post_id": COMPOSED, "likes": 2}
    assert list(Post.objects.values_list("post_id", flat=True)) == [COMPOSED]


@pytest.mark.django_db
def test_the_dedupe_sees_both_spellings_as_one_post(client):
    first = client.post(f"/likes/{quote(COMPOSED)}", HTTP_USER_AGENT="same")
    repeat = client.post(f"/likes/{quote(DECOMPOSED)}", HTTP_USER_AGENT="same")

    assert first.json()["likes"] == 1
    assert repeat.json() == {
        "post_id": COMPOSED,
        "likes": 1,
        "liked": True,
        "duplicate": True,
    }


@pytest.mark.django_db
def test_a_batch_with_both_spellings_answers_one_post(client):
    Post.objects.create(post_id=COMPOSED, likes=4)

    response = client.get(f"/likes/?ids={quote(COMPOSED)},{quote(DECOMPOSED)}")

    assert response.json() == [{"post_id": COMPOSED, "likes": 4}]


@pytest.mark.django_db
@pytest.mark.parametrize("post_id", [".", "..", "\u0301", "-", "_~"])
def test_ids_without_a_letter_or_digit_are_400(client, post_id):
    response = client.post(f"/likes/{quote(post_id, safe='')}")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid_post_id"
    assert not Post.objects.exists()


@pytest.mark.django_db
def test_an_import_adds_up_the_spellings_the_original_service_kept_apart(tmp_path):
    path = tmp_path / "likes.csv"
    path.write_text(f"post_id,likes\n{COMPOSED},3\n{DECOMPOSED},4\nother,1\n")

    result = import_counts(path=path)

    assert result.errors == []
    assert dict(Post.objects.values_list("post_id", "likes")) == {
        COMPOSED: 7,
        "other": 1,
    }


@pytest.mark.live
def test_the_live_server_counts_both_spellings_on_one_post(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), LIKES_DEDUPE="off")
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=1) as server:
        for spelling in (COMPOSED, DECOMPOSED, COMPOSED):
            httpx.post(f"{server.base_url}/likes/{quote(spelling)}")
        read = httpx.get(f"{server.base_url}/likes/{quote(DECOMPOSED)}")
        dots = httpx.post(f"{server.base_url}/likes/%2E%2E")

    assert read.json() == {"post_id": COMPOSED, "likes": 3}
    assert dots.status_code == HTTPStatus.BAD_REQUEST
    assert dots.json()["code"] == "invalid_post_id"


# --- The data migration ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_merges_equivalent_ids_into_the_nfc_one(django_user_model):
    executor = MigrationExecutor(connection)
    executor.migrate([("likes", "0003_post_imported")])
    apps = executor.loader.project_state([("likes", "0003_post_imported")]).apps
    OldPost = apps.get_model("likes", "Post")
    OldLike = apps.get_model("likes", "Like")
    composed = OldPost.objects.create(post_id=COMPOSED, likes=2, imported=1)
    decomposed = OldPost.objects.create(post_id=DECOMPOSED, likes=3)
    lonely = OldPost.objects.create(post_id="na\u0131\u0308ve", likes=5)
    OldLike.objects.create(post=decomposed)
    OldLike.objects.create(post=composed)
    django_user_model.objects.create_superuser("root", "r@example.org", "x-long-pass")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    posts = dict(Post.objects.values_list("post_id", "likes"))
    assert posts == {COMPOSED: 5, "na\u0131\u0308ve": 5}  # ı̈ has no composed form
    merged = Post.objects.get(post_id=COMPOSED)
    assert merged.imported == 1
    assert Like.objects.filter(post=merged).count() == 2
    from django.contrib.admin.models import LogEntry

    (entry,) = LogEntry.objects.filter(object_id=str(merged.pk))
    assert repr(DECOMPOSED) in entry.change_message
    assert lonely.pk == Post.objects.get(post_id="na\u0131\u0308ve").pk


@pytest.mark.django_db(transaction=True)
def test_the_migration_renames_a_lone_decomposed_id():
    executor = MigrationExecutor(connection)
    executor.migrate([("likes", "0003_post_imported")])
    apps = executor.loader.project_state([("likes", "0003_post_imported")]).apps
    apps.get_model("likes", "Post").objects.create(post_id=DECOMPOSED, likes=9)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert dict(Post.objects.values_list("post_id", "likes")) == {COMPOSED: 9}
