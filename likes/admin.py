from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key import models as library_models
from rest_framework_api_key.admin import APIKeyModelAdmin

from likes import dashboard, services, transfer
from likes.conf import conf
from likes.models import APIKey, Post
from likes.validators import clean_post_id

# The library's own key model is unused: ours adds "last used".
if admin.site.is_registered(library_models.APIKey):
    admin.site.unregister(library_models.APIKey)


def post_url(post_id: str) -> str:
    site = conf.SITE_URL
    if not site:
        return ""
    if "{post_id}" in site:
        return site.replace("{post_id}", post_id)
    return f"{site.rstrip('/')}/{post_id}/"


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ("post_id", "likes", "last_liked_at", "on_the_blog")
    ordering = ("-likes", "post_id")
    search_fields = ("post_id",)
    list_per_page = 50
    # COUNT(*) of the whole table on every page is slow with 100k posts.
    show_full_result_count = False
    fields = ("post_id", "likes", "imported", "created_at", "last_liked_at", "history")
    readonly_fields = ("post_id", "imported", "created_at", "last_liked_at", "history")
    actions = ("export_csv", "merge_posts")

    def has_add_permission(self, request):
        return False  # posts appear when they are first liked

    @admin.display(description=_("on the blog"))
    def on_the_blog(self, post):
        url = post_url(post.post_id)
        return format_html('<a href="{}" rel="noopener">↗</a>', url) if url else "–"

    @admin.display(description=_("likes per day, last 90 days"))
    def history(self, post):
        series = dashboard.daily_likes(post=post)
        return mark_safe(  # noqa: S308  (built from numbers and escaped text)
            dashboard.svg_chart(series, title=f"Likes per day: {post.post_id}")
        )

    def save_model(self, request, obj, form, change):
        # The only editable field is the count: a correction, which the admin
        # logs in the post's history like any change.
        if change and "likes" in form.changed_data:
            services.post_set_count(post_id=obj.post_id, likes=obj.likes)

    @admin.action(description=_("Export selected posts as CSV"))
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="likes.csv"'
        transfer.export_counts(out=response, format="csv", posts=queryset)
        return response

    @admin.action(description=_("Merge selected posts into one (renamed URL)"))
    def merge_posts(self, request, queryset):
        post_ids = list(queryset.values_list("post_id", flat=True))
        if "apply" in request.POST:
            target, error = clean_post_id(request.POST.get("target", "").strip())
            if error:
                self.message_user(request, error, messages.ERROR)
                return None
            result = services.post_merge(sources=post_ids, target=target)
            self.log_change(
                request,
                Post.objects.get(post_id=target),
                f"Merged {', '.join(result.merged)} into {target}",
            )
            self.message_user(
                request,
                f"Merged {len(result.merged)} post(s) into {target}: "
                f"{result.likes} likes.",
                messages.SUCCESS,
            )
            return None
        return TemplateResponse(
            request,
            "admin/likes/merge.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Merge posts"),
                "opts": self.model._meta,
                "posts": queryset.order_by("-likes", "post_id"),
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def get_urls(self):
        dashboard_url = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name="likes_dashboard",
        )
        return [dashboard_url, *super().get_urls()]

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            return redirect("admin:index")
        return TemplateResponse(
            request,
            "admin/likes/dashboard.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Likes dashboard"),
                "totals": dashboard.totals(),
                "top_posts": [
                    (post, post_url(post.post_id)) for post in Post.objects.top(10)
                ],
                "chart": mark_safe(  # noqa: S308  (numbers and escaped text)
                    dashboard.svg_chart(
                        dashboard.daily_likes(), title="Likes per day, last 90 days"
                    )
                ),
                "changelist_url": reverse("admin:likes_post_changelist"),
            },
        )


@admin.register(APIKey)
class APIKeyAdmin(APIKeyModelAdmin):
    """Create (the key is shown once), revoke and review stats API keys."""

    list_display = (*APIKeyModelAdmin.list_display, "last_used_at")

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "last_used_at")
