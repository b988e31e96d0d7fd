"""Project-level system checks: configurations that must not start."""

import importlib.util
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


# --- Gateway authentication (JWT) and rate-limit tiers -----------------------

RATE_SETTINGS = (
    "ADMIN_LOGIN_RATE",
    "GATEWAY_LOGIN_RATE",
    "GATEWAY_RATE_ANONYMOUS",
    "GATEWAY_RATE_AUTHENTICATED",
    "GATEWAY_RATE_ADMIN",
    "GATEWAY_RATE_PROCESSING",
)


@register()
def check_jwt(app_configs, **kwargs):
    """Refuse JWT settings that would sign weakly or not at all."""
    from gateway_site.auth import ALGORITHMS, HMAC_KEY_BYTES, jwt_conf

    errors = []
    algorithm = jwt_conf.ALGORITHM
    key = jwt_conf.SECRET_KEY
    if algorithm not in ALGORITHMS:
        errors.append(
            Error(
                f"JWT_ALGORITHM {algorithm!r} is not supported.",
                hint="Use one of " + ", ".join(sorted(ALGORITHMS)) + ".",
                id="gateway_site.E101",
            )
        )
    elif algorithm in HMAC_KEY_BYTES:
        if key and not hmac_key_usable(algorithm, key):
            errors.append(
                Error(
                    f"JWT_SECRET_KEY is a PEM key, which {algorithm} cannot use.",
                    hint="Use a long random secret for HS*, or set JWT_ALGORITHM "
                    "to the RS*/ES* algorithm of that key.",
                    id="gateway_site.E102",
                )
            )
        elif key and len(key.encode()) < HMAC_KEY_BYTES[algorithm]:
            errors.append(
                Error(
                    f"JWT_SECRET_KEY is shorter than {HMAC_KEY_BYTES[algorithm]} "
                    f"bytes, too short for {algorithm}.",
                    hint="Use a long random value, e.g. the output of "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`, "
                    "or unset it to derive one from DJANGO_SECRET_KEY.",
                    id="gateway_site.E102",
                )
            )
    else:
        problem = asymmetric_key_problem(algorithm, key)
        if problem:
            errors.append(
                Error(
                    f"JWT_ALGORITHM {algorithm} needs {problem}.",
                    hint="Set JWT_SECRET_KEY to a PEM private key and install the "
                    "cryptography package, or use HS256.",
                    id="gateway_site.E103",
                )
            )
    for name in ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "JWT_REFRESH_TOKEN_EXPIRE_DAYS"):
        value = getattr(settings, name, 1)
        if type(value) is not int or value < 1:
            errors.append(
                Error(
                    f"{name} must be a positive whole number, not {value!r}.",
                    id="gateway_site.E104",
                )
            )
    return errors


def hmac_key_usable(algorithm: str, key: str) -> bool:
    """Whether PyJWT accepts ``key`` for an HS* algorithm (it refuses PEM keys)."""
    import jwt

    try:
        jwt.PyJWS().get_algorithm_by_name(algorithm).prepare_key(key)
    except jwt.InvalidKeyError:
        return False
    return True


def asymmetric_key_problem(algorithm: str, key: str) -> str:
    """What an RS*/ES* configuration lacks, or "" when the key loads."""
    import jwt
    from jwt.algorithms import has_crypto

    if not has_crypto:
        return "the cryptography package"
    if not key:
        return "JWT_SECRET_KEY set to a PEM private key"
    try:
        private = jwt.PyJWS().get_algorithm_by_name(algorithm).prepare_key(key)
    except Exception:  # any parse failure: the key is unusable
        return "a JWT_SECRET_KEY that is a valid PEM private key"
    if not hasattr(private, "public_key"):
        return "a private key in JWT_SECRET_KEY, not a public one"
    return ""


@register()
def check_gateway_rates(app_configs, **kwargs):
    """Refuse rates django-ratelimit would misread."""
    from likes.ratelimit import is_rate

    return [
        Error(
            f"{name} is not a rate: {getattr(settings, name, None)!r}.",
            hint='Use "<count>/<period>", e.g. "100/h" or "5/m".',
            id="gateway_site.E105",
        )
        for name in RATE_SETTINGS
        if not is_rate(getattr(settings, name, None))
    ]


# --- Observability (logs, metrics, tracing) ------------------------------------


@register()
def check_observability(app_configs, **kwargs):
    """Refuse unreadable observability settings instead of ignoring them at run time."""
    import ipaddress
    from urllib.parse import urlsplit

    from gateway_site.logs import LEVELS

    errors = []
    for value in getattr(settings, "METRICS_ALLOWED_IPS", []):
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            errors.append(
                Error(
                    f"METRICS_ALLOWED_IPS has {value!r}, not an IP address or network.",
                    hint="A comma-separated list, e.g. 127.0.0.0/8,::1,10.0.0.0/8.",
                    id="gateway_site.E020",
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
