"""Health of the upstream services, as the data plane's probes last recorded it.

The probes run in the background (gateway_site/gateway/prober.py) and write
each service's health to the shared store; ``/ready`` and the admin read it
here, without ever waiting on a service.
"""

import json

from gateway_site.gateway.store import StoreUnavailable


def key(name: str) -> str:
    return f"health:{name}"


def recorded(registry) -> dict[str, dict]:
    """Each service's last recorded health and breaker state (blocking; /ready)."""
    answer = {}
    for name, upstream in registry.upstreams.items():
        try:
            raw = registry.store.get_bytes(key(name))
        except StoreUnavailable:
            raw = None
        health = json.loads(raw) if raw else {"status": "unknown"}
        breaker = upstream.breaker.state()
        answer[name] = {**health, "breaker": breaker["state"]}
    return answer
