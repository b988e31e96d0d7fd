"""The widget file as served: small, and cached for good under its hashed name."""

import gzip
import json
from http import HTTPStatus

import httpx
import pytest

from tests.live import BASE_DIR, gunicorn, manage, project_env

WIDGET = BASE_DIR / "likes/static/likes/likes.js"


def test_widget_is_at_most_4_kb_gzipped():
    assert len(gzip.compress(WIDGET.read_bytes(), 9)) <= 4096


@pytest.mark.live
def test_hashed_widget_is_served_with_far_future_caching(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), STATIC_ROOT=str(tmp_path / "static"))
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    manifest = json.loads((tmp_path / "static/staticfiles.json").read_text())
    hashed = manifest["paths"]["likes/likes.js"]
    assert hashed != "likes/likes.js"

    with gunicorn(env, workers=1) as server:
        response = httpx.get(
            f"{server.base_url}/static/{hashed}", headers={"Accept-Encoding": "gzip"}
        )
        plain = httpx.get(f"{server.base_url}/static/likes/likes.js")

    assert response.status_code == HTTPStatus.OK
    assert "immutable" in response.headers["Cache-Control"]
    assert "max-age=315360000" in response.headers["Cache-Control"]
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"].startswith("text/javascript")
    # The plain name (what a Hugo partial can point to) is cached briefly.
    assert plain.status_code == HTTPStatus.OK
    assert "immutable" not in plain.headers.get("Cache-Control", "")
