"""Is the storage usable: DATA_DIR writable with room, the SQLite database sound.

Used at start (gateway_site/settings/base.py for DATA_DIR, system check
gateway_site.E031 for the database: gunicorn and manage.py refuse with one
clear line instead of a traceback) and by /ready (the database, cached).
"""

import contextlib
import errno
import os
import threading
import time
from pathlib import Path

from django.db import DatabaseError, connections

# A like needs a few kB; a start with less room than this would fail soon.
PROBE_BYTES = 1024 * 1024
QUICK_CHECK_EVERY = 300.0  # seconds between two quick checks in one process

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "it is on a read-only file system",
    errno.EACCES: "it is not writable by this user",
    errno.EPERM: "it is not writable by this user",
}


def data_dir_problem(path: Path) -> str | None:
    """Why DATA_DIR cannot hold the service's data, or None when it can."""
    path = Path(path)
    if not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"cannot be created: {_reason(exc)}"
    if not path.is_dir():
        return "is not a directory"
    probe = path / f".write-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, PROBE_BYTES)
        finally:
            os.close(fd)
    except OSError as exc:
        return _reason(exc)
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return None


def _reason(exc: OSError) -> str:
    who = f" (uid {os.geteuid()})" if exc.errno in (errno.EACCES, errno.EPERM) else ""
    return _REASONS.get(exc.errno, exc.strerror or str(exc)) + who


def sqlite_problem(alias: str = "default") -> str | None:
    """Why the SQLite database is unusable ("corrupt: …"), or None (not SQLite too)."""
    connection = connections[alias]
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA quick_check")
            rows = [row[0] for row in cursor.fetchall()]
    except DatabaseError as exc:
        return f"corrupt: {exc}"
    if rows != ["ok"]:
        return "corrupt: " + "; ".join(str(row) for row in rows[:3])
    return None


_checked: dict[str, tuple[float, str | None]] = {}
_lock = threading.Lock()


def sqlite_problem_cached(alias: str = "default") -> str | None:
    """:func:`sqlite_problem`, run at most every QUICK_CHECK_EVERY seconds."""
    now = time.monotonic()
    found = _checked.get(alias)
    if found is not None and now - found[0] < QUICK_CHECK_EVERY:
        return found[1]
    with _lock:
        found = _checked.get(alias)
        if found is None or now - found[0] >= QUICK_CHECK_EVERY:
            found = _checked[alias] = (now, sqlite_problem(alias))
    return found[1]
