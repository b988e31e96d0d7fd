"""Process set-up for metrics and tracing: gunicorn's hooks and ``manage.py``.

Nothing heavy is imported here at module level: gunicorn.conf.py imports this
before the app is loaded, and OpenTelemetry is imported only when tracing is
asked for (``OTEL_EXPORTER_OTLP_ENDPOINT``), so it costs nothing otherwise.
"""

import os
from pathlib import Path

from gateway_site import logs

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
DEFAULT_SERVICE_NAME = "gateway_site"

_tracer_provider = []


# --- Metrics across gunicorn workers -----------------------------------------


def use_multiprocess_metrics() -> Path | None:
    """Point prometheus-client at a directory shared by the workers.

    Must run before prometheus_client is imported (it picks its value class
    then): gunicorn.conf.py calls it while gunicorn reads its configuration,
    before the app is preloaded.
    """
    from django.conf import settings

    if not settings.METRICS_ENABLED:
        return None
    path = Path(os.environ.setdefault(MULTIPROC_ENV, str(settings.METRICS_DIR)))
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_multiprocess_metrics() -> None:
    """Delete the previous run's metric files (gunicorn's master, before forking).

    Only prometheus-client's ``*.db`` files go: the directory may be one the
    operator chose.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        for entry in Path(path).glob("*.db"):
            entry.unlink(missing_ok=True)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (``active_connections`` and the like)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


# --- Tracing ------------------------------------------------------------------


def tracing_requested() -> bool:
    return bool(os.environ.get(OTLP_ENDPOINT_ENV, "").strip())


def tracing_enabled() -> bool:
    return bool(_tracer_provider)


def setup_tracing() -> bool:
    """Export traces of requests and of the gateway's upstream calls over OTLP/HTTP.

    Only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; the exporter reads the
    standard ``OTEL_*`` variables (headers, timeout, sampler, batch delays).
    Call it once per process, after forking: the span exporter runs a thread.
    Returns whether tracing is on.
    """
    if _tracer_provider:
        return True
    if not tracing_requested():
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter,
    )
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument(tracer_provider=provider)
    # The gateway's calls upstream: a client span each, and the trace context
    # (traceparent) in the request the service receives.
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    AioHttpClientInstrumentor().instrument(tracer_provider=provider)
    logs.trace_id_getter = _current_trace_id
    _tracer_provider.append(provider)
    return True


def _current_trace_id() -> str | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def shutdown_tracing() -> None:
    """Send the spans still buffered (a worker is exiting)."""
    while _tracer_provider:
        _tracer_provider.pop().shutdown()
    logs.trace_id_getter = None


# --- gunicorn hooks (gateway_site/gunicorn.conf.py) ---------------------------


def gunicorn_on_starting(server) -> None:
    clear_multiprocess_metrics()


def gunicorn_post_fork(server, worker) -> None:
    if setup_tracing():
        # The app was loaded in the master (preload_app) before tracing was
        # set up: rebuild Django's middleware chain, and wrap the data plane.
        from gateway_site.asgi import application as site
        from gateway_site.wsgi import application

        application.load_middleware()
        site.trace(tracer_provider=_tracer_provider[0])


def gunicorn_worker_exit(server, worker) -> None:
    shutdown_tracing()


def gunicorn_child_exit(server, worker) -> None:
    worker_exited(worker.pid)
