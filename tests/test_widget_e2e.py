"""The Hugo like button end to end: a real Hugo site, gunicorn, and Chromium.

One likes service, one Hugo build and one browser serve the whole module; each
test is a fresh visitor (a browser context of its own) liking posts of its own.
"""

import functools
import http.server
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from tests import live
from tests.conftest import need
from tests.live import (
    BASE_DIR,
    CHROMIUM,
    CHROMIUM_ARGS,
    free_port,
    gunicorn,
    manage,
    project_env,
)

pytestmark = pytest.mark.live

POSTS = {
    "first-post": "Primer artículo",
    "café-con-leña": "Café con leña",
    "popular-post": "Muy leído",
    "down-post": "Sin servicio",
    "limited-post": "Demasiados clics",
    "repeat-post": "Otra vez",
    "title-post": "Título <b>con</b> marcas & más",
    "motion-post": "Animación",
    "nojs-post": "Sin <i>JavaScript</i> & más",
    "refused-post": "Desde otro sitio",
    "form-post": "Con JavaScript",
}
# Low enough for one test to reach quickly, high enough for the others never to.
POST_RATE = "15/5s"

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
    # The likes component as a theme: its partials, i18n and the widget's
    # assets (bundled into the site by Hugo Pipes).
    shutil.copytree(BASE_DIR / "likes/hugo", site / "themes/likes")
    (site / "config.toml").write_text(
        f'baseURL = "{site_url}/"\nlanguageCode = "es"\ndefaultContentLanguage = "es"\n'
        f'title = "Blog"\ntheme = "likes"\n[params.likes]\napi = "{api_url}"\n'
    )
    (site / "layouts/_default/list.html").write_text(LIST_TEMPLATE)
    (site / "layouts/index.html").write_text(LIST_TEMPLATE)
    (site / "layouts/_default/single.html").write_text(SINGLE_TEMPLATE)
    for slug, title in POSTS.items():
        (site / f"content/posts/{slug}.md").write_text(
            f"---\ntitle: {json.dumps(title)}\nslug: {json.dumps(slug)}\n---\nHola.\n"
        )
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


def title_in_db(data_dir: Path, post_id: str) -> str | None:
    with sqlite3.connect(data_dir / "likes.sqlite3") as db:
        row = db.execute(
            "SELECT title FROM likes_post WHERE post_id = ?", [post_id]
        ).fetchone()
    return row[0] if row else None


class Service:
    """The likes service on a port of its own, so that it can stop and start
    again where the site expects it, as in a crash or a deploy."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._running: ExitStack | None = None

    def start(self):
        stack = ExitStack()
        with pytest.MonkeyPatch.context() as patch:
            # live.gunicorn binds the port free_port() gives it.
            patch.setattr(live, "free_port", lambda: self.port)
            server = stack.enter_context(gunicorn(self.env, workers=2))
        assert server.base_url == self.base_url
        self._server = server
        self._running = stack

    def stop(self):
        if self._running is not None:
            # A quick shutdown, as in a crash: open keep-alive connections
            # would hold a graceful one for seconds.
            self._server.send_signal(signal.SIGQUIT)
            self._server.wait(timeout=30)
            self._running.close()
            self._running = None


@dataclass
class Stack:
    service: Service
    env: dict[str, str]
    data_dir: Path
    site_url: str
    foreign_url: str
    browser: object
    expect: object


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    need(
        Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)"
    )
    playwright_api = pytest.importorskip("playwright.sync_api")
    tmp_path = tmp_path_factory.mktemp("widget")
    site_port, foreign_port = free_port(), free_port()
    site_url = f"http://127.0.0.1:{site_port}"
    data_dir = tmp_path / "data"
    env = project_env(
        DATA_DIR=str(data_dir),
        STATIC_ROOT=str(tmp_path / "static"),
        CORS_ORIGINS=site_url,
        LIKES_POST_RATE=POST_RATE,
    )
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    service = Service(env)
    with ExitStack() as cleanup:
        service.start()
        cleanup.callback(service.stop)
        public = build_site(tmp_path, site_url, service.base_url)
        for port in (site_port, foreign_port):
            server = serve(public, port)
            cleanup.callback(server.server_close)
            cleanup.callback(server.shutdown)
        pw = cleanup.enter_context(playwright_api.sync_playwright())
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        cleanup.callback(browser.close)
        yield Stack(
            service=service,
            env=env,
            data_dir=data_dir,
            site_url=site_url,
            foreign_url=f"http://127.0.0.1:{foreign_port}",
            browser=browser,
            expect=playwright_api.expect,
        )


@dataclass
class Visitor:
    page: object
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def said(self, kind: str) -> list[str]:
        """The widget's console messages of one kind ("error", "warning")."""
        return [
            text
            for type_, text in self.console
            if type_ == kind and text.startswith("likes:")
        ]


@pytest.fixture
def visitor(stack):
    """Open a page as a new visitor (own storage and cache); no page errors."""
    contexts, visitors = [], []

    def open_page(url: str | None = None, **options) -> Visitor:
        context = stack.browser.new_context(**options)
        contexts.append(context)
        seen = Visitor(context.new_page())
        seen.page.on("console", lambda m: seen.console.append((m.type, m.text)))
        seen.page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
        visitors.append(seen)
        if url:
            seen.page.goto(url)
        return seen

    yield open_page
    for context in contexts:
        context.close()
    assert [seen.errors for seen in visitors if seen.errors] == []


def wait_for_message(seen: Visitor, kind: str) -> list[str]:
    """The widget's messages of a kind, once there is one (it probes first)."""
    deadline = time.monotonic() + 5
    while not seen.said(kind) and time.monotonic() < deadline:
        seen.page.wait_for_timeout(50)
    return seen.said(kind)


def storage(page) -> dict[str, str]:
    return page.evaluate("() => Object.assign({}, localStorage)")


def test_like_button_in_a_real_hugo_site(stack, visitor, tmp_path):
    expect, site_url, data_dir = stack.expect, stack.site_url, stack.data_dir
    first = visitor()
    page = first.page
    button = page.locator("button[data-likes-post]")
    count = button.locator("[data-likes-count]")

    # A count appears; a click makes it +1 on screen and in the database.
    page.goto(f"{site_url}/blank.html")  # same origin, no widget
    blank_globals = set(page.evaluate("() => Object.keys(window)"))
    page.goto(f"{site_url}/posts/first-post/")
    expect(count).to_have_text("0")
    page_globals = set(page.evaluate("() => Object.keys(window)"))
    assert page_globals - blank_globals == set()  # the widget adds none
    expect(button).to_have_attribute("aria-pressed", "false")
    # The site is in Spanish: so are the labels.
    expect(button).to_have_attribute("aria-label", "Me gusta")
    expect(count).to_have_attribute("aria-live", "polite")
    button.click()
    expect(count).to_have_text("1")
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(button).to_have_attribute("aria-label", "Ya no me gusta")
    page.wait_for_function(
        "() => localStorage.getItem('likes:first-post') !== '1' && "
        "(localStorage.getItem('likes-count:first-post') || '').startsWith('1,')"
    )
    assert sorted(storage(page)) == ["likes-count:first-post", "likes:first-post"]
    assert count_in_db(data_dir, "first-post") == 1

    # Reload keeps the liked state; a second click unlikes.
    page.reload()
    expect(count).to_have_text("1")
    expect(button).to_have_attribute("aria-pressed", "true")
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        button.click()
    expect(count).to_have_text("0")
    assert count_in_db(data_dir, "first-post") == 0

    # Keyboard: Enter on the focused button likes again.
    button.focus()
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.keyboard.press("Enter")
    expect(count).to_have_text("1")

    # The non-ASCII slug works and a new visitor can like too.
    page2 = visitor(user_agent="Another Visitor/1.0").page
    page2.goto(f"{site_url}/posts/first-post/")
    button2 = page2.locator("button[data-likes-post]")
    expect(button2).to_have_attribute("aria-pressed", "false")
    with page2.expect_response(lambda r: r.request.method == "POST"):
        button2.click()
    expect(button2.locator("[data-likes-count]")).to_have_text("2")
    assert count_in_db(data_dir, "first-post") == 2
    page2.goto(f"{site_url}/posts/café-con-leña/")
    with page2.expect_response(lambda r: r.request.method == "POST"):
        page2.locator("button[data-likes-post]").click()
    assert count_in_db(data_dir, "café-con-leña") == 1

    # The list shows every count from one batch request.
    requests: list[str] = []
    page2.on("request", lambda r: requests.append(r.url))
    page2.goto(f"{site_url}/")
    expect(page2.locator('[data-likes-count="first-post"]')).to_have_text("2")
    expect(page2.locator("[data-likes-count^='caf']")).to_have_text("1")
    api_calls = [u for u in requests if u.startswith(stack.service.base_url + "/likes")]
    assert len(api_calls) == 1, api_calls
    assert "/likes/?ids=" in api_calls[0]

    # Client-side navigation adds buttons later: they are picked up.
    page2.evaluate(
        """() => document.body.insertAdjacentHTML('beforeend',
            '<button type="button" id="late" data-likes-post="first-post">'
            + '<span data-likes-count></span></button>')"""
    )
    late = page2.locator("#late")
    expect(late.locator("[data-likes-count]")).to_have_text("2")
    expect(late).to_have_attribute("aria-pressed", "true")
    page.goto(f"{site_url}/posts/first-post/")
    expect(count).to_have_text("2")
    page.screenshot(
        path=str(tmp_path / "like-button.png"),
        clip={"x": 0, "y": 0, "width": 360, "height": 160},
    )
    page2.screenshot(path=str(tmp_path / "list.png"))
    assert first.said("warning") == first.said("error") == []


def test_counts_are_compact_in_the_page_language_with_the_exact_number_kept(
    stack, visitor, tmp_path
):
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps([{"post_id": "popular-post", "likes": 1234}]))
    manage("likes_import", str(counts), env=stack.env)

    page = visitor(f"{stack.site_url}/").page
    count = page.locator('[data-likes-count="popular-post"]')

    stack.expect(count).to_have_text("1,2\u00a0mil")  # Spanish: "mil", a comma
    stack.expect(count).to_have_attribute("title", "1234")
    stack.expect(count).to_have_attribute("data-likes", "1234")
    page.goto(f"{stack.site_url}/posts/popular-post/")
    button = page.locator("button[data-likes-post]")
    stack.expect(button.locator("[data-likes-count]")).to_have_text("1,2\u00a0mil")
    stack.expect(button).to_have_attribute("data-likes", "1234")
    # A like counts from the exact number, not from "1,2 mil".
    with page.expect_response(lambda r: r.request.method == "POST"):
        button.click()
    stack.expect(button).to_have_attribute("data-likes", "1235")
    stack.expect(button.locator("[data-likes-count]")).to_have_attribute(
        "title", "1235"
    )


def test_service_down_keeps_placeholders_rolls_back_and_recovers(stack, visitor):
    expect, data_dir = stack.expect, stack.data_dir
    seen = visitor(f"{stack.site_url}/posts/down-post/")
    page = seen.page
    button = page.locator("button[data-likes-post]").first
    count = button.locator("[data-likes-count]")
    with page.expect_response(lambda r: r.request.method == "POST"):
        button.click()
    expect(count).to_have_text("1")
    page.wait_for_function("() => localStorage.getItem('likes:down-post') !== '1'")
    receipt = storage(page)["likes:down-post"]
    assert receipt

    stack.service.stop()
    try:
        # An unlike the service never got is undone: still liked, same receipt.
        with page.expect_event("requestfailed"):
            button.click()
        expect(button).not_to_have_attribute("aria-busy", "true")
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(count).to_have_text("1")
        assert storage(page)["likes:down-post"] == receipt
        wait_for_message(seen, "warning")
        seen.console.clear()  # one message per page load: count this load's

        # Down at load: the button is there and usable; its count is a
        # placeholder, never a made-up 0.
        page.goto(f"{stack.site_url}/posts/down-post/")
        expect(button).to_be_visible()
        expect(button).to_be_enabled()
        expect(button).to_have_attribute("aria-pressed", "true")
        page.wait_for_function("() => document.querySelector('[data-likes-ready]')")
        page.wait_for_timeout(300)  # time for a wrong count to appear
        expect(count).to_have_text("")
        expect(button).not_to_have_attribute("data-likes", "0")

        # A like while down is rolled back, on screen and in storage.
        page.evaluate(
            """() => document.body.insertAdjacentHTML('beforeend',
                '<button type="button" id="other" data-likes-post="down-later">'
                + '<span data-likes-count>–</span></button>')"""
        )
        other = page.locator("#other")
        expect(other).to_have_attribute("aria-pressed", "false")
        with page.expect_event("requestfailed"):
            other.click()
        expect(other).not_to_have_attribute("aria-busy", "true")
        expect(other).to_have_attribute("aria-pressed", "false")
        expect(other.locator("[data-likes-count]")).to_have_text("–")
        assert "likes:down-later" not in storage(page)
        expect(count).to_have_text("")
    finally:
        stack.service.start()

    # Back up: the next click works without a reload, and the counts that
    # could not be fetched are fetched again.
    with page.expect_response(lambda r: r.request.method == "POST"):
        other.click()
    expect(other.locator("[data-likes-count]")).to_have_text("1")
    expect(other).to_have_attribute("aria-pressed", "true")
    expect(count).to_have_text("1")
    assert count_in_db(data_dir, "down-later") == 1
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        button.click()
    expect(count).to_have_text("0")
    assert count_in_db(data_dir, "down-post") == 0

    warnings = seen.said("warning")
    assert len(warnings) == 1, warnings  # once per page load
    assert "unreachable" in warnings[0]
    assert stack.service.base_url in warnings[0]
    assert seen.said("error") == []


def test_cors_refused_like_is_rolled_back_and_names_the_origin_to_allow(stack, visitor):
    expect = stack.expect
    seen = visitor(f"{stack.foreign_url}/posts/first-post/")
    page = seen.page
    button = page.locator("button[data-likes-post]")
    count = button.locator("[data-likes-count]")

    page.wait_for_function(
        "() => document.querySelector('[data-likes-ready]')", timeout=5000
    )
    with page.expect_event("requestfailed"):
        button.click()
    expect(button).not_to_have_attribute("aria-busy", "true")
    expect(button).to_have_attribute("aria-pressed", "false")
    expect(count).to_have_text("")
    assert "likes:first-post" not in storage(page)

    errors = wait_for_message(seen, "error")
    assert len(errors) == 1, seen.console
    assert f"CORS_ORIGINS={stack.foreign_url}" in errors[0]
    assert seen.said("warning") == []


def test_rate_limited_like_is_rolled_back_and_says_when_to_retry(stack, visitor):
    expect = stack.expect
    seen = visitor(f"{stack.site_url}/posts/limited-post/")
    page = seen.page
    button = page.locator("button[data-likes-post]")
    count = button.locator("[data-likes-count]")
    expect(count).to_have_text("0")

    # Use up this address's likes (the browser's too: both are 127.0.0.1),
    # leaving the window enough time for the click.
    with httpx.Client(base_url=stack.service.base_url) as client:
        for _ in range(100):
            answer = client.post("/likes/flood-post")
            if answer.status_code == HTTPStatus.TOO_MANY_REQUESTS:
                if int(answer.headers["Retry-After"]) >= 3:
                    break
                time.sleep(int(answer.headers["Retry-After"]) + 0.5)
        else:
            pytest.fail(f"no 429 after 100 likes at {POST_RATE}")
    try:
        with page.expect_response(lambda r: r.request.method == "POST") as limited:
            button.click()
        assert limited.value.status == HTTPStatus.TOO_MANY_REQUESTS
        retry = limited.value.headers["retry-after"]
        expect(button).not_to_have_attribute("aria-busy", "true")
        expect(button).to_have_attribute("aria-pressed", "false")
        expect(count).to_have_text("0")
        assert "likes:limited-post" not in storage(page)
        assert count_in_db(stack.data_dir, "limited-post") == 0
        warnings = seen.said("warning")
        assert len(warnings) == 1, seen.console
        assert "429" in warnings[0]
        assert f"retry after {retry} s" in warnings[0]
        assert "LIKES_POST_RATE" in warnings[0]
    finally:
        time.sleep(int(answer.headers["Retry-After"]) + 1)  # for the next tests


def test_duplicate_like_shows_the_server_count_and_stays_pressed(stack, visitor):
    expect, url = stack.expect, f"{stack.site_url}/posts/repeat-post/"
    agent = "Repeat Visitor/1.0"  # dedupe keys on address and User-Agent
    first = visitor(url, user_agent=agent).page
    with first.expect_response(lambda r: r.request.method == "POST"):
        first.locator("button[data-likes-post]").click()
    assert count_in_db(stack.data_dir, "repeat-post") == 1

    # The same visitor in a browser that forgot the like: not counted twice.
    page = visitor(url, user_agent=agent).page
    button = page.locator("button[data-likes-post]")
    count = button.locator("[data-likes-count]")
    expect(count).to_have_text("1")
    expect(button).to_have_attribute("aria-pressed", "false")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        button.click()
    assert answer.value.json()["duplicate"] is True
    expect(button).not_to_have_attribute("aria-busy", "true")
    expect(count).to_have_text("1")
    expect(button).to_have_attribute("aria-pressed", "true")
    assert storage(page)["likes:repeat-post"] == "1"  # no receipt to undo with

    # Unliking it sends no decrement and leaves the service's count.
    methods: list[str] = []
    page.on("request", lambda r: methods.append(r.method))
    button.click()
    expect(button).to_have_attribute("aria-pressed", "false")
    page.wait_for_timeout(300)
    expect(count).to_have_text("1")
    assert "DELETE" not in methods
    assert count_in_db(stack.data_dir, "repeat-post") == 1


def test_like_sends_the_page_title_as_a_simple_request(stack, visitor):
    page = visitor(f"{stack.site_url}/posts/title-post/").page
    methods: list[str] = []
    page.on("request", lambda r: methods.append(r.method))
    button = page.locator("button[data-likes-post]")
    stack.expect(button.locator("[data-likes-count]")).to_have_text("0")

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        button.click()
    assert answer.value.ok
    request = answer.value.request
    assert request.headers["content-type"] == "text/plain;charset=UTF-8"
    assert json.loads(request.post_data) == {"title": POSTS["title-post"]}
    stack.expect(button.locator("[data-likes-count]")).to_have_text("1")
    assert "OPTIONS" not in methods  # no preflight
    assert title_in_db(stack.data_dir, "title-post") == POSTS["title-post"]

    # data-likes-title wins over the document's title; it is cut at 200
    # characters, never inside one.
    long_title = "x" * 199 + "\N{GRINNING FACE}" + "y" * 50
    page.evaluate(
        """title => {
            const b = document.createElement('button');
            b.id = 'titled';
            b.setAttribute('data-likes-post', 'long-title-post');
            b.setAttribute('data-likes-title', title);
            document.body.append(b);
        }""",
        long_title,
    )
    page.wait_for_selector("#titled[data-likes-ready]", state="attached")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("#titled").click()
    assert answer.value.ok
    assert json.loads(answer.value.request.post_data) == {"title": "x" * 199}
    assert title_in_db(stack.data_dir, "long-title-post") == "x" * 199


@pytest.mark.parametrize(
    ("motion", "animation"), [("no-preference", "likes-pop"), ("reduce", "none")]
)
def test_like_pops_unless_reduced_motion_is_asked(
    stack, visitor, tmp_path, motion, animation
):
    page = visitor(
        f"{stack.site_url}/posts/motion-post/",
        reduced_motion=motion,
        user_agent=f"Motion {motion}/1.0",
    ).page
    button = page.locator("button[data-likes-post]")
    icon = button.locator("svg")
    stack.expect(button).to_have_attribute("data-likes", re.compile(r"^\d+$"))

    def animation_name():
        return icon.evaluate("el => getComputedStyle(el).animationName")

    assert animation_name() == "none"  # nothing moves on load
    with page.expect_response(lambda r: r.request.method == "POST"):
        button.click()
    assert animation_name() == animation
    stack.expect(button).to_have_attribute("aria-pressed", "true")
    page.screenshot(
        path=str(tmp_path / f"liked-{motion}.png"),
        clip={"x": 0, "y": 0, "width": 360, "height": 160},
    )


def api_count(stack: Stack, post_id: str) -> int:
    return httpx.get(f"{stack.service.base_url}/likes/{post_id}").json()["likes"]


def test_without_javascript_the_button_likes_and_comes_back_to_the_page(stack, visitor):
    url = f"{stack.site_url}/posts/nojs-post/"
    page = visitor(url, java_script_enabled=False).page
    button = page.locator("button[data-likes-post]")
    stack.expect(button).to_have_attribute("type", "submit")

    # The second like is a repeat: back on the page again, not counted.
    for _ in range(2):
        with page.expect_navigation() as navigation:
            button.click()
        assert page.url == url
        assert navigation.value.status == HTTPStatus.OK
        like = navigation.value.request.redirected_from
        assert like.method == "POST"
        assert like.url == f"{stack.service.base_url}/likes/nojs-post"
        assert parse_qs(like.post_data) == {
            "title": [POSTS["nojs-post"]],
            "return": [url],
        }
        assert like.response().status == HTTPStatus.SEE_OTHER
        assert like.response().headers["location"] == url
        assert api_count(stack, "nojs-post") == 1
    assert title_in_db(stack.data_dir, "nojs-post") == POSTS["nojs-post"]
    stack.expect(button).not_to_have_attribute("data-likes-ready", "")  # no widget


def test_without_javascript_a_like_from_another_origin_is_refused(stack, visitor):
    page = visitor(
        f"{stack.foreign_url}/posts/refused-post/", java_script_enabled=False
    ).page

    with page.expect_navigation() as navigation:
        page.locator("button[data-likes-post]").click()

    refused = navigation.value
    assert refused.request.method == "POST"
    assert refused.status == HTTPStatus.FORBIDDEN
    assert refused.headers["content-type"].startswith("text/html")
    assert page.url == f"{stack.service.base_url}/likes/refused-post"
    assert page.locator("body").inner_text().strip()  # a page that says why
    assert api_count(stack, "refused-post") == 0
    assert count_in_db(stack.data_dir, "refused-post") == 0


def test_with_javascript_the_form_never_navigates(stack, visitor, tmp_path):
    url = f"{stack.site_url}/posts/form-post/"
    page = visitor(url).page
    button = page.locator("button[data-likes-post]")
    count = button.locator("[data-likes-count]")
    stack.expect(count).to_have_text("0")
    navigations: list[str] = []
    posts: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.on(
        "request",
        lambda r: posts.append(r.resource_type) if r.method == "POST" else None,
    )

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        button.click()
    assert answer.value.ok
    stack.expect(count).to_have_text("1")
    stack.expect(button).to_have_attribute("aria-pressed", "true")
    # Nor does a submission that is not a click on the button.
    page.evaluate("() => document.querySelector('form.likes-form').requestSubmit()")
    page.wait_for_timeout(300)
    assert navigations == []
    assert page.url == url
    assert posts == ["fetch"]  # the widget's like, no form post
    assert api_count(stack, "form-post") == 1

    # The form leaves no box of its own: in a line of text the button sits
    # exactly where it sits without the form.
    page.evaluate(
        """() => {
            const form = document.querySelector('form.likes-form');
            const line = document.createElement('p');
            line.append('¿Te gustó? ');
            form.before(line);
            line.append(form);
        }"""
    )
    in_form = button.bounding_box()
    page.screenshot(
        path=str(tmp_path / "form-button.png"),
        clip={"x": 0, "y": 0, "width": 360, "height": 200},
    )
    page.evaluate(
        """() => {
            const form = document.querySelector('form.likes-form');
            form.replaceWith(...form.childNodes);
        }"""
    )
    assert button.bounding_box() == in_form
