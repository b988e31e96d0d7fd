"""Benchmark the project against the original-style baseline, side by side.

    make bench                          # or: python -m tests.benchmarks.run --help

Starts, on loopback:
- ``baseline``: the original service's design (FastAPI + uvicorn + SQLite);
- ``project``: the project as ``make run`` installs it (gunicorn with
  gateway_site/gunicorn.conf.py, the embedded default, rate limits counting).
  Two changes, said in the output: the limits are raised so one load
  generator is never refused, and the dedupe is off so one client's likes
  count (it does not touch reads);
- ``project-nolimits``: the same with rate limits off (a secondary row);
- ``project-webhooks``: the project with one webhook (``like.created``,
  ``milestone.reached``) to a receiver in this process answering 204: its
  workers' senders deliver every like meanwhile (``like`` workload);
- ``ceiling``: a framework-free app with the same SQL on the same gunicorn
  settings (tests/benchmarks/ceiling_app.py).

Workloads are the widget's own requests: ``page`` (a post page:
``GET /likes/?ids=<id>``), ``list`` (a list page of 20 posts: one
``GET /likes/?ids=`` with 20 ids; the original service has no batch read, so
its list page is 20 ``GET /likes/<id>``, and the table compares page loads per
second), ``like`` (``POST /likes/<id>``), and ``get``, the seed-compatible
``GET /likes/<id>``. Each runs with wrk at the same concurrency in alternating
rounds; the table shows medians and ratios, and the report goes to
tests/benchmarks/results/latest.json.
"""

import argparse
import asyncio
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
LIST_IDS = [f"bench-list-{n}" for n in range(20)]
WORKLOADS = ("page", "list", "like", "get")
SERVERS = ("baseline", "project", "project-nolimits", "project-webhooks", "ceiling")
# Limits that count every request yet never refuse one load generator.
UNLIMITED = "100000000/m"

TARGETS = {
    "page_rps_vs_baseline": 3.0,
    "page_p99_vs_baseline": 1.0,
    "page_rps_vs_ceiling": 0.5,
    "list_page_loads_vs_baseline": 20.0,
    "like_rps_vs_baseline": 3.0,
    "read_cpu_limits_vs_off": 1.15,
    "like_rps_webhooks_vs_off": 0.9,
    "worker_peak_rss_mb": 64.0,
}
# Targets met when the value is at most the target (the others: at least).
AT_MOST = {"page_p99_vs_baseline", "read_cpu_limits_vs_off", "worker_peak_rss_mb"}


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


class Receiver:
    """A webhook receiver on loopback answering 204 on kept-alive connections
    (asyncio, in a thread of this process: it costs little beside the server)."""

    def __init__(self):
        self.received = 0
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                self.loop.create_server(lambda: Answer(self), "127.0.0.1", 0)
            )
            started.set()
            self.loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        started.wait(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def webhook_code(self) -> str:
        url = f"http://127.0.0.1:{self.port}/hook"
        return (
            "from likes.models import Webhook; "
            f"Webhook.objects.create(name='bench', url='{url}')"
        )

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)


class Answer(asyncio.Protocol):
    """One connection: reads each request (headers, Content-Length body), 204."""

    def __init__(self, receiver):
        self.receiver = receiver
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        while True:
            head, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            length, events = 0, 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"x-webhook-events":
                    events = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.receiver.received += events
            self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")


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


def wrk(url, *, method, duration, connections, threads, paths=()):
    """Run wrk against ``url``; ``paths`` (optional) are requested in turn."""
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
        env={**os.environ, "WRK_METHOD": method, "WRK_PATHS": ",".join(paths)},
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


def request_of(server, workload):
    """(url, method, paths cycled through) of one workload on one server."""
    base = server.base_url
    batch = server.name != "baseline"  # the original has no batch read
    if workload == "page":
        if batch:
            return f"{base}/likes/?ids={GET_ID}", "GET", ()
        return f"{base}/likes/{GET_ID}", "GET", ()
    if workload == "list":
        if batch:
            return f"{base}/likes/?ids={','.join(LIST_IDS)}", "GET", ()
        return f"{base}/likes/{LIST_IDS[0]}", "GET", [f"/likes/{i}" for i in LIST_IDS]
    if workload == "like":
        return f"{base}/likes/{HOT_ID}", "POST", ()
    return f"{base}/likes/{GET_ID}", "GET", ()


def requests_per_page(server, workload):
    return len(LIST_IDS) if workload == "list" and server.name == "baseline" else 1


def run_round(server, workload, args):
    url, method, paths = request_of(server, workload)
    before = count(server, HOT_ID) if workload == "like" else None
    cpu_before = server.cpu_seconds()
    data = wrk(
        url,
        method=method,
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
        paths=paths,
    )
    # CPU per request is steadier than req/s on a shared machine.
    data["cpu_us_per_request"] = (
        (server.cpu_seconds() - cpu_before) / max(data["requests"], 1) * 1e6
    )
    data["pages_per_s"] = data["rps"] / requests_per_page(server, workload)
    if workload == "like":
        time.sleep(0.5)  # let requests the client gave up on finish server-side
        counted = count(server, HOT_ID) - before
        data["counted"] = counted
        data["counted_per_s"] = counted / data["seconds"]
        data["lost"] = max(0, data["ok"] - counted)
    return data


def summarise(rounds):
    """Median of each number over the rounds; error counts are summed."""
    out = {"rounds": len(rounds)}
    for key in (
        "rps",
        "pages_per_s",
        "p50_us",
        "p99_us",
        "counted_per_s",
        "cpu_us_per_request",
    ):
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


def seed(server):
    for post_id in [GET_ID, HOT_ID, *LIST_IDS]:
        httpx.post(f"{server.base_url}/likes/{post_id}", timeout=30)


def ratio(a, b):
    return round(a / b, 2) if b else None


def compare(results, memory):
    """The ratios the targets are about, and whether each is met."""
    project, baseline = results["project"], results["baseline"]
    ceiling, off = results.get("ceiling", {}), results.get("project-nolimits", {})
    ratios = {}
    if "page" in project:
        ratios["page_rps_vs_baseline"] = ratio(
            project["page"]["rps"], baseline["page"]["rps"]
        )
        ratios["page_p99_vs_baseline"] = ratio(
            project["page"]["p99_us"], baseline["page"]["p99_us"]
        )
        if "page" in ceiling:
            ratios["page_rps_vs_ceiling"] = ratio(
                project["page"]["rps"], ceiling["page"]["rps"]
            )
        if "page" in off:
            ratios["read_cpu_limits_vs_off"] = ratio(
                project["page"]["cpu_us_per_request"],
                off["page"]["cpu_us_per_request"],
            )
    if "list" in project:
        ratios["list_page_loads_vs_baseline"] = ratio(
            project["list"]["pages_per_s"], baseline["list"]["pages_per_s"]
        )
    if "like" in project:
        ratios["like_rps_vs_baseline"] = ratio(
            project["like"]["rps"], baseline["like"]["rps"]
        )
        ratios["like_counted_per_s_vs_baseline"] = ratio(
            project["like"]["counted_per_s"], baseline["like"]["counted_per_s"]
        )
        hooked = results.get("project-webhooks", {}).get("like")
        if hooked:
            ratios["like_rps_webhooks_vs_off"] = ratio(
                hooked["rps"], project["like"]["rps"]
            )
    if "get" in project:
        ratios["get_rps_vs_baseline"] = ratio(
            project["get"]["rps"], baseline["get"]["rps"]
        )
    ratios["worker_peak_rss_mb"] = round(memory["project"]["peak_worker_rss_mb"], 1)
    verdicts = {}
    for key, target in TARGETS.items():
        value = ratios.get(key)
        if value is not None:
            verdicts[key] = value <= target if key in AT_MOST else value >= target
    if "like" in project:
        like = project["like"]
        verdicts["like_no_errors_no_lost_likes"] = (
            like["non_2xx"] == 0 and like["socket_errors"] == 0 and like["lost"] == 0
        )
    return ratios, verdicts


LABELS = {
    "baseline": "original",
    "project": "project",
    "project-nolimits": "no limits*",
    "project-webhooks": "webhooks",
    "ceiling": "ceiling",
}


def print_table(results, memory, ratios, verdicts, args):
    print(
        f"\nc={args.connections}, wrk threads={args.threads}, "
        f"{args.rounds} rounds x {args.duration}s, medians. The project runs as "
        "make run installs it, rate limits counting, with two changes: limits "
        f"raised to {UNLIMITED} so one load generator is never refused, dedupe "
        "off so one client's likes count (reads do not use it).\n"
        "* secondary row: the project with rate limits off (RATELIMIT_ENABLE=false)."
        "\nlist: the original has no batch read; its list page is 20 GETs.\n"
    )
    header = (
        f"{'workload':8} {'server':11} {'req/s':>8} {'pages/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'non-2xx':>7} {'sockerr':>7} {'counted/s':>9} "
        f"{'lost':>5} {'CPU us/req':>10}"
    )
    print(header)
    print("-" * len(header))
    for workload in args.workloads:
        for name in SERVERS:
            row = results.get(name, {}).get(workload)
            if not row:
                continue
            print(
                f"{workload:8} {LABELS[name]:11} {row['rps']:8.0f} "
                f"{row['pages_per_s']:8.0f} {row['p50_us'] / 1000:7.2f} "
                f"{row['p99_us'] / 1000:7.2f} {row['non_2xx']:7d} "
                f"{row['socket_errors']:7d} "
                f"{row.get('counted_per_s', float('nan')):9.0f} "
                f"{row.get('lost', 0):5d} {row['cpu_us_per_request']:10.0f}"
            )
    print("\npeak RSS (MB):")
    for name, mem in memory.items():
        print(
            f"  {LABELS[name]:11} total {mem['peak_total_rss_mb']:7.1f}   "
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
            else f"(target {'<=' if key in AT_MOST else '>='} {target})"
        )
        print(f"  {key:34} {value!s:>8} {goal:18} {mark}")
    if "like_no_errors_no_lost_likes" in verdicts:
        mark = "PASS" if verdicts["like_no_errors_no_lost_likes"] else "MISS"
        print(f"  {'like_no_errors_no_lost_likes':34} {mark:>8}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per round")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds per server; the table shows their medians",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--workloads",
        type=lambda s: s.split(","),
        default=list(WORKLOADS),
        help=f"comma-separated, of: {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--servers",
        type=lambda s: s.split(","),
        default=list(SERVERS),
        help=f"comma-separated, of: {','.join(SERVERS)} (baseline and project "
        "always run)",
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
    names = [n for n in SERVERS if n in {"baseline", "project", *args.servers}]

    work = Path(tempfile.mkdtemp(prefix="likes-bench-"))
    deployed = project_env(
        RATELIMIT_ENABLE="true",
        LIKES_GET_RATE=UNLIMITED,
        LIKES_POST_RATE=UNLIMITED,
        LIKES_DEDUPE="off",
    )
    envs = {
        "project": deployed,
        "project-nolimits": {**deployed, "RATELIMIT_ENABLE": "false"},
        "project-webhooks": deployed,
        "ceiling": deployed,
    }
    receiver = None
    for name in names[1:]:
        data_dir = work / name
        envs[name] = {**envs[name], "DATA_DIR": str(data_dir)}
        manage("migrate", "--noinput", env=envs[name])
        if name == "project-webhooks":
            receiver = Receiver()
            manage("shell", "-c", receiver.webhook_code(), env=envs[name])

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
            {**deployed, "BASELINE_DB": str(work / "baseline.sqlite3")},
        ),
        "project": (gunicorn, envs["project"]),
        "project-nolimits": (gunicorn, envs.get("project-nolimits")),
        "project-webhooks": (gunicorn, envs.get("project-webhooks")),
        "ceiling": (
            [*gunicorn, "tests.benchmarks.ceiling_app:app"],
            envs.get("ceiling"),
        ),
    }
    results = {name: {} for name in names}
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(start(name, *specs[name], work)) for name in names
        }
        for server in servers.values():
            seed(server)
        for workload in args.workloads:
            rounds = {name: [] for name in names}
            for round_no in range(args.rounds):
                order = names if round_no % 2 == 0 else names[::-1]
                for name in order:
                    print(f"  {workload} round {round_no + 1}: {name}", flush=True)
                    rounds[name].append(run_round(servers[name], workload, args))
            for name, data in rounds.items():
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
    if receiver is not None:
        receiver.stop()
        hooked = results["project-webhooks"].get("like", {})
        made = sum(r.get("counted", 0) for r in hooked.get("per_round", []))
        print(
            f"\nwebhooks: {receiver.received} events received while the "
            f"benchmark ran, of {made} likes counted (and as many events)."
        )
        ratios["webhook_events_received"] = receiver.received
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
            "project_rate_limits": f"counting, {UNLIMITED}",
            "project_dedupe": False,
            "list_ids": len(LIST_IDS),
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
