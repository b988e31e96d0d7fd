"""HMAC signatures from the gateway to its services, and the shipped verifier.

Live: gunicorn forwards to two real services on loopback, one WSGI (wsgiref)
and one ASGI (uvicorn, mounted under a base path), each behind the verifier of
gateway_site/gateway/signing.py: what the gateway sends is accepted; the same
request replayed, with another body, too old, or signed with another key, is
refused with 401 JSON naming the reason.
"""

import asyncio
import json
import secrets
import threading
import time
from contextlib import ExitStack
from http import HTTPStatus
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from gateway_site.gateway import config, signing
from tests.gateway_fixtures import service_table, services_toml
from tests.live import free_port, gunicorn, manage, project_env

WSGI_SECRET = secrets.token_urlsafe(32)
ASGI_SECRET = secrets.token_urlsafe(32)


# --- The scheme ------------------------------------------------------------------


def signed(secret=b"k" * 32, **overrides):
    request = {
        "method": "POST",
        "target": "/v1/resize?w=10&name=caf%C3%A9",
        "request_id": "0123456789abcdef",
        "body": b'{"image": 1}',
        "now": 1_800_000_000,
        **overrides,
    }
    headers = signing.sign(secret, **request)
    return request, {name.lower(): value for name, value in headers}


def check(request, headers, secrets_=(b"k" * 32,), **kwargs):
    kwargs.setdefault("now", request["now"])
    return signing.verify(
        secrets_,
        method=request["method"],
        target=request["target"],
        headers={"x-request-id": request["request_id"], **headers},
        body=request["body"],
        **kwargs,
    )


def test_a_signed_request_verifies_and_its_headers_are_documented():
    request, headers = signed()

    assert check(request, headers) is None
    assert set(headers) == {
        "content-digest",
        "x-gateway-timestamp",
        "x-gateway-signature",
    }
    assert headers["content-digest"].startswith("sha-256=:")
    assert headers["x-gateway-signature"].startswith("v1=")
    # The canonical string, as the module's docstring documents it.
    message = "\n".join(
        [
            "gateway-hmac-v1",
            "POST",
            request["target"],
            "1800000000",
            request["request_id"],
            headers["content-digest"],
        ]
    ).encode()
    assert headers["x-gateway-signature"] == signing.signature(b"k" * 32, message)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": b'{"image": 2}'}, "digest_mismatch"),
        ({"method": "PUT"}, "signature_invalid"),
        ({"target": "/v1/resize?w=11&name=caf%C3%A9"}, "signature_invalid"),
        ({"request_id": "another"}, "signature_invalid"),
        ({"now": 1_800_000_000 + 301}, "timestamp_skewed"),
        ({"now": 1_800_000_000 - 301}, "timestamp_skewed"),
    ],
)
def test_a_changed_request_is_refused_with_its_reason(change, reason):
    request, headers = signed()
    received = {**request, **change}

    assert check(received, headers, now=change.get("now", request["now"])) == reason


def test_missing_malformed_and_foreign_signatures_are_refused():
    request, headers = signed()

    assert check(request, {}) == "signature_missing"
    assert check(request, {**headers, "x-gateway-timestamp": "soon"}) == (
        "timestamp_invalid"
    )
    assert check(request, {**headers, "x-gateway-timestamp": "٣"}) == (
        "timestamp_invalid"
    )
    assert check(request, headers, secrets_=(b"x" * 32,)) == "signature_invalid"
    # While a key is rotated, both are accepted.
    assert check(request, headers, secrets_=(b"x" * 32, b"k" * 32)) is None


def test_a_replay_is_refused_within_the_window():
    request, headers = signed()
    replays = signing.ReplayCache()

    assert check(request, headers, replays=replays) is None
    assert check(request, headers, replays=replays) == "replayed"


def test_a_short_secret_is_a_configuration_problem():
    data = {
        "services": {
            "svc": {
                "url": "http://127.0.0.1:9",
                "timeout": 1,
                "max_retries": 0,
                "retry_delay": 0,
                "circuit_breaker": {"failure_threshold": 1, "recovery_timeout": 1},
            }
        }
    }
    cfg, problems = config.parse(data, {"SVC_HMAC_SECRET": "short"})
    assert [p.where for p in problems] == ["SVC_HMAC_SECRET"]

    cfg, problems = config.parse(data, {"SVC_HMAC_SECRET": "s" * 32})
    assert not problems
    assert cfg.services["svc"].hmac_secret == b"s" * 32
    assert "s" * 32 not in repr(cfg.services["svc"])


# --- Real services on loopback ---------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def recorder(seen):
    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        seen.append(
            {
                "method": environ["REQUEST_METHOD"],
                "target": environ["PATH_INFO"] + "?" + environ["QUERY_STRING"],
                "body": body,
                "headers": {
                    k[5:].replace("_", "-").lower(): v
                    for k, v in environ.items()
                    if k.startswith("HTTP_")
                },
                "verified": environ.get("gateway.verified", False),
            }
        )
        payload = json.dumps({"ok": True, "bytes": len(body)}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [payload]

    return app


async def asgi_app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    payload = json.dumps(
        {
            "path": scope["path"],
            "bytes": len(body),
            "verified": "gateway_verified" in scope,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class Base:
    """Serve an ASGI app under /base, as a service mounted behind a prefix."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/base/"):
            return await self.app(scope, receive, send)
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    uvicorn = pytest.importorskip("uvicorn")
    tmp = tmp_path_factory.mktemp("signing")
    seen: list[dict] = []
    with ExitStack() as stack:
        wsgi = make_server(
            "127.0.0.1",
            0,
            signing.WSGIVerifier(recorder(seen), [WSGI_SECRET]),
            server_class=_ThreadingWSGIServer,
            handler_class=_Quiet,
        )
        threading.Thread(target=wsgi.serve_forever, daemon=True).start()
        stack.callback(wsgi.shutdown)
        wsgi_url = f"http://127.0.0.1:{wsgi.server_port}"

        asgi_port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                Base(signing.ASGIVerifier(asgi_app, [ASGI_SECRET])),
                host="127.0.0.1",
                port=asgi_port,
                log_level="warning",
                lifespan="off",
            )
        )
        thread = threading.Thread(
            target=lambda: asyncio.run(server.serve()), daemon=True
        )
        thread.start()
        stack.callback(thread.join, 10)
        stack.callback(setattr, server, "should_exit", True)
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        asgi_url = f"http://127.0.0.1:{asgi_port}/base"

        services = tmp / "services.toml"
        services.write_text(
            services_toml("signed_wsgi", [wsgi_url], max_retries=0)
            + service_table("signed_asgi", [asgi_url], max_retries=0)
        )
        env = project_env(
            DATA_DIR=str(tmp),
            GATEWAY_SERVICES_FILE=str(services),
            SIGNED_WSGI_HMAC_SECRET=WSGI_SECRET,
            SIGNED_ASGI_HMAC_SECRET=ASGI_SECRET,
            GATEWAY_RATE_ANONYMOUS="100000/h",
            GATEWAY_RATE_PROCESSING="100000/h",
            # Bodies over this are streamed to the service: signed all the same.
            GATEWAY_REPLAY_BUFFER_SIZE="1024",
        )
        manage("migrate", "--noinput", env=env)
        site = stack.enter_context(gunicorn(env, workers=1))
        yield site.base_url, wsgi_url, asgi_url, seen


@pytest.mark.live
def test_what_the_gateway_forwards_is_verified_by_the_service(stack):
    base, _, _, seen = stack
    body = json.dumps({"text": "héllo"}).encode()

    response = httpx.post(
        f"{base}/services/signed_wsgi/v1/caf%C3%A9/run?x=caf%C3%A9&y=1",
        content=body,
        headers={
            "Content-Type": "application/json",
            # A client's own signature headers never reach the service.
            "X-Gateway-Signature": "v1=forged",
            "Content-Digest": "sha-256=:forged:",
        },
        timeout=10,
    )

    assert response.status_code == HTTPStatus.OK, response.text
    assert response.json() == {"ok": True, "bytes": len(body)}
    last = seen[-1]
    assert last["verified"] is True
    # wsgiref decodes the path: the verifier encoded it again.
    assert last["target"] == "/v1/café/run?x=caf%C3%A9&y=1".encode().decode("latin-1")
    assert last["headers"]["x-request-id"] == response.headers["X-Request-ID"]
    assert last["headers"]["x-gateway-signature"] != "v1=forged"

    big = secrets.token_bytes(50_000)  # streamed (over the replay buffer)
    streamed = httpx.put(f"{base}/services/signed_wsgi/upload", content=big, timeout=10)
    assert streamed.status_code == HTTPStatus.OK, streamed.text
    assert seen[-1]["body"] == big and seen[-1]["verified"] is True

    empty = httpx.get(f"{base}/services/signed_wsgi/items", timeout=10)
    assert empty.status_code == HTTPStatus.OK, empty.text


@pytest.mark.live
def test_an_asgi_service_under_a_base_path_verifies_too(stack):
    base, _, _, _ = stack

    response = httpx.post(
        f"{base}/services/signed_asgi/jobs?n=1", content=b"payload", timeout=10
    )

    assert response.status_code == HTTPStatus.OK, response.text
    assert response.json() == {"path": "/base/jobs", "bytes": 7, "verified": True}


@pytest.mark.live
def test_the_service_refuses_what_did_not_come_through_the_gateway(stack):
    base, wsgi_url, asgi_url, seen = stack
    httpx.post(f"{base}/services/signed_wsgi/once", content=b"original", timeout=10)
    captured = seen[-1]
    forwarded = {
        name: captured["headers"][name]
        for name in ("x-gateway-signature", "x-gateway-timestamp", "content-digest")
    }
    forwarded["X-Request-ID"] = captured["headers"]["x-request-id"]

    def direct(url=wsgi_url + "/once", content=b"original", headers=forwarded):
        response = httpx.post(url, content=content, headers=headers, timeout=10)
        assert response.status_code == HTTPStatus.UNAUTHORIZED, response.text
        return response.json()["code"]

    assert direct(headers={}) == "signature_missing"
    assert direct() == "replayed"
    assert direct(content=b"tampered") == "digest_mismatch"
    assert direct(url=wsgi_url + "/elsewhere") == "signature_invalid"
    stale = signing.sign(
        WSGI_SECRET.encode(),
        method="POST",
        target="/once",
        request_id="r1",
        body=b"original",
        now=time.time() - 3600,
    )
    assert direct(headers=dict(stale) | {"X-Request-ID": "r1"}) == "timestamp_skewed"
    other_key = signing.sign(
        b"not the service's key, long enough!!",
        method="POST",
        target="/once",
        request_id="r2",
        body=b"original",
    )
    assert direct(headers=dict(other_key) | {"X-Request-ID": "r2"}) == (
        "signature_invalid"
    )
    assert direct(url=asgi_url + "/jobs", headers={}) == "signature_missing"
