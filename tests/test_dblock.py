"""migrate_locked: replicas starting at once apply migrations one at a time."""

import fcntl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway_site.dblock import MIGRATE_LOCK_KEY
from tests.live import BASE_DIR, project_env

pytestmark = pytest.mark.live

REPLICAS = 3


WAITING = "Another process is migrating; waiting for it."


def start_replicas(env, logs: Path) -> list[tuple[subprocess.Popen, Path]]:
    replicas = []
    for n in range(REPLICAS):
        log = logs / f"replica-{n}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, str(BASE_DIR / "manage.py"), "migrate_locked"]
                + ["--noinput"],
                env=env,
                cwd=BASE_DIR,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        replicas.append((proc, log))
    return replicas


def assert_all_wait_for_the_holder(replicas, tables_exist):
    """Each replica reaches the lock, finds it held and waits: nothing migrates."""
    deadline = time.monotonic() + 60
    while not all(WAITING in log.read_text() for _, log in replicas):
        assert time.monotonic() < deadline, [log.read_text() for _, log in replicas]
        assert all(proc.poll() is None for proc, _ in replicas)
        time.sleep(0.2)
    time.sleep(1)
    assert all(proc.poll() is None for proc, _ in replicas)
    assert tables_exist() is False


def assert_one_migrated_and_the_others_found_it_done(replicas):
    outputs = []
    for proc, log in replicas:
        assert proc.wait(timeout=120) == 0, log.read_text()
        outputs.append(log.read_text())
    applied = [out for out in outputs if "Applying likes.0001_initial" in out]
    assert len(applied) == 1, outputs
    assert sum("No migrations to apply" in out for out in outputs) == REPLICAS - 1


def test_replicas_take_turns_on_sqlite(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path))
    database = tmp_path / "likes.sqlite3"

    def tables_exist():
        import sqlite3

        if not database.exists():
            return False
        with sqlite3.connect(database) as db:
            return bool(
                db.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'django_migrations'"
                ).fetchone()
            )

    with open(f"{database}.migrate-lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another replica is migrating
        replicas = start_replicas(env, tmp_path)
        assert_all_wait_for_the_holder(replicas, tables_exist)

    assert_one_migrated_and_the_others_found_it_done(replicas)
    assert tables_exist()


def test_replicas_take_turns_on_postgresql(tmp_path, postgres_url):
    psycopg = pytest.importorskip("psycopg")
    env = project_env(DATA_DIR=str(tmp_path), DATABASE_URL=postgres_url)

    def tables_exist():
        with psycopg.connect(postgres_url) as db:
            return bool(
                db.execute("SELECT to_regclass('django_migrations')").fetchone()[0]
            )

    with psycopg.connect(postgres_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK_KEY])
        replicas = start_replicas(env, tmp_path)
        assert_all_wait_for_the_holder(replicas, tables_exist)

    assert_one_migrated_and_the_others_found_it_done(replicas)
    assert tables_exist()
