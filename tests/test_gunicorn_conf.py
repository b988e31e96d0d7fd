"""gateway_site/gunicorn.conf.py as deployed: start-up refusal, graceful stop."""

import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from contextlib import closing

import httpx
import pytest

from tests.live import BASE_DIR, BIN, free_port, gunicorn, manage, project_env

pytestmark = pytest.mark.live

CONF = str(BASE_DIR / "gateway_site/gunicorn.conf.py")
LOCMEM_SETTINGS = """
from gateway_site.settings.base import *  # noqa: F403

_LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
CACHES = {"default": _LOCMEM, "counters": _LOCMEM}
"""


@pytest.fixture
def locmem_env(tmp_path):
    """Production settings but a cache local to each process."""
    (tmp_path / "locmem_settings.py").write_text(LOCMEM_SETTINGS)
    data = tmp_path / "data"
    data.mkdir()
    return project_env(
        DATA_DIR=str(data),
        PYTHONPATH=str(tmp_path),
        DJANGO_SETTINGS_MODULE="locmem_settings",
        API_GATEWAY_HOST="127.0.0.1",
        API_GATEWAY_PORT=str(free_port()),
    )


def run_gunicorn(env, *args):
    return subprocess.run(
        [str(BIN / "gunicorn"), "-c", CONF, *args],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("web_concurrency", "args"),
    [("2", []), ("4", []), ("1", ["--workers", "2"])],
    ids=["env-2", "env-4", "command-line-2"],
)
def test_gunicorn_refuses_a_per_process_cache_with_several_workers(
    locmem_env, web_concurrency, args
):
    result = run_gunicorn({**locmem_env, "WEB_CONCURRENCY": web_concurrency}, *args)

    assert result.returncode != 0
    assert "gateway_site.E002" in result.stderr
    assert "Refusing to start" in result.stderr


def test_gunicorn_starts_a_per_process_cache_with_one_worker(locmem_env):
    manage("migrate", "--noinput", env={**locmem_env, "WEB_CONCURRENCY": "1"})

    with gunicorn(locmem_env, workers=1) as server:
        response = httpx.get(f"{server.base_url}/health")

    assert response.status_code == 200


class Burst:
    """Threads posting likes until the server stops answering (bounded)."""

    def __init__(self, url: str, threads: int = 12, limit: int = 3000):
        self.url, self.limit = url, limit
        self.outcomes: Counter = Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self):
        local: Counter = Counter()
        refused_in_a_row = 0
        with httpx.Client(timeout=30) as client:
            for _ in range(self.limit):
                try:
                    local[client.post(self.url).status_code] += 1
                    refused_in_a_row = 0
                except httpx.HTTPError as exc:
                    local[type(exc).__name__] += 1
                    refused_in_a_row += isinstance(exc, httpx.ConnectError)
                    if refused_in_a_row == 5:  # the server is gone
                        break
        with self.lock:
            self.outcomes.update(local)

    def answered(self) -> int:
        with self.lock:
            return sum(v for k, v in self.outcomes.items() if isinstance(k, int))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        for thread in self.threads:
            thread.join()


def test_sigterm_during_a_burst_loses_no_accepted_like(tmp_path):
    env = project_env(
        DATA_DIR=str(tmp_path), LIKES_DEDUPE="off", RATELIMIT_ENABLE="false"
    )
    manage("migrate", "--noinput", env=env)
    url_path = "/likes/restarted"

    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as server:
        url = f"{server.base_url}{url_path}"
        with Burst(url) as burst:
            deadline = time.monotonic() + 60
            while httpx.get(url).json()["likes"] < 300:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            server.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            exit_code = server.wait(timeout=60)
            stopped_in = time.monotonic() - stopping

    outcomes = burst.outcomes
    with closing(sqlite3.connect(tmp_path / "likes.sqlite3")) as db:
        (stored,) = db.execute(
            "SELECT likes FROM likes_post WHERE post_id = 'restarted'"
        ).fetchone()
        (events,) = db.execute("SELECT COUNT(*) FROM likes_like").fetchone()
    server_errors = {
        k: v for k, v in outcomes.items() if isinstance(k, int) and k >= 500
    }
    print(f"outcomes {dict(outcomes)}; stopped in {stopped_in:.2f}s")

    assert exit_code == 0
    assert server_errors == {}
    assert {k for k in outcomes if isinstance(k, int)} == {200}
    assert stored == events == outcomes[200]  # every answered like, nothing else
    assert outcomes["ConnectError"] > 0  # the burst went on past the shutdown
    assert stopped_in < 30  # GUNICORN_GRACEFUL_TIMEOUT
