from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LikesConfig(AppConfig):
    name = "likes"
    verbose_name = _("Likes")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from corsheaders.signals import check_request_enabled
        from django.db.models.signals import post_migrate

        from likes import (
            checks,  # noqa: F401  (registers the system checks)
            sites,
        )

        check_request_enabled.connect(
            sites.cors_signal, dispatch_uid="likes.sites.cors_signal"
        )
        # Also after a flush (manage.py flush, the test suite's), as
        # django.contrib.sites does: the default site holds the posts.
        post_migrate.connect(
            sites.create_default_site,
            sender=self,
            dispatch_uid="likes.sites.create_default_site",
        )
