"""The widget files as served: small, ES5 in style, cached for good under their
hashed names, and the same files the Hugo component bundles."""

import gzip
import json
import os
import re
from http import HTTPStatus

import httpx
import pytest

from tests.live import BASE_DIR, gunicorn, manage, project_env

WIDGET = BASE_DIR / "likes/static/likes/likes.js"
STYLESHEET = BASE_DIR / "likes/static/likes/likes.css"


def test_widget_is_at_most_5_5_kb_gzipped():
    # 4 KB for the like button; reactions and sites added about 1.4 KB.
    assert len(gzip.compress(WIDGET.read_bytes(), 9)) <= 5632


def test_stylesheet_is_at_most_1_kb_gzipped():
    assert len(gzip.compress(STYLESHEET.read_bytes(), 9)) <= 1024


@pytest.mark.parametrize("name", ["likes.js", "likes.css"])
def test_static_file_is_the_hugo_components_asset(name):
    # A relative link: the same file in a checkout, a wheel and a container.
    served = BASE_DIR / "likes/static/likes" / name
    assert os.readlink(served) == f"../../hugo/assets/likes/{name}"
    assert served.resolve() == (BASE_DIR / "likes/hugo/assets/likes" / name).resolve()


def test_widget_uses_no_syntax_newer_than_es5():
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", WIDGET.read_text(), flags=re.DOTALL)
    newer = re.findall(r"=>|`|\b(?:let|const|class|async|await)\s|\.\.\.", code)
    assert newer == []


def test_stylesheet_weighs_nothing_against_a_theme():
    """Every selector is inside :where(), so a theme's rules always win."""
    css = re.sub(r"/\*.*?\*/", "", STYLESHEET.read_text(), flags=re.DOTALL)
    selectors = [s.strip() for s in re.findall(r"([^{}]+)\{[^{}]*\}", css)]
    rules = [s for s in selectors if not re.fullmatch(r"\d+%|from|to", s)]
    assert len(rules) > 5
    # What is left once every :where(...) is taken out: nothing but commas.
    outside = [re.sub(r":where\([^()]*\)|[\s,]", "", s) for s in rules]
    assert [(s, left) for s, left in zip(rules, outside, strict=True) if left] == []


@pytest.mark.live
def test_hashed_widget_is_served_with_far_future_caching(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), STATIC_ROOT=str(tmp_path / "static"))
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    manifest = json.loads((tmp_path / "static/staticfiles.json").read_text())
    hashed = manifest["paths"]["likes/likes.js"]
    assert hashed != "likes/likes.js"
    hashed_css = manifest["paths"]["likes/likes.css"]
    assert hashed_css != "likes/likes.css"

    with gunicorn(env, workers=1) as server:
        response = httpx.get(
            f"{server.base_url}/static/{hashed}", headers={"Accept-Encoding": "gzip"}
        )
        plain = httpx.get(f"{server.base_url}/static/likes/likes.js")
        css = httpx.get(f"{server.base_url}/static/{hashed_css}")

    assert response.status_code == HTTPStatus.OK
    assert "immutable" in response.headers["Cache-Control"]
    assert "max-age=315360000" in response.headers["Cache-Control"]
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"].startswith("text/javascript")
    # The plain name (what a hand-written script tag can point to) is cached briefly.
    assert plain.status_code == HTTPStatus.OK
    assert "immutable" not in plain.headers.get("Cache-Control", "")
    assert plain.content == WIDGET.read_bytes()
    assert css.status_code == HTTPStatus.OK
    assert css.headers["Content-Type"].startswith("text/css")
    assert "immutable" in css.headers["Cache-Control"]
    assert css.content == STYLESHEET.read_bytes()
