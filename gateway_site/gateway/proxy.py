"""Send one request to a service: breaker, replica choice, retries, budget.

Calls go out through aiohttp, one client session per service and event loop,
whose connector keeps connections to each replica open (at most the service's
``max_connections`` per replica). aiohttp's client costs about a quarter of
httpx's asyncio client per call (tests/benchmarks/gateway.py), and it relays
response headers and bodies as bytes, still encoded.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from gateway_site import metrics
from gateway_site.gateway import console, retry, signing
from gateway_site.gateway.breaker import BreakerOpen
from gateway_site.gateway.conf import conf
from gateway_site.gateway.headers import SKIP_AUTO_HEADERS

logger = logging.getLogger("gateway_site.gateway")


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
    target: str  # path and query as sent (percent-encoded), starting with "/"
    headers: list[tuple[str, str]]
    # Bytes can be resent on a retry; a stream goes once and is never retried.
    body: bytes | AsyncIterator[bytes] | None = None
    retryable: bool = False


def session(upstream) -> aiohttp.ClientSession:
    """The service's client session in the running event loop."""
    loop = asyncio.get_running_loop()
    found = upstream.sessions.get(loop)
    if found is None or found.closed:
        found = upstream.sessions[loop] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=0,
                limit_per_host=upstream.service.max_connections or 0,
                keepalive_timeout=30,
                ttl_dns_cache=60,
            ),
            auto_decompress=False,
            skip_auto_headers=SKIP_AUTO_HEADERS,
            # Cookie-free in both directions: one caller's cookie must never
            # reach another caller's request.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
    return found


async def close_sessions(registry) -> None:
    loop = asyncio.get_running_loop()
    for upstream in registry.upstreams.values():
        found = upstream.sessions.pop(loop, None)
        if found is not None:
            await found.close()


def try_timeout(upstream, seconds: float) -> aiohttp.ClientTimeout:
    """One try's timeouts: connecting (a pool slot included), then each read.

    A whole service timeout, the usual case, is made once per service.
    """
    if seconds == upstream.service.timeout and upstream.try_timeout is not None:
        return upstream.try_timeout
    timeout = aiohttp.ClientTimeout(
        total=None, connect=min(conf.CONNECT_TIMEOUT, seconds), sock_read=seconds
    )
    if seconds == upstream.service.timeout:
        upstream.try_timeout = timeout
    return timeout


def breaker_open_error(exc: BreakerOpen) -> UpstreamError:
    return UpstreamError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "circuit_open",
        f"Service {exc.service} is unavailable (circuit open); "
        f"retry in {exc.retry_after} s.",
        headers={"Retry-After": str(exc.retry_after)},
    )


def outcome(status: int) -> str:
    if status >= 500:
        return "server_error"
    return "client_error" if status >= 400 else "success"


async def _signer(secret: bytes, outbound: Outbound):
    """A function giving the signed headers of ``outbound`` for a replica URL.

    The body is signed, so a streamed one is read whole first (it is within
    GATEWAY_MAX_BODY_SIZE); it can then be retried like any buffered body.
    """
    if outbound.body is not None and not isinstance(outbound.body, bytes):
        outbound.body = b"".join([chunk async for chunk in outbound.body])
    digest = signing.content_digest(outbound.body or b"")
    request_id = next(
        (value for key, value in outbound.headers if key.lower() == "x-request-id"),
        "",
    )

    def signed(url: str) -> list[tuple[str, str]]:
        # The path as the replica receives it: its base path, then the target.
        target = urlsplit(url).path + outbound.target
        return outbound.headers + signing.sign(
            secret,
            method=outbound.method,
            target=target,
            request_id=request_id,
            body=b"",
            digest=digest,
        )

    return signed


def note_attempt(trace, service, url: str, result: str, status, sent: float) -> None:
    """Add a try to the console's record of the request."""
    if trace is not None:
        trace.attempt(service.urls.index(url), result, status, sent, time.monotonic())


def eject(upstream, url: str, trace) -> None:
    if upstream.balancer.eject(url) and trace is not None:
        trace.ejected.append(upstream.service.urls.index(url))


async def send(registry, name: str, outbound: Outbound) -> aiohttp.ClientResponse:
    """Return the service's response, its body unread (the caller releases it).

    Raises UpstreamError when the circuit is open or no replica answered.
    """
    upstream = registry.upstreams[name]
    service = upstream.service
    trace = console.current.get()
    try:
        ticket = await upstream.breaker.allow()
    except BreakerOpen as exc:
        metrics.observe_upstream(name, "circuit_open")
        if trace is not None:
            trace.breaker = "open"
        raise breaker_open_error(exc) from None
    if trace is not None:
        trace.breaker = "probe" if ticket.probe else "closed"
    client = session(upstream)
    sign = None
    if service.hmac_secret is not None:
        sign = await _signer(service.hmac_secret, outbound)
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
            await asyncio.sleep(pause)
        tried.add(url)
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            break
        timeout = try_timeout(upstream, min(service.timeout, remaining))
        attempt += 1
        sent = time.monotonic()
        headers = outbound.headers if sign is None else sign(url)
        try:
            response = await client.request(
                outbound.method,
                URL(url + outbound.target, encoded=True),
                headers=headers,
                data=outbound.body,
                timeout=timeout,
                allow_redirects=False,
                compress=None,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            metrics.observe_upstream(name, "timeout", time.monotonic() - sent)
            failure = "timeout"
            note_attempt(trace, service, url, failure, None, sent)
        except aiohttp.ClientConnectorError:
            metrics.observe_upstream(name, "error")
            failure = "connect"
            note_attempt(trace, service, url, failure, None, sent)
            eject(upstream, url, trace)
            # Nothing reached the service: any replayable request may move on
            # to a replica not tried yet, whatever its method.
            others = any(u not in tried for u in replicas)
            if replayable and not ticket.probe and (others or attempt < tries):
                continue
            break
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientOSError,
            aiohttp.ClientPayloadError,
        ):
            metrics.observe_upstream(name, "error")
            failure = "reset"
            note_attempt(trace, service, url, failure, None, sent)
        except aiohttp.ClientError as exc:
            metrics.observe_upstream(name, "error")
            logger.warning("Request to %s failed: %s", name, type(exc).__name__)
            failure = "error"
            note_attempt(trace, service, url, failure, None, sent)
            break
        else:
            status = response.status
            metrics.observe_upstream(name, outcome(status), time.monotonic() - sent)
            note_attempt(trace, service, url, outcome(status), status, sent)
            if status in retry.RETRY_STATUSES:
                eject(upstream, url, trace)
            retry_this = status in retry.RETRY_STATUSES or (
                status in retry.RETRY_AFTER_STATUSES
                and "retry-after" in response.headers
            )
            if retry_this and attempt < tries:
                wait = None
                if status in retry.RETRY_AFTER_STATUSES:
                    wait = retry.retry_after(response.headers.get("retry-after"))
                if wait is None or time.monotonic() + wait < deadline - 0.05:
                    response.release()
                    if wait is not None:
                        await asyncio.sleep(wait)
                        # The service said when: that wait replaces the back-off.
                        tried.clear()
                    continue
            if status >= 500:
                await upstream.breaker.failure(ticket)
            else:
                await upstream.breaker.success(ticket)
                if upstream.balancer.readmit(url) and trace is not None:
                    trace.readmitted.append(service.urls.index(url))
            return response
        eject(upstream, url, trace)
        if attempt >= tries:
            break
    await upstream.breaker.failure(ticket)
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
