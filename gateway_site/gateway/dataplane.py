"""The gateway's data plane: an ASGI application for ``/services/…`` and ``/gateway``.

It runs in gunicorn's asyncio workers beside Django (gateway_site/asgi.py), so
a call waiting on a slow service is a coroutine, not a thread: thousands can
wait while the likes API answers. Per request it does, in this order:

1. the request id, the route and its path rules (gateway_site/gateway/paths.py);
2. the caller: a bearer token verified like Django's side does, the user's
   state from the shared store (gateway_site/gateway/auth.py);
3. the rate-limit tier of the caller, counted in the shared store;
4. the body limits, the response cache for anonymous GETs;
5. the bulkheads: calls in flight for the service and for the whole gateway,
   over either a fast ``503 service_busy``;
6. the call (gateway_site/gateway/proxy.py: breaker, replicas, retries), the
   answer streamed back as the service sent it.

Errors are the project's JSON errors (likes.http); answers carry the request
id, the processing time, the security headers and the rate-limit headers, and
are counted in the same Prometheus metrics as Django's.
"""

import asyncio
import contextlib
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from time import perf_counter
from urllib.parse import quote_from_bytes

from django.conf import settings
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host

from gateway_site import http as site_http
from gateway_site import metrics
from gateway_site.gateway import (
    auth,
    cache,
    clientkeys,
    console,
    paths,
    prober,
    proxy,
    registry,
    tiers,
)
from gateway_site.gateway.conf import conf
from gateway_site.gateway.headers import hop_by_hop
from gateway_site.gateway.retry import may_retry
from gateway_site.gateway.store import StoreUnavailable
from gateway_site.logs import current_request
from likes.http import JSON_PARAMS, error_body
from likes.parsing import parse_json
from likes.ratelimit import bucket_of, resolve_ip

logger = logging.getLogger("gateway_site.gateway")
access_logger = logging.getLogger("gateway_site.access")

PREFIX = "/services/"
ENVELOPE = "/gateway"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ENVELOPE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Route labels of the metrics and logs, as Django's URL patterns had them.
PROXY_ROUTE = "services/<str:service>/<path:path>"
ENVELOPE_ROUTE = "gateway"
# Never forwarded: rebuilt by the gateway (Host, lengths, forwarding headers,
# the request id), or cookies, which belong to this site (the admin's session)
# and not to the services: the gateway is cookie-free in both directions.
REQUEST_DROP = frozenset(
    {
        "host",
        "content-length",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
        "accept-encoding",
        "x-request-id",
        # The gateway's own signature headers (gateway/signing.py): a client's
        # never reach a service.
        "x-gateway-signature",
        "x-gateway-timestamp",
        "content-digest",
        "x-gateway-key",
    }
)
RESPONSE_DROP = frozenset({"set-cookie"})
ENDPOINT = re.compile(r"^/(?!/)[^\s#]*$")
# Every printable ASCII character but space stays as sent; anything else is
# percent-encoded, so the request line reaches the service byte for byte.
_TARGET_SAFE = bytes(range(0x21, 0x7F)).decode()
CHUNK = 64 * 1024
JSON_TYPE = (b"content-type", b"application/json")


class Refused(Exception):
    """An answer the gateway gives itself: a JSON error."""

    def __init__(self, status: int, code: str, detail: str, headers=None, **extra):
        super().__init__(detail)
        self.status = status
        self.body = error_body(code=code, detail=detail, **extra)
        self.headers = headers or {}


class Options:
    """The settings a request reads, looked up once when the data plane starts."""

    def __init__(self):
        self.client_ip_header = (
            getattr(settings, "LIKES_CLIENT_IP_HEADER", "") or ""
        ).lower()
        proxy_ssl = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        # ("HTTP_X_FORWARDED_PROTO", "https") -> "x-forwarded-proto"
        self.proxy_ssl_header = (
            proxy_ssl[0][5:].lower().replace("_", "-") if proxy_ssl else None
        )
        self.log_requests = settings.LOG_REQUESTS


class Request:
    """What the data plane knows of one request (and what the logs read of it)."""

    def __init__(self, scope, receive, options: Options):
        self.scope = scope
        self.receive = receive
        self.method = scope["method"]
        self.path = scope["path"]
        self.raw_path = scope.get("raw_path") or scope["path"].encode()
        self.query = scope.get("query_string", b"")
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        self.headers = headers
        self.request_id = site_http.request_id(headers.get("x-request-id"))
        client = scope.get("client")
        self.remote_addr = client[0] if client else ""
        forwarded = None
        if options.client_ip_header:
            forwarded = headers.get(options.client_ip_header, "")
        self.client_ip = resolve_ip(self.remote_addr, forwarded)
        # What likes.ratelimit.client_ip() and the log filter read.
        self.META = {"REMOTE_ADDR": self.remote_addr}
        self._likes_client_ip = self.client_ip
        proxy_ssl = None
        if options.proxy_ssl_header and site_http.trusted_proxy(self.remote_addr):
            proxy_ssl = headers.get(options.proxy_ssl_header)
        self.secure = site_http.is_secure(scope.get("scheme", "http"), proxy_ssl)
        # The body once read whole (a signed request's, read to verify it).
        self._body: bytes | None = None

    @property
    def target(self) -> str:
        """The path and query as the client sent them (still percent-encoded)."""
        target = self.raw_path.decode("latin-1")
        return f"{target}?{self.query.decode('latin-1')}" if self.query else target

    async def body(self, limit: int) -> bytes:
        """The whole body, up to ``limit`` bytes (else 413)."""
        if self._body is not None:
            if len(self._body) > limit:
                raise Refused(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    "body_too_large",
                    f"The body exceeds {limit} bytes.",
                )
            return self._body
        self._body = await self._read(limit)
        return self._body

    async def _read(self, limit: int) -> bytes:
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Refused(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    "body_too_large",
                    f"The body exceeds {limit} bytes.",
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def stream(self):
        """The body as it arrives (for bodies too large to buffer)."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


class ClientGone(Exception):
    """The client closed its connection before its request was complete."""


class Answer:
    """A response: status, headers (bytes pairs) and a body or a stream."""

    __slots__ = ("status", "headers", "body", "stream", "cache_status", "limit")

    def __init__(self, status, headers=(), body=b"", stream=None):
        self.status = status
        self.headers = list(headers)
        self.body = body
        self.stream = stream
        self.cache_status = None
        self.limit = None


def json_answer(status: int, data, headers: dict | None = None) -> Answer:
    body = json.dumps(data, **JSON_PARAMS).encode()
    pairs = [JSON_TYPE, (b"content-length", str(len(body)).encode())]
    for name, value in (headers or {}).items():
        pairs.append((name.lower().encode("latin-1"), str(value).encode("latin-1")))
    return Answer(status, pairs, body)


def refused_answer(exc: Refused) -> Answer:
    return json_answer(exc.status, exc.body, exc.headers)


class DataPlane:
    """The ASGI application of the gateway's routes."""

    def __init__(self):
        self.metrics = None
        self.options = None
        self._db = None
        self.recorder = console.Recorder(registry)
        self._tasks: list[asyncio.Task] = []
        self._allowed_hosts: dict[str, bool] = {}

    # --- lifespan ----------------------------------------------------------------

    async def startup(self) -> None:
        self.options = Options()
        if settings.METRICS_ENABLED:
            self.metrics = metrics.RequestMetrics()
        gateway = registry.get()
        if gateway.upstreams:
            self._tasks.append(asyncio.create_task(prober.run(gateway)))
            self._tasks.append(asyncio.create_task(console.publish_in_flight(gateway)))
            if self.metrics is not None:
                self._tasks.append(asyncio.create_task(report_in_flight(gateway)))

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.recorder.close()
        gateway = registry.get()
        await proxy.close_sessions(gateway)
        await gateway.store.aclose()
        if self._db is not None:
            self._db.shutdown(wait=False)

    # --- one request ----------------------------------------------------------------

    async def __call__(self, scope, receive, send):
        started = perf_counter()
        request = Request(scope, receive, self.options or Options())
        token = current_request.set(request)
        trace = console.begin(request)
        trace_token = console.current.set(trace)
        metric = self.metrics
        if metric is not None:
            metric.started()
        route = ENVELOPE_ROUTE if request.path == ENVELOPE else PROXY_ROUTE
        status = 500
        try:
            try:
                answer = await self.handle(request)
            except Refused as exc:
                answer = refused_answer(exc)
            except ClientGone:
                status = 499
                return
            except Exception:
                logger.exception("Gateway request failed")
                answer = json_answer(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    error_body(code="server_error", detail="Internal server error."),
                )
            status = answer.status
            await self.respond(request, answer, send, started)
            if request_logs(self.options):
                self.log(request, route, status, started)
        finally:
            if metric is not None:
                metric.observe_route(
                    request.method, route, status, perf_counter() - started
                )
                metric.stopped()
            # After the answer went out, in memory: written a moment later.
            self.recorder.record(trace, status, (perf_counter() - started) * 1000)
            console.current.reset(trace_token)
            current_request.reset(token)

    async def respond(self, request: Request, answer: Answer, send, started) -> None:
        headers = answer.headers
        present = {name.lower() for name, _ in headers}
        extra = [
            pair
            for pair in site_http.api_security_headers(request.secure)
            if pair[0] not in present
        ]
        if answer.limit is not None:
            extra.extend(
                (name.lower().encode(), value.encode())
                for name, value in answer.limit.headers().items()
                if name.lower().encode() not in present
            )
        if answer.cache_status is not None:
            extra.append((b"x-cache-status", answer.cache_status.encode()))
        extra.append((b"x-request-id", request.request_id.encode()))
        extra.append(
            (
                b"x-processing-time",
                f"{(perf_counter() - started) * 1000:.2f}ms".encode(),
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (name, value) for name, value in headers if name != b"x-request-id"
                ]
                + extra,
            }
        )
        if answer.stream is None:
            await send({"type": "http.response.body", "body": answer.body})
            return
        await answer.stream(send)

    @staticmethod
    def log(request: Request, route: str, status: int, started: float) -> None:
        access_logger.info(
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status_code": status,
                "duration_ms": round((perf_counter() - started) * 1000, 2),
            },
        )

    # --- routing, caller, tier -------------------------------------------------------

    def check_host(self, request: Request) -> None:
        host = request.headers.get("host", "")
        allowed = self._allowed_hosts.get(host)
        if allowed is None:
            domain, _ = split_domain_port(host)
            allowed_hosts = settings.ALLOWED_HOSTS
            if settings.DEBUG and not allowed_hosts:
                allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
            allowed = bool(domain) and validate_host(domain, allowed_hosts)
            if len(self._allowed_hosts) < 1024:
                self._allowed_hosts[host] = allowed
        if not allowed:
            raise Refused(HTTPStatus.BAD_REQUEST, "bad_request", "Bad request.")

    async def handle(self, request: Request) -> Answer:
        self.check_host(request)
        gateway = registry.get()
        if request.path == ENVELOPE:
            return await self.envelope(request, gateway)
        return await self.transparent(request, gateway)

    async def caller(
        self, request: Request, gateway, *, required: bool, processing: bool
    ):
        """(user state or None, tier Limit or None); 401 or 429 raised as Refused.

        A bearer token, or a client key's signature (gateway/clientkeys.py),
        whose body is then read whole here to be verified.
        """
        try:
            if clientkeys.KEY_HEADER in request.headers:
                user = await clientkeys.authenticate(
                    gateway.store,
                    request.headers,
                    method=request.method,
                    target=request.target,
                    body=await request.body(conf.MAX_BODY_SIZE),
                    run_blocking=self.run_blocking,
                    load_state=self.load_user,
                )
            else:
                user = await auth.authenticate(
                    gateway.store,
                    request.headers.get("authorization", ""),
                    self.load_user,
                )
            refused = auth.NOT_AUTHENTICATED if user is None and required else None
        except auth.Unauthorized as exc:
            user, refused = None, exc
        console.note(
            user="anonymous" if user is None else str(user.pk),
            tier=tiers.tier(user)[0],
        )
        # Counted against the caller's tier first, refusals included.
        limit = await tiers.admit(
            gateway.store,
            user=user,
            ip_bucket=bucket_of(request.client_ip),
            processing=processing,
        )
        if limit is not None and limit.exceeded:
            console.note(refused_by=limit.policy)
            self.recorder.refused(limit.policy)
            headers = limit.headers()
            raise Refused(
                HTTPStatus.TOO_MANY_REQUESTS,
                "rate_limited",
                f"Too many requests; try again in {headers['Retry-After']} s.",
                headers=headers,
            )
        if refused is not None:
            raise Refused(
                refused.status,
                refused.code,
                refused.detail,
                headers={**refused.headers(), **(limit.headers() if limit else {})},
            )
        return user, limit

    @staticmethod
    def check_client_hmac(request: Request, upstream) -> None:
        """A call signed with a client key reaches only services that take them."""
        signed = clientkeys.KEY_HEADER in request.headers
        if signed and not upstream.service.client_hmac:
            raise Refused(
                HTTPStatus.UNAUTHORIZED,
                "hmac_not_enabled",
                "This service takes no client HMAC keys (client_hmac = true in "
                "its services file table enables them).",
                headers={"WWW-Authenticate": 'GW-HMAC realm="gateway"'},
            )

    async def run_blocking(self, fn, *args):
        """``fn(*args)`` on a database thread (the ORM blocks)."""
        if self._db is None:
            self._db = ThreadPoolExecutor(2, thread_name_prefix="gateway-db")

        def run():
            close_old_connections()
            try:
                return fn(*args)
            finally:
                close_old_connections()

        return await asyncio.get_running_loop().run_in_executor(self._db, run)

    async def load_user(self, user_id) -> auth.UserState:
        """A user's state from the database, on a thread."""
        return await self.run_blocking(
            lambda: auth.UserState.of(auth.load_user(user_id))
        )

    # --- the transparent proxy ------------------------------------------------------

    async def transparent(self, request: Request, gateway) -> Answer:
        if problem := paths.problem(request.raw_path):
            raise Refused(HTTPStatus.BAD_REQUEST, "bad_path", problem)
        rest = request.raw_path[len(PREFIX) :]
        name_bytes, slash, path = rest.partition(b"/")
        name = name_bytes.decode("latin-1")
        upstream = gateway.upstreams.get(name)
        if upstream is not None:
            console.note(service=name)
        user, limit = await self.caller(
            request,
            gateway,
            required=False,
            processing=request.method not in SAFE_METHODS,
        )
        if upstream is None:
            raise Refused(
                HTTPStatus.NOT_FOUND,
                "unknown_service",
                f"No service named {name!r}.",
                headers=limit.headers() if limit else None,
            )
        self.check_client_hmac(request, upstream)
        path = b"/" + path
        length = self.content_length(request)
        target = ascii_target(path)
        if request.query:
            target += "?" + ascii_target(request.query)

        strategy = cache.strategy_for(gateway, path.decode("latin-1"))
        cache_key = None
        if strategy is not None and strategy.per_user:
            # Answers about the caller: theirs alone, never anonymous or shared.
            use_cache = user is not None and cache.cacheable_for_user(
                request.method, request.headers
            )
            if use_cache:
                cache_key = cache.user_key(name, target, request.headers, user)
        else:
            use_cache = cache.cacheable_request(request.method, request.headers)
            if use_cache:
                cache_key = cache.key(name, target, request.headers)
        if use_cache:
            try:
                hit = await gateway.store.aget_bytes(cache_key)
            except StoreUnavailable:
                hit = None
            console.note(cache="MISS" if hit is None else "HIT")
            if hit is not None:
                status, headers, body = cache.decode(hit)
                answer = Answer(status, headers, body)
                answer.cache_status, answer.limit = cache.HIT, limit
                return answer

        headers = self.forward_headers(request)
        if length:
            headers.append(("Content-Length", str(length)))
        if length == 0:
            body = b"" if request.method in BODY_METHODS else None
        elif length <= conf.REPLAY_BUFFER_SIZE:
            body = await request.body(length)
        else:
            body = request.stream()
        outbound = proxy.Outbound(
            method=request.method,
            target=target,
            headers=headers,
            body=body,
            retryable=may_retry(request.method, request.headers),
        )
        release = self.enter(gateway, upstream)
        try:
            response = await self.call(gateway, name, outbound)
        except BaseException:
            release()
            raise
        out_headers = response_headers(response)
        if use_cache:
            ttl = cache.storable_ttl(
                response.status,
                response.headers,
                cache.ttl_for(gateway, upstream.service, path.decode("latin-1")),
                gateway.config.cache_max_body_size,
            )
            if ttl is not None:
                try:
                    content = await response.read()
                except Exception as exc:
                    logger.warning(
                        "Upstream body of %s unreadable: %s", name, type(exc).__name__
                    )
                    raise Refused(
                        HTTPStatus.BAD_GATEWAY,
                        "upstream_unavailable",
                        f"Service {name} broke off its answer.",
                        service=name,
                    ) from None
                finally:
                    response.release()
                    release()
                with contextlib.suppress(StoreUnavailable):
                    await gateway.store.aset_bytes(
                        cache_key,
                        cache.encode(response.status, out_headers, content),
                        ttl,
                    )
                answer = Answer(response.status, out_headers, content)
                answer.cache_status, answer.limit = cache.MISS, limit
                return answer
        answer = Answer(response.status, out_headers, stream=relay(response, release))
        answer.cache_status, answer.limit = cache.BYPASS, limit
        return answer

    @staticmethod
    def content_length(request: Request) -> int:
        raw = request.headers.get("content-length", "0").strip() or "0"
        if not raw.isdigit():
            raise Refused(
                HTTPStatus.BAD_REQUEST, "bad_length", "Invalid Content-Length."
            )
        length = int(raw)
        if (
            length == 0
            and "chunked" in request.headers.get("transfer-encoding", "").lower()
        ):
            raise Refused(
                HTTPStatus.LENGTH_REQUIRED,
                "length_required",
                "Send the body with a Content-Length.",
            )
        if length > conf.MAX_BODY_SIZE:
            raise Refused(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "body_too_large",
                f"The body exceeds {conf.MAX_BODY_SIZE} bytes.",
            )
        return length

    @staticmethod
    def forwarding(request: Request) -> list[tuple[str, str]]:
        """X-Forwarded-For (appended), -Proto, -Host, X-Real-IP, the request id."""
        prior = request.headers.get("x-forwarded-for", "").strip()
        ip = request.client_ip
        return [
            ("X-Forwarded-For", f"{prior}, {ip}" if prior else ip),
            ("X-Forwarded-Proto", "https" if request.secure else "http"),
            ("X-Forwarded-Host", request.headers.get("host", "")),
            ("X-Real-IP", ip),
            ("X-Request-ID", request.request_id),
        ]

    def forward_headers(self, request: Request) -> list[tuple[str, str]]:
        drop = REQUEST_DROP | hop_by_hop([request.headers.get("connection", "")])
        headers = []
        for raw_name, raw_value in request.scope["headers"]:
            name = raw_name.decode("latin-1")
            if name in drop:
                continue
            try:
                # aiohttp writes header values as UTF-8: anything else would
                # reach the service changed.
                headers.append((name, raw_value.decode("utf-8")))
            except UnicodeDecodeError:
                raise Refused(
                    HTTPStatus.BAD_REQUEST,
                    "bad_header",
                    f"The {name} header is not valid UTF-8.",
                ) from None
        # The client's Accept-Encoding (or none): the body is relayed as the
        # service encoded it.
        headers.append(
            ("Accept-Encoding", request.headers.get("accept-encoding", "identity"))
        )
        headers.extend(self.forwarding(request))
        return headers

    @staticmethod
    def enter(gateway, upstream):
        """Take a place in the service's and the gateway's bulkheads, or 503."""
        if upstream.limit is not None and upstream.in_flight >= upstream.limit:
            busy = upstream.service.name
        elif gateway.limit is not None and gateway.in_flight >= gateway.limit:
            busy = "gateway"
        else:
            busy = None
        if busy is not None:
            metrics.observe_upstream(upstream.service.name, "busy")
            raise Refused(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "service_busy",
                f"Too many calls to {upstream.service.name} in flight; retry shortly.",
                headers={"Retry-After": "1"},
                service=upstream.service.name,
            )
        upstream.in_flight += 1
        gateway.in_flight += 1
        released = False

        def release():
            nonlocal released
            if not released:
                released = True
                upstream.in_flight -= 1
                gateway.in_flight -= 1

        return release

    @staticmethod
    async def call(gateway, name: str, outbound: proxy.Outbound):
        try:
            return await proxy.send(gateway, name, outbound)
        except proxy.UpstreamError as exc:
            raise Refused(
                exc.status, exc.code, exc.detail, headers=exc.headers, service=name
            ) from None

    # --- POST /gateway -------------------------------------------------------------

    async def envelope(self, request: Request, gateway) -> Answer:
        user, limit = await self.caller(
            request, gateway, required=True, processing=True
        )
        if request.method != "POST":
            raise Refused(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f'Method "{request.method}" not allowed.',
                headers={"Allow": "POST"},
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if not (content_type == "application/json" or content_type.endswith("+json")):
            raise Refused(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                f'Unsupported media type "{content_type}" in request.',
            )
        data = parse_envelope(await request.body(conf.MAX_BODY_SIZE))
        name = data["service_name"]
        upstream = gateway.upstreams.get(name)
        if upstream is None:
            raise Refused(
                HTTPStatus.NOT_FOUND, "unknown_service", f"No service named {name!r}."
            )
        console.note(service=name)
        self.check_client_hmac(request, upstream)
        method, payload = data["method"], data["payload"]
        body = None
        headers = [("Accept", "application/json"), ("Accept-Encoding", "identity")]
        if payload is not None and method in BODY_METHODS | {"DELETE"}:
            body = json.dumps(payload, separators=(",", ":")).encode()
            headers.append(("Content-Type", "application/json"))
        elif method in BODY_METHODS:
            body = b""
        # The caller's idempotency key and W3C trace context go along.
        for header in ("idempotency-key", "traceparent", "tracestate"):
            if value := request.headers.get(header):
                headers.append((header, value))
        headers.extend(self.forwarding(request))
        outbound = proxy.Outbound(
            method=method,
            target=ascii_target(data["endpoint"].encode("utf-8")),
            headers=headers,
            body=body,
            retryable=may_retry(method, request.headers),
        )
        release = self.enter(gateway, upstream)
        try:
            response = await self.call(gateway, name, outbound)
            try:
                raw = await read_capped(response, conf.MAX_BODY_SIZE)
            except Exception as exc:  # too large, or the service broke off
                logger.warning("Answer of %s unusable: %s", name, type(exc).__name__)
                raise Refused(
                    HTTPStatus.BAD_GATEWAY,
                    "upstream_unavailable",
                    f"Service {name} sent an unusable answer.",
                    service=name,
                ) from None
            finally:
                response.release()
        finally:
            release()
        answer = json_answer(
            HTTPStatus.OK, {"status_code": response.status, "data": decode(raw)}
        )
        answer.limit = limit
        return answer


async def report_in_flight(gateway) -> None:
    """Publish this worker's calls in flight (processing_queue_size) every second.

    Set from here rather than on every call: two fewer shared-memory writes
    per request, for a gauge that is scraped every few seconds.
    """
    while True:
        metrics.processing_queue_size.set(gateway.in_flight)
        await asyncio.sleep(1)


def request_logs(options: Options | None) -> bool:
    return options.log_requests if options is not None else settings.LOG_REQUESTS


def ascii_target(raw: bytes) -> str:
    return quote_from_bytes(raw, safe=_TARGET_SAFE)


def response_headers(response) -> list[tuple[bytes, bytes]]:
    """The service's headers as received, less hop-by-hop ones and cookies."""
    drop = RESPONSE_DROP | hop_by_hop(response.headers.getall("connection", ()))
    return [
        (name.lower(), value)
        for name, value in response.raw_headers
        if name.decode("latin-1").lower() not in drop
    ]


def relay(response, release):
    """Stream the service's body as received (still encoded), then release it.

    A body of known, small length is read whole and sent in one piece.
    """
    length = response.headers.get("content-length", "")
    small = length.isdigit() and int(length) <= CHUNK

    async def stream(send):
        try:
            if small:
                body = await response.read()
                await send({"type": "http.response.body", "body": body})
                return
            async for chunk in response.content.iter_any():
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
        except Exception as exc:  # the service broke off mid-body
            logger.warning("Upstream body interrupted: %s", type(exc).__name__)
            raise
        finally:
            response.release()
            release()

    return stream


async def read_capped(response, cap: int) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > cap:
            raise ValueError("answer too large")
    return bytes(body)


def decode(raw: bytes):
    """The service's JSON, or its text under "content" when it is not JSON."""
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return {"content": raw.decode("utf-8", errors="replace")}


def invalid(**errors) -> Refused:
    return Refused(
        HTTPStatus.BAD_REQUEST,
        "invalid",
        "Invalid input.",
        errors={field: [message] for field, message in errors.items()},
    )


def parse_envelope(raw: bytes) -> dict:
    """The validated ``{"service_name", "endpoint", "method", "payload"}``, or 400."""
    try:
        data = parse_json(raw)
    except ValueError:
        raise Refused(
            HTTPStatus.BAD_REQUEST, "parse_error", "The body is not valid JSON."
        ) from None
    if not isinstance(data, dict):
        raise invalid(non_field_errors="Expected a JSON object.")
    errors = {}
    name = data.get("service_name")
    if not isinstance(name, str) or not name or len(name) > 63:
        errors["service_name"] = "A service name of 1 to 63 characters is required."
    endpoint = data.get("endpoint")
    if (
        not isinstance(endpoint, str)
        or len(endpoint) > 2048
        or not ENDPOINT.fullmatch(endpoint)
    ):
        errors["endpoint"] = "A path starting with a single /."
    elif problem := paths.problem(endpoint.split("?", 1)[0].encode("utf-8")):
        errors["endpoint"] = problem
    method = data.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in ENVELOPE_METHODS:
        errors["method"] = f'"{method}" is not a valid choice.'
    if errors:
        raise invalid(**errors)
    return {
        "service_name": name,
        "endpoint": endpoint,
        "method": method.upper(),
        "payload": data.get("payload"),
    }
