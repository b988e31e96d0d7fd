import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from rest_framework.test import APIClient

# Real upstream servers and a services file for the API gateway tests.
pytest_plugins = ["tests.gateway_fixtures"]

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") not in ("", "0", "false")
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# A database of its own, so tests never touch data of another Redis user.
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/14"


def need(available: bool, reason: str) -> None:
    """Skip when a service is missing; fail instead under REQUIRE_SERVICES=1 (CI)."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def fresh_counters():
    """Each test starts with no rate-limit or per-network counts of earlier ones."""
    from django.core.cache import caches

    from likes.sites import registry
    from likes.views import read_budget

    read_budget.forget()
    registry.forget()  # sites a rolled-back test made are gone

    counters = caches["counters"]
    if hasattr(counters, "delete_pattern"):  # Redis: this run's keys only
        counters.delete_pattern("*")
    else:
        counters.clear()


@pytest.fixture
def api_client():
    return APIClient()


def postgres_server_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return url
    return os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    server = postgres_server_url()
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        need(False, f"PostgreSQL is not reachable at {server}: {exc}")
    name = f"likes_live_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(server)
        yield urlunsplit(parts._replace(path=f"/{name}"))
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url():
    """A reachable Redis: REDIS_URL when set (the CI run), else a local one."""
    redis = pytest.importorskip("redis")
    url = os.environ.get("REDIS_URL") or LOCAL_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        need(False, f"Redis is not reachable at {url}: {exc}")
    return url
