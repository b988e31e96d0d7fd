"""An upstream service for the gateway benchmark: a few bytes of JSON, no framework.

``BENCH_SERVICE_TIME_MS`` (default 0) is how long each call takes, spent waiting
as a model server or a database would, not on the CPU. ``/health`` answers the
gateway's probes at once; ``/cached/...`` may be cached by the gateway, every
other path says ``Cache-Control: no-store``.
"""

import os
import time

BODY = b'{"ok":true,"service":"bench-upstream"}'
SERVICE_TIME = float(os.environ.get("BENCH_SERVICE_TIME_MS", "0")) / 1000


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if SERVICE_TIME and path != "/health":
        time.sleep(SERVICE_TIME)
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(BODY))),
    ]
    if not path.startswith("/cached/"):
        headers.append(("Cache-Control", "no-store"))
    start_response("200 OK", headers)
    return [BODY]
