"""Benchmark the project against the original-style baseline, side by side.

    make bench                          # or: python -m tests.benchmarks.run --help

Starts, on loopback: the baseline (FastAPI + uvicorn + SQLite, written like the
original), the project as deployed (gunicorn + gateway_site/gunicorn.conf.py,
embedded default) and a framework-free WSGI ceiling on the same gunicorn
settings. Drives each with wrk at the same concurrency in alternating rounds,
then prints a table with ratios and writes tests/benchmarks/results/latest.json.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil

from tests.live import BASE_DIR, BIN, free_port, manage, project_env, wait_until_healthy

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
LUA = HERE / "counts.lua"
GET_ID = "bench-get"
HOT_ID = "bench-hot"
BATCH_IDS = [f"bench-batch-{n}" for n in range(50)]

TARGETS = {
    "get_rps_vs_baseline": 3.0,
    "get_rps_vs_ceiling": 0.35,
    "post_rps_vs_baseline": 3.0,
    "post_counted_per_s_vs_baseline": 20.0,
    "batch_rps_vs_own_get": 0.5,
    "worker_peak_rss_mb": 64.0,
}


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process and all its children.

    Workers that were recycled and reaped count through the parent's
    ``children_*`` times.
    """
    root = psutil.Process(pid)
    reaped = root.cpu_times()
    total = reaped.children_user + reaped.children_system
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class Server:
    """A server process tree whose memory is sampled while it runs."""

    def __init__(self, name, proc, base_url):
        self.name, self.proc, self.base_url = name, proc, base_url
        self.peak_total_rss = 0
        self.peak_process_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        root = psutil.Process(self.proc.pid)
        while not self._stop.wait(0.2):
            try:
                procs = [root, *root.children(recursive=True)]
                sizes = [p.memory_info().rss for p in procs]
            except psutil.Error:
                continue
            self.peak_total_rss = max(self.peak_total_rss, sum(sizes))
            # Workers are the children; a lone process (uvicorn) is its own worker.
            workers = sizes[1:] or sizes
            self.peak_process_rss = max(self.peak_process_rss, max(workers))

    def cpu_seconds(self):
        return tree_cpu_seconds(self.proc.pid)

    def stop(self):
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def start(name, argv, env, log_dir):
    port = free_port()
    env = {
        **env,
        "API_GATEWAY_HOST": "127.0.0.1",
        "API_GATEWAY_PORT": str(port),
    }
    argv = [part.replace("{port}", str(port)) for part in argv]
    with open(log_dir / f"{name}.log", "w") as log:
        proc = subprocess.Popen(
            argv, env=env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT
        )
        server = Server(name, proc, f"http://127.0.0.1:{port}")
        try:
            wait_for(server)
            yield server
        finally:
            server.stop()


def wait_for(server):
    if server.name == "baseline":
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{server.base_url}/likes/{GET_ID}", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("baseline did not start")
    wait_until_healthy(server.base_url, server.proc)


def wrk(url, *, method, duration, connections, threads):
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
        ],
        env={**os.environ, "WRK_METHOD": method},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    seconds = data["duration_us"] / 1e6
    data["rps"] = data["requests"] / seconds
    data["seconds"] = seconds
    return data


def count(server, post_id):
    return httpx.get(f"{server.base_url}/likes/{post_id}", timeout=30).json()["likes"]


def run_round(server, workload, args):
    if workload == "get":
        url, method = f"{server.base_url}/likes/{GET_ID}", "GET"
    elif workload == "post":
        url, method = f"{server.base_url}/likes/{HOT_ID}", "POST"
    else:
        url, method = f"{server.base_url}/likes/?ids={','.join(BATCH_IDS)}", "GET"
    before = count(server, HOT_ID) if workload == "post" else None
    cpu_before = server.cpu_seconds()
    data = wrk(
        url,
        method=method,
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
    )
    # CPU per request is steadier than req/s on a shared machine.
    data["cpu_us_per_request"] = (
        (server.cpu_seconds() - cpu_before) / max(data["requests"], 1) * 1e6
    )
    if workload == "post":
        time.sleep(0.5)  # let requests the client gave up on finish server-side
        counted = count(server, HOT_ID) - before
        data["counted"] = counted
        data["counted_per_s"] = counted / data["seconds"]
        data["lost"] = max(0, data["ok"] - counted)
    return data


def summarise(rounds):
    """Median of each number over the rounds; error counts are summed."""
    out = {"rounds": len(rounds)}
    for key in ("rps", "p50_us", "p99_us", "counted_per_s", "cpu_us_per_request"):
        if key in rounds[0]:
            out[key] = statistics.median(r[key] for r in rounds)
    for key in ("requests", "ok", "non_2xx", "counted", "lost"):
        if key in rounds[0]:
            out[key] = sum(r[key] for r in rounds)
    out["socket_errors"] = sum(sum(r["errors"].values()) for r in rounds)
    return out


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def seed(server, with_batch):
    ids = [GET_ID, HOT_ID] + (BATCH_IDS if with_batch else [])
    for post_id in ids:
        httpx.post(f"{server.base_url}/likes/{post_id}", timeout=30)


def ratio(a, b):
    return round(a / b, 2) if b else None


def compare(results, workers):
    r = results
    project, baseline = r["project"], r["baseline"]
    ratios, verdicts = {}, {}
    if "get" in project:
        ratios["get_rps_vs_baseline"] = ratio(
            project["get"]["rps"], baseline["get"]["rps"]
        )
        ratios["get_p99_vs_baseline"] = ratio(
            project["get"]["p99_us"], baseline["get"]["p99_us"]
        )
        verdicts["get_p99_le_baseline"] = (
            project["get"]["p99_us"] <= baseline["get"]["p99_us"]
        )
        if "ceiling" in r:
            ratios["get_rps_vs_ceiling"] = ratio(
                project["get"]["rps"], r["ceiling"]["get"]["rps"]
            )
    if "post" in project:
        ratios["post_rps_vs_baseline"] = ratio(
            project["post"]["rps"], baseline["post"]["rps"]
        )
        ratios["post_counted_per_s_vs_baseline"] = ratio(
            project["post"]["counted_per_s"], baseline["post"]["counted_per_s"]
        )
        verdicts["post_no_errors_no_lost_likes"] = (
            project["post"]["non_2xx"] == 0
            and project["post"]["socket_errors"] == 0
            and project["post"]["lost"] == 0
        )
    if "batch" in project and "get" in project:
        ratios["batch_rps_vs_own_get"] = ratio(
            project["batch"]["rps"], project["get"]["rps"]
        )
    ratios["worker_peak_rss_mb"] = round(workers["project"]["peak_worker_rss_mb"], 1)
    for key, target in TARGETS.items():
        if key in ratios and ratios[key] is not None:
            value = ratios[key]
            verdicts[key] = value <= target if key.endswith("_mb") else value >= target
    return ratios, verdicts


def print_table(results, memory, ratios, verdicts, args):
    print(
        f"\nc={args.connections}, wrk threads={args.threads}, "
        f"{args.rounds} rounds x {args.duration}s, medians\n"
    )
    header = (
        f"{'workload':8} {'server':9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'non-2xx':>8} {'sock err':>8} {'counted/s':>10} {'lost':>7} "
        f"{'CPU us/req':>10}"
    )
    print(header)
    print("-" * len(header))
    for workload in args.workloads:
        for name in ("baseline", "project", "ceiling"):
            row = results.get(name, {}).get(workload)
            if not row:
                continue
            print(
                f"{workload:8} {name:9} {row['rps']:9.0f} {row['p50_us'] / 1000:8.2f} "
                f"{row['p99_us'] / 1000:8.2f} {row['non_2xx']:8d} "
                f"{row['socket_errors']:8d} "
                f"{row.get('counted_per_s', float('nan')):10.0f} "
                f"{row.get('lost', 0):7d} {row['cpu_us_per_request']:10.0f}"
            )
    print("\npeak RSS (MB):")
    for name, mem in memory.items():
        print(
            f"  {name:9} total {mem['peak_total_rss_mb']:7.1f}   "
            f"largest worker {mem['peak_worker_rss_mb']:6.1f}   "
            f"({mem['processes']} processes)"
        )
    print("\nratios (target):")
    for key, value in ratios.items():
        target = TARGETS.get(key)
        verdict = verdicts.get(key)
        mark = "" if verdict is None else ("PASS" if verdict else "MISS")
        goal = (
            ""
            if target is None
            else f"(target {'<=' if key.endswith('_mb') else '>='} {target})"
        )
        print(f"  {key:34} {value!s:>8} {goal:18} {mark}")
    for key in ("get_p99_le_baseline", "post_no_errors_no_lost_likes"):
        if key in verdicts:
            print(f"  {key:34} {'PASS' if verdicts[key] else 'MISS':>8}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="alternating rounds per server; the table shows their medians",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--workloads",
        type=lambda s: s.split(","),
        default=["get", "post", "batch"],
        help="comma-separated: get,post,batch",
    )
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="run the project with rate limits counting (limits too high to refuse)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--deploy-bin",
        type=Path,
        default=BIN,
        help="bin/ of a virtualenv with only requirements/base.txt, to run the "
        "project as deployed (make bench makes one); default: this one",
    )
    args = parser.parse_args(argv)

    if not shutil.which("wrk"):
        sys.exit("wrk is not installed. Install it with:  sudo apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="likes-bench-"))
    project_dir, ceiling_dir = work / "project", work / "ceiling"
    common = project_env(RATELIMIT_ENABLE="false", LIKES_DEDUPE="off")
    if args.rate_limits:
        # Count every request, as a default install does, without refusing any.
        unlimited = "1000000/s"
        common.update(
            RATELIMIT_ENABLE="true", LIKES_GET_RATE=unlimited, LIKES_POST_RATE=unlimited
        )
    for data_dir in (project_dir, ceiling_dir):
        manage("migrate", "--noinput", env={**common, "DATA_DIR": str(data_dir)})

    gunicorn = [
        str(args.deploy_bin / "gunicorn"),
        "-c",
        str(BASE_DIR / "gateway_site/gunicorn.conf.py"),
    ]
    specs = {
        "baseline": (
            [
                str(BIN / "uvicorn"),
                "tests.benchmarks.baseline_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--log-level",
                "warning",
            ],
            {**common, "BASELINE_DB": str(work / "baseline.sqlite3")},
        ),
        "project": (gunicorn, {**common, "DATA_DIR": str(project_dir)}),
        "ceiling": (
            [*gunicorn, "-k", "sync", "tests.benchmarks.ceiling_app:app"],
            {**common, "DATA_DIR": str(ceiling_dir)},
        ),
    }
    results = {name: {} for name in specs}
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(start(name, argv_, env, work))
            for name, (argv_, env) in specs.items()
        }
        for name, server in servers.items():
            seed(server, with_batch=name == "project")
        for workload in args.workloads:
            names = ["baseline", "project"]
            if workload in ("get", "post"):
                names.append("ceiling")
            rounds = {name: [] for name in names}
            for round_no in range(args.rounds):
                order = names if round_no % 2 == 0 else names[::-1]
                for name in order:
                    if workload == "batch" and name == "baseline":
                        continue  # the original has no batch endpoint
                    print(f"  {workload} round {round_no + 1}: {name}", flush=True)
                    rounds[name].append(run_round(servers[name], workload, args))
            for name, data in rounds.items():
                if data:
                    results[name][workload] = summarise(data)
                    results[name][workload]["per_round"] = data
        memory = {
            name: {
                "peak_total_rss_mb": server.peak_total_rss / 2**20,
                "peak_worker_rss_mb": server.peak_process_rss / 2**20,
                "processes": len(psutil.Process(server.proc.pid).children()) + 1,
            }
            for name, server in servers.items()
        }
    ratios, verdicts = compare(results, memory)
    print_table(results, memory, ratios, verdicts, args)
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {
            "connections": args.connections,
            "wrk_threads": args.threads,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "project_workers": os.environ.get("WEB_CONCURRENCY") or "default",
            "project_threads": os.environ.get("GUNICORN_THREADS") or "default",
            "project_venv": str(args.deploy_bin.parent),
            "rate_limits": args.rate_limits,
        },
        "results": results,
        "memory": memory,
        "ratios": ratios,
        "targets": TARGETS,
        "verdicts": verdicts,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
