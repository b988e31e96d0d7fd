"""Round robin over a service's replicas with passive ejection.

A replica that fails (connect error, timeout, reset, 502/503/504) leaves the
rotation for the service's ``eject_time``; the health prober re-admits it
earlier when its ``health_endpoint`` answers 2xx again. Ejected replicas are
still tried last, so a service whose replicas all failed is not refused
outright. The state is per worker process: ejection is a fast local reaction,
while the circuit breaker is the shared, service-wide one.
"""

import itertools
import logging
import threading
import time

logger = logging.getLogger("gateway_site.gateway.balancer")


class Balancer:
    def __init__(self, name: str, urls: tuple[str, ...], eject_time: float):
        self.name = name
        self.urls = urls
        self.eject_time = eject_time
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._ejected: dict[str, float] = {}  # url -> monotonic re-admission time

    def order(self) -> list[str]:
        """Replicas to try for one request, best first."""
        start = next(self._counter) % len(self.urls)
        rotated = list(self.urls[start:] + self.urls[:start])
        if not self._ejected:
            return rotated
        now = time.monotonic()
        with self._lock:
            for url, until in list(self._ejected.items()):
                if until <= now:
                    del self._ejected[url]
            ejected = dict(self._ejected)
        healthy = [url for url in rotated if url not in ejected]
        return healthy + sorted(ejected, key=ejected.__getitem__)

    def eject(self, url: str) -> bool:
        """Take ``url`` out of the rotation; whether it was (one replica stays)."""
        if len(self.urls) == 1:
            return False  # nowhere else to go; the breaker handles a dead service
        with self._lock:
            first = url not in self._ejected
            self._ejected[url] = time.monotonic() + self.eject_time
        if first:
            logger.warning("Replica %d of %s ejected", self.urls.index(url), self.name)
        return True

    def readmit(self, url: str) -> bool:
        """Put ``url`` back in the rotation; whether it had been ejected."""
        with self._lock:
            if self._ejected.pop(url, None) is None:
                return False
        logger.info("Replica %d of %s re-admitted", self.urls.index(url), self.name)
        return True

    def ejected(self) -> list[str]:
        with self._lock:
            return list(self._ejected)
