"""Stats API keys: create, list and revoke them (the likes_apikey command)."""

from django.db import transaction

from likes.models import APIKey
from likes.services import ServiceError


def apikey_create(*, name: str) -> tuple[APIKey, str]:
    """Create a stats API key; return it and the key text, which is not stored."""
    name = name.strip()
    max_length = APIKey._meta.get_field("name").max_length
    if not name:
        raise ServiceError("The key needs a name (--name).")
    if len(name) > max_length:
        raise ServiceError(f"The name must be at most {max_length} characters.")
    with transaction.atomic():
        return APIKey.objects.create_key(name=name)


def apikey_list() -> list[APIKey]:
    """Return all API keys, oldest first."""
    return list(APIKey.objects.order_by("created", "prefix"))


def apikey_revoke(*, prefix: str) -> tuple[APIKey, bool]:
    """Revoke the key with ``prefix``; tell whether it was still active."""
    with transaction.atomic():
        key = APIKey.objects.select_for_update().filter(prefix=prefix).first()
        if key is None:
            raise ServiceError(f"No API key with prefix {prefix!r}.")
        if key.revoked:
            return key, False
        key.revoked = True
        key.save(update_fields=["revoked"])
    return key, True
