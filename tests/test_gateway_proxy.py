"""The transparent proxy, /services/<service>/<path>, against real upstreams."""

import gzip
from http import HTTPStatus

import pytest

from gateway_site.gateway.headers import HOP_BY_HOP


def test_get_round_trips_path_query_and_headers(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(
        f"/services/{name}/items/a%20b?x=1&y=%C3%A9",
        headers={"X-Custom": "kept", "Accept": "application/json"},
    )

    assert response.status_code == HTTPStatus.OK
    assert response.json()["path"] == "/items/a%20b?x=1&y=%C3%A9"
    assert response.headers["X-Upstream"] == "upstream"
    seen = up.received[-1]["headers"]
    assert seen["X-Custom"] == "kept"
    assert seen["Host"] == f"127.0.0.1:{up.port}"


def test_post_body_and_content_type_reach_the_upstream(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.post(
        f"/services/{name}/submit",
        content=b'{"a": 1}',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == HTTPStatus.OK
    assert response.json()["body"] == '{"a": 1}'
    received = up.received[-1]
    assert received["method"] == "POST"
    assert received["headers"]["Content-Type"] == "application/json"
    assert received["headers"]["Content-Length"] == "8"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
def test_every_method_is_relayed(gw, gateway, upstreams, method):
    up = upstreams()
    name = gateway([up.url])

    response = gw.request(method, f"/services/{name}/thing", content=b"x")

    assert response.status_code == HTTPStatus.OK
    assert up.received[-1]["method"] == method


def test_hop_by_hop_headers_are_stripped_both_ways(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(
        f"/services/{name}/echo",
        headers={
            "Connection": "X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic abc",
            "TE": "trailers",
            "Upgrade": "websocket",
        },
    )

    assert response.status_code == HTTPStatus.OK
    sent = set(up.received[-1]["header_names"])
    assert not sent & {"x-secret-hop", "keep-alive", "proxy-authorization", "upgrade"}
    assert "te" not in sent
    # The upstream named X-Hop in its Connection header: not relayed either.
    assert "X-Hop" not in response.headers
    assert not {name.lower() for name in response.headers} & HOP_BY_HOP


def test_cookies_are_not_forwarded_in_either_direction(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(f"/services/{name}/echo", headers={"Cookie": "sessionid=x"})

    assert "cookie" not in up.received[-1]["header_names"]
    assert "set-cookie" not in response.headers


def test_forwarding_headers_are_rebuilt_and_request_id_propagated(
    gw, gateway, upstreams
):
    up = upstreams()
    name = gateway([up.url])

    gw.get(
        f"/services/{name}/echo",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Request-ID": "req-abc-123",
            "Forwarded": "for=198.51.100.7",
            "X-Real-IP": "198.51.100.7",
            "X-Forwarded-Proto": "https",
        },
    )

    seen = up.received[-1]["headers"]
    assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == "testserver"
    assert seen["X-Real-IP"] == "127.0.0.1"
    assert "forwarded" not in up.received[-1]["header_names"]
    assert seen["X-Request-ID"] == "req-abc-123"


def test_a_malformed_request_id_is_replaced(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(f"/services/{name}/echo", headers={"X-Request-ID": "bad id!"})

    sent = up.received[-1]["headers"]["X-Request-ID"]
    assert sent != "bad id!"
    assert response.headers["X-Request-ID"] == sent


def test_unknown_service_is_404_json(gw, gateway, upstreams):
    gateway([upstreams().url])

    response = gw.get("/services/nope/anything")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["code"] == "unknown_service"


# Literal "../" never leaves httpx: tests/test_gateway_live.py sends those.
@pytest.mark.parametrize(
    "path", ["%2e%2e/x", "a/%2E/b", "..%2fx", "..;/x", "a%2Fb", "a%5cb"]
)
def test_dot_segments_and_encoded_slashes_are_refused(gw, gateway, upstreams, path):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(f"/services/{name}/{path}")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_path"
    assert up.received == []


def test_body_over_the_cap_is_413_and_never_sent(gw, gateway, upstreams, settings):
    settings.GATEWAY_MAX_BODY_SIZE = 10
    up = upstreams()
    name = gateway([up.url])

    response = gw.post(f"/services/{name}/upload", content=b"x" * 11)

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "body_too_large"
    assert up.received == []


def test_large_body_is_streamed_through(gw, gateway, upstreams, settings):
    settings.GATEWAY_REPLAY_BUFFER_SIZE = 1024
    up = upstreams()
    name = gateway([up.url])
    payload = bytes(range(256)) * 1000  # 256 kB, above the replay buffer

    response = gw.put(
        f"/services/{name}/blob",
        content=payload,
        headers={"Content-Type": "application/octet-stream"},
    )

    assert response.status_code == HTTPStatus.OK
    assert up.received[-1]["body"] == payload
    assert up.received[-1]["headers"]["Content-Length"] == str(len(payload))


def test_dead_upstream_is_502_json_naming_the_service(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=0)
    up.kill()

    response = gw.get(f"/services/{name}/echo")

    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert response.json()["service"] == name
    assert name in response.json()["detail"]


def test_slow_upstream_is_504_json(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.3, max_retries=0)

    response = gw.get(f"/services/{name}/sleep?s=2")

    assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT
    assert response.json() == {
        "detail": f"Service {name} did not answer in time.",
        "code": "upstream_timeout",
        "service": name,
    }


def test_upstream_4xx_is_passed_through(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(f"/services/{name}/status/404")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {"status": "set"}


def test_utf8_header_values_are_relayed_unchanged(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(f"/services/{name}/echo", headers={"X-Name": "café".encode()})

    assert response.status_code == HTTPStatus.OK
    # http.server decodes header bytes as latin-1: "café" in UTF-8.
    assert up.received[-1]["headers"]["X-Name"] == "cafÃ©"


def test_a_header_that_is_not_utf8_is_400(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(f"/services/{name}/echo", headers={"X-Name": b"caf\xe9"})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_header"
    assert up.received == []


def test_trace_context_passes_through(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    gw.get(f"/services/{name}/x", headers={"traceparent": traceparent})

    seen = {k.lower(): v for k, v in up.received[-1]["headers"].items()}
    assert seen["traceparent"] == traceparent  # header names are case-insensitive


def test_a_chunked_body_without_length_is_411(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    async def chunks():
        yield b"abc"

    response = gw.post(f"/services/{name}/upload", content=chunks())

    assert response.status_code == HTTPStatus.LENGTH_REQUIRED
    assert up.received == []


def test_an_invalid_content_length_is_400(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.post(
        f"/services/{name}/upload", content=b"x", headers={"Content-Length": "-1"}
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "bad_length"


def test_encoded_answers_stream_through_untouched(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(
        f"/services/{name}/gzip", headers={"Accept-Encoding": "gzip", "Cookie": "a=b"}
    )

    assert response.headers["X-Cache-Status"] == "BYPASS"
    assert response.headers["Content-Encoding"] == "gzip"
    assert up.received[-1]["headers"]["Accept-Encoding"] == "gzip"
    # Relayed compressed (its length is the gzip's); httpx decodes it here.
    packed = gzip.compress(b'{"packed": true}')
    assert response.headers["Content-Length"] == str(len(packed))
    assert response.json() == {"packed": True}


def test_no_accept_encoding_means_identity_upstream(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    gw.get(f"/services/{name}/x", without=["Accept-Encoding"])

    assert up.received[-1]["headers"]["Accept-Encoding"] == "identity"


def test_answers_carry_the_security_and_request_headers(gw, gateway, upstreams):
    name = gateway([upstreams().url])

    response = gw.get(f"/services/{name}/x")

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Request-ID"]
    assert response.headers["X-Processing-Time"].endswith("ms")


def test_a_host_outside_allowed_hosts_is_400(gw, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])

    response = gw.get(f"/services/{name}/x", headers={"Host": "evil.example"})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert up.received == []
