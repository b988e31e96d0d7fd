import datetime
from http import HTTPStatus

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from likes import dashboard
from likes.models import Like, Post

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    """Three posts and likes at known ages."""
    now = timezone.now()
    a = Post.objects.create(post_id="alpha", likes=5, last_liked_at=now)
    b = Post.objects.create(post_id="beta", likes=3)
    Post.objects.create(post_id="gamma", likes=1)
    ages = {a: [0, 0, 3, 20, 60], b: [0, 10, 100]}
    for post, days in ages.items():
        for d in days:
            Like.objects.create(
                post=post, created_at=now - datetime.timedelta(days=d, minutes=1)
            )
    return now


def test_totals_match_a_known_dataset(dataset):
    totals = dashboard.totals(now=dataset)

    assert totals.likes == 9
    assert totals.posts == 3
    assert totals.last_7_days == 4
    assert totals.last_30_days == 6
    assert totals.last_7_days >= totals.today >= 2


def test_daily_likes_covers_90_days_oldest_first(dataset):
    series = dashboard.daily_likes()

    assert len(series) == 90
    assert series[-1][0] == timezone.localdate()
    assert sum(n for _, n in series) == 7  # the 100-day-old like is outside
    assert series[0][0] < series[-1][0]


def test_daily_likes_of_one_post(dataset):
    series = dashboard.daily_likes(post=Post.objects.get(post_id="beta"))

    assert sum(n for _, n in series) == 2


def test_svg_chart_has_one_bar_per_day_and_escapes_its_title():
    today = datetime.date(2026, 1, 31)
    series = [(today - datetime.timedelta(days=i), i % 3) for i in range(90)][::-1]

    svg = dashboard.svg_chart(series, title="<b>likes</b>")

    assert svg.count("<rect") == 90
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "2026-01-31" in svg


def test_dashboard_page_shows_totals_chart_and_top_posts(admin_client, dataset):
    response = admin_client.get("/admin/likes/post/dashboard/")

    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert '<div class="likes-total" data-total="likes"><strong>9</strong>' in html
    assert 'data-total="posts"><strong>3</strong>' in html
    assert html.count("<rect") == 90
    assert html.index(">alpha<") < html.index(">beta<") < html.index(">gamma<")


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


def test_post_page_shows_its_own_history(admin_client, dataset):
    post = Post.objects.get(post_id="alpha")

    response = admin_client.get(f"/admin/likes/post/{post.pk}/change/")

    assert response.status_code == HTTPStatus.OK
    assert response.content.decode().count("<rect") == 90


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

    with django_assert_max_num_queries(10):
        dashboard_page = admin_client.get("/admin/likes/post/dashboard/")
    with django_assert_max_num_queries(12):
        changelist = admin_client.get("/admin/likes/post/")

    assert dashboard_page.status_code == changelist.status_code == HTTPStatus.OK
    assert b'data-total="posts"><strong>100000</strong>' in dashboard_page.content
    assert dashboard_page.content.decode().count("<rect") == 90
