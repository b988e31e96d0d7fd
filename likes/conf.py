"""App settings with defaults, read lazily so ``override_settings`` works."""

from typing import Any, Generic, TypeVar, overload

from django.conf import settings

from likes.validators import POST_ID_MAX_LENGTH

T = TypeVar("T")


class Setting(Generic[T]):
    """A Django setting with its default, read on every access (never cached)."""

    def __init__(self, name: str, default: T, doc: str, *, or_empty: bool = False):
        self.name = name
        self.default = default
        # Text settings an env file may leave None or empty: both read as "".
        self.or_empty = or_empty
        self.__doc__ = doc

    @overload
    def __get__(self, instance: None, owner: type) -> "Setting[T]": ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self  # on the class: the setting itself, for its docstring
        value = getattr(settings, self.name, self.default)
        return (value or "") if self.or_empty else value


class Settings:
    ADMIN_API_KEY = Setting(
        "LIKES_ADMIN_API_KEY",
        "",
        "A stats API key configured outside the database (``ADMIN_API_KEY``).",
        or_empty=True,
    )
    BATCH_MAX = Setting(
        "LIKES_BATCH_MAX", 100, "How many ids one batch request may ask for."
    )
    # Not a setting: the database column's length.
    POST_ID_MAX_LENGTH = POST_ID_MAX_LENGTH
    CLIENT_IP_HEADER = Setting(
        "LIKES_CLIENT_IP_HEADER",
        "",
        "A header a trusted proxy sets to the client's IP; empty: REMOTE_ADDR.",
        or_empty=True,
    )
    POST_RATE = Setting(
        "LIKES_POST_RATE",
        "10/m",
        "Likes and unlikes per client IP (django-ratelimit rate).",
    )
    GET_RATE = Setting(
        "LIKES_GET_RATE", "120/m", "Count reads per client IP (django-ratelimit rate)."
    )
    READ_CACHE_SECONDS = Setting(
        "LIKES_READ_CACHE_SECONDS",
        5,
        "Seconds browsers and CDNs may reuse a count read (Cache-Control "
        "max-age); 0 turns caching off.",
    )
    API_KEY_FAILURE_RATE = Setting(
        "LIKES_API_KEY_FAILURE_RATE",
        "5/m",
        "Wrong API keys tolerated per client IP before a 429 (rate string).",
    )
    NETWORK_DAILY_CAP = Setting(
        "LIKES_NETWORK_DAILY_CAP",
        10,
        "Likes a day accepted per post from one network (0: no cap).",
    )
    DEDUPE = Setting(
        "LIKES_DEDUPE",
        True,
        "Ignore a repeat like of one post from the same visitor for 24-48 h.",
    )
    SITE_URL = Setting(
        "LIKES_SITE_URL",
        "",
        "The blog, for admin links: a base URL or a ``{post_id}`` template.",
        or_empty=True,
    )
    WEBHOOK_DELIVERY = Setting(
        "LIKES_WEBHOOK_DELIVERY",
        "auto",
        'Who sends webhook events: "auto" (gunicorn runs the sender) or "command".',
    )
    WEBHOOK_POLL_SECONDS = Setting(
        "LIKES_WEBHOOK_POLL_SECONDS", 2.0, "How often a sender looks for events due."
    )
    WEBHOOK_RETRY_SECONDS = Setting(
        "LIKES_WEBHOOK_RETRY_SECONDS",
        30.0,
        "First wait before a failed delivery is tried again (it doubles).",
    )
    WEBHOOK_MAX_ATTEMPTS = Setting(
        "LIKES_WEBHOOK_MAX_ATTEMPTS", 8, "Tries before a delivery is marked failed."
    )
    WEBHOOK_TIMEOUT = Setting(
        "LIKES_WEBHOOK_TIMEOUT", 10.0, "Seconds a receiver may take to answer."
    )
    REACTIONS = Setting(
        "LIKES_REACTIONS",
        "",
        "Reactions beside the like, comma-separated emoji or short names (at "
        "most 8); empty: the like alone.",
        or_empty=True,
    )
    # Not a setting: how long visitor hashes and their salts are kept.
    HASH_RETENTION_HOURS = 48


conf = Settings()
