"""How the likes API is served: gunicorn's sync, gthread and asyncio workers.

    make bench-serving          # or: python -m tests.benchmarks.serving --help

The choice this records (docs/gateway.md): the project runs gunicorn's asyncio
worker, whose event loop reads every request whole before Django runs it on a
thread (gateway_site/asgi.py, bridge.py). Here, side by side on loopback with
the same Django project and data:

- ``sync``: gunicorn's sync workers running Django's WSGI app (the former
  default), a connection closed after every answer;
- ``gthread``: gthread workers, 8 threads each;
- ``asgi``: the project as deployed.

For each, wrk reads the widget's count (``GET /likes/?ids=<id>``) with rate
limits counting (their limits raised so one load generator is not refused),
first alone, then while clients that trickle their headers hold connections
open. Reported: req/s, p50/p99, CPU per request, errors.
"""

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path

from tests.benchmarks.gateway import process
from tests.benchmarks.run import machine, tree_cpu_seconds, wrk
from tests.live import BASE_DIR, BIN, free_port, manage, project_env

RESULTS = Path(__file__).resolve().parent / "results" / "serving.json"
READ = "/likes/?ids=bench-serving"
MODELS = {
    "sync": ["-k", "sync", "gateway_site.wsgi:application"],
    "gthread": ["-k", "gthread", "--threads", "8", "gateway_site.wsgi:application"],
    "asgi": [],
}


class SlowClients:
    """Connections that send their headers a byte a second and never finish."""

    def __init__(self, port: int, count: int):
        self.stop = threading.Event()
        self.sockets = [
            socket.create_connection(("127.0.0.1", port)) for _ in range(count)
        ]
        for sock in self.sockets:
            sock.sendall(b"GET /likes/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.thread = threading.Thread(target=self.trickle, daemon=True)
        self.thread.start()

    def trickle(self):
        while not self.stop.wait(1):
            for sock in self.sockets:
                with suppress(OSError):
                    sock.sendall(b"X")

    def close(self):
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def serve(model: str, tmp: Path, workers: int):
    port = free_port()
    data = tmp / model
    data.mkdir()
    env = project_env(
        DATA_DIR=str(data),
        API_GATEWAY_HOST="127.0.0.1",
        API_GATEWAY_PORT=str(port),
        WEB_CONCURRENCY=str(workers),
        LIKES_GET_RATE="100000000/m",
    )
    manage("migrate", "--noinput", env=env)
    argv = [
        str(BIN / "gunicorn"),
        "-c",
        str(BASE_DIR / "gateway_site/gunicorn.conf.py"),
        *MODELS[model],
    ]
    return process(argv, env, tmp / f"{model}.log", f"http://127.0.0.1:{port}")


def measure(server, args, slow: int) -> dict:
    port = int(server.url.rsplit(":", 1)[1])
    clients = SlowClients(port, slow) if slow else None
    try:
        time.sleep(0.5 if slow else 0)
        before = tree_cpu_seconds(server.pid)
        result = wrk(
            server.url + READ,
            method="GET",
            duration=args.duration,
            connections=args.connections,
            threads=2,
        )
        spent = tree_cpu_seconds(server.pid) - before
    finally:
        if clients:
            clients.close()
    return {
        "rps": result["rps"],
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "cpu_us_per_request": spent / max(result["requests"], 1) * 1e6,
        "errors": sum(result["errors"].values()) + result["non_2xx"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slow-clients", type=int, default=10)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    report = {}
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        for model in args.models.split(","):
            with ExitStack() as stack:
                server = stack.enter_context(serve(model, Path(tmp), args.workers))
                url = server.url + READ
                wrk(url, method="GET", duration=1, connections=4, threads=1)
                report[model] = {
                    "alone": measure(server, args, 0),
                    "slow_clients": measure(server, args, args.slow_clients),
                }
    print(
        f"\nGET {READ}, c={args.connections}, {args.workers} workers, "
        f"{args.slow_clients} slow-header clients in the second run"
    )
    print(
        f"{'':8} {'':13} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us':>7} {'errors':>6}"
    )
    for model, runs in report.items():
        for run, r in runs.items():
            print(
                f"{model:8} {run:13} {r['rps']:7.0f} {r['p50_ms']:8.2f} "
                f"{r['p99_ms']:8.2f} {r['cpu_us_per_request']:7.0f} {r['errors']:6d}"
            )
    result = {"machine": machine(), "args": vars(args), "models": report}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str))
    print(f"written to {args.output}")
    return result


if __name__ == "__main__":
    main()
