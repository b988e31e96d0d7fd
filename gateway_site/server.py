"""How gunicorn runs the project: worker count and timeout, read from the environment.

gateway_site/gunicorn.conf.py, the system checks and the gateway (its retry
budget) all read these, so they agree on what the server does.
"""

import os


def default_workers() -> int:
    """Gunicorn workers when WEB_CONCURRENCY is unset: one per usable CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(cpus, 2)


def configured_workers() -> int:
    raw = os.environ.get("WEB_CONCURRENCY", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else default_workers()


def configured_timeout() -> int:
    """Gunicorn's worker timeout (GUNICORN_TIMEOUT): Cloudflare gives up at 100 s."""
    raw = os.environ.get("GUNICORN_TIMEOUT", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 95


def configured_threads() -> int:
    """Django threads per worker (GUNICORN_THREADS, default 1)."""
    raw = os.environ.get("GUNICORN_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1
