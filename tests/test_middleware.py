from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user():
    return get_user_model().objects.create_superuser(
        "author", "author@example.com", "a-long-test-password"
    )


def test_admin_login_uses_sessions_and_csrf(admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    login_page = client.get("/admin/login/")
    token = login_page.cookies["csrftoken"].value

    response = client.post(
        "/admin/login/?next=/admin/",
        {
            "username": "author",
            "password": "a-long-test-password",
            "csrfmiddlewaretoken": token,
        },
    )

    assert response.status_code == HTTPStatus.FOUND
    assert "sessionid" in response.cookies
    assert client.get("/admin/").status_code == HTTPStatus.OK


def test_admin_login_without_csrf_token_is_refused(admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)

    response = client.post(
        "/admin/login/", {"username": "author", "password": "a-long-test-password"}
    )

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "csrf_failed"


def test_public_api_ignores_session_cookies(client, admin_user):
    client.force_login(admin_user)

    response = client.post("/likes/p")

    assert response.status_code == HTTPStatus.OK
    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")
