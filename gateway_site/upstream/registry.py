"""The gateway's per-process state, built from the services file on first use."""

import os
import threading
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from gateway_site.checks import configured_timeout
from gateway_site.upstream import config as config_module
from gateway_site.upstream.balancer import Balancer
from gateway_site.upstream.breaker import Breaker
from gateway_site.upstream.conf import conf
from gateway_site.upstream.health import Prober
from gateway_site.upstream.retry import budget


@dataclass(slots=True)
class Upstream:
    service: config_module.Service
    balancer: Balancer
    breaker: Breaker


class Registry:
    def __init__(self, path, cfg: config_module.Config, worker_timeout: float):
        self.path = path
        self.pid = os.getpid()
        self.config = cfg
        self.budget = budget(worker_timeout)
        self.upstreams = {
            name: Upstream(
                service=service,
                balancer=Balancer(name, service.urls, service.eject_time),
                breaker=Breaker(
                    name,
                    threshold=service.failure_threshold,
                    recovery=service.recovery_timeout,
                    # The probe is one try; its token outlives it a little.
                    probe_ttl=min(service.timeout, self.budget) + 1,
                ),
            )
            for name, service in cfg.services.items()
        }
        self.prober = Prober(self)
        self._prober_lock = threading.Lock()

    def start_prober(self):
        if self.prober.is_alive() or self.prober.stopped.is_set():
            return
        with self._prober_lock:
            if not self.prober.is_alive() and not self.prober.stopped.is_set():
                self.prober.start()


_lock = threading.Lock()
_current: Registry | None = None


def get() -> Registry:
    """This process's registry; rebuilt after a fork or a new services file."""
    global _current
    path = conf.SERVICES_FILE
    current = _current
    if current is None or current.pid != os.getpid() or current.path != path:
        with _lock:
            current = _current
            if current is None or current.pid != os.getpid() or current.path != path:
                cfg, problems = config_module.load(path, os.environ)
                if problems:
                    raise ImproperlyConfigured(
                        "; ".join(f"{p.where}: {p.message}" for p in problems)
                    )
                if current is not None and current.pid == os.getpid():
                    current.prober.stop()
                current = Registry(path, cfg, configured_timeout())
                _current = current
    current.start_prober()
    return current


def reset() -> None:
    """Forget the registry (tests, or after changing <SERVICE>_URL in-process)."""
    global _current
    with _lock:
        if _current is not None:
            _current.prober.stop()
        _current = None
