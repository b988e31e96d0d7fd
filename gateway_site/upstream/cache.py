"""The gateway's GET response cache in Django's default cache.

Only anonymous GETs are looked up or stored: a request with Authorization or
Cookie may get a user-specific answer, which must never be served to someone
else. Responses are stored when they are 200, carry a Content-Length within the
configured ``max_body_size``, vary at most on Accept/Accept-Encoding, and the
service did not forbid it (``Cache-Control: no-store``, ``private`` or
``no-cache``); ``max-age`` shortens the strategy's TTL.
"""

import hashlib
import logging
import re
from fnmatch import fnmatchcase

from django.core.cache import caches

logger = logging.getLogger("gateway_site.upstream.cache")

HIT, MISS, BYPASS = "HIT", "MISS", "BYPASS"
STATUS_HEADER = "X-Cache-Status"
VARY_OK = frozenset({"accept", "accept-encoding"})
MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)
NO_STORE = re.compile(r"(?:^|,)\s*(no-store|private|no-cache)\b", re.IGNORECASE)


def cacheable_request(request) -> bool:
    return (
        request.method == "GET"
        and not request.META.get("HTTP_AUTHORIZATION")
        and not request.META.get("HTTP_COOKIE")
    )


def ttl_for(registry, service, path: str) -> int:
    if path == service.health_endpoint:
        return registry.config.health_ttl
    for strategy in registry.config.strategies:
        if any(fnmatchcase(path, pattern) for pattern in strategy.paths):
            return strategy.ttl
    return registry.config.default_ttl


def key(name: str, target: str, request) -> str:
    raw = "\n".join(
        (
            name,
            target,
            request.META.get("HTTP_ACCEPT", ""),
            request.META.get("HTTP_ACCEPT_ENCODING", ""),
        )
    )
    return "gw:resp:" + hashlib.sha256(raw.encode()).hexdigest()


def lookup(cache_key: str):
    try:
        return caches["default"].get(cache_key)
    except Exception:
        logger.exception("Response cache unreadable")
        return None


def storable_ttl(response, ttl: int, max_size: int) -> int | None:
    """TTL to store ``response`` for, or None when it must not be stored."""
    if response.status_code != 200:
        return None
    control = ", ".join(response.headers.get_list("cache-control"))
    if NO_STORE.search(control):
        return None
    vary = {
        token.strip().lower()
        for value in response.headers.get_list("vary")
        for token in value.split(",")
        if token.strip()
    }
    if vary - VARY_OK:
        return None
    length = response.headers.get("content-length", "")
    if not length.isdigit() or int(length) > max_size:
        return None
    match = MAX_AGE.search(control)
    if match:
        ttl = min(ttl, int(match.group(1)))
    return ttl if ttl > 0 else None


def store(cache_key: str, entry: dict, ttl: int) -> None:
    try:
        caches["default"].set(cache_key, entry, timeout=ttl)
    except Exception:
        logger.exception("Response not cached")
