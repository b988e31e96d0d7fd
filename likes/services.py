"""Writes to the like counters; the API, the admin and the commands all call these."""

import fcntl
import os
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from likes.models import Like, Post


@dataclass(frozen=True, slots=True)
class LikeResult:
    post_id: str
    likes: int
    like_id: int | None


class SQLiteWriterQueue:
    """Let SQLite writers wait in the kernel rather than in SQLite's busy handler.

    SQLite has one writer at a time; a writer that finds the database locked
    sleeps in steps of up to 100 ms, leaving it idle while others wait. Here
    threads queue on a lock and processes on ``flock`` of a file beside the
    database, so the next writer starts as soon as the previous one commits.
    The busy timeout stays as the fallback for writers outside this process
    group (a management command, a backup).
    """

    def __init__(self):
        self._thread_lock = threading.Lock()
        self._file = None
        self._pid = None

    def _lock_file(self):
        # A descriptor inherited across fork shares its flock with the parent,
        # so each process opens its own.
        if self._pid != os.getpid():
            path = f"{connection.settings_dict['NAME']}.write-lock"
            self._file = open(path, "a+b")  # noqa: SIM115  (kept for the process)
            self._pid = os.getpid()
        return self._file

    @contextmanager
    def __call__(self):
        with self._thread_lock:
            handle = self._lock_file()
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


_sqlite_writers = SQLiteWriterQueue()


def _writer_lock():
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return nullcontext()
    return _sqlite_writers()


def _insert_like_sql() -> str:
    table = connection.ops.quote_name(Like._meta.db_table)
    return (
        f"INSERT INTO {table} (post_id, created_at, visitor_hash) "
        "VALUES (%s, %s, %s) RETURNING id"
    )


def _increment_sql() -> str:
    # One statement creates the post or bumps its counter: no read-modify-write,
    # so concurrent likes can never overwrite each other. Both SQLite (>= 3.35)
    # and PostgreSQL support INSERT ... ON CONFLICT ... RETURNING.
    table = connection.ops.quote_name(Post._meta.db_table)
    return (
        f"INSERT INTO {table} (post_id, likes, created_at, last_liked_at) "
        "VALUES (%s, 1, %s, %s) "
        f"ON CONFLICT (post_id) DO UPDATE SET likes = {table}.likes + 1, "
        "last_liked_at = excluded.last_liked_at "
        "RETURNING id, likes"
    )


def like_add(*, post_id: str, visitor_hash: str = "") -> LikeResult:
    """Record one like of ``post_id`` and return the count after it."""
    now = timezone.now()
    db_now = connection.ops.adapt_datetimefield_value(now)
    with _writer_lock(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_increment_sql(), [post_id, db_now, db_now])
        pk, likes = cursor.fetchone()
        cursor.execute(_insert_like_sql(), [pk, db_now, visitor_hash])
        (like_id,) = cursor.fetchone()
    return LikeResult(post_id=post_id, likes=likes, like_id=like_id)
