"""The edge of the public API: the client's IP, rate limits and their headers.

One place resolves the client IP and one place builds rate-limit answers; the
gateway reuses both.
"""

import ipaddress
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus

from django.conf import settings
from django.core.cache import caches
from django_ratelimit import ALL
from django_ratelimit.core import get_usage

from likes.conf import conf
from likes.http import error_response

logger = logging.getLogger("likes.ratelimit")

_IP_ATTR = "_likes_client_ip"


def client_ip(request) -> str:
    """The address of the client that sent ``request`` (see :func:`resolve_ip`)."""
    cached = getattr(request, _IP_ATTR, None)
    if cached is not None:
        return cached
    header = conf.CLIENT_IP_HEADER
    forwarded = None
    if header:
        forwarded = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
    ip = resolve_ip(request.META.get("REMOTE_ADDR", "") or "", forwarded)
    setattr(request, _IP_ATTR, ip)
    return ip


def resolve_ip(remote_addr: str, forwarded: str | None) -> str:
    """The client's address: ``remote_addr``, or the trusted proxy's header.

    ``forwarded`` is the value of ``LIKES_CLIENT_IP_HEADER`` (``CF-Connecting-IP``
    behind a Cloudflare Tunnel), None when no such header is configured. A
    missing or malformed header falls back to ``remote_addr`` and is logged, so
    a broken proxy cannot make every reader share one made-up address.
    """
    if forwarded is not None:
        raw = forwarded.strip()
        found = normal_ip(raw)
        if found is not None:
            return found
        logger.warning(
            "Client IP header %s is %s; using REMOTE_ADDR",
            conf.CLIENT_IP_HEADER,
            "missing" if not raw else "malformed",
        )
    return normal_ip(remote_addr) or remote_addr


def normal_ip(raw: str) -> str | None:
    """An address in its one written form (IPv4-mapped unmapped), else None."""
    # No address is longer (an IPv6 one with a zone): the cache stays small.
    return _parsed_ip(raw) if len(raw) <= 64 else None


@lru_cache(maxsize=4096)
def _parsed_ip(raw: str) -> str | None:
    try:
        return unmapped(ipaddress.ip_address(raw))
    except ValueError:
        return None


def unmapped(address) -> str:
    """An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) as the IPv4 it is.

    A dual-stack socket reports IPv4 clients that way: unmapped, they share the
    bucket of their IPv4 address instead of each having a /64 of their own.
    """
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


@dataclass(frozen=True, slots=True)
class Limit:
    """Where a client stands against one rate limit."""

    policy: str
    limit: int
    remaining: int
    reset_after: int  # seconds until the window ends
    window: int  # seconds
    exceeded: bool

    def headers(self) -> dict[str, str]:
        """Rate-limit headers: the IETF draft fields and the common X- ones."""
        reset_after = max(self.reset_after, 0)
        headers = {
            "RateLimit-Policy": f'"{self.policy}";q={self.limit};w={self.window}',
            "RateLimit": f'"{self.policy}";r={self.remaining};t={reset_after}',
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(time.time()) + reset_after),
        }
        if self.exceeded:
            headers["Retry-After"] = str(max(reset_after, 1))
        return headers


# django-ratelimit's rate syntax, whole (its own parser accepts any prefix).
_RATE = re.compile(r"[1-9][0-9]*/(?:[1-9][0-9]*)?[smhd]")


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def is_rate(value) -> bool:
    """Whether ``value`` is a rate django-ratelimit reads as meant ("10/m")."""
    return isinstance(value, str) and _RATE.fullmatch(value) is not None


@lru_cache(maxsize=64)
def parse_rate(rate: str) -> tuple[int, int]:
    """("10/m") -> (10, 60): requests allowed and the window in seconds."""
    if not is_rate(rate):
        raise ValueError(f"Not a rate: {rate!r}")
    count, per = rate.split("/")
    return int(count), int(per[:-1] or 1) * _PERIODS[per[-1]]


def ip_bucket(group, request) -> str:
    """Rate-limit key: the client IP; IPv6 by /64, what one client usually holds."""
    return bucket_of(client_ip(request))


def bucket_of(ip: str) -> str:
    """The rate-limit bucket of an address: itself for IPv4, its /64 for IPv6."""
    if ":" in ip:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return ip


def check(
    request,
    *,
    policy: str,
    rate: str | None,
    key=None,
    fail_open: bool,
    increment: bool = True,
) -> Limit | None:
    """Count this request against ``rate`` and say where the client stands.

    ``increment=False`` only looks: where the client stands without counting.

    Returns None when rate limiting is off (``RATELIMIT_ENABLE``) or there is no
    rate. When the shared cache cannot count, ``fail_open`` decides: let the
    request through (public reads and likes) or refuse it (logins).
    """
    if not rate:
        return None
    try:
        usage = get_usage(
            request,
            group=policy,
            key=key or ip_bucket,
            rate=rate,
            method=ALL,
            increment=increment,
        )
    except Exception:  # the cache backend is down or unreadable
        logger.exception("Rate-limit cache unavailable for %s", policy)
        usage = {"count": 0, "limit": 0, "should_limit": True, "time_left": -1}
    if usage is None:
        return None
    window = parse_rate(rate)[1]
    if usage["limit"] == 0 and usage["time_left"] == -1:
        # django-ratelimit's answer when the cache could not count.
        if fail_open:
            return None
        return Limit(policy, 0, 0, window, window, exceeded=True)
    return Limit(
        policy=policy,
        limit=usage["limit"],
        remaining=max(usage["limit"] - usage["count"], 0),
        reset_after=usage["time_left"],
        window=window,
        exceeded=usage["should_limit"],
    )


class ReadBudget:
    """A rate limit for count reads, counted in this process and added to the
    shared count in batches: approximate by design, cheap by design.

    A read is the most frequent request and the cheapest to serve; counting
    each one in the cache shared by all workers cost more than the rest of
    its rate-limit check (``make bench``: rate limits on vs off). Here a
    client's reads are counted in this process's memory and added to the
    shared counter (cache alias ``RATELIMIT_USE_CACHE``) every ``BATCH``
    reads, and at every read once the client is past half its limit, so the
    decision near the limit uses the shared total. A worker learns the other
    workers' reads when it adds its own, so a client can get at most
    ``(BATCH - 1) x workers`` reads past its limit in a window; likes and
    everything else keep django-ratelimit's exact count.

    Windows are fixed (they start at multiples of the period); counts not yet
    added when a window ends are dropped with it. At most ``MAX_CLIENTS``
    clients are remembered per window and process; past that, new clients are
    counted exactly, at every read.
    """

    BATCH = 8
    MAX_CLIENTS = 50_000
    EXPIRY_FUDGE = 5  # seconds a shared counter outlives its window

    def __init__(self, policy: str):
        self.policy = policy
        self.forget()
        os.register_at_fork(after_in_child=self.forget)

    def forget(self):
        """Drop this process's counts (a forked worker starts empty)."""
        self._lock = threading.Lock()
        self._window = None
        self._clients: dict[str, list[int]] = {}  # bucket -> [not added, shared]

    def check(self, request, rate: str | None) -> Limit | None:
        """Count this read; where the client stands (None: limits are off)."""
        if not rate or not getattr(settings, "RATELIMIT_ENABLE", True):
            return None
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period) * period
        bucket = bucket_of(client_ip(request))
        with self._lock:
            if window != self._window:
                self._window, self._clients = window, {}
            entry = self._clients.get(bucket)
            if entry is None:
                entry = [0, 0]
                if len(self._clients) < self.MAX_CLIENTS:
                    self._clients[bucket] = entry
            entry[0] += 1
            count = entry[0] + entry[1]
            if entry[0] < self.BATCH and 2 * count < limit and bucket in self._clients:
                return self._limit(limit, count, window + period - now, period)
            pending, entry[0] = entry[0], 0
        try:
            shared = self._add(
                f"{self.policy}:{rate}:{window}:{bucket}", pending, period
            )
        except Exception:  # the cache is down: reads fail open
            logger.exception("Rate-limit cache unavailable for %s", self.policy)
            return None
        with self._lock:
            entry[1] = max(entry[1], shared)
            count = entry[0] + entry[1]
        return self._limit(limit, count, window + period - now, period)

    def _add(self, key: str, amount: int, period: int) -> int:
        """Add ``amount`` to the shared count of ``key``; the new total."""
        cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
        ttl = period + self.EXPIRY_FUDGE
        key = "likes-read-budget:" + key
        for _ in range(3):
            if cache.add(key, amount, ttl):
                return amount
            try:
                total = cache.incr(key, amount)
            except ValueError:  # expired between the two: add again
                continue
            if total is None:  # a cache that swallows its errors
                break
            return total
        raise RuntimeError(f"Could not count {key}")

    def _limit(self, limit: int, count: int, left: float, period: int) -> Limit:
        return Limit(
            policy=self.policy,
            limit=limit,
            remaining=max(limit - count, 0),
            reset_after=max(int(left), 0),
            window=period,
            exceeded=count > limit,
        )


def too_many_requests(limit: Limit):
    headers = limit.headers()
    return error_response(
        HTTPStatus.TOO_MANY_REQUESTS,
        code="rate_limited",
        detail=f"Too many requests; try again in {headers['Retry-After']} s.",
        headers=headers,
    )
