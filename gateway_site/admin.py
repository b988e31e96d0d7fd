"""The admin site: Django's, with its login rate-limited per client IP."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model

from likes import ratelimit
from likes.conf import conf


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
