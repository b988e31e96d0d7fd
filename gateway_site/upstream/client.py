"""One pooled httpx transport per worker process, created after the fork.

gunicorn preloads the app in the master (``preload_app``): a pool created there
would share its sockets with every worker. Keying on ``os.getpid()`` gives each
worker its own pool the first time it needs one.

Requests go straight to the transport (``HTTPTransport.handle_request``), not
through ``httpx.Client``: the gateway needs none of the client's layers (no
redirects, no auth flows, no base URL) and must not have one of them, the
cookie jar, which would carry a cookie one user's answer set into another
user's request. Skipping them saves about a quarter of httpx's cost per call
(tests/benchmarks/gateway.py).
"""

import logging
import os
import socket
import threading

import httpx

# httpx logs every request at INFO, URL and query string included: too costly
# and too revealing for a proxy. Configured levels (LOGGING) are left alone.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

# Headers that describe one connection, not the message (RFC 9110 §7.6.1),
# plus the proxy-authentication pair meant for the next hop only.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)


_lock = threading.Lock()
_transport: httpx.HTTPTransport | None = None
_pid: int | None = None


def transport() -> httpx.HTTPTransport:
    global _transport, _pid
    if _pid == os.getpid() and _transport is not None:
        return _transport
    with _lock:
        if _pid != os.getpid() or _transport is None:
            _transport = httpx.HTTPTransport(
                limits=httpx.Limits(
                    max_connections=200,
                    max_keepalive_connections=50,
                    keepalive_expiry=30,
                ),
                # Request headers and body go out as separate writes: without
                # TCP_NODELAY, Nagle holds the body until the service's delayed
                # ACK (up to 40 ms on Linux).
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            )
            _pid = os.getpid()
    return _transport


def send(
    method: str, url: str, *, headers, content, timeout: httpx.Timeout
) -> httpx.Response:
    """Send one request; the response body is still to be read (and closed)."""
    request = httpx.Request(
        method,
        url,
        headers=headers,
        content=content,
        extensions={"timeout": timeout.as_dict()},
    )
    return transport().handle_request(request)
