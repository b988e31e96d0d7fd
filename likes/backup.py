"""Online backup and restore of a SQLite database with SQLite's backup API.

The copy is one consistent snapshot taken in one step: with the database in
WAL mode, readers and writers carry on while it is made. PostgreSQL is backed
up with its own tools (``pg_dump -Fc`` / ``pg_restore``).
"""

import datetime
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS, connections

from likes.models import Post


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    posts: int
    likes: int


def backup_sqlite(*, destination: Path, using: str = DEFAULT_DB_ALIAS) -> BackupResult:
    """Copy the live database to ``destination`` (a file, or a directory for a
    timestamped file) atomically: a temporary file, checked, then renamed."""
    connection = _sqlite_connection(using)
    # "backups/" names a directory, even one that does not exist yet.
    if str(destination).endswith(os.sep):
        Path(destination).mkdir(parents=True, exist_ok=True)
    destination = Path(destination)
    if destination.is_dir():
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        destination = destination / f"likes-{stamp}.sqlite3"
    if not destination.parent.is_dir():
        raise BackupError(f"{destination.parent}: no such directory.")
    if _is_live_file(destination, connection):
        # Renaming over the live file would leave the workers writing to the
        # old, unlinked one: every like after the backup would be lost.
        raise BackupError(
            f"{destination} is the live database (or one of its files); "
            "back up to another path."
        )
    fd, temporary = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp"
    )
    os.close(fd)
    try:
        copy = sqlite3.connect(temporary)
        try:
            # pages=-1: the whole database in one step, one read snapshot.
            try:
                connection.connection.backup(copy, pages=-1)
            except sqlite3.Error as exc:
                raise BackupError(f"Cannot back up the database: {exc}.") from exc
            # A single self-contained file, whatever the live journal mode.
            copy.execute("PRAGMA journal_mode=DELETE")
            _check_integrity(copy, temporary)
            posts, likes = _totals(copy)
        finally:
            copy.close()
        _fsync(temporary)
        os.replace(temporary, destination)
        _fsync(destination.parent)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return BackupResult(path=destination, posts=posts, likes=likes)


def restore_sqlite(*, source: Path, using: str = DEFAULT_DB_ALIAS) -> BackupResult:
    """Replace the live database's content with a backup, in one transaction.

    Other connections (running workers) see the old database or the restored
    one, never a mix. Likes counted after the backup was taken are lost.
    """
    connection = _sqlite_connection(using)
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source}: no such file.")
    try:
        backup = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{source}: cannot open: {exc}.") from exc
    try:
        _check_integrity(backup, source)
        posts, likes = _totals(backup)
        _check_page_size(backup, connection.connection)
        try:
            backup.backup(connection.connection, pages=-1)
        except sqlite3.Error as exc:
            raise BackupError(f"Cannot restore {source}: {exc}.") from exc
    finally:
        backup.close()
    _check_integrity(connection.connection, connection.settings_dict["NAME"])
    return BackupResult(path=source, posts=posts, likes=likes)


def _is_live_file(path: Path, connection) -> bool:
    live = Path(connection.settings_dict["NAME"]).resolve()
    ends = ("", "-wal", "-shm", "-journal", ".write-lock", ".migrate-lock")
    return path.resolve() in {live.with_name(live.name + end) for end in ends}


def _sqlite_connection(using: str):
    connection = connections[using]
    if connection.vendor != "sqlite":
        raise BackupError(
            f"The database is {connection.display_name}, not SQLite: back it up "
            "with its own tools, e.g. `pg_dump -Fc` and `pg_restore` for "
            "PostgreSQL (README.md, Operations)."
        )
    connection.ensure_connection()
    if connection.in_atomic_block:
        raise BackupError("Cannot copy a database inside a transaction.")
    return connection


def _check_integrity(db: sqlite3.Connection, name) -> None:
    try:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{name}: not a readable SQLite database: {exc}.") from exc
    if rows != [("ok",)]:
        found = "; ".join(row[0] for row in rows[:5])
        raise BackupError(f"{name}: integrity check failed: {found}")


def _check_page_size(backup: sqlite3.Connection, live: sqlite3.Connection) -> None:
    # SQLite cannot change a WAL database's page size in place.
    (theirs,) = backup.execute("PRAGMA page_size").fetchone()
    (ours,) = live.execute("PRAGMA page_size").fetchone()
    (mode,) = live.execute("PRAGMA journal_mode").fetchone()
    if theirs != ours and mode == "wal":
        raise BackupError(
            f"The backup's page size ({theirs}) differs from the database's "
            f"({ours}): stop the service and copy the file over the database "
            "instead (README.md, Operations)."
        )


def _totals(db: sqlite3.Connection) -> tuple[int, int]:
    table = Post._meta.db_table
    try:
        posts, likes = db.execute(
            f'SELECT COUNT(*), COALESCE(SUM(likes), 0) FROM "{table}"'  # noqa: S608
        ).fetchone()
    except sqlite3.OperationalError as exc:
        raise BackupError(f"Not a database of this service: {exc}.") from exc
    return posts, likes


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
