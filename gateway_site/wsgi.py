"""WSGI entry point: Django, as gateway_site/asgi.py runs it on its threads."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings.base")

application = get_wsgi_application()
