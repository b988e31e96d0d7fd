"""Prometheus metrics of the gateway and their ``/metrics`` endpoint.

Request metrics are recorded by ``gateway_site.middleware.ObservabilityMiddleware``.
The upstream metrics are what the gateway reports about the services it calls,
through the small functions at the end of this module.

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is
imported (gateway_site/gunicorn.conf.py), so every worker writes its values to
files there and ``/metrics`` adds them up: the numbers are the same whichever
worker answers the scrape.
"""

import functools
import ipaddress
import os
import re
from http import HTTPStatus

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from likes.conf import conf
from likes.http import error_response, method_not_allowed, not_found
from likes.permissions import API_KEY_HEADER, TooManyKeyAttempts, key_accepted
from likes.ratelimit import client_ip, too_many_requests

# ``*_created`` series double the output and no dashboard reads them.
disable_created_metrics()

# Fine low buckets for the likes API (milliseconds), the design's coarse ones
# for proxied calls.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0)

requests_total = Counter(
    "requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "endpoint", "status_code"],
)
request_duration_seconds = Histogram(
    "request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "endpoint"],
    buckets=BUCKETS,
)
active_connections = Gauge(
    "active_connections",
    "HTTP requests being processed right now, all workers together.",
    multiprocess_mode="livesum",
)

# --- Request labels ---------------------------------------------------------

UNMATCHED = "<unmatched>"
STATIC = "<static>"
# Anything else a client sends as a method shares one label.
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "OTHER"
_CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def endpoint_label(route: str) -> str:
    """``likes/<anytext:post_id>`` becomes ``/likes/<post_id>``."""
    return "/" + _CONVERTER.sub(r"<\1>", route)


class RequestMetrics:
    """Count and time answered requests, with labels resolved once per route."""

    def __init__(self):
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")
        # (method, route, status) -> (counter, histogram) children. Bounded:
        # methods are normalised, routes come from the URLconf, statuses from
        # the code.
        self._children: dict = {}
        self.started = active_connections.inc
        self.stopped = active_connections.dec

    def observe(self, request, status: int, seconds: float) -> None:
        match = request.resolver_match
        if match is not None:
            route = match.route
        elif request.path_info.startswith(self.static_prefix):
            route = STATIC
        else:
            route = UNMATCHED
        self.observe_route(request.method, route, status, seconds)

    def observe_route(self, method: str, route: str, status: int, seconds: float):
        """Count one answer to a request Django resolved to ``route``."""
        if method not in METHODS:
            method = OTHER_METHOD
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = self._make(method, route, status)
        counter, histogram = children
        counter.inc()
        histogram.observe(seconds)

    @staticmethod
    def _make(method, route, status):
        endpoint = route if route in (STATIC, UNMATCHED) else endpoint_label(route)
        return (
            requests_total.labels(method, endpoint, str(status)),
            request_duration_seconds.labels(method, endpoint),
        )


# --- /metrics ---------------------------------------------------------------

# Headers a proxy adds: a request carrying one came through a proxy, so its
# REMOTE_ADDR (the proxy's) says nothing about where the client is.
FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_FORWARDED",
    "HTTP_X_REAL_IP",
    "HTTP_CF_CONNECTING_IP",
    "HTTP_TRUE_CLIENT_IP",
)


@functools.lru_cache(maxsize=8)
def allowed_networks(values: tuple[str, ...]):
    """Parse ``METRICS_ALLOWED_IPS``; invalid entries are check gateway_site.E020."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _address_allowed(request) -> bool:
    if settings.METRICS_REQUIRE_KEY:
        return False
    header = conf.CLIENT_IP_HEADER
    if header:
        # Behind the proxy that sets it, a request without a usable header
        # cannot be placed: its REMOTE_ADDR is the proxy's (loopback or a
        # container network). Fail closed instead of trusting that.
        raw = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
        try:
            ipaddress.ip_address(raw.strip())
        except ValueError:
            return False
    elif any(name in request.META for name in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    networks = allowed_networks(tuple(settings.METRICS_ALLOWED_IPS))
    return any(address in network for network in networks)


def _presented_key(request) -> str:
    key = request.META.get(API_KEY_HEADER, "")
    if key:
        return key
    # Prometheus can send a credential only as Authorization (bearer_token).
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def access_allowed(request) -> bool:
    """Loopback (``METRICS_ALLOWED_IPS``) or a stats API key may read metrics.

    Raises TooManyKeyAttempts after too many wrong keys from one address.
    """
    if _address_allowed(request):
        return True
    return key_accepted(request, _presented_key(request))


@functools.cache
def _multiprocess_registry(path: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path)
    return registry


def exposition() -> bytes:
    """All metrics in the Prometheus text format, summed over the workers."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    registry = _multiprocess_registry(path) if path else REGISTRY
    return generate_latest(registry)


def metrics_view(request):
    """Prometheus scrape endpoint (text exposition format)."""
    if not settings.METRICS_ENABLED:
        return not_found(request)
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(request, ["GET", "HEAD"])
    try:
        allowed = access_allowed(request)
    except TooManyKeyAttempts as exc:
        return too_many_requests(exc.limit)
    if not allowed:
        return error_response(
            HTTPStatus.FORBIDDEN,
            code="permission_denied",
            detail="Metrics are open to allowed addresses and stats API key "
            "holders (X-API-Key or Authorization: Bearer).",
        )
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


# --- Upstream services --------------------------------------------------------
# What the gateway reports about the services it calls. ``service`` is a name
# from the services configuration (a bounded set).

upstream_requests_total = Counter(
    "upstream_requests",
    "Calls to upstream services, by service and outcome.",
    ["service", "outcome"],
)
upstream_request_duration_seconds = Histogram(
    "upstream_request_duration_seconds",
    "Time an upstream service took to answer, by service.",
    ["service"],
    buckets=BUCKETS,
)
# The most recent transition any worker saw: with breaker state shared through
# Redis all workers agree; without it, the last one to change wins.
circuit_breaker_state = Gauge(
    "circuit_breaker_state",
    "Circuit breaker per upstream service: 0 closed, 1 half-open, 2 open.",
    ["service"],
    multiprocess_mode="mostrecent",
)
processing_queue_size = Gauge(
    "processing_queue_size",
    "Calls to upstream services in progress, all workers together (each "
    "worker reports its own every second).",
    multiprocess_mode="livesum",
)
signature_failures_total = Counter(
    "signature_failures",
    "Gateway calls signed with a client HMAC key and refused, by reason "
    "(key_unknown, signature_invalid, digest_mismatch, timestamp_skewed, replayed...).",
    ["reason"],
)
service_health = Gauge(
    "service_health",
    "Last health probe of an upstream service: 1 healthy, 0 down.",
    ["service"],
    multiprocess_mode="mostrecent",
)

# Outcomes of an upstream call, for ``upstream_requests_total{outcome}``.
OUTCOMES = frozenset(
    {
        "success",
        "client_error",
        "server_error",
        "timeout",
        "error",
        "circuit_open",
        "busy",
    }
)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


_upstream_children: dict = {}


def observe_upstream(service: str, outcome: str, seconds: float | None = None):
    """Count one upstream call; ``seconds`` when it got an answer or timed out."""
    children = _upstream_children.get((service, outcome))
    if children is None:
        if outcome not in OUTCOMES:
            raise ValueError(f"Unknown upstream outcome {outcome!r}")
        children = _upstream_children[(service, outcome)] = (
            upstream_requests_total.labels(service, outcome),
            upstream_request_duration_seconds.labels(service),
        )
    children[0].inc()
    if seconds is not None:
        children[1].observe(seconds)


def set_breaker_state(service: str, state: str) -> None:
    """Record a breaker transition: ``closed``, ``half-open`` or ``open``."""
    circuit_breaker_state.labels(service).set(BREAKER_STATES[state])


def set_service_health(service: str, healthy: bool) -> None:
    service_health.labels(service).set(1 if healthy else 0)


def count_signature_failure(reason: str) -> None:
    """Count one refused signed call (gateway/clientkeys.py)."""
    signature_failures_total.labels(reason).inc()
