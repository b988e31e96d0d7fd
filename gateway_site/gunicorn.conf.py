"""Gunicorn configuration: ``gunicorn -c gateway_site/gunicorn.conf.py``.

Every value can be overridden by environment variables (see README.md).
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings.base")

from gateway_site import observability  # noqa: E402
from gateway_site.http import DEFAULT_FORWARDED_ALLOW_IPS  # noqa: E402
from gateway_site.server import (  # noqa: E402
    configured_timeout,
    configured_workers,
    start_webhook_sender,
    stop_webhook_sender,
)

chdir = str(BASE_DIR)
# gunicorn's asyncio worker: it reads every request whole before anything runs
# it, so slow clients and slow upstream services wait as coroutines. The
# gateway's routes are served on the event loop; Django runs on
# GUNICORN_THREADS threads per worker (gateway_site/asgi.py, bridge.py).
worker_class = "asgi"
wsgi_app = "gateway_site.asgi:application"
bind = [
    f"{os.environ.get('API_GATEWAY_HOST', '127.0.0.1')}:"
    f"{os.environ.get('API_GATEWAY_PORT', '8000')}"
]
workers = configured_workers()
# Load Django once in the master so workers share its memory pages.
preload_app = True
# Cloudflare closes a request after 100 s; stop slightly before it. A worker
# whose event loop stalls this long, or whose Django thread runs a request this
# long, is replaced. The gateway derives its retry budget from it.
timeout = configured_timeout()
# SIGTERM (docker stop): workers stop accepting and finish the requests in
# flight within graceful_timeout; keep docker's stop_grace_period longer
# (docker-compose.yml; tests/test_gunicorn_conf.py).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Workers are not recycled by default: a recycled asyncio worker closes the
# connections clients keep alive, and a request already on its way in one of
# them fails (measured: about a dozen read errors per recycle under load).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
# The path without its query string (%(U)s, not the request line %(r)s): a
# query may carry a token or a key, which access logs must not keep.
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'
)
errorlog = "-"
# No runtime control socket: nothing to manage at run time, nothing to expose.
control_socket_disable = True
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Only a proxy on this host (cloudflared, a local reverse proxy) may set
# X-Forwarded-* headers that gunicorn trusts.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", DEFAULT_FORWARDED_ALLOW_IPS)


def on_starting(server):
    """Refuse to start on a configuration that Django's system checks reject.

    The checks run in a child process: what they allocate would otherwise stay
    in the master and be copied into every worker (about 2 MB each).
    """
    import subprocess

    # The checks judge the worker count gunicorn will really run.
    env = {**os.environ, "WEB_CONCURRENCY": str(server.cfg.workers)}
    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "check", "--fail-level", "ERROR"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        server.log.error("%s", (result.stderr or result.stdout).strip())
        sys.exit("Refusing to start: fix the errors above.")
    observability.gunicorn_on_starting(server)


# --- Observability (gateway_site/observability.py) ---------------------------
# Workers share their metrics through files: the directory must be known before
# the app (and prometheus-client) is preloaded. Tracing starts in each worker.
observability.use_multiprocess_metrics()
post_fork = observability.gunicorn_post_fork
# Webhook events go out from a process of their own (likes/webhooks.py).
when_ready = start_webhook_sender
on_exit = stop_webhook_sender
worker_exit = observability.gunicorn_worker_exit
child_exit = observability.gunicorn_child_exit
