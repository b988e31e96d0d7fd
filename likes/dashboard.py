"""Reads behind the admin dashboard: aggregated in the database, drawn as SVG."""

import csv
import datetime
import math
from dataclasses import dataclass

from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from likes.models import Like, Post, PostReaction

# The periods the dashboard offers, in days; None: since the first like.
RANGES: dict[str, int | None] = {"7": 7, "30": 30, "90": 90, "365": 365, "all": None}
DEFAULT_RANGE = "30"
# Beyond this many days a chart draws one bar per week: a bar stays visible.
DAILY_BARS_MAX = 400


@dataclass(frozen=True, slots=True)
class Period:
    """The days a dashboard page covers, ``first`` to ``last`` inclusive."""

    key: str
    first: datetime.date
    last: datetime.date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def comparable(self) -> bool:
        """Whether a previous period of the same length makes sense."""
        return self.key != "all"

    @property
    def label(self) -> str:
        if self.key == "all":
            return _("since the first like")
        days = RANGES[self.key]
        return ngettext("last %(n)d day", "last %(n)d days", days) % {"n": days}


def _events(
    post: Post | None = None, *, reactions: bool = False, site_id: int | None = None
):
    events = Like.objects.reactions() if reactions else Like.objects.likes()
    if site_id is not None:
        events = events.filter(post__site_id=site_id)
    return events if post is None else events.filter(post=post)


def _start_of(day: datetime.date) -> datetime.datetime:
    """Local midnight of ``day``: a datetime bound, so the created_at index applies."""
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def period(
    value: str | None,
    *,
    post: Post | None = None,
    today: datetime.date | None = None,
    default: str = DEFAULT_RANGE,
) -> Period:
    """The period named by a ``?range=`` value; anything unknown is the default."""
    key = value if value in RANGES else default
    today = today or timezone.localdate()
    days = RANGES[key]
    if days is not None:
        return Period(key, today - datetime.timedelta(days=days - 1), today)
    oldest = _events(post).aggregate(oldest=Min("created_at"))["oldest"]
    first = min(timezone.localdate(oldest), today) if oldest else today
    return Period(key, first, today)


@dataclass(frozen=True, slots=True)
class Totals:
    likes: int
    imported: int
    posts: int
    today: int
    in_period: int
    # Like events in the period of the same length before; None for "all".
    previous: int | None

    @property
    def counted(self) -> int:
        """Likes counted by this service (the imported ones came with a file)."""
        return self.likes - self.imported

    @property
    def change_percent(self) -> int | None:
        """Change against the previous period; None when there is nothing to
        compare with (no previous period, or none of its likes)."""
        if not self.previous:
            return None
        return round(100 * (self.in_period - self.previous) / self.previous)


def totals(
    *,
    within: Period | None = None,
    now: datetime.datetime | None = None,
    site_id: int | None = None,
) -> Totals:
    """Headline numbers: two queries whatever the size of the data (one site's,
    or all sites')."""
    now = now or timezone.now()
    within = within or period(None, today=timezone.localdate(now))
    start_of_today = _start_of(timezone.localdate(now))
    start = _start_of(within.first)
    previous_start = _start_of(within.first - datetime.timedelta(days=within.days))
    posts = Post.objects.all()
    if site_id is not None:
        posts = posts.filter(site_id=site_id)
    posts = posts.aggregate(
        likes=Sum("likes"), imported=Sum("imported"), posts=Count("pk")
    )
    since = min(previous_start if within.comparable else start, start_of_today)
    recent = (
        _events(site_id=site_id)
        .filter(created_at__gte=since)
        .aggregate(
            today=Count("pk", filter=Q(created_at__gte=start_of_today)),
            in_period=Count("pk", filter=Q(created_at__gte=start)),
            previous=Count("pk", filter=Q(created_at__lt=start)),
        )
    )
    return Totals(
        likes=posts["likes"] or 0,
        imported=posts["imported"] or 0,
        posts=posts["posts"],
        today=recent["today"],
        in_period=recent["in_period"],
        previous=recent["previous"] if within.comparable else None,
    )


def likes_per_post(posts, *, within: Period) -> dict[int, int]:
    """Like events of these posts in the period, by post pk (one query)."""
    rows = (
        Like.objects.likes()
        .filter(
            post__in=[post.pk for post in posts],
            created_at__gte=_start_of(within.first),
        )
        .values("post")
        .annotate(n=Count("pk"))
        .values_list("post", "n")
    )
    return dict(rows)


@dataclass(frozen=True, slots=True)
class ReactionTotal:
    kind: str
    total: int  # the counter (what the API answers)
    in_period: int  # events recorded in the period


def reaction_totals(
    within: Period, *, post: Post | None = None, kinds=(), site_id: int | None = None
) -> list[ReactionTotal]:
    """Each reaction's count and its events in the period (the site's reactions
    first, in their order, then any others still stored); two queries."""
    counts = PostReaction.objects.all()
    if post is not None:
        counts = counts.filter(post=post)
    if site_id is not None:
        counts = counts.filter(post__site_id=site_id)
    total = dict(
        counts.values("kind").annotate(n=Sum("count")).values_list("kind", "n")
    )
    recent = dict(
        _events(post, reactions=True, site_id=site_id)
        .filter(created_at__gte=_start_of(within.first))
        .values("kind")
        .annotate(n=Count("pk"))
        .values_list("kind", "n")
    )
    order = list(dict.fromkeys([*kinds, *sorted(total), *sorted(recent)]))
    return [
        ReactionTotal(kind, total.get(kind) or 0, recent.get(kind, 0)) for kind in order
    ]


def comparison(totals: Totals, within: Period) -> str:
    """ "+12 % vs previous 30 days", or why there is no percentage."""
    if totals.previous is None:
        return ""
    previous = ngettext("previous %(n)d day", "previous %(n)d days", within.days) % {
        "n": within.days
    }
    percent = totals.change_percent
    if percent is None:
        if totals.in_period == 0:
            return _("no change vs %(previous)s") % {"previous": previous}
        return _("none in the %(previous)s") % {"previous": previous}
    sign = "±" if percent == 0 else "+" if percent > 0 else "−"
    return _("%(sign)s%(n)d %% vs %(previous)s") % {
        "sign": sign,
        "n": abs(percent),
        "previous": previous,
    }


def daily_likes(
    *,
    days: int | None = None,
    within: Period | None = None,
    post: Post | None = None,
    today: datetime.date | None = None,
    reactions: bool = False,
    site_id: int | None = None,
) -> list[tuple[datetime.date, int]]:
    """Like events per day over a period, oldest first, zeros included.

    ``within`` names the period; ``days`` alone means the last ``days`` days;
    ``reactions``: the reactions' events (all kinds) instead of the likes'.
    """
    if within is None:
        today = today or timezone.localdate()
        days = days or 90
        within = Period(str(days), today - datetime.timedelta(days=days - 1), today)
    # Datetime bounds, not created_at__date: the index on created_at applies.
    events = _events(post, reactions=reactions, site_id=site_id).filter(
        created_at__gte=_start_of(within.first),
        created_at__lt=_start_of(within.last + datetime.timedelta(days=1)),
    )
    per_day = dict(
        events.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return [
        (day, per_day.get(day, 0))
        for day in (
            within.first + datetime.timedelta(days=i) for i in range(within.days)
        )
    ]


def weekly(series: list[tuple[datetime.date, int]]) -> list[tuple[datetime.date, int]]:
    """Sum a daily series into weeks, each labelled by its first day."""
    weeks = []
    for i in range(0, len(series), 7):
        chunk = series[i : i + 7]
        weeks.append((chunk[0][0], sum(n for _, n in chunk)))
    return weeks


def chart_series(
    within: Period,
    *,
    post: Post | None = None,
    reactions: bool = False,
    site_id: int | None = None,
) -> tuple[list[tuple[datetime.date, int]], str]:
    """The bars of a chart and their unit ("day" or "week")."""
    series = daily_likes(within=within, post=post, reactions=reactions, site_id=site_id)
    if len(series) > DAILY_BARS_MAX:
        return weekly(series), "week"
    return series, "day"


def write_csv(series: list[tuple[datetime.date, int]], out) -> None:
    """Write a daily series as CSV: ``date,likes``, ISO dates."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["date", "likes"])
    writer.writerows((day.isoformat(), n) for day, n in series)


def y_ticks(peak: int, *, most: int = 5) -> list[int]:
    """Round tick values from 0 to at least ``peak``: steps of 1, 2 or 5 × 10ⁿ."""
    if peak <= 0:
        return [0, 1]
    raw = peak / most
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(
        m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw
    )  # the smallest round step giving at most ``most`` intervals
    top = step * math.ceil(peak / step)
    return list(range(0, top + 1, step))


def x_ticks(days: list[datetime.date], unit: str = "day") -> list[tuple[int, str]]:
    """Where to label the date axis (index, text): at most about a dozen labels."""
    n = len(days)
    if unit == "day" and n <= 14:
        return [(i, date_format(day, "M j")) for i, day in enumerate(days)]
    if unit == "day" and n <= 62:
        # Weekly, counted back from the last day so "today" is labelled.
        return [
            (i, date_format(day, "M j"))
            for i, day in enumerate(days)
            if (n - 1 - i) % 7 == 0
        ]
    if unit == "day" and n <= 120:
        return [
            (i, date_format(day, "M j"))
            for i, day in enumerate(days)
            if day.day in (1, 15)
        ]
    # Month starts (a bucket starting a month); fewer when there are many.
    starts = [
        i for i, day in enumerate(days) if i == 0 or day.month != days[i - 1].month
    ]
    starts = [i for i in starts if i > 0 or days[0].day == 1]
    for months in ((1, 4, 7, 10), (1,)):
        if len(starts) <= 13:
            break
        starts = [i for i in starts if days[i].month in months]
    ticks = []
    for number, i in enumerate(starts):
        day = days[i]
        text = date_format(day, "M Y" if number == 0 or day.month == 1 else "M")
        ticks.append((i, text))
    return ticks


def svg_chart(
    series: list[tuple[datetime.date, int]], *, title: str, unit: str = "day"
) -> str:
    """A bar chart with axes as inline SVG: no JavaScript, no external assets.

    Every piece of text is escaped here: the title may hold a page title.
    """
    width, height = 960, 280
    left, right, top, bottom = 52, 28, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    base = top + plot_h
    ticks = y_ticks(max((n for _, n in series), default=0))
    scale = plot_h / ticks[-1]
    slot = plot_w / max(len(series), 1)
    gap = min(slot * 0.2, 4) if slot >= 3 else 0

    parts = [
        f'<svg class="likes-chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        '<g class="likes-grid">',
    ]
    for value in ticks:
        y = base - value * scale
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
        )
    parts.append('</g><g class="likes-bars">')
    when = _("week of %(day)s") if unit == "week" else "%(day)s"
    for i, (day, n) in enumerate(series):
        h = n * scale
        parts.append(
            f'<rect x="{left + i * slot + gap / 2:.1f}" y="{base - h:.1f}" '
            f'width="{max(slot - gap, 0.6):.1f}" height="{h:.1f}">'
            f"<title>{escape(when % {'day': day.isoformat()})}: {n}</title></rect>"
        )
    parts.append(
        f'</g><line class="likes-axis-line" x1="{left}" y1="{base}" '
        f'x2="{width - right}" y2="{base}"/><g class="likes-axis">'
    )
    for value in ticks:
        parts.append(
            f'<text class="likes-y" x="{left - 8}" y="{base - value * scale + 4:.1f}" '
            f'text-anchor="end">{value}</text>'
        )
    for i, text in x_ticks([day for day, _n in series], unit):
        x = left + (i + 0.5) * slot
        anchor = "end" if x > width - right - 20 else "middle"
        parts.append(
            f'<line class="likes-tick" x1="{x:.1f}" y1="{base}" x2="{x:.1f}" '
            f'y2="{base + 5}"/><text class="likes-x" x="{x:.1f}" y="{height - 10}" '
            f'text-anchor="{anchor}">{escape(text)}</text>'
        )
    parts.append("</g></svg>")
    return "".join(parts)
