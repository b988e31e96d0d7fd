import logging
import uuid
from http import HTTPStatus

from django.core.cache import caches
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from gateway_site.gateway import health as upstream_health
from gateway_site.gateway import registry
from likes.http import json_response

logger = logging.getLogger("gateway_site.ready")


def health(request):
    """Liveness: the process answers. Readiness (database, cache) is /ready."""
    return JsonResponse({"status": "healthy", "timestamp": timezone.now().isoformat()})


def ready(request):
    """Readiness: 200 when the database and the cache work, else 503.

    Each upstream service's health is reported as the data plane last probed
    it (in the background, every ``[health] interval``; nothing waits on a
    service here), with its breaker state. It does not make the site unready:
    the breaker answers for the service.
    """
    checks = {"database": _database_ok(), "cache": _cache_ok()}
    try:
        upstreams = upstream_health.recorded(registry.get())
    except Exception:  # a bad services file is a system check error, not a crash
        logger.exception("Upstream health unavailable")
        upstreams = {}
    ok = all(checks.values())
    return json_response(
        {
            "status": "ready" if ok else "unavailable",
            "timestamp": timezone.now().isoformat(),
            "checks": {
                name: "ok" if good else "failed" for name, good in checks.items()
            },
            "upstreams": upstreams,
        },
        status=HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
    )


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.exception("Database check failed")
        return False


def _cache_ok() -> bool:
    key = f"gw:ready:{uuid.uuid4().hex}"
    try:
        cache = caches["default"]
        cache.set(key, 1, timeout=10)
        good = cache.get(key) == 1
        cache.delete(key)
        return good
    except Exception:
        logger.exception("Cache check failed")
        return False
