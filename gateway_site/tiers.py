"""Rate-limit tiers of the gateway: anonymous, authenticated, admin, processing.

Built on likes.ratelimit (one place counts, builds the headers and the 429):
anonymous callers are counted by client IP, users by user id. A processing
call (one that makes an upstream do work) also counts against the processing
limit. The tiers fail open: with the shared cache down the gateway keeps
serving, and the upstreams' circuit breakers still protect them.
"""

from django.conf import settings

from likes.ratelimit import Limit, check, ip_bucket

ANONYMOUS = "gateway-anonymous"
AUTHENTICATED = "gateway-authenticated"
ADMIN = "gateway-admin"
PROCESSING = "gateway-processing"


class TierSettings:
    """The ``GATEWAY_RATE_*`` settings (django-ratelimit rates), read lazily."""

    @property
    def ANONYMOUS(self) -> str:  # noqa: N802
        return getattr(settings, "GATEWAY_RATE_ANONYMOUS", "100/h")

    @property
    def AUTHENTICATED(self) -> str:  # noqa: N802
        return getattr(settings, "GATEWAY_RATE_AUTHENTICATED", "1000/h")

    @property
    def ADMIN(self) -> str:  # noqa: N802
        return getattr(settings, "GATEWAY_RATE_ADMIN", "10000/h")

    @property
    def PROCESSING(self) -> str:  # noqa: N802
        return getattr(settings, "GATEWAY_RATE_PROCESSING", "50/h")


tier_conf = TierSettings()


def user_bucket(user):
    """Rate-limit key function for one user: by id, wherever they call from."""
    bucket = f"user:{user.pk}"
    return lambda group, request: bucket


def tier(user) -> tuple[str, str]:
    """The tier policy and rate for ``user`` (None: anonymous)."""
    if user is None:
        return ANONYMOUS, tier_conf.ANONYMOUS
    if user.is_staff or user.is_superuser:
        return ADMIN, tier_conf.ADMIN
    return AUTHENTICATED, tier_conf.AUTHENTICATED


def limit_request(request, *, user, processing: bool) -> Limit | None:
    """Count this request against its tier (and processing); the tighter Limit.

    ``user`` is the authenticated user or None. The caller answers
    ``too_many_requests(limit)`` when ``limit.exceeded``, else adds
    ``limit.headers()``; None means rate limiting is off.
    """
    key = ip_bucket if user is None else user_bucket(user)
    policy, rate = tier(user)
    limits = [check(request, policy=policy, rate=rate, key=key, fail_open=True)]
    if processing:
        limits.append(
            check(
                request,
                policy=PROCESSING,
                rate=tier_conf.PROCESSING,
                key=key,
                fail_open=True,
            )
        )
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
