"""App settings with defaults, read lazily so ``override_settings`` works."""

from django.conf import settings


class Settings:
    @property
    def ADMIN_API_KEY(self) -> str:  # noqa: N802
        """A stats API key configured outside the database (``ADMIN_API_KEY``)."""
        return getattr(settings, "LIKES_ADMIN_API_KEY", "") or ""

    @property
    def BATCH_MAX(self) -> int:  # noqa: N802
        """How many ids one batch request may ask for."""
        return getattr(settings, "LIKES_BATCH_MAX", 100)

    @property
    def POST_ID_MAX_LENGTH(self) -> int:  # noqa: N802
        return 200


conf = Settings()
