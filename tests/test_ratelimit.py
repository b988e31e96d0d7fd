from http import HTTPStatus

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import RequestFactory

from likes.ratelimit import client_ip
from tests.live import fire, gunicorn, manage, project_env

# Hour windows: a minute window could roll over in the middle of a test.
RATE = "3/h"


@pytest.fixture
def limits_on(settings):
    settings.RATELIMIT_ENABLE = True
    settings.LIKES_GET_RATE = RATE
    settings.LIKES_POST_RATE = RATE
    settings.LIKES_DEDUPE = False
    caches["counters"].clear()
    yield settings
    caches["counters"].clear()


def read(client, ip=None, **headers):
    extra = {"REMOTE_ADDR": ip} if ip else {}
    return client.get("/likes/p", headers=headers, **extra)


def test_client_ip_is_remote_addr_by_default(settings):
    settings.LIKES_CLIENT_IP_HEADER = ""
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.9", HTTP_CF_CONNECTING_IP="198.51.100.1"
    )

    assert client_ip(request) == "10.0.0.9"


def test_client_ip_comes_from_the_trusted_header_when_configured(settings):
    settings.LIKES_CLIENT_IP_HEADER = "CF-Connecting-IP"
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.9", HTTP_CF_CONNECTING_IP="2001:db8::7"
    )

    assert client_ip(request) == "2001:db8::7"


@pytest.mark.parametrize("bad", ["", "not-an-ip", "1.2.3.4, 5.6.7.8", "999.1.1.1"])
def test_malformed_client_ip_header_falls_back_and_logs(settings, caplog, bad):
    settings.LIKES_CLIENT_IP_HEADER = "CF-Connecting-IP"
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.9", HTTP_CF_CONNECTING_IP=bad
    )

    assert client_ip(request) == "10.0.0.9"
    assert "CF-Connecting-IP" in caplog.text
    if bad:
        assert bad not in caplog.text  # the log never repeats the value


@pytest.mark.django_db
def test_two_clients_behind_a_trusted_header_get_separate_buckets(client, limits_on):
    limits_on.LIKES_CLIENT_IP_HEADER = "CF-Connecting-IP"
    tunnel = "172.18.0.2"  # every request arrives from cloudflared

    for _ in range(3):
        assert read(client, tunnel, CF_Connecting_IP="198.51.100.1").status_code == 200
    assert read(client, tunnel, CF_Connecting_IP="198.51.100.1").status_code == 429
    assert read(client, tunnel, CF_Connecting_IP="198.51.100.2").status_code == 200


@pytest.mark.django_db
def test_spoofed_header_does_not_change_the_bucket_when_not_trusted(client, limits_on):
    limits_on.LIKES_CLIENT_IP_HEADER = ""

    for n in range(3):
        response = read(client, "203.0.113.5", CF_Connecting_IP=f"198.51.100.{n}")
        assert response.status_code == 200
    response = read(client, "203.0.113.5", CF_Connecting_IP="198.51.100.99")
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.django_db
def test_429_is_json_with_retry_after_and_rate_limit_headers(client, limits_on):
    for _ in range(3):
        client.post("/likes/p")

    response = client.post("/likes/p")

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 3600
    assert response["RateLimit-Policy"] == '"likes-write";q=3;w=3600'
    assert response["RateLimit"].startswith('"likes-write";r=0;t=')
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "0"
    assert int(response["X-RateLimit-Reset"]) > 0


@pytest.mark.django_db
def test_allowed_likes_carry_the_remaining_count_and_reads_do_not(client, limits_on):
    first, second = client.post("/likes/p"), client.post("/likes/p")

    assert first["X-RateLimit-Remaining"] == "2"
    assert second["X-RateLimit-Remaining"] == "1"
    assert "Retry-After" not in second
    # A read may be served by a shared cache to other clients: no per-client
    # numbers on it (they are on its 429).
    reads = [read(client) for _ in range(4)]
    assert [r.status_code for r in reads] == [200, 200, 200, 429]
    assert not any("RateLimit" in r or "X-RateLimit-Remaining" in r for r in reads[:3])
    assert reads[3]["X-RateLimit-Remaining"] == "0"


@pytest.mark.django_db
def test_reads_and_writes_are_limited_separately(client, limits_on):
    for _ in range(3):
        client.post("/likes/p")

    assert client.post("/likes/p").status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert read(client).status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_ratelimit_enable_false_switches_limits_off(client, limits_on):
    limits_on.RATELIMIT_ENABLE = False

    for _ in range(5):
        response = client.post("/likes/p")
        assert response.status_code == HTTPStatus.OK
    assert "X-RateLimit-Limit" not in response


_DEAD = {
    "BACKEND": "django_redis.cache.RedisCache",
    "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
    "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "IGNORE_EXCEPTIONS": True},
}
DEAD_REDIS = {"default": _DEAD, "counters": _DEAD}


@pytest.mark.django_db
def test_likes_fail_open_when_the_cache_is_down(client, limits_on):
    limits_on.CACHES = DEAD_REDIS

    response = client.post("/likes/p")

    assert response.status_code == HTTPStatus.OK
    assert response.json()["likes"] == 1


@pytest.mark.django_db
def test_admin_login_fails_closed_when_the_cache_is_down(client, limits_on):
    limits_on.CACHES = DEAD_REDIS

    response = client.post("/admin/login/", {"username": "a", "password": "b"})

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.django_db
def test_admin_login_is_rate_limited(client, limits_on):
    limits_on.ADMIN_LOGIN_RATE = "2/h"
    get_user_model().objects.create_user("author", password="right-password-123")
    attempts = [
        client.post("/admin/login/", {"username": "author", "password": "wrong"})
        for _ in range(3)
    ]

    assert [r.status_code for r in attempts] == [200, 200, 429]
    assert attempts[-1].json()["code"] == "rate_limited"
    assert client.get("/admin/login/").status_code == HTTPStatus.OK


@pytest.mark.live
def test_like_limits_are_exact_and_read_limits_bounded_across_gunicorn_workers(
    tmp_path,
):
    from likes.ratelimit import ReadBudget

    env = project_env(
        DATA_DIR=str(tmp_path),
        LIKES_GET_RATE="40/h",
        LIKES_POST_RATE="40/h",
        LIKES_DEDUPE="off",
        RATELIMIT_ENABLE="true",
    )
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=2) as server:
        likes = fire("POST", f"{server.base_url}/likes/p", total=120, concurrency=8)
        reads = fire("GET", f"{server.base_url}/likes/p", total=120, concurrency=8)
        # One more read per new connection: a worker that answered none of the
        # reads above (kept-alive connections may all land on the other) has
        # not learnt the shared count yet and may answer up to BATCH - 1 of
        # these from its own tally; past that it must refuse.
        more = [
            httpx.get(f"{server.base_url}/likes/p") for _ in range(2 * ReadBudget.BATCH)
        ]
        count = httpx.post(f"{server.base_url}/likes/q").headers

    # Likes: exactly the limit, whichever worker answered.
    assert likes == {200: 40, 429: 80}
    assert count["X-RateLimit-Remaining"] == "0"  # the same per-IP write limit
    # Reads are counted in batches per worker: at most BATCH - 1 extra reads
    # per worker, never fewer than the limit.
    assert 40 <= reads[200] <= 40 + (ReadBudget.BATCH - 1) * 2
    assert reads[200] + reads[429] == 120
    served = sum(r.status_code == HTTPStatus.OK for r in more)
    assert reads[200] + served <= 40 + (ReadBudget.BATCH - 1) * 2
    refused = [r for r in more if r.status_code == HTTPStatus.TOO_MANY_REQUESTS]
    assert len(refused) == len(more) - served
    assert len(refused) >= len(more) - (ReadBudget.BATCH - 1) * 2
    last = refused[-1]
    assert last.json()["code"] == "rate_limited"
    assert int(last.headers["Retry-After"]) >= 1
    assert last.headers["X-RateLimit-Remaining"] == "0"
    assert last.headers["Cache-Control"] == "no-store"


def shared_reads(budget, rate, ip="198.51.100.7"):
    from likes.ratelimit import parse_rate

    period = parse_rate(rate)[1]
    window = int(__import__("time").time() // period) * period
    return caches["counters"].get(
        f"likes-read-budget:{budget.policy}:{rate}:{window}:{ip}"
    )


def test_reads_reach_the_shared_count_in_batches_then_one_by_one(limits_on):
    from likes.ratelimit import ReadBudget

    budget = ReadBudget("test-read")
    request = RequestFactory().get("/likes/p", REMOTE_ADDR="198.51.100.7")
    rate = "100/h"

    for _ in range(ReadBudget.BATCH - 1):
        budget.check(request, rate)
    assert shared_reads(budget, rate) is None  # counted here only
    limit = budget.check(request, rate)
    assert shared_reads(budget, rate) == ReadBudget.BATCH
    assert limit.remaining == 100 - ReadBudget.BATCH

    # Other workers' reads are learned when this one adds its batch: at most
    # BATCH - 1 reads pass before it, then every read is added (past half).
    caches["counters"].incr(
        f"likes-read-budget:test-read:{rate}:"
        f"{int(__import__('time').time() // 3600) * 3600}:198.51.100.7",
        100 - ReadBudget.BATCH,
    )  # 92 reads from other workers: the shared count is at the limit
    passed = 0
    while not budget.check(request, rate).exceeded:
        passed += 1
    assert passed <= ReadBudget.BATCH - 1
    assert shared_reads(budget, rate) == 100 + passed + 1
    assert budget.check(request, rate).exceeded is True
    assert shared_reads(budget, rate) == 100 + passed + 2


def test_past_max_clients_new_clients_are_counted_exactly(limits_on, monkeypatch):
    from likes.ratelimit import ReadBudget

    monkeypatch.setattr(ReadBudget, "MAX_CLIENTS", 1)
    budget = ReadBudget("test-read")
    factory = RequestFactory()
    budget.check(factory.get("/", REMOTE_ADDR="198.51.100.1"), "100/h")

    budget.check(factory.get("/", REMOTE_ADDR="198.51.100.7"), "100/h")

    assert shared_reads(budget, "100/h", "198.51.100.1") is None
    assert shared_reads(budget, "100/h", "198.51.100.7") == 1


def test_reads_fail_open_when_the_cache_is_down(limits_on):
    from likes.ratelimit import ReadBudget

    limits_on.CACHES = DEAD_REDIS
    budget = ReadBudget("test-read")
    request = RequestFactory().get("/likes/p")

    # Near the limit every read goes to the cache, which cannot answer.
    assert budget.check(request, "1/h") is None
