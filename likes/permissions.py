import hmac

from rest_framework.permissions import BasePermission

from likes.conf import conf

API_KEY_HEADER = "HTTP_X_API_KEY"


def api_key_is_valid(presented: str) -> bool:
    """Tell whether ``presented`` is an accepted stats API key (constant time)."""
    expected = conf.ADMIN_API_KEY
    if not expected or not presented:
        # No key configured means the endpoint is closed; there is no fallback.
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


class HasStatsAPIKey(BasePermission):
    message = "A valid X-API-Key header is required."

    def has_permission(self, request, view):
        return api_key_is_valid(request.META.get(API_KEY_HEADER, ""))
