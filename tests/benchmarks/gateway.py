"""Benchmark the API gateway's added latency and throughput against a direct call.

    make bench-gateway          # or: python -m tests.benchmarks.gateway --help

Starts on loopback one upstream per service time (a framework-free WSGI app on
gunicorn; by default one that answers at once and one that takes 20 ms per call,
waiting as a model server would), the project as deployed (gunicorn +
gateway_site/gunicorn.conf.py, embedded default, rate limits off, the threads the
README recommends for proxying) and, on the same gunicorn settings, a
framework-free proxy (``tests/benchmarks/gateway_ceiling.py``: one httpx call,
nothing else), with ``IMAGE_PROCESSOR_URL``, ``ML_EMBEDDINGS_URL``, ... pointing
at the upstreams. For each upstream it drives, with wrk at the same concurrency in
alternating rounds, the upstream directly, the ceiling proxy and the gateway's
proxy (``/services/<service>/bench``, ``Cache-Control: no-store`` so every request
goes through), and optionally the gateway answering from its response cache.
Prints medians of p50/p99 latency, req/s and the CPU time the proxy's and the
upstream's processes spent per request, the added latency (p50/p99 minus
direct) and the throughput ratio of the gateway and of the ceiling, against the
targets: p50 added <= 2 ms and throughput >= 50 % of direct at c=16.

The instant upstream is the worst case: every proxied call is pure CPU, shared
with the upstream and wrk on the same cores, so the ratio compares the gateway's
CPU per call with a trivial app's. The 20 ms upstream is what the gateway is for.
The ceiling shows what gunicorn and httpx alone cost on the machine: where it
misses a target too, no work in the gateway's own code can meet it there.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx

from tests.benchmarks.run import machine, tree_cpu_seconds, wrk
from tests.live import BASE_DIR, BIN, free_port, project_env

RESULTS = Path(__file__).resolve().parent / "results" / "gateway.json"
TARGET_P50_ADDED_MS = 2.0
TARGET_THROUGHPUT_RATIO = 0.5


class Server(NamedTuple):
    url: str
    pid: int


@contextmanager
def process(argv, env, log_path, base_url, health):
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


def wait_until_up(url, proc, timeout=30):
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


def upstream(args, log_dir, service_time_ms):
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "--worker-class",
        "gthread",
        "--workers",
        str(args.upstream_workers),
        "--threads",
        str(args.upstream_threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(BASE_DIR),
        "tests.benchmarks.gateway_upstream:app",
    ]
    return process(
        argv,
        project_env(BENCH_SERVICE_TIME_MS=str(service_time_ms)),
        log_dir / f"upstream-{service_time_ms}ms.log",
        f"http://127.0.0.1:{port}",
        "/health",
    )


def gateway(args, upstream_urls, log_dir, data_dir, app=None, name="gateway"):
    """The project (or, with ``app``, another WSGI app) on the gateway's gunicorn."""
    port = free_port()
    services = {f"{s.upper()}_URL": url for s, url in upstream_urls.items()}
    env = project_env(
        **services,
        API_GATEWAY_HOST="127.0.0.1",
        API_GATEWAY_PORT=str(port),
        WEB_CONCURRENCY=str(args.workers),
        GUNICORN_THREADS=str(args.threads),
        RATELIMIT_ENABLE="false",
        DATA_DIR=str(data_dir),
    )
    argv = [
        str(BIN / "gunicorn"),
        "-c",
        str(BASE_DIR / "gateway_site/gunicorn.conf.py"),
    ]
    if app:
        argv.append(app)
    return process(
        argv, env, log_dir / f"{name}.log", f"http://127.0.0.1:{port}", "/health"
    )


def measure(url, servers, args):
    """One wrk round, with the CPU each server spent per request during it."""
    before = {name: tree_cpu_seconds(server.pid) for name, server in servers.items()}
    result = wrk(
        url,
        method="GET",
        duration=args.duration,
        connections=args.connections,
        threads=args.wrk_threads,
    )
    requests = max(result["requests"], 1)
    for name, server in servers.items():
        spent = tree_cpu_seconds(server.pid) - before[name]
        result[f"{name}_cpu_us_per_request"] = spent / requests * 1e6
    return result


def median(rounds, key):
    return statistics.median(r[key] for r in rounds)


def against(direct, proxied):
    """Added latency and throughput ratio of a proxy, and the targets' verdicts."""
    added = {
        "p50_added_ms": proxied["p50_ms"] - direct["p50_ms"],
        "p99_added_ms": proxied["p99_ms"] - direct["p99_ms"],
        "throughput_ratio": proxied["rps"] / direct["rps"],
    }
    verdicts = {
        "p50_added_le_2ms": added["p50_added_ms"] <= TARGET_P50_ADDED_MS,
        "throughput_ge_50pct": added["throughput_ratio"] >= TARGET_THROUGHPUT_RATIO,
    }
    return added, verdicts


# One upstream per service time, each behind one of the services of the file.
SERVICES = ("image_processor", "ml_embeddings", "ml_classifier", "ocr_extractor")


def service_times(value: str) -> list[int]:
    times = [int(part) for part in value.split(",") if part.strip()]
    if not times or len(times) > len(SERVICES) or min(times) < 0:
        raise argparse.ArgumentTypeError(f"1 to {len(SERVICES)} values >= 0")
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gateway workers")
    parser.add_argument(
        "--threads",
        type=int,
        default=8,
        help="gateway threads per worker (README: 8-16 when proxying slow services)",
    )
    parser.add_argument("--upstream-workers", type=int, default=2)
    parser.add_argument("--upstream-threads", type=int, default=16)
    parser.add_argument(
        "--service-times",
        type=service_times,
        default=[0, 20],
        help="comma-separated upstream service times in ms (default 0,20)",
    )
    parser.add_argument("--cached", action="store_true", help="also measure HITs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--no-ceiling",
        dest="ceiling",
        action="store_false",
        help="skip the framework-free proxy",
    )
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: sudo apt-get install wrk")

    scenarios = {
        f"{ms}ms": (ms, SERVICES[i]) for i, ms in enumerate(args.service_times)
    }
    with (
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp,
        ExitStack() as stack,
    ):
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        ups = {
            name: stack.enter_context(upstream(args, tmp, ms))
            for name, (ms, _) in scenarios.items()
        }
        upstream_urls = {
            service: ups[name].url for name, (_, service) in scenarios.items()
        }
        gw = stack.enter_context(gateway(args, upstream_urls, tmp, tmp / "data"))
        ceiling = None
        if args.ceiling:
            # Its own data directory: gunicorn's master clears the metrics
            # files of the one it starts with.
            (tmp / "ceiling-data").mkdir()
            ceiling = stack.enter_context(
                gateway(
                    args,
                    upstream_urls,
                    tmp,
                    tmp / "ceiling-data",
                    app="tests.benchmarks.gateway_ceiling:app",
                    name="ceiling",
                )
            )
        # (scenario, kind) -> URL, and the servers whose CPU the round counts.
        targets = {}
        for name, (_, service) in scenarios.items():
            up = {"upstream": ups[name]}
            targets[(name, "direct")] = (f"{ups[name].url}/bench", up)
            if ceiling:
                targets[(name, "ceiling")] = (
                    f"{ceiling.url}/services/{service}/bench",
                    {"proxy": ceiling, **up},
                )
            targets[(name, "gateway")] = (
                f"{gw.url}/services/{service}/bench",
                {"proxy": gw, **up},
            )
            if args.cached:
                targets[(name, "cached")] = (
                    f"{gw.url}/services/{service}/cached/bench",
                    {"proxy": gw, **up},
                )
        for url, _ in targets.values():  # warm up pools and caches
            wrk(url, method="GET", duration=2, connections=args.connections, threads=1)
        rounds = {key: [] for key in targets}
        order = list(targets.items())
        for round_no in range(args.rounds):
            for key, (url, servers) in order if round_no % 2 == 0 else order[::-1]:
                result = measure(url, servers, args)
                if result["non_2xx"] or sum(result["errors"].values()):
                    sys.exit(f"{key}: errors during the run: {result}")
                rounds[key].append(result)

    print(
        f"\nc={args.connections}, {args.rounds} x {args.duration}s rounds, gateway "
        f"{args.workers} workers x {args.threads} threads (medians)"
    )
    report = {}
    for name in scenarios:
        summary = {
            kind: {
                "rps": median(results, "rps"),
                "p50_ms": median(results, "p50_us") / 1000,
                "p99_ms": median(results, "p99_us") / 1000,
                "proxy_cpu_us": (
                    median(results, "proxy_cpu_us_per_request")
                    if kind != "direct"
                    else None
                ),
                "upstream_cpu_us": median(results, "upstream_cpu_us_per_request"),
            }
            for (scenario, kind), results in rounds.items()
            if scenario == name
        }
        direct = summary["direct"]
        compared = {
            kind: against(direct, summary[kind])
            for kind in ("gateway", "ceiling")
            if kind in summary
        }
        added, verdicts = compared["gateway"]
        report[name] = {
            "service_time_ms": scenarios[name][0],
            "summary": summary,
            "added": added,
            "verdicts": verdicts,
            "rounds": {
                kind: results
                for (scenario, kind), results in rounds.items()
                if scenario == name
            },
        }
        if "ceiling" in compared:
            report[name]["ceiling"] = dict(
                zip(("added", "verdicts"), compared["ceiling"], strict=True)
            )
            report[name]["gateway_vs_ceiling"] = {
                "throughput_ratio": summary["gateway"]["rps"]
                / summary["ceiling"]["rps"],
                "p50_extra_ms": summary["gateway"]["p50_ms"]
                - summary["ceiling"]["p50_ms"],
            }
        print(f"\nupstream service time {name}")
        print(
            f"{'target':8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'proxy CPU us/req':>17} {'upstream CPU us/req':>20}"
        )
        for kind, row in summary.items():
            proxy_cpu = row["proxy_cpu_us"]
            print(
                f"{kind:8} {row['rps']:9.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
                f"{'-' if proxy_cpu is None else f'{proxy_cpu:.0f}':>17} "
                f"{row['upstream_cpu_us']:20.0f}"
            )
        for kind, (kind_added, kind_verdicts) in compared.items():
            print(
                f"{kind}: added latency p50 {kind_added['p50_added_ms']:.2f} ms "
                f"(target <= {TARGET_P50_ADDED_MS} ms: "
                f"{'met' if kind_verdicts['p50_added_le_2ms'] else 'MISSED'}), "
                f"p99 {kind_added['p99_added_ms']:.2f} ms; throughput "
                f"{kind_added['throughput_ratio']:.0%} of direct (target >= 50 %: "
                f"{'met' if kind_verdicts['throughput_ge_50pct'] else 'MISSED'})"
            )
    result = {"machine": machine(), "args": vars(args), "scenarios": report}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str))
    print(f"written to {args.output}")
    return result


if __name__ == "__main__":
    main()
