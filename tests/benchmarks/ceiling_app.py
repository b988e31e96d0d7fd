"""A framework-free likes app: the ceiling for what gunicorn + SQLite can do.

Same SQL as the project (a read by post ids; an upsert plus a history row),
same database file layout and pragmas, no framework, no rate limit, no headers
beyond Content-Type. ``app`` is an ASGI app for the project's own gunicorn
settings (gunicorn's asyncio worker, gateway_site/gunicorn.conf.py): it runs
its SQL on the event loop, which is the fastest these few microseconds of SQL
can be served. ``wsgi_app`` is the same for gunicorn's sync worker.
"""

import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote

DB_PATH = os.path.join(os.environ["DATA_DIR"], "likes.sqlite3")
# The default site's posts (a single-site install's), as the project's.
UPSERT = (
    "INSERT INTO likes_post (site_id, post_id, likes, imported, created_at, "
    "last_liked_at) VALUES (1, ?, 1, 0, ?, ?) ON CONFLICT (site_id, post_id) "
    "DO UPDATE SET "
    "likes = likes_post.likes + 1, last_liked_at = excluded.last_liked_at "
    "RETURNING id, likes"
)
local = threading.local()


def db():
    if not hasattr(local, "conn"):
        local.conn = sqlite3.connect(DB_PATH, timeout=20, isolation_level=None)
        local.conn.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    return local.conn


def answer(method: str, path: str, query: str) -> bytes:
    """The JSON body for one request."""
    conn = db()
    if path == "/likes/":
        ids = [i for i in ",".join(parse_qs(query).get("ids", [])).split(",") if i]
        marks = ",".join("?" * len(ids))
        found = dict(
            conn.execute(
                "SELECT post_id, likes FROM likes_post "  # noqa: S608
                f"WHERE site_id = 1 AND post_id IN ({marks})",
                ids,
            ).fetchall()
        )
        return json.dumps(
            [{"post_id": i, "likes": found.get(i, 0)} for i in ids]
        ).encode()
    post_id = unquote(path.removeprefix("/likes/"))
    if method == "POST":
        now = datetime.now(UTC).isoformat(" ")
        conn.execute("BEGIN IMMEDIATE")
        pk, likes = conn.execute(UPSERT, (post_id, now, now)).fetchone()
        conn.execute(
            "INSERT INTO likes_like (post_id, created_at, visitor_hash) "
            "VALUES (?, ?, '')",
            (pk, now),
        )
        conn.execute("COMMIT")
    else:
        row = conn.execute(
            "SELECT likes FROM likes_post WHERE site_id = 1 AND post_id = ?",
            (post_id,),
        ).fetchone()
        likes = row[0] if row else 0
    return json.dumps({"post_id": post_id, "likes": likes}).encode()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path in ("/health", "/ready"):
        body = b'{"status":"ok"}'
    else:
        body = answer(scope["method"], path, scope["query_string"].decode("latin-1"))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path in ("/health", "/ready"):
        body = b'{"status":"ok"}'
    else:
        body = answer(environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
