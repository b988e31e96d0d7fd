"""Several blogs on one instance (``Site``): counts, origins, reactions, keys."""

import json
from http import HTTPStatus
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from likes import services, webhooks
from likes.models import DEFAULT_SITE_ID, APIKey, Delivery, Post, Site, Webhook

pytestmark = pytest.mark.django_db

BLOG = "http://127.0.0.1:1313"  # in CORS_ORIGINS: the default site's
TWO = "https://two.example"


@pytest.fixture
def two():
    return Site.objects.create(name="Two", slug="two", origins=f"{TWO}\n")


def like(client, post, origin=None, ip="203.0.113.5", query=""):
    headers = {"User-Agent": "Agent/1"}
    if origin:
        headers["Origin"] = origin
    return client.post(f"/likes/{post}{query}", REMOTE_ADDR=ip, headers=headers)


def read(client, post, origin=None, query=""):
    headers = {"Origin": origin} if origin else {}
    return client.get(f"/likes/{post}{query}", headers=headers)


def test_an_install_has_its_default_site_holding_every_post(client):
    like(client, "p", origin=BLOG)
    post = Post.objects.get()
    assert post.site_id == DEFAULT_SITE_ID
    assert Site.objects.get(pk=DEFAULT_SITE_ID).slug == "default"
    assert read(client, "p").json() == {"post_id": "p", "likes": 1}


def test_one_post_id_counts_apart_on_each_site(client, two):
    like(client, "hello", origin=BLOG)
    second = like(client, "hello", origin=TWO)
    # The same visitor: a like on another blog is not a repeat.
    assert second.json()["likes"] == 1 and "duplicate" not in second.json()
    like(client, "hello", origin=TWO, ip="203.0.113.6")

    assert read(client, "hello", origin=BLOG).json()["likes"] == 1
    assert read(client, "hello", origin=TWO).json()["likes"] == 2
    assert read(client, "hello", query="?site=two").json()["likes"] == 2
    assert read(client, "hello").json()["likes"] == 1  # no Origin: the default
    batch = client.get("/likes/?ids=hello,x", headers={"Origin": TWO}).json()
    assert batch == [{"post_id": "hello", "likes": 2}, {"post_id": "x", "likes": 0}]
    assert sorted(Post.objects.values_list("site__slug", "likes")) == [
        ("default", 1),
        ("two", 2),
    ]


def test_cors_answers_each_sites_origins(client, two):
    answer = client.get("/likes/p", headers={"Origin": TWO})
    assert answer["Access-Control-Allow-Origin"] == TWO
    answer = client.get("/likes/p", headers={"Origin": BLOG})
    assert answer["Access-Control-Allow-Origin"] == BLOG
    answer = client.get("/likes/p", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in answer


def test_a_page_cannot_like_for_another_site_or_a_missing_one(client, two):
    refused = like(client, "p", origin=BLOG, query="?site=two")
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json()["code"] == "origin_not_allowed"
    unknown = read(client, "p", query="?site=nope")
    assert unknown.status_code == HTTPStatus.BAD_REQUEST
    assert unknown.json()["code"] == "unknown_site"
    assert like(client, "p", query="?site=%00").status_code == HTTPStatus.BAD_REQUEST
    assert not Post.objects.exists()


def test_each_site_has_its_own_reactions(client, two, settings):
    settings.LIKES_REACTIONS = "👍"
    two.reactions = "clap,🎉"
    two.save()

    assert read(client, "p", origin=BLOG).json()["reactions"] == {"👍": 0}
    assert read(client, "p", origin=TWO).json()["reactions"] == {"clap": 0, "🎉": 0}
    refused = like(client, "p", origin=TWO, query="?reaction=👍")
    assert refused.json()["code"] == "invalid_reaction"
    counted = like(client, "p", origin=TWO, query="?reaction=clap").json()
    assert counted["reactions"] == {"clap": 1, "🎉": 0}
    assert read(client, "p", origin=BLOG).json() == {
        "post_id": "p",
        "likes": 0,
        "reactions": {"👍": 0},
    }


def test_a_site_may_keep_its_popular_list_private(client, two):
    like(client, "p", origin=TWO)
    assert client.get("/api/popular", headers={"Origin": TWO}).json() == [
        {"post_id": "p", "likes": 1}
    ]
    assert client.get("/api/popular").json() == []  # the default site's
    two.popular_public = False
    two.save()
    hidden = client.get("/api/popular", headers={"Origin": TWO})
    assert hidden.status_code == HTTPStatus.NOT_FOUND


def test_stats_keys_read_their_own_site(client, two):
    like(client, "mine", origin=TWO)
    like(client, "default-post", origin=BLOG)
    _, scoped = APIKey.objects.create_key(name="two's", site=two)
    _, everywhere = APIKey.objects.create_key(name="all")

    def stats(key, query=""):
        return client.get(f"/api/stats{query}", headers={"X-API-Key": key})

    assert stats(scoped).json() == [{"post_id": "mine", "likes": 1}]
    assert stats(scoped, "?site=default").status_code == HTTPStatus.FORBIDDEN
    assert stats(everywhere).json() == [{"post_id": "default-post", "likes": 1}]
    assert stats(everywhere, "?site=two").json() == [{"post_id": "mine", "likes": 1}]
    assert stats(everywhere, "?site=zzz").status_code == HTTPStatus.NOT_FOUND


@pytest.fixture
def fresh_subscribers():
    webhooks.forget_subscribers()
    yield
    webhooks.forget_subscribers()


def test_a_sites_webhook_gets_its_sites_events_only(client, two, fresh_subscribers):
    Webhook.objects.create(name="two", url="https://hooks.example/two", site=two)
    Webhook.objects.create(name="all", url="https://hooks.example/all")
    like(client, "p", origin=TWO)
    like(client, "p", origin=BLOG)

    sent = sorted(
        (d.webhook.name, json.loads(d.payload)["post"]["site"])
        for d in Delivery.objects.select_related("webhook")
    )
    assert sent == [("all", "default"), ("all", "two"), ("two", "two")]


def test_commands_take_a_site(tmp_path, two):
    services.like_add(post_id="p", site_id=two.pk)
    services.like_add(post_id="p")
    out = StringIO()
    call_command("likes_export", "--format", "json", "--site", "two", stdout=out)
    assert json.loads(out.getvalue()) == [{"post_id": "p", "likes": 1}]

    path = tmp_path / "in.json"
    path.write_text(json.dumps([{"post_id": "q", "likes": 7}]))
    call_command("likes_import", str(path), "--site", "two", stdout=StringIO())
    assert Post.objects.get(site=two, post_id="q").likes == 7
    assert not Post.objects.filter(site_id=DEFAULT_SITE_ID, post_id="q").exists()

    call_command("likes_rename", "q", "r", "--site", "two", stdout=StringIO())
    assert Post.objects.get(site=two, post_id="r").likes == 7
    out = StringIO()
    call_command("likes_stats", "--json", "--site", "two", stdout=out)
    assert json.loads(out.getvalue()) == [
        {"post_id": "r", "likes": 7},
        {"post_id": "p", "likes": 1},
    ]
    with pytest.raises(Exception, match="No site 'nope'"):
        call_command("likes_stats", "--site", "nope", stdout=StringIO())


def test_the_admin_checks_a_sites_origins_and_reactions(admin_client, two):
    def add(**fields):
        data = {"name": "Three", "slug": "three", "origins": "", "reactions": ""}
        data.update(fields)
        return admin_client.post("/admin/likes/site/add/", data)

    assert b"is not an origin" in add(origins="ftp://x.example").content
    assert b"already the origin of Two" in add(origins=TWO).content
    assert b"At most 8" in add(reactions=",".join(f"r{n}" for n in range(9))).content
    assert add(
        origins="https://three.example/\nhttps://www.three.example"
    ).status_code == (HTTPStatus.FOUND)
    assert Site.objects.get(slug="three").origins == (
        "https://three.example\nhttps://www.three.example"
    )
    # The default site holds a single-site install's posts: it stays.
    page = admin_client.get(f"/admin/likes/site/{DEFAULT_SITE_ID}/delete/")
    assert page.status_code == HTTPStatus.FORBIDDEN


def test_the_dashboard_filters_by_site(admin_client, two):
    services.like_add(post_id="a", site_id=two.pk)
    services.like_add(post_id="b")
    services.like_add(post_id="b", visitor_hashes=())

    every = admin_client.get("/admin/likes/post/dashboard/").content.decode()
    only_two = admin_client.get(
        "/admin/likes/post/dashboard/?site=two"
    ).content.decode()

    assert 'data-total="likes"><strong>3<' in every
    assert 'data-total="likes"><strong>1<' in only_two
    assert "All sites" in every and "?range=30&amp;site=two" in every
    csv = admin_client.get("/admin/likes/post/dashboard/daily.csv?range=7&site=two")
    assert (
        sum(int(line.split(",")[1]) for line in csv.content.decode().split()[1:]) == 1
    )


@pytest.mark.django_db(transaction=True)
def test_upgrading_moves_every_post_into_the_default_site_unchanged():
    executor = MigrationExecutor(connection)
    executor.migrate([("likes", "0007_reactions")])
    apps = executor.loader.project_state([("likes", "0007_reactions")]).apps
    OldPost = apps.get_model("likes", "Post")
    OldLike = apps.get_model("likes", "Like")
    for post_id, likes in [("a", 3), ("b", 0), ("café", 12)]:
        post = OldPost.objects.create(post_id=post_id, likes=likes, imported=1)
        for _ in range(likes):
            OldLike.objects.create(post=post)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert sorted(
        Post.objects.values_list("site_id", "post_id", "likes", "imported")
    ) == [
        (DEFAULT_SITE_ID, "a", 3, 1),
        (DEFAULT_SITE_ID, "b", 0, 1),
        (DEFAULT_SITE_ID, "café", 12, 1),
    ]
    # A new site takes the next id, and a like lands where it should.
    assert Site.objects.create(name="New", slug="new").pk > DEFAULT_SITE_ID
    assert services.like_add(post_id="a").likes == 4


def test_a_form_like_without_javascript_counts_on_its_pages_site(client, two):
    answer = client.post(
        "/likes/hello",
        {"return": f"{TWO}/posts/hello/"},
        headers={"Accept": "text/html", "Origin": TWO},
        REMOTE_ADDR="203.0.113.20",
    )
    assert answer.status_code == HTTPStatus.SEE_OTHER
    assert answer["Location"] == f"{TWO}/posts/hello/"
    assert Post.objects.get(site=two, post_id="hello").likes == 1
    assert not Post.objects.filter(site_id=DEFAULT_SITE_ID).exists()


def test_a_site_may_take_only_the_post_ids_of_its_rule(client, two, admin_client):
    two.post_id_pattern = r"posts-[a-z0-9-]+"
    two.save()

    assert like(client, "posts-hello", origin=TWO).status_code == HTTPStatus.OK
    for answer in (
        like(client, "wp-admin", origin=TWO),
        read(client, "wp-admin", origin=TWO),
        client.get("/likes/?ids=posts-hello,junk", headers={"Origin": TWO}),
    ):
        assert answer.status_code == HTTPStatus.BAD_REQUEST
        assert "its rule" in answer.json()["detail"]
    # The default site keeps taking any valid id.
    assert like(client, "wp-admin", origin=BLOG).status_code == HTTPStatus.OK
    assert list(Post.objects.filter(site=two).values_list("post_id", flat=True)) == [
        "posts-hello"
    ]
    refused = admin_client.post(
        f"/admin/likes/site/{two.pk}/change/",
        {"name": "Two", "slug": "two", "origins": TWO, "post_id_pattern": "([a-z"},
    )
    assert b"Not a regular expression" in refused.content


@pytest.mark.live
def test_sites_at_the_http_boundary_of_a_live_server(tmp_path):
    """CORS preflight from a site's origin, a private popular list and an
    unknown site, through gunicorn."""
    import httpx

    from tests.live import gunicorn, manage, project_env

    env = project_env(DATA_DIR=str(tmp_path))
    manage("migrate", "--noinput", env=env)
    manage(
        "shell",
        "-c",
        "from likes.models import Site; Site.objects.create(name='Two', "
        f"slug='two', origins='{TWO}', popular_public=False)",
        env=env,
    )
    with gunicorn(env, workers=1) as server:
        base = server.base_url
        preflight = httpx.options(
            f"{base}/likes/p",
            headers={"Origin": TWO, "Access-Control-Request-Method": "POST"},
        )
        liked = httpx.post(f"{base}/likes/p", headers={"Origin": TWO})
        private = httpx.get(f"{base}/api/popular", headers={"Origin": TWO})
        unknown = httpx.get(f"{base}/likes/p?site=nope")
        default = httpx.get(f"{base}/likes/p")

    assert preflight.headers["Access-Control-Allow-Origin"] == TWO
    assert liked.status_code == HTTPStatus.OK
    assert liked.headers["Access-Control-Allow-Origin"] == TWO
    assert private.status_code == HTTPStatus.NOT_FOUND
    assert private.json()["code"] == "not_found"
    assert unknown.status_code == HTTPStatus.BAD_REQUEST
    assert unknown.json()["code"] == "unknown_site"
    assert default.json() == {"post_id": "p", "likes": 0}  # site two's like
