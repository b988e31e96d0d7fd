"""/ready: the database, the cache, and the upstreams as last probed."""

import time
from http import HTTPStatus

import pytest

from tests.live import free_port

pytestmark = pytest.mark.django_db


def ready_when_probed(client, name) -> dict:
    """/ready once the data plane's first probe of ``name`` is recorded."""
    deadline = time.monotonic() + 5
    while True:
        data = client.get("/ready").json()
        if data["upstreams"].get(name, {}).get("status", "unknown") != "unknown":
            return data
        assert time.monotonic() < deadline, data
        time.sleep(0.05)


def test_ready_reports_database_cache_and_upstreams(client, gateway, upstreams):
    a, b = upstreams("a"), upstreams("b")
    b.server.healthy = False
    name = gateway([a.url, b.url])

    data = ready_when_probed(client, name)

    assert data["status"] == "ready"
    assert data["checks"] == {"database": "ok", "cache": "ok"}
    health = data["upstreams"][name]
    assert health.pop("checked_at") <= time.time()
    assert health == {
        "status": "degraded",
        "replicas": 2,
        "healthy": 1,
        "replica_status": [True, False],
        "breaker": "closed",
    }


def test_ready_probes_no_upstream_itself(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])  # an interval of 60 s: one round, at start
    ready_when_probed(client, name)
    probes = up.server.health_hits

    for _ in range(3):
        client.get("/ready")

    assert up.server.health_hits == probes == 1


def test_a_slow_health_endpoint_never_slows_ready(client, gateway, upstreams):
    up = upstreams()
    up.server.health_delay = 3
    name = gateway([up.url])

    started = time.monotonic()
    response = client.get("/ready")

    assert time.monotonic() - started < 0.5
    assert response.json()["upstreams"][name]["status"] == "unknown"


def test_a_down_upstream_does_not_make_the_gateway_unready(client, gateway, upstreams):
    up = upstreams()
    up.kill()
    name = gateway([up.url])

    data = ready_when_probed(client, name)

    assert client.get("/ready").status_code == HTTPStatus.OK
    assert data["upstreams"][name]["status"] == "down"


def test_a_broken_cache_makes_the_gateway_unready(client, gateway, upstreams, settings):
    gateway([upstreams().url])
    dead = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "IGNORE_EXCEPTIONS": True},
    }
    settings.CACHES = {"default": dead, "counters": dead}

    response = client.get("/ready")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["checks"] == {"database": "ok", "cache": "failed"}


def test_the_prober_stops_when_cancelled_even_if_a_library_swallowed_it(monkeypatch):
    import asyncio
    import contextlib
    from types import SimpleNamespace

    from gateway_site.gateway import prober

    async def swallowing_round(registry, interval):
        # What a client library may do with a cancellation.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)

    monkeypatch.setattr(prober, "probe_round", swallowing_round)
    registry = SimpleNamespace(config=SimpleNamespace(health_interval=60))

    async def cancel_and_wait():
        task = asyncio.create_task(prober.run(registry))
        await asyncio.sleep(0.05)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        return task in done and task.cancelled()

    assert asyncio.run(cancel_and_wait())
