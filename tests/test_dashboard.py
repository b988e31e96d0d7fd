import datetime
import re
from http import HTTPStatus

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.db import connection
from django.utils import formats, timezone

from likes import dashboard
from likes.models import APIKey, Like, Post

pytestmark = pytest.mark.django_db


@pytest.fixture
def now():
    """Noon today: every age in days below lands on a known date."""
    return timezone.localtime().replace(hour=12, minute=0, second=0, microsecond=0)


@pytest.fixture
def dataset(now):
    """Three posts, likes at known ages, one imported like with no event."""
    a = Post.objects.create(post_id="alpha", likes=5, last_liked_at=now)
    b = Post.objects.create(post_id="beta", likes=3)
    Post.objects.create(post_id="gamma", likes=1, imported=1)
    ages = {a: [0, 0, 3, 20, 60], b: [0, 10, 100]}
    for post, days in ages.items():
        for d in days:
            Like.objects.create(post=post, created_at=now - datetime.timedelta(days=d))
    return now


def dashboard_html(client, query="") -> str:
    response = client.get(f"/admin/likes/post/dashboard/{query}")
    assert response.status_code == HTTPStatus.OK
    return response.content.decode()


def total(html: str, name: str) -> str:
    """The headline number of one figure on the dashboard."""
    match = re.search(rf'data-total="{name}"><strong>(\d+)</strong>', html)
    assert match, f"no {name} figure"
    return match.group(1)


@pytest.mark.parametrize(
    ("key", "in_period", "previous"),
    [("7", 4, 1), ("30", 6, 0), ("90", 7, 1), ("365", 8, 0), ("all", 8, None)],
)
def test_totals_for_a_period_and_the_one_before(dataset, key, in_period, previous):
    within = dashboard.period(key, today=dataset.date())

    totals = dashboard.totals(within=within, now=dataset)

    assert (totals.in_period, totals.previous) == (in_period, previous)
    assert totals.likes == 9
    assert totals.imported == 1
    assert totals.counted == 8
    assert totals.posts == 3
    assert totals.today == 3


@pytest.mark.parametrize(
    ("in_period", "previous", "text"),
    [
        (12, 10, "+20 % vs previous 30 days"),
        (5, 10, "−50 % vs previous 30 days"),
        (10, 10, "±0 % vs previous 30 days"),
        (3, 0, "none in the previous 30 days"),
        (0, 0, "no change vs previous 30 days"),
        (7, None, ""),
    ],
)
def test_comparison_with_the_previous_period(in_period, previous, text):
    within = dashboard.period("30" if previous is not None else "all")
    totals = dashboard.Totals(
        likes=0, imported=0, posts=0, today=0, in_period=in_period, previous=previous
    )

    assert dashboard.comparison(totals, within) == text


def test_all_starts_at_the_first_like(dataset):
    within = dashboard.period("all", today=dataset.date())

    assert within.first == (dataset - datetime.timedelta(days=100)).date()
    assert within.days == 101
    assert not within.comparable


def test_all_of_one_post_starts_at_its_first_like(dataset):
    alpha = Post.objects.get(post_id="alpha")

    within = dashboard.period("all", post=alpha, today=dataset.date())

    assert within.days == 61


def test_all_without_any_like_is_today():
    within = dashboard.period("all")

    assert within.first == within.last == timezone.localdate()


def test_daily_likes_covers_the_period_oldest_first(dataset):
    series = dashboard.daily_likes(within=dashboard.period("90"))

    assert len(series) == 90
    assert series[-1][0] == timezone.localdate()
    assert series[0][0] < series[-1][0]
    assert sum(n for _, n in series) == 7  # the 100-day-old like is outside


def test_daily_likes_of_one_post(dataset):
    series = dashboard.daily_likes(post=Post.objects.get(post_id="beta"))

    assert sum(n for _, n in series) == 2


def test_long_periods_are_drawn_by_week(now):
    post = Post.objects.create(post_id="old", likes=2)
    for days in (0, 800):
        Like.objects.create(post=post, created_at=now - datetime.timedelta(days=days))

    series, unit = dashboard.chart_series(dashboard.period("all"))

    assert unit == "week"
    assert len(series) == 115  # 801 days
    assert sum(n for _, n in series) == 2


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (12, [0, 5, 10, 15]),
        (1000, [0, 200, 400, 600, 800, 1000]),
        (1234, [0, 500, 1000, 1500]),
    ],
)
def test_y_ticks_are_round_and_cover_the_peak(peak, ticks):
    assert dashboard.y_ticks(peak) == ticks


@pytest.mark.parametrize("days", [7, 30, 90, 365, 2000])
def test_x_axis_has_a_readable_number_of_date_labels(days):
    last = datetime.date(2026, 6, 30)
    series = [(last - datetime.timedelta(days=i), 1) for i in range(days)][::-1]
    unit = "day"
    if days > dashboard.DAILY_BARS_MAX:
        series, unit = dashboard.weekly(series), "week"

    ticks = dashboard.x_ticks([day for day, _ in series], unit)

    assert 3 <= len(ticks) <= 14
    positions = [i for i, _ in ticks]
    assert positions == sorted(set(positions))


def test_svg_chart_has_bars_axes_and_escapes_its_text():
    today = datetime.date(2026, 1, 31)
    series = [(today - datetime.timedelta(days=i), i % 3) for i in range(90)][::-1]

    svg = dashboard.svg_chart(series, title="<b>likes</b>")

    assert svg.count("<rect") == 90
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "2026-01-31: 0" in svg
    assert ">Jan 15</text>" in svg and ">Jan 1</text>" in svg
    assert '">2</text>' in svg  # the y axis tops at the peak


def test_dashboard_page_shows_totals_chart_and_top_posts(admin_client, dataset):
    html = dashboard_html(admin_client)

    assert total(html, "period") == "6"
    assert total(html, "likes") == "9"
    assert total(html, "posts") == "3"
    assert html.count("<rect") == 30  # the default period
    assert 'data-range="30" aria-current="page"' in html
    assert html.index(">alpha<") < html.index(">beta<") < html.index(">gamma<")


@pytest.mark.parametrize(("key", "in_period", "bars"), [("7", 4, 7), ("90", 7, 90)])
def test_range_param_chooses_the_period(admin_client, dataset, key, in_period, bars):
    html = dashboard_html(admin_client, f"?range={key}")

    assert total(html, "period") == str(in_period)
    assert html.count("<rect") == bars
    assert f'data-range="{key}" aria-current="page"' in html


@pytest.mark.parametrize(
    "value",
    ["", "abc", "-1", "0", "1e9", "30'", "all;drop", "%F0%9F%98%80", "<b>7</b>"],
)
def test_bad_range_falls_back_to_30_days(admin_client, dataset, value):
    html = dashboard_html(admin_client, f"?range={value}")

    assert total(html, "period") == "6"
    assert html.count("<rect") == 30


def test_dashboard_compares_with_the_previous_period(admin_client, dataset):
    seven = dashboard_html(admin_client, "?range=7")
    everything = dashboard_html(admin_client, "?range=all")

    assert "+300 % vs previous 7 days" in seven
    assert 'data-total="comparison"' not in everything
    assert everything.count("<rect") == 101


def test_imported_likes_are_a_figure_of_their_own(admin_client, dataset):
    html = dashboard_html(admin_client, "?range=all")

    assert total(html, "likes") == "9"
    assert 'data-total="imported">of which imported: 1<' in html
    # The chart draws the 8 dated likes, and says why the imported one is missing.
    bars = re.findall(r"<title>\d{4}-\d\d-\d\d: (\d+)</title>", html)
    assert sum(map(int, bars)) == 8
    assert "Imported likes came without dates" in html


def test_titles_are_shown_escaped_with_the_id(admin_client, dataset):
    Post.objects.filter(post_id="alpha").update(title="<script>alert(1)</script>")
    Post.objects.filter(post_id="beta").update(title="Café & más")
    alpha = Post.objects.get(post_id="alpha")

    html = dashboard_html(admin_client)
    page = admin_client.get(f"/admin/likes/post/{alpha.pk}/change/").content.decode()
    changelist = admin_client.get("/admin/likes/post/").content.decode()

    for text in (html, page, changelist):
        assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</a>" in html
    assert '<small class="likes-id">alpha</small>' in html
    assert "Café &amp; más</a>" in html
    assert ">gamma</a>" in html  # no title: the id
    start = page.index('<svg class="likes-chart"')
    svg = page[start : page.index("</svg>", start)]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;<br>" in changelist


def test_daily_csv_export_follows_the_period(admin_client, dataset):
    response = admin_client.get("/admin/likes/post/dashboard/daily.csv?range=7")

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    rows = response.content.decode().splitlines()
    today = dataset.date()
    assert rows[0] == "date,likes"
    assert len(rows) == 8
    assert rows[-1] == f"{today.isoformat()},3"
    assert rows[-4] == f"{today - datetime.timedelta(days=3)},1"
    assert sum(int(row.split(",")[1]) for row in rows[1:]) == 4


def test_daily_csv_export_with_a_bad_range_is_30_days(admin_client, dataset):
    response = admin_client.get("/admin/likes/post/dashboard/daily.csv?range=x")

    assert len(response.content.decode().splitlines()) == 31


def test_dashboard_links_to_the_csv_of_its_period(admin_client, dataset):
    html = dashboard_html(admin_client, "?range=90")

    assert 'href="/admin/likes/post/dashboard/daily.csv?range=90"' in html


def test_daily_csv_export_is_for_staff_only(client, django_user_model, dataset):
    url = "/admin/likes/post/dashboard/daily.csv"
    assert "/admin/login/" in client.get(url)["Location"]
    django_user_model.objects.create_user("visitor", password="x" * 20)
    client.login(username="visitor", password="x" * 20)
    assert "/admin/login/" in client.get(url)["Location"]


def test_staff_without_view_permission_gets_no_csv(client, django_user_model):
    django_user_model.objects.create_user("helper", password="x" * 20, is_staff=True)
    client.login(username="helper", password="x" * 20)

    response = client.get("/admin/likes/post/dashboard/daily.csv")

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/admin/"


def test_dashboard_shortcuts(admin_client, client):
    assert b"/admin/likes/post/dashboard/" in admin_client.get("/admin/").content
    response = client.get("/dashboard")
    assert response["Location"] == "/admin/likes/post/dashboard/"
    # Anonymous visitors are sent to the login page.
    assert "/admin/login/" in client.get("/admin/likes/post/dashboard/")["Location"]


def test_changelist_links_to_the_blog(admin_client, dataset, settings):
    settings.LIKES_SITE_URL = "https://blog.example.com/posts/{post_id}/"

    response = admin_client.get("/admin/likes/post/?q=alp")

    assert b"https://blog.example.com/posts/alpha/" in response.content
    assert b"beta" not in response.content


def test_post_page_shows_its_own_history_at_full_width(admin_client, dataset):
    post = Post.objects.get(post_id="alpha")
    url = f"/admin/likes/post/{post.pk}/change/"

    page = admin_client.get(url).content.decode()
    week = admin_client.get(f"{url}?range=7").content.decode()

    assert page.count("<rect") == 90
    # Outside the form's field rows, so the chart spans the page.
    assert page.index('<section class="likes-history"') > page.index("</fieldset>")
    assert 'href="?range=all#history"' in page
    assert week.count("<rect") == 7
    bars = re.findall(r"<title>\d{4}-\d\d-\d\d: (\d+)</title>", week)
    assert sum(map(int, bars)) == 3


def auth_links(html: str) -> bool:
    return "/admin/auth/user/" in html or "/admin/auth/group/" in html


def test_single_author_sees_no_users_and_groups(admin_client):
    assert not auth_links(admin_client.get("/admin/").content.decode())
    assert not auth_links(dashboard_html(admin_client))
    # Still there by URL.
    assert admin_client.get("/admin/auth/user/").status_code == HTTPStatus.OK
    assert admin_client.get("/admin/auth/").status_code == HTTPStatus.OK


def test_a_second_user_brings_users_and_groups_back(admin_client, django_user_model):
    django_user_model.objects.create_user("editor", password="x" * 20)

    assert auth_links(admin_client.get("/admin/").content.decode())
    assert auth_links(dashboard_html(admin_client))


def test_api_keys_list_shows_when_each_was_last_used(admin_client, now):
    used, _ = APIKey.objects.create_key(name="stats script")
    APIKey.objects.filter(pk=used.pk).update(last_used_at=now)
    APIKey.objects.create_key(name="spare")

    html = admin_client.get("/admin/likes/apikey/").content.decode()

    assert "column-last_used_at" in html
    assert ">Last used<" in html
    rows = {
        name: row
        for row in html.split("<tr")
        for name in ("stats script", "spare")
        if f">{name}<" in row
    }
    assert (
        formats.date_format(timezone.localtime(now), "DATETIME_FORMAT")
        in rows["stats script"]
    )
    assert "never" in rows["spare"]


def test_correcting_a_count_is_saved_and_logged(admin_client, dataset):
    post = Post.objects.get(post_id="alpha")

    response = admin_client.post(
        f"/admin/likes/post/{post.pk}/change/", {"likes": "42"}
    )

    assert response.status_code == HTTPStatus.FOUND
    assert Post.objects.get(pk=post.pk).likes == 42
    entry = LogEntry.objects.get(object_id=str(post.pk))
    assert "Likes" in entry.get_change_message()


def test_a_negative_count_is_refused(admin_client, dataset):
    post = Post.objects.get(post_id="alpha")

    admin_client.post(f"/admin/likes/post/{post.pk}/change/", {"likes": "-1"})

    assert Post.objects.get(pk=post.pk).likes == 5


def test_export_csv_action(admin_client, dataset):
    ids = [str(p.pk) for p in Post.objects.all()]

    response = admin_client.post(
        "/admin/likes/post/", {"action": "export_csv", "_selected_action": ids}
    )

    assert response["Content-Type"].startswith("text/csv")
    assert response.content.decode().splitlines() == [
        "post_id,likes",
        "alpha,5",
        "beta,3",
        "gamma,1",
    ]


def export_action(admin_client, posts):
    ids = [str(post.pk) for post in posts]
    return admin_client.post(
        "/admin/likes/post/", {"action": "export_csv", "_selected_action": ids}
    )


def test_export_csv_action_writes_what_likes_export_writes(admin_client, tmp_path):
    for post_id, likes in [("b", 2), ("a", 2), ("café-con-leña", 7), ("z", 0)]:
        Post.objects.create(post_id=post_id, likes=likes)
    path = tmp_path / "likes.csv"
    call_command("likes_export", "--format", "csv", "--output", str(path))

    response = export_action(admin_client, Post.objects.all())

    assert response["Content-Disposition"] == 'attachment; filename="likes.csv"'
    assert response.content == path.read_bytes()


def test_export_csv_action_exports_only_the_selected_posts(admin_client, dataset):
    response = export_action(
        admin_client, Post.objects.filter(post_id__in=["gamma", "alpha"])
    )

    assert response.content.decode() == "post_id,likes\nalpha,5\ngamma,1\n"


def test_merge_action_asks_for_the_target_then_moves_everything(admin_client, dataset):
    posts = Post.objects.filter(post_id__in=["alpha", "beta"])
    ids = [str(p.pk) for p in posts]

    confirm = admin_client.post(
        "/admin/likes/post/", {"action": "merge_posts", "_selected_action": ids}
    )
    assert b'name="target"' in confirm.content
    admin_client.post(
        "/admin/likes/post/",
        {
            "action": "merge_posts",
            "_selected_action": ids,
            "apply": "1",
            "target": "alpha-renamed",
        },
    )

    merged = Post.objects.get(post_id="alpha-renamed")
    assert merged.likes == 8
    assert merged.events.count() == 8
    assert not Post.objects.filter(post_id__in=["alpha", "beta"]).exists()
    assert LogEntry.objects.filter(object_id=str(merged.pk)).exists()


def _generate(posts: int, likes: int):
    """Fill the tables with SQL: the ORM would take minutes for a million rows."""
    post_table = connection.ops.quote_name(Post._meta.db_table)
    like_table = connection.ops.quote_name(Like._meta.db_table)
    now = timezone.now()
    counter = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"{counter} INSERT INTO {post_table} "
            "(post_id, likes, imported, created_at) "
            "SELECT 'post-' || x, x %% 997, 0, %s FROM n",
            [posts, connection.ops.adapt_datetimefield_value(now)],
        )
        cursor.execute(f"SELECT MIN(id) FROM {post_table}")
        (first,) = cursor.fetchone()
        per_day = likes // 90
        for day in range(90):
            moment = now - datetime.timedelta(days=day, minutes=5)
            cursor.execute(
                f"{counter} INSERT INTO {like_table} "
                "(post_id, created_at, visitor_hash) "
                "SELECT %s + (x * 7919 + %s) %% %s, %s, '' FROM n",
                [
                    per_day,
                    first,
                    day,
                    posts,
                    connection.ops.adapt_datetimefield_value(moment),
                ],
            )


def test_dashboard_stays_cheap_with_100k_posts_and_1m_likes(
    admin_client, django_assert_max_num_queries
):
    _generate(posts=100_000, likes=1_000_000)
    assert Like.objects.count() == 999_990

    # A constant number of queries (the sites' list among them), whatever the size.
    with django_assert_max_num_queries(11):
        dashboard_page = admin_client.get("/admin/likes/post/dashboard/?range=90")
    with django_assert_max_num_queries(12):
        changelist = admin_client.get("/admin/likes/post/")

    assert dashboard_page.status_code == changelist.status_code == HTTPStatus.OK
    assert b'data-total="posts"><strong>100000</strong>' in dashboard_page.content
    assert dashboard_page.content.decode().count("<rect") == 90


@pytest.fixture
def reacted(dataset, settings):
    """The dataset, with reactions on alpha (some old) and on beta."""
    from likes.models import PostReaction

    settings.LIKES_REACTIONS = "👍,🎉"
    now = dataset
    alpha, beta = Post.objects.get(post_id="alpha"), Post.objects.get(post_id="beta")
    for post, kind, days in [
        (alpha, "👍", 0),
        (alpha, "👍", 1),
        (alpha, "🎉", 45),
        (beta, "👍", 2),
    ]:
        Like.objects.create(
            post=post, kind=kind, created_at=now - datetime.timedelta(days=days)
        )
    for post, kind, count in [(alpha, "👍", 2), (alpha, "🎉", 1), (beta, "👍", 1)]:
        PostReaction.objects.create(post=post, kind=kind, count=count)
    return now


def reaction_rows(html: str) -> dict[str, tuple[int, int]]:
    rows = re.findall(
        r'<tr data-reaction="([^"]+)"><td>[^<]+</td><td class="num">(\d+)</td>'
        r'<td class="num">(\d+)</td>',
        html,
    )
    return {kind: (int(total), int(recent)) for kind, total, recent in rows}


def test_reactions_are_not_likes_and_have_their_own_table_and_chart(
    admin_client, reacted
):
    html = dashboard_html(admin_client)

    # The likes' figures are those without reactions.
    assert total(html, "period") == "6"
    assert reaction_rows(html) == {"👍": (3, 3), "🎉": (1, 0)}
    assert "Reactions per day, last 30 days" in html
    assert html.count("<rect") == 60  # the likes' chart and the reactions'

    post = Post.objects.get(post_id="alpha")
    page = admin_client.get(f"/admin/likes/post/{post.pk}/change/?range=7")
    page = page.content.decode()
    assert reaction_rows(page) == {"👍": (2, 2), "🎉": (1, 0)}
    bars = re.findall(r"<title>\d{4}-\d\d-\d\d: (\d+)</title>", page)
    assert sum(map(int, bars)) == 3 + 2  # its likes, then its reactions, in 7 days


def test_without_reactions_the_dashboard_has_no_reactions_section(
    admin_client, dataset
):
    assert 'id="reactions"' not in dashboard_html(admin_client)
