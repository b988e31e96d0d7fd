"""Webhooks: events in an outbox with the like, sent afterwards, signed, once."""

import datetime
import json
import threading
import time
from collections import Counter
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psutil
import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from gateway_site.gateway import signing
from likes import services, webhooks
from likes.checks import check_webhooks
from likes.models import Delivery, Like, Post, Webhook
from tests.live import gunicorn, manage, project_env


class Receiver(ThreadingHTTPServer):
    """A loopback webhook receiver that answers 500 to its first ``fail``
    requests, then 200; it keeps every request it got."""

    daemon_threads = True

    def __init__(self, fail: int = 0):
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.fail = fail
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/likes?src=test"


class ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        with server.lock:
            status = 500 if len(server.requests) < server.fail else 200
            server.requests.append(
                {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "events": [e["id"] for e in json.loads(body)["events"]],
                    "status": status,
                }
            )
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def receiver(fail: int = 0):
    server = Receiver(fail)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def verified(request: dict, secret: bytes) -> bool:
    """The receiver's check, with the gateway's verifier (stdlib only)."""
    headers = request["headers"]
    return (
        signing.verify(
            [secret],
            method="POST",
            target=request["path"],
            headers=headers,
            body=request["body"],
        )
        is None
    )


@pytest.fixture(autouse=True)
def fresh_subscribers():
    webhooks.forget_subscribers()
    yield
    webhooks.forget_subscribers()


# --- the outbox ------------------------------------------------------------------


@pytest.mark.django_db
def test_without_webhooks_a_like_writes_no_event():
    services.like_add(post_id="p")

    assert Delivery.objects.count() == 0


@pytest.mark.django_db
def test_a_like_and_an_unlike_write_their_events_with_the_change():
    hook = Webhook.objects.create(
        name="blog",
        url="https://example.com/hook",
        events=["like.created", "like.removed", "milestone.reached"],
        milestones="2,3",
    )
    services.like_add(post_id="post-a", title="Post A")
    second = services.like_add(post_id="post-a")
    services.like_remove(post_id="post-a", like_id=second.like_id)
    services.like_add(post_id="post-a")  # 2 again: no second milestone
    services.like_add(post_id="post-a")  # 3

    events = [
        (d.event, json.loads(d.payload))
        for d in Delivery.objects.filter(webhook=hook).order_by("pk")
    ]
    assert [(event, body["post"]["likes"]) for event, body in events] == [
        ("like.created", 1),
        ("like.created", 2),
        ("milestone.reached", 2),
        ("like.removed", 1),
        ("like.created", 2),
        ("like.created", 3),
        ("milestone.reached", 3),
    ]
    body = events[2][1]
    assert body["milestone"] == 2
    assert body["post"] == {
        "id": "post-a",
        "title": "Post A",
        "likes": 2,
        "site": "default",
    }
    assert set(body) == {"id", "event", "created_at", "post", "milestone"}
    assert len({body["id"] for _, body in events}) == len(events)


@pytest.mark.django_db
def test_a_like_refused_as_a_repeat_writes_no_event():
    Webhook.objects.create(name="b", url="https://example.com/h")
    hashes = services.visitor_hashes(ip="192.0.2.1", user_agent="ua", post_id="p")
    services.like_add(post_id="p", visitor_hashes=hashes)
    services.like_add(post_id="p", visitor_hashes=hashes)

    assert Delivery.objects.filter(event="like.created").count() == 1


@pytest.mark.django_db
def test_a_paused_webhook_gets_no_new_events():
    Webhook.objects.create(name="b", url="https://example.com/h", active=False)
    services.like_add(post_id="p")

    assert Delivery.objects.count() == 0


@pytest.mark.django_db
def test_yesterdays_digest_is_queued_once():
    hook = Webhook.objects.create(
        name="b", url="https://example.com/h", events=["daily.digest"]
    )
    now = timezone.now()
    yesterday = now - datetime.timedelta(days=1)
    post = Post.objects.create(post_id="old", title="Old", likes=3)
    for _ in range(3):
        Like.objects.create(post=post, created_at=yesterday)
    Like.objects.create(post=post, created_at=now)

    assert webhooks.queue_digests(now) == 1
    webhooks.queue_digests(now)

    (row,) = Delivery.objects.filter(webhook=hook)
    body = json.loads(row.payload)
    assert body["day"] == yesterday.date().isoformat()
    assert body["likes"] == 3
    assert body["posts"] == [{"id": "old", "title": "Old", "likes": 3}]


# --- sending ---------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(LIKES_WEBHOOK_RETRY_SECONDS=0.05)
def test_a_receiver_that_fails_twice_gets_the_event_signed_three_times_then_never():
    with receiver(fail=2) as server:
        hook = Webhook.objects.create(name="b", url=server.url)
        services.like_add(post_id="p", title="P")
        (row,) = Delivery.objects.all()

        delivered, deadline = 0, time.monotonic() + 5
        while not delivered and time.monotonic() < deadline:
            delivered = webhooks.deliver_due()
            time.sleep(0.02)  # the back-off: 0.05 s, then 0.1 s (±20 %)
        time.sleep(0.2)
        again = webhooks.deliver_due()

    assert (delivered, again) == (1, 0)
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status) == ("delivered", 3, 200)
    assert [r["status"] for r in server.requests] == [500, 500, 200]
    secret = webhooks.secret_for(hook)
    for request in server.requests:
        assert verified(request, secret)
        assert request["path"] == "/hooks/likes?src=test"
        assert request["headers"]["x-webhook-events"] == "1"
        assert request["events"] == [str(row.event_id)]
        assert request["body"] == b'{"events":[' + row.payload.encode() + b"]}"
    # A new request id on each try.
    assert len({r["headers"]["x-request-id"] for r in server.requests}) == 3
    assert not verified(server.requests[0], b"another key" * 3)


@pytest.mark.django_db
@override_settings(LIKES_WEBHOOK_MAX_ATTEMPTS=2, LIKES_WEBHOOK_RETRY_SECONDS=0.01)
def test_a_receiver_that_never_answers_well_ends_failed_and_can_be_sent_again():
    with receiver(fail=1000) as server:
        Webhook.objects.create(name="b", url=server.url)
        services.like_add(post_id="p")
        for _ in range(4):
            webhooks.deliver_due()
            time.sleep(0.03)
        (row,) = Delivery.objects.all()
        assert (row.status, row.attempts, row.last_error) == ("failed", 2, "HTTP 500")

        webhooks.resend(Delivery.objects.all())
        server.fail = 0
        assert webhooks.deliver_due() == 1

    row.refresh_from_db()
    assert (row.status, row.attempts) == ("delivered", 1)


@pytest.mark.django_db
def test_an_unreachable_receiver_is_tried_again_later():
    with receiver() as server:
        url = server.url
    Webhook.objects.create(name="b", url=url)  # nothing listens there now
    services.like_add(post_id="p")

    assert webhooks.deliver_due() == 0

    (row,) = Delivery.objects.all()
    assert row.status == "pending" and row.attempts == 1
    assert row.last_status is None and row.last_error
    assert row.next_attempt_at > timezone.now()


@pytest.mark.django_db
def test_a_claimed_row_is_not_claimed_again():
    Webhook.objects.create(name="b", url="http://127.0.0.1:9/")
    services.like_add(post_id="p")
    now = timezone.now()

    first = webhooks.claim(now)
    second = webhooks.claim(now)

    assert len(first) == 1 and second == []


@pytest.mark.django_db
def test_the_command_sends_what_is_due(capsys):
    with receiver() as server:
        Webhook.objects.create(name="b", url=server.url)
        services.like_add(post_id="p")
        call_command("likes_deliver", "--once")

    assert "Delivered 1 event(s)." in capsys.readouterr().out
    assert len(server.requests) == 1


@override_settings(LIKES_WEBHOOK_DELIVERY="sometimes", LIKES_WEBHOOK_TIMEOUT=0)
def test_bad_webhook_settings_are_refused_by_the_checks():
    ids = [error.id for error in check_webhooks()]

    assert ids == ["likes.E003", "likes.E004"]


# --- the admin -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_shows_the_secret_and_sends_a_delivery_again(admin_client):
    response = admin_client.post(
        "/admin/likes/webhook/add/",
        {
            "name": "blog",
            "url": "https://example.com/h",
            "events": ["like.created", "daily.digest"],
            "milestones": "100, 10,10",
            "active": "on",
        },
    )
    assert response.status_code == HTTPStatus.FOUND, response.content[:2000]
    hook = Webhook.objects.get()
    assert hook.events == ["like.created", "daily.digest"]
    assert hook.milestones == "10,100"
    page = admin_client.get(f"/admin/likes/webhook/{hook.pk}/change/")
    assert webhooks.secret_for(hook).hex() in page.content.decode()
    refused = admin_client.post(
        "/admin/likes/webhook/add/",
        {"name": "x", "url": "ftp://example.com/", "events": ["like.created"]},
    )
    assert refused.status_code == HTTPStatus.OK
    assert Webhook.objects.count() == 1

    services.like_add(post_id="p")
    Delivery.objects.update(status="failed", attempts=8)
    row = Delivery.objects.get()
    response = admin_client.post(
        "/admin/likes/delivery/",
        {"action": "send_again", "_selected_action": [row.pk]},
    )

    assert response.status_code == HTTPStatus.FOUND
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 0)


# --- live: gunicorn's sender process sends each event once -------------------------

LIKES = 12


@pytest.mark.live
def test_the_server_delivers_every_like_once_despite_a_receiver_that_fails_twice(
    tmp_path,
):
    env = project_env(
        DATA_DIR=str(tmp_path),
        LIKES_DEDUPE="false",
        LIKES_POST_RATE="100000/m",
        LIKES_WEBHOOK_POLL_SECONDS="0.1",
        LIKES_WEBHOOK_RETRY_SECONDS="0.1",
    )
    manage("migrate", "--noinput", env=env)
    with receiver(fail=2) as server:
        manage(
            "shell",
            "-c",
            "from likes.models import Webhook; "
            f"Webhook.objects.create(name='live', url='{server.url}')",
            env=env,
        )
        with gunicorn(env, workers=2) as site:
            (sender,) = [
                child
                for child in psutil.Process(site.pid).children()
                if "likes_deliver" in child.cmdline()
            ]
            deadline = time.monotonic() + 20
            while sender.nice() != 10 and time.monotonic() < deadline:
                time.sleep(0.1)  # it lowers its priority once Django is up
            assert sender.nice() == 10
            started = time.monotonic()
            for n in range(LIKES):
                response = httpx.post(f"{site.base_url}/likes/live-{n % 3}")
                assert response.status_code == HTTPStatus.OK, response.text
            liked_in = time.monotonic() - started
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with server.lock:
                    accepted = [r for r in server.requests if r["status"] == 200]
                if sum(len(r["events"]) for r in accepted) >= LIKES:
                    break
                time.sleep(0.1)
            time.sleep(0.5)  # anything more would be a second delivery
        secret = manage(
            "shell",
            "-c",
            "from likes.models import Webhook; from likes.webhooks import secret_for; "
            "print(secret_for(Webhook.objects.get()).hex())",
            env=env,
        ).stdout.split()[-1]

    # It stopped with the server.
    assert not sender.is_running() or sender.status() == psutil.STATUS_ZOMBIE
    accepted_events = Counter(e for r in accepted for e in r["events"])
    assert len(accepted_events) == LIKES
    assert set(accepted_events.values()) == {1}  # each event accepted once
    refused = {e for r in server.requests[:2] for e in r["events"]}
    assert refused and refused <= set(accepted_events)  # they came again
    assert all(verified(r, bytes.fromhex(secret)) for r in server.requests)
    counts = sorted(
        event["post"]["likes"]
        for r in accepted
        for event in json.loads(r["body"])["events"]
    )
    assert counts == sorted([1, 2, 3, 4] * 3)
    # The likes never waited for the receiver (it fails, then waits on retries).
    assert liked_in < 10


@pytest.mark.django_db
def test_delivered_rows_are_forgotten_after_a_week_and_the_others_kept():
    hook = Webhook.objects.create(name="b", url="https://example.com/h")
    for _ in range(3):
        services.like_add(post_id="p")
    old, recent, pending = Delivery.objects.order_by("pk")
    now = timezone.now()
    Delivery.objects.filter(pk=old.pk).update(
        status="delivered", delivered_at=now - datetime.timedelta(days=8)
    )
    Delivery.objects.filter(pk=recent.pk).update(
        status="delivered", delivered_at=now - datetime.timedelta(days=6)
    )

    assert webhooks.forget_delivered(now) == 1
    assert set(Delivery.objects.values_list("pk", flat=True)) == {
        recent.pk,
        pending.pk,
    }
    assert hook.deliveries.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_senders_claiming_at_once_never_share_a_row():
    """PostgreSQL: a sender whose claim waits on another's rows takes none of
    them once that one commits (the row conditions are checked again)."""
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite has one writer at a time)")
    Webhook.objects.create(name="b", url="http://127.0.0.1:9/")
    for _ in range(10):
        services.like_add(post_id="p")
    now = timezone.now()
    pks = list(Delivery.objects.values_list("pk", flat=True))
    first_holds, let_first_commit = threading.Event(), threading.Event()
    second = {}

    def first():
        try:
            with transaction.atomic():
                Delivery.objects.filter(webhooks._claimable(now), pk__in=pks).update(
                    claimed_until=now + datetime.timedelta(minutes=2),
                    claimed_by="first",
                )
                first_holds.set()
                let_first_commit.wait(10)
        finally:
            connection.close()

    def then_second():
        try:
            second["rows"] = webhooks.claim(now)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=then_second)]
    threads[0].start()
    assert first_holds.wait(10)
    threads[1].start()
    time.sleep(0.5)  # the second's UPDATE now waits on the first's rows
    let_first_commit.set()
    for thread in threads:
        thread.join(20)

    assert second["rows"] == []
    assert set(Delivery.objects.values_list("claimed_by", flat=True)) == {"first"}
