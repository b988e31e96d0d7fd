from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from gateway_site.gateway.clientkeys import derive_secret
from gateway_site.gateway.models import ClientKey


@admin.register(ClientKey)
class ClientKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "key_id", "user", "is_active", "created_at", "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("name", "key_id", "user__username")
    readonly_fields = ("key_id", "created_at", "last_used_at")
    fields = ("name", "user", "is_active", "key_id", "created_at", "last_used_at")
    raw_id_fields = ("user",)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            # Shown once: the secret is derived, never stored.
            messages.warning(
                request,
                _(
                    "Key %(key_id)s: its secret is %(secret)s — copy it now, "
                    "it will not be shown again."
                )
                % {"key_id": obj.key_id, "secret": derive_secret(obj.key_id, obj.salt)},
            )
