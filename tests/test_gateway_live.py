"""The data plane at the HTTP boundary: gunicorn on loopback, as deployed.

Every method through the proxy with a bearer token, literal dot segments,
bulkheads, and the isolation the serving model exists for: slow upstream calls
and slow clients never stall the likes API. Scaled down for CI (the benchmark,
``make bench-gateway``, runs the full-size isolation run).
"""

import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from http import HTTPStatus

import httpx
import pytest

from tests.gateway_fixtures import Upstream, service_table, services_toml
from tests.live import gunicorn, manage, project_env

pytestmark = pytest.mark.live

PASSWORD = "correct-horse-battery-staple"
CREATE_USER = (
    "from django.contrib.auth import get_user_model; "
    f"get_user_model().objects.create_user('ada', password='{PASSWORD}')"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """gunicorn at make run's defaults (2 workers, 1 thread) with three services."""
    tmp = tmp_path_factory.mktemp("live-gateway")
    with ExitStack() as stack:
        echo, slow, small = Upstream("echo"), Upstream("slow"), Upstream("small")
        for upstream in (echo, slow, small):
            stack.callback(upstream.kill)
        services = tmp / "services.toml"
        services.write_text(
            services_toml("echo", [echo.url])
            + service_table("slow", [slow.url], timeout=30.0, max_retries=0)
            + service_table(
                "small", [small.url], timeout=30.0, max_retries=0, max_concurrent=2
            )
        )
        env = project_env(
            DATA_DIR=str(tmp),
            GATEWAY_SERVICES_FILE=str(services),
            # One load generator must not be refused by the per-IP limits.
            LIKES_GET_RATE="1000000/m",
            GATEWAY_RATE_ANONYMOUS="1000000/h",
            GATEWAY_RATE_AUTHENTICATED="1000000/h",
            GATEWAY_RATE_PROCESSING="1000000/h",
            GATEWAY_LOGIN_RATE="1000/m",
        )
        manage("migrate", "--noinput", env=env)
        manage("shell", "-c", CREATE_USER, env=env)
        server = stack.enter_context(gunicorn(env, workers=2))
        server.upstreams = {"echo": echo, "slow": slow, "small": small}
        yield server


@pytest.fixture(scope="module")
def bearer(site):
    response = httpx.post(
        f"{site.base_url}/token", data={"username": "ada", "password": PASSWORD}
    )
    assert response.status_code == HTTPStatus.OK
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def raw(site, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (no client-side normalisation); status and body."""
    port = int(site.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


# --- Methods, tokens, paths --------------------------------------------------


@pytest.mark.parametrize(
    "method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
)
def test_every_method_passes_the_proxy_with_a_bearer_token(site, bearer, method):
    echo = site.upstreams["echo"]

    response = httpx.request(
        method,
        f"{site.base_url}/services/echo/things/1?cc=no-store",
        headers={**bearer, "Content-Type": "application/json"},
        content=b'{"n": 1}' if method in ("POST", "PUT", "PATCH", "DELETE") else None,
    )

    assert response.status_code == HTTPStatus.OK, response.text
    assert "csrf" not in response.text.lower()
    seen = echo.received[-1]
    assert seen["method"] == method
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        assert seen["body"] == b'{"n": 1}'
    assert "authorization" in seen["header_names"]  # the service may read it


def test_the_envelope_takes_a_post_with_a_bearer_token(site, bearer):
    response = httpx.post(
        f"{site.base_url}/gateway",
        json={"service_name": "echo", "endpoint": "/x", "method": "PATCH"},
        headers=bearer,
    )

    assert response.status_code == HTTPStatus.OK
    assert response.json()["data"]["method"] == "PATCH"


def test_a_post_to_a_django_view_outside_the_admin_meets_no_csrf_check(site, bearer):
    response = httpx.post(f"{site.base_url}/users/me", headers=bearer)

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "path", [b"/services/echo/../admin/", b"/services/echo/a/./b", b"/services/../x"]
)
def test_literal_dot_segments_are_400_json(site, path):
    echo = site.upstreams["echo"]
    before = len(echo.received)

    status, body = raw(
        site,
        b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )

    assert status == HTTPStatus.BAD_REQUEST
    assert b'"bad_path"' in body or b'"code"' in body
    assert len(echo.received) == before


# --- Bulkheads -----------------------------------------------------------------


def test_over_its_max_concurrent_a_service_answers_503_at_once(site):
    small = site.upstreams["small"]

    def call(_):
        started = time.monotonic()
        response = httpx.get(
            f"{site.base_url}/services/small/sleep?s=2&cc=no-store", timeout=30
        )
        return response, time.monotonic() - started

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, range(6)))

    ok = [r for r, _ in results if r.status_code == HTTPStatus.OK]
    busy = [(r, t) for r, t in results if r.status_code != HTTPStatus.OK]
    # max_concurrent = 2 for the instance: one call per worker at a time.
    assert 1 <= len(ok) <= 2
    assert len(busy) >= 4
    for response, took in busy:
        assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        assert response.json()["code"] == "service_busy"
        assert response.headers["Retry-After"] == "1"
        assert took < 1.0  # refused at once, not queued
    assert len(small.received) == len(ok)


# --- Isolation: slow upstreams and slow clients ---------------------------------


class SlowClients:
    """Connections that send a request a byte a second and never finish it."""

    def __init__(self, site, count: int):
        port = int(site.base_url.rsplit(":", 1)[1])
        self.stop = threading.Event()
        self.sockets = []
        for n in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            if n % 2:  # headers that never end
                sock.sendall(b"GET /likes/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            else:  # a body that never arrives
                sock.sendall(
                    b"POST /likes/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Length: 1000\r\n\r\n"
                )
            self.sockets.append(sock)
        self.thread = threading.Thread(target=self.trickle, daemon=True)
        self.thread.start()

    def trickle(self):
        while not self.stop.wait(1):
            for sock in self.sockets:
                with suppress(OSError):
                    sock.sendall(b"X")

    def close(self):
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def test_slow_upstream_calls_and_slow_clients_never_stall_the_likes_api(site):
    slow = site.upstreams["slow"]
    slow_calls, seconds = 50, 5
    outcomes = []

    def slow_call(_):
        response = httpx.get(
            f"{site.base_url}/services/slow/sleep?s={seconds}&cc=no-store", timeout=60
        )
        outcomes.append(response.status_code)

    pool = ThreadPoolExecutor(slow_calls)
    futures = [pool.submit(slow_call, n) for n in range(slow_calls)]
    clients = SlowClients(site, 10)
    try:
        # Wait until the slow calls are all in flight at the service.
        deadline = time.monotonic() + 10
        while slow.server.hits < slow_calls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow.server.hits >= slow_calls
        latencies, statuses = [], []
        with httpx.Client(timeout=10) as reader:
            for _ in range(200):
                started = time.monotonic()
                response = reader.get(f"{site.base_url}/likes/isolated")
                latencies.append(time.monotonic() - started)
                statuses.append(response.status_code)
    finally:
        clients.close()
        for future in futures:
            future.result()
        pool.shutdown()

    assert statuses == [HTTPStatus.OK] * len(statuses)
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < 0.25, f"p99 {p99 * 1000:.0f} ms"
    assert outcomes == [HTTPStatus.OK] * slow_calls


def test_a_caller_cannot_poison_the_cache_for_plain_callers(site, bearer):
    url = f"{site.base_url}/services/echo/poison-{time.monotonic_ns()}"

    poisoned = httpx.get(url, headers={"X-Api-Version": "evil"})
    plain = httpx.get(url)
    again = httpx.get(url)
    signed_in = httpx.get(url, headers=bearer)

    assert poisoned.headers["X-Cache-Status"] == "BYPASS"
    assert plain.headers["X-Cache-Status"] == "MISS"
    assert again.headers["X-Cache-Status"] == "HIT"
    assert again.json()["hits"] == plain.json()["hits"] != poisoned.json()["hits"]
    # A request with credentials neither gets nor leaves a shared copy.
    assert signed_in.headers["X-Cache-Status"] == "BYPASS"
    assert signed_in.json()["hits"] > again.json()["hits"]
