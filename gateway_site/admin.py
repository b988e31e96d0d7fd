"""The admin site: Django's, with its login rate-limited per client IP, and
the gateway console (gateway_site/gateway/console.py) under ``gateway/``."""

from functools import wraps
from http import HTTPStatus

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from gateway_site.http import valid_request_id
from likes import ratelimit
from likes.conf import conf
from likes.http import error_response, json_response

TIMELINE_WIDTH = 600


class AdminSite(admin.AdminSite):
    site_header = "Likes"
    site_title = "Likes admin"
    index_title = "Administration"
    index_template = "admin/likes/index.html"

    @property
    def site_url(self):
        """ "View site" goes to the blog (LIKES_SITE_URL), or is hidden."""
        blog = conf.SITE_URL.split("{post_id}")[0]
        return blog or None

    def get_app_list(self, request, app_label=None):
        """Leave "Authentication and Authorization" out of the index and the
        sidebar while the site has a single author: there is nobody to manage.
        Its pages stay reachable by URL (app_label is set there)."""
        apps = super().get_app_list(request, app_label)
        if app_label is None and single_author():
            apps = [app for app in apps if app["app_label"] != "auth"]
        return apps

    def get_urls(self):
        # Before Django's own: "gateway/" is the console, not the app's index.
        return [
            path(
                "gateway/",
                self.staff_only(self.gateway_console),
                name="gateway_console",
            ),
            path(
                "gateway/stats.json",
                self.staff_only(self.gateway_stats, api=True),
                name="gateway_stats",
            ),
            path(
                "gateway/requests/",
                self.staff_only(self.gateway_requests),
                name="gateway_requests",
            ),
            path(
                "gateway/requests.json",
                self.staff_only(self.gateway_requests_json, api=True),
                name="gateway_requests_json",
            ),
            *super().get_urls(),
        ]

    def staff_only(self, view, *, api=False):
        """Staff only: others get a 403 (JSON for ``api``), visitors the login."""

        @wraps(view)
        def guarded(request, *args, **kwargs):
            if request.user.is_authenticated and not self.has_permission(request):
                if api:
                    return forbidden()
                raise PermissionDenied
            if api and not self.has_permission(request):
                return forbidden()
            return admin_view(request, *args, **kwargs)

        admin_view = self.admin_view(view)
        return guarded

    def gateway_console(self, request):
        from gateway_site.gateway import console

        gateway, problem = gateway_registry()
        data = console.stats(gateway) if gateway is not None else None
        return TemplateResponse(
            request,
            "admin/gateway/console.html",
            {
                **self.each_context(request),
                "title": "Gateway console",
                "stats": data,
                "problem": problem,
                "latency_buckets": console.LATENCY_MS,
                "bucket_seconds": console.BUCKET,
                "gateway_models": self.get_app_list(request, "gateway"),
            },
        )

    def gateway_stats(self, request):
        from gateway_site.gateway import console

        if request.method != "GET":
            return error_response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                code="method_not_allowed",
                detail=f'Method "{request.method}" not allowed.',
                headers={"Allow": "GET"},
            )
        gateway, problem = gateway_registry()
        if gateway is None:
            return error_response(
                HTTPStatus.SERVICE_UNAVAILABLE, code="misconfigured", detail=problem
            )
        return json_response(console.stats(gateway))

    def gateway_requests(self, request):
        wanted = request.GET.get("id", "").strip()
        records, problem = flow_records(wanted)
        return TemplateResponse(
            request,
            "admin/gateway/requests.html",
            {
                **self.each_context(request),
                "title": "Gateway requests",
                "wanted": wanted,
                "problem": problem,
                "records": [timeline(record) for record in records],
            },
        )

    def gateway_requests_json(self, request):
        wanted = request.GET.get("id", "").strip()
        records, problem = flow_records(wanted)
        if problem:
            return error_response(
                HTTPStatus.BAD_REQUEST, code="invalid", detail=problem
            )
        return json_response({"requests": records})

    def login(self, request, extra_context=None):
        if request.method == "POST":
            # Fail closed: with the cache down, nobody can guess passwords.
            limit = ratelimit.check(
                request,
                policy="admin-login",
                rate=settings.ADMIN_LOGIN_RATE,
                fail_open=False,
            )
            if limit and limit.exceeded:
                return ratelimit.too_many_requests(limit)
        return super().login(request, extra_context)


def single_author() -> bool:
    """Whether the site has at most one user (one small query)."""
    return len(get_user_model().objects.values_list("pk", flat=True)[:2]) <= 1


def forbidden():
    return error_response(
        HTTPStatus.FORBIDDEN,
        code="permission_denied",
        detail="Staff only: sign in to the admin as a staff user.",
    )


def gateway_registry():
    """(the gateway's registry, None) or (None, what is wrong with its config)."""
    from gateway_site.gateway import registry

    try:
        return registry.get(), None
    except ImproperlyConfigured as exc:
        return None, f"The services file is invalid: {exc}"


def flow_records(wanted: str) -> tuple[list[dict], str | None]:
    """The recent requests, or the one with request id ``wanted``."""
    from gateway_site.gateway import console

    gateway, problem = gateway_registry()
    if gateway is None:
        return [], problem
    if wanted:
        if not valid_request_id(wanted):
            return [], "Not a request id: 1 to 64 letters, digits, dots, _ or -."
        found = console.find(gateway.store, wanted)
        return ([found] if found else []), None
    return console.recent(gateway.store), None


def timeline(record: dict) -> dict:
    """A request's record with the bars of its tries on a shared time axis."""
    total = max(float(record.get("ms") or 0), 0.001)
    scale = TIMELINE_WIDTH / total
    bars = []
    for number, attempt in enumerate(record.get("attempts", []), start=1):
        x = min(float(attempt["at_ms"]) * scale, TIMELINE_WIDTH - 2)
        width = max(min(float(attempt["ms"]) * scale, TIMELINE_WIDTH - x), 2)
        bars.append(
            {
                **attempt,
                "number": number,
                "x": round(x, 1),
                "width": round(width, 1),
                "failed": attempt["outcome"] not in ("success", "client_error"),
            }
        )
    return {**record, "bars": bars, "width": TIMELINE_WIDTH}
