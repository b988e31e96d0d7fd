import datetime
import json
from http import HTTPStatus
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from likes import services
from likes.models import DedupeSalt, Like, Post

pytestmark = pytest.mark.django_db

IP = "203.0.113.77"
UA = "Mozilla/5.0 (X11; Linux) UniqueTestAgent/9.9"


@pytest.fixture(autouse=True)
def fresh_salts():
    services._salt_cache.clear()
    yield
    services._salt_cache.clear()


def like(client, post="p", ip=IP, ua=UA):
    return client.post(f"/likes/{post}", REMOTE_ADDR=ip, headers={"User-Agent": ua})


def test_repeat_like_returns_the_count_and_does_not_increment(client):
    first = like(client)
    repeat = like(client)

    assert first.json()["likes"] == 1
    assert repeat.status_code == HTTPStatus.OK
    assert repeat.json() == {
        "post_id": "p",
        "likes": 1,
        "liked": True,
        "duplicate": True,
    }
    assert Post.objects.get().likes == 1


def test_another_visitor_can_like(client):
    like(client)

    assert like(client, ip="198.51.100.4").json()["likes"] == 2
    assert like(client, ua="Another Browser/1.0").json()["likes"] == 3


def test_the_same_visitor_can_like_another_post(client):
    like(client, post="a")

    assert like(client, post="b").json()["likes"] == 1


def test_dedupe_can_be_switched_off(client, settings):
    settings.LIKES_DEDUPE = False
    like(client)

    assert like(client).json()["likes"] == 2
    assert Like.objects.filter(visitor_hash="").count() == 2


def test_a_like_from_yesterday_still_counts_as_seen(client):
    yesterday = timezone.now().date() - datetime.timedelta(days=1)
    DedupeSalt.objects.create(day=yesterday, secret="ab" * 32)
    hashes = services.visitor_hashes(ip=IP, user_agent=UA, post_id="p")
    post = Post.objects.create(post_id="p", likes=1)
    Like.objects.create(post=post, visitor_hash=hashes[1])  # yesterday's hash

    assert like(client).json()["duplicate"] is True
    assert Post.objects.get().likes == 1


def test_salts_rotate_daily():
    today = services.visitor_hashes(ip=IP, user_agent=UA, post_id="p")
    yesterday = timezone.now().date() - datetime.timedelta(days=1)
    DedupeSalt.objects.create(day=yesterday, secret="cd" * 32)
    services._salt_cache.clear()

    both = services.visitor_hashes(ip=IP, user_agent=UA, post_id="p")

    assert both[0] == today[0]
    assert len(both) == 2 and both[1] != both[0]


def test_purge_deletes_old_salts_and_clears_old_hashes():
    now = timezone.now()
    for days in (0, 1, 2, 5):
        DedupeSalt.objects.create(
            day=now.date() - datetime.timedelta(days=days), secret="ef" * 32
        )
    post = Post.objects.create(post_id="p", likes=2)
    old = Like.objects.create(
        post=post, visitor_hash="a" * 64, created_at=now - datetime.timedelta(hours=49)
    )
    recent = Like.objects.create(
        post=post, visitor_hash="b" * 64, created_at=now - datetime.timedelta(hours=47)
    )

    out = StringIO()
    call_command("likes_purge", stdout=out)

    kept_days = sorted((now.date() - s.day).days for s in DedupeSalt.objects.all())
    assert kept_days == [0, 1]
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.visitor_hash == ""
    assert recent.visitor_hash == "b" * 64
    assert Like.objects.count() == 2  # history stays; only the hash goes
    assert "Deleted 2 salt(s); cleared 1 visitor hash(es)." in out.getvalue()


def test_database_never_holds_a_raw_ip_or_user_agent(client, settings):
    settings.LIKES_CLIENT_IP_HEADER = "CF-Connecting-IP"
    for post in ("p", "q"):
        like(client, post=post)
        client.post(
            f"/likes/{post}",
            REMOTE_ADDR="172.18.0.2",
            headers={"User-Agent": UA, "CF-Connecting-IP": "2001:db8::77"},
        )
    receipt = like(client, post="r").json()["receipt"]
    client.delete("/likes/r", headers={"X-Like-Receipt": receipt})
    assert Like.objects.count() >= 4

    dump = StringIO()
    call_command("dumpdata", stdout=dump)
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            rows.extend(cursor.fetchall())
    everything = dump.getvalue() + json.dumps(rows, default=str)

    for secret in (IP, UA, "UniqueTestAgent", "2001:db8::77", "172.18.0.2"):
        assert secret not in everything
