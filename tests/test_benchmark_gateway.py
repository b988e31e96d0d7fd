"""The gateway benchmark runs end to end, and its ceiling is a real proxy.

No timing is asserted: the benchmark's numbers come from ``make bench-gateway``.
"""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


@pytest.fixture
def ceiling(monkeypatch, loop_thread):
    """A blocking client of the ceiling app (over ASGI), a recorder behind it."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    monkeypatch.setenv("BENCH_URL", f"http://127.0.0.1:{upstream.server_port}")
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(
            app=gateway_ceiling.app, client=("127.0.0.1", 40000)
        ),
        base_url="http://testserver",
    )

    def call(method, url, **kwargs):
        return loop_thread.run(client.request(method, url, **kwargs))

    yield call
    loop_thread.run(client.aclose())
    upstream.shutdown()
    upstream.server_close()


def test_ceiling_relays_get_with_query_and_headers(ceiling):
    response = ceiling(
        "GET",
        "/services/bench/jobs/7?full=1",
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
    response = ceiling("POST", "/services/bench/process", json={"image": "abc"})

    assert response.status_code == 201
    seen = response.json()
    assert seen["method"] == "POST"
    assert json.loads(seen["body"]) == {"image": "abc"}
    assert seen["headers"]["content-type"] == "application/json"


def test_ceiling_answers_health_and_refuses_unknown_services(ceiling):
    assert ceiling("GET", "/health").status_code == 200
    assert ceiling("GET", "/services/nope/x").status_code == 404
    assert ceiling("GET", "/elsewhere/services/x/").status_code == 404


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
            "--concurrency",
            "2",
            "--workers",
            "1",
            "--upstream-workers",
            "1",
            "--service-times",
            "0,5",
            "--slow-calls",
            "10",
            "--slow-ms",
            "2000",
            "--slow-clients",
            "2",
            "--burst-calls",
            "20",
            "--output",
            str(output),
        ]
    )

    written = json.loads(output.read_text())
    assert written["scenarios"].keys() == {"0ms_c2", "5ms_c2"}
    proxies = {"gateway", "ceiling"} | ({"nginx"} if shutil.which("nginx") else set())
    for name, scenario in report["scenarios"].items():
        summary = scenario["summary"]
        # Every target answered (the harness exits on any error or non-2xx).
        assert set(summary) == {"direct"} | proxies, name
        assert all(row["rps"] > 0 for row in summary.values())
        assert summary["direct"]["proxy_cpu_us"] is None
        for proxy in proxies:
            assert summary[proxy]["proxy_cpu_us"] > 0
            assert summary[proxy]["throughput_ratio"] > 0
        assert summary["gateway"]["cpu_vs_ceiling"] > 0
    # The 5 ms upstream really takes its time.
    assert report["scenarios"]["5ms_c2"]["summary"]["direct"]["p50_ms"] >= 5
    isolated = report["isolation"]
    assert isolated["slow_call_statuses"] == {"200": 10}
    assert isolated["burst_statuses"] == {"200": 20}
    assert isolated["likes_reads"] > 0
    assert "isolation_likes_p99" in report["verdicts"]
