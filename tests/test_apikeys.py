import datetime
from http import HTTPStatus

import pytest
from django.core import serializers
from django.utils import timezone

from likes.models import APIKey

pytestmark = pytest.mark.django_db


def stats(client, key):
    return client.get("/api/stats", headers={"X-API-Key": key})


def test_a_created_key_opens_the_stats_api(client):
    _, key = APIKey.objects.create_key(name="dashboard")

    assert stats(client, key).status_code == HTTPStatus.OK


def test_keys_are_stored_only_as_a_salted_hash():
    api_key, key = APIKey.objects.create_key(name="k")
    other, _ = APIKey.objects.create_key(name="other")
    stored = serializers.serialize("json", APIKey.objects.all())

    prefix, _, secret = key.partition(".")
    assert secret not in stored
    assert api_key.prefix == prefix
    algorithm, salt, digest = api_key.hashed_key.split("$")
    assert algorithm == "sha256-salted"
    assert len(salt) == 16 and len(digest) == 64
    assert other.hashed_key.split("$")[1] != salt  # a salt per key


def test_same_key_text_hashes_differently_each_time():
    generator = APIKey.objects.key_generator

    assert generator.hash("abc.def") != generator.hash("abc.def")
    assert generator.verify("abc.def", generator.hash("abc.def"))
    assert not generator.verify("abc.deg", generator.hash("abc.def"))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("a" if k[-1] != "a" else "b"),  # wrong secret
        lambda k: "zzzzzzzz." + k.partition(".")[2],  # unknown prefix
        lambda k: k.partition(".")[0],  # prefix alone
        lambda k: k + "x" * 200,  # absurdly long
    ],
)
def test_wrong_keys_are_refused(client, mangle):
    _, key = APIKey.objects.create_key(name="k")

    assert stats(client, mangle(key)).status_code == HTTPStatus.FORBIDDEN


def test_revoked_key_is_refused(client):
    api_key, key = APIKey.objects.create_key(name="k")
    api_key.revoked = True
    api_key.save()

    assert stats(client, key).status_code == HTTPStatus.FORBIDDEN


def test_expired_key_is_refused(client):
    _, key = APIKey.objects.create_key(
        name="k", expiry_date=timezone.now() - datetime.timedelta(minutes=1)
    )

    assert stats(client, key).status_code == HTTPStatus.FORBIDDEN


def test_use_is_recorded(client):
    api_key, key = APIKey.objects.create_key(name="k")
    assert api_key.last_used_at is None

    stats(client, key)

    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_admin_api_key_from_the_environment_still_works(client, settings):
    settings.LIKES_ADMIN_API_KEY = "env-key-0123456789abcdefghij"

    assert stats(client, "env-key-0123456789abcdefghij").status_code == HTTPStatus.OK


def test_admin_creates_a_key_and_shows_it_once(admin_client):
    response = admin_client.post(
        "/admin/likes/apikey/add/", {"name": "grafana"}, follow=True
    )

    messages = [str(m) for m in response.context["messages"]]
    shown = next(m for m in messages if "The API key for grafana is:" in m)
    key = shown.split("is: ")[1].split(". ")[0]
    assert APIKey.objects.get(name="grafana").prefix == key.partition(".")[0]
    assert key.partition(".")[2] not in serializers.serialize(
        "json", APIKey.objects.all()
    )
    assert admin_client.get("/admin/likes/apikey/").status_code == HTTPStatus.OK


def test_admin_lists_only_our_key_model(admin_client):
    response = admin_client.get("/admin/")

    assert b"/admin/likes/apikey/" in response.content
    assert b"/admin/rest_framework_api_key/" not in response.content
