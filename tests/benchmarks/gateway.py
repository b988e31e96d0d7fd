"""Benchmark the gateway against a direct call, nginx and the smallest asyncio proxy.

    make bench-gateway          # or: python -m tests.benchmarks.gateway --help

Starts on loopback, side by side:

- the upstream: an asyncio app (tests/benchmarks/gateway_upstream.py) whose
  calls take 0 ms or 20 ms, waiting as a model server would;
- nginx, 2 workers, with a keep-alive pool to the upstream: the anchor, what a
  proxy written in C costs on this machine (``apt-get install nginx``);
- the ceiling: the smallest asyncio proxy on the gateway's own server settings
  (tests/benchmarks/gateway_ceiling.py: one aiohttp call, nothing else);
- the gateway as ``make run`` runs it (gunicorn + gateway_site/gunicorn.conf.py,
  the embedded default, its workers and threads), with rate-limit tiers
  counting and their limits raised so that one load generator is not refused.

For each service time and each concurrency (c=1 and c=16 by default) wrk drives
the upstream directly, nginx, the ceiling and the gateway in alternating rounds
(``Cache-Control: no-store``: every call goes through). The report gives req/s,
p50/p99, the latency each proxy adds to the direct call, its throughput as a
share of the direct one, and the CPU its processes spent per call, also as a
multiple of nginx's.

Then the isolation run, on the gateway: calls to a service that takes 20 s held
in flight and clients that trickle their headers, while wrk reads
``GET /likes/<id>``; and a burst of concurrent in-flight calls that must all
complete.

Targets (issue "data plane"): CPU per call <= 1.5x the ceiling's; with the 20 ms
upstream at c=16 throughput >= 80 % of direct and p50 added <= 3 ms; at c=1 p50
added <= 2 ms; isolation: likes p99 <= 100 ms and no error, every in-flight
call answered.
"""

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import NamedTuple

import aiohttp
import httpx

from tests.benchmarks.run import machine, tree_cpu_seconds, wrk
from tests.live import BASE_DIR, BIN, free_port, manage, project_env

RESULTS = Path(__file__).resolve().parent / "results" / "gateway.json"
TARGETS = {
    "cpu_vs_ceiling_max": 1.5,
    "throughput_ratio_min_20ms_c16": 0.8,
    "p50_added_max_ms_20ms_c16": 3.0,
    "p50_added_max_ms_20ms_c1": 2.0,
    "isolation_likes_p99_max_ms": 100.0,
}
RAISED_RATE = "100000000/h"


class Server(NamedTuple):
    url: str
    pid: int


@contextmanager
def process(argv, env, log_path, base_url, health="/health"):
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            argv, env=env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_until_up(base_url + health, proc)
            yield Server(base_url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_up(url, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


def upstream(log_dir, workers):
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "-k",
        "asgi",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--keep-alive",
        "75",
        "--chdir",
        str(BASE_DIR),
        "tests.benchmarks.gateway_upstream:app",
    ]
    return process(
        argv, project_env(), log_dir / "upstream.log", f"http://127.0.0.1:{port}"
    )


NGINX = """
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream bench {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location = /health {{ return 200 "{{}}"; }}
        location /services/bench/ {{
            proxy_pass http://bench/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


def nginx(log_dir, upstream_url, workers):
    port = free_port()
    conf = log_dir / "nginx.conf"
    conf.write_text(
        NGINX.format(
            workers=workers,
            dir=log_dir,
            port=port,
            upstream_port=upstream_url.rsplit(":", 1)[1],
        )
    )
    return process(
        [shutil.which("nginx"), "-c", str(conf), "-p", str(log_dir)],
        {},
        log_dir / "nginx.log",
        f"http://127.0.0.1:{port}",
    )


def services_file(path: Path, upstream_url: str) -> Path:
    path.write_text(
        f"""[health]
interval = 30
timeout = 5
[services.bench]
url = "{upstream_url}"
timeout = 60.0
max_retries = 0
retry_delay = 0.1
circuit_breaker = {{ failure_threshold = 1000, recovery_timeout = 30 }}
"""
    )
    return path


def gateway(log_dir, data_dir, services: Path, workers, app=None, name="gateway"):
    """The project as make run serves it (or, with ``app``, another ASGI app)."""
    port = free_port()
    env = project_env(
        API_GATEWAY_HOST="127.0.0.1",
        API_GATEWAY_PORT=str(port),
        WEB_CONCURRENCY=str(workers),
        DATA_DIR=str(data_dir),
        GATEWAY_SERVICES_FILE=str(services),
        BENCH_URL=services.read_text().split('url = "')[1].split('"')[0],
        # Tiers count as deployed; limits raised so one load generator passes.
        GATEWAY_RATE_ANONYMOUS=RAISED_RATE,
        GATEWAY_RATE_AUTHENTICATED=RAISED_RATE,
        GATEWAY_RATE_PROCESSING=RAISED_RATE,
        LIKES_GET_RATE="100000000/m",
    )
    if app is None:
        manage("migrate", "--noinput", env=env)
    argv = [
        str(BIN / "gunicorn"),
        "-c",
        str(BASE_DIR / "gateway_site/gunicorn.conf.py"),
    ]
    if app:
        argv.append(app)
    return process(argv, env, log_dir / f"{name}.log", f"http://127.0.0.1:{port}")


def measure(url, servers, connections, duration):
    """One wrk round, with the CPU each server spent per request during it."""
    before = {name: tree_cpu_seconds(server.pid) for name, server in servers.items()}
    result = wrk(
        url,
        method="GET",
        duration=duration,
        connections=connections,
        threads=min(connections, 2),
    )
    requests = max(result["requests"], 1)
    for name, server in servers.items():
        spent = tree_cpu_seconds(server.pid) - before[name]
        result[f"{name}_cpu_us"] = spent / requests * 1e6
    return result


def median(rounds, key):
    return statistics.median(r[key] for r in rounds)


# --- Isolation --------------------------------------------------------------------


class SlowClients:
    """Connections that send their headers a byte a second and never finish."""

    def __init__(self, base_url: str, count: int):
        port = int(base_url.rsplit(":", 1)[1])
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


def in_flight(url: str, count: int, timeout: float) -> dict:
    """Send ``count`` calls at once on a thread; statuses when all are answered."""
    outcome: dict = {}

    async def burst():
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one():
                try:
                    async with session.get(
                        url, timeout=aiohttp.ClientTimeout(total=timeout)
                    ) as response:
                        await response.read()
                        return response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    return type(exc).__name__

            return await asyncio.gather(*(one() for _ in range(count)))

    def run():
        results = asyncio.run(burst())
        outcome["statuses"] = {str(s): results.count(s) for s in set(results)}

    thread = threading.Thread(target=run)
    thread.start()
    outcome["thread"] = thread
    return outcome


def isolation(gw: Server, args) -> dict:
    """Likes reads while slow calls and slow clients hold the gateway."""
    calls = in_flight(
        f"{gw.url}/services/bench/sleep?ms={args.slow_ms}", args.slow_calls, 120
    )
    time.sleep(2)  # let them all reach the upstream
    clients = SlowClients(gw.url, args.slow_clients)
    try:
        reads = wrk(
            f"{gw.url}/likes/bench-isolation",
            method="GET",
            duration=args.duration,
            connections=4,
            threads=2,
        )
    finally:
        clients.close()
    calls["thread"].join()
    burst = in_flight(f"{gw.url}/services/bench/sleep?ms=5000", args.burst_calls, 120)
    burst["thread"].join()
    errors = sum(reads["errors"].values()) + reads["non_2xx"]
    return {
        "slow_calls": args.slow_calls,
        "slow_call_ms": args.slow_ms,
        "slow_clients": args.slow_clients,
        "likes_reads": reads["requests"],
        "likes_p50_ms": reads["p50_us"] / 1000,
        "likes_p99_ms": reads["p99_us"] / 1000,
        "likes_errors": errors,
        "slow_call_statuses": calls["statuses"],
        "burst_calls": args.burst_calls,
        "burst_statuses": burst["statuses"],
    }


# --- Main ---------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrency", default="1,16", help="wrk connections, comma-separated"
    )
    parser.add_argument(
        "--service-times", default="0,20", help="upstream ms, comma-separated"
    )
    parser.add_argument("--workers", type=int, default=2, help="gateway workers")
    parser.add_argument("--upstream-workers", type=int, default=2)
    parser.add_argument("--slow-calls", type=int, default=200)
    parser.add_argument("--slow-ms", type=int, default=20000)
    parser.add_argument("--slow-clients", type=int, default=20)
    parser.add_argument("--burst-calls", type=int, default=1000)
    parser.add_argument("--no-isolation", dest="isolation", action="store_false")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    has_nginx = bool(shutil.which("nginx"))
    if not has_nginx:
        print("nginx is not installed (apt-get install -y nginx): no anchor row.")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    service_times = [int(ms) for ms in args.service_times.split(",")]

    with (
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp,
        ExitStack() as stack,
    ):
        tmp = Path(tmp)
        for sub in ("data", "ceiling-data"):
            (tmp / sub).mkdir()
        up = stack.enter_context(upstream(tmp, args.upstream_workers))
        services = services_file(tmp / "services.toml", up.url)
        proxies = {
            "gateway": stack.enter_context(
                gateway(tmp, tmp / "data", services, args.workers)
            ),
            "ceiling": stack.enter_context(
                gateway(
                    tmp,
                    tmp / "ceiling-data",
                    services,
                    args.workers,
                    app="tests.benchmarks.gateway_ceiling:app",
                    name="ceiling",
                )
            ),
        }
        if has_nginx:
            proxies["nginx"] = stack.enter_context(nginx(tmp, up.url, args.workers))
        rows = {}
        for ms in service_times:
            for c in concurrencies:
                targets = {"direct": (f"{up.url}/bench?ms={ms}", {"upstream": up})}
                for name, server in proxies.items():
                    targets[name] = (
                        f"{server.url}/services/bench/bench?ms={ms}",
                        {"proxy": server, "upstream": up},
                    )
                for url, _ in targets.values():  # warm up pools
                    wrk(url, method="GET", duration=1, connections=c, threads=1)
                rounds = {name: [] for name in targets}
                order = list(targets.items())
                for n in range(args.rounds):
                    for name, (url, servers) in order if n % 2 == 0 else order[::-1]:
                        result = measure(url, servers, c, args.duration)
                        if result["non_2xx"] or sum(result["errors"].values()):
                            sys.exit(f"{name} {ms} ms c={c}: errors: {result}")
                        rounds[name].append(result)
                rows[f"{ms}ms_c{c}"] = summarize(ms, c, rounds)
        isolated = isolation(proxies["gateway"], args) if args.isolation else None

    report = {
        "machine": machine(),
        "args": vars(args),
        "configuration": "make run's: gunicorn asgi workers, embedded default, "
        f"{args.workers} workers; tiers counting, limits raised to {RAISED_RATE}",
        "scenarios": rows,
        "isolation": isolated,
    }
    report["verdicts"] = verdicts(rows, isolated)
    print_report(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    print(f"written to {args.output}")
    return report


def summarize(ms, c, rounds) -> dict:
    summary = {}
    for name, results in rounds.items():
        summary[name] = {
            "rps": median(results, "rps"),
            "p50_ms": median(results, "p50_us") / 1000,
            "p99_ms": median(results, "p99_us") / 1000,
            "proxy_cpu_us": median(results, "proxy_cpu_us")
            if name != "direct"
            else None,
        }
    direct = summary["direct"]
    for name, row in summary.items():
        if name == "direct":
            continue
        row["p50_added_ms"] = row["p50_ms"] - direct["p50_ms"]
        row["p99_added_ms"] = row["p99_ms"] - direct["p99_ms"]
        row["throughput_ratio"] = row["rps"] / direct["rps"]
    gw, ceiling = summary["gateway"], summary["ceiling"]
    gw["cpu_vs_ceiling"] = gw["proxy_cpu_us"] / ceiling["proxy_cpu_us"]
    if "nginx" in summary:
        for name in ("gateway", "ceiling"):
            summary[name]["cpu_vs_nginx"] = (
                summary[name]["proxy_cpu_us"] / summary["nginx"]["proxy_cpu_us"]
            )
    return {"service_time_ms": ms, "connections": c, "summary": summary}


def verdicts(rows, isolated) -> dict:
    out = {}
    for key, row in rows.items():
        out[f"cpu_vs_ceiling_{key}"] = (
            row["summary"]["gateway"]["cpu_vs_ceiling"] <= TARGETS["cpu_vs_ceiling_max"]
        )
    if "20ms_c16" in rows:
        gw = rows["20ms_c16"]["summary"]["gateway"]
        out["throughput_20ms_c16"] = (
            gw["throughput_ratio"] >= TARGETS["throughput_ratio_min_20ms_c16"]
        )
        out["p50_added_20ms_c16"] = (
            gw["p50_added_ms"] <= TARGETS["p50_added_max_ms_20ms_c16"]
        )
    if "20ms_c1" in rows:
        gw = rows["20ms_c1"]["summary"]["gateway"]
        out["p50_added_20ms_c1"] = (
            gw["p50_added_ms"] <= TARGETS["p50_added_max_ms_20ms_c1"]
        )
    if isolated:
        out["isolation_likes_p99"] = (
            isolated["likes_p99_ms"] <= TARGETS["isolation_likes_p99_max_ms"]
            and isolated["likes_errors"] == 0
        )
        out["isolation_in_flight_all_answered"] = isolated["slow_call_statuses"] == {
            "200": isolated["slow_calls"]
        } and isolated["burst_statuses"] == {"200": isolated["burst_calls"]}
    return out


def print_report(report):
    print(f"\n{report['configuration']}; medians of {report['args']['rounds']} rounds")
    for row in report["scenarios"].values():
        print(f"\nupstream {row['service_time_ms']} ms, c={row['connections']}")
        print(
            f"{'':8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'+p50':>6} {'+p99':>6}"
            f" {'of direct':>9} {'CPU us/call':>11} {'x nginx':>7} {'x ceiling':>9}"
        )
        for name, r in row["summary"].items():
            cpu = r["proxy_cpu_us"]
            print(
                f"{name:8} {r['rps']:8.0f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
                + (
                    f"{r['p50_added_ms']:6.2f} {r['p99_added_ms']:6.2f} "
                    f"{r['throughput_ratio']:9.0%} {cpu:11.0f} "
                    f"{r.get('cpu_vs_nginx', float('nan')):7.1f} "
                    f"{r.get('cpu_vs_ceiling', float('nan')):9.2f}"
                    if name != "direct"
                    else ""
                )
            )
    isolated = report["isolation"]
    if isolated:
        print(
            f"\nisolation: {isolated['slow_calls']} calls of "
            f"{isolated['slow_call_ms'] / 1000:.0f} s in flight and "
            f"{isolated['slow_clients']} slow-header clients: GET /likes/<id> "
            f"p50 {isolated['likes_p50_ms']:.1f} ms, p99 "
            f"{isolated['likes_p99_ms']:.1f} ms, {isolated['likes_errors']} errors; "
            f"slow calls {isolated['slow_call_statuses']}; "
            f"{isolated['burst_calls']} concurrent calls {isolated['burst_statuses']}"
        )
    print(
        "\ntargets: "
        + ", ".join(
            f"{k} {'met' if v else 'MISSED'}" for k, v in report["verdicts"].items()
        )
    )


if __name__ == "__main__":
    main()
