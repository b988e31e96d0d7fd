"""The gateway's per-process state, built from the services file on first use."""

import os
import threading
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from gateway_site.gateway import config as config_module
from gateway_site.gateway import store as store_module
from gateway_site.gateway.balancer import Balancer
from gateway_site.gateway.breaker import Breaker
from gateway_site.gateway.conf import conf
from gateway_site.gateway.retry import budget
from gateway_site.server import configured_timeout, configured_workers


@dataclass(slots=True)
class Upstream:
    service: config_module.Service
    balancer: Balancer
    breaker: Breaker
    # Calls in flight from this process, against its share of max_concurrent.
    in_flight: int = 0
    limit: int | None = None
    # aiohttp sessions, one per event loop (created in the loop).
    sessions: dict = field(default_factory=dict)
    # The timeouts of a try that may take the service's whole timeout.
    try_timeout: object = None


def share(limit: int | None, workers: int) -> int | None:
    """This process's part of an instance-wide limit: split evenly, at least 1."""
    if limit is None:
        return None
    return max(-(-limit // max(workers, 1)), 1)


class Registry:
    def __init__(self, path, cfg: config_module.Config, worker_timeout: float):
        self.path = path
        self.setting = None  # the setting's value it was last checked against
        self.pid = os.getpid()
        self.config = cfg
        self.budget = budget(worker_timeout)
        self.store = store_module.get()
        workers = configured_workers()
        self.in_flight = 0
        self.limit = share(conf.MAX_CONCURRENT, workers)
        self.upstreams = {
            name: Upstream(
                service=service,
                balancer=Balancer(name, service.urls, service.eject_time),
                breaker=Breaker(
                    name,
                    store=self.store,
                    threshold=service.failure_threshold,
                    recovery=service.recovery_timeout,
                    # The probe is one try; its token outlives it a little.
                    probe_ttl=min(service.timeout, self.budget) + 1,
                ),
                limit=share(service.max_concurrent, workers),
            )
            for name, service in cfg.services.items()
        }


_lock = threading.Lock()
_current: Registry | None = None


def get() -> Registry:
    """This process's registry; rebuilt after a fork or a new services file."""
    global _current
    current = _current
    if (
        current is not None
        and current.pid == _pid()
        and current.setting is getattr(settings, "GATEWAY_SERVICES_FILE", None)
    ):
        return current
    path = conf.SERVICES_FILE
    if current is None or current.pid != os.getpid() or current.path != path:
        with _lock:
            current = _current
            if current is None or current.pid != os.getpid() or current.path != path:
                cfg, problems = config_module.configured(path, os.environ)
                if problems:
                    raise ImproperlyConfigured(
                        "; ".join(f"{p.where}: {p.message}" for p in problems)
                    )
                current = Registry(path, cfg, configured_timeout())
                _current = current
    current.setting = getattr(settings, "GATEWAY_SERVICES_FILE", None)
    return current


_pid = os.getpid


def reset() -> None:
    """Forget the registry (tests, or after changing <SERVICE>_URL in-process)."""
    global _current
    with _lock:
        _current = None
