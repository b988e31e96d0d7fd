"""Project-level system checks: configurations that must not start."""

import importlib.util
import os

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from gateway_site.server import configured_workers

# Cache backends whose counters live inside one process.
PROCESS_LOCAL_CACHES = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)


def process_local_caches() -> list[str]:
    """The configured caches (``default``, ``counters``) local to one process."""
    return [
        f"{alias} ({config['BACKEND']})"
        for alias, config in settings.CACHES.items()
        if config["BACKEND"] in PROCESS_LOCAL_CACHES
    ]


def cache_is_shared() -> bool:
    return not process_local_caches()


@register()
def check_secret_key(app_configs, **kwargs):
    try:
        settings.SECRET_KEY  # noqa: B018  (raises when empty)
    except ImproperlyConfigured:
        return [
            Error(
                "DJANGO_SECRET_KEY is not set and DJANGO_DEBUG is false.",
                hint="Set DJANGO_SECRET_KEY to a long random value, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`. "
                "`make run` writes one into .env for you.",
                id="gateway_site.E001",
            )
        ]
    return []


@register(deploy=False)
def check_shared_cache(app_configs, **kwargs):
    """Refuse several workers on a per-process cache: rate limits would not add up."""
    workers = configured_workers()
    local = process_local_caches()
    if workers > 1 and local:
        return [
            Error(
                f"The cache {', '.join(local)} is local to one process, but "
                f"{workers} workers would serve traffic.",
                hint="Set REDIS_URL, keep the default on-disk cache, or set "
                "WEB_CONCURRENCY=1.",
                id="gateway_site.E002",
            )
        ]
    return []


# --- Observability (logs, metrics, tracing) ------------------------------------


@register()
def check_observability(app_configs, **kwargs):
    """Refuse unreadable observability settings instead of ignoring them at run time."""
    import ipaddress
    from urllib.parse import urlsplit

    from gateway_site.logs import LEVELS

    errors = []
    for name, check_id in (
        ("METRICS_ALLOWED_IPS", "gateway_site.E020"),
        ("ADMIN_ALLOWED_IPS", "gateway_site.E025"),
    ):
        for value in getattr(settings, name, []):
            try:
                ipaddress.ip_network(value.strip(), strict=False)
            except ValueError:
                errors.append(
                    Error(
                        f"{name} has {value!r}, not an IP address or network.",
                        hint="A comma-separated list, e.g. 127.0.0.0/8,::1,10.0.0.0/8.",
                        id=check_id,
                    )
                )
    log_dir = getattr(settings, "LOG_DIR", None)
    if log_dir is not None and not (log_dir.is_dir() and os.access(log_dir, os.W_OK)):
        errors.append(
            Error(
                f"LOG_DIR {log_dir} is not a writable directory; logs would go to "
                "the console only.",
                hint="Create it for the user the service runs as, or unset LOG_DIR.",
                id="gateway_site.E021",
            )
        )
    level = str(getattr(settings, "LOG_LEVEL", "") or "").strip()
    if level and level.upper() not in LEVELS:
        errors.append(
            Error(
                f"LOG_LEVEL is {level!r}.",
                hint=f"Use one of {', '.join(LEVELS)}.",
                id="gateway_site.E022",
            )
        )
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(
                Error(
                    f"OTEL_EXPORTER_OTLP_ENDPOINT is {endpoint!r}, not an http(s) URL.",
                    hint="The OTLP/HTTP receiver's base URL, e.g. http://jaeger:4318 "
                    "(spans go to /v1/traces under it).",
                    id="gateway_site.E023",
                )
            )
        elif not module_available(TRACING_MODULE):
            errors.append(
                Error(
                    "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not "
                    "installed.",
                    hint="pip install -r requirements/tracing.txt (the Docker image "
                    "has it), or unset OTEL_EXPORTER_OTLP_ENDPOINT.",
                    id="gateway_site.E024",
                )
            )
    return errors


TRACING_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def module_available(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package is missing or blocked
        return False


# --- Storage (gateway_site/storage.py) ----------------------------------------


@register()
def check_storage(app_configs, **kwargs):
    """Refuse to start on a corrupt SQLite database (DATA_DIR: settings/base.py)."""
    from gateway_site.storage import sqlite_problem

    problem = sqlite_problem()
    if problem:
        return [
            Error(
                f"The SQLite database {settings.DATABASES['default']['NAME']} is "
                f"{problem}.",
                hint="Restore the latest backup (manage.py likes_restore), or move "
                "the file away to start empty.",
                id="gateway_site.E031",
            )
        ]
    return []
