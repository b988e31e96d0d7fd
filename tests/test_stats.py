from http import HTTPStatus

import pytest

from likes.models import Post

pytestmark = pytest.mark.django_db

KEY = "stats-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def admin_key(settings):
    settings.LIKES_ADMIN_API_KEY = KEY


def test_stats_lists_posts_by_likes_descending(client):
    Post.objects.create(post_id="low", likes=1)
    Post.objects.create(post_id="high", likes=7)
    Post.objects.create(post_id="mid-b", likes=3)
    Post.objects.create(post_id="mid-a", likes=3)

    response = client.get("/api/stats", headers={"X-API-Key": KEY})

    assert response.status_code == HTTPStatus.OK
    assert response.json() == [
        {"post_id": "high", "likes": 7},
        {"post_id": "mid-a", "likes": 3},
        {"post_id": "mid-b", "likes": 3},
        {"post_id": "low", "likes": 1},
    ]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": ""}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY + "x"}],
)
def test_stats_without_the_right_key_is_403_json(client, headers):
    response = client.get("/api/stats", headers=headers)

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "permission_denied"


def test_stats_is_closed_when_no_key_is_configured(client, settings):
    settings.LIKES_ADMIN_API_KEY = ""

    assert client.get("/api/stats").status_code == HTTPStatus.FORBIDDEN
    response = client.get("/api/stats", headers={"X-API-Key": ""})
    assert response.status_code == HTTPStatus.FORBIDDEN
