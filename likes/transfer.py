"""Import and export like counts: the likes_import and likes_export commands."""

import csv
import io
import json
import re
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from likes import reactions
from likes.models import DEFAULT_SITE_ID, Post, PostReaction
from likes.services import ServiceError
from likes.validators import canonical, clean_post_id

# A row as read: post id, count, and what is wrong with its shape (or None).
RawRow = tuple[object, object, str | None]

IMPORT_FORMATS = ("sqlite", "csv", "json")
EXPORT_FORMATS = ("csv", "json")
SQLITE_MAGIC = b"SQLite format 3\x00"
CSV_HEADER = ["post_id", "likes"]
# Report progress every this many rows, on files longer than that.
PROGRESS_EVERY = 10_000
# Rows per upsert statement: 5 parameters each stays under SQLite's old limit
# of 999 bound parameters.
BATCH_SIZE = 190
# The largest value a BigIntegerField holds.
MAX_COUNT = 2**63 - 1
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+", re.ASCII)


class TransferError(ServiceError):
    """An import or export refused as a whole; nothing was written."""


class InvalidRowsError(TransferError):
    """A strict import refused because some rows are invalid."""

    def __init__(self, errors: list["RowError"]):
        self.errors = errors
        super().__init__(
            f"{len(errors)} invalid row(s); strict import refused, nothing written."
        )


@dataclass(frozen=True, slots=True)
class RowError:
    # Rows count from 1 in file order: data rows after the CSV header, items of
    # the JSON list, rows of the SQLite table.
    number: int
    post_id: object
    reason: str

    def __str__(self) -> str:
        shown = f" ({self.post_id!r:.60})" if isinstance(self.post_id, str) else ""
        return f"row {self.number}{shown}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Change:
    post_id: str
    count: int  # the file's value: the post's imported part from now on
    before: int | None  # None: the post does not exist yet
    after: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    format: str
    rows: int
    created: int
    updated: int
    unchanged: int
    errors: list[RowError]
    changes: list[Change] = field(repr=False)
    dry_run: bool
    # Reaction counts a JSON file carried (``"reactions"``) and that were set.
    reactions: int = 0

    @property
    def imported(self) -> int:
        return self.created + self.updated

    @property
    def skipped(self) -> int:
        return len(self.errors)


# --- Import -----------------------------------------------------------------


def detect_format(path: Path) -> str:
    """Tell the format of ``path`` from its content: sqlite, json or csv."""
    with _open(path, "rb") as handle:
        if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
            return "sqlite"
    try:
        parsed = json.loads(_read_text(path))
    except (TransferError, ValueError):
        return "csv"
    # An object is a JSON file of the wrong shape, better reported as such
    # than as a CSV file without a header.
    return "json" if isinstance(parsed, list | dict) else "csv"


def import_counts(
    *,
    path: str | Path,
    format: str | None = None,
    dry_run: bool = False,
    strict: bool = False,
    progress: Callable[[int, int], None] | None = None,
    progress_every: int = PROGRESS_EVERY,
    site_id: int = DEFAULT_SITE_ID,
) -> ImportResult:
    """Import like counts from a file of the original service or likes_export."""
    path = Path(path)
    if format is None:
        format = detect_format(path)
    if format not in IMPORT_FORMATS:
        raise TransferError(f"Unknown format {format!r}; use one of {IMPORT_FORMATS}.")
    raw = list(_READERS[format](path))
    rows, errors = _validate(raw)
    reaction_rows = []
    if format == "json":
        reaction_rows, reaction_errors = _read_reactions(path, errors)
        errors = sorted(errors + reaction_errors, key=lambda e: e.number)
    if strict and errors:
        raise InvalidRowsError(errors)

    changes: list[Change] = []
    unchanged = 0
    done = 0
    # All rows in one transaction: an error anywhere leaves nothing written.
    with nullcontext() if dry_run else transaction.atomic():
        for start in range(0, len(rows), BATCH_SIZE):
            batch = rows[start : start + BATCH_SIZE]
            batch_changes = _plan(batch, site_id)
            unchanged += len(batch) - len(batch_changes)
            changes += batch_changes
            if not dry_run and batch_changes:
                _upsert(batch_changes, site_id)
            done = _report(progress, progress_every, done, batch[-1][0], len(raw))
        _report(progress, progress_every, done, len(raw), len(raw))
        if not dry_run:
            _set_reactions(reaction_rows, site_id)

    created = sum(1 for change in changes if change.before is None)
    return ImportResult(
        format=format,
        rows=len(raw),
        created=created,
        updated=len(changes) - created,
        unchanged=unchanged,
        errors=errors,
        changes=changes,
        dry_run=dry_run,
        reactions=len(reaction_rows),
    )


def _read_reactions(path: Path, errors: list[RowError]):
    """The ``"reactions"`` of a JSON file's items, as (post id, kind, count), for
    the items whose like count is imported; and the items whose reactions are not
    ``{"<reaction>": <count>, ...}``."""
    refused = {error.number for error in errors}
    found, problems = [], []
    for number, item in enumerate(json.loads(_read_text(path)), start=1):
        given = item.get("reactions")
        if number in refused or given is None:
            continue
        post_id = canonical(item["post_id"])
        if not isinstance(given, dict):
            reason = "reactions must be an object of counts."
            problems.append(RowError(number=number, post_id=post_id, reason=reason))
            continue
        mine = []
        for kind, count in given.items():
            kind = unicodedata.normalize("NFC", kind)
            value, reason = _parse_count(count)
            reason = reactions.name_error(kind) or (reason and f"{kind}: {reason}")
            if reason:  # the item's reactions are skipped, its likes imported
                problems.append(RowError(number=number, post_id=post_id, reason=reason))
                break
            mine.append((post_id, kind, value))
        else:
            found.extend(mine)
    return found, problems


def _set_reactions(rows, site_id: int) -> None:
    # A file's reaction count is kept unless the post has more here already
    # (reactions counted since): importing the same file twice changes nothing.
    table = connection.ops.quote_name(PostReaction._meta.db_table)
    posts = dict(
        Post.objects.filter(
            site_id=site_id, post_id__in={post_id for post_id, _, _ in rows}
        ).values_list("post_id", "pk")
    )
    with connection.cursor() as cursor:
        for post_id, kind, count in rows:
            cursor.execute(
                f"INSERT INTO {table} (post_id, kind, count) VALUES (%s, %s, %s) "
                f"ON CONFLICT (post_id, kind) DO UPDATE SET count = CASE WHEN "
                f"excluded.count > {table}.count THEN excluded.count "
                f"ELSE {table}.count END",
                [posts[post_id], kind, count],
            )


def _report(progress, every: int, done: int, now: int, total: int) -> int:
    # Called per batch; reports each multiple of ``every`` passed since ``done``.
    if progress is not None and every > 0 and total > every:
        for mark in range(done // every * every + every, now + 1, every):
            progress(mark, total)
    return now


def _plan(batch: list[tuple[int, str, int]], site_id: int) -> list[Change]:
    # A row's count replaces the post's imported part and moves its likes by
    # the difference: likes counted here since the last import are kept, and
    # the same file imported again changes nothing.
    known = {
        post_id: (likes, imported)
        for post_id, likes, imported in Post.objects.filter(
            site_id=site_id, post_id__in=[post_id for _, post_id, _ in batch]
        ).values_list("post_id", "likes", "imported")
    }
    changes = []
    for _, post_id, count in batch:
        if post_id not in known:
            changes.append(Change(post_id, count, before=None, after=count))
            continue
        likes, imported = known[post_id]
        if count != imported:
            after = max(likes + count - imported, 0)
            changes.append(Change(post_id, count, before=likes, after=after))
    return changes


def _upsert_sql(n: int) -> str:
    # One statement creates the post or moves its counter relative to the value
    # in the row, not to the one read by _plan: a like counted meanwhile (on
    # PostgreSQL) is kept, and a post first liked meanwhile is no conflict.
    table = connection.ops.quote_name(Post._meta.db_table)
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * n)
    kept = f"{table}.likes + excluded.imported - {table}.imported"
    return (
        f"INSERT INTO {table} (site_id, post_id, likes, imported, created_at) "
        f"VALUES {values} ON CONFLICT (site_id, post_id) DO UPDATE SET "
        f"likes = CASE WHEN {kept} > 0 THEN {kept} ELSE 0 END, "
        "imported = excluded.imported"
    )


def _upsert(changes: list[Change], site_id: int) -> None:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = []
    for change in changes:
        params += [site_id, change.post_id, change.count, change.count, now]
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(len(changes)), params)


def _validate(raw: list[RawRow]) -> tuple[list[tuple[int, str, int]], list[RowError]]:
    """Rows to import as (line, canonical post id, count), and the rows refused.

    Spellings of one id that differ only in Unicode normalisation (the original
    service kept them apart) are one post: their counts add up, on the line of
    the first. The same spelling twice is an error.
    """
    checked = []
    for number, (post_id, count, problem) in enumerate(raw, start=1):
        value, count_reason = _parse_count(count)
        reason = problem or _post_id_reason(post_id) or count_reason
        checked.append((number, post_id, value, reason))
    seen = Counter(post_id for _, post_id, _, reason in checked if reason is None)
    merged: dict[str, list] = {}
    errors = []
    for number, post_id, value, reason in checked:
        if reason is None and seen[post_id] > 1:
            reason = f"post_id appears {seen[post_id]} times in the file."
        if reason is None:
            row = merged.setdefault(canonical(post_id), [number, 0])
            row[1] += value
        else:
            errors.append(RowError(number=number, post_id=post_id, reason=reason))
    rows = [(number, post_id, value) for post_id, (number, value) in merged.items()]
    return sorted(rows), errors


def _post_id_reason(post_id: object) -> str | None:
    if post_id is None:
        return "post_id is missing."
    if not isinstance(post_id, str):
        return f"post_id must be text, not {post_id!r:.40}."
    return clean_post_id(post_id)[1]


def _parse_count(count: object) -> tuple[int, str | None]:
    if count is None or count == "":
        return 0, "the count is missing."
    if isinstance(count, str) and WHOLE_NUMBER.fullmatch(count.strip()):
        count = int(count.strip())
    if isinstance(count, bool) or not isinstance(count, int):
        return 0, f"the count is not a whole number: {count!r:.40}."
    if count < 0:
        return 0, f"the count must not be negative: {count}."
    if count > MAX_COUNT:
        return 0, f"the count is too large: {count}."
    return count, None


def _open(path: Path, mode: str):
    if not path.exists():
        raise TransferError(f"{path}: no such file.")
    if not path.is_file():
        raise TransferError(f"{path}: not a file.")
    try:
        return path.open(mode)
    except OSError as exc:
        raise TransferError(f"{path}: cannot be read: {exc.strerror}.") from exc


def _read_text(path: Path) -> str:
    with _open(path, "rb") as handle:
        data = handle.read()
    try:
        # utf-8-sig: spreadsheets often start their CSV with a byte-order mark.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TransferError(
            f"{path}: not a SQLite database and not UTF-8 text (CSV or JSON): "
            f"undecodable byte at offset {exc.start}."
        ) from exc


def _read_sqlite(path: Path) -> list[RawRow]:
    _open(path, "rb").close()  # the same errors as the other formats
    # Read-only: the original service's file is evidence, never to be changed.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as db:
            # Undecodable text becomes U+FFFD, which then fails id validation.
            db.text_factory = lambda data: data.decode("utf-8", errors="replace")
            _check_original_schema(db, path)
            rows = db.execute('SELECT "post_id", "count" FROM "likes"').fetchall()
    except sqlite3.DatabaseError as exc:
        raise TransferError(f"{path}: not a readable SQLite database: {exc}.") from exc
    return [(post_id, count, None) for post_id, count in rows]


def _check_original_schema(db: sqlite3.Connection, path: Path) -> None:
    # A damaged file can read without error yet miss rows: check it first.
    problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise TransferError(f"{path}: damaged SQLite database: {problems[0]}.")
    tables = db.execute(
        "SELECT name FROM sqlite_master "
        "WHERE type IN ('table', 'view') AND lower(name) = 'likes'"
    ).fetchall()
    if not tables:
        raise TransferError(
            f"{path}: no 'likes' table; expected the original service's "
            "likes(post_id TEXT PRIMARY KEY, count INTEGER)."
        )
    columns = {row[1].lower() for row in db.execute('PRAGMA table_info("likes")')}
    missing = [name for name in ("post_id", "count") if name not in columns]
    if missing:
        raise TransferError(
            f"{path}: the 'likes' table has no {' and no '.join(missing)} column; "
            f"found {', '.join(sorted(columns))}; expected likes(post_id, count)."
        )


def _read_csv(path: Path) -> list[RawRow]:
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise TransferError(f"{path}: empty file; expected a post_id,likes header.")
        if [name.strip() for name in header] != CSV_HEADER:
            raise TransferError(
                f"{path}: the first line must be the header post_id,likes "
                f"(as written by likes_export); found {','.join(header)[:80]!r}."
            )
        rows = []
        for fields in reader:
            if not fields:
                continue  # a blank line
            if len(fields) == len(CSV_HEADER):
                rows.append((fields[0], fields[1], None))
            else:
                problem = f"expected 2 fields (post_id,likes), found {len(fields)}."
                rows.append((fields[0], None, problem))
    except csv.Error as exc:
        message = f"{path}: not valid CSV, line {reader.line_num}: {exc}."
        raise TransferError(message) from exc
    return rows


def _read_json(path: Path) -> list[RawRow]:
    try:
        items = json.loads(_read_text(path))
    except ValueError as exc:
        raise TransferError(f"{path}: not valid JSON: {exc}.") from exc
    shape = 'a list of {"post_id": ..., "likes": ...} objects (as likes_export writes)'
    if not isinstance(items, list):
        raise TransferError(f"{path}: expected {shape}; found {type(items).__name__}.")
    rows = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not {"post_id", "likes"} <= item.keys():
            raise TransferError(
                f'{path}: item {number} is not an object with "post_id" and "likes"; '
                f"expected {shape}."
            )
        rows.append((item["post_id"], item["likes"], None))
    return rows


_READERS = {"sqlite": _read_sqlite, "csv": _read_csv, "json": _read_json}


def _reactions_by_post() -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = {}
    rows = PostReaction.objects.filter(count__gt=0).order_by("post", "kind")
    for post, kind, count in rows.values_list("post", "kind", "count").iterator():
        found.setdefault(post, {})[kind] = count
    return found


# --- Export -------------------------------------------------------------------


def export_counts(
    *, out: TextIO, format: str = "csv", posts: QuerySet[Post] | None = None
) -> int:
    """Write ``posts`` (default: the default site's), most liked first, to ``out``;
    return how many."""
    if format not in EXPORT_FORMATS:
        raise TransferError(f"Unknown format {format!r}; use one of {EXPORT_FORMATS}.")
    posts = Post.objects.filter(site_id=DEFAULT_SITE_ID) if posts is None else posts
    rows = posts.top().values_list("pk", "post_id", "likes").iterator(chunk_size=2000)
    written = 0
    if format == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        for _, post_id, likes in rows:
            writer.writerow((post_id, likes))
            written += 1
        return written
    # Streamed one item behind, so every write is a whole line (a command's
    # stdout ends each write with a newline) and a large export never sits in
    # memory whole.
    out.write("[\n")
    previous = None
    # Reaction counts go along in JSON (``"reactions"``, where a post has any).
    reacted = _reactions_by_post()
    for pk, post_id, likes in rows:
        if previous is not None:
            out.write(f"  {previous},\n")
        item = {"post_id": post_id, "likes": likes}
        if pk in reacted:
            item["reactions"] = reacted[pk]
        previous = json.dumps(item, ensure_ascii=False)
        written += 1
    if previous is not None:
        out.write(f"  {previous}\n")
    out.write("]\n")
    return written
