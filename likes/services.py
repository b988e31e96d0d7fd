"""Writes to the like counters; the API, the admin and the commands all call these."""

import datetime
import fcntl
import hashlib
import hmac
import logging
import os
import secrets
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from likes import webhooks
from likes.conf import conf
from likes.metrics import likes_added, likes_duplicates, likes_removed
from likes.models import DEFAULT_SITE_ID, DedupeSalt, Like, Post, PostReaction
from likes.validators import canonical, clean_post_id

logger = logging.getLogger("likes.services")


class ServiceError(Exception):
    """A request refused as a whole, with a message for the user; nothing written."""


@dataclass(frozen=True, slots=True)
class LikeResult:
    post_id: str
    likes: int
    like_id: int | None
    # False when nothing changed: a repeat like, or an unlike already done.
    changed: bool = True


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


def writer_lock():
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return nullcontext()
    if connection.in_atomic_block:
        # An enclosing transaction (the admin's change view, a command) already
        # holds SQLite's write lock: BEGIN IMMEDIATE. Queueing now would take
        # the locks in the opposite order to the web workers and deadlock.
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
        "INSERT INTO "
        f"{table} (site_id, post_id, title, likes, imported, created_at, "
        "last_liked_at) VALUES (%s, %s, %s, 1, 0, %s, %s) "
        f"ON CONFLICT (site_id, post_id) DO UPDATE SET likes = {table}.likes + 1, "
        "last_liked_at = excluded.last_liked_at, "
        # A like without a title keeps the one the post has.
        f"title = COALESCE(NULLIF(excluded.title, ''), {table}.title) "
        "RETURNING id, likes, title"
    )


def _touch_post_sql() -> str:
    # A reaction's post: created if new, its title refreshed; its likes untouched.
    table = connection.ops.quote_name(Post._meta.db_table)
    return (
        "INSERT INTO "
        f"{table} (site_id, post_id, title, likes, imported, created_at, "
        "last_liked_at) VALUES (%s, %s, %s, 0, 0, %s, NULL) "
        "ON CONFLICT (site_id, post_id) DO UPDATE SET "
        f"title = COALESCE(NULLIF(excluded.title, ''), {table}.title) "
        "RETURNING id, likes, title"
    )


def _react_sql() -> str:
    # As a like's counter: one statement, no read-modify-write.
    table = connection.ops.quote_name(PostReaction._meta.db_table)
    return (
        f"INSERT INTO {table} (post_id, kind, count) VALUES (%s, %s, 1) "
        f"ON CONFLICT (post_id, kind) DO UPDATE SET count = {table}.count + 1 "
        "RETURNING count"
    )


def _insert_reaction_like_sql() -> str:
    table = connection.ops.quote_name(Like._meta.db_table)
    return (
        f"INSERT INTO {table} (post_id, created_at, visitor_hash, kind) "
        "VALUES (%s, %s, %s, %s) RETURNING id"
    )


def _seen_sql(n: int) -> str:
    table = connection.ops.quote_name(Like._meta.db_table)
    marks = ", ".join(["%s"] * n)
    return f"SELECT 1 FROM {table} WHERE visitor_hash IN ({marks}) LIMIT 1"


def like_add(
    *,
    post_id: str,
    visitor_hashes: list[str] | tuple = (),
    title: str = "",
    kind: str = "",
    site_id: int = DEFAULT_SITE_ID,
) -> LikeResult:
    """Record one like of ``post_id`` and return the count after it.

    ``visitor_hashes`` (from :func:`visitor_hashes`) makes a repeat like by the
    same visitor a no-op: the first one is stored, all are looked up. A counted
    like with a ``title`` (cleaned by ``validators.clean_title``) sets the post's.
    With ``kind`` (a configured reaction, likes/reactions.py) it is that
    reaction that is counted, the same way; the post's likes stay as they are.
    """
    now = timezone.now()
    db_now = connection.ops.adapt_datetimefield_value(now)
    try:
        with writer_lock(), transaction.atomic(), connection.cursor() as cursor:
            if visitor_hashes:
                cursor.execute(_seen_sql(len(visitor_hashes)), list(visitor_hashes))
                if cursor.fetchone():
                    likes_duplicates.inc()
                    return _unchanged(post_id, site_id)
            stored_hash = visitor_hashes[0] if visitor_hashes else ""
            if kind:
                cursor.execute(_touch_post_sql(), [site_id, post_id, title, db_now])
                pk, likes, _ = cursor.fetchone()
                cursor.execute(_react_sql(), [pk, kind])
                cursor.execute(
                    _insert_reaction_like_sql(), [pk, db_now, stored_hash, kind]
                )
                (like_id,) = cursor.fetchone()
            else:
                cursor.execute(
                    _increment_sql(), [site_id, post_id, title, db_now, db_now]
                )
                pk, likes, stored_title = cursor.fetchone()
                cursor.execute(_insert_like_sql(), [pk, db_now, stored_hash])
                (like_id,) = cursor.fetchone()
                # In the same transaction: the events exist exactly if the like does.
                webhooks.like_added(
                    post_pk=pk,
                    post_id=post_id,
                    title=stored_title,
                    likes=likes,
                    site_id=site_id,
                )
    except IntegrityError:
        # The same visitor's like committed first (PostgreSQL, concurrent
        # repeat): the unique hash rolled this one back, counter included.
        # Any other integrity error is a bug and must surface.
        if not visitor_hashes or not _seen(visitor_hashes):
            raise
        likes_duplicates.inc()
        return _unchanged(post_id, site_id)
    likes_added.inc()
    return LikeResult(post_id=post_id, likes=likes, like_id=like_id)


def _seen(visitor_hashes) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(_seen_sql(len(visitor_hashes)), list(visitor_hashes))
        return cursor.fetchone() is not None


def like_remove(
    *, post_id: str, like_id: int, site_id: int = DEFAULT_SITE_ID
) -> LikeResult:
    """Remove exactly the like ``like_id`` of ``post_id``; a no-op when gone."""
    with writer_lock(), transaction.atomic():
        like = Like.objects.filter(
            pk=like_id, post__post_id=post_id, post__site_id=site_id
        )
        kind = like.values_list("kind", flat=True).first()
        deleted, _ = like.delete()
        if deleted and kind:
            PostReaction.objects.filter(
                post__post_id=post_id, post__site_id=site_id, kind=kind, count__gt=0
            ).update(count=F("count") - 1)
        elif deleted:
            Post.objects.filter(site_id=site_id, post_id=post_id, likes__gt=0).update(
                likes=F("likes") - 1
            )
            webhooks.like_removed(post_id=post_id, site_id=site_id)
    if deleted:
        likes_removed.inc()
    return LikeResult(
        post_id=post_id,
        likes=Post.objects.count_for(post_id, site_id),
        like_id=like_id,
        changed=bool(deleted),
    )


def _unchanged(post_id: str, site_id: int = DEFAULT_SITE_ID) -> LikeResult:
    return LikeResult(
        post_id=post_id,
        likes=Post.objects.count_for(post_id, site_id),
        like_id=None,
        changed=False,
    )


# --- Dedupe without storing IPs ----------------------------------------------

_salt_cache: dict[datetime.date, str] = {}
_salt_lock = threading.Lock()


def _salt_for(day: datetime.date, *, create: bool) -> str | None:
    secret = _salt_cache.get(day)
    if secret is not None:
        return secret
    with _salt_lock:
        salt = DedupeSalt.objects.filter(day=day).first()
        if salt is None and create:
            try:
                with transaction.atomic():
                    salt = DedupeSalt.objects.create(
                        day=day, secret=secrets.token_hex(32)
                    )
            except IntegrityError:  # another worker created it first
                salt = DedupeSalt.objects.get(day=day)
        if salt is None:
            return None
        _salt_cache[day] = salt.secret
        return salt.secret


_last_purge = [0.0]
PURGE_EVERY_SECONDS = 3600


def _maybe_purge(now: datetime.datetime) -> None:
    # Opportunistic: each process purges at most hourly, so hashes outlive
    # their 48 h by an hour at most even without the likes_purge command.
    if now.timestamp() - _last_purge[0] >= PURGE_EVERY_SECONDS:
        _last_purge[0] = now.timestamp()
        purge_expired(now=now)


def salt_for(day: datetime.date) -> str | None:
    """The dedupe salt of ``day`` (made when first asked for today)."""
    return _salt_for(day, create=day == timezone.now().date())


def visitor_hashes(
    *, ip: str, user_agent: str, post_id: str, kind: str = ""
) -> list[str]:
    """Keyed hashes of (IP, User-Agent, post[, reaction]) under today's and
    yesterday's salt.

    The first is the one to store. Salts are random, rotate daily and are
    deleted after 48 h, after which no hash can be linked to a visitor again.
    """
    now = timezone.now()
    _maybe_purge(now)
    today = now.date()
    parts = (ip, user_agent, post_id, kind) if kind else (ip, user_agent, post_id)
    message = "\x1f".join(parts).encode()
    hashes = []
    for day, create in ((today, True), (today - datetime.timedelta(days=1), False)):
        secret = _salt_for(day, create=create)
        if secret is not None:
            digest = hmac.new(bytes.fromhex(secret), message, hashlib.sha256)
            hashes.append(digest.hexdigest())
    return hashes


@dataclass(frozen=True, slots=True)
class PurgeResult:
    salts_deleted: int
    hashes_cleared: int


def purge_expired(*, now: datetime.datetime | None = None) -> PurgeResult:
    """Delete salts and visitor hashes older than the retention window (48 h)."""
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(hours=conf.HASH_RETENTION_HOURS)
    # Yesterday's salt is still needed to recognise yesterday's likes.
    oldest_day_kept = now.date() - datetime.timedelta(days=1)
    salts_deleted, _ = DedupeSalt.objects.filter(day__lt=oldest_day_kept).delete()
    hashes_cleared = (
        Like.objects.filter(created_at__lt=cutoff)
        .exclude(visitor_hash="")
        .update(visitor_hash="")
    )
    for day in [d for d in _salt_cache if d < oldest_day_kept]:
        _salt_cache.pop(day, None)
    return PurgeResult(salts_deleted=salts_deleted, hashes_cleared=hashes_cleared)


# --- Corrections ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MergeResult:
    target: str
    likes: int
    merged: list[str]


def post_merge(
    *, sources: list[str], target: str, site_id: int = DEFAULT_SITE_ID
) -> MergeResult:
    """Fold the posts ``sources`` into ``target`` (a renamed URL), all of one site:
    counts, imported counts, reactions and like history move, the source posts go.
    ``target`` may be new."""
    sources = [s for s in dict.fromkeys(sources) if s != target]
    with writer_lock(), transaction.atomic():
        posts = list(
            Post.objects.select_for_update().filter(
                site_id=site_id, post_id__in=sources
            )
        )
        into, _ = Post.objects.get_or_create(site_id=site_id, post_id=target)
        if posts:
            Like.objects.filter(post__in=posts).update(post=into)
            _merge_reactions(posts, into)
            totals = Post.objects.filter(pk__in=[p.pk for p in posts]).aggregate(
                likes=Sum("likes"), imported=Sum("imported")
            )
            last = max(
                (p.last_liked_at for p in posts if p.last_liked_at), default=None
            )
            Post.objects.filter(pk=into.pk).update(
                likes=F("likes") + totals["likes"],
                imported=F("imported") + totals["imported"],
                created_at=min([into.created_at, *(p.created_at for p in posts)]),
            )
            if last and (into.last_liked_at is None or last > into.last_liked_at):
                Post.objects.filter(pk=into.pk).update(last_liked_at=last)
            Post.objects.filter(pk__in=[p.pk for p in posts]).delete()
        into.refresh_from_db()
    return MergeResult(
        target=target, likes=into.likes, merged=[p.post_id for p in posts]
    )


def _merge_reactions(posts, into) -> None:
    """Add the reaction counts of ``posts`` to ``into``'s."""
    moved = (
        PostReaction.objects.filter(post__in=posts)
        .values("kind")
        .annotate(total=Sum("count"))
    )
    for row in moved:
        found, created = PostReaction.objects.get_or_create(
            post=into, kind=row["kind"], defaults={"count": row["total"]}
        )
        if not created:
            PostReaction.objects.filter(pk=found.pk).update(
                count=F("count") + row["total"]
            )


@dataclass(frozen=True, slots=True)
class RenameResult:
    old: str
    new: str
    likes: int
    merged_into_existing: bool


def post_rename(*, old: str, new: str, site_id: int = DEFAULT_SITE_ID) -> RenameResult:
    """Move post ``old`` with its count and history to ``new`` (merged if it exists)."""
    old = canonical(old)
    new, error = clean_post_id(new)
    if error is not None:
        raise ServiceError(f"{new!r} is not a valid post id: {error}")
    if old == new:
        raise ServiceError("The old and the new post id are the same.")
    if not Post.objects.filter(site_id=site_id, post_id=old).exists():
        raise ServiceError(f"No post {old!r}.")
    existed = Post.objects.filter(site_id=site_id, post_id=new).exists()
    result = post_merge(sources=[old], target=new, site_id=site_id)
    if old not in result.merged:
        raise ServiceError(f"Post {old!r} was removed meanwhile; nothing moved.")
    return RenameResult(
        old=old, new=new, likes=result.likes, merged_into_existing=existed
    )


def post_set_count(*, post_id: str, likes: int, site_id: int = DEFAULT_SITE_ID) -> Post:
    """Correct a post's count by hand (the admin logs who did it)."""
    if likes < 0:
        raise ValueError("A count cannot be negative.")
    with writer_lock(), transaction.atomic():
        post = Post.objects.select_for_update().get(site_id=site_id, post_id=post_id)
        post.likes = likes
        post.imported = min(post.imported, likes)
        post.save(update_fields=["likes", "imported"])
    return post
