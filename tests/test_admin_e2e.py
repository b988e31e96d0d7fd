"""The admin dashboard in a real browser: log in, read the totals, see the chart."""

import datetime
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import need
from tests.live import gunicorn, manage, project_env
from tests.test_widget_e2e import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.live


def seed(db_path: Path):
    now = datetime.datetime.now(datetime.UTC)
    with sqlite3.connect(db_path) as db:
        for n, (post_id, likes) in enumerate(
            [("hola-mundo", 12), ("segundo-post", 7), ("third", 2)]
        ):
            db.execute(
                "INSERT INTO likes_post (post_id, likes, imported, created_at) "
                "VALUES (?, ?, 0, ?)",
                [post_id, likes, now.isoformat(" ")],
            )
            pk = db.execute("SELECT last_insert_rowid()").fetchone()[0]
            for i in range(likes):
                moment = now - datetime.timedelta(days=(i * 7 + n) % 80, hours=1)
                db.execute(
                    "INSERT INTO likes_like (post_id, created_at, visitor_hash) "
                    "VALUES (?, ?, '')",
                    [pk, moment.isoformat(" ")],
                )


def test_author_logs_in_and_reads_the_dashboard(tmp_path):
    need(
        Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)"
    )
    playwright_api = pytest.importorskip("playwright.sync_api")
    env = project_env(
        DATA_DIR=str(tmp_path),
        STATIC_ROOT=str(tmp_path / "static"),
        SECURE_COOKIES="false",  # plain HTTP on loopback
        DJANGO_SUPERUSER_PASSWORD="a-long-admin-password-42",
    )
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    manage(
        "createsuperuser",
        "--noinput",
        "--username",
        "author",
        "--email",
        "author@example.com",
        env=env,
    )
    seed(tmp_path / "likes.sqlite3")

    with gunicorn(env, workers=1) as server, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
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
        page.goto(f"{server.base_url}/dashboard")
        page.fill("#id_username", "author")
        page.fill("#id_password", "a-long-admin-password-42")
        page.click("input[type=submit]")

        page.wait_for_url("**/admin/likes/post/dashboard/")
        expect = playwright_api.expect
        expect(page.locator('[data-total="likes"] strong')).to_have_text("21")
        expect(page.locator('[data-total="posts"] strong')).to_have_text("3")
        expect(page.locator("svg.likes-chart rect")).to_have_count(90)
        expect(page.locator(".likes-top tbody tr").first).to_contain_text("hola-mundo")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        browser.close()

    # The admin's own CSP must not block the admin's scripts and styles.
    assert errors == []
    assert failed == []
    print(f"screenshot: {tmp_path / 'dashboard.png'}")
