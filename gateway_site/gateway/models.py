from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.translation import gettext_lazy as _

KEY_ID_PREFIX = "gk_"


def new_key_id() -> str:
    return KEY_ID_PREFIX + get_random_string(16)


def new_salt() -> str:
    return get_random_string(32)


class ClientKey(models.Model):
    """A machine client's HMAC key for the gateway (gateway/clientkeys.py).

    The secret is not stored: it is derived from the key id, this row's random
    salt and the server's secret key, shown once when the key is made, and
    derived again to verify a request. Deleting or deactivating the row revokes it.
    """

    key_id = models.CharField(
        _("key id"), max_length=40, unique=True, default=new_key_id, editable=False
    )
    name = models.CharField(_("name"), max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="gateway_client_keys",
        verbose_name=_("acts as user"),
    )
    salt = models.CharField(max_length=64, default=new_salt, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("client HMAC key")
        verbose_name_plural = _("client HMAC keys")

    def __str__(self):
        return f"{self.name} ({self.key_id})"
