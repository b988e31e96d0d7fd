"""Gateway settings with defaults, read lazily so ``override_settings`` works."""

from pathlib import Path

from django.conf import settings

DEFAULT_SERVICES_FILE = Path(__file__).resolve().parent.parent / "services.toml"


class Settings:
    @property
    def SERVICES_FILE(self) -> Path:  # noqa: N802
        """The declarative services file (``GATEWAY_SERVICES_FILE``)."""
        return Path(getattr(settings, "GATEWAY_SERVICES_FILE", DEFAULT_SERVICES_FILE))

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


conf = Settings()
