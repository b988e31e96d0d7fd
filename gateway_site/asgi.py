"""The application gunicorn's asyncio workers serve: ``gateway_site.asgi:application``.

Two applications behind one port:

- the gateway's data plane (``/services/…``, ``/gateway``), asyncio all through
  (gateway_site/gateway/dataplane.py);
- everything else — the likes API, the admin, ``/token``, ``/health`` — is
  Django, run on a thread once its request has been read whole
  (gateway_site/bridge.py).

The data plane, and aiohttp with it (about 10 MB per worker), is loaded only
where it serves something: at start when services are configured, else on the
first request to one of its routes.
"""

import asyncio

from django.conf import settings

# First: sets DJANGO_SETTINGS_MODULE and sets Django up.
from gateway_site.wsgi import application as django_application  # isort: skip
from gateway_site.bridge import WSGIBridge
from gateway_site.gateway import registry
from gateway_site.server import configured_threads, configured_timeout

GATEWAY_PREFIX = "/services/"
GATEWAY_ENVELOPE = "/gateway"


class Site:
    """Route each request to the data plane or to Django; run both lifespans."""

    def __init__(self, django: WSGIBridge):
        self.django = django
        self.dataplane = None
        self.gateway = None  # what serves the data plane's routes
        self.tracer_provider = None
        self._tasks: list[asyncio.Task] = []

    def trace(self, tracer_provider) -> None:
        """A server span for every request to the data plane (tracing on)."""
        self.tracer_provider = tracer_provider
        if self.dataplane is not None:
            self._wrap()

    def _wrap(self) -> None:
        self.gateway = self.dataplane
        if self.tracer_provider is not None:
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

            self.gateway = OpenTelemetryMiddleware(
                self.dataplane, tracer_provider=self.tracer_provider
            )

    async def start_dataplane(self):
        if self.dataplane is None:
            from gateway_site.gateway.dataplane import DataPlane

            self.dataplane = DataPlane()
            self._wrap()
            await self.dataplane.startup()
        return self.gateway

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == GATEWAY_ENVELOPE or path.startswith(GATEWAY_PREFIX):
                gateway = self.gateway or await self.start_dataplane()
                return await gateway(scope, receive, send)
            return await self.django(scope, receive, send)
        if kind == "lifespan":
            return await self.lifespan(receive, send)
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if registry.get().upstreams:
                        await self.start_dataplane()
                    self._tasks.append(asyncio.create_task(self.django.watch()))
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                if self.dataplane is not None:
                    await self.dataplane.shutdown()
                self.django.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


application = Site(
    WSGIBridge(
        django_application,
        threads=configured_threads(),
        max_body=max(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0, 1024 * 1024),
        timeout=configured_timeout(),
    )
)
