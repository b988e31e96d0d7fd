"""Webhooks: events written to an outbox with the change, sent afterwards.

A like (or an unlike) adds one ``Delivery`` row per webhook that wants its
event, in the same transaction as the count: the event exists exactly when the
change committed. Nothing is sent in the like's request. A sender (a thread in
each worker by default, or ``manage.py likes_deliver``) claims due rows, POSTs
each to its webhook and marks it delivered on a 2xx answer; otherwise it tries
again later, with a growing wait, up to ``LIKES_WEBHOOK_MAX_ATTEMPTS`` times.

A claim is a lease written with a conditional UPDATE, so several senders
(workers, instances, a command) never send one row at the same time; a row is
marked delivered once. A receiver that answered 2xx but whose answer was lost
gets the event again with the same ``id``: receivers dedupe on it.

Requests are signed with the gateway's scheme (gateway_site/gateway/signing.py:
``Content-Digest``, ``X-Gateway-Timestamp``, ``X-Gateway-Signature`` over the
method, target, timestamp, ``X-Request-ID`` and digest) with the webhook's
secret, derived from ``DJANGO_SECRET_KEY`` and never stored. Payloads carry
post ids, titles and counts: never an IP address or a User-Agent.
"""

import datetime
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Count, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from django.utils.crypto import salted_hmac

from gateway_site.gateway import signing
from likes.models import Delivery, Like, Post, Webhook

logger = logging.getLogger("likes.webhooks")

USER_AGENT = "likes-webhooks/1"
DIGEST_POSTS = 20  # the most liked posts a daily digest lists
LEASE_MARGIN = 30  # seconds a claim outlives the request's timeout
BATCH = 20  # rows a sender claims at once


def setting(name: str, default):
    return getattr(settings, f"LIKES_WEBHOOK_{name}", default)


def secret_for(webhook: Webhook) -> bytes:
    """The webhook's signing secret (the receiver is given its hex form)."""
    return salted_hmac(
        "likes.webhooks.secret", str(webhook.key), algorithm="sha256"
    ).digest()


# --- subscribers (read on every like: kept a few seconds per process) ----------

_subscribers: tuple[float, list[tuple[int, frozenset, frozenset]]] = (0.0, [])
_subscribers_lock = threading.Lock()
SUBSCRIBERS_TTL = 5  # a new or changed webhook is seen by every worker within


def subscribers() -> list[tuple[int, frozenset, frozenset]]:
    """(id, events, milestone counts) of the active webhooks."""
    global _subscribers
    read_at, found = _subscribers
    if time.monotonic() - read_at < SUBSCRIBERS_TTL:
        return found
    with _subscribers_lock:
        found = [
            (hook.pk, frozenset(hook.events or ()), hook.milestone_counts())
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


def _payload(event: str, event_id, now, **data) -> str:
    body = {"id": str(event_id), "event": event, "created_at": now.isoformat()}
    body.update(data)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _row(hook_id: int, event: str, now, once: str | None = None, **data) -> Delivery:
    row = Delivery(webhook_id=hook_id, event=event, once=once, created_at=now)
    row.payload = _payload(event, row.event_id, now, **data)
    return row


def like_added(*, post_pk: int, post_id: str, title: str, likes: int) -> None:
    """Queue ``like.created`` (and ``milestone.reached``) for a counted like."""
    hooks = subscribers()
    if not hooks:
        return
    now = timezone.now()
    post = {"id": post_id, "title": title, "likes": likes}
    rows, milestones = [], []
    for hook_id, events, counts in hooks:
        if "like.created" in events:
            rows.append(_row(hook_id, "like.created", now, post=post))
        if "milestone.reached" in events and likes in counts:
            milestones.append(
                _row(
                    hook_id,
                    "milestone.reached",
                    now,
                    once=f"milestone:{hook_id}:{post_pk}:{likes}",
                    post=post,
                    milestone=likes,
                )
            )
    Delivery.objects.bulk_create(rows)
    # A count reached again (after an unlike) is no new milestone.
    Delivery.objects.bulk_create(milestones, ignore_conflicts=True)


def like_removed(*, post_id: str) -> None:
    """Queue ``like.removed`` for a like just taken back."""
    hooks = [h for h in subscribers() if "like.removed" in h[1]]
    if not hooks:
        return
    now = timezone.now()
    title, likes = (
        Post.objects.filter(post_id=post_id).values_list("title", "likes").get()
    )
    post = {"id": post_id, "title": title, "likes": likes}
    Delivery.objects.bulk_create(
        [_row(hook_id, "like.removed", now, post=post) for hook_id, _, _ in hooks]
    )


def queue_digests(now: datetime.datetime | None = None) -> int:
    """Queue yesterday's ``daily.digest`` (UTC) for the webhooks that want it;
    once per webhook and day, whoever asks first."""
    hooks = [h for h in subscribers() if "daily.digest" in h[1]]
    if not hooks:
        return 0
    now = now or timezone.now()
    day = (now - datetime.timedelta(days=1)).date()
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    likes = Like.objects.filter(
        created_at__gte=start, created_at__lt=start + datetime.timedelta(days=1)
    )
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
    rows = [
        _row(hook_id, "daily.digest", now, once=f"digest:{hook_id}:{day}", **data)
        for hook_id, _, _ in hooks
    ]
    return len(Delivery.objects.bulk_create(rows, ignore_conflicts=True))


# --- sending ----------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is an answer like any other: not delivered


_opener = urllib.request.build_opener(_NoRedirect)


def post(webhook: Webhook, delivery: Delivery, attempt: int) -> tuple[int | None, str]:
    """POST one delivery: (HTTP status or None, error text)."""
    body = delivery.payload.encode("utf-8")
    parts = urlsplit(webhook.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request_id = f"{delivery.event_id.hex}-{attempt}"
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Id": str(delivery.event_id),
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
    request = urllib.request.Request(webhook.url, data=body, headers=headers)
    try:
        with _opener.open(request, timeout=setting("TIMEOUT", 10)) as response:
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, timed out, bad URL, TLS
        return None, f"{type(exc).__name__}: {exc}"[:200]


def backoff(attempts: int) -> float:
    """Seconds before try ``attempts + 1``: doubling from the base, capped at an
    hour, with jitter so that failed rows do not come back together."""
    base = float(setting("RETRY_SECONDS", 30))
    return min(base * 2 ** (attempts - 1), 3600) * random.uniform(0.8, 1.2)


def _claimable(now) -> Q:
    # A paused webhook's rows wait for it.
    return Q(
        status=Delivery.PENDING, next_attempt_at__lte=now, webhook__active=True
    ) & (Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))


def claim(now: datetime.datetime, limit: int = BATCH) -> list[Delivery]:
    """Due rows this sender now holds (each UPDATE wins for one sender only)."""
    lease = now + datetime.timedelta(seconds=setting("TIMEOUT", 10) + LEASE_MARGIN)
    due = Delivery.objects.filter(_claimable(now)).order_by("next_attempt_at", "pk")
    held = []
    for pk in due.values_list("pk", flat=True)[:limit]:
        won = Delivery.objects.filter(_claimable(now), pk=pk).update(
            claimed_until=lease
        )
        if won:
            held.append(pk)
    return list(
        Delivery.objects.filter(pk__in=held, claimed_until=lease)
        .select_related("webhook")
        .order_by("next_attempt_at", "pk")
    )


def send(delivery: Delivery) -> bool:
    """Send one claimed row and record the outcome; whether it was delivered."""
    attempt = delivery.attempts + 1
    status, error = post(delivery.webhook, delivery, attempt)
    now = timezone.now()
    fields = {"attempts": attempt, "last_status": status, "claimed_until": None}
    delivered = status is not None and 200 <= status < 300
    if delivered:
        fields.update(status=Delivery.DELIVERED, delivered_at=now, last_error="")
    elif attempt >= setting("MAX_ATTEMPTS", 8):
        fields.update(status=Delivery.FAILED, last_error=error)
        logger.warning(
            "Webhook %s gave up on %s after %d tries: %s",
            delivery.webhook.pk,
            delivery.event_id,
            attempt,
            error,
        )
    else:
        fields.update(
            next_attempt_at=now + datetime.timedelta(seconds=backoff(attempt)),
            last_error=error,
        )
    # Only while the claim is ours (it is: the lease outlives the timeout).
    Delivery.objects.filter(
        pk=delivery.pk, claimed_until=delivery.claimed_until
    ).update(**fields)
    return delivered


def deliver_due(now: datetime.datetime | None = None) -> int:
    """Send every row due now; how many were delivered."""
    delivered = 0
    while True:
        rows = claim(now or timezone.now())
        if not rows:
            return delivered
        for row in rows:
            delivered += send(row)


def resend(queryset) -> int:
    """Queue rows again, from their first try (the admin's action)."""
    with transaction.atomic():
        return queryset.update(
            status=Delivery.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            claimed_until=None,
            last_error="",
        )


# --- the sender -------------------------------------------------------------------

DIGEST_EVERY = 600  # seconds between checks for yesterday's digest


class Sender:
    """Sends what is due every ``LIKES_WEBHOOK_POLL_SECONDS`` until stopped."""

    def __init__(self):
        self.stopping = threading.Event()
        self._digest_at = 0.0

    def round(self, force: bool = False) -> int:
        """Queue yesterday's digest if not yet, then send what is due."""
        close_old_connections()
        try:
            if force:
                forget_subscribers()
            if not subscribers():
                return 0
            if time.monotonic() - self._digest_at >= DIGEST_EVERY:
                self._digest_at = time.monotonic()
                queue_digests()
            return deliver_due()
        finally:
            close_old_connections()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.round()
            except Exception:  # a database hiccup must not end the sender
                logger.exception("Webhook deliveries failed this round")
            self.stopping.wait(float(setting("POLL_SECONDS", 2)))

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="likes-webhooks", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
