"""The Hugo theme component end to end: a fresh Hugo site built exactly as the
README says, served on loopback, the likes service on a live gunicorn, Chromium."""

import functools
import http.server
import re
import shutil
import subprocess
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from unittest import mock

import httpx
import pytest

from tests import live
from tests.conftest import need
from tests.docs import tagged
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

# What the README tells the reader to replace with their service's URL.
API_PLACEHOLDER = "https://likes.example.com"
SECOND_TITLE = 'Second <b>bold</b> & "quoted"'
# Posts the tests add to the README's site (which has posts/hello).
CONTENT = {
    "posts/like-me.md": "title: Like me",
    "posts/dup.md": "title: Twice",
    "posts/cors.md": "title: Elsewhere",
    "posts/down.md": "title: Down",
    "posts/second.md": "title: '" + SECOND_TITLE + "'",
    "posts/café.md": "title: Café",
    "posts/hidden.md": "title: Hidden\nnoLike: true",
    "posts/one.md": "title: One",
    "posts/two.md": "title: Two",
    "posts/three.md": "title: Three",
    "notes/hello.md": "title: Hello again",  # the same last segment as posts/hello
    "posts/señal.md": "title: Señal",
    "posts/react.md": "title: React",
    "posts/react-nojs.md": "title: React without JS",
}
# The service's reactions, and the reactions variant's [params.likes] reactions.
REACTIONS = ["👍", "❤️", "🎉"]
PLACEHOLDER_MARKUP = re.compile(
    r'<span class="likes-count" data-likes-count aria-live="polite">(.*?)</span>'
)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def static_server(directory: Path, port: int):
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def hugo(site: Path) -> None:
    subprocess.run(["hugo"], cwd=site, check=True, capture_output=True, timeout=60)


def build_from_readme(workdir: Path, api_url: str) -> Path:
    """Run the README's Hugo blocks in order in one shell, as a reader would."""
    blocks = tagged("hugo")
    script = "\n".join(block.text for block in blocks)
    assert blocks and API_PLACEHOLDER in script, "the README's Hugo blocks changed"
    (workdir / "gateway_site").symlink_to(BASE_DIR)
    result = subprocess.run(
        ["bash", "-e", "-c", script.replace(API_PLACEHOLDER, api_url)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    site = workdir / "blog"
    assert (site / "public/posts/hello/index.html").exists()
    return site


def add_content_and_rebuild(site: Path) -> None:
    for path, front_matter in CONTENT.items():
        (site / "content" / path).parent.mkdir(parents=True, exist_ok=True)
        (site / "content" / path).write_text(f"---\n{front_matter}\n---\nText.\n")
    hugo(site)
    (site / "public/blank.html").write_text("<!doctype html><title>blank</title>")


def spanish_full_path_variant(site: Path) -> Path:
    """The same site with fullPathIds on and Spanish as its language."""
    variant = site.with_name("blog-es")
    shutil.copytree(site, variant, ignore=shutil.ignore_patterns("public"))
    with open(variant / "config/_default/params.toml", "a") as params:
        params.write("fullPathIds = true\n")  # [likes] is the file's last table
    # The site's main config file: hugo.toml since Hugo 0.112, config.toml before.
    main = next(
        p for p in map(variant.joinpath, ("hugo.toml", "config.toml")) if p.exists()
    )
    with open(main, "a") as config:
        config.write("defaultContentLanguage = 'es'\n")
    hugo(variant)
    return variant


def second_blog(site: Path) -> Path:
    """The same site as a second blog of the instance: [params.likes] site."""
    variant = site.with_name("blog-two")
    shutil.copytree(site, variant, ignore=shutil.ignore_patterns("public"))
    with open(variant / "config/_default/params.toml", "a") as params:
        params.write('site = "two"\n')
    hugo(variant)
    return variant


def reactions_variant(site: Path) -> Path:
    """The same site with the service's reactions in its [params.likes]."""
    variant = site.with_name("blog-reactions")
    shutil.copytree(site, variant, ignore=shutil.ignore_patterns("public"))
    with open(variant / "config/_default/params.toml", "a") as params:
        params.write(f"reactions = {REACTIONS!r}\n".replace("'", '"'))
    hugo(variant)
    return variant


@dataclass
class Stack:
    api_url: str
    api_port: int
    env: dict
    site: Path  # the README's site, plus CONTENT
    site_es: Path  # fullPathIds = true, Spanish
    origin: str  # serves site/public; in CORS_ORIGINS
    origin_es: str  # serves site_es/public; in CORS_ORIGINS
    origin_reactions: str  # serves the reactions variant; in CORS_ORIGINS
    origin_two: str  # serves the second blog: site "two"'s origin only
    wrong_origin: str  # serves site/public too; not in CORS_ORIGINS
    browser: object
    exits: ExitStack
    api: object = None
    errors: list = field(default_factory=list)
    contexts: list = field(default_factory=list)

    def stop_api(self):
        self.api.terminate()
        self.api.wait(timeout=30)

    def start_api(self):
        # On the port the site was built with: the site names it in data-api.
        with mock.patch.object(live, "free_port", return_value=self.api_port):
            self.api = self.exits.enter_context(gunicorn(self.env, workers=1))

    def count(self, post_id: str) -> int:
        return httpx.get(f"{self.api_url}/likes/{post_id}").json()["likes"]

    def page(self, **context_options):
        context = self.browser.new_context(**context_options)
        self.contexts.append(context)
        page = context.new_page()
        page.messages = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda m: page.messages.append((m.type, m.text)))
        return page


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    need(
        shutil.which("hugo") is not None, "hugo is not installed (apt-get install hugo)"
    )
    need(
        Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)"
    )
    sync_api = pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("hugo")
    origin_port, origin_es_port, wrong_port = free_port(), free_port(), free_port()
    reactions_port, two_port = free_port(), free_port()
    env = project_env(
        DATA_DIR=str(tmp / "data"),
        CORS_ORIGINS=",".join(
            f"http://127.0.0.1:{port}"
            for port in (origin_port, origin_es_port, reactions_port)
        ),
        LIKES_REACTIONS=",".join(REACTIONS),
        # Every test here likes from 127.0.0.1; rate limits are tested elsewhere.
        LIKES_POST_RATE="1000/m",
        LIKES_GET_RATE="1000/m",
    )
    manage("migrate", "--noinput", env=env)
    # A second blog on the same instance: its origin is its site's, not in
    # CORS_ORIGINS.
    manage(
        "shell",
        "-c",
        "from likes.models import Site; Site.objects.create(name='Two', slug='two', "
        f"origins='http://127.0.0.1:{two_port}')",
        env=env,
    )
    with ExitStack() as exits:
        api = exits.enter_context(gunicorn(env, workers=1))
        site = build_from_readme(tmp, api.base_url)
        add_content_and_rebuild(site)
        site_es = spanish_full_path_variant(site)
        site_reactions = reactions_variant(site)
        site_two = second_blog(site)
        public, public_es = site / "public", site_es / "public"
        pw = exits.enter_context(sync_api.sync_playwright())
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        exits.callback(browser.close)
        stack = Stack(
            api_url=api.base_url,
            api_port=int(api.base_url.rsplit(":", 1)[1]),
            env=env,
            site=site,
            site_es=site_es,
            origin=exits.enter_context(static_server(public, origin_port)),
            origin_es=exits.enter_context(static_server(public_es, origin_es_port)),
            origin_reactions=exits.enter_context(
                static_server(site_reactions / "public", reactions_port)
            ),
            origin_two=exits.enter_context(
                static_server(site_two / "public", two_port)
            ),
            wrong_origin=exits.enter_context(static_server(public, wrong_port)),
            browser=browser,
            exits=exits,
            api=api,
        )
        yield stack


@pytest.fixture(autouse=True)
def no_page_errors(request):
    if "stack" not in request.fixturenames:  # a build-only test
        yield
        return
    stack = request.getfixturevalue("stack")
    stack.errors.clear()
    yield
    # Closed, their keep-alive connections do not hold up a stopping gunicorn.
    while stack.contexts:
        stack.contexts.pop().close()
    assert stack.errors == []  # no uncaught exception on any page


@pytest.fixture(scope="module")
def expect():
    return pytest.importorskip("playwright.sync_api").expect


def wait_for_message(page, text: str, timeout: float = 10) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in page.messages:
            if text in message[1]:
                return message
        page.wait_for_timeout(100)
    raise AssertionError(f"no console message with {text!r}: {page.messages}")


def html(site: Path, path: str) -> str:
    return (site / "public" / path / "index.html").read_text()


def placeholder(site: Path) -> str:
    """The count placeholder as the button partial writes it."""
    return PLACEHOLDER_MARKUP.search(html(site, "posts/down")).group(1)


def test_the_site_serves_the_widget_itself_with_integrity(stack, expect):
    page = stack.page()
    scripts: list[str] = []
    page.on(
        "request",
        lambda r: scripts.append(r.url) if r.resource_type == "script" else None,
    )
    page.goto(f"{stack.origin}/blank.html")
    blank_globals = set(page.evaluate("() => Object.keys(window)"))
    page.goto(f"{stack.origin}/posts/like-me/")
    expect(page.locator("button[data-likes-post] [data-likes-count]")).to_have_text("0")

    tag = page.locator("script[data-api]")
    expect(tag).to_have_attribute("integrity", re.compile(r"^sha384-[\w+/=]{64}$"))
    expect(tag).to_have_attribute("crossorigin", "anonymous")
    expect(tag).to_have_attribute("data-api", stack.api_url)
    expect(tag).to_have_attribute("data-lang", "en")
    style = page.locator("link[rel=stylesheet]")
    expect(style).to_have_attribute("integrity", re.compile(r"^sha384-"))
    assert scripts and all(url.startswith(stack.origin + "/") for url in scripts)
    # The home page adds the most-liked list's script: no globals either.
    page.goto(f"{stack.origin}/")
    expect(page.locator("[data-likes-count='like-me']")).to_have_text("0")
    assert set(page.evaluate("() => Object.keys(window)")) == blank_globals
    assert not any(url.startswith(stack.api_url + "/static/") for url in scripts)


def test_like_reload_and_unlike(stack, expect):
    page = stack.page()
    page.goto(f"{stack.origin}/posts/like-me/")
    button = page.locator("button[data-likes-post]")
    count = button.locator("[data-likes-count]")
    expect(button).to_have_attribute("data-likes-title", "Like me")
    expect(count).to_have_text("0")

    with page.expect_response(lambda r: r.request.method == "POST"):
        button.click()
    expect(count).to_have_text("1")
    expect(button).to_have_attribute("aria-pressed", "true")
    assert stack.count("like-me") == 1

    page.reload()
    expect(count).to_have_text("1")
    expect(button).to_have_attribute("aria-pressed", "true")

    with page.expect_response(lambda r: r.request.method == "DELETE"):
        button.click()
    expect(count).to_have_text("0")
    expect(button).to_have_attribute("aria-pressed", "false")
    assert stack.count("like-me") == 0


def test_a_duplicate_like_shows_the_servers_count(stack, expect):
    first = stack.page()
    first.goto(f"{stack.origin}/posts/dup/")
    with first.expect_response(lambda r: r.request.method == "POST"):
        first.locator("button[data-likes-post]").click()
    expect(first.locator("[data-likes-count]")).to_have_text("1")

    # The same browser without its localStorage: the server sees a repeat.
    again = stack.page(user_agent=first.evaluate("navigator.userAgent"))
    again.goto(f"{stack.origin}/posts/dup/")
    button = again.locator("button[data-likes-post]")
    expect(button.locator("[data-likes-count]")).to_have_text("1")
    expect(button).to_have_attribute("aria-pressed", "false")
    with again.expect_response(lambda r: r.request.method == "POST") as answer:
        button.click()
    assert answer.value.json()["duplicate"] is True
    expect(button.locator("[data-likes-count]")).to_have_text("1")  # not 2
    expect(button).to_have_attribute("aria-pressed", "true")
    assert stack.count("dup") == 1


def test_an_origin_missing_from_cors_origins_rolls_back_and_says_so(stack, expect):
    page = stack.page()
    page.goto(f"{stack.wrong_origin}/posts/cors/")
    button = page.locator("button[data-likes-post]")
    count = button.locator("[data-likes-count]")
    expect(button).to_be_enabled()
    before = count.text_content()

    button.click()
    kind, text = wait_for_message(page, "CORS_ORIGINS")
    assert text.startswith("likes:")
    assert stack.wrong_origin in text
    expect(button).to_have_attribute("aria-pressed", "false")
    expect(count).to_have_text(before)


def test_popular_lists_the_most_liked_known_posts_in_order(stack, expect):
    likes = {
        "not-on-this-site": 9,  # not a page of the site
        "hidden": 8,  # noLike: not listed
        "café": 7,
        "second": 6,
        "one": 5,
        "two": 4,
        "three": 3,  # the fifth known: the README's limit
    }
    with httpx.Client(base_url=stack.api_url) as client:
        for post_id, n in likes.items():
            for reader in range(n):
                response = client.post(
                    f"/likes/{post_id}", headers={"User-Agent": f"reader {reader}"}
                )
                assert response.status_code == httpx.codes.OK, response.text

    page = stack.page()
    page.goto(f"{stack.origin}/")
    popular = page.locator("[data-likes-popular]")
    expect(popular).to_be_visible()
    expect(popular.locator("h2")).to_have_text("Most liked")
    links = popular.locator("li a")
    expect(links).to_have_text(["Café", SECOND_TITLE, "One", "Two", "Three"])
    assert links.nth(0).get_attribute("href") == "/posts/caf%C3%A9/"
    assert popular.locator("b").count() == 0  # the title is text, not markup
    counts = popular.locator("[data-likes]")
    assert [counts.nth(i).get_attribute("data-likes") for i in range(5)] == [
        "7",
        "6",
        "5",
        "4",
        "3",
    ]
    expect(popular.locator("li").first).to_contain_text("likes")  # read out


def test_full_path_ids_and_spanish_labels(stack, expect):
    for path in ("posts/hello", "notes/hello"):
        assert 'data-likes-post="hello"' in html(stack.site, path)
    assert 'data-likes-post="posts-hello"' in html(stack.site_es, "posts/hello")
    assert 'data-likes-post="notes-hello"' in html(stack.site_es, "notes/hello")

    page = stack.page()
    page.goto(f"{stack.origin_es}/notes/hello/")
    button = page.locator("button[data-likes-post]")
    expect(button).to_have_attribute("aria-label", "Me gusta")
    with page.expect_response(lambda r: r.request.method == "POST"):
        button.click()
    expect(button.locator("[data-likes-count]")).to_have_text("1")
    assert stack.count("notes-hello") == 1
    assert stack.count("posts-hello") == 0

    page.goto(f"{stack.origin_es}/")
    tally = page.locator(
        ".likes-tally", has=page.locator("[data-likes-count='notes-hello']")
    )
    expect(tally.locator("[data-likes-count]")).to_have_text("1")
    expect(tally).to_contain_text("me gusta")  # visually hidden, read out
    expect(tally.locator("svg")).to_have_attribute("aria-hidden", "true")
    expect(page.locator("[data-likes-popular] h2")).to_have_text("Lo más gustado")


def test_no_like_pages_have_no_button_count_or_popular_entry(stack):
    assert "data-likes-post" not in html(stack.site, "posts/hidden")
    home = html(stack.site, "")
    assert 'data-likes-count="like-me"' in home
    assert 'data-likes-count="hidden"' not in home
    assert '"id":"hidden"' not in home
    assert '"id":"like-me"' in home


def test_without_javascript_a_like_counts_and_lands_on_the_site(stack):
    """The README's site keeps Hugo's example baseURL, so its permalinks are not
    where it is served: the service sends the browser to the home page of the
    origin the like came from."""
    page = stack.page(java_script_enabled=False)
    page.goto(f"{stack.origin}/posts/se%C3%B1al/")
    form = page.locator("form.likes-form")
    assert form.get_attribute("action") == f"{stack.api_url}/likes/se%C3%B1al"

    with page.expect_navigation() as navigation:
        form.locator("button[data-likes-post]").click()

    like = navigation.value.request.redirected_from
    assert like.method == "POST"
    assert like.response().status == HTTPStatus.SEE_OTHER
    assert page.url == f"{stack.origin}/"
    assert stack.count("señal") == 1


def test_reactions_click_reload_undo_and_keyboard(stack, expect):
    page = stack.page()
    page.goto(f"{stack.origin_reactions}/posts/react/")
    bar = page.get_by_role("group", name="Reactions")
    thumbs = bar.get_by_role("button", name="React with 👍")
    party = bar.get_by_role("button", name="React with 🎉")
    expect(thumbs).to_have_attribute("aria-pressed", "false")
    expect(thumbs.locator("[data-likes-reaction-count]")).to_have_text("0")
    assert bar.get_by_role("button").count() == len(REACTIONS)

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        thumbs.click()
    assert answer.value.json()["reaction"] == "👍"
    expect(thumbs).to_have_attribute("aria-pressed", "true")
    expect(thumbs.locator("[data-likes-reaction-count]")).to_have_text("1")
    # The keyboard: focus the next reaction, press it with the space bar.
    party.focus()
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.keyboard.press("Space")
    expect(party).to_have_attribute("aria-pressed", "true")

    read = httpx.get(f"{stack.api_url}/likes/react").json()
    assert read == {
        "post_id": "react",
        "likes": 0,
        "reactions": {"👍": 1, "❤️": 0, "🎉": 1},
    }

    page.reload()
    expect(thumbs).to_have_attribute("aria-pressed", "true")
    expect(thumbs.locator("[data-likes-reaction-count]")).to_have_text("1")
    expect(page.locator("button[data-likes-post]")).to_have_attribute(
        "aria-pressed", "false"
    )

    thumbs.focus()
    with page.expect_response(lambda r: r.request.method == "DELETE"):
        page.keyboard.press("Enter")
    expect(thumbs).to_have_attribute("aria-pressed", "false")
    expect(thumbs.locator("[data-likes-reaction-count]")).to_have_text("0")
    assert httpx.get(f"{stack.api_url}/likes/react").json()["reactions"] == {
        "👍": 0,
        "❤️": 0,
        "🎉": 1,
    }
    page.screenshot(path=str(stack.site.parent / "reactions.png"))


def test_a_second_blog_on_the_instance_has_its_own_counts(stack, expect):
    before = stack.count("two")
    page = stack.page()
    page.goto(f"{stack.origin_two}/posts/two/")
    assert page.locator("script[data-site='two']").count() == 1
    button = page.locator("button[data-likes-post]")
    count = button.locator("[data-likes-count]")
    expect(count).to_have_text("0")

    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        button.click()
    assert answer.value.ok
    expect(count).to_have_text("1")
    assert httpx.get(f"{stack.api_url}/likes/two?site=two").json()["likes"] == 1
    assert stack.count("two") == before  # the default site's post of that id

    # The first blog's page of the same post id shows the first blog's count.
    first = stack.page()
    first.goto(f"{stack.origin}/posts/two/")
    expect(first.locator("button[data-likes-post] [data-likes-count]")).to_have_text(
        str(before)
    )
    # Its Origin alone names the second blog; it cannot like for the first.
    direct = httpx.post(
        f"{stack.api_url}/likes/two", headers={"Origin": stack.origin_two}
    )
    assert direct.json()["likes"] == 2
    cross = httpx.post(
        f"{stack.api_url}/likes/two?site=default", headers={"Origin": stack.origin_two}
    )
    assert cross.status_code == HTTPStatus.FORBIDDEN


def test_a_bare_reaction_bar_takes_the_sites_reactions(stack, expect):
    """Without Hugo: <div data-likes-reactions> alone gets the service's list."""
    built = html(stack.site, "posts/like-me")
    assets = "".join(
        re.findall(
            r'<link rel="stylesheet"[^>]*>|<script src="[^>]*data-api[^>]*></script>',
            built,
        )
    )
    page_path = stack.site / "public" / "bare.html"
    page_path.write_text(
        f"<!doctype html><title>Bare</title>{assets}"
        '<div data-likes-reactions="bare-bar"></div>'
    )
    page = stack.page()
    page.goto(f"{stack.origin}/bare.html")
    bar = page.get_by_role("group", name="Reactions")
    expect(bar.get_by_role("button")).to_have_count(len(REACTIONS))
    heart = bar.get_by_role("button", name="React with ❤️")
    with page.expect_response(lambda r: r.request.method == "POST"):
        heart.click()
    expect(heart).to_have_attribute("aria-pressed", "true")
    read = httpx.get(f"{stack.api_url}/likes/bare-bar").json()
    assert read["reactions"] == {"👍": 0, "❤️": 1, "🎉": 0}


def test_without_javascript_a_reaction_counts(stack):
    page = stack.page(java_script_enabled=False)
    page.goto(f"{stack.origin_reactions}/posts/react-nojs/")
    with page.expect_navigation():
        page.locator("button[data-reaction='❤️']").click()
    assert page.url.startswith(stack.origin_reactions)
    assert httpx.get(f"{stack.api_url}/likes/react-nojs").json()["reactions"] == {
        "👍": 0,
        "❤️": 1,
        "🎉": 0,
    }


def test_the_button_stays_usable_while_the_service_is_down(stack, expect):
    # Last in the module: it restarts the service.
    stack.stop_api()
    page = stack.page()
    page.goto(f"{stack.origin}/posts/down/")
    button = page.locator("button[data-likes-post]")
    count = button.locator("[data-likes-count]")
    wait_for_message(page, "likes:")
    expect(button).to_be_visible()
    expect(button).to_be_enabled()
    expect(count).to_have_text(placeholder(stack.site))
    button.click()  # fails: rolled back
    expect(button).to_have_attribute("aria-pressed", "false")
    expect(count).to_have_text(placeholder(stack.site))

    home = stack.page()
    home.goto(f"{stack.origin}/")
    wait_for_message(home, "likes: the most liked posts are unavailable")
    expect(home.locator("[data-likes-popular]")).to_be_hidden()
    assert [m for m in home.messages if m[0] == "error" and "likes:" in m[1]] == []

    stack.start_api()  # back: the same page, no reload
    with page.expect_response(lambda r: r.request.method == "POST"):
        button.click()
    expect(count).to_have_text("1")
    expect(button).to_have_attribute("aria-pressed", "true")
    assert stack.count("down") == 1


def bare_site(tmp_path: Path, config: str) -> Path:
    """A site with the partials alone in layouts/ (the install before the
    theme component), one post and the button on it."""
    need(
        shutil.which("hugo") is not None, "hugo is not installed (apt-get install hugo)"
    )
    site = tmp_path / "bare"
    shutil.copytree(BASE_DIR / "likes/hugo/layouts", site / "layouts")
    (site / "layouts/_default").mkdir()
    (site / "layouts/_default/single.html").write_text(
        '{{ partial "likes/button.html" . }}'
    )
    (site / "content/posts").mkdir(parents=True)
    (site / "content/posts/hello.md").write_text("---\ntitle: Hello\n---\n")
    (site / "config.toml").write_text(config)
    return site


def test_partials_alone_still_load_the_widget_from_the_service(tmp_path):
    site = bare_site(tmp_path, '[params.likes]\napi = "https://likes.example.com/"\n')

    build = subprocess.run(["hugo"], cwd=site, capture_output=True, text=True)

    assert build.returncode == 0, build.stderr
    assert (
        "install all of likes/hugo as a theme component" in build.stdout + build.stderr
    )
    page = html(site, "posts/hello")
    assert (
        '<script src="https://likes.example.com/static/likes/likes.js" '
        'data-api="https://likes.example.com"' in page
    )


@pytest.mark.parametrize("api", ["", "likes.example.com", "javascript:alert(1)"])
def test_a_site_without_a_usable_service_url_does_not_build(tmp_path, api):
    site = bare_site(tmp_path, f'[params.likes]\napi = "{api}"\n')

    build = subprocess.run(["hugo"], cwd=site, capture_output=True, text=True)

    assert build.returncode != 0
    assert "[params.likes] api =" in build.stdout + build.stderr
