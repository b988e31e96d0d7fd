"""HMAC signatures on the requests the gateway forwards, and their verifier.

With ``<SERVICE>_HMAC_SECRET`` set, every request the gateway sends to that
service carries three headers besides its ``X-Request-ID``::

    Content-Digest: sha-256=:<base64 of SHA-256 of the body>:      (RFC 9530)
    X-Gateway-Timestamp: <Unix time, whole seconds>
    X-Gateway-Signature: v1=<hex HMAC-SHA256 of the canonical string>

The canonical string is six lines joined by "\\n" (no newline at the end)::

    gateway-hmac-v1
    <METHOD>                          e.g. POST
    <path and query, as sent>         e.g. /base/v1/resize?w=10 (still percent-encoded)
    <X-Gateway-Timestamp>
    <X-Request-ID>
    <Content-Digest>

so a service can prove a request came through the gateway unmodified: method,
target, body and request id are covered, and the timestamp bounds replays.

This module is also the verifier for service authors: it needs only Python's
standard library, so it can be copied into a service as it is. Use
:func:`verify`, or wrap the application in :class:`WSGIVerifier` or
:class:`ASGIVerifier`, which answer ``401`` JSON ``{"detail", "code"}`` when a
signature is missing, stale, replayed, for another body or made with another key.
"""

import base64
import hashlib
import hmac
import io
import json
import threading
import time
from urllib.parse import quote

VERSION = "gateway-hmac-v1"
SIGNATURE_HEADER = "X-Gateway-Signature"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
DIGEST_HEADER = "Content-Digest"
REQUEST_ID_HEADER = "X-Request-ID"
MAX_SKEW_SECONDS = 300
# What a path keeps unencoded (RFC 3986 pchar and "/").
_PATH_SAFE = "/!$&'()*+,;=:@-._~"

REASONS = {
    "signature_missing": "The request carries no gateway signature.",
    "timestamp_invalid": "X-Gateway-Timestamp is not a Unix time.",
    "timestamp_skewed": "The signature is too old or from the future.",
    "digest_mismatch": "The body does not match its Content-Digest.",
    "signature_invalid": "The signature does not match this request.",
    "replayed": "This signed request was already received.",
}


def content_digest(body: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
    return f"sha-256=:{digest}:"


def canonical(method, target, timestamp, request_id, digest) -> bytes:
    lines = (VERSION, method.upper(), target, str(timestamp), request_id, digest)
    return "\n".join(lines).encode("utf-8")


def signature(secret: bytes, message: bytes) -> str:
    return "v1=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(
    secret: bytes,
    *,
    method: str,
    target: str,
    request_id: str,
    body: bytes,
    digest: str | None = None,
    now: float | None = None,
) -> list[tuple[str, str]]:
    """The headers that sign one request (``digest``: the body's, if known)."""
    timestamp = int(time.time() if now is None else now)
    digest = digest or content_digest(body)
    message = canonical(method, target, timestamp, request_id, digest)
    return [
        (DIGEST_HEADER, digest),
        (TIMESTAMP_HEADER, str(timestamp)),
        (SIGNATURE_HEADER, signature(secret, message)),
    ]


class ReplayCache:
    """Signatures seen within the skew window, in this process's memory. With
    several processes a replay may reach another one: keep the window short."""

    def __init__(self, max_skew: int = MAX_SKEW_SECONDS):
        self.max_skew = max_skew
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, sig: str, now: float) -> bool:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {s: t for s, t in self._seen.items() if t > now}
            expires = self._seen.get(sig)
            if expires is not None and expires > now:
                return False
            self._seen[sig] = now + 2 * self.max_skew
            return True


def verify(
    secrets,
    *,
    method: str,
    target: str,
    headers,
    body: bytes,
    now: float | None = None,
    max_skew: int = MAX_SKEW_SECONDS,
    replays: ReplayCache | None = None,
) -> str | None:
    """None if the request is signed by one of ``secrets`` (bytes; several while
    a key is rotated), else the reason (a key of ``REASONS``). ``headers`` maps
    lowercase names to values; ``target`` is the path and query as received,
    still percent-encoded."""
    sig = headers.get(SIGNATURE_HEADER.lower(), "")
    stamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    digest = headers.get(DIGEST_HEADER.lower(), "")
    if not sig or not stamp or not digest:
        return "signature_missing"
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return "timestamp_invalid"
    now = time.time() if now is None else now
    if abs(now - int(stamp)) > max_skew:
        return "timestamp_skewed"
    if not hmac.compare_digest(digest.encode(), content_digest(body).encode()):
        return "digest_mismatch"
    request_id = headers.get(REQUEST_ID_HEADER.lower(), "")
    message = canonical(method, target, stamp, request_id, digest)
    if not any(
        hmac.compare_digest(sig.encode(), signature(secret, message).encode())
        for secret in secrets
    ):
        return "signature_invalid"
    if replays is not None and not replays.first_time(sig, now):
        return "replayed"
    return None


def _refusal(reason: str) -> bytes:
    return json.dumps({"detail": REASONS[reason], "code": reason}).encode()


class WSGIVerifier:
    """WSGI middleware: only correctly signed requests reach ``app``."""

    def __init__(self, app, secrets, *, max_skew: int = MAX_SKEW_SECONDS):
        self.app = app
        self.secrets = [s.encode() if isinstance(s, str) else s for s in secrets]
        self.max_skew = max_skew
        self.replays = ReplayCache(max_skew)

    def __call__(self, wsgi_env, start_response):
        raw_length = wsgi_env.get("CONTENT_LENGTH") or "0"
        length = int(raw_length) if raw_length.isdigit() else 0
        body = wsgi_env["wsgi.input"].read(length) if length > 0 else b""
        wsgi_env["wsgi.input"] = io.BytesIO(body)
        # The target as sent: most servers keep it (gunicorn RAW_URI, others
        # REQUEST_URI). Otherwise PATH_INFO, already decoded, is encoded again:
        # exact unless the path held an encoded reserved character (%2F).
        target = wsgi_env.get("RAW_URI") or wsgi_env.get("REQUEST_URI")
        if not target:
            path = wsgi_env.get("SCRIPT_NAME", "") + wsgi_env.get("PATH_INFO", "")
            target = quote(path.encode("latin-1"), safe=_PATH_SAFE)
            if wsgi_env.get("QUERY_STRING"):
                target += "?" + wsgi_env["QUERY_STRING"]
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in wsgi_env.items()
            if key.startswith("HTTP_")
        }
        reason = verify(
            self.secrets,
            method=wsgi_env["REQUEST_METHOD"],
            target=target,
            headers=headers,
            body=body,
            max_skew=self.max_skew,
            replays=self.replays,
        )
        if reason:
            payload = _refusal(reason)
            start_response(
                "401 Unauthorized",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(payload))),
                ],
            )
            return [payload]
        wsgi_env["gateway.verified"] = True
        return self.app(wsgi_env, start_response)


class ASGIVerifier:
    """ASGI middleware: only correctly signed HTTP requests reach ``app``."""

    def __init__(self, app, secrets, *, max_skew: int = MAX_SKEW_SECONDS):
        self.app = app
        self.secrets = [s.encode() if isinstance(s, str) else s for s in secrets]
        self.max_skew = max_skew
        self.replays = ReplayCache(max_skew)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        target = scope.get("raw_path") or scope["path"].encode("utf-8")
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        reason = verify(
            self.secrets,
            method=scope["method"],
            target=target.decode("latin-1"),
            headers=headers,
            body=body,
            max_skew=self.max_skew,
            replays=self.replays,
        )
        if reason:
            payload = _refusal(reason)
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "gateway_verified": True}, replay, send)
