import time
from http import HTTPStatus

import pytest

from gateway_site.gateway import retry


def test_flaky_get_succeeds_through_retries(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=2)
    up.fail(2)
    response = gw.get(f"/services/{name}/thing?cc=no-store")
    assert response.status_code == HTTPStatus.OK
    assert response.json()["method"] == "GET"
    assert len(up.received) == 3


def test_flaky_post_without_idempotency_key_is_not_retried(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=2)
    up.fail(2)
    response = gw.post(f"/services/{name}/create", content=b"{}")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert len(up.received) == 1


def test_post_with_idempotency_key_is_retried(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=2)
    up.fail(2)
    response = gw.post(
        f"/services/{name}/create",
        content=b'{"n": 1}',
        headers={"Content-Type": "application/json", "Idempotency-Key": "k-1"},
    )
    assert response.status_code == HTTPStatus.OK
    assert [r["body"] for r in up.received] == [b'{"n": 1}'] * 3
    assert up.received[-1]["headers"]["Idempotency-Key"] == "k-1"


def test_retries_stop_at_max_retries(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=1)
    up.fail(5, status=502)
    response = gw.get(f"/services/{name}/thing")
    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert len(up.received) == 2


def test_4xx_is_not_retried(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=3)
    up.fail(1, status=400)
    response = gw.get(f"/services/{name}/thing")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert len(up.received) == 1


def test_retry_after_of_the_upstream_is_honoured(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=1, retry_delay=0.0)
    up.fail(1, status=503, retry_after=1)
    started = time.monotonic()
    response = gw.get(f"/services/{name}/thing")
    assert response.status_code == HTTPStatus.OK
    assert time.monotonic() - started >= 1.0


def test_retry_after_beyond_the_budget_returns_the_answer(
    gw, gateway, upstreams, monkeypatch
):
    monkeypatch.setenv("GUNICORN_TIMEOUT", "8")  # budget: 4 s
    up = upstreams()
    name = gateway([up.url], max_retries=3, timeout=1.0)
    up.fail(1, status=429, retry_after=60)
    started = time.monotonic()
    response = gw.get(f"/services/{name}/thing")
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.headers["Retry-After"] == "60"
    assert time.monotonic() - started < 1
    assert len(up.received) == 1


def test_total_time_stays_within_the_budget(gw, gateway, upstreams, monkeypatch):
    monkeypatch.setenv("GUNICORN_TIMEOUT", "4")  # budget: 2 s (half of 4)
    up = upstreams()
    name = gateway([up.url], max_retries=10, timeout=0.8, retry_delay=0.01)
    started = time.monotonic()
    response = gw.get(f"/services/{name}/sleep?s=3")
    elapsed = time.monotonic() - started
    assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT
    assert elapsed < 2.5


def test_budget_is_derived_from_gunicorn_timeout():
    assert retry.budget(95) == 90
    assert retry.budget(4) == 2


@pytest.mark.parametrize(
    ("attempt", "base", "ceiling"), [(0, 1.0, 1.0), (1, 1.0, 2.0), (3, 0.5, 4.0)]
)
def test_backoff_is_full_jitter_within_the_exponential_ceiling(attempt, base, ceiling):
    waits = [retry.backoff(attempt, base) for _ in range(200)]
    assert all(0 <= wait <= ceiling for wait in waits)
    assert max(waits) > ceiling / 2  # spread over the range, not a constant


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("", None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_parsing(value, expected):
    assert retry.retry_after(value) == expected
