"""The admin site: Django's, with its login rate-limited per client IP."""

from django.conf import settings
from django.contrib import admin

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
