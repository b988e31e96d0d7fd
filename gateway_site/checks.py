"""Project-level system checks: configurations that must not start."""

import os

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

# Cache backends whose counters live inside one process.
PROCESS_LOCAL_CACHES = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)


def default_workers() -> int:
    """Gunicorn workers when WEB_CONCURRENCY is unset: one per usable CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(cpus, 2)


def configured_workers() -> int:
    raw = os.environ.get("WEB_CONCURRENCY", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else default_workers()


def configured_timeout() -> int:
    """Gunicorn's worker timeout (GUNICORN_TIMEOUT): Cloudflare gives up at 100 s."""
    raw = os.environ.get("GUNICORN_TIMEOUT", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 95


def cache_is_shared() -> bool:
    return settings.CACHES["default"]["BACKEND"] not in PROCESS_LOCAL_CACHES


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
    if workers > 1 and not cache_is_shared():
        return [
            Error(
                f"The cache backend {settings.CACHES['default']['BACKEND']} is "
                f"local to one process, but {workers} workers would serve traffic.",
                hint="Set REDIS_URL, keep the default on-disk cache, or set "
                "WEB_CONCURRENCY=1.",
                id="gateway_site.E002",
            )
        ]
    return []


# --- API gateway services file (gateway_site/upstream/config.py) -------------

SERVICES_CHECK_IDS = {
    "file": "gateway_site.E010",
    "value": "gateway_site.E011",
    "unknown": "gateway_site.E012",
}


@register()
def check_gateway_services(app_configs, **kwargs):
    """The services file parses, and every service and field in it is valid."""
    from gateway_site.upstream.conf import conf
    from gateway_site.upstream.config import load
    from gateway_site.upstream.retry import budget

    path = conf.SERVICES_FILE
    config, problems = load(path, os.environ)
    errors = [
        Error(
            f"Gateway services file {path}: {problem.where} {problem.message}.",
            hint="Fix the file (GATEWAY_SERVICES_FILE) or the environment variable "
            "named; README.md, 'API gateway', lists the fields.",
            id=SERVICES_CHECK_IDS[problem.kind],
        )
        for problem in problems
    ]
    limit = budget(configured_timeout())
    for service in config.services.values():
        if service.timeout > limit:
            errors.append(
                Error(
                    f"Gateway service {service.name}: timeout {service.timeout:g} s "
                    f"exceeds the {limit:g} s that GUNICORN_TIMEOUT="
                    f"{configured_timeout()} leaves for a proxied request.",
                    hint=f"Lower services.{service.name}.timeout or raise "
                    "GUNICORN_TIMEOUT.",
                    id="gateway_site.E013",
                )
            )
    return errors
