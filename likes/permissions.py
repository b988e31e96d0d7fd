import contextlib
import datetime
import hmac

from django.db import OperationalError
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from likes import ratelimit
from likes.conf import conf
from likes.models import APIKey

API_KEY_HEADER = "HTTP_X_API_KEY"
# Record use at most this often per key: no database write on every request.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


def api_key_is_valid(presented: str, found: dict | None = None) -> bool:
    """Tell whether ``presented`` is an accepted stats API key.

    Accepted: ``ADMIN_API_KEY`` (compared in constant time) or an unrevoked,
    unexpired key created in the admin or with ``likes_apikey``. With neither
    configured the stats API is closed: there is no fallback key. A key of
    one site puts that site's id in ``found["site_id"]`` (None: any site).
    """
    if not presented:
        return False
    expected = conf.ADMIN_API_KEY
    if expected and hmac.compare_digest(presented.encode(), expected.encode()):
        return True
    if "." not in presented or len(presented) > 100:
        return False
    try:
        key = APIKey.objects.get_from_key(presented)
    except APIKey.DoesNotExist:
        return False
    if key.has_expired:
        return False
    if found is not None:
        found["site_id"] = key.site_id
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        # Bookkeeping: a full disk must not refuse a valid key.
        with contextlib.suppress(OperationalError):
            APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return True


class TooManyKeyAttempts(exceptions.Throttled):
    default_code = "rate_limited"

    def __init__(self, limit):
        super().__init__(
            wait=max(limit.reset_after, 1),
            detail="Too many wrong API keys from this address; try again in "
            f"{max(limit.reset_after, 1)} s.",
        )
        self.limit = limit


def key_accepted(request, presented: str) -> bool:
    """:func:`api_key_is_valid`, with wrong keys counted per client IP.

    Past ``LIKES_API_KEY_FAILURE_RATE`` wrong keys (5 a minute), the address
    gets ``TooManyKeyAttempts`` (a 429) without its key even being checked, so
    keys cannot be guessed at the speed of the server.
    """
    if not presented:
        return False
    policy, rate = "api-key-failures", conf.API_KEY_FAILURE_RATE
    # Keys are 40 random characters: with the cache down, let them be checked.
    seen = ratelimit.check(
        request, policy=policy, rate=rate, fail_open=True, increment=False
    )
    if seen is not None and (seen.exceeded or seen.remaining == 0):
        raise TooManyKeyAttempts(seen)
    found = {"site_id": None}
    if api_key_is_valid(presented, found):
        request.likes_key_site_id = found["site_id"]
        return True
    ratelimit.check(request, policy=policy, rate=rate, fail_open=True)
    return False


class HasStatsAPIKey(BasePermission):
    message = "A valid X-API-Key header is required."

    def has_permission(self, request, view):
        return key_accepted(request._request, request.META.get(API_KEY_HEADER, ""))
