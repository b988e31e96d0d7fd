"""Settings for gateway_site, driven entirely by environment variables.

Every variable is documented in README.md ("Configuration"). Production behaviour
is switched by environment variables with safe defaults; nothing lives in a
separate production module.
"""

import contextlib
import hashlib
import json
import os
from importlib.util import find_spec
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A ``.env`` file beside manage.py is read when present; real environment
# variables win. DJANGO_ENV_FILE names another file, or "" to read none.
ENV_FILE = os.environ.get("DJANGO_ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    environ.Env.read_env(ENV_FILE)


def env_list(name: str, default: list[str]) -> list[str]:
    """Read a list given comma-separated or as a JSON list (the seed config's form)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.startswith("["):
        return [str(item).strip() for item in json.loads(raw) if str(item).strip()]
    return [item.strip() for item in raw.split(",") if item.strip()]


def resolve_path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else BASE_DIR / path


# --- Core -------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Never a default secret in production: the gateway_site.E001 check refuses to
# start without one. The fixed value below is only ever used with DEBUG on.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or (
    "django-insecure-dev-only-never-use-in-production" if DEBUG else ""
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
DATA_DIR = resolve_path(env.str("DATA_DIR", default="data"))
# A DATA_DIR that cannot be made is reported by check gateway_site.E030.
with contextlib.suppress(OSError):
    DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    # Django
    "gateway_site.apps.GatewayAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Third party
    "corsheaders",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    # Local
    "likes",
    "gateway_site",
    "gateway_site.gateway",
]

MIDDLEWARE = [
    # First, so that its request id and timer cover the whole chain: every
    # response gets X-Request-ID and X-Processing-Time (also those made by the
    # middleware below: redirects, static files, 400s for bad hosts), it is
    # counted in the metrics, and anything logged below carries the request id.
    "gateway_site.middleware.ObservabilityMiddleware",
    # A Host outside ALLOWED_HOSTS, or a query string hiding control
    # characters (%00, %0A…), is a 400 before any view or library sees it.
    "gateway_site.middleware.RequestGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # X-Frame-Options, CSP and Permissions-Policy, decided once at start.
    "gateway_site.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # Sessions, CommonMiddleware, CSRF, authentication and messages, for the
    # admin only (the public API and the gateway use no cookies).
    "gateway_site.middleware.AdminMiddleware",
]

ROOT_URLCONF = "gateway_site.urls"
WSGI_APPLICATION = "gateway_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Database ---------------------------------------------------------------

DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'likes.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Many writers on one file: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock at BEGIN (no deadlocking lock upgrades),
    # the busy timeout makes writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            "PRAGMA synchronous=NORMAL;"
            "PRAGMA busy_timeout=20000;"
            "PRAGMA cache_size=-8000;"
        ),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = None
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if "postgresql" in DATABASES["default"]["ENGINE"] and not find_spec("psycopg"):
        # Not in requirements/base.txt: the embedded default does without it.
        raise ImproperlyConfigured(
            "DATABASE_URL points to PostgreSQL but psycopg is not installed: "
            "pip install -r requirements/postgres.txt (the Docker image has it)."
        )

# --- Cache ------------------------------------------------------------------
# Two caches, shared by every worker. ``counters`` holds the rate limits
# (django-ratelimit's RATELIMIT_USE_CACHE) and the likes' per-network cap;
# ``default`` anything else. With REDIS_URL both live in Redis. The embedded
# default keeps counters in a table mapped into every worker's memory
# (DATA_DIR/limits.bin: an increment is a lock and a few bytes, no disk
# transaction) and the rest in an on-disk cache in DATA_DIR.

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    _redis = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "gateway",
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 5,
            "SOCKET_TIMEOUT": 5,
            # Redis down: cache calls return nothing instead of raising, so
            # each rate limit's fail-open or fail-closed choice applies.
            "IGNORE_EXCEPTIONS": True,
        },
    }
    CACHES = {"default": _redis, "counters": {**_redis}}
else:
    CACHES = {
        "default": {
            "BACKEND": "gateway_site.cache.DiskCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "TIMEOUT": 300,
            "SHARDS": 4,
            "DATABASE_TIMEOUT": 0.25,
        },
        "counters": {
            "BACKEND": "gateway_site.cache.CounterCache",
            "LOCATION": str(DATA_DIR / "limits.bin"),
        },
    }

# --- Storage ----------------------------------------------------------------
# A DATA_DIR that cannot take the service's data (read-only, full, missing
# rights) stops everything here with one line, before a database or cache
# driver fails on it with a traceback.

if (
    DATABASES["default"]["ENGINE"].endswith("sqlite3")
    and str(DATABASES["default"].get("NAME", "")).startswith(str(DATA_DIR))
) or not REDIS_URL:
    from gateway_site.storage import data_dir_problem  # noqa: E402

    if _problem := data_dir_problem(DATA_DIR):
        raise SystemExit(f"Refusing to start: DATA_DIR {DATA_DIR}: {_problem}.")

# --- Static files -----------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = resolve_path(env.str("STATIC_ROOT", default="staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security ---------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]
X_FRAME_OPTIONS = "DENY"
# A refused form post (the admin's) answers JSON like every other error.
CSRF_FAILURE_VIEW = "likes.http.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
# HSTS is sent only on HTTPS requests. Behind a Cloudflare Tunnel the origin
# speaks plain HTTP, so name the header the proxy sets (X-Forwarded-Proto) in
# SECURE_PROXY_SSL_HEADER; only do so when the origin is reachable through the
# proxy alone, or a client could claim HTTPS.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + _proxy_ssl_header.upper().replace("-", "_"),
        "https",
    )
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool(
    "SECURE_COOKIES", default=not DEBUG
)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Probes (the container health check, load balancers) speak plain HTTP to the
# origin itself; a redirect would send them to the public site.
SECURE_REDIRECT_EXEMPT = [r"^(health|ready)$"]
SILENCED_SYSTEM_CHECKS = [
    # TLS ends at Cloudflare (or another proxy) and the origin is reached over
    # a private tunnel in plain HTTP; the proxy redirects to HTTPS ("Always Use
    # HTTPS"). Set SECURE_SSL_REDIRECT=true when Django faces clients directly.
    "security.W008",
    # Preloading HSTS is a commitment for the whole domain; opt in at
    # hstspreload.org and with SECURE_HSTS_PRELOAD=true, not by default.
    "security.W021",
    # Sessions, CSRF, authentication and messages run inside
    # gateway_site.middleware.AdminMiddleware, for the admin: the only part
    # that uses cookies (the public API and the gateway are cookie-free).
    # Django's checks look for those classes in MIDDLEWARE by name;
    # tests/test_middleware.py checks the admin's sessions, CSRF and messages.
    "security.W003",
    "admin.E408",
    "admin.E409",
    "admin.E410",
    # X-Frame-Options is set by gateway_site.middleware.SecurityHeadersMiddleware.
    "security.W002",
    # gateway_site.cache.CounterCache (the embedded default's counters) is not
    # on django-ratelimit's list, but its increments are atomic across all
    # workers: tests/test_ratelimit.py counts across processes.
    "django_ratelimit.W001",
]
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Request bodies: the public API reads at most a receipt.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=65_536)

# --- CORS (django-cors-headers) ---------------------------------------------
# Only the public likes API is callable cross-origin, and only from CORS_ORIGINS.

CORS_ALLOWED_ORIGINS = env_list(
    "CORS_ORIGINS", ["http://localhost:1313", "http://127.0.0.1:1313"]
)
CORS_URLS_REGEX = r"^/(likes(/.*)?|api/popular)$"
CORS_ALLOW_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
CORS_ALLOW_HEADERS = ("content-type", "x-like-receipt")
CORS_EXPOSE_HEADERS = (
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
CORS_PREFLIGHT_MAX_AGE = 86400

# --- REST framework ---------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["likes.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "likes.http.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Likes and API gateway",
    "DESCRIPTION": "Self-hosted like counts for static sites.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The public likes endpoints are plain Django views; their paths are
    # written out in likes/openapi.py.
    "PREPROCESSING_HOOKS": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "likes.openapi.add_public_paths",
    ],
}

# --- Likes app --------------------------------------------------------------

LIKES_ADMIN_API_KEY = env.str("ADMIN_API_KEY", default="")
LIKES_CLIENT_IP_HEADER = env.str("CLIENT_IP_HEADER", default="")
LIKES_SITE_URL = env.str("LIKES_SITE_URL", default="")
LIKES_POST_RATE = env.str("LIKES_POST_RATE", default="10/m")
LIKES_GET_RATE = env.str("LIKES_GET_RATE", default="120/m")
LIKES_DEDUPE = env.bool("LIKES_DEDUPE", default=True)
# Reactions beside the like, e.g. "👍,❤️,🎉,😄,🤔" (at most 8); empty: none.
LIKES_REACTIONS = env.str("LIKES_REACTIONS", default="")
# Likes a day accepted per post from one client network (IPv4 /24, IPv6 /48),
# beside the dedupe; 0 turns the cap off (LIKES_DEDUPE=off does too).
LIKES_NETWORK_DAILY_CAP = env.int("LIKES_NETWORK_DAILY_CAP", default=10)
# Wrong stats API keys (X-API-Key, /metrics' bearer key) per client IP; then 429.
LIKES_API_KEY_FAILURE_RATE = env.str("LIKES_API_KEY_FAILURE_RATE", default="5/m")
# Seconds browsers and CDNs may reuse a count read (Cache-Control max-age);
# 0: revalidate every time (ETag, 304).
LIKES_READ_CACHE_SECONDS = env.int("LIKES_READ_CACHE_SECONDS", default=5)
# Webhooks (docs/webhooks.md): "auto": gunicorn runs `manage.py likes_deliver`
# beside its workers; "command": you run it yourself (or several, or none).
LIKES_WEBHOOK_DELIVERY = env.str("LIKES_WEBHOOK_DELIVERY", default="auto")
LIKES_WEBHOOK_POLL_SECONDS = env.float("LIKES_WEBHOOK_POLL_SECONDS", default=2.0)
LIKES_WEBHOOK_RETRY_SECONDS = env.float("LIKES_WEBHOOK_RETRY_SECONDS", default=30.0)
LIKES_WEBHOOK_MAX_ATTEMPTS = env.int("LIKES_WEBHOOK_MAX_ATTEMPTS", default=8)
LIKES_WEBHOOK_TIMEOUT = env.float("LIKES_WEBHOOK_TIMEOUT", default=10.0)

# --- API gateway (gateway_site/gateway, docs/gateway.md) --------------------
# Share of gateway requests kept for the console's request flow (0-1); the
# console's counts always cover every request.
GATEWAY_CONSOLE_SAMPLE_RATE = env.float("GATEWAY_CONSOLE_SAMPLE_RATE", default=1.0)

# No service on a fresh install. Upstream services are declared in a TOML file
# (gateway_site/services.example.toml shows the design's four); without one,
# setting one of those four's <NAME>_URL serves it with the example's values.

GATEWAY_SERVICES_FILE = (
    resolve_path(env.str("GATEWAY_SERVICES_FILE"))
    if env.str("GATEWAY_SERVICES_FILE", default="")
    else None
)
GATEWAY_MAX_BODY_SIZE = env.int("GATEWAY_MAX_BODY_SIZE", default=10 * 1024 * 1024)
GATEWAY_CONNECT_TIMEOUT = env.float("GATEWAY_CONNECT_TIMEOUT", default=5.0)
# Upstream calls in flight at once per instance, all services together; each
# service may have its own max_concurrent in the services file. Over it: 503.
GATEWAY_MAX_CONCURRENT = env.int("GATEWAY_MAX_CONCURRENT", default=4096)
# Prefix of the gateway's keys in Redis (or the embedded store): two
# deployments sharing one Redis database keep apart with their own prefixes.
GATEWAY_STORE_PREFIX = env.str("GATEWAY_STORE_PREFIX", default="gw:")
# How long the data plane keeps a token's user state (active, password hash);
# saving or deleting the user drops it at once.
GATEWAY_USER_CACHE_SECONDS = env.int("GATEWAY_USER_CACHE_SECONDS", default=1800)

# --- Rate limiting (django-ratelimit) ---------------------------------------

RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "counters"
# Each limit chooses: the likes API fails open, the admin login fails closed.
RATELIMIT_FAIL_OPEN = False
ADMIN_LOGIN_RATE = env.str("ADMIN_LOGIN_RATE", default="5/m")

# --- Gateway: JWT authentication and rate-limit tiers ----------------------
# Unset JWT_SECRET_KEY: HMAC tokens are signed with a key derived from
# DJANGO_SECRET_KEY (gateway_site/gateway/conf.py), never a built-in value.

JWT_SECRET_KEY = env.str("JWT_SECRET_KEY", default="")
JWT_ALGORITHM = env.str("JWT_ALGORITHM", default="HS256")
JWT_ACCESS_TOKEN_EXPIRE_MINUTES = env.int("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", default=30)
JWT_REFRESH_TOKEN_EXPIRE_DAYS = env.int("JWT_REFRESH_TOKEN_EXPIRE_DAYS", default=7)
# Sign-in attempts at /token per client IP; fails closed like the admin login.
GATEWAY_LOGIN_RATE = env.str("GATEWAY_LOGIN_RATE", default="5/m")
GATEWAY_RATE_ANONYMOUS = env.str("GATEWAY_RATE_ANONYMOUS", default="100/h")
GATEWAY_RATE_AUTHENTICATED = env.str("GATEWAY_RATE_AUTHENTICATED", default="1000/h")
GATEWAY_RATE_ADMIN = env.str("GATEWAY_RATE_ADMIN", default="10000/h")
GATEWAY_RATE_PROCESSING = env.str("GATEWAY_RATE_PROCESSING", default="50/h")
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"].append(
    "gateway_site.gateway.views.add_openapi_paths"
)

# --- Logging, metrics, tracing (README.md "Observability") -------------------

from gateway_site.logs import build_logging  # noqa: E402

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# Unset: console only. Set: rotating JSON files there too (check gateway_site.E021).
LOG_DIR = resolve_path(env.str("LOG_DIR")) if env.str("LOG_DIR", default="") else None
if LOG_DIR is not None:
    with contextlib.suppress(OSError):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
LOGGING = build_logging(
    debug=DEBUG,
    level=LOG_LEVEL,
    log_dir=LOG_DIR if LOG_DIR is not None and os.access(LOG_DIR, os.W_OK) else None,
)
# One JSON line per request (logger gateway_site.access); off for speed.
LOG_REQUESTS = env.bool("LOG_REQUESTS", default=False)
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.0/8", "::1"])
# Addresses and networks that may open /admin/ (empty: any). The client's
# address as CLIENT_IP_HEADER gives it: behind a tunnel, set that too.
ADMIN_ALLOWED_IPS = env_list("ADMIN_ALLOWED_IPS", [])
METRICS_REQUIRE_KEY = env.bool("METRICS_REQUIRE_KEY", default=False)
# Where gunicorn's workers share their metrics (gateway_site/gunicorn.conf.py).
# In memory (/dev/shm) by default: prometheus-client grows its files sparsely,
# and a write into a sparse page on a full disk kills the worker (SIGBUS).
# One directory per DATA_DIR, so two instances on one box keep apart.
_SHM = Path("/dev/shm")
METRICS_DIR = resolve_path(
    env.str(
        "PROMETHEUS_MULTIPROC_DIR",
        default=str(
            _SHM / f"gateway-site-{hashlib.sha256(bytes(DATA_DIR)).hexdigest()[:12]}"
            if _SHM.is_dir() and os.access(_SHM, os.W_OK)
            else DATA_DIR / "prometheus"
        ),
    )
)
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus-client writes there from its first metric: it must exist.
    with contextlib.suppress(OSError):
        METRICS_DIR.mkdir(parents=True, exist_ok=True)
