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

The writes go out together after the response (one Redis pipeline, or inline
calls to the embedded table), so a client never waits on them. Each worker
also publishes its calls in flight every second.
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
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

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


async def apply(store, hits: list[str], numbers=(), deletes=(), flow=None) -> None:
    """Count ``hits`` (+1 each, kept KEEP s), set ``numbers`` (key, value, ttl),
    drop ``deletes`` and add ``flow`` (request id, record) to the ring.

    Redis: one round trip (a pipeline). Embedded: the numbers inline (a mapped
    file), the record, a SQLite write, on a thread so the event loop moves on.
    """
    if isinstance(store, RedisStore):
        ttl_ms = store._ms(KEEP)

        async def run(r):
            pipe = r.pipeline(transaction=False)
            for key in hits:
                pipe.set(store._k(key), 0, px=ttl_ms, nx=True)
                pipe.incr(store._k(key))
            for key, value, ttl in numbers:
                pipe.set(store._k(key), repr(value), px=store._ms(ttl))
            if deletes:
                pipe.delete(*[store._k(key) for key in deletes])
            if flow is not None:
                request_id, record = flow
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
    for key in hits:
        store.hit(key, KEEP)
    for key, value, ttl in numbers:
        store.set_number(key, value, ttl)
    store.delete_numbers(list(deletes))
    if flow is not None:
        await asyncio.to_thread(write_flow, store, *flow)


def write_flow(store, request_id: str, record: bytes) -> None:
    """Add a record to the ring of recent requests (the embedded store)."""
    slot = int(store.hit(SEQ_KEY, SEQ_TTL)) % FLOW_SIZE
    store.set_bytes(flow_slot_key(slot), record, FLOW_TTL)
    store.set_number(flow_id_key(request_id), slot, FLOW_TTL)


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


async def refused(store, policy: str) -> None:
    """Count a request a rate-limit tier refused."""
    with contextlib.suppress(StoreUnavailable):
        await store.ahit(
            counter_key(bucket_of(time.time()), tier_scope(policy), "n"), KEEP
        )


async def finish(registry, trace: Trace, status: int, total_ms: float) -> None:
    """Record a finished request: its counts, and its flow when sampled."""
    if trace.service is None:
        return
    store = registry.store
    now = time.time()
    upstream = registry.upstreams.get(trace.service)
    numbers, deletes = [], []
    if upstream is not None:
        eject_time = upstream.service.eject_time
        for index in set(trace.ejected):
            numbers.append(
                (ejected_key(trace.service, index), now + eject_time, eject_time)
            )
        deletes = [
            ejected_key(trace.service, index)
            for index in set(trace.readmitted) - set(trace.ejected)
        ]
    flow = None
    if random.random() < sample_rate():
        record = json.dumps(trace.record(status, total_ms), separators=(",", ":"))
        flow = (trace.request_id, record.encode())
    try:
        await apply(
            store, counter_hits(trace, status, total_ms, now), numbers, deletes, flow
        )
    except StoreUnavailable:
        pass
    except Exception:  # the console must never break the data plane
        logger.exception("Console record of %s failed", trace.request_id)


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
                    [],
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
    records = []
    for slot in range(FLOW_SIZE):
        try:
            raw = store.get_bytes(flow_slot_key(slot))
        except StoreUnavailable:
            break
        if raw:
            with contextlib.suppress(ValueError):
                records.append(json.loads(raw))
    records.sort(key=lambda record: record.get("at", 0), reverse=True)
    return records


def find(store, request_id: str) -> dict | None:
    """The recorded request with this id, while it is among the last FLOW_SIZE."""
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
