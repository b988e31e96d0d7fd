"""Logging: JSON records carrying the request id and a truncated client IP.

Settings build ``LOGGING`` with :func:`build_logging`. Every handler runs two
filters: :class:`RequestContextFilter` adds ``request_id`` and ``client_ip``
(the request the current thread is serving, set by
``gateway_site.middleware.ObservabilityMiddleware``) and :class:`RedactFilter`
masks credentials. Both work only when a record is actually emitted, so a
request that logs nothing pays for neither.
"""

import logging
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

# The request the current thread (gthread worker) is serving.
current_request: ContextVar = ContextVar("current_request", default=None)
# With tracing on (gateway_site.observability), a function returning the
# current trace id, so that log records and traces can be matched.
trace_id_getter = None

LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LOG_FILE = "gateway_site.log"
ERROR_LOG_FILE = "gateway_site-errors.log"
MAX_BYTES = 10 * 1024 * 1024
REDACTED = "[REDACTED]"

_CLIENT_IP_ATTR = "_log_client_ip"


def clear_request_context(**kwargs) -> None:
    """Forget the request once its response is closed (``request_finished``)."""
    current_request.set(None)


def mask_ip(ip: str) -> str | None:
    """The client's network, not its address: IPv4 by /24, IPv6 by /48."""
    # Imported on first use: this module is loaded while logging is being
    # configured, before the apps are ready.
    from likes.caps import network_of

    return network_of(ip)


def _client_network(request) -> str | None:
    network = getattr(request, _CLIENT_IP_ATTR, False)
    if network is False:
        # Imported on first use: this module is loaded while logging is being
        # configured, before the apps are ready.
        from likes.ratelimit import client_ip

        # client_ip() may itself log (a missing proxy header): that record
        # must not come back here for the same request.
        setattr(request, _CLIENT_IP_ATTR, None)
        network = mask_ip(client_ip(request))
        setattr(request, _CLIENT_IP_ATTR, network)
    return network


class RequestContextFilter(logging.Filter):
    """Add ``request_id``, ``client_ip`` (truncated) and, when tracing, ``trace_id``."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            request = current_request.get()
            if request is None:
                record.request_id = record.client_ip = None
            else:
                record.request_id = getattr(request, "request_id", None)
                record.client_ip = _client_network(request)
        if trace_id_getter is not None and not hasattr(record, "trace_id"):
            record.trace_id = trace_id_getter()
        return True


# Names whose values are credentials, as record extras, mapping keys
# (headers, payloads) or ``name=value`` / ``name: value`` pairs in messages:
# any name ending in one of these words (``access_token``, ``HTTP_X_API_KEY``).
_SENSITIVE = (
    r"[A-Za-z0-9_-]*(?:authorization|cookie|api[_-]?key|apikey|token|secret|"
    r"passw(?:or)?d|pwd|sessionid|credentials?|receipt|jwt)"
)
_SENSITIVE_NAME = re.compile(rf"^{_SENSITIVE}$", re.IGNORECASE)
_PATTERNS = (
    # name=value, name: value, "name": "value", 'name': 'value'; the value may
    # be "Bearer <token>". First, so that later patterns see no half-masked value.
    (
        re.compile(
            rf"""(?P<name>(?<![A-Za-z0-9_-])["']?{_SENSITIVE}["']?\s*[:=]\s*)"""
            r"""(?P<quote>["'])?(?P<value>(?(quote)[^"']*|"""
            r"""(?:\[REDACTED\]|(?:(?:Bearer|Basic|Token)\s+)?[^\s&,;)}\]]+)))""",
            re.IGNORECASE,
        ),
        rf"\g<name>\g<quote>{REDACTED}",
    ),
    # "Bearer <token>", "Basic <credentials>", anywhere.
    (
        re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE),
        rf"\1 {REDACTED}",
    ),
    # JWTs (three base64url parts, the first a JSON header).
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
)


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value):
    """Mask credentials inside ``value``: mappings by key, strings by pattern."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and _SENSITIVE_NAME.match(key)
            else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value


# Attributes every LogRecord has: never extras.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "client_ip",
}


class RedactFilter(logging.Filter):
    """Mask API keys, tokens, passwords, cookies and Authorization values."""

    _formatter = logging.Formatter()

    def filter(self, record):
        if getattr(record, "_redacted", False):
            return True
        message = record.getMessage()
        record.msg, record.args = redact_text(message), None
        if record.exc_info:
            text = self._formatter.formatException(record.exc_info)
            record.exc_text, record.exc_info = redact_text(text), None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        for key in [k for k in vars(record) if k not in _RECORD_ATTRS]:
            if _SENSITIVE_NAME.match(key):
                setattr(record, key, REDACTED)
            else:
                setattr(record, key, redact_value(getattr(record, key)))
        record._redacted = True
        return True


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line: time, level, logger, message, request id, client."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "fmt",
            [
                "asctime",
                "levelname",
                "name",
                "message",
                "request_id",
                "client_ip",
            ],
        )
        kwargs.setdefault(
            "rename_fields",
            {"asctime": "timestamp", "levelname": "level", "name": "logger"},
        )
        # The request object Django attaches to its records says nothing the
        # request id does not, and its repr carries the query string.
        kwargs.setdefault("reserved_attrs", [*_RECORD_ATTRS, "request", "_redacted"])
        super().__init__(**kwargs)

    def formatTime(self, record, datefmt=None):  # noqa: N802
        from datetime import UTC, datetime

        return datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )


HUMAN_FORMAT = "[{asctime}] {levelname} [{name}:{lineno}] [{request_id}] {message}"


def level_name(value: str) -> str:
    """The log level named by ``value``, or INFO (check gateway_site.E022 says why)."""
    value = (value or "").strip().upper()
    return value if value in LEVELS else "INFO"


def build_logging(*, debug: bool, level: str, log_dir: Path | None) -> dict:
    """The LOGGING setting: console always, rotating JSON files in ``log_dir``."""
    level = level_name(level)
    filters = ["request_context", "redact"]
    handlers = {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "human" if debug else "json",
            "filters": filters,
        }
    }
    if log_dir is not None:
        # Several gunicorn workers write one file: a handler that locks around
        # writes and rotation, or workers would rotate over each other.
        rotating = "concurrent_log_handler.ConcurrentRotatingFileHandler"
        handlers["file"] = {
            "class": rotating,
            "filename": str(log_dir / LOG_FILE),
            "maxBytes": MAX_BYTES,
            "backupCount": 5,
            "formatter": "json",
            "filters": filters,
        }
        handlers["error_file"] = {
            "class": rotating,
            "level": "ERROR",
            "filename": str(log_dir / ERROR_LOG_FILE),
            "maxBytes": MAX_BYTES,
            "backupCount": 3,
            "formatter": "json",
            "filters": filters,
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_context": {"()": "gateway_site.logs.RequestContextFilter"},
            "redact": {"()": "gateway_site.logs.RedactFilter"},
        },
        "formatters": {
            "json": {"()": "gateway_site.logs.JsonFormatter"},
            "human": {
                "format": HUMAN_FORMAT,
                "style": "{",
                "datefmt": "%Y-%m-%d %H:%M:%S",
            },
        },
        "handlers": handlers,
        "loggers": {
            # Everything goes to the root's handlers once: Django's own console
            # and mail handlers are replaced.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "gateway_site": {"level": level},
            "likes": {"level": level},
        },
        "root": {"handlers": list(handlers), "level": level},
    }
