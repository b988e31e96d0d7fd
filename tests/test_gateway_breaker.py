import asyncio
import time
import uuid
from http import HTTPStatus

import httpx
import pytest

from gateway_site.gateway import registry, store
from gateway_site.gateway.breaker import Breaker, BreakerOpen
from tests.gateway_fixtures import services_toml
from tests.live import gunicorn, project_env

BREAKER = {"failure_threshold": 3, "recovery_timeout": 1}


def state(name) -> str:
    return registry.get().upstreams[name].breaker.state()["state"]


def open_the_breaker(gw, name):
    for _ in range(BREAKER["failure_threshold"]):
        response = gw.get(f"/services/{name}/sleep?s=2")
        assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT


def test_failures_open_the_breaker_and_calls_then_fail_fast(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.5, max_retries=0, circuit_breaker=BREAKER)
    open_the_breaker(gw, name)
    calls = len(up.received)
    started = time.monotonic()
    response = gw.get(f"/services/{name}/fast")
    elapsed = time.monotonic() - started
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "circuit_open"
    assert response.json()["service"] == name
    assert 1 <= int(response.headers["Retry-After"]) <= BREAKER["recovery_timeout"]
    assert elapsed < 0.1  # the service timeout is 0.5 s
    assert len(up.received) == calls  # the service was not called


def test_after_recovery_one_probe_closes_the_breaker(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.5, max_retries=0, circuit_breaker=BREAKER)
    open_the_breaker(gw, name)
    assert gw.get(f"/services/{name}/x").status_code == HTTPStatus.SERVICE_UNAVAILABLE
    time.sleep(BREAKER["recovery_timeout"] + 0.1)
    assert gw.get(f"/services/{name}/x").status_code == HTTPStatus.OK
    assert state(name) == "closed"
    assert gw.get(f"/services/{name}/y").status_code == HTTPStatus.OK


def test_a_failed_probe_opens_the_breaker_again(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.5, max_retries=0, circuit_breaker=BREAKER)
    open_the_breaker(gw, name)
    time.sleep(BREAKER["recovery_timeout"] + 0.1)
    assert gw.get(f"/services/{name}/sleep?s=2").status_code == (
        HTTPStatus.GATEWAY_TIMEOUT
    )
    response = gw.get(f"/services/{name}/fast")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE


def test_client_errors_do_not_count(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=0, circuit_breaker=BREAKER)
    for _ in range(BREAKER["failure_threshold"] * 2):
        assert gw.get(f"/services/{name}/status/404").status_code == 404
    assert state(name) == "closed"


def unit_breaker(**values) -> Breaker:
    return Breaker(f"unit_{uuid.uuid4().hex[:8]}", store=store.get(), **values)


def test_half_open_lets_exactly_one_probe_through():
    breaker = unit_breaker(threshold=1, recovery=0.2, probe_ttl=5)

    async def scenario():
        await breaker.failure(await breaker.allow())
        with pytest.raises(BreakerOpen):
            await breaker.allow()
        await asyncio.sleep(0.3)
        probe = await breaker.allow()
        assert probe.probe
        with pytest.raises(BreakerOpen) as second:
            await breaker.allow()
        assert second.value.retry_after == 1
        await breaker.success(probe)
        assert not (await breaker.allow()).probe

    asyncio.run(scenario())
    assert breaker.state() == {"state": "closed", "retry_in": None}


def test_a_success_resets_the_failure_count():
    breaker = unit_breaker(threshold=2, recovery=5, probe_ttl=5)

    async def fail_then_succeed():
        await breaker.failure(await breaker.allow())
        await breaker.success(await breaker.allow())
        await breaker.failure(await breaker.allow())

    asyncio.run(fail_then_succeed())
    assert breaker.state()["state"] == "closed"
    asyncio.run(breaker.failure(asyncio.run(breaker.allow())))
    assert breaker.state()["state"] == "open"
    assert 1 <= breaker.state()["retry_in"] <= 5


@pytest.mark.live
@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_a_second_gateway_process_sees_the_open_breaker(
    gw, dataplane, upstreams, settings, tmp_path, backend, request
):
    env = {"GATEWAY_STORE_PREFIX": settings.GATEWAY_STORE_PREFIX}
    if backend == "redis":
        settings.REDIS_URL = env["REDIS_URL"] = request.getfixturevalue("redis_url")
    else:
        settings.REDIS_URL = ""
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
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
    dataplane.restart()
    env.update(GATEWAY_SERVICES_FILE=str(path), DATA_DIR=str(settings.DATA_DIR))
    with gunicorn(project_env(**env), workers=1) as server:
        # The other process works before the breaker opens...
        assert (
            httpx.get(f"{server.base_url}/services/{name}/x?cc=no-store").status_code
            == 200
        )
        for _ in range(2):
            assert gw.get(f"/services/{name}/sleep?s=2").status_code == 504
        calls = len(up.received)
        started = time.monotonic()
        response = httpx.get(f"{server.base_url}/services/{name}/x?cc=no-store")
        assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        assert response.json()["code"] == "circuit_open"
        assert time.monotonic() - started < 0.5
        assert len(up.received) == calls
    registry.reset()
