"""Machine clients signing their calls (client HMAC keys) and per-user cached
answers, at the HTTP boundary: gunicorn with two workers, a real upstream."""

import json
import time
import uuid
from contextlib import ExitStack
from http import HTTPStatus

import httpx
import pytest

from gateway_site.gateway import signing
from tests.gateway_fixtures import Upstream, service_table, services_toml
from tests.live import gunicorn, manage, project_env

pytestmark = pytest.mark.live

PASSWORD = "correct-horse-battery-staple"
USERS = (
    "from django.contrib.auth import get_user_model; U = get_user_model(); "
    f"U.objects.create_user('ada', password='{PASSWORD}'); "
    f"U.objects.create_user('bob', password='{PASSWORD}')"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clientauth")
    with ExitStack() as stack:
        echo = Upstream("echo")
        stack.callback(echo.kill)
        services = tmp / "services.toml"
        services.write_text(
            services_toml("echo", [echo.url], max_retries=0, client_hmac=True)
            + service_table("plain", [echo.url], max_retries=0)
            + "[cache.strategies.user_sessions]\n"
            'ttl = 1800\npaths = ["/users/me"]\nper_user = true\n'
        )
        env = project_env(
            DATA_DIR=str(tmp),
            GATEWAY_SERVICES_FILE=str(services),
            GATEWAY_RATE_ANONYMOUS="100000/h",
            GATEWAY_RATE_AUTHENTICATED="100000/h",
            GATEWAY_RATE_PROCESSING="100000/h",
            GATEWAY_LOGIN_RATE="1000/m",
        )
        manage("migrate", "--noinput", env=env)
        manage("shell", "-c", USERS, env=env)
        made = manage(
            "gateway_clientkey", "create", "--name", "batch", "--user", "ada", env=env
        )
        key_id, secret = made.stdout.split()
        server = stack.enter_context(gunicorn(env, workers=2))
        server.echo, server.env = echo, env
        server.key_id, server.secret = key_id, secret
        yield server


def signed(site, method, target, body=b"", *, secret=None, key_id=None, now=None):
    request_id = uuid.uuid4().hex
    headers = dict(
        signing.sign(
            (secret or site.secret).encode(),
            method=method,
            target=target,
            request_id=request_id,
            body=body,
            now=now,
        )
    )
    headers["X-Request-ID"] = request_id
    headers["X-Gateway-Key"] = key_id or site.key_id
    return headers


def call(site, method, target, body=b"", headers=None):
    return httpx.request(
        method, site.base_url + target, content=body, headers=headers, timeout=10
    )


def test_a_signed_call_acts_as_the_keys_user_and_its_headers_stay_here(site):
    target = "/services/echo/v1/run?x=caf%C3%A9"
    body = json.dumps({"job": 1}).encode()

    response = call(site, "POST", target, body, signed(site, "POST", target, body))

    assert response.status_code == HTTPStatus.OK, response.text
    forwarded = site.echo.received[-1]
    assert forwarded["body"] == body
    for name in ("x-gateway-key", "x-gateway-signature", "x-gateway-timestamp"):
        assert name not in forwarded["header_names"]
    # The authenticated tier's headers: it counted as ada, not as anonymous.
    assert "RateLimit-Policy" in response.headers


def test_a_signed_envelope_call_works_too(site):
    body = json.dumps(
        {
            "service_name": "echo",
            "endpoint": "/v1/embed",
            "method": "POST",
            "payload": {},
        }
    ).encode()
    headers = signed(site, "POST", "/gateway", body)
    headers["Content-Type"] = "application/json"

    response = call(site, "POST", "/gateway", body, headers)

    assert response.status_code == HTTPStatus.OK, response.text
    assert response.json()["status_code"] == 200


def refused(response):
    assert response.status_code == HTTPStatus.UNAUTHORIZED, response.text
    assert response.headers["WWW-Authenticate"].startswith("GW-HMAC")
    return response.json()["code"]


def test_every_bad_signature_is_a_401_naming_the_reason(site):
    target = "/services/echo/v1/run"
    good = signed(site, "POST", target, b"original")

    assert call(site, "POST", target, b"original", good).status_code == 200
    # The same request again, whichever worker takes it.
    assert refused(call(site, "POST", target, b"original", good)) == "replayed"
    fresh = signed(site, "POST", target, b"original")
    assert refused(call(site, "POST", target, b"tampered", fresh)) == "digest_mismatch"
    moved = signed(site, "POST", target, b"x")
    assert refused(call(site, "POST", "/services/echo/v1/other", b"x", moved)) == (
        "signature_invalid"
    )
    stale = signed(site, "POST", target, b"x", now=time.time() - 3600)
    assert refused(call(site, "POST", target, b"x", stale)) == "timestamp_skewed"
    wrong = signed(site, "POST", target, b"x", secret="0" * 64)
    assert refused(call(site, "POST", target, b"x", wrong)) == "signature_invalid"
    unknown = signed(site, "POST", target, b"x", key_id="gk_nobody")
    assert refused(call(site, "POST", target, b"x", unknown)) == "key_unknown"
    other = "/services/plain/v1/run"
    elsewhere = signed(site, "POST", other, b"x")
    assert refused(call(site, "POST", other, b"x", elsewhere)) == "hmac_not_enabled"
    bare = {"X-Gateway-Key": site.key_id}
    assert refused(call(site, "POST", target, b"x", bare)) == "signature_missing"

    # Counted by reason, summed over the workers (loopback may read /metrics).
    exposed = httpx.get(site.base_url + "/metrics", timeout=10).text
    for reason in ("replayed", "digest_mismatch", "signature_invalid", "key_unknown"):
        assert f'signature_failures_total{{reason="{reason}"}}' in exposed
    assert 'signature_failures_total{reason="signature_invalid"} 2.0' in exposed


def test_a_revoked_key_stops_at_once_on_every_worker(site):
    made = manage(
        "gateway_clientkey", "create", "--name", "tmp", "--user", "bob", env=site.env
    )
    key_id, secret = made.stdout.split()
    target = "/services/echo/ping"
    for _ in range(4):  # both workers cache the key's state
        ok = call(
            site,
            "GET",
            target,
            headers=signed(site, "GET", target, secret=secret, key_id=key_id),
        )
        assert ok.status_code == HTTPStatus.OK, ok.text

    manage("gateway_clientkey", "revoke", key_id, env=site.env)

    for _ in range(4):
        headers = signed(site, "GET", target, secret=secret, key_id=key_id)
        assert refused(call(site, "GET", target, headers=headers)) == "key_unknown"


def token(site, username):
    response = httpx.post(
        f"{site.base_url}/token",
        data={"username": username, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == HTTPStatus.OK, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_per_user_answers_are_cached_for_that_user_alone(site):
    ada, bob = token(site, "ada"), token(site, "bob")
    url = "/services/echo/users/me"
    before = len(site.echo.received)

    first = call(site, "GET", url, headers=ada)
    again = call(site, "GET", url, headers=ada)
    other = call(site, "GET", url, headers=bob)
    anonymous = [call(site, "GET", url) for _ in range(2)]

    assert first.headers["X-Cache-Status"] == "MISS"
    assert again.headers["X-Cache-Status"] == "HIT"
    assert again.content == first.content
    assert other.headers["X-Cache-Status"] == "MISS"
    assert all(a.headers.get("X-Cache-Status") != "HIT" for a in anonymous)
    # ada once, bob once, both anonymous calls.
    assert len(site.echo.received) - before == 4

    manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "u = get_user_model().objects.get(username='ada'); "
        f"u.set_password('{PASSWORD}'); u.save()",
        env=site.env,
    )
    # A new password revokes the old token and leaves the old answer unreachable.
    assert call(site, "GET", url, headers=ada).status_code == HTTPStatus.UNAUTHORIZED
    renewed = call(site, "GET", url, headers=token(site, "ada"))
    assert renewed.headers["X-Cache-Status"] == "MISS"
