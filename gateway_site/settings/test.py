"""Settings for the test suite: the base settings with test-only conveniences."""

from gateway_site.settings.base import *  # noqa: F403
from gateway_site.settings.base import CACHES, REDIS_URL

SECRET_KEY = "test-only-secret-key-not-for-production"  # noqa: S105

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if not REDIS_URL:
    # One process runs the suite; keep its cache in memory and out of DATA_DIR.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES["default"]["KEY_PREFIX"] = "gateway-test"
