"""Django (WSGI) behind gunicorn's asyncio server: whole requests, handed to a thread.

The asyncio side reads every request completely (headers and body) before a
thread sees it, so a client that trickles its headers or body holds a
coroutine, never one of Django's threads: two slow clients can no longer stall
a sync worker's whole capacity. One thread per worker by default
(``GUNICORN_THREADS``): Django's requests are short and CPU-bound, and more
threads only share one GIL (tests/benchmarks).

Compared with gunicorn's sync workers, which close the connection after every
answer, connections are kept alive. A response that fits in memory (up to
``BUFFER``) goes back to the event loop in one hop, with its Content-Length; a
larger or streamed one (a CSV export) is sent chunk by chunk while the thread
produces it.

A request to Django that runs longer than gunicorn's ``timeout`` makes the
worker exit (gunicorn starts a new one), as a sync worker would have been
killed: a thread cannot be stopped, and a stuck one would hold the worker's
Django capacity for good.
"""

import asyncio
import io
import json
import logging
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import unquote_to_bytes

from django.conf import settings

from gateway_site.http import trusted_proxy
from likes.http import error_body

logger = logging.getLogger("gateway_site.bridge")

BUFFER = 256 * 1024


class WSGIBridge:
    """An ASGI application that runs a WSGI application on a small thread pool."""

    def __init__(self, app, *, threads: int, max_body: int, timeout: float):
        self.app = app
        self.threads = threads
        self.max_body = max_body
        self.timeout = timeout
        self._pool = None
        self._running: dict[int, float] = {}  # id of a call -> when it started

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="django")
        return self._pool

    # --- lifespan ----------------------------------------------------------------

    async def watch(self) -> None:
        """Exit the worker when a Django request outlives gunicorn's timeout."""
        while True:
            await asyncio.sleep(1)
            now = time.monotonic()
            if any(now - started > self.timeout for started in self._running.values()):
                logger.error(
                    "A request to Django ran longer than %s s; restarting the worker.",
                    self.timeout,
                )
                os.kill(os.getpid(), signal.SIGABRT)
                return

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # --- one request ------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await send_error(
                    send,
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    "body_too_large",
                    f"The body exceeds {self.max_body} bytes.",
                )
                return
            if not message.get("more_body", False):
                break
        loop = asyncio.get_running_loop()
        environ = wsgi_environ(scope, bytes(body))
        status, headers, content = await loop.run_in_executor(
            self.pool, self.run, environ, send, loop
        )
        if status is None:
            return  # streamed from the thread
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})

    def run(self, environ, send, loop):
        """Call the application (on a pool thread); small answers come back whole."""
        key = id(environ)
        self._running[key] = time.monotonic()
        started = {}

        def start_response(status, response_headers, exc_info=None):
            started["status"] = int(status[:3])
            started["headers"] = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in response_headers
            ]
            return lambda data: None  # the legacy write() callable: unused

        def forward(message):
            asyncio.run_coroutine_threadsafe(send(message), loop).result()

        try:
            result = self.app(environ, start_response)
            try:
                chunks, size = [], 0
                iterator = iter(result)
                for chunk in iterator:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > BUFFER:
                        break
                else:
                    content = b"".join(chunks)
                    return started["status"], sized(started, content), content
                # Too large to hold: stream the rest as it comes.
                forward(
                    {
                        "type": "http.response.start",
                        "status": started["status"],
                        "headers": started["headers"],
                    }
                )
                forward(
                    {
                        "type": "http.response.body",
                        "body": b"".join(chunks),
                        "more_body": True,
                    }
                )
                for chunk in iterator:
                    if chunk:
                        forward(
                            {
                                "type": "http.response.body",
                                "body": chunk,
                                "more_body": True,
                            }
                        )
                forward({"type": "http.response.body", "body": b""})
                return None, None, None
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            del self._running[key]


def sized(started, content: bytes) -> list:
    """The headers of a whole answer, with its Content-Length when it has none
    (what Django's CommonMiddleware adds; the public API runs without it)."""
    headers = started["headers"]
    status = started["status"]
    if (
        status >= 200
        and status not in (204, 304)
        and not any(name == b"content-length" for name, _ in headers)
    ):
        headers.append((b"content-length", str(len(content)).encode()))
    return headers


async def send_error(send, status: int, code: str, detail: str) -> None:
    body = json.dumps(error_body(code=code, detail=detail)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_environ(scope, body: bytes) -> dict:
    """The WSGI env of an ASGI HTTP request (PEP 3333)."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    env = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        # WSGI strings are latin-1 decoded bytes: the path as the client sent
        # it, percent-decoded (as gunicorn's WSGI workers give it).
        "PATH_INFO": unquote_to_bytes(
            scope.get("raw_path") or scope["path"].encode()
        ).decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]) if server[1] is not None else "80",
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)) if body else "",
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1")
        if name == "content-length":
            continue  # the body was read whole: its real length is above
        if name == "content-type":
            key = "CONTENT_TYPE"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        env[key] = f"{env[key]},{value}" if key in env else value
    if not env["CONTENT_LENGTH"]:
        del env["CONTENT_LENGTH"]
    # SECURE_PROXY_SSL_HEADER is believed from the proxies gunicorn trusts
    # (FORWARDED_ALLOW_IPS) only: anyone else could claim HTTPS.
    proxy_ssl = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_ssl and proxy_ssl[0] in env and not trusted_proxy(client[0]):
        del env[proxy_ssl[0]]
    return env
