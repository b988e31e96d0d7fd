import logging
import uuid
from http import HTTPStatus

from django.core.cache import caches
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import JSONRenderer

from gateway_site import storage
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
    checks = {"database": _database_state(), "cache": _cache_state()}
    try:
        upstreams = upstream_health.recorded(registry.get())
    except Exception:  # a bad services file is a system check error, not a crash
        logger.exception("Upstream health unavailable")
        upstreams = {}
    ok = all(state == "ok" for state in checks.values())
    return json_response(
        {
            "status": "ready" if ok else "unavailable",
            "timestamp": timezone.now().isoformat(),
            "checks": checks,
            "upstreams": upstreams,
        },
        status=HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
    )


def _database_state() -> str:
    """ok, failed, or corrupt (SQLite's quick_check, every few minutes)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            answered = cursor.fetchone() == (1,)
    except Exception:
        answered = False
    problem = storage.sqlite_problem_cached()
    if problem:
        logger.error("The database is %s", problem)
        return "corrupt"
    if not answered:
        logger.error("Database check failed")
        return "failed"
    return "ok"


def _cache_state() -> str:
    return "ok" if _cache_ok() else "failed"


def _cache_ok() -> bool:
    key = f"gw:ready:{uuid.uuid4().hex}"
    try:
        good = True
        for alias in ("default", "counters"):
            cache = caches[alias]
            cache.set(key, 1, timeout=10)
            good = good and cache.get(key) == 1
            cache.delete(key)
        return good
    except Exception:
        logger.exception("Cache check failed")
        return False


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema; its errors (an unknown ?format=…) answer JSON too."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = "application/json"
            if isinstance(response.data, dict) and not response.data.get("detail"):
                response.data["detail"] = "No such schema format."
        return response
