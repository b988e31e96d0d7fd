import re

from django import forms
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

from likes import dashboard, reactions, services, sites, transfer, webhooks
from likes.conf import conf
from likes.models import (
    WEBHOOK_EVENTS,
    APIKey,
    Delivery,
    Post,
    Site,
    Webhook,
    default_webhook_events,
)
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


RANGE_CHOICES = (
    ("7", _("7 days")),
    ("30", _("30 days")),
    ("90", _("90 days")),
    ("365", _("365 days")),
    ("all", _("All")),
)
POST_PAGE_RANGE = "90"


def range_links(current: str, *, anchor: str = "", site: str = "") -> list[dict]:
    also = f"&site={site}" if site else ""
    return [
        {
            "key": key,
            "label": label,
            "url": f"?range={key}{also}{anchor}",
            "current": key == current,
        }
        for key, label in RANGE_CHOICES
    ]


def reactions_context(
    within: dashboard.Period, *, post: Post | None = None, site=None
) -> dict:
    """The reactions' table and chart of a period (nothing without reactions)."""
    site_id = None if site is None else site.id
    kinds = reactions.configured() if site is None else site.kinds()
    rows = dashboard.reaction_totals(within, post=post, kinds=kinds, site_id=site_id)
    if not rows:
        return {}
    series, unit = dashboard.chart_series(
        within, post=post, reactions=True, site_id=site_id
    )
    if unit == "week":
        heading = _("Reactions per week, %(period)s")
    else:
        heading = _("Reactions per day, %(period)s")
    heading = heading % {"period": within.label}
    title = heading if post is None else f"{heading}: {post.title or post.post_id}"
    return {
        "reaction_rows": rows,
        "reactions_heading": heading,
        "reactions_chart": mark_safe(  # noqa: S308  (svg_chart escapes its texts)
            dashboard.svg_chart(series, title=title, unit=unit)
        ),
    }


def chart_context(
    within: dashboard.Period, *, post: Post | None = None, anchor: str = "", site=None
) -> dict:
    """The chart of a period, for the dashboard or one post's page."""
    site_id = None if site is None else site.id
    series, unit = dashboard.chart_series(within, post=post, site_id=site_id)
    if unit == "week":
        heading = _("Likes per week, %(period)s")
    else:
        heading = _("Likes per day, %(period)s")
    heading = heading % {"period": within.label}
    title = heading if post is None else f"{heading}: {post.title or post.post_id}"
    return {
        "chart_heading": heading,
        "chart": mark_safe(  # noqa: S308  (svg_chart escapes every text it draws)
            dashboard.svg_chart(series, title=title, unit=unit)
        ),
        "ranges": range_links(
            within.key, anchor=anchor, site="" if site is None else site.slug
        ),
        "period": within,
    }


class SiteForm(forms.ModelForm):
    class Meta:
        model = Site
        fields = (
            "name",
            "slug",
            "origins",
            "reactions",
            "post_id_pattern",
            "popular_public",
        )
        widgets = {"origins": forms.Textarea(attrs={"rows": 3})}

    def clean_origins(self):
        lines = self.cleaned_data["origins"].replace(",", "\n").split()
        origins = []
        for line in lines:
            origin = line.strip().rstrip("/")
            if not sites.ORIGIN.fullmatch(origin):
                raise forms.ValidationError(
                    _("%(origin)r is not an origin (scheme://host[:port]).")
                    % {"origin": origin[:100]}
                )
            origins.append(origin)
        taken = {
            origin: site.name
            for site in Site.objects.exclude(pk=self.instance.pk)
            for origin in site.origin_list()
        }
        for origin in origins:
            if origin in taken:
                raise forms.ValidationError(
                    _("%(origin)s is already the origin of %(site)s.")
                    % {"origin": origin, "site": taken[origin]}
                )
        return "\n".join(dict.fromkeys(origins))

    def clean_post_id_pattern(self):
        pattern = self.cleaned_data["post_id_pattern"].strip()
        if pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise forms.ValidationError(
                    _("Not a regular expression: %(error)s") % {"error": exc}
                ) from None
        return pattern

    def clean_reactions(self):
        names, problems = reactions.parse(self.cleaned_data["reactions"])
        if problems:
            raise forms.ValidationError(" ".join(problems))
        return ",".join(names)


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    form = SiteForm
    list_display = ("name", "slug", "origin_lines", "reactions", "popular_public")

    @admin.display(description=_("origins"))
    def origin_lines(self, site):
        shown = site.origin_list()
        if site.is_default:
            shown = [*shown, "+ CORS_ORIGINS"]
        return ", ".join(shown) or "–"

    def has_delete_permission(self, request, obj=None):
        # The default site holds a single-site install's posts; any site with
        # posts is protected by the database (PROTECT).
        return obj is None or not obj.is_default


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ("post", "likes", "imported", "last_liked_at", "on_the_blog")
    list_filter = ("site",)
    ordering = ("-likes", "post_id")
    search_fields = ("post_id", "title")
    list_per_page = 50
    # COUNT(*) of the whole table on every page is slow with 100k posts.
    show_full_result_count = False
    fields = (
        "site",
        "post_id",
        "title",
        "likes",
        "imported",
        "created_at",
        "last_liked_at",
    )
    readonly_fields = (
        "site",
        "post_id",
        "title",
        "imported",
        "created_at",
        "last_liked_at",
    )
    actions = ("export_csv", "merge_posts")

    def has_add_permission(self, request):
        return False  # posts appear when they are first liked

    @admin.display(description=_("post"), ordering="post_id")
    def post(self, post):
        if not post.title:
            return post.post_id
        return format_html(
            '{}<br><small class="likes-id">{}</small>', post.title, post.post_id
        )

    @admin.display(description=_("on the blog"))
    def on_the_blog(self, post):
        url = post_url(post.post_id)
        return format_html('<a href="{}" rel="noopener">↗</a>', url) if url else "–"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        post = self.get_object(request, object_id)
        if post is not None:
            within = dashboard.period(
                request.GET.get("range"), post=post, default=POST_PAGE_RANGE
            )
            site = sites.named_by_id(post.site_id)
            extra_context = {
                **chart_context(within, post=post, anchor="#history"),
                **reactions_context(within, post=post, site=site),
                "subtitle": post.title or post.post_id,
                **(extra_context or {}),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        # The only editable field is the count: a correction, which the admin
        # logs in the post's history like any change.
        if change and "likes" in form.changed_data:
            services.post_set_count(
                post_id=obj.post_id, likes=obj.likes, site_id=obj.site_id
            )

    @admin.action(description=_("Export selected posts as CSV"))
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="likes.csv"'
        transfer.export_counts(out=response, format="csv", posts=queryset)
        return response

    @admin.action(description=_("Merge selected posts into one (renamed URL)"))
    def merge_posts(self, request, queryset):
        post_ids = list(queryset.values_list("post_id", flat=True))
        site_ids = set(queryset.values_list("site_id", flat=True))
        if len(site_ids) > 1:
            self.message_user(
                request, _("Posts of different sites cannot be merged."), messages.ERROR
            )
            return None
        (site_id,) = site_ids or {sites.DEFAULT_SITE_ID}
        if "apply" in request.POST:
            target, error = clean_post_id(request.POST.get("target", "").strip())
            if error:
                self.message_user(request, error, messages.ERROR)
                return None
            result = services.post_merge(
                sources=post_ids, target=target, site_id=site_id
            )
            self.log_change(
                request,
                Post.objects.get(site_id=site_id, post_id=target),
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
        urls = [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="likes_dashboard",
            ),
            path(
                "dashboard/daily.csv",
                self.admin_site.admin_view(self.daily_csv_view),
                name="likes_dashboard_csv",
            ),
        ]
        return [*urls, *super().get_urls()]

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            return redirect("admin:index")
        within = dashboard.period(request.GET.get("range"))
        site = self._site(request)
        site_id = None if site is None else site.id
        totals = dashboard.totals(within=within, site_id=site_id)
        posts = Post.objects.select_related("site")
        top = list((posts if site is None else posts.filter(site_id=site_id)).top(10))
        in_period = dashboard.likes_per_post(top, within=within)
        csv_url = reverse("admin:likes_dashboard_csv")
        return TemplateResponse(
            request,
            "admin/likes/dashboard.html",
            {
                **self.admin_site.each_context(request),
                **chart_context(within, site=site),
                **reactions_context(within, site=site),
                "title": _("Likes dashboard"),
                "site": site,
                "site_links": site_links(site, within),
                "totals": totals,
                "comparison": dashboard.comparison(totals, within),
                "top_posts": [
                    (post, post_url(post.post_id), in_period.get(post.pk, 0))
                    for post in top
                ],
                "csv_url": f"{csv_url}?range={within.key}"
                + (f"&site={site.slug}" if site else ""),
                "changelist_url": reverse("admin:likes_post_changelist"),
            },
        )

    @staticmethod
    def _site(request):
        """The dashboard's ``?site=`` (None: every site; so is an unknown one)."""
        try:
            return (
                sites.named(request.GET.get("site"))
                if request.GET.get("site")
                else None
            )
        except sites.UnknownSite:
            return None

    def daily_csv_view(self, request):
        """The dashboard's daily series as CSV (``date,likes``), for its period."""
        if not self.has_view_permission(request):
            return redirect("admin:index")
        within = dashboard.period(request.GET.get("range"))
        site = self._site(request)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="likes-per-day-{within.first}-{within.last}.csv"'
        )
        dashboard.write_csv(
            dashboard.daily_likes(
                within=within, site_id=None if site is None else site.id
            ),
            response,
        )
        return response


def site_links(current, within) -> list[dict]:
    """The dashboard's site filter (none on a single-site install)."""
    every = list(sites.registry.fresh().by_slug.values())
    if len(every) < 2:
        return []
    links = [
        {
            "label": _("All sites"),
            "url": f"?range={within.key}",
            "current": current is None,
        }
    ]
    links += [
        {
            "label": site.name,
            "url": f"?range={within.key}&site={site.slug}",
            "current": current is not None and current.id == site.id,
        }
        for site in every
    ]
    return links


@admin.register(APIKey)
class APIKeyAdmin(APIKeyModelAdmin):
    """Create (the key is shown once), revoke and review stats API keys."""

    list_display = (*APIKeyModelAdmin.list_display, "site", "last_used_at")
    empty_value_display = _("never")

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "last_used_at")


class WebhookForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        label=_("Events"),
        choices=[(event, event) for event in WEBHOOK_EVENTS],
        widget=forms.CheckboxSelectMultiple,
        initial=default_webhook_events,
    )

    class Meta:
        model = Webhook
        fields = ("name", "url", "site", "events", "milestones", "active")

    def clean_url(self):
        url = self.cleaned_data["url"]
        if not url.lower().startswith(("https://", "http://")):
            raise forms.ValidationError(_("Use an http:// or https:// URL."))
        return url

    def clean_milestones(self):
        raw = self.cleaned_data["milestones"]
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if any(not part.isdigit() or int(part) < 1 for part in parts):
            raise forms.ValidationError(
                _("Whole numbers above 0, comma-separated (e.g. 10,100,1000).")
            )
        return ",".join(str(n) for n in sorted({int(part) for part in parts}))


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = (
        "name",
        "url",
        "site",
        "active",
        "event_list",
        "pending",
        "failed",
    )
    list_filter = ("active",)
    readonly_fields = ("signing_secret", "created_at")

    @admin.display(description=_("events"))
    def event_list(self, webhook):
        return ", ".join(webhook.events or ())

    @admin.display(description=_("pending"))
    def pending(self, webhook):
        return webhook.deliveries.filter(status=Delivery.PENDING).count()

    @admin.display(description=_("failed"))
    def failed(self, webhook):
        return webhook.deliveries.filter(status=Delivery.FAILED).count()

    @admin.display(description=_("signing secret"))
    def signing_secret(self, webhook):
        if webhook.pk is None:
            return _("Shown once the webhook is saved.")
        return format_html(
            "<code>{}</code><br><span class='help'>{}</span>",
            webhooks.secret_for(webhook).hex(),
            _(
                "The receiver checks X-Gateway-Signature with these 32 bytes "
                "(hex). Derived from DJANGO_SECRET_KEY: changing that key "
                "changes it."
            ),
        )


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "event",
        "webhook",
        "status",
        "attempts",
        "last_status",
        "last_error",
        "created_at",
    )
    list_filter = ("status", "event", "webhook")
    list_select_related = ("webhook",)
    ordering = ("-created_at", "-pk")
    actions = ["send_again"]
    readonly_fields = [
        "webhook",
        "event",
        "event_id",
        "payload",
        "status",
        "attempts",
        "last_status",
        "last_error",
        "created_at",
        "next_attempt_at",
        "delivered_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_resend_permission(self, request):
        # The rows cannot be edited; sending one again needs the change right.
        return request.user.has_perm("likes.change_delivery")

    @admin.action(description=_("Send again"), permissions=["resend"])
    def send_again(self, request, queryset):
        count = webhooks.resend(queryset)
        self.message_user(
            request,
            _("%(count)d delivery(ies) queued again.") % {"count": count},
            messages.SUCCESS,
        )
