"""A fast upstream service for the gateway benchmark: a few bytes of JSON, no framework.

``/health`` answers the gateway's probes; ``/cached/...`` may be cached by the
gateway, every other path says ``Cache-Control: no-store``.
"""

BODY = b'{"ok":true,"service":"bench-upstream"}'


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(BODY))),
    ]
    if not path.startswith("/cached/"):
        headers.append(("Cache-Control", "no-store"))
    start_response("200 OK", headers)
    return [BODY]
