import datetime
import hmac

from django.utils import timezone
from rest_framework.permissions import BasePermission

from likes.conf import conf
from likes.models import APIKey

API_KEY_HEADER = "HTTP_X_API_KEY"
# Record use at most this often per key: no database write on every request.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


def api_key_is_valid(presented: str) -> bool:
    """Tell whether ``presented`` is an accepted stats API key.

    Accepted: ``ADMIN_API_KEY`` (compared in constant time) or an unrevoked,
    unexpired key created in the admin or with ``likes_apikey``. With neither
    configured the stats API is closed: there is no fallback key.
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
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return True


class HasStatsAPIKey(BasePermission):
    message = "A valid X-API-Key header is required."

    def has_permission(self, request, view):
        return api_key_is_valid(request.META.get(API_KEY_HEADER, ""))
