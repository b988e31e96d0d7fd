"""Real servers on loopback for the tests: gunicorn running the project as deployed."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LIVE_SECRET_KEY = secrets.token_urlsafe(50)


# Debian's Chromium for the browser tests (and scripts/screenshots.py).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_env(**overrides: str) -> dict[str, str]:
    """Environment for a subprocess running the project with production settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "DJANGO_DEBUG"}
        and not key.startswith(("PYTEST_", "COV_CORE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="gateway_site.settings.base",
        DJANGO_ENV_FILE="",
        DJANGO_SECRET_KEY=LIVE_SECRET_KEY,
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], check: bool = True):
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2, log_path: Path | None = None):
    """Run gunicorn with gateway_site/gunicorn.conf.py; yield its base URL."""
    port = free_port()
    env = {
        **env,
        "API_GATEWAY_HOST": "127.0.0.1",
        "API_GATEWAY_PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
    }
    log = open(log_path or os.devnull, "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", str(BASE_DIR / "gateway_site/gunicorn.conf.py")],
        env=env,
        cwd=BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, proc)
        proc.base_url = base_url
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def wait_until_healthy(base_url: str, proc: subprocess.Popen, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not become healthy within {timeout}s")


def fire(
    method: str,
    url: str,
    *,
    total: int,
    concurrency: int,
    timeout: float = 30,
    headers: dict[str, str] | None = None,
) -> Counter:
    """Send ``total`` requests with ``concurrency`` in flight; count statuses.

    Transport failures are counted under their exception name, so a caller can
    tell a refused request from one the server answered.
    """
    outcomes: Counter = Counter()
    lock = Lock()
    remaining = [total]

    def take() -> bool:
        with lock:
            if remaining[0] == 0:
                return False
            remaining[0] -= 1
            return True

    def worker():
        local: Counter = Counter()
        with httpx.Client(timeout=timeout, headers=headers) as client:
            while take():
                try:
                    local[client.request(method, url).status_code] += 1
                except httpx.HTTPError as exc:
                    local[type(exc).__name__] += 1
        with lock:
            outcomes.update(local)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return outcomes
