"""Background probes of the upstream services' health endpoints.

A task in every worker's event loop wakes every ``[health] interval`` seconds:

- it probes the replicas its balancer ejected and re-admits those whose
  health endpoint answers 2xx again;
- for each service, the one worker that wins the round's token in the shared
  store probes every replica and records the result there
  (gateway_site/gateway/health.py), where ``/ready`` and the admin read it.

Nothing is probed on a request's path.
"""

import asyncio
import contextlib
import json
import logging
import time

import aiohttp

from gateway_site import metrics
from gateway_site.gateway import console
from gateway_site.gateway.health import key
from gateway_site.gateway.proxy import session
from gateway_site.gateway.store import StoreUnavailable

logger = logging.getLogger("gateway_site.gateway.health")


async def probe(upstream, url: str, timeout: float) -> bool:
    try:
        async with session(upstream).get(
            url + upstream.service.health_endpoint,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            await response.read()
            return 200 <= response.status < 300
    except (aiohttp.ClientError, TimeoutError):
        return False


async def check_service(registry, name: str) -> dict:
    """Probe every replica of a service; record and return its health."""
    upstream = registry.upstreams[name]
    timeout = registry.config.health_timeout
    results = await asyncio.gather(
        *(probe(upstream, url, timeout) for url in upstream.service.urls)
    )
    healthy = sum(results)
    metrics.set_service_health(name, healthy > 0)
    status = "up" if healthy == len(results) else "degraded" if healthy else "down"
    health = {
        "status": status,
        "replicas": len(results),
        "healthy": healthy,
        # Each replica's probe, in the order of the services file (the console).
        "replica_status": [bool(result) for result in results],
        "checked_at": round(time.time(), 3),
    }
    ttl = max(registry.config.health_ttl, 3 * registry.config.health_interval)
    with contextlib.suppress(StoreUnavailable):
        await registry.store.aset_bytes(key(name), json.dumps(health).encode(), ttl)
    return health


async def run(registry) -> None:
    """Probe forever (a task per worker, cancelled at shutdown)."""
    interval = registry.config.health_interval
    while True:
        try:
            await probe_round(registry, interval)
        except asyncio.CancelledError:
            raise
        except Exception:  # keep probing whatever one round did
            logger.exception("Health probe round failed")
        if asyncio.current_task().cancelling():
            # Cancelled while a client library swallowed the CancelledError
            # (seen with the Redis client under load): stop all the same.
            raise asyncio.CancelledError
        await asyncio.sleep(interval)


async def probe_round(registry, interval: float) -> None:
    timeout = registry.config.health_timeout
    for name, upstream in registry.upstreams.items():
        for url in upstream.balancer.ejected():
            if await probe(upstream, url, timeout):
                upstream.balancer.readmit(url)
                # The console shows it back in the rotation.
                with contextlib.suppress(StoreUnavailable):
                    await registry.store.adelete_numbers(
                        [console.ejected_key(name, upstream.service.urls.index(url))]
                    )
        try:
            mine = await registry.store.aadd_number(
                f"health:round:{name}", 1, max(interval * 0.9, 0.5)
            )
        except StoreUnavailable:
            mine = True
        if mine:
            await check_service(registry, name)
