"""Client HMAC keys: derivation, verification against the real shared store,
replays, revocation, the admin's one-time secret and the management command."""

import asyncio
import uuid
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command

from gateway_site.gateway import clientkeys, signing, store
from gateway_site.gateway.auth import Unauthorized, UserState
from gateway_site.gateway.models import ClientKey

pytestmark = pytest.mark.django_db(transaction=True)

TARGET = "/services/echo/v1/run?x=1"


@pytest.fixture
def key():
    user = get_user_model().objects.create_user("robot", password="x" * 20)
    return ClientKey.objects.create(name="batch job", user=user)


def signed_headers(key_id, secret, *, body=b"{}", request_id=None, now=None, **kw):
    headers = signing.sign(
        secret.encode(),
        method=kw.get("method", "POST"),
        target=kw.get("target", TARGET),
        request_id=request_id or uuid.uuid4().hex,
        body=body,
        now=now,
    )
    found = {name.lower(): value for name, value in headers}
    found["x-gateway-key"] = key_id
    found["x-request-id"] = request_id or found.get("x-request-id", "")
    return found


def authenticate(headers, *, body=b"{}", target=TARGET, method="POST"):
    async def run_blocking(fn, *args):
        return await sync_to_async(fn, thread_sensitive=False)(*args)

    async def load_state(user_id):
        user = await sync_to_async(get_user_model().objects.get)(pk=user_id)
        return UserState.of(user)

    return asyncio.run(
        clientkeys.authenticate(
            store.get(),
            headers,
            method=method,
            target=target,
            body=body,
            run_blocking=run_blocking,
            load_state=load_state,
        )
    )


def secret_of(key):
    return clientkeys.derive_secret(key.key_id, key.salt)


def test_a_signed_request_acts_as_the_keys_user_and_marks_it_used(key):
    request_id = uuid.uuid4().hex
    headers = signed_headers(key.key_id, secret_of(key), request_id=request_id)
    headers["x-request-id"] = request_id

    user = authenticate(headers)

    assert user.username == "robot"
    key.refresh_from_db()
    assert key.last_used_at is not None
    # The secret is nowhere in the database.
    assert secret_of(key) not in str(ClientKey.objects.values().get(pk=key.pk))


def reason_of(headers, **kwargs):
    with pytest.raises(Unauthorized) as refused:
        authenticate(headers, **kwargs)
    return refused.value.code, refused.value.status


def test_each_failure_is_a_401_naming_its_reason(key):
    secret = secret_of(key)
    rid = uuid.uuid4().hex

    def fresh(**kw):
        h = signed_headers(key.key_id, secret, request_id=rid, **kw)
        h["x-request-id"] = rid
        return h

    assert reason_of(fresh(), body=b"{tampered}") == ("digest_mismatch", 401)
    assert reason_of(fresh(), target="/services/echo/v1/other") == (
        "signature_invalid",
        401,
    )
    assert reason_of(fresh(now=0)) == ("timestamp_skewed", 401)
    wrong = signed_headers(key.key_id, "0" * 64, request_id=rid)
    wrong["x-request-id"] = rid
    assert reason_of(wrong) == ("signature_invalid", 401)
    missing = {"x-gateway-key": key.key_id}
    assert reason_of(missing) == ("signature_missing", 401)
    assert reason_of({**fresh(), "x-gateway-key": "gk_nobody"}) == ("key_unknown", 401)


def test_a_replay_is_refused_even_from_another_worker(key):
    rid = uuid.uuid4().hex
    headers = signed_headers(key.key_id, secret_of(key), request_id=rid)
    headers["x-request-id"] = rid

    authenticate(headers)
    # The shared store remembers the signature, not this process.
    assert reason_of(headers) == ("replayed", 401)


def test_a_revoked_key_stops_at_once(key):
    secret = secret_of(key)
    first = signed_headers(key.key_id, secret, request_id="a" * 32)
    first["x-request-id"] = "a" * 32
    authenticate(first)  # caches the key's state

    key.is_active = False
    key.save()

    again = signed_headers(key.key_id, secret, request_id="b" * 32)
    again["x-request-id"] = "b" * 32
    assert reason_of(again) == ("key_unknown", 401)


def test_the_secret_follows_secret_key_fallbacks(key, settings):
    old = secret_of(key)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a new secret key that is long enough to be used " * 2
    headers = signed_headers(key.key_id, old, request_id="c" * 32)
    headers["x-request-id"] = "c" * 32

    assert authenticate(headers).username == "robot"
    assert secret_of(key) != old


def test_the_command_prints_the_secret_once_and_lists_without_it(key):
    out = StringIO()
    call_command(
        "gateway_clientkey", "create", "--name", "ci", "--user", "robot", stdout=out
    )
    key_id, secret = out.getvalue().split()
    made = ClientKey.objects.get(key_id=key_id)

    assert secret == secret_of(made)
    listing = StringIO()
    call_command("gateway_clientkey", "list", stdout=listing)
    assert key_id in listing.getvalue() and secret not in listing.getvalue()
    call_command("gateway_clientkey", "revoke", key_id, stdout=StringIO())
    assert not ClientKey.objects.get(key_id=key_id).is_active


def test_the_admin_shows_a_new_keys_secret_once(admin_client, key):
    response = admin_client.post(
        "/admin/gateway/clientkey/add/",
        {"name": "uploader", "user": key.user_id, "is_active": "on"},
        follow=True,
    )

    made = ClientKey.objects.get(name="uploader")
    assert secret_of(made) in response.content.decode()
    page = admin_client.get(f"/admin/gateway/clientkey/{made.pk}/change/")
    assert secret_of(made) not in page.content.decode()
