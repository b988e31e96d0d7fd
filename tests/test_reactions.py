"""Reactions beside the like (LIKES_REACTIONS): API, dedupe, undo, exactness."""

import json
import sqlite3
import threading
from http import HTTPStatus
from urllib.parse import quote

import httpx
import pytest
from django.core.checks import run_checks

from likes import reactions, services
from likes.models import Like, Post, PostReaction

REACTIONS = "👍,❤️,🎉,clap"


@pytest.fixture
def offered(settings):
    settings.LIKES_REACTIONS = REACTIONS
    services._salt_cache.clear()
    yield
    services._salt_cache.clear()


def react(client, post, name, ip="203.0.113.9", ua="Agent/1", **extra):
    return client.post(
        f"/likes/{post}?reaction={quote(name)}",
        REMOTE_ADDR=ip,
        headers={"User-Agent": ua},
        **extra,
    )


# --- the setting --------------------------------------------------------------


def test_reaction_names_are_emoji_or_short_names():
    assert reactions.parse("👍, ❤️ ,🎉,clap,thinking-face")[1] == []
    assert reactions.parse("👨\u200d👩\u200d👧,1️⃣")[1] == []  # ZWJ, keycap
    for bad in (
        "Clap",
        "a b",
        "<script>",
        "x" * 17,
        "👍👍👍👍👍👍👍👍👍👍👍👍👍",
        "\x00",
    ):
        names, problems = reactions.parse(bad)
        assert names == [] and problems, bad
    names, problems = reactions.parse("❤,❤️")  # one reaction spelt twice
    assert names == [] and "twice" in problems[0]
    names, problems = reactions.parse(",".join(f"r{n}" for n in range(9)))
    assert names == [] and "At most 8" in problems[0]


@pytest.mark.django_db
def test_a_bad_reaction_list_is_a_check_error(settings):
    settings.LIKES_REACTIONS = "👍,not ok"
    errors = [e for e in run_checks() if e.id == "likes.E005"]
    assert len(errors) == 1 and "not ok" in errors[0].msg


# --- the API ------------------------------------------------------------------


@pytest.mark.django_db
def test_without_reactions_every_answer_keeps_its_shape(client):
    client.post("/likes/p")
    assert client.get("/likes/p").json() == {"post_id": "p", "likes": 1}
    assert client.get("/likes/?ids=p,q").json() == [
        {"post_id": "p", "likes": 1},
        {"post_id": "q", "likes": 0},
    ]
    refused = client.post("/likes/p?reaction=👍")
    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert refused.json()["code"] == "invalid_reaction"
    assert "none" in refused.json()["detail"]


@pytest.mark.django_db
def test_reactions_are_counted_apart_from_likes(client, offered):
    assert client.get("/likes/p").json() == {
        "post_id": "p",
        "likes": 0,
        "reactions": {"👍": 0, "❤️": 0, "🎉": 0, "clap": 0},
    }
    client.post("/likes/p", REMOTE_ADDR="203.0.113.1")
    first = react(client, "p", "👍").json()
    react(client, "p", "clap")
    # A JSON body names it too (the widget's text/plain body).
    client.post(
        "/likes/p",
        data=json.dumps({"reaction": "🎉", "title": "Hello"}),
        content_type="text/plain",
        REMOTE_ADDR="203.0.113.2",
    )

    assert first["reaction"] == "👍" and first["liked"] is True
    assert first["likes"] == 1 and first["reactions"]["👍"] == 1
    assert "receipt" in first
    assert client.get("/likes/p").json() == {
        "post_id": "p",
        "likes": 1,
        "reactions": {"👍": 1, "❤️": 0, "🎉": 1, "clap": 1},
    }
    assert client.get("/likes/?ids=p,q").json() == [
        {
            "post_id": "p",
            "likes": 1,
            "reactions": {"👍": 1, "❤️": 0, "🎉": 1, "clap": 1},
        },
        {
            "post_id": "q",
            "likes": 0,
            "reactions": {"👍": 0, "❤️": 0, "🎉": 0, "clap": 0},
        },
    ]
    assert Post.objects.get(post_id="p").title == "Hello"
    assert sorted(Like.objects.values_list("kind", flat=True)) == sorted(
        ["", "clap", "👍", "🎉"]
    )


@pytest.mark.django_db
def test_a_reaction_spelt_another_way_is_the_same_reaction(client, offered):
    react(client, "p", "❤")  # without the variation selector
    react(client, "p", "\u2764\ufe0f", ip="203.0.113.10")
    assert client.get("/likes/p").json()["reactions"]["❤️"] == 2
    assert PostReaction.objects.get().kind == "❤️"


@pytest.mark.django_db
def test_unknown_and_hostile_reactions_are_a_clear_400(client, offered):
    for name in ("👎", "CLAP", "x" * 5000, "\ud800", "\x00", "clap\x00"):
        answer = client.post(f"/likes/p?reaction={quote(name, errors='surrogatepass')}")
        assert answer.status_code == HTTPStatus.BAD_REQUEST, name
        # Query strings with NUL or surrogates are refused before the view.
        assert answer.json()["code"] in ("invalid_reaction", "bad_query")
    answer = client.post(
        "/likes/p", data='{"reaction": ["clap"]}', content_type="text/plain"
    )
    assert answer.status_code == HTTPStatus.BAD_REQUEST
    assert not Post.objects.exists()


@pytest.mark.django_db
def test_a_visitor_reacts_once_per_kind_and_may_undo(client, offered):
    first = react(client, "p", "🎉").json()
    again = react(client, "p", "🎉").json()
    other = react(client, "p", "clap").json()
    liked = client.post(
        "/likes/p", REMOTE_ADDR="203.0.113.9", headers={"User-Agent": "Agent/1"}
    ).json()

    assert again["duplicate"] is True and again["reactions"]["🎉"] == 1
    assert other["reactions"] == {"👍": 0, "❤️": 0, "🎉": 1, "clap": 1}
    assert "duplicate" not in liked and liked["likes"] == 1

    undone = client.delete("/likes/p", headers={"X-Like-Receipt": first["receipt"]})
    assert undone.json() == {
        "post_id": "p",
        "likes": 1,
        "reactions": {"👍": 0, "❤️": 0, "🎉": 0, "clap": 1},
        "liked": False,
    }
    # Undoing twice changes nothing; the like itself was never touched.
    client.delete("/likes/p", headers={"X-Like-Receipt": first["receipt"]})
    assert client.get("/likes/p").json()["reactions"]["🎉"] == 0
    assert Post.objects.get().likes == 1


@pytest.mark.django_db
def test_merging_posts_adds_their_reactions(client, offered):
    react(client, "old", "clap")
    react(client, "new", "clap", ip="203.0.113.11")
    react(client, "old", "👍")

    services.post_merge(sources=["old"], target="new")

    assert client.get("/likes/new").json()["reactions"] == {
        "👍": 1,
        "❤️": 0,
        "🎉": 0,
        "clap": 2,
    }


# --- through gunicorn ------------------------------------------------------------

KINDS = ["👍", "❤️", "🎉", "clap"]


def fire_mixed(base_url: str, total: int, concurrency: int) -> dict:
    """``total`` reactions, kinds in turn, ``concurrency`` in flight; status counts
    per kind."""
    lock = threading.Lock()
    queue = [KINDS[n % len(KINDS)] for n in range(total)]
    outcomes = {kind: {} for kind in KINDS}

    def worker():
        with httpx.Client(timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    kind = queue.pop()
                try:
                    status = client.post(
                        f"{base_url}/likes/hot?reaction={quote(kind)}"
                    ).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    outcomes[kind][status] = outcomes[kind].get(status, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def assert_exact_per_kind(server, outcomes, total):
    per_kind = total // len(KINDS)
    assert outcomes == {kind: {200: per_kind} for kind in KINDS}
    read = httpx.get(f"{server.base_url}/likes/hot").json()
    assert read == {
        "post_id": "hot",
        "likes": 0,
        "reactions": dict.fromkeys(KINDS, per_kind),
    }


TOTAL = 2000
IN_FLIGHT = 32
ATOMICITY_ONLY = {
    "LIKES_DEDUPE": "off",
    "RATELIMIT_ENABLE": "false",
    "LIKES_REACTIONS": ",".join(KINDS),
}


@pytest.mark.live
def test_concurrent_mixed_reactions_are_exact_on_sqlite(tmp_path):
    from tests.live import gunicorn, manage, project_env

    env = project_env(DATA_DIR=str(tmp_path), **ATOMICITY_ONLY)
    manage("migrate", "--noinput", env=env)
    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as server:
        outcomes = fire_mixed(server.base_url, TOTAL, IN_FLIGHT)
        assert_exact_per_kind(server, outcomes, TOTAL)

    with sqlite3.connect(tmp_path / "likes.sqlite3") as db:
        stored = dict(db.execute("SELECT kind, count FROM likes_postreaction"))
        events = dict(db.execute("SELECT kind, COUNT(*) FROM likes_like GROUP BY kind"))
    assert stored == events == {kind: TOTAL // len(KINDS) for kind in KINDS}


@pytest.mark.live
def test_concurrent_mixed_reactions_are_exact_on_postgresql(tmp_path, postgres_url):
    from tests.live import gunicorn, manage, project_env

    psycopg = pytest.importorskip("psycopg")
    env = project_env(
        DATA_DIR=str(tmp_path), DATABASE_URL=postgres_url, **ATOMICITY_ONLY
    )
    manage("migrate", "--noinput", env=env)
    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as server:
        outcomes = fire_mixed(server.base_url, TOTAL, IN_FLIGHT)
        assert_exact_per_kind(server, outcomes, TOTAL)

    with psycopg.connect(postgres_url) as db:
        stored = dict(
            db.execute("SELECT kind, count FROM likes_postreaction").fetchall()
        )
        events = dict(
            db.execute("SELECT kind, COUNT(*) FROM likes_like GROUP BY kind").fetchall()
        )
    assert stored == events == {kind: TOTAL // len(KINDS) for kind in KINDS}
