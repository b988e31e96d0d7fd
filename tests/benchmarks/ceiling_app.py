"""A framework-free WSGI likes app: the ceiling for what gunicorn + SQLite can do.

Same SQL as the project (a read by post id; an upsert plus a history row), same
database file layout and pragmas, no framework. Run on the same gunicorn settings.
"""

import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from urllib.parse import unquote

DB_PATH = os.path.join(os.environ["DATA_DIR"], "likes.sqlite3")
UPSERT = (
    "INSERT INTO likes_post (post_id, likes, imported, created_at, last_liked_at) "
    "VALUES (?, 1, 0, ?, ?) ON CONFLICT (post_id) DO UPDATE SET "
    "likes = likes_post.likes + 1, last_liked_at = excluded.last_liked_at "
    "RETURNING id, likes"
)
local = threading.local()


def db():
    if not hasattr(local, "conn"):
        local.conn = sqlite3.connect(DB_PATH, timeout=20, isolation_level=None)
        local.conn.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    return local.conn


def app(environ, start_response):
    post_id = unquote(environ["PATH_INFO"].removeprefix("/likes/"))
    conn = db()
    if environ["REQUEST_METHOD"] == "POST":
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
            "SELECT likes FROM likes_post WHERE post_id = ?", (post_id,)
        ).fetchone()
        likes = row[0] if row else 0
    body = json.dumps({"post_id": post_id, "likes": likes}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
