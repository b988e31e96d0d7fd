"""GET /api/popular and the page titles likes carry."""

import json
from http import HTTPStatus

import pytest

from likes.models import Post
from likes.validators import POST_TITLE_MAX_LENGTH, clean_title

pytestmark = pytest.mark.django_db


def like(client, post_id, body=None, content_type="text/plain;charset=UTF-8", ip=1):
    return client.generic(
        "POST",
        f"/likes/{post_id}",
        data=body or b"",
        content_type=content_type,
        REMOTE_ADDR=f"192.0.2.{ip}",
    )


def test_popular_lists_the_most_liked_first_and_never_the_unliked(client):
    Post.objects.create(post_id="b", likes=5)
    Post.objects.create(post_id="a", likes=5)
    Post.objects.create(post_id="c", likes=9)
    Post.objects.create(post_id="zero", likes=0)

    response = client.get("/api/popular")

    assert response.status_code == HTTPStatus.OK
    assert response.json() == [
        {"post_id": "c", "likes": 9},
        {"post_id": "a", "likes": 5},
        {"post_id": "b", "likes": 5},
    ]
    assert client.get("/api/popular?limit=1").json() == [{"post_id": "c", "likes": 9}]


def test_popular_defaults_to_ten(client):
    Post.objects.bulk_create(Post(post_id=f"p{i:02}", likes=i + 1) for i in range(12))

    rows = client.get("/api/popular").json()

    assert [row["post_id"] for row in rows] == [f"p{i:02}" for i in range(11, 1, -1)]


@pytest.mark.parametrize(
    "limit", ["0", "51", "-1", "1.5", "ten", "", "٣", "1e3", "9" * 40, "5\x00"]
)
def test_a_bad_limit_is_a_json_400(client, limit):
    response = client.get("/api/popular", {"limit": limit})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    # A control character is refused before the view (bad_query).
    assert response.json()["code"] in {"invalid_limit", "bad_query"}


def test_popular_is_not_a_post_id_route(client):
    # /likes/popular stays a post called "popular".
    assert client.get("/likes/popular").json() == {"post_id": "popular", "likes": 0}


def test_a_like_stores_the_title_it_carries(client):
    response = like(client, "hello", json.dumps({"title": "Hello, world"}))

    assert response.status_code == HTTPStatus.OK
    assert response.json()["likes"] == 1
    assert Post.objects.get(post_id="hello").title == "Hello, world"


def test_a_form_like_stores_its_title(client):
    like(client, "form", b"title=Caf%C3%A9", "application/x-www-form-urlencoded")

    assert Post.objects.get(post_id="form").title == "Café"


def test_a_like_without_title_keeps_the_one_stored(client):
    like(client, "kept", json.dumps({"title": "First"}), ip=1)
    like(client, "kept", ip=2)
    like(client, "kept", b"{not json", ip=3)

    post = Post.objects.get(post_id="kept")
    assert post.likes == 3
    assert post.title == "First"


def test_a_duplicate_like_does_not_change_the_title(client):
    like(client, "dup", json.dumps({"title": "Real"}))
    response = like(client, "dup", json.dumps({"title": "Spam"}))

    assert response.json()["duplicate"] is True
    assert Post.objects.get(post_id="dup").title == "Real"


@pytest.mark.parametrize(
    "body",
    [
        '{"title": "\\ud800"}',
        '{"title": ["a"]}',
        '{"title": null}',
        "[" * 10000 + "]" * 10000,
        '"just a string"',
        "\x00",
    ],
)
def test_hostile_bodies_still_count_the_like(client, body):
    response = like(client, "hostile", body)

    assert response.status_code == HTTPStatus.OK
    assert response.json()["likes"] == 1
    assert Post.objects.get(post_id="hostile").title == ""


def test_titles_are_cleaned_and_capped():
    assert clean_title("  Caf\u0065\u0301\n\tnews\x00 \u202e ") == "Café news"
    assert clean_title("x" * 1000) == "x" * POST_TITLE_MAX_LENGTH
    assert clean_title("\ud800ok") == "ok"
    assert clean_title(42) == ""
