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


# --- the webhook sender (likes/webhooks.py) ---------------------------------------

SENDER_NICENESS = 10  # below the workers: under load, likes come first
_sender: list = []


def start_webhook_sender(server) -> None:
    """With LIKES_WEBHOOK_DELIVERY=auto, run ``manage.py likes_deliver`` beside
    the workers, at a lower CPU priority, for as long as gunicorn runs.

    Its own process: a sender thread inside a worker took the GIL from the
    requests it serves (likes/s halved in ``make bench``).
    """
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    from likes.conf import conf

    if conf.WEBHOOK_DELIVERY != "auto" or _sender:
        return
    manage = Path(settings.BASE_DIR) / "manage.py"
    _sender.append(
        subprocess.Popen(
            [sys.executable, str(manage), "likes_deliver", "--nice", "10"],
            cwd=settings.BASE_DIR,
        )
    )
    server.log.info("Webhook sender started (pid %s)", _sender[0].pid)


def stop_webhook_sender(server) -> None:
    import contextlib
    import subprocess

    while _sender:
        proc = _sender.pop()
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        # gunicorn reaps any child it sees exit: the wait may find none.
        with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
            proc.wait(timeout=10)
