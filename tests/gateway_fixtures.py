"""Real upstream HTTP servers on loopback for the gateway tests, and their config.

``Upstream`` is a threaded ``http.server`` whose behaviour a test sets: fail
the next N requests with a status (and Retry-After), sleep, close the socket
without answering, or answer normally. It records what it received, so a test
can see the headers and body the gateway forwarded.
"""

import contextlib
import gzip
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway_site.upstream import registry


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
        with server.lock:
            server.received.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "header_names": [name.lower() for name in self.headers],
                    "body": body,
                }
            )
            failing = server.fail_next > 0
            if failing:
                server.fail_next -= 1
            server.hits += 1
            hits = server.hits
        if parts.path == "/health":
            self._answer(200 if server.healthy else 503, b'{"status":"ok"}')
            return
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
        extra = {"X-Upstream": server.label, "Connection": "keep-alive, X-Hop"}
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
    lines = [
        "[health]",
        f"interval = {values.pop('health_interval', 0.2)}",
        "timeout = 1",
        "[cache]",
        f"default_ttl = {values.pop('default_ttl', 3600)}",
        "max_body_size = 65536",
        "[cache.strategies.processing_results]",
        f"ttl = {values.pop('results_ttl', 86400)}",
        'paths = ["/results/*"]',
        "[cache.strategies.service_health]",
        "ttl = 60",
        f"[services.{name}]",
        f"url = {json.dumps(','.join(urls))}",
    ]
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


@pytest.fixture
def gateway(tmp_path, settings):
    """configure(urls, **values): serve one uniquely named test service; its name.

    The unique name keeps breaker and cache keys apart between tests sharing
    one cache (Redis or the on-disk default).
    """
    name = f"svc_{uuid.uuid4().hex[:10]}"
    files = []

    def configure(urls, **values):
        path = tmp_path / f"services-{len(files)}.toml"
        path.write_text(services_toml(name, urls, **values))
        files.append(path)
        registry.reset()
        settings.GATEWAY_SERVICES_FILE = path
        return name

    yield configure
    registry.reset()
