"""OpenTelemetry tracing: spans exported over OTLP/HTTP to a receiver on loopback."""

import json
import subprocess
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.gateway_fixtures import services_toml
from tests.live import BASE_DIR, gunicorn, manage, project_env


class Receiver:
    """An OTLP/HTTP trace receiver: decodes ExportTraceServiceRequest bodies."""

    def __init__(self):
        self.spans = []  # (service name, span) pairs
        self.paths = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    receiver.paths.append(self.path)
                    for resource_spans in request.resource_spans:
                        attributes = {
                            a.key: a.value.string_value
                            for a in resource_spans.resource.attributes
                        }
                        for scope_spans in resource_spans.scope_spans:
                            for span in scope_spans.spans:
                                receiver.spans.append(
                                    (attributes.get("service.name"), span)
                                )
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [(name, s) for name, s in self.spans if predicate(s)]
            if found:
                return found
            time.sleep(0.1)
        return []


@pytest.fixture
def receiver():
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def attributes(span) -> dict:
    out = {}
    for attribute in span.attributes:
        v = attribute.value
        out[attribute.key] = v.string_value or v.int_value
    return out


@pytest.mark.live
def test_gunicorn_workers_export_request_spans_over_otlp(tmp_path, receiver):
    env = project_env(
        DATA_DIR=str(tmp_path),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=2) as server:
        response = httpx.get(
            f"{server.base_url}/likes/traced-post",
            headers={"X-Request-ID": "trace-test-1"},
            timeout=10,
        )
        spans = receiver.wait_for(
            lambda s: attributes(s).get("http.route") == "likes/<anytext:post_id>"
        )

    assert response.status_code == HTTPStatus.OK
    assert spans, f"no request span among {len(receiver.spans)} received"
    service, span = spans[0]
    assert service == "gateway_site"
    assert span.kind == span.SPAN_KIND_SERVER
    assert span.name.startswith("GET")
    attrs = attributes(span)
    assert HTTPStatus.OK in (
        attrs.get("http.status_code"),
        attrs.get("http.response.status_code"),
    )
    assert set(receiver.paths) == {"/v1/traces"}


@pytest.mark.live
def test_a_proxied_call_is_one_trace_from_the_gateway_to_the_service(
    tmp_path, receiver, upstreams
):
    up = upstreams()
    services = tmp_path / "services.toml"
    services.write_text(services_toml("traced", [up.url]))
    env = project_env(
        DATA_DIR=str(tmp_path),
        GATEWAY_SERVICES_FILE=str(services),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    manage("migrate", "--noinput", env=env)
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    with gunicorn(env, workers=1) as server:
        response = httpx.get(
            f"{server.base_url}/services/traced/work",
            headers={"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"},
            timeout=10,
        )
        server_spans = receiver.wait_for(
            lambda s: s.kind == s.SPAN_KIND_SERVER and s.name.startswith("GET /serv")
        )
        # Not the health probes' spans: the call made for this request.
        client_spans = receiver.wait_for(
            lambda s: s.kind == s.SPAN_KIND_CLIENT and s.trace_id.hex() == caller_trace
        )

    assert response.status_code == HTTPStatus.OK
    sent = up.received[-1]["headers"]["traceparent"]
    # The caller's trace continues: the gateway's spans and the service's
    # request belong to it.
    assert sent.split("-")[1] == caller_trace
    assert server_spans[0][1].trace_id.hex() == caller_trace
    assert server_spans[0][1].name == "GET /services/traced/work"
    (client,) = client_spans
    assert client[1].parent_span_id == server_spans[0][1].span_id
    assert sent.split("-")[2] == client[1].span_id.hex()
    assert up.received[-1]["headers"].get_list("traceparent") == [sent]


@pytest.mark.live
def test_the_service_name_is_configurable(tmp_path, receiver):
    env = project_env(
        DATA_DIR=str(tmp_path),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_SERVICE_NAME="likes-blue",
    )
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=1) as server:
        httpx.get(f"{server.base_url}/likes/named", timeout=10)
        spans = receiver.wait_for(
            lambda s: attributes(s).get("http.route") == "likes/<anytext:post_id>"
        )

    assert spans
    assert {name for name, _ in spans} == {"likes-blue"}


OUTGOING = """
import asyncio, json, sys, aiohttp, django
django.setup()
from gateway_site.observability import setup_tracing, shutdown_tracing
from opentelemetry import trace

assert setup_tracing()
import logging

async def call():
    async with aiohttp.ClientSession() as session:
        async with session.get(sys.argv[1]) as response:
            await response.read()

with trace.get_tracer("test").start_as_current_span("handling") as span:
    asyncio.run(call())
    trace_id = format(span.get_span_context().trace_id, "032x")
    logging.getLogger("gateway_site.test").warning("inside the span")
shutdown_tracing()
print(json.dumps({"trace_id": trace_id}))
"""


def test_outgoing_upstream_calls_carry_the_trace_context(tmp_path, receiver):
    seen = []

    class Upstream(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("traceparent"))
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                OUTGOING,
                f"http://127.0.0.1:{upstream.server_address[1]}/work",
            ],
            env=project_env(
                DATA_DIR=str(tmp_path), OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url
            ),
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        upstream.shutdown()
        upstream.server_close()

    assert result.returncode == 0, result.stderr
    trace_id = json.loads(result.stdout.strip().splitlines()[-1])["trace_id"]
    (traceparent,) = seen
    assert traceparent.split("-")[1] == trace_id
    client_spans = receiver.wait_for(lambda s: s.kind == s.SPAN_KIND_CLIENT)
    assert client_spans
    assert client_spans[0][1].trace_id.hex() == trace_id
    logged = [json.loads(line) for line in result.stderr.splitlines() if "{" in line]
    (record,) = [r for r in logged if r.get("message") == "inside the span"]
    assert record["trace_id"] == trace_id


UNSET = """
import sys, django
django.setup()
from django.test import Client
from gateway_site import observability
from gateway_site.wsgi import application

assert Client().get("/likes/p").status_code == 200
assert observability.setup_tracing() is False
observability.gunicorn_post_fork(None, None)
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""


def test_without_an_endpoint_opentelemetry_is_not_even_imported(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), ALLOWED_HOSTS="testserver")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    manage("migrate", "--noinput", env=env)

    result = subprocess.run(
        [sys.executable, "-c", UNSET],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
