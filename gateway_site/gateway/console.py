"""The gateway console: what the data plane records, and what the admin reads.

Every request to a configured service leaves, once its answer has been sent:

- counts in the shared store (gateway_site/gateway/store.py), in buckets of
  ``BUCKET`` seconds kept ``KEEP`` seconds: requests, errors (5xx) and a
  latency histogram per service and per replica (one count per try), cache
  hits and misses, the tiers' refusals. Counts are exact across workers (and
  across instances with Redis); percentiles are read from the histogram, so
  they are the upper bound of the bucket they fall in.
- a record of the request in a ring of the last ``FLOW_SIZE`` (no body, no
  token, no query string, the client's network only), found again by its
  request id.

A worker gathers these in memory after each response and writes them together
(``Recorder``: one Redis pipeline, or inline updates of the embedded store's
mapped files), at most every ``FLUSH_EVERY`` seconds, so neither the client nor
the next request waits on them. Each worker also publishes its calls in flight
every second.
"""

import asyncio
import contextlib
import contextvars
import json
import logging
import math
import os
import random
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from gateway_site import counters
from gateway_site.gateway.store import RedisStore, StoreUnavailable
from gateway_site.logs import mask_ip

logger = logging.getLogger("gateway_site.gateway.console")

BUCKET = 10  # seconds per counter bucket
WINDOWS = (1, 5, 15)  # minutes shown
KEEP = 16 * 60  # seconds a bucket is kept
# Upper bounds (ms) of the latency histogram; the last bucket is open-ended.
LATENCY_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
FIELDS = ("n", "e", "hit", "miss", *(f"l{i}" for i in range(len(LATENCY_MS) + 1)))
# A service's requests per caller tier (the flow diagram's edges).
CALLER_TIERS = {
    "gateway-anonymous": "ta",
    "gateway-authenticated": "tu",
    "gateway-admin": "tm",
}
SERVICE_FIELDS = (*FIELDS, *CALLER_TIERS.values())
FLOW_SIZE = 200
FLOW_RECORD_BYTES = 4096  # the most a request's record takes in the embedded ring
FLUSH_EVERY = 0.2  # seconds: the most often a worker writes its records
FLOW_TTL = 15 * 60
SEQ_KEY = "con:flow:seq"
SEQ_TTL = 86400
WORKER_SLOTS = 128  # worker processes that can publish their calls in flight
SLOT_TTL = 5
FAILED = frozenset({"server_error", "timeout", "connect", "reset", "error"})
TIERS = (
    "gateway-anonymous",
    "gateway-authenticated",
    "gateway-admin",
    "gateway-processing",
)

current: contextvars.ContextVar["Trace | None"] = contextvars.ContextVar(
    "gateway_console_trace", default=None
)


def sample_rate() -> float:
    """GATEWAY_CONSOLE_SAMPLE_RATE: the share of requests whose flow is kept."""
    return float(getattr(settings, "GATEWAY_CONSOLE_SAMPLE_RATE", 1.0))


def latency_bucket(ms: float) -> int:
    for index, bound in enumerate(LATENCY_MS):
        if ms <= bound:
            return index
    return len(LATENCY_MS)


def replica_address(url: str) -> str:
    """host:port of a replica, never its credentials or path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


@dataclass(slots=True)
class Attempt:
    replica: int
    outcome: str
    status: int | None
    at_ms: float
    ms: float


@dataclass(slots=True)
class Trace:
    """What one gateway request did, filled in as it goes."""

    request_id: str
    method: str
    path: str
    network: str | None
    started: float = field(default_factory=time.time)
    clock: float = field(default_factory=time.monotonic)
    service: str | None = None
    user: str = "anonymous"
    tier: str | None = None
    refused_by: str | None = None
    cache: str | None = None
    breaker: str | None = None
    attempts: list = field(default_factory=list)
    ejected: list = field(default_factory=list)
    readmitted: list = field(default_factory=list)

    def since(self, moment: float) -> float:
        return round((moment - self.clock) * 1000, 2)

    def attempt(self, replica: int, outcome: str, status, sent: float, ended: float):
        self.attempts.append(
            Attempt(
                replica,
                outcome,
                status,
                self.since(sent),
                round((ended - sent) * 1000, 2),
            )
        )

    def record(self, status: int, total_ms: float) -> dict:
        return {
            "request_id": self.request_id,
            "at": round(self.started, 3),
            "method": self.method,
            "path": self.path,
            "network": self.network,
            "user": self.user,
            "tier": self.tier,
            "service": self.service,
            "cache": self.cache,
            "breaker": self.breaker,
            "attempts": [
                {
                    "replica": a.replica,
                    "outcome": a.outcome,
                    "status": a.status,
                    "at_ms": a.at_ms,
                    "ms": a.ms,
                }
                for a in self.attempts
            ],
            "status": status,
            "ms": round(total_ms, 2),
        }


def begin(request) -> Trace:
    return Trace(
        request_id=request.request_id,
        method=request.method,
        # The path only: a query string may carry secrets.
        path=request.path[:300],
        network=mask_ip(request.client_ip),
    )


def note(**values) -> None:
    """Set fields of the current request's trace (if any)."""
    trace = current.get()
    if trace is not None:
        for name, value in values.items():
            setattr(trace, name, value)


# --- keys -------------------------------------------------------------------------


def bucket_of(moment: float) -> int:
    return int(moment // BUCKET)


def counter_key(bucket: int, scope: str, name: str) -> str:
    return f"con:{bucket}:{scope}:{name}"


def service_scope(service: str) -> str:
    return f"s:{service}"


def replica_scope(service: str, index: int) -> str:
    return f"r:{service}:{index}"


def tier_scope(policy: str) -> str:
    return f"t:{policy}"


def ejected_key(service: str, index: int) -> str:
    return f"con:ej:{service}:{index}"


def flow_slot_key(slot: int | str) -> str:
    return f"con:flow:{slot}"


def flow_id_key(request_id: str) -> str:
    return f"con:flowid:{request_id}"


def inflight_key(slot: int, service: str) -> str:
    return f"con:inflight:{slot}:{service}"


# --- writing (the data plane) -------------------------------------------------------


# Takes the ring's next slot and writes the record there, in one step on the
# server: KEYS = sequence, id key; ARGV = slot key prefix, size, ttl ms, record.
FLOW_SCRIPT = """
local slot = redis.call('INCR', KEYS[1]) % tonumber(ARGV[2])
redis.call('SET', ARGV[1] .. slot, ARGV[4], 'PX', ARGV[3])
redis.call('SET', KEYS[2], slot, 'PX', ARGV[3])
return slot
"""


def flow_ring(store) -> counters.SharedRing:
    """The embedded store's ring of recent requests (a mapped file)."""
    return counters.ring(
        store.data_dir / "console-flows.bin",
        size=FLOW_SIZE,
        record_bytes=FLOW_RECORD_BYTES,
    )


async def apply(store, hits: dict[str, int], numbers=(), deletes=(), flows=()):
    """Add ``hits`` ({key: count}, kept KEEP s), set ``numbers`` (key, value,
    ttl), drop ``deletes`` and add ``flows`` ((request id, record), oldest
    first) to the ring of recent requests.

    Redis: one round trip (a pipeline). Embedded: inline updates of mapped files.
    """
    if isinstance(store, RedisStore):
        ttl_ms = store._ms(KEEP)

        async def run(r):
            pipe = r.pipeline(transaction=False)
            for key, count in hits.items():
                pipe.set(store._k(key), 0, px=ttl_ms, nx=True)
                pipe.incrby(store._k(key), count)
            for key, value, ttl in numbers:
                pipe.set(store._k(key), repr(value), px=store._ms(ttl))
            if deletes:
                pipe.delete(*[store._k(key) for key in deletes])
            for request_id, record in flows:
                pipe.eval(
                    FLOW_SCRIPT,
                    2,
                    store._k(SEQ_KEY),
                    store._k(flow_id_key(request_id)),
                    store._k(flow_slot_key("")),
                    FLOW_SIZE,
                    store._ms(FLOW_TTL),
                    record,
                )
            return await pipe.execute()

        await store._arun(run)
        return
    for key, count in hits.items():
        store.hit(key, KEEP, count)
    for key, value, ttl in numbers:
        store.set_number(key, value, ttl)
    store.delete_numbers(list(deletes))
    if flows:
        flow_ring(store).append([record for _, record in flows])


def counter_hits(trace: Trace, status: int, total_ms: float, now: float) -> list[str]:
    bucket = bucket_of(now)
    scope = service_scope(trace.service)
    hits = [
        counter_key(bucket, scope, "n"),
        counter_key(bucket, scope, f"l{latency_bucket(total_ms)}"),
    ]
    if status >= 500:
        hits.append(counter_key(bucket, scope, "e"))
    if trace.tier in CALLER_TIERS:
        hits.append(counter_key(bucket, scope, CALLER_TIERS[trace.tier]))
    if trace.cache == "HIT":
        hits.append(counter_key(bucket, scope, "hit"))
    elif trace.cache == "MISS":
        hits.append(counter_key(bucket, scope, "miss"))
    for attempt in trace.attempts:
        rscope = replica_scope(trace.service, attempt.replica)
        hits.append(counter_key(bucket, rscope, "n"))
        hits.append(counter_key(bucket, rscope, f"l{latency_bucket(attempt.ms)}"))
        if attempt.outcome in FAILED:
            hits.append(counter_key(bucket, rscope, "e"))
    return hits


def refusal_key(policy: str) -> str:
    """The counter of requests a rate-limit tier refused, this bucket."""
    return counter_key(bucket_of(time.time()), tier_scope(policy), "n")


def encode_record(trace: Trace, status: int, total_ms: float) -> bytes:
    """A request's stored record, its middle tries left out to fit a slot."""
    record = trace.record(status, total_ms)
    raw = json.dumps(record, separators=(",", ":")).encode()
    while len(raw) > FLOW_RECORD_BYTES and record["attempts"]:
        # Keep the first try and the last: how it began and how it ended.
        attempts = record["attempts"]
        record["attempts"] = attempts[:1] + attempts[2:] if len(attempts) > 1 else []
        record["attempts_left_out"] = record.get("attempts_left_out", 0) + 1
        raw = json.dumps(record, separators=(",", ":")).encode()
    return raw


def still_ejected(registry, service: str, index: int) -> bool:
    upstream = registry.upstreams.get(service)
    if upstream is None or index >= len(upstream.service.urls):
        return False
    return upstream.service.urls[index] in upstream.balancer.ejected()


class Recorder:
    """One worker's console records, written to the store together.

    A request's counts and record are added here, in memory, once its answer
    has gone out. A task writes what gathered in one call (one Redis pipeline,
    or inline updates of the embedded store's mapped files): at once when the
    worker is quiet, else at most every ``FLUSH_EVERY`` seconds. Counts stay
    exact; they show in the console at most ``FLUSH_EVERY`` s later.
    """

    def __init__(self, registry):
        self.registry = registry
        self.hits: dict[str, int] = {}
        # Replicas this worker ejected: (service, index) -> (until, for s);
        # and those it put back after an answer.
        self.ejections: dict[tuple[str, int], tuple[float, float]] = {}
        self.readmissions: set[tuple[str, int]] = set()
        # The sampled requests (trace, status, ms), newest last.
        self.flows: deque = deque(maxlen=FLOW_SIZE)
        self._task: asyncio.Task | None = None
        self._last = 0.0
        self.sample_rate = sample_rate()  # read once per worker, not per request

    def count(self, keys) -> None:
        hits = self.hits
        for key in keys:
            hits[key] = hits.get(key, 0) + 1
        self._schedule()

    def refused(self, policy: str) -> None:
        """Count a request a rate-limit tier refused."""
        self.count((refusal_key(policy),))

    def record(self, trace: Trace, status: int, total_ms: float) -> None:
        """Keep a finished request: its counts, and its flow when sampled."""
        if trace.service is None:
            return
        now = time.time()
        upstream = self.registry.get().upstreams.get(trace.service)
        if upstream is not None:
            eject_time = upstream.service.eject_time
            for index in trace.ejected:
                self.ejections[trace.service, index] = (now + eject_time, eject_time)
            self.readmissions.update((trace.service, i) for i in trace.readmitted)
        rate = self.sample_rate
        if rate >= 1 or random.random() < rate:
            self.flows.append((trace, status, total_ms))
        self.count(counter_hits(trace, status, total_ms, now))

    def _schedule(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _pending(self) -> bool:
        return bool(self.hits or self.ejections or self.readmissions or self.flows)

    async def _run(self) -> None:
        try:
            while self._pending():
                wait = self._last + FLUSH_EVERY - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last = time.monotonic()
                await self.flush()
                if asyncio.current_task().cancelling():
                    # Cancelled while the Redis client swallowed the error.
                    raise asyncio.CancelledError
        finally:
            self._task = None

    async def flush(self) -> None:
        """Write what gathered. A failed write is dropped, never retried: the
        console must not hold up the data plane."""
        hits, self.hits = self.hits, {}
        ejections, self.ejections = self.ejections, {}
        readmissions, self.readmissions = self.readmissions, set()
        # What this worker's balancer says now (the prober may have put a
        # replica back since, or an answer ejected it again).
        gateway = self.registry.get()
        numbers = [
            (ejected_key(service, index), until, ttl)
            for (service, index), (until, ttl) in ejections.items()
            if still_ejected(gateway, service, index)
        ]
        deletes = [
            ejected_key(service, index)
            for service, index in readmissions
            if not still_ejected(gateway, service, index)
        ]
        flows = [
            (trace.request_id, encode_record(trace, status, ms))
            for trace, status, ms in self.flows
        ]
        self.flows.clear()
        if not (hits or numbers or deletes or flows):
            return
        try:
            await apply(
                gateway.store,
                hits,
                numbers,
                deletes,
                flows,
            )
        except StoreUnavailable:
            pass
        except Exception:
            logger.exception("Console records could not be written")

    async def close(self, timeout: float = 2) -> None:
        """Stop the task, then write what is left."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout)


async def publish_in_flight(registry) -> None:
    """Publish this worker's calls in flight per service every second."""
    pid = os.getpid()
    slot = None
    store = registry.store
    while True:
        try:
            slot = await claim_slot(store, pid, slot)
            if slot is not None:
                await apply(
                    store,
                    {},
                    numbers=[
                        (inflight_key(slot, name), upstream.in_flight, SLOT_TTL)
                        for name, upstream in registry.upstreams.items()
                    ],
                )
        except asyncio.CancelledError:
            raise
        except StoreUnavailable:
            slot = None
        except Exception:
            logger.exception("Publishing calls in flight failed")
        if asyncio.current_task().cancelling():
            # Cancelled while the Redis client swallowed the CancelledError
            # (as prober.run): stop all the same, or shutdown waits forever.
            raise asyncio.CancelledError
        await asyncio.sleep(1)


async def claim_slot(store, pid: int, slot: int | None) -> int | None:
    """Keep (or take) a worker slot: a key holding this process's pid."""
    if slot is not None:
        (owner,) = await store.aget_numbers([f"con:slot:{slot}"])
        if owner in (None, pid):
            await store.aset_number(f"con:slot:{slot}", pid, SLOT_TTL)
            return slot
    for candidate in range(WORKER_SLOTS):
        if await store.aadd_number(f"con:slot:{candidate}", pid, SLOT_TTL):
            return candidate
    return None


# --- reading (the admin) --------------------------------------------------------------


def percentile(histogram: list[float], share: float) -> int | None:
    """The upper bound (ms) of the bucket holding the ``share`` quantile."""
    total = sum(histogram)
    if not total:
        return None
    rank = math.ceil(total * share)
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return LATENCY_MS[index] if index < len(LATENCY_MS) else None
    return None


def summarize(rows: dict[int, dict[str, float]], now: float) -> dict:
    """Per window: requests, errors, rate, error rate, p50/p95 of one scope."""
    current_bucket = bucket_of(now)
    into = now - current_bucket * BUCKET
    answer = {}
    for minutes in WINDOWS:
        first = current_bucket - minutes * 60 // BUCKET + 1
        totals = dict.fromkeys(SERVICE_FIELDS, 0.0)
        for bucket in range(first, current_bucket + 1):
            for name, value in rows.get(bucket, {}).items():
                totals[name] += value
        seconds = minutes * 60 - BUCKET + into
        histogram = [totals[f"l{i}"] for i in range(len(LATENCY_MS) + 1)]
        requests = int(totals["n"])
        errors = int(totals["e"])
        lookups = totals["hit"] + totals["miss"]
        answer[str(minutes)] = {
            "requests": requests,
            "errors": errors,
            "rate": round(requests / seconds, 2) if seconds > 0 else 0.0,
            "error_rate": round(errors / requests, 4) if requests else None,
            "p50_ms": percentile(histogram, 0.5),
            "p95_ms": percentile(histogram, 0.95),
            "over_ms": LATENCY_MS[-1],
            "cache_hits": int(totals["hit"]),
            "cache_misses": int(totals["miss"]),
            "cache_ratio": round(totals["hit"] / lookups, 4) if lookups else None,
            "by_tier": {tier: int(totals[name]) for tier, name in CALLER_TIERS.items()},
        }
    return answer


def read_counters(store, scopes: list[str], now: float, fields=FIELDS) -> dict:
    """{scope: {bucket: {field: count}}} over the longest window."""
    last = bucket_of(now)
    buckets = range(last - max(WINDOWS) * 60 // BUCKET + 1, last + 1)
    keys = [
        (scope, bucket, name)
        for scope in scopes
        for bucket in buckets
        for name in (SERVICE_FIELDS if scope.startswith("s:") else fields)
    ]
    values = store.get_numbers([counter_key(b, s, n) for s, b, n in keys])
    answer: dict = {scope: {} for scope in scopes}
    for (scope, bucket, name), value in zip(keys, values, strict=True):
        if value:
            answer[scope].setdefault(bucket, {})[name] = value
    return answer


def stats(registry) -> dict:
    """Everything the live dashboard shows (blocking; the admin's view)."""
    from gateway_site.gateway import health

    store = registry.store
    now = time.time()
    scopes = []
    for name, upstream in registry.upstreams.items():
        scopes.append(service_scope(name))
        scopes.extend(replica_scope(name, i) for i in range(len(upstream.service.urls)))
    try:
        counters = read_counters(store, scopes, now)
        tier_counts = read_counters(
            store, [tier_scope(p) for p in TIERS], now, fields=("n",)
        )
        in_flight = in_flight_totals(store, list(registry.upstreams))
        ejected = store.get_numbers(
            [
                ejected_key(name, i)
                for name, upstream in registry.upstreams.items()
                for i in range(len(upstream.service.urls))
            ]
        )
        available = True
    except StoreUnavailable:
        counters = {scope: {} for scope in scopes}
        tier_counts = {tier_scope(p): {} for p in TIERS}
        in_flight, ejected, available = {}, [], False
    healths = health.recorded(registry)
    ejected_at = iter(ejected)
    services = []
    for name, upstream in registry.upstreams.items():
        service = upstream.service
        recorded = healths.get(name, {})
        probes = recorded.get("replica_status")
        breaker = upstream.breaker.state()
        replicas = []
        for index, url in enumerate(service.urls):
            until = next(ejected_at, None)
            replicas.append(
                {
                    "index": index,
                    "address": replica_address(url),
                    "probe": (
                        ("up" if probes[index] else "down")
                        if isinstance(probes, list) and index < len(probes)
                        else None
                    ),
                    "ejected_for": (
                        max(math.ceil(until - now), 1)
                        if until and until > now
                        else None
                    ),
                    "windows": summarize(counters[replica_scope(name, index)], now),
                }
            )
        services.append(
            {
                "name": name,
                "health": {
                    key: recorded.get(key)
                    for key in ("status", "healthy", "replicas", "checked_at")
                },
                "breaker": breaker,
                "failure_threshold": service.failure_threshold,
                "recovery_timeout": service.recovery_timeout,
                "in_flight": in_flight.get(name),
                "max_concurrent": service.max_concurrent,
                "windows": summarize(counters[service_scope(name)], now),
                "replicas": replicas,
            }
        )
    tiers = []
    for policy in TIERS:
        windows = summarize(
            {
                bucket: {"n": row.get("n", 0)}
                for bucket, row in tier_counts[tier_scope(policy)].items()
            },
            now,
        )
        tiers.append(
            {
                "name": policy,
                "refusals": {key: value["requests"] for key, value in windows.items()},
            }
        )
    return {
        "generated_at": round(now, 3),
        "store": "redis" if isinstance(store, RedisStore) else "embedded",
        "store_available": available,
        "bucket_seconds": BUCKET,
        "windows": list(WINDOWS),
        "latency_buckets_ms": list(LATENCY_MS),
        "services": services,
        "tiers": tiers,
    }


def in_flight_totals(store, names: list[str]) -> dict[str, int]:
    """Calls in flight per service, summed over the workers that published."""
    if not names:
        return {}
    owners = store.get_numbers([f"con:slot:{slot}" for slot in range(WORKER_SLOTS)])
    live = [slot for slot, owner in enumerate(owners) if owner is not None]
    values = store.get_numbers(
        [inflight_key(slot, name) for slot in live for name in names]
    )
    totals = dict.fromkeys(names, 0)
    for position, value in enumerate(values):
        totals[names[position % len(names)]] += int(value or 0)
    return totals


def recent(store) -> list[dict]:
    """The recorded requests still kept, newest first (blocking)."""
    if isinstance(store, RedisStore):
        raws = []
        for slot in range(FLOW_SIZE):
            try:
                raws.append(store.get_bytes(flow_slot_key(slot)))
            except StoreUnavailable:
                break
    else:
        raws = flow_ring(store).records()[::-1]  # newest first among equals
    oldest = time.time() - FLOW_TTL
    records = []
    for raw in raws:
        if raw:
            with contextlib.suppress(ValueError):
                record = json.loads(raw)
                if isinstance(record, dict) and record.get("at", 0) >= oldest:
                    records.append(record)
    records.sort(key=lambda record: record.get("at", 0), reverse=True)
    return records


def find(store, request_id: str) -> dict | None:
    """The recorded request with this id, while it is among the last FLOW_SIZE."""
    if not isinstance(store, RedisStore):
        return next(
            (r for r in recent(store) if r.get("request_id") == request_id), None
        )
    try:
        (slot,) = store.get_numbers([flow_id_key(request_id)])
        if slot is None:
            return None
        raw = store.get_bytes(flow_slot_key(int(slot)))
    except StoreUnavailable:
        return None
    if not raw:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if record.get("request_id") == request_id else None
