import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import httpx
import pytest
from django.contrib.auth import get_user_model

from gateway_site.gateway import store
from gateway_site.gateway.checks import check_gateway_rates
from gateway_site.gateway.tiers import admit_blocking, tighter
from likes.ratelimit import Limit
from tests.gateway_fixtures import services_toml
from tests.live import free_port, gunicorn, manage, project_env

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def tiers_on(settings):
    settings.RATELIMIT_ENABLE = True
    # Hour windows: a minute window could roll over in the middle of a test.
    settings.GATEWAY_RATE_ANONYMOUS = "3/h"
    settings.GATEWAY_RATE_AUTHENTICATED = "4/h"
    settings.GATEWAY_RATE_ADMIN = "6/h"
    settings.GATEWAY_RATE_PROCESSING = "2/h"
    settings.GATEWAY_LOGIN_RATE = "100/h"
    # Counts of this test only: a store of its own.
    settings.GATEWAY_STORE_PREFIX = f"gw-test-{uuid.uuid4().hex[:8]}:"
    return settings


def make_user(username, **fields):
    return get_user_model().objects.create_user(username, password=PASSWORD, **fields)


def token_for(client, username) -> str:
    response = client.post(
        "/token",
        {"username": username, "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == HTTPStatus.OK
    return response.json()["access_token"]


def me(client, token=None, ip="198.51.100.7"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/users/me", headers=headers, REMOTE_ADDR=ip)


def statuses(responses):
    return [r.status_code for r in responses]


def limit_request(*, user, processing: bool, ip="198.51.100.7"):
    """Count one call as the gateway does; where the caller stands."""
    return admit_blocking(store.get(), user=user, ip_bucket=ip, processing=processing)


# --- Each tier on /users/me ------


@pytest.mark.django_db
def test_anonymous_tier_limits_by_ip(client, tiers_on):
    responses = [me(client) for _ in range(4)]

    assert statuses(responses) == [401, 401, 401, 429]
    assert [r["X-RateLimit-Remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0]["RateLimit-Policy"] == '"gateway-anonymous";q=3;w=3600'
    limited = responses[-1]
    assert limited.json()["code"] == "rate_limited"
    assert limited["RateLimit"].startswith('"gateway-anonymous";r=0;t=')
    assert 1 <= int(limited["Retry-After"]) <= 3600
    assert me(client, ip="198.51.100.8").status_code == HTTPStatus.UNAUTHORIZED


@pytest.mark.django_db
def test_bad_tokens_count_against_the_anonymous_tier(client, tiers_on):
    responses = [me(client, "forged.token.here") for _ in range(4)]

    assert statuses(responses) == [401, 401, 401, 429]


@pytest.mark.django_db
def test_authenticated_tier_limits_by_user_not_ip(client, tiers_on):
    make_user("ada")
    make_user("bob")
    token, other = token_for(client, "ada"), token_for(client, "bob")

    responses = [me(client, token, ip=f"203.0.113.{n}") for n in range(5)]

    assert statuses(responses) == [200, 200, 200, 200, 429]
    assert responses[0]["RateLimit-Policy"] == '"gateway-authenticated";q=4;w=3600'
    assert responses[3]["X-RateLimit-Remaining"] == "0"
    assert responses[4]["X-RateLimit-Limit"] == "4"
    assert me(client, other).status_code == HTTPStatus.OK
    # The user's own tier is not the anonymous one of their IP.
    assert me(client, ip="203.0.113.0").status_code == HTTPStatus.UNAUTHORIZED


@pytest.mark.django_db
def test_admin_tier_applies_to_staff(client, tiers_on):
    make_user("root", is_staff=True)
    token = token_for(client, "root")

    responses = [me(client, token) for _ in range(7)]

    assert statuses(responses) == [200] * 6 + [429]
    assert responses[0]["RateLimit-Policy"] == '"gateway-admin";q=6;w=3600'


@pytest.mark.django_db
def test_ratelimit_enable_false_switches_tiers_off(client, tiers_on):
    tiers_on.RATELIMIT_ENABLE = False

    responses = [me(client) for _ in range(5)]

    assert statuses(responses) == [401] * 5
    assert "X-RateLimit-Limit" not in responses[-1]


@pytest.mark.django_db
def test_tiers_fail_open_when_the_store_is_down(client, tiers_on):
    user = make_user("ada")
    tiers_on.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    limit = limit_request(user=user, processing=True)

    assert limit is None


# --- Processing calls ------


@pytest.mark.django_db
def test_processing_counts_against_both_and_reports_the_tighter(tiers_on):
    user = make_user("ada")

    limits = [limit_request(user=user, processing=True) for _ in range(3)]

    # Processing (2/h) is tighter than the user's tier (4/h).
    assert [lim.policy for lim in limits] == ["gateway-processing"] * 3
    assert [lim.remaining for lim in limits] == [1, 0, 0]
    assert [lim.exceeded for lim in limits] == [False, False, True]
    # The three processing calls also used three of the tier's four.
    after = limit_request(user=user, processing=False)
    assert (after.policy, after.remaining, after.exceeded) == (
        "gateway-authenticated",
        0,
        False,
    )


@pytest.mark.django_db
def test_tier_exceeded_is_reported_even_when_processing_is_not(tiers_on):
    tiers_on.GATEWAY_RATE_PROCESSING = "10/h"
    user = make_user("ada")

    limits = [limit_request(user=user, processing=True) for _ in range(5)]

    assert [lim.exceeded for lim in limits] == [False] * 4 + [True]
    assert limits[-1].policy == "gateway-authenticated"
    assert limits[-1].headers()["Retry-After"]


@pytest.mark.django_db
def test_anonymous_processing_is_limited_by_ip(tiers_on):
    first = [limit_request(user=None, processing=True) for _ in range(3)]
    elsewhere = limit_request(user=None, processing=True, ip="192.0.2.1")

    assert [lim.exceeded for lim in first] == [False, False, True]
    assert first[-1].policy == "gateway-processing"
    assert not elsewhere.exceeded


@pytest.mark.django_db
def test_processing_is_per_user(tiers_on):
    ada, bob = make_user("ada"), make_user("bob")
    for _ in range(2):
        limit_request(user=ada, processing=True)

    assert limit_request(user=ada, processing=True).exceeded
    assert not limit_request(user=bob, processing=True).exceeded


@pytest.mark.django_db(transaction=True)
def test_the_proxy_counts_writes_as_processing(gw, gateway, upstreams, tiers_on):
    name = gateway([upstreams().url])

    writes = [gw.post(f"/services/{name}/x"), gw.post(f"/services/{name}/x")]
    read = gw.get(f"/services/{name}/x?cc=no-store")
    third_write = gw.post(f"/services/{name}/x")

    assert statuses(writes) == [200, 200]
    # Processing (2/h) is the tighter limit on a write...
    assert writes[0].headers["RateLimit-Policy"] == '"gateway-processing";q=2;w=3600'
    assert writes[1].headers["X-RateLimit-Remaining"] == "0"
    # ...a read is not processing, but the writes used the anonymous tier too.
    assert read.status_code == HTTPStatus.OK
    assert read.headers["RateLimit-Policy"] == '"gateway-anonymous";q=3;w=3600'
    assert read.headers["X-RateLimit-Remaining"] == "0"
    assert third_write.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert third_write.json()["code"] == "rate_limited"


@pytest.mark.django_db(transaction=True)
def test_the_data_plane_tiers_users_and_refuses_bad_tokens(
    client, gw, gateway, upstreams, tiers_on
):
    name = gateway([upstreams().url])
    make_user("ada")
    token = token_for(client, "ada")

    ok = gw.get(f"/services/{name}/x", headers={"Authorization": f"Bearer {token}"})
    bad = gw.get(f"/services/{name}/x", headers={"Authorization": "Bearer x.y.z"})

    assert ok.status_code == HTTPStatus.OK
    assert ok.headers["RateLimit-Policy"].startswith('"gateway-authenticated"')
    assert bad.status_code == HTTPStatus.UNAUTHORIZED
    assert bad.headers["WWW-Authenticate"].startswith("Bearer")
    assert bad.headers["RateLimit-Policy"].startswith('"gateway-anonymous"')


@pytest.mark.django_db(transaction=True)
def test_the_envelope_is_processing_and_needs_a_token(
    client, gw, gateway, upstreams, tiers_on
):
    name = gateway([upstreams().url])
    make_user("ada")
    auth = {"Authorization": f"Bearer {token_for(client, 'ada')}"}
    body = {"service_name": name, "endpoint": "/x"}

    calls = [gw.post("/gateway", json=body, headers=auth) for _ in range(3)]
    anonymous = gw.post("/gateway", json=body)

    assert statuses(calls) == [200, 200, 429]
    assert calls[0].headers["RateLimit-Policy"] == '"gateway-processing";q=2;w=3600'
    assert anonymous.status_code == HTTPStatus.UNAUTHORIZED


def test_tighter_prefers_exceeded_then_fewest_remaining():
    roomy = Limit("a", 10, 9, 100, 3600, exceeded=False)
    tight = Limit("b", 3, 1, 200, 3600, exceeded=False)
    over_soon = Limit("c", 3, 0, 10, 3600, exceeded=True)
    over_late = Limit("d", 3, 0, 3000, 3600, exceeded=True)

    assert tighter(roomy, tight) is tight
    assert tighter(tight, over_soon, roomy) is over_soon
    assert tighter(over_soon, over_late) is over_late
    assert tighter(None, roomy) is roomy
    assert tighter(None, None) is None


# --- Checks ------


@pytest.mark.parametrize("value", ["", "x", "10", "10/", "10/5x", "0/h", "10/0h", None])
def test_bad_rate_strings_are_errors(settings, value):
    settings.GATEWAY_RATE_PROCESSING = value

    assert [e.id for e in check_gateway_rates(None)] == ["gateway_site.E105"]


@pytest.mark.parametrize("value", ["100/h", "5/m", "10000/d", "3/10s"])
def test_good_rate_strings_pass(settings, value):
    settings.GATEWAY_RATE_ANONYMOUS = value
    settings.GATEWAY_LOGIN_RATE = value

    assert check_gateway_rates(None) == []


# --- Across gunicorn workers ------

CREATE_USER = (
    "from django.contrib.auth import get_user_model; "
    "get_user_model().objects.create_user('ada', password='{password}')"
)


def hammer(url: str, *, headers: dict, total: int, concurrency: int) -> Counter:
    with (
        httpx.Client(headers=headers, timeout=30) as client,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        return Counter(pool.map(lambda _: client.get(url).status_code, range(total)))


def run_tiers_across_workers(tmp_path, upstream, **env_overrides):
    services = tmp_path / "services.toml"
    services.write_text(services_toml("echo", [upstream.url]))
    env = project_env(
        DATA_DIR=str(tmp_path),
        RATELIMIT_ENABLE="true",
        GATEWAY_RATE_ANONYMOUS="25/h",
        GATEWAY_RATE_AUTHENTICATED="30/h",
        GATEWAY_SERVICES_FILE=str(services),
        # Counts of this run only, in Redis too.
        GATEWAY_STORE_PREFIX=f"gw-test-{uuid.uuid4().hex[:8]}:",
        **env_overrides,
    )
    manage("migrate", "--noinput", env=env)
    manage("shell", "-c", CREATE_USER.format(password=PASSWORD), env=env)

    with gunicorn(env, workers=2) as server:
        token = httpx.post(
            f"{server.base_url}/token",
            data={"username": "ada", "password": PASSWORD},
            timeout=30,
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        # Django's /users/me and the data plane's proxy count in one tier.
        anonymous = hammer(
            f"{server.base_url}/users/me", headers={}, total=30, concurrency=8
        ) + hammer(
            f"{server.base_url}/services/echo/x?cc=no-store",
            headers={},
            total=30,
            concurrency=8,
        )
        user = hammer(
            f"{server.base_url}/users/me", headers=bearer, total=30, concurrency=8
        ) + hammer(
            f"{server.base_url}/services/echo/x?cc=no-store",
            headers=bearer,
            total=30,
            concurrency=8,
        )
    return anonymous, user


@pytest.mark.live
def test_tiers_are_exact_across_gunicorn_workers(tmp_path, upstreams):
    anonymous, user = run_tiers_across_workers(tmp_path, upstreams())

    assert anonymous == {401: 25, 429: 35}
    assert user == {200: 30, 429: 30}


@pytest.mark.live
def test_tiers_are_exact_across_gunicorn_workers_with_redis(
    tmp_path, upstreams, redis_url
):
    anonymous, user = run_tiers_across_workers(
        tmp_path, upstreams(), REDIS_URL=redis_url
    )

    assert anonymous == {401: 25, 429: 35}
    assert user == {200: 30, 429: 30}
