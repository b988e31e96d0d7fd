import json
from http import HTTPStatus

import pytest

from gateway_site.upstream.forward import HOP_BY_HOP


def body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def test_get_round_trips_path_query_and_headers(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    response = client.get(
        f"/services/{name}/items/a%20b?x=1&y=%C3%A9",
        headers={"X-Custom": "kept", "Accept": "application/json"},
    )
    assert response.status_code == HTTPStatus.OK
    data = json.loads(body(response))
    assert data["path"] == "/items/a%20b?x=1&y=%C3%A9"
    assert response["X-Upstream"] == "upstream"
    seen = up.received[-1]["headers"]
    assert seen["X-Custom"] == "kept"
    assert seen["Host"] == f"127.0.0.1:{up.port}"


def test_post_body_and_content_type_reach_the_upstream(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    response = client.post(
        f"/services/{name}/submit", data=b'{"a": 1}', content_type="application/json"
    )
    assert response.status_code == HTTPStatus.OK
    assert json.loads(body(response))["body"] == '{"a": 1}'
    received = up.received[-1]
    assert received["method"] == "POST"
    assert received["headers"]["Content-Type"] == "application/json"
    assert received["headers"]["Content-Length"] == "8"


def test_hop_by_hop_headers_are_stripped_both_ways(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    response = client.get(
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
    assert "X-Hop" not in response
    assert not {name.lower() for name in response.headers} & HOP_BY_HOP


def test_cookies_are_not_forwarded_in_either_direction(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    response = client.get(f"/services/{name}/echo", headers={"Cookie": "sessionid=x"})
    assert "cookie" not in up.received[-1]["header_names"]
    assert "Set-Cookie" not in response


def test_forwarded_for_is_appended_and_request_id_propagated(
    client, gateway, upstreams
):
    up = upstreams()
    name = gateway([up.url])
    client.get(
        f"/services/{name}/echo",
        headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "req-abc-123"},
    )
    seen = up.received[-1]["headers"]
    assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == "testserver"
    assert seen["X-Request-ID"] == "req-abc-123"


def test_request_id_set_by_middleware_wins(rf, gateway, upstreams):
    from gateway_site.upstream.views import proxy

    up = upstreams()
    name = gateway([up.url])
    request = rf.get(f"/services/{name}/echo", headers={"X-Request-ID": "spoofed"})
    request.request_id = "from-middleware"
    response = proxy(request, name, "echo")
    body(response)
    assert up.received[-1]["headers"]["X-Request-ID"] == "from-middleware"


def test_unknown_service_is_404_json(client, gateway, upstreams):
    gateway([upstreams().url])
    response = client.get("/services/nope/anything")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["code"] == "unknown_service"


@pytest.mark.parametrize("path", ["../admin", "a/./b", "a/../../x"])
def test_dot_segments_are_refused(client, gateway, upstreams, path):
    up = upstreams()
    name = gateway([up.url])
    response = client.get(f"/services/{name}/{path}")
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND)
    assert up.received == []


def test_body_over_the_cap_is_413_and_never_sent(client, gateway, upstreams, settings):
    settings.GATEWAY_MAX_BODY_SIZE = 10
    up = upstreams()
    name = gateway([up.url])
    response = client.post(
        f"/services/{name}/upload", data=b"x" * 11, content_type="text/plain"
    )
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "body_too_large"
    assert up.received == []


def test_large_body_is_streamed_through(client, gateway, upstreams, settings):
    settings.GATEWAY_REPLAY_BUFFER_SIZE = 1024
    up = upstreams()
    name = gateway([up.url])
    payload = bytes(range(256)) * 1000  # 256 kB, above the replay buffer
    response = client.put(
        f"/services/{name}/blob", data=payload, content_type="application/octet-stream"
    )
    assert response.status_code == HTTPStatus.OK
    assert up.received[-1]["body"] == payload


def test_dead_upstream_is_502_json_naming_the_service(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], max_retries=0)
    up.kill()
    response = client.get(f"/services/{name}/echo")
    assert response.status_code == HTTPStatus.BAD_GATEWAY
    assert response.json()["service"] == name
    assert name in response.json()["detail"]


def test_slow_upstream_is_504_json(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url], timeout=0.3, max_retries=0)
    response = client.get(f"/services/{name}/sleep?s=2")
    assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT
    assert response.json() == {
        "detail": f"Service {name} did not answer in time.",
        "code": "upstream_timeout",
        "service": name,
    }


def test_upstream_4xx_is_passed_through(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    response = client.get(f"/services/{name}/status/404")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert json.loads(body(response)) == {"status": "set"}


def test_non_ascii_header_bytes_are_relayed_unchanged(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    # WSGI hands header bytes over decoded as latin-1: "café" in UTF-8.
    response = client.get(f"/services/{name}/echo", headers={"X-Name": "cafÃ©"})
    assert response.status_code == HTTPStatus.OK
    assert up.received[-1]["headers"]["X-Name"] == "cafÃ©"


def test_trace_context_passes_through(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client.get(f"/services/{name}/x", headers={"traceparent": traceparent})
    seen = {k.lower(): v for k, v in up.received[-1]["headers"].items()}
    assert seen["traceparent"] == traceparent  # header names are case-insensitive


def test_a_chunked_body_without_length_is_411(rf, gateway, upstreams):
    from gateway_site.upstream.views import proxy

    up = upstreams()
    name = gateway([up.url])
    request = rf.post(
        f"/services/{name}/upload",
        data=b"",
        content_type="text/plain",
        headers={"Transfer-Encoding": "chunked"},
    )
    response = proxy(request, name, "upload")
    assert response.status_code == HTTPStatus.LENGTH_REQUIRED
    assert up.received == []


def test_an_invalid_content_length_is_400(rf, gateway, upstreams):
    from gateway_site.upstream.views import proxy

    up = upstreams()
    name = gateway([up.url])
    request = rf.post(f"/services/{name}/upload", data=b"x", content_type="text/plain")
    request.META["CONTENT_LENGTH"] = "-1"
    response = proxy(request, name, "upload")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert json.loads(response.content)["code"] == "bad_length"


def test_encoded_answers_stream_through_untouched(client, gateway, upstreams):
    import gzip

    up = upstreams()
    name = gateway([up.url])
    response = client.get(
        f"/services/{name}/gzip", headers={"Accept-Encoding": "gzip", "Cookie": "a=b"}
    )
    assert response["X-Cache-Status"] == "BYPASS"
    assert response["Content-Encoding"] == "gzip"
    assert up.received[-1]["headers"]["Accept-Encoding"] == "gzip"
    assert gzip.decompress(body(response)) == b'{"packed": true}'


def test_no_accept_encoding_means_identity_upstream(client, gateway, upstreams):
    up = upstreams()
    name = gateway([up.url])
    client.get(f"/services/{name}/x")
    assert up.received[-1]["headers"]["Accept-Encoding"] == "identity"
