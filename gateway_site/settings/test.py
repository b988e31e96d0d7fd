"""Settings for the test suite: the base settings with test-only conveniences."""

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path

from gateway_site.settings.base import *  # noqa: F403
from gateway_site.settings.base import CACHES, REDIS_URL

SECRET_KEY = "test-only-secret-key-not-for-production"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests that exercise rate limits turn them on (tests/test_ratelimit.py).
RATELIMIT_ENABLE = False
# Serve app static files straight from the apps, no collectstatic needed.
STATIC_ROOT = tempfile.mkdtemp(prefix="likes-test-static-")
atexit.register(shutil.rmtree, STATIC_ROOT, ignore_errors=True)
WHITENOISE_USE_FINDERS = True
# The caches and the gateway's shared store: a throwaway DATA_DIR for the
# embedded default, keys of this run only in Redis.
DATA_DIR = Path(tempfile.mkdtemp(prefix="likes-test-data-"))
atexit.register(shutil.rmtree, DATA_DIR, ignore_errors=True)
if REDIS_URL:
    CACHES["default"]["KEY_PREFIX"] = CACHES["counters"]["KEY_PREFIX"] = "gateway-test"
else:
    # The same caches as the embedded default, in the throwaway directory.
    CACHES["default"]["LOCATION"] = str(DATA_DIR / "cache")
    CACHES["counters"]["LOCATION"] = str(DATA_DIR / "limits.bin")
GATEWAY_STORE_PREFIX = f"gw-test-{uuid.uuid4().hex[:8]}:"
