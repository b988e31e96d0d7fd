"""A framework-free reverse proxy: the ceiling for what gunicorn + httpx can do.

The least a proxy on the gateway's stack does per call: one call through the
gateway's own pooled httpx transport (``gateway_site.upstream.client``), its
hop-by-hop headers dropped both ways, ``X-Forwarded-For`` appended, the body
streamed back. No framework, no authentication, rate limits, breaker, cache,
retries, metrics or logs. Serves ``/health`` and ``/services/<service>/<path>``,
from the same ``<SERVICE>_URL`` variables as the gateway (one URL each). Run on
the same gunicorn settings as the gateway (``tests/benchmarks/gateway.py`` does).
"""

import os

import httpx

from gateway_site.upstream import client

CHUNK = 64 * 1024
TIMEOUT = httpx.Timeout(30, connect=5)


def upstream_url(service: str) -> str | None:
    if not service.replace("_", "").isalnum():
        return None
    return os.environ.get(f"{service.upper()}_URL")


def request_headers(environ) -> list[tuple[bytes, bytes]]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and key not in {"HTTP_HOST", "HTTP_X_FORWARDED_FOR"}:
            name = key[5:].replace("_", "-").lower()
            if name not in client.HOP_BY_HOP:
                headers.append((name.encode("latin-1"), value.encode("latin-1")))
    if environ.get("CONTENT_TYPE"):
        headers.append((b"content-type", environ["CONTENT_TYPE"].encode("latin-1")))
    prior = environ.get("HTTP_X_FORWARDED_FOR")
    remote = environ.get("REMOTE_ADDR", "")
    forwarded = f"{prior}, {remote}" if prior else remote
    headers.append((b"x-forwarded-for", forwarded.encode("latin-1")))
    return headers


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/health":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    path_info = environ.get("PATH_INFO", "")
    service, _, path = path_info.removeprefix("/services/").partition("/")
    base = upstream_url(service) if path_info.startswith("/services/") else None
    if base is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    target = base + "/" + path
    if environ.get("QUERY_STRING"):
        target += "?" + environ["QUERY_STRING"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    headers = request_headers(environ)
    body = None
    if length:
        body = environ["wsgi.input"].read(length)
        headers.append((b"content-length", str(length).encode()))
    response = client.send(
        environ["REQUEST_METHOD"],
        target,
        headers=headers,
        content=body,
        timeout=TIMEOUT,
    )
    start_response(
        f"{response.status_code} {response.reason_phrase}",
        [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in response.headers.raw
            if name.decode("latin-1").lower() not in client.HOP_BY_HOP
        ],
    )
    return relay(response)


def relay(response):
    try:
        yield from response.iter_raw(CHUNK)
    finally:
        response.close()
