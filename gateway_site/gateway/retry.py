"""Which requests may be retried, and how long to wait before the next try."""

import random
import time
from email.utils import parsedate_to_datetime

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
# Statuses whose Retry-After the gateway honours before trying again.
RETRY_AFTER_STATUSES = frozenset({429, 503})
# gunicorn kills a worker after GUNICORN_TIMEOUT; leave this much of it for
# answering the client after the last try.
BUDGET_MARGIN = 5.0


def budget(worker_timeout: float) -> float:
    """Seconds all tries of one request may take, below gunicorn's timeout."""
    return max(worker_timeout - BUDGET_MARGIN, worker_timeout / 2, 1.0)


def may_retry(method: str, headers: dict[str, str]) -> bool:
    """Idempotent methods, or a POST/PATCH the client marked with Idempotency-Key.

    ``headers``: the request's, by lower-case name.
    """
    return method in IDEMPOTENT_METHODS or bool(headers.get("idempotency-key"))


def backoff(attempt: int, base: float) -> float:
    """Full jitter: uniform in [0, base * 2**attempt] (attempt counts from 0)."""
    return random.uniform(0, base * (2**attempt))


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(when.timestamp() - time.time(), 0.0)
