"""A circuit breaker per service whose state lives in the shared store.

Why not pybreaker: ``CircuitBreaker.call`` holds the breaker's lock for the
whole guarded call, so every call to one service would queue behind the
slowest one; it cannot guard a streamed response that outlives ``call``; its
only shared storage is Redis, not the embedded default's shared table; and its
half-open state lets every worker's next call through instead of one probe.
This breaker keeps three keys per service in the store (failure count,
open-until timestamp, probe token), so every worker and every replica sees one
state: Redis when ``REDIS_URL`` is set, otherwise the table all processes on
the box share (gateway_site/gateway/store.py).

When the store fails the breaker stays closed (fails open): an outage of the
store must not take every upstream down with it.
"""

import logging
import math
import time
from dataclasses import dataclass

from gateway_site import metrics
from gateway_site.gateway.store import StoreUnavailable

logger = logging.getLogger("gateway_site.gateway.breaker")


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


CLOSED = Ticket(probe=False, failures=0)
HALF_OPEN_TTL = 86400


class Breaker:
    def __init__(
        self, name: str, *, store, threshold: int, recovery: float, probe_ttl: float
    ):
        self.name = name
        self.store = store
        self.threshold = threshold
        self.recovery = recovery
        self.probe_ttl = max(int(math.ceil(probe_ttl)), 1)
        self.window = max(int(math.ceil(recovery)), 60)
        prefix = f"breaker:{name}:"
        self.failures_key = prefix + "failures"
        self.open_key = prefix + "open_until"
        self.probe_key = prefix + "probe"
        self._keys = [self.open_key, self.failures_key]

    async def allow(self) -> Ticket:
        """Let a call through, or raise BreakerOpen while the circuit is open."""
        try:
            open_until, failures = await self.store.aget_numbers(self._keys)
        except StoreUnavailable:
            return CLOSED
        if open_until is None:
            return (
                Ticket(probe=False, failures=int(failures or 0)) if failures else CLOSED
            )
        wait = open_until - time.time()
        if wait > 0:
            raise BreakerOpen(self.name, max(int(math.ceil(wait)), 1))
        # Half-open: exactly one caller, in any process, wins the probe token.
        try:
            won = await self.store.aadd_number(self.probe_key, 1, self.probe_ttl)
        except StoreUnavailable:
            won = False
        if won:
            logger.info("Circuit of %s half-open: probing", self.name)
            metrics.set_breaker_state(self.name, "half-open")
            return Ticket(probe=True, failures=int(failures or 0))
        raise BreakerOpen(self.name, 1)

    async def success(self, ticket: Ticket) -> None:
        if not ticket.probe and not ticket.failures:
            return  # the common case costs no write
        try:
            if ticket.probe:
                await self.store.adelete_numbers(
                    [self.open_key, self.probe_key, self.failures_key]
                )
                logger.info("Circuit of %s closed", self.name)
                metrics.set_breaker_state(self.name, "closed")
            else:
                await self.store.adelete_numbers([self.failures_key])
        except StoreUnavailable:
            logger.warning("Breaker state of %s not updated", self.name)

    async def failure(self, ticket: Ticket) -> None:
        try:
            if ticket.probe:
                await self._open()
                return
            # Failures count within a window (at least a minute, or one
            # recovery period); a success resets them.
            count = await self.store.ahit(self.failures_key, self.window)
            if count >= self.threshold:
                await self._open()
        except StoreUnavailable:
            logger.warning("Breaker state of %s not updated", self.name)

    async def _open(self) -> None:
        # The key outlives the recovery time: an open_until in the past is the
        # half-open state, which only a probe's answer ends.
        await self.store.aset_number(
            self.open_key, time.time() + self.recovery, self.recovery + HALF_OPEN_TTL
        )
        await self.store.adelete_numbers([self.failures_key, self.probe_key])
        logger.warning("Circuit of %s open for %.0f s", self.name, self.recovery)
        metrics.set_breaker_state(self.name, "open")

    def state(self) -> dict:
        """{"state": closed|open|half-open|unknown, "retry_in": seconds} (blocking)."""
        try:
            (open_until,) = self.store.get_numbers([self.open_key])
        except StoreUnavailable:
            return {"state": "unknown", "retry_in": None}
        if open_until is None:
            return {"state": "closed", "retry_in": None}
        wait = open_until - time.time()
        if wait > 0:
            return {"state": "open", "retry_in": max(int(math.ceil(wait)), 1)}
        return {"state": "half-open", "retry_in": 0}
