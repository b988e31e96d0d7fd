import time
import uuid
from http import HTTPStatus

import httpx
import pytest

from gateway_site.upstream import registry
from gateway_site.upstream.breaker import Breaker, BreakerOpen
from tests.gateway_fixtures import services_toml
from tests.live import gunicorn, project_env

BREAKER = {"failure_threshold": 3, "recovery_timeout": 1}


def open_the_breaker(client, name):
    for _ in range(BREAKER["failure_threshold"]):
        response = client.get(f"/services/{name}/sleep?s=2")
        assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT


def test_failures_open_the_breaker_and_calls_then_fail_fast(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.5, max_retries=0, circuit_breaker=BREAKER)
    open_the_breaker(client, name)
    calls = len(up.received)
    started = time.monotonic()
    response = client.get(f"/services/{name}/fast")
    elapsed = time.monotonic() - started
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "circuit_open"
    assert response.json()["service"] == name
    assert 1 <= int(response["Retry-After"]) <= BREAKER["recovery_timeout"]
    assert elapsed < 0.1  # the service timeout is 0.5 s
    assert len(up.received) == calls  # the service was not called


def test_after_recovery_one_probe_closes_the_breaker(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.5, max_retries=0, circuit_breaker=BREAKER)
    open_the_breaker(client, name)
    assert (
        client.get(f"/services/{name}/x").status_code == HTTPStatus.SERVICE_UNAVAILABLE
    )
    time.sleep(BREAKER["recovery_timeout"] + 0.1)
    assert client.get(f"/services/{name}/x").status_code == HTTPStatus.OK
    assert registry.get().upstreams[name].breaker.state() == "closed"
    assert client.get(f"/services/{name}/y").status_code == HTTPStatus.OK


def test_a_failed_probe_opens_the_breaker_again(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.5, max_retries=0, circuit_breaker=BREAKER)
    open_the_breaker(client, name)
    time.sleep(BREAKER["recovery_timeout"] + 0.1)
    assert client.get(f"/services/{name}/sleep?s=2").status_code == (
        HTTPStatus.GATEWAY_TIMEOUT
    )
    response = client.get(f"/services/{name}/fast")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE


def test_client_errors_do_not_count(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=0, circuit_breaker=BREAKER)
    for _ in range(BREAKER["failure_threshold"] * 2):
        assert client.get(f"/services/{name}/status/404").status_code == 404
    assert registry.get().upstreams[name].breaker.state() == "closed"


def test_half_open_lets_exactly_one_probe_through():
    breaker = Breaker(
        f"unit_{uuid.uuid4().hex[:8]}", threshold=1, recovery=0.2, probe_ttl=5
    )
    ticket = breaker.allow()
    breaker.failure(ticket)
    with pytest.raises(BreakerOpen):
        breaker.allow()
    time.sleep(0.3)
    probe = breaker.allow()
    assert probe.probe
    with pytest.raises(BreakerOpen) as second:
        breaker.allow()
    assert second.value.retry_after == 1
    breaker.success(probe)
    assert not breaker.allow().probe
    assert breaker.state() == "closed"


def test_a_success_resets_the_failure_count():
    breaker = Breaker(
        f"unit_{uuid.uuid4().hex[:8]}", threshold=2, recovery=5, probe_ttl=5
    )
    breaker.failure(breaker.allow())
    breaker.success(breaker.allow())
    breaker.failure(breaker.allow())
    assert breaker.state() == "closed"
    breaker.failure(breaker.allow())
    assert breaker.state() == "open"


@pytest.mark.live
@pytest.mark.parametrize("backend", ["diskcache", "redis"])
def test_a_second_gateway_process_sees_the_open_breaker(
    client, upstreams, settings, tmp_path, backend, request
):
    env = {}
    if backend == "redis":
        redis_url = request.getfixturevalue("redis_url")
        env["REDIS_URL"] = redis_url
        # The same backend and keys the deployed settings use.
        settings.CACHES = {
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": "gateway",
            }
        }
    else:
        settings.CACHES = {
            "default": {
                "BACKEND": "gateway_site.cache.DiskCache",
                "LOCATION": str(tmp_path / "data" / "cache"),
                "SHARDS": 4,
                "DATABASE_TIMEOUT": 0.25,
            }
        }
    up = upstreams()
    name = f"svc_{uuid.uuid4().hex[:10]}"
    path = tmp_path / "services.toml"
    path.write_text(
        services_toml(
            name,
            [up.url],
            timeout=0.5,
            max_retries=0,
            circuit_breaker={"failure_threshold": 2, "recovery_timeout": 60},
        )
    )
    settings.GATEWAY_SERVICES_FILE = path
    registry.reset()
    env.update(GATEWAY_SERVICES_FILE=str(path), DATA_DIR=str(tmp_path / "data"))
    with gunicorn(project_env(**env), workers=1) as server:
        # The other process works before the breaker opens...
        assert (
            httpx.get(f"{server.base_url}/services/{name}/x?cc=no-store").status_code
            == 200
        )
        for _ in range(2):
            assert client.get(f"/services/{name}/sleep?s=2").status_code == 504
        calls = len(up.received)
        started = time.monotonic()
        response = httpx.get(f"{server.base_url}/services/{name}/x?cc=no-store")
        assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        assert response.json()["code"] == "circuit_open"
        assert time.monotonic() - started < 0.5
        assert len(up.received) == calls
    registry.reset()
