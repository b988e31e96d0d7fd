"""The gateway's GET response cache, in the shared store.

A cached answer is served to other callers, so a caller must not be able to
make it differ from what a plain request gets (cache poisoning). Only these
requests are looked up or stored:

- anonymous GETs: no ``Authorization`` and no ``Cookie`` (a user-specific
  answer is never shared);
- whose forwarded headers are all on a short list (:data:`FORWARDED_OK`):
  content negotiation (part of the key), plus headers that identify or trace
  the caller without changing the answer (hop-by-hop headers are never
  forwarded, so they do not count). Any other header (``X-Api-Version``,
  ``X-Forwarded-Host``...) might change the answer: such requests go to the
  service and their answers are not stored;
- without ``Cache-Control: no-cache``/``no-store`` from the caller.

The key is the service, the path and query as sent, and the negotiation
headers (:data:`KEY_HEADERS`). An answer is stored when it is a 200 with a
Content-Length within ``max_body_size``, its ``Vary`` names only key headers
(never ``Vary: *``), and the service did not forbid it (``no-store``,
``private``, ``no-cache``); ``max-age``/``s-maxage`` shorten the strategy's TTL.
"""

import hashlib
import json
import re
from fnmatch import fnmatchcase

from gateway_site.gateway.headers import HOP_BY_HOP

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
STATUS_HEADER = "X-Cache-Status"
# Request headers that select a representation: they are part of the key.
KEY_HEADERS = ("accept", "accept-encoding", "accept-language")
# Headers a cacheable request may carry besides the key headers: they do not
# change the answer (the gateway rewrites or adds the forwarding ones itself).
FORWARDED_OK = frozenset(
    {
        *KEY_HEADERS,
        "host",
        "user-agent",
        "cache-control",
        "pragma",
        "x-request-id",
        "traceparent",
        "tracestate",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
        "cf-connecting-ip",
        "cf-ray",
        "cf-ipcountry",
        "cf-visitor",
        "cdn-loop",
        "content-length",
        "referer",
        "dnt",
        "sec-fetch-site",
        "sec-fetch-mode",
        "sec-fetch-dest",
        "sec-fetch-user",
        "sec-ch-ua",
        "sec-ch-ua-mobile",
        "sec-ch-ua-platform",
        "upgrade-insecure-requests",
        "priority",
        "if-none-match",
        "if-modified-since",
    }
)
MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)
NO_STORE = re.compile(r"(?:^|,)\s*(no-store|private|no-cache)\b", re.IGNORECASE)
CLIENT_NO_CACHE = re.compile(r"(?:^|,)\s*(no-store|no-cache)\b", re.IGNORECASE)


def cacheable_request(method: str, headers: dict[str, str]) -> bool:
    """Whether a request (headers by lower-case name) may share cached answers."""
    if method != "GET" or "authorization" in headers or "cookie" in headers:
        return False
    if any(name not in FORWARDED_OK and name not in HOP_BY_HOP for name in headers):
        return False
    return not CLIENT_NO_CACHE.search(headers.get("cache-control", ""))


def strategy_for(registry, path: str):
    """The first cache strategy whose paths match ``path``, or None."""
    for strategy in registry.config.strategies:
        if any(fnmatchcase(path, pattern) for pattern in strategy.paths):
            return strategy
    return None


def ttl_for(registry, service, path: str) -> int:
    if path == service.health_endpoint:
        return registry.config.health_ttl
    strategy = strategy_for(registry, path)
    return strategy.ttl if strategy is not None else registry.config.default_ttl


def cacheable_for_user(method: str, headers: dict[str, str]) -> bool:
    """Whether a signed-in caller's request may use its own per-user cache
    (a ``per_user`` strategy): as :func:`cacheable_request`, the bearer token
    aside."""
    others = {name: value for name, value in headers.items() if name != "authorization"}
    return "authorization" in headers and cacheable_request(method, others)


def user_key(name: str, target: str, headers: dict[str, str], user) -> str:
    """A per-user answer's key: the user and their password's session hash are
    part of it, so a new password (which also revokes their tokens) leaves the
    old answers unreachable, and a deactivated user is refused before any lookup."""
    raw = "\n".join(
        (
            "user",
            str(user.pk),
            user.auth,
            name,
            target,
            *(headers.get(h, "") for h in KEY_HEADERS),
        )
    )
    return "uresp:" + hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()


def key(name: str, target: str, headers: dict[str, str]) -> str:
    raw = "\n".join((name, target, *(headers.get(h, "") for h in KEY_HEADERS)))
    return "resp:" + hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()


def storable_ttl(status: int, headers, ttl: int, max_size: int) -> int | None:
    """TTL to store an answer for, or None when it must not be stored.

    ``headers`` is the service's (a case-insensitive multidict).
    """
    if status != 200:
        return None
    control = ", ".join(headers.getall("cache-control", ()))
    if NO_STORE.search(control):
        return None
    vary = {
        token.strip().lower()
        for value in headers.getall("vary", ())
        for token in value.split(",")
        if token.strip()
    }
    if not vary <= set(KEY_HEADERS):  # "*" included
        return None
    length = headers.get("content-length", "")
    if not length.isdigit() or int(length) > max_size:
        return None
    match = MAX_AGE.search(control)
    if match:
        ttl = min(ttl, int(match.group(1)))
    return ttl if ttl > 0 else None


def encode(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    meta = json.dumps(
        [status, [[n.decode("latin-1"), v.decode("latin-1")] for n, v in headers]]
    )
    return meta.encode() + b"\n" + body


def decode(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    meta, _, body = raw.partition(b"\n")
    status, headers = json.loads(meta)
    return (
        status,
        [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers],
        body,
    )
