"""Concurrent likes through a real gunicorn with two workers: none may be lost."""

import sqlite3

import httpx
import pytest

from tests.live import fire, gunicorn, manage, project_env

pytestmark = pytest.mark.live

TOTAL = 2000
IN_FLIGHT = 32
POST_ID = "hot-post"
# One client sends every like here: dedupe and rate limits would (rightly)
# refuse most of them. These tests are about the counter alone.
ATOMICITY_ONLY = {"LIKES_DEDUPE": "off", "RATELIMIT_ENABLE": "false"}


def assert_every_accepted_like_counted(server, outcomes):
    ok = outcomes[200]
    server_errors = {
        k: v for k, v in outcomes.items() if isinstance(k, int) and k >= 500
    }
    assert server_errors == {}, outcomes
    assert ok == TOTAL, outcomes  # nothing refused, nothing dropped on the floor
    counted = httpx.get(f"{server.base_url}/likes/{POST_ID}").json()["likes"]
    assert counted == ok
    return counted


def test_concurrent_posts_are_exact_on_sqlite(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), **ATOMICITY_ONLY)
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as server:
        outcomes = fire(
            "POST",
            f"{server.base_url}/likes/{POST_ID}",
            total=TOTAL,
            concurrency=IN_FLIGHT,
        )
        counted = assert_every_accepted_like_counted(server, outcomes)

    with sqlite3.connect(tmp_path / "likes.sqlite3") as db:
        (stored,) = db.execute(
            "SELECT likes FROM likes_post WHERE post_id = ?", [POST_ID]
        ).fetchone()
        (events,) = db.execute("SELECT COUNT(*) FROM likes_like").fetchone()
    assert stored == events == counted


def test_concurrent_posts_are_exact_on_postgresql(tmp_path, postgres_url):
    psycopg = pytest.importorskip("psycopg")
    env = project_env(
        DATA_DIR=str(tmp_path), DATABASE_URL=postgres_url, **ATOMICITY_ONLY
    )
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as server:
        outcomes = fire(
            "POST",
            f"{server.base_url}/likes/{POST_ID}",
            total=TOTAL,
            concurrency=IN_FLIGHT,
        )
        counted = assert_every_accepted_like_counted(server, outcomes)

    with psycopg.connect(postgres_url) as db:
        (stored,) = db.execute(
            "SELECT likes FROM likes_post WHERE post_id = %s", [POST_ID]
        ).fetchone()
        (events,) = db.execute("SELECT COUNT(*) FROM likes_like").fetchone()
    assert stored == events == counted


CORRECT_INSIDE_A_TRANSACTION = """
import django
django.setup()
from django.db import transaction
from likes import services
from likes.models import Post
Post.objects.create(post_id="p", likes=1)
with transaction.atomic():  # as the admin's change view runs
    services.post_set_count(post_id="p", likes=5)
print(Post.objects.get(post_id="p").likes)
"""


def test_a_write_inside_a_transaction_does_not_wait_for_the_writer_queue(tmp_path):
    """The enclosing transaction holds SQLite's lock already; queueing behind a
    worker that waits for that lock would deadlock."""
    import fcntl
    import subprocess
    import sys

    env = project_env(DATA_DIR=str(tmp_path))
    manage("migrate", "--noinput", env=env)
    with open(tmp_path / "likes.sqlite3.write-lock", "a+b") as queue:
        fcntl.flock(queue, fcntl.LOCK_EX)  # a web worker is writing
        result = subprocess.run(
            [sys.executable, "-c", CORRECT_INSIDE_A_TRANSACTION],
            env=env,
            capture_output=True,
            text=True,
            timeout=15,
        )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "5"
