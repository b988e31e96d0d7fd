"""Middleware of the project.

Sessions, authentication, messages and CSRF serve the admin only: the public
API and the gateway authenticate with API keys and bearer tokens, never with
cookies. Scoping them to the admin keeps session cookies out of the public
endpoints and saves about a fifth of the cost of every API request
(tests/benchmarks). A view outside the admin that needs a session fails loudly
(``request.session`` is missing) instead of silently running without CSRF.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.csrf import CsrfViewMiddleware

ADMIN_PREFIX = "/admin/"


class AdminOnlyMixin:
    def __call__(self, request):
        if not request.path_info.startswith(ADMIN_PREFIX):
            return self.get_response(request)
        return super().__call__(request)


class AdminSessionMiddleware(AdminOnlyMixin, SessionMiddleware):
    pass


class AdminCsrfViewMiddleware(AdminOnlyMixin, CsrfViewMiddleware):
    pass


class AdminAuthenticationMiddleware(AdminOnlyMixin, AuthenticationMiddleware):
    pass


class AdminMessageMiddleware(AdminOnlyMixin, MessageMiddleware):
    pass


# Headers Django's SecurityMiddleware does not set. The API answers JSON only,
# so its policy forbids everything; the admin loads its own scripts and styles.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
ADMIN_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()"
)


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
