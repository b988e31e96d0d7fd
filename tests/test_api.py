from http import HTTPStatus

import pytest

from likes.models import Like, Post

pytestmark = pytest.mark.django_db


def test_get_unknown_post_is_zero_and_creates_nothing(api_client):
    response = api_client.get("/likes/never-liked")

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"post_id": "never-liked", "likes": 0}
    assert not Post.objects.exists()


def test_post_without_body_or_content_type_counts_a_like(client):
    # The original widget sends a bare POST: no body, no Content-Type.
    response = client.generic("POST", "/likes/hello-world")

    assert response.status_code == HTTPStatus.OK
    assert response.json()["likes"] == 1
    assert response.json()["post_id"] == "hello-world"


def test_each_post_adds_exactly_one(api_client):
    for expected in range(1, 4):
        # Three different visitors (dedupe keys on IP and User-Agent).
        response = api_client.post("/likes/p", REMOTE_ADDR=f"192.0.2.{expected}")
        assert response.json()["likes"] == expected

    assert api_client.get("/likes/p").json() == {"post_id": "p", "likes": 3}
    assert Like.objects.filter(post__post_id="p").count() == 3


def test_post_ignores_a_garbage_body(client):
    response = client.post(
        "/likes/p", data=b"{not json", content_type="application/json"
    )

    assert response.status_code == HTTPStatus.OK
    assert response.json()["likes"] == 1


def test_percent_encoded_unicode_slug_is_decoded(api_client):
    api_client.post("/likes/caf%C3%A9-con-le%C3%B1a")

    assert Post.objects.get().post_id == "café-con-leña"
    response = api_client.get("/likes/caf%C3%A9-con-le%C3%B1a")
    assert response.json() == {"post_id": "café-con-leña", "likes": 1}


BAD_ID_PATHS = [
    "/likes/a/b",  # slash
    "/likes/a%2Fb",  # encoded slash
    "/likes/a%20b",  # space
    "/likes/a%00b",  # control characters
    "/likes/a%0Ab",
    "/likes/a%7Fb",
    "/likes/" + "a" * 201,  # over-long
]


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", path) for path in BAD_ID_PATHS]
    + [("post", path) for path in BAD_ID_PATHS]
    # An empty id: GET /likes/ is the batch endpoint, tested below.
    + [("post", "/likes/")],
)
def test_bad_post_ids_are_400_json_and_change_nothing(api_client, method, path):
    response = getattr(api_client, method)(path)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "invalid_post_id"
    assert response.json()["detail"]
    assert not Post.objects.exists()


def test_batch_returns_every_requested_count_in_order(api_client):
    api_client.post("/likes/b", REMOTE_ADDR="192.0.2.1")
    api_client.post("/likes/b", REMOTE_ADDR="192.0.2.2")
    api_client.post("/likes/c")

    response = api_client.get("/likes/?ids=a,b,c,b")

    assert response.status_code == HTTPStatus.OK
    assert response.json() == [
        {"post_id": "a", "likes": 0},
        {"post_id": "b", "likes": 2},
        {"post_id": "c", "likes": 1},
    ]


def test_batch_without_trailing_slash(api_client):
    response = api_client.get("/likes?ids=x")

    assert response.json() == [{"post_id": "x", "likes": 0}]


def test_batch_accepts_one_hundred_ids(api_client):
    ids = ",".join(f"post-{n}" for n in range(100))

    response = api_client.get(f"/likes/?ids={ids}")

    assert response.status_code == HTTPStatus.OK
    assert len(response.json()) == 100


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "?ids="),
        ("?ids=", "?ids="),
        ("?ids=,,", "?ids="),
        ("?ids=" + ",".join(f"p{n}" for n in range(101)), "At most 100"),
        ("?ids=ok,not%20ok", "' '"),
        ("?ids=ok,a/b", "'/'"),
    ],
)
def test_batch_limits_are_400_json(api_client, query, message):
    response = api_client.get(f"/likes/{query}")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid_ids"
    assert message in response.json()["detail"]


def test_unsupported_method_is_405_json(api_client):
    response = api_client.put("/likes/p")

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response.json()["code"] == "method_not_allowed"


def test_unknown_path_is_404_json(client):
    response = client.get("/no/such/thing")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_health_is_liveness_json(client):
    response = client.get("/health")

    assert response.status_code == HTTPStatus.OK
    assert response.json()["status"] == "healthy"
    assert "timestamp" in response.json()


def test_dashboard_redirects_to_admin(client):
    response = client.get("/dashboard")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/admin/likes/post/dashboard/"
