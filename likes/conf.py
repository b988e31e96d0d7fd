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

    @property
    def CLIENT_IP_HEADER(self) -> str:  # noqa: N802
        """A header a trusted proxy sets to the client's IP; empty: REMOTE_ADDR."""
        return getattr(settings, "LIKES_CLIENT_IP_HEADER", "") or ""

    @property
    def POST_RATE(self) -> str:  # noqa: N802
        """Likes and unlikes per client IP (django-ratelimit rate)."""
        return getattr(settings, "LIKES_POST_RATE", "10/m")

    @property
    def GET_RATE(self) -> str:  # noqa: N802
        """Count reads per client IP (django-ratelimit rate)."""
        return getattr(settings, "LIKES_GET_RATE", "120/m")

    @property
    def API_KEY_FAILURE_RATE(self) -> str:  # noqa: N802
        """Wrong API keys tolerated per client IP before a 429 (rate string)."""
        return getattr(settings, "LIKES_API_KEY_FAILURE_RATE", "5/m")

    @property
    def NETWORK_DAILY_CAP(self) -> int:  # noqa: N802
        """Likes a day accepted per post from one network (0: no cap)."""
        return getattr(settings, "LIKES_NETWORK_DAILY_CAP", 10)

    @property
    def DEDUPE(self) -> bool:  # noqa: N802
        """Ignore a repeat like of one post from the same visitor for 24-48 h."""
        return getattr(settings, "LIKES_DEDUPE", True)

    @property
    def SITE_URL(self) -> str:  # noqa: N802
        """The blog, for admin links: a base URL or a ``{post_id}`` template."""
        return getattr(settings, "LIKES_SITE_URL", "") or ""

    @property
    def HASH_RETENTION_HOURS(self) -> int:  # noqa: N802
        return 48


conf = Settings()
