"""The Hugo like button end to end: a real Hugo site, gunicorn, and Chromium."""

import functools
import http.server
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from tests.conftest import need
from tests.live import BASE_DIR, free_port, gunicorn, manage, project_env

pytestmark = pytest.mark.live

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
POSTS = {"first-post": "Primer artículo", "café-con-leña": "Café con leña"}

LIST_TEMPLATE = """<!doctype html><html lang="{{ site.Language.Lang }}">
<head><meta charset="utf-8"><title>Blog</title></head><body>
<ul>{{ range .Site.RegularPages }}
<li><a href="{{ .RelPermalink }}">{{ .Title }}</a>
  {{ partial "likes/count.html" . }}</li>
{{ end }}</ul>
{{ partial "likes/script.html" . }}
</body></html>"""
SINGLE_TEMPLATE = """<!doctype html><html lang="{{ site.Language.Lang }}">
<head><meta charset="utf-8"><title>{{ .Title }}</title></head><body>
<h1>{{ .Title }}</h1>{{ .Content }}
{{ partial "likes/button.html" . }}
</body></html>"""


def build_site(tmp_path: Path, site_url: str, api_url: str) -> Path:
    need(
        shutil.which("hugo") is not None, "hugo is not installed (apt-get install hugo)"
    )
    site = tmp_path / "site"
    (site / "content/posts").mkdir(parents=True)
    (site / "layouts/_default").mkdir(parents=True)
    shutil.copytree(BASE_DIR / "likes/hugo/layouts/partials", site / "layouts/partials")
    (site / "config.toml").write_text(
        f'baseURL = "{site_url}/"\nlanguageCode = "es"\ndefaultContentLanguage = "es"\n'
        f'title = "Blog"\n[params.likes]\napi = "{api_url}"\n'
    )
    (site / "layouts/_default/list.html").write_text(LIST_TEMPLATE)
    (site / "layouts/index.html").write_text(LIST_TEMPLATE)
    (site / "layouts/_default/single.html").write_text(SINGLE_TEMPLATE)
    for slug, title in POSTS.items():
        (site / f"content/posts/{slug}.md").write_text(
            f'---\ntitle: "{title}"\nslug: "{slug}"\n---\nHola.\n'
        )
    import subprocess

    subprocess.run(
        ["hugo", "--quiet", "-s", str(site)], check=True, capture_output=True
    )
    (site / "public/blank.html").write_text("<!doctype html><title>blank</title>")
    return site / "public"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory: Path, port: int):
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def count_in_db(data_dir: Path, post_id: str) -> int:
    with sqlite3.connect(data_dir / "likes.sqlite3") as db:
        row = db.execute(
            "SELECT likes FROM likes_post WHERE post_id = ?", [post_id]
        ).fetchone()
    return row[0] if row else 0


def test_like_button_in_a_real_hugo_site(tmp_path):
    need(
        Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)"
    )
    playwright_api = pytest.importorskip("playwright.sync_api")

    site_port = free_port()
    site_url = f"http://127.0.0.1:{site_port}"
    data_dir = tmp_path / "data"
    env = project_env(
        DATA_DIR=str(data_dir),
        STATIC_ROOT=str(tmp_path / "static"),
        CORS_ORIGINS=site_url,
    )
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)

    with gunicorn(env, workers=2) as api:
        public = build_site(tmp_path, site_url, api.base_url)
        site = serve(public, site_port)
        errors: list[str] = []
        try:
            with playwright_api.sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS
                )
                visitor = browser.new_context()
                page = visitor.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                button = page.locator("button[data-likes-post]")
                count = button.locator("[data-likes-count]")

                # A count appears; a click makes it +1 on screen and in the database.
                page.goto(f"{site_url}/blank.html")  # same origin, no widget
                blank_globals = set(page.evaluate("() => Object.keys(window)"))
                page.goto(f"{site_url}/posts/first-post/")
                playwright_api.expect(count).to_have_text("0")
                page_globals = set(page.evaluate("() => Object.keys(window)"))
                assert page_globals - blank_globals == set()  # the widget adds none
                playwright_api.expect(button).to_have_attribute("aria-pressed", "false")
                # The site is in Spanish: so are the labels.
                playwright_api.expect(button).to_have_attribute(
                    "aria-label", "Me gusta"
                )
                playwright_api.expect(count).to_have_attribute("aria-live", "polite")
                button.click()
                playwright_api.expect(count).to_have_text("1")
                playwright_api.expect(button).to_have_attribute("aria-pressed", "true")
                playwright_api.expect(button).to_have_attribute(
                    "aria-label", "Ya no me gusta"
                )
                page.wait_for_function(
                    "() => localStorage.getItem('likes:first-post') !== '1' && "
                    "(localStorage.getItem('likes-count:first-post') || '')"
                    ".startsWith('1,')"
                )
                assert sorted(page.evaluate("() => Object.keys(localStorage)")) == [
                    "likes-count:first-post",
                    "likes:first-post",
                ]
                assert count_in_db(data_dir, "first-post") == 1

                # Reload keeps the liked state; a second click unlikes.
                page.reload()
                playwright_api.expect(count).to_have_text("1")
                playwright_api.expect(button).to_have_attribute("aria-pressed", "true")
                with page.expect_response(lambda r: r.request.method == "DELETE"):
                    button.click()
                playwright_api.expect(count).to_have_text("0")
                assert count_in_db(data_dir, "first-post") == 0

                # Keyboard: Enter on the focused button likes again.
                button.focus()
                with page.expect_response(lambda r: r.request.method == "POST"):
                    page.keyboard.press("Enter")
                playwright_api.expect(count).to_have_text("1")

                # The non-ASCII slug works and a new visitor can like too.
                other = browser.new_context(user_agent="Another Visitor/1.0")
                page2 = other.new_page()
                page2.on("pageerror", lambda exc: errors.append(str(exc)))
                page2.goto(f"{site_url}/posts/first-post/")
                button2 = page2.locator("button[data-likes-post]")
                playwright_api.expect(button2).to_have_attribute(
                    "aria-pressed", "false"
                )
                with page2.expect_response(lambda r: r.request.method == "POST"):
                    button2.click()
                playwright_api.expect(
                    button2.locator("[data-likes-count]")
                ).to_have_text("2")
                assert count_in_db(data_dir, "first-post") == 2
                page2.goto(f"{site_url}/posts/café-con-leña/")
                with page2.expect_response(lambda r: r.request.method == "POST"):
                    page2.locator("button[data-likes-post]").click()
                assert count_in_db(data_dir, "café-con-leña") == 1

                # The list shows both counts from one batch request.
                requests: list[str] = []
                page2.on("request", lambda r: requests.append(r.url))
                page2.goto(f"{site_url}/")
                playwright_api.expect(
                    page2.locator('[data-likes-count="first-post"]')
                ).to_have_text("2")
                playwright_api.expect(
                    page2.locator("[data-likes-count^='caf']")
                ).to_have_text("1")
                api_calls = [
                    u for u in requests if u.startswith(api.base_url + "/likes")
                ]
                assert len(api_calls) == 1, api_calls
                assert "/likes/?ids=" in api_calls[0]

                # Client-side navigation adds buttons later: they are picked up.
                page2.evaluate(
                    """() => document.body.insertAdjacentHTML('beforeend',
                        '<button type="button" id="late" data-likes-post="first-post">'
                        + '<span data-likes-count></span></button>')"""
                )
                late = page2.locator("#late")
                playwright_api.expect(late.locator("[data-likes-count]")).to_have_text(
                    "2"
                )
                playwright_api.expect(late).to_have_attribute("aria-pressed", "true")
                page.goto(f"{site_url}/posts/first-post/")
                playwright_api.expect(count).to_have_text("2")
                page.screenshot(
                    path=str(tmp_path / "like-button.png"),
                    clip={"x": 0, "y": 0, "width": 360, "height": 160},
                )
                page2.screenshot(path=str(tmp_path / "list.png"))

                api.terminate()  # the likes service goes away
                api.wait(timeout=30)
                warnings: list[str] = []
                page.on(
                    "console",
                    lambda m: warnings.append(m.text) if m.type == "warning" else None,
                )
                page.goto(f"{site_url}/posts/first-post/")
                playwright_api.expect(button).to_be_visible()
                playwright_api.expect(count).to_have_text("0")
                button.click()  # still usable, never throws
                page.screenshot(path=str(tmp_path / "api-down.png"))
                browser.close()
        finally:
            site.shutdown()

    assert errors == []
    assert len([w for w in warnings if w.startswith("likes:")]) == 1
    print(f"screenshots in {tmp_path}")
