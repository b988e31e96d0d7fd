from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LikesConfig(AppConfig):
    name = "likes"
    verbose_name = _("Likes")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from likes import checks  # noqa: F401  (registers the system checks)
