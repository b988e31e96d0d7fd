"""Settings for gateway_site, driven entirely by environment variables.

Every variable is documented in README.md ("Configuration"). Production behaviour
is switched by environment variables with safe defaults; nothing lives in a
separate production module.
"""

import json
import os
from pathlib import Path

import environ

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
DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    # Django
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Third party
    "corsheaders",
    "rest_framework",
    # Local
    "likes",
    "gateway_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "gateway_site.middleware.AdminSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "gateway_site.middleware.AdminCsrfViewMiddleware",
    "gateway_site.middleware.AdminAuthenticationMiddleware",
    "gateway_site.middleware.AdminMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

# --- Cache ------------------------------------------------------------------
# Rate limits and breaker state must be shared by every worker: Redis when
# REDIS_URL is set, otherwise an on-disk cache in DATA_DIR that all gunicorn
# workers on the box open (atomic increments through SQLite transactions).

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "gateway",
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 5,
                "SOCKET_TIMEOUT": 5,
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "diskcache.DjangoCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "TIMEOUT": 300,
            "SHARDS": 4,
            "DATABASE_TIMEOUT": 0.25,
        }
    }

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
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1_048_576)

# --- CORS (django-cors-headers) ---------------------------------------------
# Only the public likes API is callable cross-origin, and only from CORS_ORIGINS.

CORS_ALLOWED_ORIGINS = env_list(
    "CORS_ORIGINS", ["http://localhost:1313", "http://127.0.0.1:1313"]
)
CORS_URLS_REGEX = r"^/likes(/.*)?$"
CORS_ALLOW_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
CORS_PREFLIGHT_MAX_AGE = 86400

# --- REST framework ---------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "likes.http.exception_handler",
}

# --- Likes app --------------------------------------------------------------

LIKES_ADMIN_API_KEY = env.str("ADMIN_API_KEY", default="")

# --- Logging ----------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
