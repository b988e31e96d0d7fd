"""The baseline: a likes service built the way the original FastAPI script was.

Sync endpoints, a new sqlite3 connection per request, and the counter updated
with a SELECT followed by an UPDATE/INSERT in Python (a read-modify-write race).
It exists only to be measured against; do not fix it.
"""

import os
import sqlite3

from fastapi import FastAPI

DB_PATH = os.environ.get("BASELINE_DB", "baseline.sqlite3")

app = FastAPI()


@app.on_event("startup")
def create_table():
    conn = sqlite3.connect(DB_PATH)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS likes (post_id TEXT PRIMARY KEY, count INTEGER)"
    )
    conn.commit()
    conn.close()


@app.get("/likes/{post_id}")
def get_likes(post_id: str):
    conn = sqlite3.connect(DB_PATH)
    row = conn.execute(
        "SELECT count FROM likes WHERE post_id = ?", (post_id,)
    ).fetchone()
    conn.close()
    return {"post_id": post_id, "likes": row[0] if row else 0}


@app.post("/likes/{post_id}")
def add_like(post_id: str):
    conn = sqlite3.connect(DB_PATH)
    cursor = conn.cursor()
    cursor.execute("SELECT count FROM likes WHERE post_id = ?", (post_id,))
    row = cursor.fetchone()
    if row:
        new_count = row[0] + 1
        cursor.execute(
            "UPDATE likes SET count = ? WHERE post_id = ?", (new_count, post_id)
        )
    else:
        new_count = 1
        cursor.execute(
            "INSERT INTO likes (post_id, count) VALUES (?, ?)", (post_id, new_count)
        )
    conn.commit()
    conn.close()
    return {"post_id": post_id, "likes": new_count}
