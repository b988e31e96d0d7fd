"""Send one request to a service: breaker, replica choice, retries, budget."""

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus

import httpx

from gateway_site import metrics
from gateway_site.upstream import client, retry
from gateway_site.upstream.breaker import BreakerOpen
from gateway_site.upstream.client import HOP_BY_HOP
from gateway_site.upstream.conf import conf

logger = logging.getLogger("gateway_site.upstream")


def hop_by_hop(headers) -> frozenset[str]:
    """The hop-by-hop names of a message: the fixed list plus those in Connection."""
    named = {
        token.strip().lower()
        for value in headers.get_list("connection")
        for token in value.split(",")
        if token.strip()
    }
    return HOP_BY_HOP | named


class UpstreamError(Exception):
    """No usable answer from the service: becomes a 502/503/504 JSON error."""

    def __init__(self, status: int, code: str, detail: str, headers=None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


@dataclass(slots=True)
class Outbound:
    method: str
    target: str  # path and query, starting with "/"
    headers: list[tuple[bytes, bytes]]
    # Bytes can be resent on a retry; an iterable streams once and is never retried.
    body: bytes | Iterable[bytes] | None = None
    retryable: bool = False
    extra: dict = field(default_factory=dict)


def breaker_open_error(exc: BreakerOpen) -> UpstreamError:
    return UpstreamError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "circuit_open",
        f"Service {exc.service} is unavailable (circuit open); "
        f"retry in {exc.retry_after} s.",
        headers={"Retry-After": str(exc.retry_after)},
    )


def send(registry, name: str, outbound: Outbound) -> httpx.Response:
    """Return the service's streamed response (the caller closes it).

    Raises UpstreamError when the circuit is open or no replica answered.
    """
    with metrics.upstream_call_in_progress():
        return _send(registry, name, outbound)


def outcome(status: int) -> str:
    if status >= 500:
        return "server_error"
    return "client_error" if status >= 400 else "success"


def _send(registry, name: str, outbound: Outbound) -> httpx.Response:
    upstream = registry.upstreams[name]
    service = upstream.service
    try:
        ticket = upstream.breaker.allow()
    except BreakerOpen as exc:
        metrics.observe_upstream(name, "circuit_open")
        raise breaker_open_error(exc) from None
    started = time.monotonic()
    deadline = started + registry.budget
    replayable = outbound.body is None or isinstance(outbound.body, bytes)
    may_retry = outbound.retryable and replayable and not ticket.probe
    tries = 1 + service.max_retries if may_retry else 1
    replicas = upstream.balancer.order()
    tried: set[str] = set()
    failure = "connect"
    attempt = 0
    while True:
        # Prefer a replica not tried yet; with one replica, retry that one.
        untried = [url for url in replicas if url not in tried]
        url = untried[0] if untried else replicas[attempt % len(replicas)]
        if attempt and not untried:
            pause = retry.backoff(attempt - 1, service.retry_delay)
            if time.monotonic() + pause >= deadline - 0.05:
                break
            time.sleep(pause)
        tried.add(url)
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            break
        per_try = min(service.timeout, remaining)
        timeout = httpx.Timeout(per_try, connect=min(conf.CONNECT_TIMEOUT, per_try))
        attempt += 1
        sent = time.monotonic()
        try:
            response = client.send(
                outbound.method,
                url + outbound.target,
                headers=outbound.headers,
                content=outbound.body,
                timeout=timeout,
            )
        except httpx.TimeoutException:
            metrics.observe_upstream(name, "timeout", time.monotonic() - sent)
            failure = "timeout"
        except httpx.ConnectError:
            metrics.observe_upstream(name, "error")
            failure = "connect"
            upstream.balancer.eject(url)
            # Nothing reached the service: any replayable request may move on
            # to a replica not tried yet, whatever its method.
            others = any(u not in tried for u in replicas)
            if replayable and not ticket.probe and (others or attempt < tries):
                continue
            break
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            metrics.observe_upstream(name, "error")
            failure = "reset"
        except httpx.HTTPError as exc:
            metrics.observe_upstream(name, "error")
            logger.warning("Request to %s failed: %s", name, type(exc).__name__)
            failure = "error"
            break
        else:
            status = response.status_code
            metrics.observe_upstream(name, outcome(status), time.monotonic() - sent)
            if status in retry.RETRY_STATUSES:
                upstream.balancer.eject(url)
            retry_this = status in retry.RETRY_STATUSES or (
                status in retry.RETRY_AFTER_STATUSES
                and "retry-after" in response.headers
            )
            if retry_this and attempt < tries:
                wait = None
                if status in retry.RETRY_AFTER_STATUSES:
                    wait = retry.retry_after(response.headers.get("retry-after"))
                if wait is None or time.monotonic() + wait < deadline - 0.05:
                    response.close()
                    if wait is not None:
                        time.sleep(wait)
                        # The service said when: that wait replaces the back-off.
                        tried.clear()
                    continue
            if status >= 500:
                upstream.breaker.failure(ticket)
            else:
                upstream.breaker.success(ticket)
                upstream.balancer.readmit(url)
            return response
        upstream.balancer.eject(url)
        if attempt >= tries:
            break
    upstream.breaker.failure(ticket)
    elapsed = time.monotonic() - started
    logger.warning(
        "No answer from %s after %d tries in %.2f s (%s)",
        name,
        attempt,
        elapsed,
        failure,
    )
    if failure == "timeout":
        raise UpstreamError(
            HTTPStatus.GATEWAY_TIMEOUT,
            "upstream_timeout",
            f"Service {name} did not answer in time.",
        )
    raise UpstreamError(
        HTTPStatus.BAD_GATEWAY,
        "upstream_unavailable",
        f"Service {name} is unreachable.",
    )
