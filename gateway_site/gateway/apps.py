from django.apps import AppConfig
from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save


class GatewayConfig(AppConfig):
    name = "gateway_site.gateway"
    label = "gateway"
    verbose_name = "API gateway"

    def ready(self):
        from gateway_site.gateway import auth, checks, clientkeys  # noqa: F401
        from gateway_site.gateway.models import ClientKey

        # A new password, a deactivation or a deletion revokes the user's
        # tokens at once on every worker: their cached state is dropped.
        user_model = get_user_model()
        post_save.connect(
            auth.invalidate_user, sender=user_model, dispatch_uid="gateway-user-saved"
        )
        post_delete.connect(
            auth.invalidate_user, sender=user_model, dispatch_uid="gateway-user-deleted"
        )
        # A revoked or deleted client key stops working at once on every worker.
        for signal, uid in ((post_save, "saved"), (post_delete, "deleted")):
            signal.connect(
                clientkeys.invalidate_key,
                sender=ClientKey,
                dispatch_uid=f"gateway-client-key-{uid}",
            )
