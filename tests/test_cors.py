from http import HTTPStatus

import pytest

pytestmark = pytest.mark.django_db

ALLOWED = "http://localhost:1313"
OTHER = "https://evil.example"


def test_allowed_origin_gets_allow_origin_on_simple_request(client):
    response = client.post("/likes/p", headers={"Origin": ALLOWED})

    assert response.status_code == HTTPStatus.OK
    assert response["Access-Control-Allow-Origin"] == ALLOWED


def test_other_origin_gets_no_allow_origin(client):
    response = client.get("/likes/p", headers={"Origin": OTHER})

    assert "Access-Control-Allow-Origin" not in response


def test_preflight_from_allowed_origin(client):
    response = client.options(
        "/likes/p",
        headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code == HTTPStatus.OK
    assert response["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response["Access-Control-Allow-Methods"]


def test_preflight_from_other_origin_is_not_allowed(client):
    response = client.options(
        "/likes/p", headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"}
    )

    assert "Access-Control-Allow-Origin" not in response


def test_stats_is_not_exposed_cross_origin(client):
    response = client.get("/api/stats", headers={"Origin": ALLOWED})

    assert "Access-Control-Allow-Origin" not in response


def test_origins_come_from_cors_origins(client, settings):
    settings.CORS_ALLOWED_ORIGINS = [OTHER]

    response = client.get("/likes/p", headers={"Origin": OTHER})

    assert response["Access-Control-Allow-Origin"] == OTHER


def test_a_like_from_a_page_outside_cors_origins_is_refused_and_not_counted(client):
    from likes.models import Post

    refused = client.post("/likes/p", headers={"Origin": OTHER})
    unlike = client.delete("/likes/p", headers={"Origin": OTHER})

    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert refused.json()["code"] == "origin_not_allowed"
    assert "CORS_ORIGINS" in refused.json()["detail"]
    assert refused["Cache-Control"] == "no-store"
    assert unlike.status_code == HTTPStatus.FORBIDDEN
    assert not Post.objects.filter(post_id="p").exists()
    # "null" (a sandboxed page, a file://) is an origin outside the list too.
    assert client.post("/likes/p", headers={"Origin": "null"}).status_code == 403


def test_likes_without_origin_or_from_the_service_itself_count(client):
    assert client.post("/likes/p").json()["likes"] == 1
    own = client.post(
        "/likes/p", headers={"Origin": "http://testserver"}, REMOTE_ADDR="192.0.2.9"
    )
    assert own.json()["likes"] == 2
    # Reads stay open to everyone: only the answer's CORS header differs.
    assert client.get("/likes/p", headers={"Origin": OTHER}).json()["likes"] == 2
