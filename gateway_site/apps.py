from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class GatewaySiteConfig(AppConfig):
    name = "gateway_site"
    verbose_name = "Gateway site"

    def ready(self):
        from gateway_site import checks  # noqa: F401  (registers the system checks)


class GatewayAdminConfig(admin_apps.AdminConfig):
    """Django's admin app with our AdminSite (named in INSTALLED_APPS)."""

    default = False
    default_site = "gateway_site.admin.AdminSite"
