"""Middleware of the project.

Sessions, authentication, messages and CSRF serve the admin only: the public
API and the gateway authenticate with API keys and bearer tokens, never with
cookies. Scoping them to the admin keeps session cookies out of the public
endpoints and saves about a fifth of the cost of every API request
(tests/benchmarks). A view outside the admin that needs a session fails loudly
(``request.session`` is missing) instead of silently running without CSRF.
"""

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
