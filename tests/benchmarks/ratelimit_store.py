"""Measure the rate-limit stores side by side: what counting one request costs.

    make bench-ratelimit        # or: python -m tests.benchmarks.ratelimit_store

Every public read and like is counted against a per-client rate limit
(django-ratelimit through ``likes.ratelimit.check``), so the store behind the
``counters`` cache is paid on every request. Each store runs here with the same
code path the views use, in several processes at once (as gunicorn's workers
do), all counting one client's key (the contended case), and is checked for
exactness: do the processes' counts add up?

Stores:
- ``counters``: ``gateway_site.cache.CounterCache``, the embedded default
  (a table in a file mapped into every process, byte-range locks);
- ``diskcache``: ``gateway_site.cache.DiskCache`` (SQLite transactions), the
  embedded default before it;
- ``locmem``: Django's per-process memory cache: the lower bound, and the
  "approximate per-worker budget" option (each worker counts alone, so the
  limit must be split between workers and does not add up);
- ``redis``: django-redis, when ``REDIS_URL`` (default redis://127.0.0.1:6379/15)
  answers.

Writes tests/benchmarks/results/ratelimit_store.json.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.run import machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ratelimit_store.json"
RATE = "1000000000/d"  # counts, never refuses: the cost of counting alone


def store_config(name: str, work: Path, redis_url: str) -> dict:
    if name == "counters":
        return {
            "BACKEND": "gateway_site.cache.CounterCache",
            "LOCATION": str(work / "limits.bin"),
        }
    if name == "diskcache":
        return {
            "BACKEND": "gateway_site.cache.DiskCache",
            "LOCATION": str(work / "cache"),
            "TIMEOUT": 300,
            "SHARDS": 4,
            "DATABASE_TIMEOUT": 0.25,
        }
    if name == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if name == "redis":
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": f"bench-{os.getpid()}",
        }
    raise ValueError(name)


def setup_django(work: Path, config: dict) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="gateway_site.settings.base",
        DJANGO_ENV_FILE="",
        DJANGO_SECRET_KEY="benchmark-only-" + "x" * 40,
        DATA_DIR=str(work),
        REDIS_URL="",
    )
    import django
    from django.conf import settings

    django.setup()
    settings.CACHES = {"default": config, "counters": config}
    settings.RATELIMIT_ENABLE = True


def worker(checks: int, start, results) -> None:
    from django.test import RequestFactory

    from likes import ratelimit

    request = RequestFactory().get("/likes/?ids=a", REMOTE_ADDR="192.0.2.1")
    start.wait()
    cpu, wall = time.process_time(), time.perf_counter()
    last = None
    for _ in range(checks):
        request.__dict__.pop("_likes_client_ip", None)  # a new request each time
        last = ratelimit.check(request, policy="bench", rate=RATE, fail_open=True)
    results.put(
        {
            "cpu_s": time.process_time() - cpu,
            "wall_s": time.perf_counter() - wall,
            "last_count": last.limit - last.remaining if last else None,
        }
    )


def final_count() -> int | None:
    from django.test import RequestFactory

    from likes import ratelimit

    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.1")
    limit = ratelimit.check(
        request, policy="bench", rate=RATE, fail_open=True, increment=False
    )
    return None if limit is None else limit.limit - limit.remaining


def measure(name: str, processes: int, checks: int, redis_url: str) -> dict:
    """One store, ``processes`` processes doing ``checks`` counts each."""
    with tempfile.TemporaryDirectory(prefix=f"ratelimit-{name}-") as tmp:
        work = Path(tmp)
        context = multiprocessing.get_context("fork")
        setup_django(work, store_config(name, work, redis_url))
        from django.core.cache import caches

        caches["counters"].clear()
        start, results = context.Event(), context.Queue()
        procs = [
            context.Process(target=worker, args=(checks, start, results))
            for _ in range(processes)
        ]
        for proc in procs:
            proc.start()
        time.sleep(0.2)
        began = time.perf_counter()
        start.set()
        rows = [results.get(timeout=600) for _ in procs]
        elapsed = time.perf_counter() - began
        for proc in procs:
            proc.join()
        counted = final_count()
        total = processes * checks
        return {
            "store": name,
            "processes": processes,
            "checks": total,
            "checks_per_s": total / elapsed,
            "cpu_us_per_check": statistics.mean(r["cpu_s"] for r in rows)
            / checks
            * 1e6,
            "wall_us_per_check": statistics.mean(r["wall_s"] for r in rows)
            / checks
            * 1e6,
            "counted": counted,
            "exact_across_processes": counted == total,
        }


def _measure_into(answer, *args) -> None:
    answer.put(measure(*args))


def redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--checks", type=int, default=20_000, help="per process")
    parser.add_argument(
        "--stores",
        type=lambda s: s.split(","),
        default=["counters", "diskcache", "locmem", "redis"],
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"

    rows = []
    for name in args.stores:
        if name == "redis" and not redis_answers(redis_url):
            print(f"  {name}: skipped, nothing answers at {redis_url}")
            continue
        # Each store in a fresh interpreter: Django is set up once per process.
        ctx = multiprocessing.get_context("spawn")
        answer = ctx.Queue()
        proc = ctx.Process(
            target=_measure_into,
            args=(answer, name, args.processes, args.checks, redis_url),
        )
        proc.start()
        row = answer.get(timeout=900)
        proc.join()
        rows.append(row)
        print(
            f"  {name:10} {row['checks_per_s']:9.0f} checks/s  "
            f"{row['cpu_us_per_check']:7.1f} us CPU/check  "
            f"counted {row['counted']} of {row['checks']}"
            f"{'' if row['exact_across_processes'] else '  (not shared)'}",
            flush=True,
        )
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "settings": {"processes": args.processes, "checks_per_process": args.checks},
        "results": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return report


if __name__ == "__main__":
    sys.exit(main() and None)
