"""Rate-limit tiers of the gateway: anonymous, authenticated, admin, processing.

Anonymous callers are counted by client IP (IPv6 by /64), users by user id, in
fixed windows in the shared store (gateway_site/gateway/store.py), so the
counts are exact across workers and replicas. A processing call (one that
makes an upstream do work) also counts against the processing limit. The tiers
fail open: with the store down the gateway keeps serving, and the upstreams'
circuit breakers still protect them. likes.ratelimit builds the headers and
the answer, as for the likes API.
"""

import time
import zlib
from functools import lru_cache

from django.conf import settings

from gateway_site.gateway.conf import conf
from gateway_site.gateway.store import StoreUnavailable
from likes.ratelimit import Limit, parse_rate

ANONYMOUS = "gateway-anonymous"
AUTHENTICATED = "gateway-authenticated"
ADMIN = "gateway-admin"
PROCESSING = "gateway-processing"


def tier(user) -> tuple[str, str]:
    """The tier policy and rate for ``user`` (None: anonymous)."""
    if user is None:
        return ANONYMOUS, conf.RATE_ANONYMOUS
    if user.is_staff or user.is_superuser:
        return ADMIN, conf.RATE_ADMIN
    return AUTHENTICATED, conf.RATE_AUTHENTICATED


@lru_cache(maxsize=64)
def _rate(rate: str) -> tuple[int, int]:
    return parse_rate(rate)


def window_end(bucket: str, period: int, now: float) -> int:
    """End of the current window: aligned to the period, spread per bucket."""
    ts = int(now)
    end = ts - ts % period + zlib.crc32(bucket.encode()) % period
    return end if end >= ts else end + period


def _plan(user, bucket: str, processing: bool):
    """(policy, limit, period, key, window end) for each limit that applies."""
    policy, rate = tier(user)
    plans = [(policy, rate)]
    if processing:
        plans.append((PROCESSING, conf.RATE_PROCESSING))
    now = time.time()
    for policy, rate in plans:
        limit, period = _rate(rate)
        end = window_end(bucket, period, now)
        yield policy, limit, period, f"tier:{policy}:{bucket}:{end}", end


def _limit(policy, limit, period, end, count) -> Limit:
    return Limit(
        policy=policy,
        limit=limit,
        remaining=max(limit - int(count), 0),
        reset_after=max(end - int(time.time()), 0),
        window=period,
        exceeded=count > limit,
    )


def bucket_for(user, ip_bucket: str) -> str:
    return ip_bucket if user is None else f"user:{user.pk}"


async def admit(store, *, user, ip_bucket: str, processing: bool) -> Limit | None:
    """Count one request against its tier (and processing); the tighter Limit.

    None when rate limiting is off (``RATELIMIT_ENABLE``) or the store is down.
    """
    if not settings.RATELIMIT_ENABLE:
        return None
    limits = []
    for policy, limit, period, key, end in _plan(
        user, bucket_for(user, ip_bucket), processing
    ):
        try:
            count = await store.ahit(key, period + 5)
        except StoreUnavailable:
            continue
        limits.append(_limit(policy, limit, period, end, count))
    return tighter(*limits)


def admit_blocking(store, *, user, ip_bucket: str, processing: bool) -> Limit | None:
    """:func:`admit` for Django views (``/users/me``)."""
    if not settings.RATELIMIT_ENABLE:
        return None
    limits = []
    for policy, limit, period, key, end in _plan(
        user, bucket_for(user, ip_bucket), processing
    ):
        try:
            count = store.hit(key, period + 5)
        except StoreUnavailable:
            continue
        limits.append(_limit(policy, limit, period, end, count))
    return tighter(*limits)


def tighter(*limits: Limit | None) -> Limit | None:
    """The limit to report: an exceeded one (the longest wait), else the fewest left."""
    present = [limit for limit in limits if limit is not None]
    if not present:
        return None
    return min(
        present,
        key=lambda limit: (
            (0, -limit.reset_after, 0)
            if limit.exceeded
            else (1, limit.remaining, -limit.reset_after)
        ),
    )
