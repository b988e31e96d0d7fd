"""Locks that let several replicas of the service start at once safely."""

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections

# Any fixed 64-bit number, the same in every replica: the advisory lock's key.
MIGRATE_LOCK_KEY = 0x6C696B65735F6D67  # "likes_mg"


@contextmanager
def migration_lock(
    alias: str = DEFAULT_DB_ALIAS, *, on_wait: Callable[[], None] = lambda: None
) -> Iterator[None]:
    """Hold a lock that only one migrating process per database can hold.

    PostgreSQL: a session advisory lock on a connection of its own (released
    when that session ends, even if this process dies). SQLite: ``flock`` on a
    file beside the database. ``on_wait`` runs once if another process holds it.
    """
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with _advisory_lock(alias, on_wait):
            yield
    elif connection.vendor == "sqlite" and not connection.is_in_memory_db():
        with _file_lock(f"{connection.settings_dict['NAME']}.migrate-lock", on_wait):
            yield
    else:
        yield


@contextmanager
def _advisory_lock(alias: str, on_wait: Callable[[], None]) -> Iterator[None]:
    lock_connection = connections.create_connection(alias)
    try:
        with lock_connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATE_LOCK_KEY])
            if not cursor.fetchone()[0]:
                on_wait()
                cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK_KEY])
        yield
    finally:
        # Ending the session releases the lock.
        lock_connection.close()


@contextmanager
def _file_lock(path: str, on_wait: Callable[[], None]) -> Iterator[None]:
    with open(path, "a+b") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield  # closing the file releases the lock
