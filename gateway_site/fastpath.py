"""GET and HEAD ``/likes/<post_id>`` without Django's request cycle.

Every page view of a blog reads one count: it is most of the traffic. Django's
request cycle (request and response objects, signals, URL resolving and eleven
middleware) costs several times the read itself, so this WSGI layer answers
these reads directly, with the same answer the middleware stack and
``likes.views.like_detail`` give, header for header
(tests/test_fastpath.py compares both on the same requests):

- the same host validation (``ALLOWED_HOSTS``), rate limit and its headers,
  post id rules, CORS headers, security headers, ``X-Request-ID``,
  ``X-Processing-Time``, request metrics and log context;
- the security and clickjacking headers are made once, at start, by Django's
  own middleware;
- Django's ``request_started`` and ``request_finished`` signals are sent, so
  database connections are checked and recycled as for any request.

Anything it is not sure about goes to Django unchanged: other methods and
URLs, invalid ids, bad hosts, an ``Origin`` with a line break, a plain-HTTP
request when ``SECURE_SSL_REDIRECT`` is on, a failed database read (before the
rate limit counts it), and every request when the configuration is one it does
not mirror (see ``mirrors_the_stack``). An error after the rate limit counted
the request is answered here, as Django's handler would: a logged JSON 500.
``LIKES_FAST_READS=false`` turns it off.
"""

import contextlib
import io
import json
import logging
import re
import unicodedata
from time import perf_counter
from urllib.parse import urlsplit

from corsheaders.conf import conf as cors
from corsheaders.middleware import CorsMiddleware
from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.core.handlers.wsgi import (
    WSGIHandler,
    WSGIRequest,
    get_path_info,
    get_script_name,
)
from django.core.signals import request_finished, request_started
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve
from django.utils.log import log_response

from gateway_site.http import request_id
from gateway_site.logs import current_request
from gateway_site.middleware import SecurityHeadersMiddleware
from likes import views
from likes.http import JSON_PARAMS
from likes.models import Post
from likes.validators import post_id_error

# The stack whose answers this module reproduces. Another list (a middleware
# added or removed, tracing's) sends every request to Django.
MIRRORED_MIDDLEWARE = (
    "gateway_site.middleware.ObservabilityMiddleware",
    # A count read looks at its path only: its query string is ignored.
    "gateway_site.middleware.QueryGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "gateway_site.middleware.AdminSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "gateway_site.middleware.AdminCsrfViewMiddleware",
    "gateway_site.middleware.AdminAuthenticationMiddleware",
    "gateway_site.middleware.AdminMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "gateway_site.middleware.SecurityHeadersMiddleware",
)
logger = logging.getLogger(__name__)
PREFIX = "/likes/"
READS = frozenset({"GET", "HEAD"})
PROBE_ID = "fast-path-probe"


class _Request:
    """What the rate limiter, the log context and host checks read of a request.

    ``get_host`` and ``is_secure`` are Django's own, so they judge exactly as
    they do for a full request.
    """

    def __init__(self, env):
        self.META = self.environ = env
        self.method = env["REQUEST_METHOD"]

    @property
    def path(self) -> str:
        """As ``WSGIRequest.path`` (logged with a 429)."""
        script_name = get_script_name(self.environ)
        path_info = get_path_info(self.environ) or "/"
        return "{}/{}".format(script_name.rstrip("/"), path_info.replace("/", "", 1))

    get_host = HttpRequest.get_host
    _get_raw_host = HttpRequest._get_raw_host
    get_port = HttpRequest.get_port
    is_secure = HttpRequest.is_secure
    scheme = HttpRequest.scheme
    _get_scheme = WSGIRequest._get_scheme


def mirrors_the_stack() -> str | None:
    """Why this configuration must go through Django; None when it need not."""
    probe = _probe_match()
    reasons = {
        "LIKES_FAST_READS is off": not settings.LIKES_FAST_READS,
        "DEBUG is on": settings.DEBUG,
        "the middleware differ": tuple(settings.MIDDLEWARE) != MIRRORED_MIDDLEWARE,
        "LOG_REQUESTS is on": settings.LOG_REQUESTS,
        "DISALLOWED_USER_AGENTS is set": bool(settings.DISALLOWED_USER_AGENTS),
        "PREPEND_WWW is on": settings.PREPEND_WWW,
        "CORS allows every origin": cors.CORS_ALLOW_ALL_ORIGINS,
        "CORS has origin regexes": bool(cors.CORS_ALLOWED_ORIGIN_REGEXES),
        "CORS has signal handlers": check_request_enabled.has_listeners(),
        "static files may be served under /likes/": (
            bool(getattr(settings, "WHITENOISE_ROOT", None))
            or urlsplit(settings.STATIC_URL).path.lstrip("/").startswith("likes")
        ),
        "requests are atomic": connections["default"].settings_dict.get(
            "ATOMIC_REQUESTS", False
        ),
        "DATABASE_ROUTERS is set": bool(settings.DATABASE_ROUTERS),
        "DEFAULT_CHARSET is not UTF-8": settings.DEFAULT_CHARSET.lower()
        not in ("utf-8", "utf8"),
        "/likes/<post_id> is not likes.views.like_detail": (
            probe is None or probe.func is not views.like_detail
        ),
    }
    return next((reason for reason, true in reasons.items() if true), None)


def _probe_match():
    """Where Django routes a count read (None: nowhere)."""
    try:
        return resolve(PREFIX + PROBE_ID)
    except Resolver404:
        return None


class FastReads:
    """WSGI application: answers count reads itself, everything else by Django."""

    def __init__(self, django: WSGIHandler):
        self.django = django
        self.refresh()

    def refresh(self) -> None:
        """Decide again whether to answer (after the middleware chain changed)."""
        self.disabled_because = mirrors_the_stack()
        if self.disabled_because is not None:
            return
        self.cors_urls = re.compile(cors.CORS_URLS_REGEX)
        self.cors_middleware = CorsMiddleware(lambda request: None)
        self.ssl_redirect = settings.SECURE_SSL_REDIRECT
        self.allowed_hosts = set()
        self.headers = {secure: _static_headers(secure) for secure in (False, True)}
        self.metrics = None
        if settings.METRICS_ENABLED:
            from gateway_site.metrics import RequestMetrics

            self.metrics = RequestMetrics()  # the same series as the middleware's
        self.route = _probe_match().route  # the metrics label, as Django's
        connection = connections["default"]
        table = connection.ops.quote_name(Post._meta.db_table)
        sql = f"SELECT likes FROM {table} WHERE post_id = %s"
        # The driver's own placeholder: the query goes to the DB-API cursor.
        self.sql = sql.replace("%s", "?") if connection.vendor == "sqlite" else sql
        self.on_started = _receivers(request_started)
        self.on_finished = _receivers(request_finished)

    def __call__(self, env, start_response):
        if (
            self.disabled_because is None
            and env["REQUEST_METHOD"] in READS
            and env.get("PATH_INFO", "").startswith(PREFIX)
        ):
            answer = self.answer(env)
            if answer is not None:
                status, headers, body = answer
                start_response(status, headers)
                return [body]
        return self.django(env, start_response)

    def answer(self, env):
        """(status, headers, body) for a read it can answer, else None."""
        post_id = _post_id(env["PATH_INFO"])
        if (
            post_id is None
            or not unicodedata.is_normalized("NFC", post_id)
            or post_id_error(post_id) is not None
        ):
            return None  # Django answers: for a decomposed id, under its NFC form
        request = _Request(env)
        if not self.host_allowed(request):
            return None
        secure = request.is_secure()
        if self.ssl_redirect and not secure:
            return None
        origin = env.get("HTTP_ORIGIN")
        if origin and ("\n" in origin or "\r" in origin):
            return None  # Django refuses to echo it (BadHeaderError)
        if check_request_enabled.receivers:
            return None  # connected since start: Django asks them
        started = perf_counter()
        request.request_id = request_id(env.get("HTTP_X_REQUEST_ID"))
        metrics = self.metrics
        send(request_started, self.on_started, environ=env)
        current_request.set(request)
        try:
            # Read before counting: a read that fails goes to Django, which
            # then runs the whole request (and counts it) once.
            likes = self.count(post_id)
        except Exception:
            logger.debug("Count read failed; Django answers", exc_info=True)
            return None  # Django's own request_started / _finished follow
        if metrics is not None:
            metrics.started()
        try:
            limit = views.rate_limit(request, write=False)
            try:
                return self.respond(request, post_id, likes, limit, secure, started)
            except Exception:
                # Counted already: answer here, as Django's handler would.
                return self.server_error(request, secure, started)
        finally:
            if metrics is not None:
                metrics.stopped()
            send(request_finished, self.on_finished)

    def respond(self, request, post_id, likes, limit, secure, started):
        if limit and limit.exceeded:
            status = 429
            body, extra = self.rate_limited(request, limit)
            extra.pop("Content-Type")
        else:
            status = 200
            body = _encode({"post_id": post_id, "likes": likes}).encode()
            extra = limit.headers() if limit else {}
        headers = list(extra.items())
        headers += self.headers[secure]
        headers.append(("Content-Length", str(len(body))))
        headers += self.cors_headers(request.environ)
        seconds = perf_counter() - started
        headers.append(("X-Request-ID", request.request_id))
        headers.append(("X-Processing-Time", f"{seconds * 1000:.2f}ms"))
        if self.metrics is not None:
            self.metrics.observe_route(request.method, self.route, status, seconds)
        reason = "OK" if status == 200 else "Too Many Requests"
        return f"{status} {reason}", headers, body

    def server_error(self, request, secure, started):
        """A JSON 500 with the stack's headers, logged as Django logs one."""
        from likes.http import server_error

        logging.getLogger("django.request").error(
            "Internal Server Error: %s",
            request.path,
            exc_info=True,
            extra={"status_code": 500, "request": request},
        )
        body = server_error(request).content
        headers = [*self.headers[secure], ("Content-Length", str(len(body)))]
        headers += self.cors_headers(request.environ)
        seconds = perf_counter() - started
        headers.append(("X-Request-ID", request.request_id))
        headers.append(("X-Processing-Time", f"{seconds * 1000:.2f}ms"))
        with contextlib.suppress(Exception):  # what failed may be the metrics
            self.metrics.observe_route(request.method, self.route, 500, seconds)
        return "500 Internal Server Error", headers, body

    def host_allowed(self, request) -> bool:
        """Whether Django's ``request.get_host()`` accepts the request's host.

        Accepted hosts are remembered (a few: they are the site's names);
        refused ones go to Django every time, which answers 400 and logs them.
        """
        host = request._get_raw_host()
        if host in self.allowed_hosts:
            return True
        try:
            request.get_host()
        except Exception:  # DisallowedHost
            return False
        if len(self.allowed_hosts) < 64:
            self.allowed_hosts.add(host)
        return True

    @staticmethod
    def rate_limited(request, limit) -> tuple[bytes, dict]:
        """The 429 body, logged as Django logs a 4xx answer."""
        from likes import ratelimit

        response = ratelimit.too_many_requests(limit)
        log_response(
            "%s: %s",
            response.reason_phrase,
            request.path,
            response=response,
            request=request,
        )
        return response.content, dict(response.items())

    def count(self, post_id: str) -> int:
        """The post's count, as ``Post.objects.count_for`` reads it.

        Straight on the DB-API cursor: Django's cursor wrapper costs more than
        SQLite's read. Django still opens, checks and recycles the connection,
        and marks it after an error.
        """
        connection = connections["default"]
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        with connection.wrap_database_errors:
            cursor = connection.connection.cursor()
            try:
                cursor.execute(self.sql, (post_id,))
                row = cursor.fetchone()
            finally:
                cursor.close()
        return row[0] if row else 0

    def cors_headers(self, env) -> list[tuple[str, str]]:
        """django-cors-headers' answer for this path and Origin."""
        if not self.cors_urls.match(env["PATH_INFO"]):
            return []
        headers = [("Vary", "origin")]
        origin = env.get("HTTP_ORIGIN")
        if not origin:
            return headers
        try:
            url = urlsplit(origin)
        except ValueError:
            return headers
        if not self.cors_middleware.origin_found_in_white_lists(origin, url):
            return headers
        headers.append(("access-control-allow-origin", origin))
        if cors.CORS_ALLOW_CREDENTIALS:
            headers.append(("access-control-allow-credentials", "true"))
        if cors.CORS_EXPOSE_HEADERS:
            exposed = ", ".join(cors.CORS_EXPOSE_HEADERS)
            headers.append(("access-control-expose-headers", exposed))
        if (
            cors.CORS_ALLOW_PRIVATE_NETWORK
            and env.get("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK") == "true"
        ):
            headers.append(("access-control-allow-private-network", "true"))
        return headers


def _post_id(path_info: str) -> str | None:
    """The id as Django decodes it from the path; None when it would not."""
    raw = path_info[len(PREFIX) :]
    if not raw:
        return None
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:  # Django re-percent-encodes it: not a valid id anyway
        return None


# As likes.http.json_response writes the view's answer.
_encode = json.JSONEncoder(**JSON_PARAMS).encode


def _receivers(signal) -> tuple | None:
    """The receivers ``signal.send(sender=WSGIHandler)`` calls, None if async."""
    sync, asynchronous = signal._live_receivers(WSGIHandler)
    if asynchronous:
        return None
    return list(signal.receivers), tuple(sync)


def send(signal, receivers, **kwargs) -> None:
    """``signal.send(sender=WSGIHandler, ...)`` without the dispatcher's cost.

    Calls the receivers found at start while the signal's receivers are the
    same ones (none connected or disconnected since).
    """
    if receivers is None or signal.receivers != receivers[0]:
        signal.send(sender=WSGIHandler, **kwargs)
        return
    for receiver in receivers[1]:
        receiver(signal=signal, sender=WSGIHandler, **kwargs)


def _static_headers(secure: bool) -> list[tuple[str, str]]:
    """Content type plus the headers Django's security middleware add to a read.

    Made by the middleware themselves, on a response like the view's; they
    depend only on the settings and on whether the request came over HTTPS.
    """
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": PREFIX + PROBE_ID,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443" if secure else "80",
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.input": io.BytesIO(),
    }
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header and secure:
        env[proxy_header[0]] = proxy_header[1]
    request = WSGIRequest(env)
    assert request.is_secure() == secure, "the probe must be judged as intended"
    response = HttpResponse(content_type="application/json")

    def view(request):
        return response

    # Innermost first, as a response passes them in MIDDLEWARE.
    response = SecurityHeadersMiddleware(view)(request)
    for middleware in (XFrameOptionsMiddleware, SecurityMiddleware):
        response = middleware(view).process_response(request, response)
    return list(response.items())
