"""The gateway reports its upstream calls, breakers and health in /metrics."""

import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import pytest

from tests.test_metrics import scrape, value

pytestmark = pytest.mark.django_db

BREAKER = {"failure_threshold": 2, "recovery_timeout": 60}


def test_upstream_calls_are_counted_by_outcome(client, gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.5, max_retries=0, circuit_breaker=BREAKER)

    assert gw.get(f"/services/{name}/ok?cc=no-store").status_code == HTTPStatus.OK
    up.fail(1, status=404)
    assert gw.get(f"/services/{name}/x").status_code == HTTPStatus.NOT_FOUND
    text = scrape(client)

    assert value(text, "upstream_requests_total", service=name, outcome="success") == 1
    assert (
        value(text, "upstream_requests_total", service=name, outcome="client_error")
        == 1
    )
    assert value(
        text, "upstream_request_duration_seconds_count", service=name
    ) == pytest.approx(2)
    assert value(text, "processing_queue_size") == 0  # nothing left in flight


def test_an_open_breaker_and_fast_failures_are_reported(client, gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.5, max_retries=0, circuit_breaker=BREAKER)

    for _ in range(BREAKER["failure_threshold"]):
        response = gw.get(f"/services/{name}/sleep?s=2")
        assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT
    refused = gw.get(f"/services/{name}/fast")
    text = scrape(client)

    assert refused.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert value(text, "upstream_requests_total", service=name, outcome="timeout") == 2
    assert (
        value(text, "upstream_requests_total", service=name, outcome="circuit_open")
        == 1
    )
    assert value(text, "circuit_breaker_state", service=name) == 2  # open


@pytest.mark.parametrize(("alive", "health"), [(True, 1), (False, 0)])
def test_service_health_is_reported(client, gateway, upstreams, alive, health):
    up = upstreams()
    if not alive:
        up.kill()
    name = gateway([up.url])  # probed as the data plane starts

    deadline = time.monotonic() + 5
    while f'service_health{{service="{name}"}}' not in scrape(client):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert value(scrape(client), "service_health", service=name) == health


def test_calls_in_flight_are_reported(client, gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=5.0)

    def in_flight() -> float:
        return value(scrape(client), "processing_queue_size")

    def wait_for(expected):
        deadline = time.monotonic() + 4
        while in_flight() != expected:
            assert time.monotonic() < deadline, f"never {expected}"
            time.sleep(0.05)

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(gw.get, f"/services/{name}/sleep?s=2.5")
        wait_for(1)  # reported within a second
        assert call.result().status_code == HTTPStatus.OK
    wait_for(0)
