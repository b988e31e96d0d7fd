"""The ceiling of the gateway benchmark: the smallest asyncio proxy, nothing else.

An ASGI app for gunicorn's asyncio worker (the gateway's own server settings)
that relays each request to ``<SERVICE>_URL`` with one aiohttp call, the
gateway's own client: hop-by-hop headers dropped, ``X-Forwarded-For``
appended, the body streamed back. No Django, auth, tiers, breaker, cache,
retries, bulkheads, metrics or logs: what the server and the client cost alone.
"""

import os

import aiohttp
from yarl import URL

from gateway_site.gateway.headers import HOP_BY_HOP, SKIP_AUTO_HEADERS

PREFIX = b"/services/"
DROP = HOP_BY_HOP | {"host", "content-length"}
_sessions = {}


def session() -> aiohttp.ClientSession:
    found = _sessions.get("s")
    if found is None:
        found = _sessions["s"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            auto_decompress=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
    return found


async def error(send, status: int):
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[1]
            if kind == "shutdown" and "s" in _sessions:
                await _sessions.pop("s").close()
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    raw = scope.get("raw_path") or scope["path"].encode()
    if raw == b"/health":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    if not raw.startswith(PREFIX):
        return await error(send, 404)
    name, _, rest = raw[len(PREFIX) :].partition(b"/")
    base = os.environ.get(f"{name.decode().upper()}_URL")
    if not base:
        return await error(send, 404)
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in scope["headers"]
        if k.decode("latin-1") not in DROP
    ]
    client = scope.get("client") or ("", 0)
    prior = next((v for k, v in headers if k == "x-forwarded-for"), "")
    headers = [(k, v) for k, v in headers if k != "x-forwarded-for"]
    headers.append(("X-Forwarded-For", f"{prior}, {client[0]}" if prior else client[0]))
    target = "/" + rest.decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    async with session().request(
        scope["method"],
        URL(base.split(",")[0] + target, encoded=True),
        headers=headers,
        data=body or None,
        allow_redirects=False,
    ) as response:
        out = [
            (k.lower(), v)
            for k, v in response.raw_headers
            if k.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        await send(
            {"type": "http.response.start", "status": response.status, "headers": out}
        )
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
