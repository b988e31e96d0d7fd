"""A circuit breaker per service whose state lives in Django's default cache.

Why not pybreaker: ``CircuitBreaker.call`` holds the breaker's lock for the
whole guarded call (``with self._lock: return self.state.call(...)``), so under
gunicorn's gthread workers every call to one service would queue behind the
slowest one; it cannot guard a streamed response that outlives ``call``; its
only shared storage is Redis (``CircuitRedisStorage``), not the on-disk cache of
the embedded default; and its half-open state lets every worker's next call
through instead of one probe. This breaker keeps three cache keys per service
(failure count, open-until timestamp, probe token), so every worker and every
gateway process on the same cache sees one state: Redis when ``REDIS_URL`` is
set, otherwise the on-disk cache all workers on the box share.

When the cache itself fails the breaker stays closed (fails open): an outage of
the cache must not take every upstream down with it.
"""

import logging
import math
import time
from dataclasses import dataclass

from django.core.cache import caches

from gateway_site import metrics

logger = logging.getLogger("gateway_site.upstream.breaker")


class BreakerOpen(Exception):
    def __init__(self, service: str, retry_after: int):
        super().__init__(service)
        self.service = service
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Ticket:
    """What ``Breaker.allow`` granted: a normal call, or the half-open probe."""

    probe: bool
    failures: int


class Breaker:
    def __init__(self, name: str, *, threshold: int, recovery: float, probe_ttl: float):
        self.name = name
        self.threshold = threshold
        self.recovery = recovery
        self.probe_ttl = max(int(math.ceil(probe_ttl)), 1)
        self.window = max(int(math.ceil(recovery)), 60)
        prefix = f"gw:breaker:{name}:"
        self.failures_key = prefix + "failures"
        self.open_key = prefix + "open_until"
        self.probe_key = prefix + "probe"

    @property
    def cache(self):
        return caches["default"]

    def allow(self) -> Ticket:
        """Let a call through, or raise BreakerOpen while the circuit is open."""
        try:
            state = self.cache.get_many([self.open_key, self.failures_key])
        except Exception:
            logger.exception(
                "Breaker state of %s unreadable; treating as closed", self.name
            )
            return Ticket(probe=False, failures=0)
        failures = state.get(self.failures_key) or 0
        open_until = state.get(self.open_key)
        if open_until is None:
            return Ticket(probe=False, failures=failures)
        wait = open_until - time.time()
        if wait > 0:
            raise BreakerOpen(self.name, max(int(math.ceil(wait)), 1))
        # Half-open: exactly one caller, in any process, wins the probe token.
        try:
            won = self.cache.add(self.probe_key, 1, timeout=self.probe_ttl)
        except Exception:
            logger.exception("Breaker probe token of %s unavailable", self.name)
            won = False
        if won:
            logger.info("Circuit of %s half-open: probing", self.name)
            metrics.set_breaker_state(self.name, "half-open")
            return Ticket(probe=True, failures=failures)
        raise BreakerOpen(self.name, 1)

    def success(self, ticket: Ticket) -> None:
        if not ticket.probe and not ticket.failures:
            return  # the common case costs no cache write
        try:
            if ticket.probe:
                self.cache.delete_many(
                    [self.open_key, self.probe_key, self.failures_key]
                )
                logger.info("Circuit of %s closed", self.name)
                metrics.set_breaker_state(self.name, "closed")
            else:
                self.cache.delete(self.failures_key)
        except Exception:
            logger.exception("Breaker state of %s not updated", self.name)

    def failure(self, ticket: Ticket) -> None:
        try:
            if ticket.probe:
                self._open()
                return
            # Failures count within a window (at least a minute, or one
            # recovery period); a success resets them.
            self.cache.add(self.failures_key, 0, timeout=self.window)
            count = self.cache.incr(self.failures_key)
        except ValueError:  # the key expired between add and incr
            count = 1
        except Exception:
            logger.exception("Breaker state of %s not updated", self.name)
            return
        if count is not None and count >= self.threshold:
            self._open()

    def _open(self) -> None:
        self.cache.set(self.open_key, time.time() + self.recovery, timeout=None)
        self.cache.delete_many([self.failures_key, self.probe_key])
        logger.warning("Circuit of %s open for %.0f s", self.name, self.recovery)
        metrics.set_breaker_state(self.name, "open")

    def state(self) -> str:
        try:
            open_until = self.cache.get(self.open_key)
        except Exception:
            return "unknown"
        if open_until is None:
            return "closed"
        return "open" if open_until > time.time() else "half-open"
