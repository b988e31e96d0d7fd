"""What the observability stack costs the hot path: GET /likes/<id>, on vs off.

    python -m tests.benchmarks.observability            # --help for the knobs

Starts the project three times on loopback, as deployed (gunicorn with
gateway_site/gunicorn.conf.py, embedded default, rate limits off):

- ``on``: the defaults: request ids, processing time, log context, metrics in
  prometheus-client's multiprocess mode;
- ``no-metrics``: the same with ``METRICS_ENABLED=false``;
- ``off``: without the observability middleware at all
  (tests/benchmarks/bare_settings.py).

Drives each with wrk in alternating rounds (tests/benchmarks/run.py) and prints
medians of req/s and of CPU microseconds per request (steadier than req/s on a
shared machine), the cost of ``on`` relative to ``off``, and peak worker RSS.
Writes tests/benchmarks/results/observability.json.
"""

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from http import HTTPStatus
from pathlib import Path

import httpx
import psutil

from tests.benchmarks.run import (
    BASE_DIR,
    BIN,
    GET_ID,
    HERE,
    machine,
    run_round,
    seed,
    start,
    summarise,
)
from tests.live import manage, project_env

RESULTS = HERE / "results" / "observability.json"
# The issue's budget: the stack may cost at most this share of GET throughput.
MAX_COST = 0.15
VARIANTS = {
    "on": {},
    "no-metrics": {"METRICS_ENABLED": "false"},
    "off": {"DJANGO_SETTINGS_MODULE": "tests.benchmarks.bare_settings"},
}


def verify(servers) -> None:
    """Make sure each variant is what it claims before timing it."""
    for name, server in servers.items():
        response = httpx.get(f"{server.base_url}/likes/{GET_ID}", timeout=30)
        metrics = httpx.get(f"{server.base_url}/metrics", timeout=30)
        has_id = "X-Request-ID" in response.headers
        expected = {
            "on": (True, HTTPStatus.OK),
            "no-metrics": (True, HTTPStatus.NOT_FOUND),
            "off": (False, HTTPStatus.NOT_FOUND),
        }[name]
        if (has_id, metrics.status_code) != expected:
            raise RuntimeError(
                f"variant {name!r}: X-Request-ID {has_id}, /metrics "
                f"{metrics.status_code}; expected {expected}"
            )


def cost(on: float, off: float, *, higher_is_better: bool) -> float:
    """The share of ``off`` that ``on`` loses (positive: on is worse)."""
    if not off:
        return float("nan")
    return (off - on) / off if higher_is_better else (on - off) / off


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--deploy-bin",
        type=Path,
        default=BIN,
        help="bin/ of a virtualenv with only requirements/base.txt (make bench "
        "makes .venv-deploy); default: this one",
    )
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed. Install it with:  sudo apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="likes-bench-obs-"))
    argv_ = [
        str(args.deploy_bin / "gunicorn"),
        "-c",
        str(BASE_DIR / "gateway_site/gunicorn.conf.py"),
    ]
    envs = {}
    for name, overrides in VARIANTS.items():
        data_dir = work / name
        env = project_env(
            RATELIMIT_ENABLE="false",
            LIKES_DEDUPE="off",
            DATA_DIR=str(data_dir),
            **overrides,
        )
        for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "LOG_DIR", "LOG_REQUESTS"):
            env.pop(var, None)
        manage("migrate", "--noinput", env=env)
        envs[name] = env

    rounds = {name: [] for name in VARIANTS}
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(start(name, argv_, env, work))
            for name, env in envs.items()
        }
        for server in servers.values():
            seed(server)
        verify(servers)
        names = list(VARIANTS)
        for round_no in range(args.rounds):
            order = names if round_no % 2 == 0 else names[::-1]
            for name in order:
                print(f"  get round {round_no + 1}: {name}", flush=True)
                rounds[name].append(run_round(servers[name], "get", args))
        memory = {
            name: {
                "peak_worker_rss_mb": server.peak_process_rss / 2**20,
                "processes": len(psutil.Process(server.proc.pid).children()) + 1,
            }
            for name, server in servers.items()
        }
    results = {name: summarise(data) for name, data in rounds.items()}
    for name, data in rounds.items():
        results[name]["per_round"] = data

    for name, data in rounds.items():
        results[name]["min_cpu_us_per_request"] = min(
            r["cpu_us_per_request"] for r in data
        )
    # Each round runs the variants back to back, so comparing within a round
    # cancels most of the drift of a shared machine's load.
    costs = {
        key: statistics.median(
            cost(on[key], off[key], higher_is_better=key == "rps")
            for on, off in zip(rounds["on"], rounds["off"], strict=True)
        )
        for key in ("rps", "cpu_us_per_request")
    }
    verdict = max(costs.values()) <= MAX_COST

    print(
        f"\nGET /likes/{GET_ID}, c={args.connections}, {args.rounds} alternating "
        f"rounds x {args.duration}s, medians\n"
    )
    header = (
        f"{'variant':11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'non-2xx':>8} {'CPU us/req':>11} {'min CPU':>8} {'worker RSS MB':>14}"
    )
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        print(
            f"{name:11} {row['rps']:8.0f} {row['p50_us'] / 1000:8.2f} "
            f"{row['p99_us'] / 1000:8.2f} {row['non_2xx']:8d} "
            f"{row['cpu_us_per_request']:11.0f} "
            f"{row['min_cpu_us_per_request']:8.0f} "
            f"{memory[name]['peak_worker_rss_mb']:14.1f}"
        )
    print(
        f"\ncost of 'on' vs 'off', median of the per-round ratios: "
        f"{costs['rps']:+.1%} req/s, {costs['cpu_us_per_request']:+.1%} CPU per "
        f"request (budget {MAX_COST:.0%}): {'PASS' if verdict else 'MISS'}"
    )
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {
            "connections": args.connections,
            "wrk_threads": args.threads,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "project_venv": str(args.deploy_bin.parent),
        },
        "results": results,
        "memory": memory,
        "cost": costs,
        "max_cost": MAX_COST,
        "pass": verdict,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
