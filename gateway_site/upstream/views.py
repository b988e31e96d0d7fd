"""The gateway's entry points: the transparent proxy and ``POST /gateway``."""

import json
import logging
from http import HTTPStatus

from django.http import HttpResponse, StreamingHttpResponse
from django.utils.encoding import escape_uri_path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_site import auth
from gateway_site.upstream import cache, registry
from gateway_site.upstream.conf import conf
from gateway_site.upstream.forward import (
    Outbound,
    UpstreamError,
    hop_by_hop,
    send,
)
from gateway_site.upstream.retry import may_retry
from likes.api import ErrorSerializer
from likes.http import error_response
from likes.ratelimit import client_ip

logger = logging.getLogger("gateway_site.upstream")

CHUNK = 64 * 1024
# Never forwarded: rebuilt by the gateway (Host, X-Forwarded-*, lengths), or
# cookies, which belong to this site (the admin's session) and not to the
# services: the gateway is cookie-free in both directions.
REQUEST_DROP = frozenset(
    {
        "host",
        "content-length",
        "cookie",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "accept-encoding",
        "x-request-id",
    }
)
RESPONSE_DROP = frozenset({"set-cookie"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def upstream_error(exc: UpstreamError, name: str):
    return error_response(
        exc.status, code=exc.code, detail=exc.detail, headers=exc.headers, service=name
    )


def unknown_service(name: str):
    return error_response(
        HTTPStatus.NOT_FOUND,
        code="unknown_service",
        detail=f"No service named {name!r}.",
    )


def request_id(request) -> str | None:
    return getattr(request, "request_id", None) or request.headers.get("X-Request-ID")


def forwarded_headers(request) -> list[tuple[str, str]]:
    """X-Forwarded-For (appended), -Proto, -Host and the request id."""
    prior = request.headers.get("X-Forwarded-For", "").strip()
    ip = client_ip(request)
    headers = [
        ("X-Forwarded-For", f"{prior}, {ip}" if prior else ip),
        ("X-Forwarded-Proto", request.scheme),
        ("X-Forwarded-Host", request.get_host()),
    ]
    rid = request_id(request)
    if rid:
        headers.append(("X-Request-ID", rid))
    return headers


class _Headers:
    """Adapter so hop_by_hop() reads Django's request headers."""

    def __init__(self, headers):
        self.headers = headers

    def get_list(self, name):
        value = self.headers.get(name)
        return [value] if value else []


def proxy_request_headers(request) -> list[tuple[str, str]]:
    drop = hop_by_hop(_Headers(request.headers)) | REQUEST_DROP
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name.lower() not in drop
    ]
    # Pass the client's Accept-Encoding through (or none): the body is relayed
    # as the service encoded it.
    headers.append(
        ("Accept-Encoding", request.headers.get("Accept-Encoding", "identity"))
    )
    headers.extend(forwarded_headers(request))
    return latin1(headers)


def latin1(headers) -> list[tuple[bytes, bytes]]:
    """Header bytes as received: WSGI decodes them as latin-1, httpx wants ASCII str."""
    return [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
    ]


def request_body(request, length: int):
    """The body to forward: bytes when small enough to resend, else a stream."""
    if length == 0:
        return b"" if request.method in BODY_METHODS else None
    if length <= conf.REPLAY_BUFFER_SIZE:
        return request.read(length)

    def stream():
        left = length
        while left > 0:
            chunk = request.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk

    return stream()


def response_headers(upstream) -> list[tuple[str, str]]:
    drop = hop_by_hop(upstream.headers) | RESPONSE_DROP
    merged: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    # Raw bytes, decoded as latin-1 like WSGI does: relayed byte for byte.
    for raw_name, raw_value in upstream.headers.raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        lower = name.lower()
        if lower in drop:
            continue
        names.setdefault(lower, name)
        merged.setdefault(lower, []).append(value)
    return [(names[lower], ", ".join(values)) for lower, values in merged.items()]


def build_response(status, reason, headers, content=None, stream=None):
    if stream is not None:
        response = StreamingHttpResponse(stream, status=status, reason=reason)
    else:
        response = HttpResponse(content, status=status, reason=reason)
    del response.headers["Content-Type"]
    for name, value in headers:
        response.headers[name] = value
    return response


def relay(upstream):
    """Stream the service's body as received (still encoded), then close it."""
    try:
        yield from upstream.iter_raw(CHUNK)
    except Exception as exc:  # the service broke off mid-body
        logger.warning("Upstream body interrupted: %s", type(exc).__name__)
    finally:
        upstream.close()


@auth.gateway_view(processing=lambda request: request.method not in SAFE_METHODS)
def proxy(request, service: str, path: str = ""):
    """Relay a request to ``/<path>`` of ``service``: /services/<service>/<path>.

    Open to anonymous and authenticated callers alike, each within their
    rate-limit tier; calls other than GET/HEAD/OPTIONS count as processing.
    """
    return relay_request(request, service, path)


def relay_request(request, service: str, path: str):
    gateway = registry.get()
    if service not in gateway.upstreams:
        return unknown_service(service)
    segments = path.split("/")
    if "." in segments or ".." in segments:
        return error_response(
            HTTPStatus.BAD_REQUEST,
            code="bad_path",
            detail="Dot segments are not allowed.",
        )
    raw_length = request.META.get("CONTENT_LENGTH") or "0"
    if not raw_length.isdigit():
        return error_response(
            HTTPStatus.BAD_REQUEST, code="bad_length", detail="Invalid Content-Length."
        )
    length = int(raw_length)
    if (
        length == 0
        and "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    ):
        return error_response(
            HTTPStatus.LENGTH_REQUIRED,
            code="length_required",
            detail="Send the body with a Content-Length.",
        )
    if length > conf.MAX_BODY_SIZE:
        return error_response(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            code="body_too_large",
            detail=f"The body exceeds {conf.MAX_BODY_SIZE} bytes.",
        )
    target = "/" + escape_uri_path(path)
    query = request.META.get("QUERY_STRING", "")
    if query:
        target += "?" + query

    use_cache = cache.cacheable_request(request)
    cache_key = None
    if use_cache:
        cache_key = cache.key(service, target, request)
        hit = cache.lookup(cache_key)
        if hit is not None:
            response = build_response(
                hit["status"], hit["reason"], hit["headers"], hit["body"]
            )
            response.headers[cache.STATUS_HEADER] = cache.HIT
            return response

    headers = proxy_request_headers(request)
    if length:
        headers.append((b"Content-Length", str(length).encode()))
    outbound = Outbound(
        method=request.method,
        target=target,
        headers=headers,
        body=request_body(request, length),
        retryable=may_retry(request.method, request.headers),
    )
    try:
        upstream = send(gateway, service, outbound)
    except UpstreamError as exc:
        return upstream_error(exc, service)
    out_headers = response_headers(upstream)
    if use_cache:
        ttl = cache.storable_ttl(
            upstream,
            cache.ttl_for(gateway, gateway.upstreams[service].service, "/" + path),
            gateway.config.cache_max_body_size,
        )
        if ttl is not None:
            try:
                # Raw: stored and relayed with the service's Content-Encoding.
                body = b"".join(upstream.iter_raw())
            except Exception as exc:
                logger.warning(
                    "Upstream body of %s unreadable: %s", service, type(exc).__name__
                )
                return upstream_error(
                    UpstreamError(
                        HTTPStatus.BAD_GATEWAY,
                        "upstream_unavailable",
                        f"Service {service} broke off its answer.",
                    ),
                    service,
                )
            finally:
                upstream.close()
            entry = {
                "status": upstream.status_code,
                "reason": upstream.reason_phrase,
                "headers": out_headers,
                "body": body,
            }
            cache.store(cache_key, entry, ttl)
            response = build_response(
                upstream.status_code, upstream.reason_phrase, out_headers, body
            )
            response.headers[cache.STATUS_HEADER] = cache.MISS
            return response
    response = build_response(
        upstream.status_code,
        upstream.reason_phrase,
        out_headers,
        stream=relay(upstream),
    )
    response.headers[cache.STATUS_HEADER] = cache.BYPASS
    return response


class ServiceRequestSerializer(serializers.Serializer):
    service_name = serializers.CharField(max_length=63)
    endpoint = serializers.RegexField(
        r"^/(?!/)[^\s#]*$",
        max_length=2048,
        error_messages={"invalid": "A path starting with a single /."},
    )
    method = serializers.ChoiceField(
        choices=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        default="GET",
    )
    payload = serializers.JSONField(required=False, allow_null=True, default=None)

    def validate_method(self, value):
        return value.upper()

    def validate_endpoint(self, value):
        path = value.split("?", 1)[0]
        if {".", ".."} & set(path.split("/")):
            raise serializers.ValidationError("Dot segments are not allowed.")
        return value


class ServiceResponseSerializer(serializers.Serializer):
    status_code = serializers.IntegerField()
    data = serializers.JSONField()


def _error(description):
    return OpenApiResponse(ErrorSerializer, description=description)


class GatewayView(APIView):
    """Route a ServiceRequest to a service; answer a ServiceResponse.

    The service's answer comes back in the envelope with HTTP 200, whatever its
    status; 404/502/503/504 mean the gateway itself could not get one.
    """

    authentication_classes = [auth.BearerAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="gateway_request",
        request=ServiceRequestSerializer,
        responses={
            200: ServiceResponseSerializer,
            400: _error("Invalid request"),
            401: _error("Missing, invalid or expired bearer token"),
            404: _error("Unknown service"),
            429: _error("Over the caller's rate-limit tier (Retry-After)"),
            502: _error("Service unreachable"),
            503: _error("Circuit open (Retry-After says when to retry)"),
            504: _error("Service timed out"),
        },
    )
    def post(self, request):
        incoming = ServiceRequestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        name = data["service_name"]
        gateway = registry.get()
        if name not in gateway.upstreams:
            return unknown_service(name)
        method = data["method"]
        payload = data["payload"]
        body = None
        headers = [("Accept", "application/json"), ("Accept-Encoding", "identity")]
        if payload is not None and method in BODY_METHODS | {"DELETE"}:
            body = json.dumps(payload, separators=(",", ":")).encode()
            headers.append(("Content-Type", "application/json"))
        elif method in BODY_METHODS:
            body = b""
        # The caller's idempotency key and W3C trace context go along.
        for header in ("Idempotency-Key", "traceparent", "tracestate"):
            value = request.headers.get(header)
            if value:
                headers.append((header, value))
        headers.extend(forwarded_headers(request))
        outbound = Outbound(
            method=method,
            target=data["endpoint"],
            headers=latin1(headers),
            body=body,
            retryable=may_retry(method, request.headers),
        )
        try:
            upstream = send(gateway, name, outbound)
        except UpstreamError as exc:
            return upstream_error(exc, name)
        try:
            raw = read_capped(upstream, conf.MAX_BODY_SIZE)
        except Exception as exc:  # too large, or the service broke off
            logger.warning("Answer of %s unusable: %s", name, type(exc).__name__)
            return upstream_error(
                UpstreamError(
                    HTTPStatus.BAD_GATEWAY,
                    "upstream_unavailable",
                    f"Service {name} sent an unusable answer.",
                ),
                name,
            )
        finally:
            upstream.close()
        return Response({"status_code": upstream.status_code, "data": decode(raw)})


def read_capped(upstream, cap: int) -> bytes:
    body = bytearray()
    for chunk in upstream.iter_bytes(CHUNK):
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
    except ValueError:
        return {"content": raw.decode("utf-8", errors="replace")}


# Bearer token required; every call makes a service work: the processing tier.
gateway_view = auth.gateway_view(auth_required=True, processing=True)(
    GatewayView.as_view()
)
