"""The gateway console at the HTTP boundary: live gunicorn, real upstreams.

The counts the console shows must be exact however many workers (and, with
Redis, instances) served the requests; the request flow must list a request's
tries in order; and only staff may read either.
"""

import re
import time
import uuid
from contextlib import ExitStack, closing
from http import HTTPStatus

import httpx
import pytest

from gateway_site.gateway import console
from tests.gateway_fixtures import Upstream, service_table, services_toml
from tests.live import fire, gunicorn, manage, project_env

PASSWORD = "a-long-console-password-42"
USERS = (
    "from django.contrib.auth import get_user_model; User = get_user_model(); "
    f"User.objects.create_user('staff', password='{PASSWORD}', is_staff=True); "
    f"User.objects.create_user('reader', password='{PASSWORD}')"
)
SESSION_OF_READER = (
    "from importlib import import_module; from django.conf import settings; "
    "from django.contrib import auth; "
    "user = auth.get_user_model().objects.get(username='reader'); "
    "session = import_module(settings.SESSION_ENGINE).SessionStore(); "
    "session[auth.SESSION_KEY] = str(user.pk); "
    "session[auth.BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'; "
    "session[auth.HASH_SESSION_KEY] = user.get_session_auth_hash(); "
    "session.create(); print(session.session_key)"
)
SENT = 60
INJECTED = 7
NO_BREAKER = {"failure_threshold": 1000, "recovery_timeout": 1}


def console_env(tmp, services, **overrides):
    return project_env(
        DATA_DIR=str(tmp),
        STATIC_ROOT=str(tmp / "static"),
        GATEWAY_SERVICES_FILE=str(services),
        SECURE_COOKIES="false",  # plain HTTP on loopback
        LIKES_GET_RATE="1000000/m",
        GATEWAY_RATE_ANONYMOUS="1000000/h",
        GATEWAY_RATE_AUTHENTICATED="1000000/h",
        GATEWAY_RATE_PROCESSING="1000000/h",
        **overrides,
    )


def prepare(env) -> None:
    """Migrate, collect the static files (the admin's pages need them), add users."""
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    manage("shell", "-c", USERS, env=env)


def log_in(base_url: str, username: str) -> httpx.Client:
    """An admin session of ``username`` (the login form, its CSRF token)."""
    client = httpx.Client(base_url=base_url, timeout=10)
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    response = client.post(
        "/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": token,
            "username": username,
            "password": PASSWORD,
            "next": "/admin/",
        },
    )
    assert response.status_code == HTTPStatus.FOUND, response.text[:300]
    return client


def service_stats(client: httpx.Client, name: str) -> dict:
    response = client.get("/admin/gateway/stats.json")
    assert response.status_code == HTTPStatus.OK, response.text[:300]
    return next(s for s in response.json()["services"] if s["name"] == name)


def lookup(client: httpx.Client, request_id: str, timeout: float = 5) -> httpx.Response:
    """The request-flow answer for ``request_id``, once its record has landed."""
    deadline = time.monotonic() + timeout
    while True:
        found = client.get("/admin/gateway/requests.json", params={"id": request_id})
        if found.status_code != HTTPStatus.OK or found.json()["requests"]:
            return found
        if time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def settled(client, name, *, requests: int, timeout: float = 10) -> dict:
    """The service's stats once its 15-minute count reaches ``requests``.

    Recording follows the answer, so the last few may land a moment later.
    """
    deadline = time.monotonic() + timeout
    while True:
        stats = service_stats(client, name)
        if stats["windows"]["15"]["requests"] >= requests:
            time.sleep(0.3)  # anything more would be an over-count
            return service_stats(client, name)
        if time.monotonic() > deadline:
            return stats
        time.sleep(0.1)


pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """gunicorn with 2 workers, a one-replica service and a two-replica one."""
    tmp = tmp_path_factory.mktemp("console")
    with ExitStack() as stack:
        counted, first, second = Upstream("counted"), Upstream("a"), Upstream("b")
        for upstream in (counted, first, second):
            stack.callback(upstream.kill)
        services = tmp / "services.toml"
        services.write_text(
            services_toml(
                "counted", [counted.url], max_retries=0, circuit_breaker=NO_BREAKER
            )
            + service_table(
                "pair",
                [first.url, second.url],
                max_retries=1,
                circuit_breaker=NO_BREAKER,
            )
        )
        env = console_env(tmp, services)
        prepare(env)
        server = stack.enter_context(gunicorn(env, workers=2))
        server.upstreams = {"counted": counted, "a": first, "b": second}
        server.env = env
        yield server


@pytest.fixture(scope="module")
def staff(site):
    with closing(log_in(site.base_url, "staff")) as client:
        yield client


@pytest.fixture(scope="module")
def reader(site):
    """A signed-in user who is not staff (the admin's login form refuses them)."""
    found = manage("shell", "-c", SESSION_OF_READER, env=site.env)
    client = httpx.Client(base_url=site.base_url, timeout=10)
    client.cookies.set("sessionid", found.stdout.split()[-1])
    with client:
        yield client


def test_counts_are_exact_across_two_workers(site, staff):
    site.upstreams["counted"].fail(INJECTED, 500)

    outcomes = fire(
        "GET",
        f"{site.base_url}/services/counted/items?cc=no-store",
        total=SENT,
        concurrency=6,
    )

    assert outcomes == {HTTPStatus.OK: SENT - INJECTED, 500: INJECTED}
    stats = settled(staff, "counted", requests=SENT)
    for minutes in ("1", "5", "15"):
        window = stats["windows"][minutes]
        assert window["requests"] == SENT
        assert window["errors"] == INJECTED
        assert window["cache_misses"] == SENT
        assert window["p95_ms"] is not None
    (replica,) = stats["replicas"]
    assert replica["windows"]["15"]["requests"] == SENT
    assert replica["windows"]["15"]["errors"] == INJECTED


def test_a_retried_request_lists_its_tries_in_order(site, staff):
    first, second = site.upstreams["a"], site.upstreams["b"]
    first.fail(1, 503)
    # Round robin: some request meets replica a first, fails there, moves on.
    for _ in range(10):
        request_id = uuid.uuid4().hex
        response = httpx.get(
            f"{site.base_url}/services/pair/things?secret=s3cr3t&cc=no-store",
            headers={"X-Request-ID": request_id},
        )
        if first.server.fail_next == 0:
            break
    assert first.server.fail_next == 0

    found = lookup(staff, request_id)

    assert found.status_code == HTTPStatus.OK
    (record,) = found.json()["requests"]
    assert record["request_id"] == request_id
    assert record["status"] == response.status_code
    assert [(a["replica"], a["outcome"], a["status"]) for a in record["attempts"]] == [
        (0, "server_error", 503),
        (1, "success", 200),
    ]
    assert record["attempts"][0]["at_ms"] <= record["attempts"][1]["at_ms"]
    assert record["service"] == "pair"
    assert record["breaker"] == "closed"
    assert record["cache"] == "MISS"
    # No query string, no token, the client's network only.
    assert record["path"] == "/services/pair/things"
    assert "s3cr3t" not in found.text
    assert record["network"] == "127.0.0.0/24"
    assert second.received[-1]["path"].endswith("secret=s3cr3t&cc=no-store")


def test_the_request_id_of_a_response_finds_its_request(site, staff):
    response = httpx.get(f"{site.base_url}/services/counted/lookup?cc=no-store")
    request_id = response.headers["X-Request-ID"]
    assert lookup(staff, request_id).json()["requests"]

    page = staff.get("/admin/gateway/requests/", params={"id": request_id})

    assert page.status_code == HTTPStatus.OK
    assert f'data-request-id="{request_id}"' in page.text
    assert page.text.count('class="gw-request"') == 1
    missing = staff.get("/admin/gateway/requests.json", params={"id": "nope-123"})
    assert missing.json() == {"requests": []}


def test_a_malformed_request_id_is_a_json_400(site, staff):
    response = staff.get("/admin/gateway/requests.json", params={"id": "<script>"})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid"
    page = staff.get("/admin/gateway/requests/", params={"id": "<script>x"})
    assert page.status_code == HTTPStatus.OK
    assert "<script>x" not in page.text
    assert "&lt;script&gt;x" in page.text


def test_the_dashboard_lists_every_service_and_replica(site, staff):
    page = staff.get("/admin/gateway/")

    assert page.status_code == HTTPStatus.OK
    assert re.search(r'src="/static/gateway/console\.\w+\.js"', page.text)
    stats = staff.get("/admin/gateway/stats.json").json()
    assert [s["name"] for s in stats["services"]] == ["counted", "pair"]
    pair = stats["services"][1]
    assert [r["address"] for r in pair["replicas"]] == [
        site.upstreams["a"].url.removeprefix("http://"),
        site.upstreams["b"].url.removeprefix("http://"),
    ]
    assert pair["breaker"] == {"state": "closed", "retry_in": None}
    assert {t["name"] for t in stats["tiers"]} == set(console.TIERS)


@pytest.mark.parametrize(
    "path", ["/admin/gateway/", "/admin/gateway/requests/"], ids=["console", "flow"]
)
def test_visitors_are_sent_to_the_login(site, path):
    response = httpx.get(f"{site.base_url}{path}")

    assert response.status_code == HTTPStatus.FOUND
    assert response.headers["Location"].startswith("/admin/login/")


@pytest.mark.parametrize(
    "path", ["/admin/gateway/stats.json", "/admin/gateway/requests.json"]
)
def test_visitors_get_a_json_403_from_the_data(site, path):
    response = httpx.get(f"{site.base_url}{path}")

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/gateway/",
        "/admin/gateway/requests/",
        "/admin/gateway/stats.json",
        "/admin/gateway/requests.json",
    ],
)
def test_users_who_are_not_staff_are_refused(site, reader, path):
    response = reader.get(path)

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "application/json" in response.headers["Content-Type"]
    assert "services" not in response.text


def test_the_stats_take_only_get(site, staff):
    response = staff.post("/admin/gateway/stats.json")

    # The admin's CSRF check comes first for a form-less POST.
    assert response.status_code in (HTTPStatus.FORBIDDEN, HTTPStatus.METHOD_NOT_ALLOWED)
    assert response.headers["Content-Type"].startswith("application/json")


def test_without_services_the_console_explains_how_to_add_one(tmp_path):
    # No services file and no <SERVICE>_URL: the example's services stay off.
    env = console_env(tmp_path, "")
    prepare(env)
    with (
        gunicorn(env, workers=1) as server,
        closing(log_in(server.base_url, "staff")) as client,
    ):
        page = client.get("/admin/gateway/")
        stats = client.get("/admin/gateway/stats.json").json()

    assert page.status_code == HTTPStatus.OK
    assert "No service configured" in page.text
    assert "GATEWAY_SERVICES_FILE" in page.text
    assert "&lt;SERVICE&gt;_URL" in page.text
    assert stats["services"] == []


# --- pure functions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "bucket"), [(0, 0), (10, 0), (10.1, 1), (250, 4), (5000, 8), (5001, 9)]
)
def test_latency_buckets_hold_their_upper_bound(ms, bucket):
    assert console.latency_bucket(ms) == bucket


def test_percentiles_are_the_bound_of_their_bucket():
    histogram = [0] * (len(console.LATENCY_MS) + 1)
    histogram[1], histogram[4], histogram[9] = 90, 9, 1  # ≤25, ≤250, >5000 ms

    assert console.percentile(histogram, 0.5) == 25
    assert console.percentile(histogram, 0.95) == 250
    assert console.percentile(histogram, 1.0) is None  # beyond the last bound
    assert console.percentile([0] * 10, 0.5) is None


def test_two_instances_on_one_redis_share_counts_and_flows(tmp_path, redis_url):
    counted = Upstream("counted")
    services = tmp_path / "services.toml"
    name = f"shared_{uuid.uuid4().hex[:8]}"
    services.write_text(
        services_toml(name, [counted.url], max_retries=0, circuit_breaker=NO_BREAKER)
    )
    envs = []
    for n in range(2):
        data = tmp_path / f"instance-{n}"
        data.mkdir()
        envs.append(console_env(data, services, REDIS_URL=redis_url))
    with ExitStack() as stack:
        stack.callback(counted.kill)
        for env in envs:
            prepare(env)
        servers = [stack.enter_context(gunicorn(env, workers=2)) for env in envs]
        for server in servers:
            fire(
                "GET",
                f"{server.base_url}/services/{name}/x?cc=no-store",
                total=SENT // 2,
                concurrency=4,
            )
        request_id = uuid.uuid4().hex
        httpx.get(
            f"{servers[0].base_url}/services/{name}/one?cc=no-store",
            headers={"X-Request-ID": request_id},
        )
        client = stack.enter_context(closing(log_in(servers[1].base_url, "staff")))
        stats = settled(client, name, requests=SENT + 1)
        (record,) = lookup(client, request_id).json()["requests"]

    assert stats["windows"]["15"]["requests"] == SENT + 1
    assert stats["windows"]["15"]["errors"] == 0
    # A request served by one instance is found through the other.
    assert record["service"] == name
    assert [a["outcome"] for a in record["attempts"]] == ["success"]


def test_the_in_flight_publisher_stops_when_cancelled_even_if_swallowed(monkeypatch):
    """As the prober: a client library that swallows the cancellation (seen with
    the Redis client) must not make the data plane's shutdown wait forever."""
    import asyncio
    import contextlib
    from types import SimpleNamespace

    from gateway_site.gateway import console

    async def swallowing_claim(store, pid, slot):
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(10)

    monkeypatch.setattr(console, "claim_slot", swallowing_claim)
    registry = SimpleNamespace(store=None, upstreams={})

    async def cancel_and_wait():
        task = asyncio.create_task(console.publish_in_flight(registry))
        await asyncio.sleep(0.05)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        return task in done and task.cancelled()

    assert asyncio.run(cancel_and_wait())


def test_a_worker_writes_its_records_together_and_exactly(tmp_path, monkeypatch):
    """Requests in a burst cost one write of summed counts; closing writes the
    rest; the ring finds each request again."""
    import asyncio
    from types import SimpleNamespace

    from gateway_site.gateway.store import EmbeddedStore

    store = EmbeddedStore(tmp_path, "t:")
    gateway = SimpleNamespace(store=store, upstreams={})
    writes = []
    real_apply = console.apply

    async def counting_apply(store, hits, *args):
        writes.append(sum(hits.values()))
        await real_apply(store, hits, *args)

    monkeypatch.setattr(console, "apply", counting_apply)

    async def burst():
        recorder = console.Recorder(SimpleNamespace(get=lambda: gateway))
        for n in range(300):
            trace = console.Trace(f"id-{n}", "GET", "/services/s/x", "127.0.0.0/24")
            trace.service = "s"
            recorder.record(trace, 500 if n % 10 == 0 else 200, 12.0)
            if n == 149:
                await asyncio.sleep(0)  # the first write goes out at once
        await recorder.close()

    asyncio.run(burst())

    assert len(writes) == 2  # 150 per write
    rows = console.read_counters(store, ["s:s"], time.time())["s:s"]
    assert sum(row.get("n", 0) for row in rows.values()) == 300
    assert sum(row.get("e", 0) for row in rows.values()) == 30
    assert sum(row.get("l1", 0) for row in rows.values()) == 300
    recent = console.recent(store)
    assert len(recent) == console.FLOW_SIZE
    assert recent[0]["request_id"] == "id-299"
    assert console.find(store, "id-150")["status"] == 500
    assert console.find(store, "id-99") is None  # left the ring


def test_a_replica_put_back_by_an_answer_is_shown_back(tmp_path):
    """Ejected by one request, answering another: the console's mark goes."""
    import asyncio
    from types import SimpleNamespace

    from gateway_site.gateway.store import EmbeddedStore

    ejected = ["http://a"]
    upstream = SimpleNamespace(
        service=SimpleNamespace(eject_time=300, urls=["http://a", "http://b"]),
        balancer=SimpleNamespace(ejected=lambda: list(ejected)),
    )
    gateway = SimpleNamespace(
        store=EmbeddedStore(tmp_path, "t:"), upstreams={"s": upstream}
    )
    key = console.ejected_key("s", 0)

    async def run():
        recorder = console.Recorder(SimpleNamespace(get=lambda: gateway))
        trace = console.Trace("one", "GET", "/services/s/x", None)
        trace.service = "s"
        trace.ejected.append(0)
        recorder.record(trace, 200, 5.0)
        await recorder.flush()
        marked = gateway.store.get_numbers([key])[0]
        ejected.clear()  # the balancer put it back after an answer
        trace = console.Trace("two", "GET", "/services/s/x", None)
        trace.service = "s"
        trace.readmitted.append(0)
        recorder.record(trace, 200, 5.0)
        await recorder.close()
        return marked

    marked = asyncio.run(run())

    assert marked is not None and marked > time.time() + 200
    assert gateway.store.get_numbers([key]) == [None]
