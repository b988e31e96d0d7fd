"""WSGI entry point for gunicorn (see gateway_site/gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings.base")

application = get_wsgi_application()
