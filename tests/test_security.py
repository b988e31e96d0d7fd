from http import HTTPStatus

import pytest

from tests.live import manage, project_env

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/likes/p", "/health", "/likes/a%20b", "/nope"])
def test_every_api_response_has_the_security_headers(client, path):
    response = client.get(path)

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["Content-Security-Policy"].startswith("default-src 'none'")
    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]


def test_admin_pages_get_a_policy_that_lets_the_admin_work(client):
    response = client.get("/admin/login/")

    assert response.status_code == HTTPStatus.OK
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp


def test_no_hsts_over_plain_http(client):
    assert "Strict-Transport-Security" not in client.get("/health")


def test_hsts_behind_the_tunnel_with_the_proxy_header(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    response = client.get("/health", headers={"X-Forwarded-Proto": "https"})

    assert response["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains"
    )


def test_a_client_cannot_claim_https_without_the_setting(client, settings):
    response = client.get("/health", headers={"X-Forwarded-Proto": "https"})

    assert "Strict-Transport-Security" not in response


@pytest.mark.live
def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = project_env(
        DATA_DIR=str(tmp_path),
        ALLOWED_HOSTS="likes.example.com",
        CORS_ORIGINS="https://blog.example.com",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        ADMIN_API_KEY="a-long-random-admin-api-key-0123456789",
    )

    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=env, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
