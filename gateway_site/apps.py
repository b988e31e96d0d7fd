from django.apps import AppConfig


class GatewaySiteConfig(AppConfig):
    name = "gateway_site"
    verbose_name = "Gateway site"

    def ready(self):
        from gateway_site import checks  # noqa: F401  (registers the system checks)
