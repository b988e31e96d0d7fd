"""Writes to the like counters; the API, the admin and the commands all call these."""

from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from likes.models import Like, Post


@dataclass(frozen=True, slots=True)
class LikeResult:
    post_id: str
    likes: int
    like_id: int | None


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
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_increment_sql(), [post_id, db_now, db_now])
            pk, likes = cursor.fetchone()
        like = Like.objects.create(
            post_id=pk, created_at=now, visitor_hash=visitor_hash
        )
    return LikeResult(post_id=post_id, likes=likes, like_id=like.pk)
