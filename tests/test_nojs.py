"""The no-JavaScript like: a form POST answered with a 303 back to the page."""

from http import HTTPStatus
from urllib.parse import urlencode

import pytest

from likes.models import Post

pytestmark = pytest.mark.django_db

ALLOWED = "http://localhost:1313"
HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def form_like(client, post_id="p", *, origin=ALLOWED, ip=1, **fields):
    headers = {"Accept": HTML}
    if origin is not None:
        headers["Origin"] = origin
    # As a browser's form sends it.
    return client.post(
        f"/likes/{post_id}",
        urlencode(fields),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
        REMOTE_ADDR=f"192.0.2.{ip}",
    )


def test_a_form_like_counts_and_goes_back_to_the_page(client):
    page = f"{ALLOWED}/posts/hello/"

    response = form_like(client, "hello", title="Hello", **{"return": page})

    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"] == page
    assert response["Cache-Control"] == "no-store"
    post = Post.objects.get(post_id="hello")
    assert (post.likes, post.title) == (1, "Hello")


def test_a_repeat_form_like_goes_back_without_counting(client):
    form_like(client, "hello", **{"return": f"{ALLOWED}/a/"})
    again = form_like(client, "hello", **{"return": f"{ALLOWED}/a/"})

    assert again.status_code == HTTPStatus.SEE_OTHER
    assert Post.objects.get(post_id="hello").likes == 1


@pytest.mark.parametrize(
    "back",
    [
        "https://evil.example/phish",
        "javascript:alert(1)",
        "//evil.example/",
        "http://localhost:1313@evil.example/",
        "http://user:pw@localhost:1313/",
        "http://localhost:99999/",
        "",
    ],
)
def test_a_return_elsewhere_goes_to_the_origins_home_instead(client, back):
    response = form_like(client, "p", **{"return": back})

    assert response.status_code == HTTPStatus.SEE_OTHER
    assert response["Location"] == f"{ALLOWED}/"
    assert Post.objects.get(post_id="p").likes == 1


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
def test_a_form_from_another_site_is_refused_with_a_page(client, origin):
    response = form_like(client, origin=origin, **{"return": f"{ALLOWED}/x/"})

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response["Content-Type"].startswith("text/html")
    assert b"CORS_ORIGINS" in response.content
    assert not Post.objects.exists()


def test_without_origin_the_return_pages_site_must_be_allowed(client):
    ok = form_like(client, "a", origin=None, **{"return": f"{ALLOWED}/a/"})
    refused = form_like(client, "b", origin=None, **{"return": "https://evil.example/"})
    bare = form_like(client, "c", origin=None)

    assert ok.status_code == HTTPStatus.SEE_OTHER
    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert bare.status_code == HTTPStatus.FORBIDDEN
    assert list(Post.objects.values_list("post_id", flat=True)) == ["a"]


def test_a_bad_post_id_and_the_rate_limit_answer_in_html(client, settings):
    bad = form_like(client, "..")
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert bad["Content-Type"].startswith("text/html")

    settings.RATELIMIT_ENABLE = True
    settings.LIKES_POST_RATE = "1/h"
    form_like(client, "r", ip=7, **{"return": f"{ALLOWED}/"})
    limited = form_like(client, "r2", ip=7, **{"return": f"{ALLOWED}/"})
    assert limited.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert limited["Content-Type"].startswith("text/html")
    assert "Retry-After" in limited


def test_scripts_keep_their_json(client):
    response = client.post("/likes/p", headers={"Origin": ALLOWED, "Accept": "*/*"})

    assert response.status_code == HTTPStatus.OK
    assert response.json()["likes"] == 1


@pytest.mark.django_db
def test_a_multipart_form_like_counts_too(client):
    # enctype="multipart/form-data": Django parses the body into POST, which
    # then cannot be read raw again.
    response = client.post(
        "/likes/multi",
        {"title": "Multi", "return": f"{ALLOWED}/posts/multi/"},
        headers={"Accept": HTML, "Origin": ALLOWED},
    )
    assert response.status_code == HTTPStatus.SEE_OTHER
    assert Post.objects.get(post_id="multi").title == "Multi"
