"""Real upstream HTTP servers on loopback for the gateway tests, and the data plane.

``Upstream`` is a threaded ``http.server`` whose behaviour a test sets: fail
the next N requests with a status (and Retry-After), sleep, close the socket
without answering, or answer normally. It records what it received (health
probes apart), so a test can see the headers and body the gateway forwarded.

``gateway(urls, **values)`` writes a services file for one uniquely named
service and starts the gateway's data plane on it, on an event loop of its
own; ``gw`` is a blocking HTTP client of that data plane (httpx over ASGI).
What happens at the HTTP boundary itself (gunicorn's parser, methods through
the real server, slow clients) is tested against live gunicorn servers
(tests/live.py).
"""

import asyncio
import contextlib
import gzip
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway_site.gateway import registry
from gateway_site.gateway.dataplane import DataPlane


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body in one segment, sent at once: no Nagle stalls.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _answer(self, status, body=b"", headers=None):
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/health":
            with server.lock:
                server.health_hits += 1
            time.sleep(server.health_delay)
            self._answer(200 if server.healthy else 503, b'{"status":"ok"}')
            return
        with server.lock:
            server.received.append(
                {
                    "method": self.command,
                    "path": self.path,
                    # Case-insensitive, as header names are.
                    "headers": httpx.Headers(
                        list(self.headers.items()), encoding="latin-1"
                    ),
                    "header_names": [name.lower() for name in self.headers],
                    "body": body,
                }
            )
            failing = server.fail_next > 0
            if failing:
                server.fail_next -= 1
            server.hits += 1
            hits = server.hits
        if failing:
            headers = {}
            if server.retry_after is not None:
                headers["Retry-After"] = str(server.retry_after)
            self._answer(server.fail_status, b'{"error":"flaky"}', headers)
            return
        if parts.path == "/close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if parts.path == "/sleep":
            time.sleep(float(query.get("s", ["1"])[0]))
        if parts.path == "/gzip":
            packed = gzip.compress(b'{"packed": true}')
            self._answer(200, packed, {"Content-Encoding": "gzip"})
            return
        if parts.path.startswith("/status/"):
            self._answer(int(parts.path.rsplit("/", 1)[1]), b'{"status":"set"}')
            return
        extra = {
            "X-Upstream": server.label,
            "Connection": "keep-alive, X-Hop",
            **server.extra_headers,
        }
        extra["X-Hop"] = "secret-hop"
        extra["Set-Cookie"] = "sid=upstream"
        if "cc" in query:
            extra["Cache-Control"] = query["cc"][0]
        payload = {
            "method": self.command,
            "path": self.path,
            "body": body.decode("utf-8", "replace"),
            "served_by": server.label,
            "hits": hits,
        }
        self._answer(200, json.dumps(payload).encode(), extra)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, label):
        super().__init__(("127.0.0.1", 0), Handler)
        self.label = label
        self.lock = threading.Lock()
        self.received = []
        self.connections = set()
        self.fail_next = 0
        self.fail_status = 503
        self.retry_after = None
        self.healthy = True
        self.hits = 0
        self.health_hits = 0
        self.health_delay = 0
        self.extra_headers = {}

    def get_request(self):
        sock, addr = super().get_request()
        with self.lock:
            self.connections.add(sock)
        return sock, addr


class Upstream:
    def __init__(self, label="upstream"):
        self.server = Server(label)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.alive = True

    @property
    def received(self):
        return self.server.received

    def fail(self, times, status=503, retry_after=None):
        self.server.fail_next = times
        self.server.fail_status = status
        self.server.retry_after = retry_after

    def kill(self):
        """Stop listening and cut every open connection: the replica is gone."""
        if not self.alive:
            return
        self.alive = False
        self.server.shutdown()
        self.server.server_close()
        with self.server.lock:
            for sock in self.server.connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def services_toml(name, urls, **overrides) -> str:
    """A services file with one service (and the file's other tables)."""
    values = {
        "health_interval": 60,
        "default_ttl": 3600,
        "results_ttl": 86400,
        **overrides,
    }
    lines = [
        "[health]",
        f"interval = {values.pop('health_interval')}",
        "timeout = 1",
        "[cache]",
        f"default_ttl = {values.pop('default_ttl')}",
        "max_body_size = 65536",
        "[cache.strategies.processing_results]",
        f"ttl = {values.pop('results_ttl')}",
        'paths = ["/results/*"]',
        "[cache.strategies.service_health]",
        "ttl = 60",
    ]
    return "\n".join(lines) + "\n" + service_table(name, urls, **values)


def service_table(name, urls, **overrides) -> str:
    """The [services.<name>] table of a services file."""
    values = {
        "timeout": 5.0,
        "max_retries": 2,
        "retry_delay": 0.05,
        "health_endpoint": "/health",
        "eject_time": 30,
        **overrides,
    }
    breaker = values.pop(
        "circuit_breaker", {"failure_threshold": 3, "recovery_timeout": 1}
    )
    lines = [f"[services.{name}]", f"url = {json.dumps(','.join(urls))}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    lines.append(
        "circuit_breaker = { "
        + ", ".join(f"{k} = {json.dumps(v)}" for k, v in breaker.items())
        + " }"
    )
    return "\n".join(lines) + "\n"


@pytest.fixture
def upstreams():
    """Factory of real upstream servers; all stopped after the test."""
    started = []

    def make(label="upstream"):
        upstream = Upstream(label)
        started.append(upstream)
        return upstream

    yield make
    for upstream in started:
        upstream.kill()


class LoopThread:
    """An asyncio event loop running in a thread of its own."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class DataPlaneHost:
    """Runs one DataPlane at a time on a LoopThread; restarts it on a new config."""

    def __init__(self, loop_thread: LoopThread):
        self.loop_thread = loop_thread
        self.app = None

    def restart(self):
        self.stop()
        self.app = DataPlane()
        self.loop_thread.run(self.app.startup())

    def stop(self):
        if self.app is not None:
            self.loop_thread.run(self.app.shutdown())
            self.app = None

    async def __call__(self, scope, receive, send):
        if self.app is None:
            self.app = DataPlane()
            await self.app.startup()
        await self.app(scope, receive, send)


class GatewayClient:
    """A blocking client of the data plane, as httpx's (responses are httpx's)."""

    def __init__(self, host: DataPlaneHost, client_ip: str = "127.0.0.1"):
        self.host = host
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=host, client=(client_ip, 40000)),
            base_url="http://testserver",
            timeout=60,
        )

    def request(self, method, url, *, without=(), **kwargs) -> httpx.Response:
        """Send a request; ``without`` names default headers not to send."""
        request = self.client.build_request(method, url, **kwargs)
        for name in without:
            del request.headers[name]
        return self.host.loop_thread.run(self.client.send(request))

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self.request("POST", url, **kwargs)

    def put(self, url, **kwargs):
        return self.request("PUT", url, **kwargs)

    def patch(self, url, **kwargs):
        return self.request("PATCH", url, **kwargs)

    def delete(self, url, **kwargs):
        return self.request("DELETE", url, **kwargs)

    def head(self, url, **kwargs):
        return self.request("HEAD", url, **kwargs)

    def options(self, url, **kwargs):
        return self.request("OPTIONS", url, **kwargs)


@pytest.fixture(scope="session")
def loop_thread():
    looping = LoopThread()
    yield looping
    looping.stop()


@pytest.fixture
def dataplane(loop_thread):
    host = DataPlaneHost(loop_thread)
    yield host
    host.stop()


@pytest.fixture
def gw(dataplane):
    """A blocking HTTP client of the gateway's data plane."""
    return GatewayClient(dataplane)


@pytest.fixture
def gateway(tmp_path, settings, dataplane):
    """configure(urls, **values): serve one uniquely named test service; its name.

    The unique name keeps breaker and cache keys apart between tests sharing
    one store (Redis or the embedded default).
    """
    name = f"svc_{uuid.uuid4().hex[:10]}"
    files = []

    def configure(urls, **values):
        path = tmp_path / f"services-{len(files)}.toml"
        path.write_text(services_toml(name, urls, **values))
        files.append(path)
        registry.reset()
        settings.GATEWAY_SERVICES_FILE = path
        dataplane.restart()
        return name

    yield configure
    dataplane.stop()
    registry.reset()
