"""One pooled httpx client per worker process, created after the fork.

gunicorn preloads the app in the master (``preload_app``): a client created
there would share its sockets with every worker. Keying on ``os.getpid()``
gives each worker its own pool the first time it needs one.
"""

import logging
import os
import socket
import threading
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

# httpx logs every request at INFO, URL and query string included: too costly
# and too revealing for a proxy. Configured levels (LOGGING) are left alone.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

_lock = threading.Lock()
_client: httpx.Client | None = None
_pid: int | None = None


def client() -> httpx.Client:
    global _client, _pid
    if _pid == os.getpid() and _client is not None:
        return _client
    with _lock:
        if _pid != os.getpid() or _client is None:
            _client = httpx.Client(
                # Environment proxies must not silently reroute upstream calls.
                trust_env=False,
                follow_redirects=False,
                # One client serves every user: a cookie one answer sets must
                # never ride along on someone else's request.
                cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                transport=httpx.HTTPTransport(
                    limits=httpx.Limits(
                        max_connections=200,
                        max_keepalive_connections=50,
                        keepalive_expiry=30,
                    ),
                    # Request headers and body go out as separate writes: without
                    # TCP_NODELAY, Nagle holds the body until the service's delayed
                    # ACK (up to 40 ms on Linux).
                    socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
                ),
            )
            _pid = os.getpid()
    return _client
