"""Redraw the README's screenshots into docs/images/.

Starts gunicorn over a fresh temporary data directory seeded with a demo
blog (the same one the admin's browser tests use), signs in as its author and
photographs the dashboard in the light and the dark theme and a post's page.
Never touches the data in DATA_DIR.

    .venv/bin/python scripts/screenshots.py
"""

import datetime
import sys
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from tests.test_admin_e2e import (  # noqa: E402  (needs BASE_DIR on the path)
    CHROMIUM,
    CHROMIUM_ARGS,
    admin_server,
    demo_posts,
    log_in,
)

OUT = BASE_DIR / "docs/images"
VIEWPORT = {"width": 1280, "height": 800}
SHOWN_POST = "self-hosting-checklist"  # a post with a busy last 90 days


def main() -> int:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    posts = demo_posts(datetime.datetime.now(datetime.UTC))
    with (
        tempfile.TemporaryDirectory(prefix="likes-screenshots-") as data_dir,
        admin_server(Path(data_dir), posts) as server,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        log_in(context.new_page(), server.base_url)
        signed_in = context.storage_state()
        context.close()
        post = next(post for post in posts if post.post_id == SHOWN_POST)
        shots = [
            ("dashboard-light.png", "light", "/admin/likes/post/dashboard/?range=90"),
            ("dashboard-dark.png", "dark", "/admin/likes/post/dashboard/?range=90"),
            ("post-light.png", "light", f"/admin/likes/post/{post.pk}/change/"),
            ("post-dark.png", "dark", f"/admin/likes/post/{post.pk}/change/"),
        ]
        for name, scheme, path in shots:
            context = browser.new_context(
                viewport=VIEWPORT, color_scheme=scheme, storage_state=signed_in
            )
            page = context.new_page()
            page.goto(f"{server.base_url}{path}")
            page.screenshot(path=str(OUT / name), full_page=True)
            context.close()
            print(OUT / name)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
