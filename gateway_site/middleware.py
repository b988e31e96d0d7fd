"""Middleware of the project.

Sessions, CSRF, authentication and messages serve the admin only: the public
API and the gateway authenticate with API keys and bearer tokens, never with
cookies. :class:`AdminMiddleware` runs Django's own middleware for those, for
``/admin/`` alone, so the public endpoints carry no session cookie and do not
pay for them. A view outside the admin that needs a session fails loudly
(``request.session`` is missing) instead of silently running without CSRF.
"""

import ipaddress
import logging
import re
from http import HTTPStatus
from time import perf_counter
from urllib.parse import unquote_to_bytes, urlsplit

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.handlers.exception import convert_exception_to_response
from django.core.signals import request_finished
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware

from gateway_site.http import ADMIN_CSP, API_CSP, PERMISSIONS_POLICY
from gateway_site.http import request_id as make_request_id
from gateway_site.logs import clear_request_context, current_request
from gateway_site.metrics import allowed_networks
from likes.http import error_response
from likes.ratelimit import client_ip

ADMIN_PREFIX = "/admin/"

# Django's middleware the admin needs, outermost first, as Django's default
# MIDDLEWARE orders them.
ADMIN_MIDDLEWARE = (
    SessionMiddleware,
    CommonMiddleware,
    CsrfViewMiddleware,
    AuthenticationMiddleware,
    MessageMiddleware,
)


def admin_address_allowed(request) -> bool:
    """Whether the client may reach the admin: any address unless
    ``ADMIN_ALLOWED_IPS`` lists some (checks gateway_site.E025)."""
    if not settings.ADMIN_ALLOWED_IPS:
        return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    networks = allowed_networks(tuple(settings.ADMIN_ALLOWED_IPS))
    return any(address in network for network in networks)


class AdminMiddleware:
    """Django's session, common, CSRF, authentication and message middleware,
    for requests under ``/admin/`` only.

    The chain is built once from Django's own classes, each wrapped as Django's
    handler wraps a middleware (an exception becomes a response at that
    layer). Django calls ``process_view`` of the middleware in ``MIDDLEWARE``
    only, so this one hands it to the CSRF middleware, where the check runs.
    Other requests go straight on: the public API has no trailing-slash
    redirects either (``CommonMiddleware``); the server sets Content-Length.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        admin = get_response
        for middleware in reversed(ADMIN_MIDDLEWARE):
            admin = middleware(admin)
            if middleware is CsrfViewMiddleware:
                self.csrf = admin
            admin = convert_exception_to_response(admin)
        self.admin = admin

    @staticmethod
    def is_admin(path: str) -> bool:
        # "/admin" too: CommonMiddleware redirects it to "/admin/".
        return path.startswith(ADMIN_PREFIX) or path == ADMIN_PREFIX[:-1]

    def __call__(self, request):
        if self.is_admin(request.path_info):
            if not admin_address_allowed(request):
                return error_response(
                    HTTPStatus.FORBIDDEN,
                    code="admin_forbidden",
                    detail="The admin is not open to this address (ADMIN_ALLOWED_IPS).",
                )
            return self.admin(request)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not self.is_admin(request.path_info):
            return None
        return self.csrf.process_view(request, view_func, view_args, view_kwargs)


# Control characters, once percent-decoded: no parameter needs them, and some
# libraries fail on them (a NUL in a header value, a newline in a redirect).
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


class RequestGuardMiddleware:
    """Refuse, with a 400, a request whose Host is not in ``ALLOWED_HOSTS`` or
    whose query string percent-encodes control characters.

    Django validates the Host only when something asks for it (its common and
    CSRF middleware do, for the admin here): asking here covers every route.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.get_host()  # DisallowedHost: Django's 400
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
    """X-Frame-Options, Content-Security-Policy and Permissions-Policy on every
    response, decided once at start (beside Django's SecurityMiddleware, which
    sends HSTS, nosniff, the referrer and opener policies).

    X-Frame-Options follows ``X_FRAME_OPTIONS`` and Django's
    ``xframe_options_exempt``, as ``XFrameOptionsMiddleware`` would; the admin
    and its static files get the admin's CSP, everything else the API's.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        static_path = urlsplit(settings.STATIC_URL).path
        self.admin_prefixes = (ADMIN_PREFIX, "/" + static_path.lstrip("/"))
        self.frame_options = getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()
        self.api_headers = (
            ("Content-Security-Policy", API_CSP),
            ("Permissions-Policy", PERMISSIONS_POLICY),
        )
        self.admin_headers = (
            ("Content-Security-Policy", ADMIN_CSP),
            ("Permissions-Policy", PERMISSIONS_POLICY),
        )

    def __call__(self, request):
        response = self.get_response(request)
        headers = response.headers
        if not getattr(response, "xframe_options_exempt", False):
            headers.setdefault("X-Frame-Options", self.frame_options)
        if request.path_info.startswith(self.admin_prefixes):
            extra = self.admin_headers
        else:
            extra = self.api_headers
        for name, value in extra:
            headers.setdefault(name, value)
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
