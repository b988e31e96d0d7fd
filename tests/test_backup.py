"""likes_backup / likes_restore: online SQLite copies; pg_dump for PostgreSQL."""

import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from contextlib import closing
from io import StringIO
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from likes.models import Like, Post
from likes.services import like_add
from tests.conftest import need
from tests.live import gunicorn, manage, project_env

POST_ID = "backed-up"
# One client sends every like: dedupe and rate limits would refuse most.
COUNT_EVERY_LIKE = {"LIKES_DEDUPE": "off", "RATELIMIT_ENABLE": "false"}


@pytest.fixture
def on_sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite backups; this run's database is PostgreSQL")


def run(name, *args):
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def snapshot(path) -> dict:
    """Integrity, journal mode and totals of a database file."""
    with closing(sqlite3.connect(path)) as db:
        (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
        (stored,) = db.execute(
            "SELECT COALESCE(SUM(likes), 0) FROM likes_post"
        ).fetchone()
        (events,) = db.execute("SELECT COUNT(*) FROM likes_like").fetchone()
    return {"integrity": integrity, "mode": mode, "likes": stored, "events": events}


# --- In process ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_backup_copies_every_count_into_one_checked_file(tmp_path, on_sqlite):
    for post_id in ("a", "b", "b"):
        like_add(post_id=post_id)
    target = tmp_path / "copy.sqlite3"

    output = run("likes_backup", str(target))

    assert output.strip() == f"Backed up 2 posts (3 likes) to {target}."
    copy = snapshot(target)
    assert copy == {"integrity": "ok", "mode": "delete", "likes": 3, "events": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["copy.sqlite3"]  # no temp left
    assert target.stat().st_mode & 0o077 == 0  # readable by its owner only


@pytest.mark.django_db(transaction=True)
def test_backup_into_a_directory_gets_a_timestamped_name(tmp_path, on_sqlite):
    like_add(post_id="a")

    run("likes_backup", str(tmp_path))

    (copy,) = tmp_path.iterdir()
    assert copy.name.startswith("likes-") and copy.name.endswith("Z.sqlite3")
    assert snapshot(copy)["likes"] == 1


@pytest.mark.django_db(transaction=True)
def test_backup_to_a_path_ending_in_a_slash_creates_that_directory(tmp_path, on_sqlite):
    like_add(post_id="a")

    run("likes_backup", f"{tmp_path / 'backups'}/")

    (copy,) = (tmp_path / "backups").iterdir()
    assert copy.name.startswith("likes-") and copy.name.endswith("Z.sqlite3")
    assert snapshot(copy)["likes"] == 1


@pytest.mark.django_db(transaction=True)
def test_backup_replaces_an_older_backup_of_the_same_name(tmp_path, on_sqlite):
    target = tmp_path / "latest.sqlite3"
    like_add(post_id="a")
    run("likes_backup", str(target))
    like_add(post_id="b")

    run("likes_backup", str(target))

    assert snapshot(target)["likes"] == 2


@pytest.mark.django_db(transaction=True)
def test_backup_to_a_missing_directory_is_an_error(tmp_path, on_sqlite):
    with pytest.raises(CommandError, match="no such directory"):
        run("likes_backup", str(tmp_path / "missing" / "copy.sqlite3"))


@pytest.mark.parametrize("suffix", ["", "-wal"])
def test_backup_never_replaces_the_live_database(tmp_path, suffix):
    env = project_env(DATA_DIR=str(tmp_path))
    manage("migrate", "--noinput", env=env)
    live = tmp_path / "likes.sqlite3"
    target = live.with_name(live.name + suffix)
    inode = live.stat().st_ino

    result = manage("likes_backup", str(target), env=env, check=False)

    assert result.returncode != 0
    assert "live database" in result.stderr
    assert live.stat().st_ino == inode


@pytest.mark.django_db(transaction=True)
def test_restore_brings_back_the_backed_up_counts(tmp_path, on_sqlite):
    like_add(post_id="a")
    run("likes_backup", str(tmp_path / "copy.sqlite3"))
    like_add(post_id="a")
    like_add(post_id="c")

    output = run("likes_restore", str(tmp_path / "copy.sqlite3"), "--yes")

    assert "Restored 1 posts (1 likes)" in output
    assert dict(Post.objects.values_list("post_id", "likes")) == {"a": 1}
    assert Like.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_restore_needs_confirmation(tmp_path, on_sqlite):
    like_add(post_id="a")
    run("likes_backup", str(tmp_path / "copy.sqlite3"))
    like_add(post_id="a")

    with pytest.raises(CommandError, match="--yes"):
        run("likes_restore", str(tmp_path / "copy.sqlite3"))

    assert Post.objects.get(post_id="a").likes == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a database at all" * 100, "not a readable SQLite database"),
        (None, "Not a database of this service"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_file_that_is_not_a_backup(
    tmp_path, on_sqlite, content, message
):
    like_add(post_id="a")
    source = tmp_path / "other.sqlite3"
    if content is None:
        with closing(sqlite3.connect(source)) as db:
            db.execute("CREATE TABLE notes (x)")
    else:
        source.write_bytes(content)

    with pytest.raises(CommandError, match=message):
        run("likes_restore", str(source), "--yes")

    assert Post.objects.get(post_id="a").likes == 1


@pytest.mark.django_db(transaction=True)
def test_restore_of_a_missing_file_is_an_error(tmp_path, on_sqlite):
    with pytest.raises(CommandError, match="no such file"):
        run("likes_restore", str(tmp_path / "missing.sqlite3"), "--yes")


@pytest.mark.parametrize("command", ["likes_backup", "likes_restore"])
def test_postgresql_is_refused_with_a_pointer_to_pg_dump(tmp_path, command):
    env = project_env(
        DATA_DIR=str(tmp_path),
        DATABASE_URL="postgres://likes@127.0.0.1:1/likes",  # never connected to
    )
    args = [str(tmp_path / "x")] + (["--yes"] if command == "likes_restore" else [])

    result = manage(command, *args, env=env, check=False)

    assert result.returncode == 1
    assert "not SQLite" in result.stderr
    assert "pg_dump -Fc" in result.stderr


# --- Live: a real gunicorn keeps taking likes -------------------------------------


class Likers:
    """Threads that like a post until stopped (at most ``limit`` likes each)."""

    def __init__(self, url: str, threads: int = 4, limit: int = 2000):
        self.url, self.limit = url, limit
        self.outcomes: Counter = Counter()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self):
        local: Counter = Counter()
        with httpx.Client(timeout=30) as client:
            for _ in range(self.limit):
                if self.stop.is_set():
                    break
                try:
                    local[client.post(self.url).status_code] += 1
                except httpx.HTTPError as exc:
                    local[type(exc).__name__] += 1
        with self.lock:
            self.outcomes.update(local)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


@pytest.mark.live
def test_backup_and_restore_while_likes_keep_coming(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = project_env(DATA_DIR=str(data), **COUNT_EVERY_LIKE)
    manage("migrate", "--noinput", env=env)
    copy_path = tmp_path / "copy.sqlite3"

    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as server:
        url = f"{server.base_url}/likes/{POST_ID}"

        def count():
            return httpx.get(url).json()["likes"]

        def wait_for(likes):
            deadline = time.monotonic() + 60
            while count() < likes:
                assert time.monotonic() < deadline
                time.sleep(0.05)

        # Back up while likes keep coming.
        with Likers(url) as first:
            wait_for(100)
            before = count()
            backup = manage("likes_backup", str(copy_path), env=env)
            after = count()
            wait_for(after + 50)  # still accepting likes after the backup
        assert set(first.outcomes) == {200}, first.outcomes
        total = count()
        assert total == first.outcomes[200]

        copy = snapshot(copy_path)
        assert copy["integrity"] == "ok"
        assert before < after  # likes were counted while the backup ran
        assert before <= copy["likes"] <= after  # the counts at one moment
        assert copy["events"] == copy["likes"]  # never half a like
        assert f"({copy['likes']} likes)" in backup.stdout

        # Restore while likes keep coming: the workers see the restored data.
        with Likers(url) as second:
            wait_for(total + 20)
            manage("likes_restore", str(copy_path), "--yes", env=env)
            wait_for(copy["likes"] + 20)  # counting goes on from the copy
        assert set(second.outcomes) == {200}, second.outcomes
        restored = count()

    live = snapshot(data / "likes.sqlite3")
    assert live["integrity"] == "ok"
    assert live["likes"] == live["events"] == restored
    # Likes accepted before the restore are gone; those after it are counted.
    assert copy["likes"] + 20 <= restored < total + second.outcomes[200]


# --- PostgreSQL: pg_dump / pg_restore as documented --------------------------------


@pytest.mark.live
def test_pg_dump_and_pg_restore_round_trip(tmp_path, postgres_url):
    psycopg = pytest.importorskip("psycopg")
    pg_dump, pg_restore = shutil.which("pg_dump"), shutil.which("pg_restore")
    need(bool(pg_dump and pg_restore), "pg_dump / pg_restore are not installed")
    env = project_env(DATA_DIR=str(tmp_path), DATABASE_URL=postgres_url)
    manage("migrate", "--noinput", env=env)
    counts = tmp_path / "counts.csv"
    counts.write_text("post_id,likes\n" + "".join(f"p{n},{n}\n" for n in range(50)))
    manage("likes_import", str(counts), env=env)
    dump = tmp_path / "likes.dump"

    subprocess.run([pg_dump, "-Fc", "-f", dump, postgres_url], check=True)
    name = f"likes_restored_{uuid.uuid4().hex[:12]}"
    restored_url = urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            subprocess.run(
                [pg_restore, "--no-owner", "--exit-on-error", "-d", restored_url, dump],
                check=True,
            )
            original = manage("likes_export", env=env).stdout
            copy = manage(
                "likes_export", env={**env, "DATABASE_URL": restored_url}
            ).stdout
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    assert copy == original
    assert copy.count("\n") == 51


def test_restore_of_another_page_size_into_wal_explains_what_to_do(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path))
    manage("migrate", "--noinput", env=env)
    manage("likes_backup", str(tmp_path / "copy.sqlite3"), env=env)
    with closing(sqlite3.connect(tmp_path / "copy.sqlite3")) as copy:
        copy.execute("PRAGMA page_size=8192")
        copy.execute("VACUUM")

    result = manage(
        "likes_restore", str(tmp_path / "copy.sqlite3"), "--yes", env=env, check=False
    )

    assert result.returncode == 1
    assert "page size (8192) differs from the database's (4096)" in result.stderr
    assert snapshot(tmp_path / "likes.sqlite3")["integrity"] == "ok"
