"""Reads behind the admin dashboard: aggregated in the database, drawn as SVG."""

import datetime
from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.html import escape

from likes.models import Like, Post

CHART_DAYS = 90


@dataclass(frozen=True, slots=True)
class Totals:
    likes: int
    posts: int
    today: int
    last_7_days: int
    last_30_days: int


def totals(*, now: datetime.datetime | None = None) -> Totals:
    """Headline numbers: three queries whatever the size of the data."""
    now = now or timezone.now()
    start_of_today = timezone.localtime(now).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    posts = Post.objects.aggregate(likes=Sum("likes"), posts=Count("pk"))
    since_30 = now - datetime.timedelta(days=30)
    recent = Like.objects.filter(created_at__gte=since_30).aggregate(
        today=Count("pk", filter=Q(created_at__gte=start_of_today)),
        last_7_days=Count(
            "pk", filter=Q(created_at__gte=now - datetime.timedelta(days=7))
        ),
        last_30_days=Count("pk"),
    )
    return Totals(
        likes=posts["likes"] or 0,
        posts=posts["posts"],
        today=recent["today"],
        last_7_days=recent["last_7_days"],
        last_30_days=recent["last_30_days"],
    )


def daily_likes(
    *,
    days: int = CHART_DAYS,
    post: Post | None = None,
    today: datetime.date | None = None,
) -> list[tuple[datetime.date, int]]:
    """Likes per day for the last ``days`` days, oldest first, zeros included."""
    today = today or timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    # A datetime bound, not created_at__date: the index on created_at applies.
    start = timezone.make_aware(datetime.datetime.combine(first, datetime.time.min))
    events = Like.objects.filter(created_at__gte=start)
    if post is not None:
        events = events.filter(post=post)
    per_day = dict(
        events.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return [
        (day, per_day.get(day, 0))
        for day in (first + datetime.timedelta(days=i) for i in range(days))
    ]


def svg_chart(series: list[tuple[datetime.date, int]], *, title: str) -> str:
    """A bar chart as inline SVG: no JavaScript, no external assets."""
    width, height, pad = 720, 180, 24
    peak = max((n for _, n in series), default=0) or 1
    bar = (width - 2 * pad) / max(len(series), 1)
    bars = []
    for i, (day, n) in enumerate(series):
        h = (height - 2 * pad) * n / peak
        x = pad + i * bar
        y = height - pad - h
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar - 1, 1):.1f}" '
            f'height="{h:.1f}"><title>{day:%Y-%m-%d}: {n}</title></rect>'
        )
    first = series[0][0].strftime("%Y-%m-%d") if series else ""
    last = series[-1][0].strftime("%Y-%m-%d") if series else ""
    return (
        f'<svg class="likes-chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<g fill="var(--primary, #417690)">{"".join(bars)}</g>'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" '
        f'y2="{height - pad}" stroke="currentColor" stroke-width="1"/>'
        f'<text x="{pad}" y="{height - 6}" font-size="11" fill="currentColor">'
        f"{first}</text>"
        f'<text x="{width - pad}" y="{height - 6}" font-size="11" '
        f'text-anchor="end" fill="currentColor">{last}</text>'
        f'<text x="{pad}" y="14" font-size="11" fill="currentColor">max {peak}/day'
        f"</text></svg>"
    )
