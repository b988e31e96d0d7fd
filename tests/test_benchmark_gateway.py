"""The gateway benchmark runs end to end, and its ceiling is a real proxy.

No timing is asserted: the benchmark's numbers come from ``make bench-gateway``.
"""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import pytest

from tests.benchmarks import gateway_ceiling
from tests.conftest import need


class Recorder(BaseHTTPRequestHandler):
    """Answers every call with what it received, as JSON."""

    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": self.rfile.read(length).decode(),
            }
        ).encode()
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("X-Upstream", "yes")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def ceiling(monkeypatch):
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "IMAGE_PROCESSOR_URL", f"http://127.0.0.1:{upstream.server_port}"
    )
    proxy = make_server("127.0.0.1", 0, gateway_ceiling.app, handler_class=Quiet)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{proxy.server_port}"
    finally:
        proxy.shutdown()
        upstream.shutdown()
        proxy.server_close()
        upstream.server_close()


def test_ceiling_relays_get_with_query_and_headers(ceiling):
    response = httpx.get(
        f"{ceiling}/services/image_processor/jobs/7?full=1",
        headers={"X-Forwarded-For": "203.0.113.9", "TE": "trailers", "X-Mine": "a"},
    )

    assert response.status_code == 200
    assert response.headers["X-Upstream"] == "yes"
    assert "keep-alive" not in response.headers
    seen = response.json()
    assert seen["method"] == "GET"
    assert seen["path"] == "/jobs/7?full=1"
    assert seen["headers"]["x-mine"] == "a"
    assert "te" not in seen["headers"]
    assert seen["headers"]["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"


def test_ceiling_relays_post_body(ceiling):
    response = httpx.post(
        f"{ceiling}/services/image_processor/process", json={"image": "abc"}
    )

    assert response.status_code == 201
    seen = response.json()
    assert seen["method"] == "POST"
    assert json.loads(seen["body"]) == {"image": "abc"}
    assert seen["headers"]["content-type"] == "application/json"


def test_ceiling_answers_health_and_refuses_unknown_services(ceiling):
    assert httpx.get(f"{ceiling}/health").status_code == 200
    assert httpx.get(f"{ceiling}/services/nope/x").status_code == 404
    assert httpx.get(f"{ceiling}/elsewhere/services/x/").status_code == 404


@pytest.mark.live
def test_gateway_benchmark_runs_every_target_and_writes_its_report(tmp_path):
    need(shutil.which("wrk") is not None, "wrk is not installed (apt-get install wrk)")
    from tests.benchmarks import gateway

    output = tmp_path / "gateway.json"
    report = gateway.main(
        [
            "--duration",
            "1",
            "--rounds",
            "1",
            "--connections",
            "4",
            "--workers",
            "1",
            "--threads",
            "4",
            "--service-times",
            "0,5",
            "--output",
            str(output),
        ]
    )

    assert json.loads(output.read_text())["scenarios"].keys() == {"0ms", "5ms"}
    for name, scenario in report["scenarios"].items():
        # Every target answered (the harness exits on any error or non-2xx).
        assert set(scenario["summary"]) == {"direct", "ceiling", "gateway"}, name
        assert all(row["rps"] > 0 for row in scenario["summary"].values())
        summary = scenario["summary"]
        assert summary["direct"]["proxy_cpu_us"] is None
        assert summary["gateway"]["proxy_cpu_us"] > 0
        assert summary["ceiling"]["proxy_cpu_us"] > 0
        assert all(row["upstream_cpu_us"] > 0 for row in summary.values())
        assert set(scenario["verdicts"]) == {"p50_added_le_2ms", "throughput_ge_50pct"}
        assert set(scenario["ceiling"]["verdicts"]) == set(scenario["verdicts"])
        assert scenario["gateway_vs_ceiling"]["throughput_ratio"] > 0
    # The 5 ms upstream really takes its time.
    assert report["scenarios"]["5ms"]["summary"]["direct"]["p50_ms"] >= 5
