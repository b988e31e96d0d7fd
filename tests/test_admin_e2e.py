"""The admin dashboard in a real browser: log in, pick a period, read the
totals and the chart, in the light and the dark theme.

The demo site built here (``admin_server``, ``demo_posts``) also feeds
scripts/screenshots.py, which draws the README's pictures from it.
"""

import datetime
import random
import re
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.live import CHROMIUM, CHROMIUM_ARGS, gunicorn, manage, project_env

ADMIN_USER = "author"
ADMIN_PASSWORD = "a-long-admin-password-42"
# Everything the dashboard writes, with the parts whose contrast is checked.
TEXT_SELECTORS = {
    "headline numbers": ".likes-total strong",
    "figure labels": ".likes-total",
    "figure notes": ".likes-total .likes-note",
    "period links": ".likes-range a",
    "table text": ".likes-top th, .likes-top td, .likes-top a, .likes-top .likes-id",
    "chart axis text": "svg.likes-chart .likes-axis text",
    "chart note": ".likes-chart-note",
    "headings": "#content-main h2",
}


@dataclass
class DemoPost:
    post_id: str
    title: str
    liked_at: list[datetime.datetime] = field(default_factory=list)
    imported: int = 0
    pk: int = 0

    @property
    def likes(self) -> int:
        return len(self.liked_at) + self.imported


def demo_posts(now: datetime.datetime, *, seed: int = 7) -> list[DemoPost]:
    """A small blog's year and a half of likes, the same for the same ``now``.

    Older posts also carry likes imported from the previous service (no dates).
    """
    rng = random.Random(seed)
    posts = [
        # post id, title, published (days ago), likes with dates, imported
        ("hola-mundo", "Hola, mundo", 520, 70, 140),
        ("cafe-con-lena", "Café con leña: notas de invierno", 400, 55, 60),
        ("static-sites-and-likes", "Static sites & a like button", 200, 60, 0),
        ("bicicleta-por-asturias", "En bici por Asturias", 120, 34, 0),
        ("self-hosting-checklist", "A self-hosting checklist", 45, 41, 0),
        ("receta-de-fabada", "Receta de fabada", 16, 19, 0),
        ("release-notes", "", 5, 6, 0),
    ]
    result = []
    for post_id, title, published, likes, imported in posts:
        post = DemoPost(post_id=post_id, title=title, imported=imported)
        for _ in range(likes):
            # Most likes come in the weeks after publication, a few much later.
            if rng.random() < 0.7:
                after = rng.expovariate(1 / min(20, published / 3))
            else:
                after = rng.uniform(0, published)
            age = max(0.05, published - min(after, published))
            post.liked_at.append(now - datetime.timedelta(days=age))
        result.append(post)
    return result


def seed(db_path: Path, posts: list[DemoPost]) -> None:
    """Write the posts and their like events straight into the SQLite file."""
    with sqlite3.connect(db_path) as db:
        for post in posts:
            first = min(post.liked_at, default=datetime.datetime.now(datetime.UTC))
            last = max(post.liked_at, default=None)
            cursor = db.execute(
                "INSERT INTO likes_post "
                "(post_id, title, likes, imported, created_at, last_liked_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    post.post_id,
                    post.title,
                    post.likes,
                    post.imported,
                    first.isoformat(" "),
                    last.isoformat(" ") if last else None,
                ],
            )
            post.pk = cursor.lastrowid
            db.executemany(
                "INSERT INTO likes_like (post_id, created_at, visitor_hash) "
                "VALUES (?, ?, '')",
                [(post.pk, moment.isoformat(" ")) for moment in post.liked_at],
            )


@contextmanager
def admin_server(data_dir: Path, posts: list[DemoPost]):
    """gunicorn on loopback over a fresh data dir holding ``posts`` and one author."""
    env = project_env(
        DATA_DIR=str(data_dir),
        STATIC_ROOT=str(data_dir / "static"),
        SECURE_COOKIES="false",  # plain HTTP on loopback
        TIME_ZONE="UTC",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
    )
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    manage(
        "createsuperuser",
        "--noinput",
        "--username",
        ADMIN_USER,
        "--email",
        "author@example.com",
        env=env,
    )
    seed(data_dir / "likes.sqlite3", posts)
    with gunicorn(env, workers=1) as server:
        yield server


def log_in(page, base_url: str, path: str = "/dashboard") -> None:
    page.goto(f"{base_url}{path}")
    page.fill("#id_username", ADMIN_USER)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/likes/post/dashboard/")


# WCAG 2 contrast of every element's text against the background it is drawn
# on: the first ancestor with an opaque background colour.
CONTRAST_JS = """(selectors) => {
  const rgba = (value) => {
    const m = value.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const bg = rgba(getComputedStyle(node).backgroundColor);
      if (bg && bg[3] > 0) return bg;
    }
    return [255, 255, 255, 1];
  };
  const out = {};
  for (const [name, selector] of Object.entries(selectors)) {
    out[name] = [...document.querySelectorAll(selector)]
      .filter((el) => el.textContent.trim() && el.getClientRects().length)
      .map((el) => {
        const style = getComputedStyle(el);
        const svg = el instanceof SVGElement;
        const fg = rgba(svg ? style.fill : style.color);
        const bg = background(el);
        const mixed = fg.slice(0, 3).map((v, i) => v * fg[3] + bg[i] * (1 - fg[3]));
        const [a, b] = [lum(mixed), lum(bg)].sort((x, y) => y - x);
        return {
          text: el.textContent.trim().slice(0, 40),
          fg: svg ? style.fill : style.color,
          bg: `rgb(${bg.slice(0, 3).join(", ")})`,
          ratio: (a + 0.05) / (b + 0.05),
        };
      });
  }
  return out;
}"""


def contrast_report(page) -> dict[str, list[dict]]:
    return page.evaluate(CONTRAST_JS, TEXT_SELECTORS)


def in_last_days(posts: list[DemoPost], days: int, *, offset: int = 0) -> int:
    """Like events on the ``days`` UTC dates ending ``offset`` days before today."""
    today = datetime.datetime.now(datetime.UTC).date()
    last = today - datetime.timedelta(days=offset)
    first = last - datetime.timedelta(days=days - 1)
    return sum(
        first <= moment.date() <= last for post in posts for moment in post.liked_at
    )


# --- the tests ------------------------------------------------------------------

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def playwright_api():
    from tests.conftest import need

    need(
        Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)"
    )
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def demo():
    return demo_posts(datetime.datetime.now(datetime.UTC))


@pytest.fixture(scope="module")
def server(playwright_api, demo, tmp_path_factory):
    with admin_server(tmp_path_factory.mktemp("admin"), demo) as live:
        yield live


@pytest.fixture(scope="module")
def browser(playwright_api, server):
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def signed_in(browser, server):
    """The author's session, signed in once: the login is rate-limited per IP."""
    context = browser.new_context()
    log_in(context.new_page(), server.base_url)
    state = context.storage_state()
    context.close()
    return state


def author_page(browser, signed_in, *, scheme="light"):
    context = browser.new_context(
        viewport={"width": 1200, "height": 900},
        color_scheme=scheme,
        storage_state=signed_in,
    )
    return context.new_page()


def test_author_logs_in_and_reads_the_dashboard(
    playwright_api, server, browser, demo, tmp_path
):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    failed: list[str] = []
    page.on(
        "response",
        lambda r: (
            failed.append(r.url)
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    log_in(page, server.base_url)

    expect = playwright_api.expect
    expect(page.locator('[data-total="likes"] strong')).to_have_text(
        str(sum(post.likes for post in demo))
    )
    expect(page.locator('[data-total="imported"]')).to_have_text(
        f"of which imported: {sum(post.imported for post in demo)}"
    )
    expect(page.locator('[data-total="posts"] strong')).to_have_text(str(len(demo)))
    expect(page.locator("svg.likes-chart rect")).to_have_count(30)
    first_row = page.locator(".likes-top tbody tr").first
    expect(first_row).to_contain_text("Hola, mundo")
    expect(first_row.locator(".likes-id")).to_have_text("hola-mundo")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    page.close()

    # The admin's own CSP must not block the admin's scripts and styles.
    assert errors == []
    assert failed == []


def test_period_selector_changes_the_totals_as_the_data_says(
    playwright_api, server, browser, signed_in, demo
):
    page = author_page(browser, signed_in)
    page.goto(f"{server.base_url}/admin/likes/post/dashboard/")
    expect = playwright_api.expect
    period = page.locator('[data-total="period"] strong')
    expect(period).to_have_text(str(in_last_days(demo, 30)))

    page.click('.likes-range a[data-range="7"]')

    page.wait_for_url("**/dashboard/?range=7")
    week, before = in_last_days(demo, 7), in_last_days(demo, 7, offset=7)
    expect(period).to_have_text(str(week))
    expect(page.locator('.likes-range a[aria-current="page"]')).to_have_text("7 days")
    expect(page.locator("svg.likes-chart rect")).to_have_count(7)
    if before:
        change = round(100 * (week - before) / before)
        sign = "±" if change == 0 else "+" if change > 0 else "−"
        expected = f"{sign}{abs(change)} % vs previous 7 days"
        expect(page.locator('[data-total="comparison"]')).to_have_text(expected)
    bars = page.locator("svg.likes-chart rect title").all_text_contents()
    assert sum(int(text.rsplit(": ", 1)[1]) for text in bars) == week

    page.click('.likes-range a[data-range="all"]')

    page.wait_for_url("**/dashboard/?range=all")
    expect(period).to_have_text(str(sum(len(post.liked_at) for post in demo)))
    expect(page.locator('[data-total="comparison"]')).to_have_count(0)
    page.context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_dashboard_text_is_readable_in_both_themes(server, browser, signed_in, scheme):
    page = author_page(browser, signed_in, scheme=scheme)
    page.goto(f"{server.base_url}/admin/likes/post/dashboard/?range=90")
    body = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert body == ("rgb(18, 18, 18)" if scheme == "dark" else "rgb(255, 255, 255)")

    report = contrast_report(page)

    for name, items in report.items():
        assert items, f"no {name} on the page"
        low = [item for item in items if item["ratio"] < 4.5]
        assert low == [], f"{name} below 4.5:1 in the {scheme} theme: {low}"
    page.context.close()


def test_dark_theme_toggle_keeps_the_dashboard_readable(server, browser, signed_in):
    page = author_page(browser, signed_in)
    page.goto(f"{server.base_url}/admin/likes/post/dashboard/")
    # The admin's toggle cycles auto → dark (light is the system's here).
    page.locator("button.theme-toggle").first.click()
    page.wait_for_function("() => document.documentElement.dataset.theme === 'dark'")
    # Colours fade to the new theme (the admin's transitions): read them after.
    page.wait_for_function("() => document.getAnimations().length === 0")

    report = contrast_report(page)

    low = [i for items in report.values() for i in items if i["ratio"] < 4.5]
    assert low == []
    assert all(report.values())
    page.context.close()


def test_post_page_shows_the_title_and_a_full_width_chart(
    playwright_api, server, browser, signed_in, demo
):
    post = demo[1]
    page = author_page(browser, signed_in)
    page.goto(f"{server.base_url}/admin/likes/post/{post.pk}/change/")

    expect = playwright_api.expect
    expect(page.locator(".field-title .readonly")).to_have_text(post.title)
    chart = page.locator("svg.likes-chart")
    expect(chart.locator("rect")).to_have_count(90)
    expect(chart).to_have_attribute("aria-label", re.compile(re.escape(post.title)))
    chart_width = chart.bounding_box()["width"]
    content_width = page.locator("#content-main").bounding_box()["width"]
    assert chart_width >= 0.95 * content_width
    # Axis labels do not run into each other.
    labels = [text.bounding_box() for text in chart.locator("text.likes-x").all()]
    assert len(labels) >= 3
    for left, right in zip(labels, labels[1:], strict=False):
        assert left["x"] + left["width"] < right["x"]
    lowest_y_label = chart.locator("text.likes-y").first.bounding_box()
    assert lowest_y_label["y"] + lowest_y_label["height"] <= labels[0]["y"]
    page.context.close()
