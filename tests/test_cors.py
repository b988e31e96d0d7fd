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
