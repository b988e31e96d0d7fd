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

    @property
    def SERVICES_FILE(self) -> Path | None:  # noqa: N802
        """The operator's services file (``GATEWAY_SERVICES_FILE``), or None."""
        value = getattr(settings, "GATEWAY_SERVICES_FILE", None)
        return Path(value) if value else None

    @property
    def MAX_BODY_SIZE(self) -> int:  # noqa: N802
        """Largest request body the proxy forwards, in bytes; larger is 413."""
        return getattr(settings, "GATEWAY_MAX_BODY_SIZE", 10 * 1024 * 1024)

    @property
    def CONNECT_TIMEOUT(self) -> float:  # noqa: N802
        """Seconds to open a connection to a replica (capped by its timeout)."""
        return getattr(settings, "GATEWAY_CONNECT_TIMEOUT", 5.0)

    @property
    def REPLAY_BUFFER_SIZE(self) -> int:  # noqa: N802
        """Request bodies up to this size are buffered so a retry can resend them."""
        return getattr(settings, "GATEWAY_REPLAY_BUFFER_SIZE", 1024 * 1024)

    @property
    def MAX_CONCURRENT(self) -> int:  # noqa: N802
        """Upstream calls in flight at once, all services together, per instance."""
        return getattr(settings, "GATEWAY_MAX_CONCURRENT", 4096)

    @property
    def STORE_PREFIX(self) -> str:  # noqa: N802
        """Prefix of the gateway's keys in the shared store (Redis or DATA_DIR)."""
        return getattr(settings, "GATEWAY_STORE_PREFIX", "gw:")

    @property
    def USER_CACHE_SECONDS(self) -> int:  # noqa: N802
        """How long the state of a token's user (active, password) is cached."""
        return getattr(settings, "GATEWAY_USER_CACHE_SECONDS", 1800)

    # --- Bearer tokens (JWT) -------------------------------------------------

    @property
    def JWT_ALGORITHM(self) -> str:  # noqa: N802
        return getattr(settings, "JWT_ALGORITHM", "HS256")

    @property
    def JWT_SECRET_KEY(self) -> str:  # noqa: N802
        """The configured key: an HMAC secret, or a PEM private key for RS*/ES*."""
        return getattr(settings, "JWT_SECRET_KEY", "") or ""

    @property
    def JWT_SIGNING_KEY(self) -> str:  # noqa: N802
        return self.JWT_SECRET_KEY or derived_signing_key(settings.SECRET_KEY)

    @property
    def ACCESS_TOKEN_LIFETIME(self) -> timedelta:  # noqa: N802
        return timedelta(
            minutes=getattr(settings, "JWT_ACCESS_TOKEN_EXPIRE_MINUTES", 30)
        )

    @property
    def REFRESH_TOKEN_LIFETIME(self) -> timedelta:  # noqa: N802
        return timedelta(days=getattr(settings, "JWT_REFRESH_TOKEN_EXPIRE_DAYS", 7))

    @property
    def LOGIN_RATE(self) -> str:  # noqa: N802
        """Attempts at /token and /token/refresh per client IP (rate string)."""
        return getattr(settings, "GATEWAY_LOGIN_RATE", "5/m")

    # --- Rate-limit tiers ----------------------------------------------------

    @property
    def RATE_ANONYMOUS(self) -> str:  # noqa: N802
        return getattr(settings, "GATEWAY_RATE_ANONYMOUS", "100/h")

    @property
    def RATE_AUTHENTICATED(self) -> str:  # noqa: N802
        return getattr(settings, "GATEWAY_RATE_AUTHENTICATED", "1000/h")

    @property
    def RATE_ADMIN(self) -> str:  # noqa: N802
        return getattr(settings, "GATEWAY_RATE_ADMIN", "10000/h")

    @property
    def RATE_PROCESSING(self) -> str:  # noqa: N802
        return getattr(settings, "GATEWAY_RATE_PROCESSING", "50/h")


conf = GatewaySettings()
