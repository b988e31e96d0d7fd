from http import HTTPStatus

import pytest

from tests.live import free_port

pytestmark = pytest.mark.django_db


def health_probes(upstream) -> int:
    return sum(1 for r in upstream.received if r["path"] == "/health")


def test_ready_reports_database_cache_and_upstreams(client, gateway, upstreams):
    a, b = upstreams("a"), upstreams("b")
    name = gateway([a.url, b.url])
    b.server.healthy = False
    response = client.get("/ready")
    assert response.status_code == HTTPStatus.OK
    data = response.json()
    assert data["status"] == "ready"
    assert data["checks"] == {"database": "ok", "cache": "ok"}
    assert data["upstreams"][name] == {
        "status": "degraded",
        "replicas": 2,
        "healthy": 1,
        "breaker": "closed",
    }


def test_upstream_health_is_cached(client, gateway, upstreams):
    up = upstreams()
    gateway([up.url])
    client.get("/ready")
    client.get("/ready")
    assert health_probes(up) == 1


def test_a_down_upstream_does_not_make_the_gateway_unready(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    up.kill()
    response = client.get("/ready")
    assert response.status_code == HTTPStatus.OK
    assert response.json()["upstreams"][name]["status"] == "down"


def test_a_broken_cache_makes_the_gateway_unready(client, gateway, upstreams, settings):
    gateway([upstreams().url])
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "IGNORE_EXCEPTIONS": True},
        }
    }
    response = client.get("/ready")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["checks"] == {"database": "ok", "cache": "failed"}
