"""WSGI entry point for gunicorn (see gateway_site/gunicorn.conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings.base")

django_application = get_wsgi_application()

from gateway_site.fastpath import FastReads  # noqa: E402  (needs the apps loaded)

# Count reads (GET /likes/<post_id>) are answered without Django's request
# cycle, the same way; everything else is Django's (gateway_site/fastpath.py).
application = FastReads(django_application)
