"""The gateway's settings with defaults, read lazily so ``override_settings`` works.

One class for everything the gateway reads: the services file and upstream
limits, the JWT settings of its bearer tokens, and the rate-limit tiers.
"""

import hashlib
import hmac
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from likes.conf import Setting

# The four services of the design, with their values: served only when the
# operator names a file (GATEWAY_SERVICES_FILE) or sets one's <NAME>_URL.
EXAMPLE_SERVICES_FILE = Path(__file__).resolve().parent.parent / "services.example.toml"

# Without JWT_SECRET_KEY, HMAC tokens are signed with a key derived from
# DJANGO_SECRET_KEY under this label: a separate key (a token signature never
# doubles as a Django signature) that changes when the Django secret does.
DERIVED_KEY_LABEL = b"gateway_site.auth:jwt-signing-key"


@lru_cache(maxsize=4)
def derived_signing_key(secret: str) -> str:
    return hmac.new(secret.encode(), DERIVED_KEY_LABEL, hashlib.sha512).hexdigest()


class GatewaySettings:
    # --- Upstream services ---------------------------------------------------

    _SERVICES_FILE = Setting(
        "GATEWAY_SERVICES_FILE", None, "The operator's services file, if any."
    )

    @property
    def SERVICES_FILE(self) -> Path | None:  # noqa: N802
        """The operator's services file (``GATEWAY_SERVICES_FILE``), or None."""
        value = self._SERVICES_FILE
        return Path(value) if value else None

    MAX_BODY_SIZE = Setting(
        "GATEWAY_MAX_BODY_SIZE",
        10 * 1024 * 1024,
        "Largest request body the proxy forwards, in bytes; larger is 413.",
    )
    CONNECT_TIMEOUT = Setting(
        "GATEWAY_CONNECT_TIMEOUT",
        5.0,
        "Seconds to open a connection to a replica (capped by its timeout).",
    )
    REPLAY_BUFFER_SIZE = Setting(
        "GATEWAY_REPLAY_BUFFER_SIZE",
        1024 * 1024,
        "Request bodies up to this size are buffered so a retry can resend them.",
    )
    MAX_CONCURRENT = Setting(
        "GATEWAY_MAX_CONCURRENT",
        4096,
        "Upstream calls in flight at once, all services together, per instance.",
    )
    STORE_PREFIX = Setting(
        "GATEWAY_STORE_PREFIX",
        "gw:",
        "Prefix of the gateway's keys in the shared store (Redis or DATA_DIR).",
    )
    USER_CACHE_SECONDS = Setting(
        "GATEWAY_USER_CACHE_SECONDS",
        1800,
        "How long the state of a token's user (active, password) is cached.",
    )

    # --- Bearer tokens (JWT) -------------------------------------------------

    JWT_ALGORITHM = Setting(
        "JWT_ALGORITHM",
        "HS256",
        "The algorithm tokens are signed with; RS*/ES* need a PEM private key.",
    )
    JWT_SECRET_KEY = Setting(
        "JWT_SECRET_KEY",
        "",
        "The configured key: an HMAC secret, or a PEM private key for RS*/ES*.",
        or_empty=True,
    )

    @property
    def JWT_SIGNING_KEY(self) -> str:  # noqa: N802
        """The key tokens are signed with: JWT_SECRET_KEY, else one derived."""
        return self.JWT_SECRET_KEY or derived_signing_key(settings.SECRET_KEY)

    _ACCESS_TOKEN_MINUTES = Setting(
        "JWT_ACCESS_TOKEN_EXPIRE_MINUTES", 30, "Access token lifetime, in minutes."
    )
    _REFRESH_TOKEN_DAYS = Setting(
        "JWT_REFRESH_TOKEN_EXPIRE_DAYS", 7, "Refresh token lifetime, in days."
    )

    @property
    def ACCESS_TOKEN_LIFETIME(self) -> timedelta:  # noqa: N802
        """How long an access token is accepted."""
        return timedelta(minutes=self._ACCESS_TOKEN_MINUTES)

    @property
    def REFRESH_TOKEN_LIFETIME(self) -> timedelta:  # noqa: N802
        """How long a refresh token is accepted."""
        return timedelta(days=self._REFRESH_TOKEN_DAYS)

    LOGIN_RATE = Setting(
        "GATEWAY_LOGIN_RATE",
        "5/m",
        "Attempts at /token and /token/refresh per client IP (rate string).",
    )

    # --- Rate-limit tiers ----------------------------------------------------

    RATE_ANONYMOUS = Setting(
        "GATEWAY_RATE_ANONYMOUS",
        "100/h",
        "Requests per anonymous client IP (IPv6 by /64), rate string.",
    )
    RATE_AUTHENTICATED = Setting(
        "GATEWAY_RATE_AUTHENTICATED", "1000/h", "Requests per user (rate string)."
    )
    RATE_ADMIN = Setting(
        "GATEWAY_RATE_ADMIN", "10000/h", "Requests per staff user (rate string)."
    )
    RATE_PROCESSING = Setting(
        "GATEWAY_RATE_PROCESSING",
        "50/h",
        "Calls that make an upstream do work, per caller, on top of its tier.",
    )


conf = GatewaySettings()
