"""An upstream service for the gateway benchmark: a few bytes of JSON, no framework.

An ASGI app for gunicorn's asyncio worker, so that thousands of calls can wait
on it at once. Each call takes ``BENCH_SERVICE_TIME_MS`` (default 0), or the
``ms`` of its query string, spent waiting as a model server would, not on the
CPU. ``/health`` answers at once; ``/cached/...`` may be cached by the gateway,
every other path says ``Cache-Control: no-store``.
"""

import asyncio
import os
from urllib.parse import parse_qs

BODY = b'{"ok":true,"service":"bench-upstream"}'
SERVICE_TIME = float(os.environ.get("BENCH_SERVICE_TIME_MS", "0")) / 1000


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    path = scope["path"]
    more = True
    while more:  # read the body, if any
        message = await receive()
        more = message.get("more_body", False)
    wait = SERVICE_TIME
    if query := parse_qs(scope.get("query_string", b"").decode()).get("ms"):
        wait = float(query[0]) / 1000
    if wait and path != "/health":
        await asyncio.sleep(wait)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
    ]
    if not path.startswith("/cached/"):
        headers.append((b"cache-control", b"no-store"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})
