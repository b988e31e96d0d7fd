"""Two gunicorn instances, two workers each, on one PostgreSQL and one Redis."""

import random
import threading
import uuid
from collections import Counter
from contextlib import ExitStack
from http import HTTPStatus

import httpx
import pytest

from tests.gateway_fixtures import Upstream, services_toml
from tests.live import fire, gunicorn, manage, project_env

pytestmark = pytest.mark.live

INSTANCES = 2
WORKERS = 2
POST_ID = "scaled-out"


@pytest.fixture
def scaled_out(tmp_path, postgres_url, redis_url):
    """Start INSTANCES gunicorns on one database and one Redis with extra env."""
    stack = ExitStack()

    def start(**overrides):
        envs = []
        for n in range(INSTANCES):
            # Each replica has a data directory of its own, as containers do:
            # PostgreSQL and Redis are all they share.
            data = tmp_path / f"instance-{n}"
            data.mkdir()
            envs.append(
                project_env(
                    DATA_DIR=str(data),
                    DATABASE_URL=postgres_url,
                    REDIS_URL=redis_url,
                    **overrides,
                )
            )
        manage("migrate", "--noinput", env=envs[0])
        return [
            stack.enter_context(
                gunicorn(env, workers=WORKERS, log_path=tmp_path / f"gunicorn-{n}.log")
            )
            for n, env in enumerate(envs)
        ]

    with stack:
        yield start


def fire_at_all(servers, path, *, each, concurrency, headers=None) -> list[Counter]:
    """Fire at every instance at the same time; one Counter per instance."""
    results = [Counter() for _ in servers]

    def run(n, server):
        results[n] = fire(
            "POST",
            f"{server.base_url}{path}",
            total=each,
            concurrency=concurrency,
            headers=headers,
        )

    threads = [
        threading.Thread(target=run, args=(n, server))
        for n, server in enumerate(servers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_likes_sent_to_both_instances_are_counted_exactly(scaled_out, postgres_url):
    psycopg = pytest.importorskip("psycopg")
    servers = scaled_out(LIKES_DEDUPE="off", RATELIMIT_ENABLE="false")

    outcomes = fire_at_all(servers, f"/likes/{POST_ID}", each=1000, concurrency=16)

    assert outcomes == [Counter({200: 1000})] * INSTANCES
    for server in servers:  # every instance reads the same count
        assert httpx.get(f"{server.base_url}/likes/{POST_ID}").json()["likes"] == 2000
    with psycopg.connect(postgres_url) as db:
        (stored,) = db.execute(
            "SELECT likes FROM likes_post WHERE post_id = %s", [POST_ID]
        ).fetchone()
        (events,) = db.execute("SELECT COUNT(*) FROM likes_like").fetchone()
    assert stored == events == 2000


def test_a_rate_limit_is_enforced_across_both_instances(scaled_out):
    limit = 30
    servers = scaled_out(
        LIKES_DEDUPE="off",
        RATELIMIT_ENABLE="true",
        LIKES_POST_RATE=f"{limit}/h",
        CLIENT_IP_HEADER="CF-Connecting-IP",
    )
    # A client of its own (an IPv6 /64 never used before) so counters left in
    # the shared Redis by earlier runs cannot interfere.
    client = f"2001:db8:{random.getrandbits(16):x}:{random.getrandbits(16):x}::1"

    outcomes = fire_at_all(
        servers,
        f"/likes/{POST_ID}",
        each=60,
        concurrency=8,
        headers={"CF-Connecting-IP": client},
    )

    total = sum(outcomes, Counter())
    assert total == {200: limit, 429: INSTANCES * 60 - limit}, outcomes
    assert all(sum(result.values()) == 60 for result in outcomes)  # all answered
    count = httpx.get(f"{servers[1].base_url}/likes/{POST_ID}").json()["likes"]
    assert count == limit


def test_a_breaker_opened_through_one_instance_is_open_in_the_other(
    scaled_out, tmp_path
):
    upstream = Upstream("scaled-out")
    name = f"svc_{uuid.uuid4().hex[:10]}"  # breaker keys of its own in Redis
    services = tmp_path / "services.toml"
    breaker = {"failure_threshold": 2, "recovery_timeout": 60}
    services.write_text(
        services_toml(name, [upstream.url], max_retries=0, circuit_breaker=breaker)
    )
    try:
        first, second = scaled_out(
            GATEWAY_SERVICES_FILE=str(services), RATELIMIT_ENABLE="false"
        )
        url = f"/services/{name}/x?cc=no-store"
        assert httpx.get(second.base_url + url).status_code == HTTPStatus.OK
        upstream.fail(breaker["failure_threshold"], status=503)

        failures = [
            httpx.get(first.base_url + url).status_code
            for _ in range(breaker["failure_threshold"])
        ]
        calls = len(upstream.received)
        refused = httpx.get(second.base_url + url)
    finally:
        upstream.kill()

    assert failures == [HTTPStatus.SERVICE_UNAVAILABLE] * breaker["failure_threshold"]
    assert refused.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert refused.json()["code"] == "circuit_open"
    assert int(refused.headers["Retry-After"]) > 0
    assert len(upstream.received) == calls  # the second instance never called it
