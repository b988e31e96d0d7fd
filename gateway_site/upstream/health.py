"""Health of the upstream services: probes of each replica's health endpoint.

Two users: ``/ready`` reports every service's health, cached for the
``service_health`` TTL (60 s) in the shared cache; and a daemon thread per
worker process, started lazily on the first gateway request after the fork,
that probes only the replicas the balancer ejected and re-admits those that
answer. Probing on a thread keeps the probes off the request path.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from django.core.cache import caches

from gateway_site import metrics
from gateway_site.upstream import client

logger = logging.getLogger("gateway_site.upstream.health")


def probe(url: str, endpoint: str, timeout: float) -> bool:
    try:
        response = client.send(
            "GET",
            url + endpoint,
            headers=[],
            content=None,
            timeout=httpx.Timeout(timeout),
        )
        try:
            response.read()
        finally:
            response.close()
    except httpx.HTTPError:
        return False
    return 200 <= response.status_code < 300


def service_health(registry, name: str) -> dict:
    """{"status": up|degraded|down, "replicas", "healthy", "breaker"}, cached."""
    cache = caches["default"]
    key = f"gw:health:{name}"
    upstream = registry.upstreams[name]
    try:
        cached = cache.get(key)
    except Exception:
        cached = None
    if cached is None:
        service = upstream.service
        results = [
            probe(url, service.health_endpoint, registry.config.health_timeout)
            for url in service.urls
        ]
        healthy = sum(results)
        metrics.set_service_health(name, healthy > 0)
        if healthy == len(results):
            status = "up"
        elif healthy:
            status = "degraded"
        else:
            status = "down"
        cached = {"status": status, "replicas": len(results), "healthy": healthy}
        try:
            cache.set(key, cached, timeout=registry.config.health_ttl)
        except Exception:
            logger.exception("Health of %s not cached", name)
    return {**cached, "breaker": upstream.breaker.state()}


def all_health(registry) -> dict[str, dict]:
    names = list(registry.upstreams)
    with ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
        return dict(
            zip(
                names,
                pool.map(lambda n: service_health(registry, n), names),
                strict=True,
            )
        )


class Prober(threading.Thread):
    """Re-admit ejected replicas whose health endpoint answers again."""

    def __init__(self, registry):
        super().__init__(name="gateway-health-prober", daemon=True)
        self.registry = registry
        self.stopped = threading.Event()

    def run(self):
        interval = self.registry.config.health_interval
        while not self.stopped.wait(interval):
            try:
                self.round()
            except Exception:  # keep probing whatever one round did
                logger.exception("Health probe round failed")

    def round(self):
        timeout = self.registry.config.health_timeout
        for upstream in self.registry.upstreams.values():
            for url in upstream.balancer.ejected():
                if probe(url, upstream.service.health_endpoint, timeout):
                    upstream.balancer.readmit(url)

    def stop(self):
        self.stopped.set()
