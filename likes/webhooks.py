"""Webhooks: events written to an outbox with the change, sent afterwards.

A like (or an unlike) adds one ``Delivery`` row per webhook that wants its
event, in the same transaction as the count: the event exists exactly when the
change committed. Nothing is sent in the like's request. A sender
(``manage.py likes_deliver``, which gunicorn starts beside its workers by
default: a process of its own, at a lower CPU priority) claims due rows, POSTs
them to their webhook, up to ``PER_REQUEST`` events a request
(``{"events": [...]}``: one HTTP exchange costs the sender far more than an
event), and marks them delivered on a 2xx answer; otherwise it tries them again
later, with a growing wait, up to ``LIKES_WEBHOOK_MAX_ATTEMPTS`` times.

A claim is a lease written with a conditional UPDATE, so several senders
(instances, commands) never send one row at the same time; a row is marked
delivered once. A receiver that answered 2xx but whose answer was lost gets the
events again with the same ``id``: receivers dedupe on it.

Requests are signed with the gateway's scheme (gateway_site/gateway/signing.py:
``Content-Digest``, ``X-Gateway-Timestamp``, ``X-Gateway-Signature`` over the
method, target, timestamp, ``X-Request-ID`` and digest) with the webhook's
secret, derived from ``DJANGO_SECRET_KEY`` and never stored. Payloads carry
post ids, titles and counts: never an IP address or a User-Agent.
"""

import datetime
import functools
import http.client
import json
import logging
import os
import random
import threading
import time
import uuid
from urllib.parse import urlsplit

from django.db import close_old_connections, connection, transaction
from django.db.models import Count, F, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from django.utils.crypto import salted_hmac

from gateway_site.gateway import signing
from likes import sites
from likes.conf import conf
from likes.models import DEFAULT_SITE_ID, Delivery, Like, Post, Site, Webhook

logger = logging.getLogger("likes.webhooks")

USER_AGENT = "likes-webhooks/1"
DIGEST_POSTS = 20  # the most liked posts a daily digest lists
LEASE_SECONDS = 120  # how long a sender holds the rows it claimed
BATCH = 500  # rows a sender claims at once
PER_REQUEST = 100  # events one request carries at most
MAX_BODY = 256 * 1024  # and about this many bytes


def secret_for(webhook: Webhook) -> bytes:
    """The webhook's signing secret (the receiver is given its hex form)."""
    return salted_hmac(
        "likes.webhooks.secret", str(webhook.key), algorithm="sha256"
    ).digest()


# --- subscribers (read on every like: kept a few seconds per process) ----------

_subscribers: tuple[float, list[tuple[int, frozenset, frozenset]]] = (0.0, [])
_subscribers_lock = threading.Lock()
SUBSCRIBERS_TTL = 5  # a new or changed webhook is seen by every worker within


def subscribers() -> list[tuple[int, frozenset, frozenset, int | None]]:
    """(id, events, milestone counts, site id or None) of the active webhooks."""
    global _subscribers
    read_at, found = _subscribers
    if time.monotonic() - read_at < SUBSCRIBERS_TTL:
        return found
    with _subscribers_lock:
        found = [
            (
                hook.pk,
                frozenset(hook.events or ()),
                hook.milestone_counts(),
                hook.site_id,
            )
            for hook in Webhook.objects.filter(active=True)
        ]
        _subscribers = (time.monotonic(), found)
    return found


def forget_subscribers(**kwargs) -> None:
    global _subscribers
    _subscribers = (0.0, [])


post_save.connect(forget_subscribers, sender=Webhook)
post_delete.connect(forget_subscribers, sender=Webhook)


# --- writing events (inside the change's transaction) ---------------------------


# Event ids: random UUIDs (version 4) from a generator seeded per process (the
# system's random source costs a system call per id on the like's path).
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_event_id() -> uuid.UUID:
    return uuid.UUID(int=_ids.getrandbits(128), version=4)


def _payload(event: str, event_id, now, **data) -> str:
    body = {"id": str(event_id), "event": event, "created_at": now.isoformat()}
    body.update(data)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _row(hook_id: int, event: str, now, once: str = "", **data) -> Delivery:
    event_id = new_event_id()
    row = Delivery(
        webhook_id=hook_id, event=event, event_id=event_id, once=once, created_at=now
    )
    row.payload = _payload(event, event_id, now, **data)
    return row


_COLUMNS = (
    "webhook",
    "event",
    "event_id",
    "payload",
    "once",
    "created_at",
    "status",
    "attempts",
    "next_attempt_at",
    "claimed_by",
    "last_error",
)


@functools.cache
def _insert_sql(vendor: str) -> tuple[str, list]:
    """The statement for this database, and the fields it writes, in order."""
    quote = connection.ops.quote_name
    fields = [Delivery._meta.get_field(name) for name in _COLUMNS]
    return (
        f"INSERT INTO {quote(Delivery._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING"
    ), fields


def _insert(rows: list[Delivery]) -> None:
    """Add outbox rows with one plain statement each (the like's own cursor
    and transaction); a milestone already sent for that count is skipped."""
    if not rows:
        return
    sql, fields = _insert_sql(connection.vendor)
    with connection.cursor() as cursor:
        for row in rows:
            row.next_attempt_at = row.created_at
            cursor.execute(
                sql,
                [
                    field.get_db_prep_save(getattr(row, field.attname), connection)
                    for field in fields
                ],
            )


def _for_site(hooks, site_id: int):
    """The webhooks that take a site's events (theirs, or every site's)."""
    return [h for h in hooks if h[3] is None or h[3] == site_id]


def _site_slug(site_id: int) -> str:
    found = sites.registry.fresh().by_id.get(site_id)
    if found is not None:
        return found.slug
    # A site made in the last seconds, not yet in this process's list.
    return Site.objects.filter(pk=site_id).values_list("slug", flat=True).first() or ""


def like_added(
    *,
    post_pk: int,
    post_id: str,
    title: str,
    likes: int,
    site_id: int = DEFAULT_SITE_ID,
) -> None:
    """Queue ``like.created`` (and ``milestone.reached``) for a counted like."""
    hooks = _for_site(subscribers(), site_id)
    if not hooks:
        return
    now = timezone.now()
    post = {"id": post_id, "title": title, "likes": likes, "site": _site_slug(site_id)}
    rows = []
    for hook_id, events, counts, _ in hooks:
        if "like.created" in events:
            rows.append(_row(hook_id, "like.created", now, post=post))
        if "milestone.reached" in events and likes in counts:
            # Once per post and count: reached again after an unlike, skipped.
            rows.append(
                _row(
                    hook_id,
                    "milestone.reached",
                    now,
                    once=f"milestone:{hook_id}:{post_pk}:{likes}",
                    post=post,
                    milestone=likes,
                )
            )
    _insert(rows)


def like_removed(*, post_id: str, site_id: int = DEFAULT_SITE_ID) -> None:
    """Queue ``like.removed`` for a like just taken back."""
    hooks = [h for h in _for_site(subscribers(), site_id) if "like.removed" in h[1]]
    if not hooks:
        return
    now = timezone.now()
    title, likes = (
        Post.objects.filter(site_id=site_id, post_id=post_id)
        .values_list("title", "likes")
        .get()
    )
    post = {"id": post_id, "title": title, "likes": likes, "site": _site_slug(site_id)}
    _insert([_row(hook_id, "like.removed", now, post=post) for hook_id, *_ in hooks])


def queue_digests(now: datetime.datetime | None = None) -> int:
    """Queue yesterday's ``daily.digest`` (UTC) for the webhooks that want it;
    once per webhook and day, whoever asks first."""
    hooks = [h for h in subscribers() if "daily.digest" in h[1]]
    if not hooks:
        return 0
    now = now or timezone.now()
    day = (now - datetime.timedelta(days=1)).date()
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    day_likes = Like.objects.likes().filter(
        created_at__gte=start, created_at__lt=start + datetime.timedelta(days=1)
    )
    rows = []
    for hook_id, _, _, site_id in hooks:
        # A site's webhook gets that site's likes; an instance-wide one, all.
        likes = day_likes if site_id is None else day_likes.filter(post__site=site_id)
        top = (
            likes.values("post__post_id", "post__title")
            .annotate(n=Count("pk"))
            .order_by("-n", "post__post_id")[:DIGEST_POSTS]
        )
        data = {
            "day": day.isoformat(),
            "likes": likes.count(),
            "posts": [
                {"id": r["post__post_id"], "title": r["post__title"], "likes": r["n"]}
                for r in top
            ],
        }
        if site_id is not None:
            data["site"] = _site_slug(site_id)
        once = f"digest:{hook_id}:{day}"
        rows.append(_row(hook_id, "daily.digest", now, once=once, **data))
    return len(Delivery.objects.bulk_create(rows, ignore_conflicts=True))


# --- sending ----------------------------------------------------------------------


class Connections:
    """Kept-alive connections to receivers, one per scheme, host and port (a
    sender's own: not shared between threads)."""

    def __init__(self):
        self._open: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def _connection(self, parts, timeout: float) -> http.client.HTTPConnection:
        key = (parts.scheme, parts.netloc)
        found = self._open.get(key)
        if found is None:
            kind = (
                http.client.HTTPSConnection
                if parts.scheme == "https"
                else http.client.HTTPConnection
            )
            found = self._open[key] = kind(parts.hostname, parts.port, timeout=timeout)
        return found

    def drop(self, parts) -> None:
        found = self._open.pop((parts.scheme, parts.netloc), None)
        if found is not None:
            found.close()

    def close(self) -> None:
        for found in self._open.values():
            found.close()
        self._open.clear()

    def post(self, url: str, body: bytes, headers: dict) -> int:
        """The receiver's status; raises OSError (or HTTPException) when none."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        timeout = float(conf.WEBHOOK_TIMEOUT)
        for fresh in (False, True):
            connection = self._connection(parts, timeout)
            reused = connection.sock is not None
            try:
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                response.read(64 * 1024)  # what a receiver says is not kept
                if response.will_close:
                    self.drop(parts)
                return response.status
            except (OSError, http.client.HTTPException):
                self.drop(parts)
                # A kept-alive connection the receiver closed meanwhile: once more
                # on a new one (nothing was received on the old one).
                if fresh or not reused:
                    raise
        raise AssertionError("unreachable")


def request_of(webhook: Webhook, rows: list[Delivery]) -> tuple[bytes, dict]:
    """One POST carrying ``rows``' events: its body and signed headers."""
    body = b'{"events":[' + b",".join(r.payload.encode() for r in rows) + b"]}"
    parts = urlsplit(webhook.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request_id = new_event_id().hex
    headers = {
        "Host": parts.netloc,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Events": str(len(rows)),
        signing.REQUEST_ID_HEADER: request_id,
    }
    headers.update(
        signing.sign(
            secret_for(webhook),
            method="POST",
            target=target,
            request_id=request_id,
            body=body,
        )
    )
    return body, headers


def batches(rows: list[Delivery]):
    """The rows grouped per webhook, in order, at most PER_REQUEST events and
    about MAX_BODY bytes a request."""
    by_webhook: dict[int, list[Delivery]] = {}
    for row in rows:
        by_webhook.setdefault(row.webhook_id, []).append(row)
    for group in by_webhook.values():
        batch, size = [], 0
        for row in group:
            if batch and (
                len(batch) >= PER_REQUEST or size + len(row.payload) > MAX_BODY
            ):
                yield batch
                batch, size = [], 0
            batch.append(row)
            size += len(row.payload)
        if batch:
            yield batch


def backoff(attempts: int) -> float:
    """Seconds before try ``attempts + 1``: doubling from the base, capped at an
    hour, with jitter so that failed rows do not come back together."""
    base = float(conf.WEBHOOK_RETRY_SECONDS)
    return min(base * 2 ** (attempts - 1), 3600) * random.uniform(0.8, 1.2)


def _claimable(now) -> Q:
    """Due and held by nobody: conditions on the row alone, so that the
    claiming UPDATE checks them again on each row it takes (PostgreSQL
    re-reads a row another sender just updated; a join would not be)."""
    return Q(status=Delivery.PENDING, next_attempt_at__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


def claim(now: datetime.datetime, limit: int = BATCH) -> list[Delivery]:
    """Due rows this sender now holds: one UPDATE marks them with this claim,
    which no other sender can also win (each row is either still claimable or
    not when the database applies it)."""
    lease = now + datetime.timedelta(seconds=LEASE_SECONDS)
    token = uuid.uuid4().hex
    # A paused webhook's rows wait for it.
    due = Delivery.objects.filter(_claimable(now), webhook__active=True)
    pks = list(
        due.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit]
    )
    if not pks:
        return []
    with writing():
        Delivery.objects.filter(_claimable(now), pk__in=pks).update(
            claimed_until=lease, claimed_by=token
        )
    return list(
        Delivery.objects.filter(claimed_by=token, claimed_until=lease)
        .select_related("webhook")
        .order_by("next_attempt_at", "pk")
    )


def send(rows: list[Delivery], connections: Connections) -> int:
    """Send claimed rows, a request per webhook and batch, and record each
    outcome; how many were delivered.

    Rows still unsent when the lease nears its end (a slow receiver), or
    behind a failure of their webhook this round, are let go untouched.
    """
    if not rows:
        return 0
    must_end = time.monotonic() + LEASE_SECONDS - float(conf.WEBHOOK_TIMEOUT) - 5
    delivered: dict[int, list[int]] = {}  # status -> pks
    failures: list[tuple[list[Delivery], int | None, str]] = []
    failing: set[int] = set()  # webhooks that failed this round
    let_go = []
    for batch in batches(rows):
        webhook = batch[0].webhook
        if webhook.pk in failing or time.monotonic() > must_end:
            let_go.extend(row.pk for row in batch)
            continue
        body, headers = request_of(webhook, batch)
        try:
            status = connections.post(webhook.url, body, headers)
            error = "" if 200 <= status < 300 else f"HTTP {status}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"[:200]
        if error:
            failing.add(webhook.pk)
            failures.append((batch, status, error))
        else:
            delivered.setdefault(status, []).extend(row.pk for row in batch)
    with writing():
        _record(rows[0].claimed_by, timezone.now(), delivered, failures, let_go)
    return sum(len(pks) for pks in delivered.values())


def _record(token: str, now, delivered, failures, let_go: list[int]) -> None:
    mine = Delivery.objects.filter(claimed_by=token)
    released = {"claimed_until": None, "claimed_by": ""}
    for status, pks in delivered.items():
        mine.filter(pk__in=pks).update(
            status=Delivery.DELIVERED,
            delivered_at=now,
            attempts=F("attempts") + 1,
            last_status=status,
            last_error="",
            **released,
        )
    for batch, status, error in failures:
        for row in batch:
            attempt = row.attempts + 1
            fields = {"attempts": attempt, "last_status": status, "last_error": error}
            if attempt >= conf.WEBHOOK_MAX_ATTEMPTS:
                fields["status"] = Delivery.FAILED
                logger.warning(
                    "Webhook %s gave up on event %s after %d tries: %s",
                    row.webhook_id,
                    row.event_id,
                    attempt,
                    error,
                )
            else:
                fields["next_attempt_at"] = now + datetime.timedelta(
                    seconds=backoff(attempt)
                )
            mine.filter(pk=row.pk).update(**fields, **released)
    if let_go:
        mine.filter(pk__in=let_go).update(**released)


def writing():
    """The database's writer queue (SQLite: the one the likes wait in)."""
    from likes.services import writer_lock

    return writer_lock()


def deliver_due(connections: Connections | None = None) -> int:
    """Send the rows due now, batch after full batch; how many were delivered."""
    own = connections is None
    connections = connections or Connections()
    delivered = 0
    try:
        while rows := claim(timezone.now()):
            delivered += send(rows, connections)
            if len(rows) < BATCH:
                # Let the next ones gather: fewer, larger batches under load.
                break
    finally:
        if own:
            connections.close()
    return delivered


def forget_delivered(now: datetime.datetime | None = None) -> int:
    """Delete rows delivered more than KEEP_DELIVERED_DAYS ago."""
    cutoff = (now or timezone.now()) - datetime.timedelta(days=KEEP_DELIVERED_DAYS)
    old = Delivery.objects.filter(status=Delivery.DELIVERED, delivered_at__lt=cutoff)
    with writing():
        deleted, _ = old.delete()
    return deleted


def resend(queryset) -> int:
    """Queue rows again, from their first try (the admin's action)."""
    with transaction.atomic():
        return queryset.update(
            status=Delivery.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            claimed_until=None,
            claimed_by="",
            last_error="",
        )


# --- the sender -------------------------------------------------------------------

DIGEST_EVERY = 600  # seconds between checks for yesterday's digest
KEEP_DELIVERED_DAYS = 7  # delivered rows are deleted after


class Sender:
    """Sends what is due every ``LIKES_WEBHOOK_POLL_SECONDS`` until stopped."""

    def __init__(self):
        self.stopping = threading.Event()
        self.connections = Connections()
        self._digest_at = 0.0

    def round(self, force: bool = False) -> int:
        """Queue yesterday's digest if not yet, then send what is due."""
        if force:
            forget_subscribers()
        if not subscribers():
            return 0
        if time.monotonic() - self._digest_at >= DIGEST_EVERY:
            self._digest_at = time.monotonic()
            queue_digests()
            forget_delivered()
        return deliver_due(self.connections)

    def run(self) -> None:
        parent = os.getppid()
        while not self.stopping.is_set():
            if os.getppid() != parent:  # the server that started it is gone
                break
            close_old_connections()
            try:
                self.round()
            except Exception:  # a database hiccup must not end the sender
                logger.exception("Webhook deliveries failed this round")
            finally:
                close_old_connections()
            self.stopping.wait(float(conf.WEBHOOK_POLL_SECONDS))
        self.connections.close()

    def stop(self) -> None:
        self.stopping.set()
