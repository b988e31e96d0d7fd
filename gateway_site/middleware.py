"""Middleware of the project.

Sessions, authentication, messages and CSRF serve the admin only: the public
API and the gateway authenticate with API keys and bearer tokens, never with
cookies. Scoping them to the admin keeps session cookies out of the public
endpoints and saves about a fifth of the cost of every API request
(tests/benchmarks). A view outside the admin that needs a session fails loudly
(``request.session`` is missing) instead of silently running without CSRF.
"""

import logging
import re
from http import HTTPStatus
from time import perf_counter
from urllib.parse import unquote_to_bytes, urlsplit

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.signals import request_finished
from django.middleware.csrf import CsrfViewMiddleware

from gateway_site.http import ADMIN_CSP, API_CSP, PERMISSIONS_POLICY
from gateway_site.http import request_id as make_request_id
from gateway_site.logs import clear_request_context, current_request
from likes.http import error_response

ADMIN_PREFIX = "/admin/"


class AdminOnlyMixin:
    """Run a Django middleware for the admin's requests only.

    Both of its entry points: ``__call__`` and, for views, ``process_view``,
    which Django's handler calls for every view whatever ``__call__`` did (so
    a CSRF check would otherwise refuse every POST to a view outside the admin).
    """

    def __call__(self, request):
        if not request.path_info.startswith(ADMIN_PREFIX):
            return self.get_response(request)
        return super().__call__(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        parent = getattr(super(), "process_view", None)
        if parent is None or not request.path_info.startswith(ADMIN_PREFIX):
            return None
        return parent(request, view_func, view_args, view_kwargs)


class AdminSessionMiddleware(AdminOnlyMixin, SessionMiddleware):
    pass


class AdminCsrfViewMiddleware(AdminOnlyMixin, CsrfViewMiddleware):
    pass


class AdminAuthenticationMiddleware(AdminOnlyMixin, AuthenticationMiddleware):
    pass


class AdminMessageMiddleware(AdminOnlyMixin, MessageMiddleware):
    pass


# Control characters, once percent-decoded: no parameter needs them, and some
# libraries fail on them (a NUL in a header value, a newline in a redirect).
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


class QueryGuardMiddleware:
    """Refuse a query string that percent-encodes control characters: a JSON 400."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "%" in query and _CONTROL.search(
            unquote_to_bytes(query.encode("latin-1", "replace"))
        ):
            return error_response(
                HTTPStatus.BAD_REQUEST,
                code="bad_query",
                detail="The query string holds control characters.",
            )
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Add Content-Security-Policy and Permissions-Policy to every response."""

    def __init__(self, get_response):
        self.get_response = get_response
        static_path = urlsplit(settings.STATIC_URL).path
        self.admin_prefixes = (ADMIN_PREFIX, "/" + static_path.lstrip("/"))

    def __call__(self, request):
        response = self.get_response(request)
        csp = (
            ADMIN_CSP if request.path_info.startswith(self.admin_prefixes) else API_CSP
        )
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response


# --- Request id, processing time, log context, request metrics ----------------

access_logger = logging.getLogger("gateway_site.access")


class ObservabilityMiddleware:
    """Give every request an id, time it, and count it.

    - ``X-Request-ID``: the client's when well-formed, else a new uuid4 (hex);
      set as ``request.request_id`` (forwarded upstream) and on the response.
    - ``X-Processing-Time``: milliseconds spent in Django, e.g. ``1.52ms``.
    - Log records emitted while the request runs carry its id and client
      network (gateway_site.logs).
    - ``requests_total``, ``request_duration_seconds``, ``active_connections``
      (gateway_site.metrics) unless ``METRICS_ENABLED`` is off.

    The likes API's reads take a few hundred microseconds: everything here is
    decided once, in ``__init__``, and a request that logs nothing formats no
    log record (``LOG_REQUESTS`` opts in to one line per request).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.metrics = None
        if settings.METRICS_ENABLED:
            from gateway_site.metrics import RequestMetrics

            self.metrics = RequestMetrics()
        self.log_requests = settings.LOG_REQUESTS
        request_finished.connect(clear_request_context, dispatch_uid=__name__)

    def __call__(self, request):
        started = perf_counter()
        request.request_id = request_id = make_request_id(
            request.META.get("HTTP_X_REQUEST_ID")
        )
        # Cleared when the response is closed (request_finished), not here:
        # Django logs 4xx/5xx answers after the middleware chain returns.
        current_request.set(request)
        metrics = self.metrics
        if metrics is not None:
            metrics.started()
        try:
            response = self.get_response(request)
            seconds = perf_counter() - started
            response.headers["X-Request-ID"] = request_id
            response.headers["X-Processing-Time"] = f"{seconds * 1000:.2f}ms"
            if metrics is not None:
                metrics.observe(request, response.status_code, seconds)
            if self.log_requests:
                self.log(request, response, seconds)
        finally:
            if metrics is not None:
                metrics.stopped()
        return response

    @staticmethod
    def log(request, response, seconds):
        match = request.resolver_match
        access_logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "route": match.route if match is not None else None,
                "status_code": response.status_code,
                "duration_ms": round(seconds * 1000, 2),
            },
        )
