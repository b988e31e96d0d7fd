"""The public read path on a live gunicorn, as deployed: HTTP caching of count
reads, the headers every answer carries, and the admin's own middleware."""

import re
from http import HTTPStatus

import httpx
import pytest
from django.test import override_settings

from tests.live import gunicorn, manage, project_env

SITE = "http://localhost:1313"  # in the default CORS_ORIGINS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("read-path")
    env = project_env(
        DATA_DIR=str(tmp),
        STATIC_ROOT=str(tmp / "static"),
        SECURE_COOKIES="false",  # plain HTTP on loopback
        LIKES_DEDUPE="off",
    )
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    with gunicorn(env, workers=1) as proc:
        yield proc.base_url


def get(server, path, **headers):
    return httpx.get(server + path, headers={"Origin": SITE, **headers}, timeout=10)


@pytest.mark.live
@pytest.mark.parametrize(
    "path", ["/likes/?ids=cached-post", "/likes/cached-post", "/api/popular?limit=5"]
)
def test_count_reads_are_cacheable_and_revalidated(server, path):
    first = get(server, path)

    assert first.status_code == HTTPStatus.OK
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert first.headers["Cache-Control"] == (
        "public, max-age=5, stale-while-revalidate=60"
    )
    assert "origin" in first.headers["Vary"].lower()
    assert first.headers["Content-Length"] == str(len(first.content))
    # Shared caches may hand this answer to others: no per-client limits on it.
    assert not any(
        name.lower().startswith(("ratelimit", "x-ratelimit")) for name in first.headers
    )

    again = get(server, path, **{"If-None-Match": etag})
    assert again.status_code == HTTPStatus.NOT_MODIFIED
    assert again.content == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == first.headers["Cache-Control"]
    # Cloudflare weakens a strong ETag when it compresses: still a match.
    weak = get(server, path, **{"If-None-Match": f"W/{etag}"})
    assert weak.status_code == HTTPStatus.NOT_MODIFIED

    head = httpx.head(server + path, headers={"If-None-Match": etag}, timeout=10)
    assert head.status_code == HTTPStatus.NOT_MODIFIED


@pytest.mark.live
def test_a_like_is_never_cached_and_changes_the_etag(server):
    before = get(server, "/likes/?ids=liked-post")

    like = httpx.post(server + "/likes/liked-post", headers={"Origin": SITE})

    assert like.status_code == HTTPStatus.OK
    assert like.json()["likes"] == 1
    assert "no-store" in like.headers["Cache-Control"]
    assert "ETag" not in like.headers
    after = get(
        server, "/likes/?ids=liked-post", **{"If-None-Match": before.headers["ETag"]}
    )
    assert after.status_code == HTTPStatus.OK  # the old copy is stale
    assert after.json() == [{"post_id": "liked-post", "likes": 1}]
    assert after.headers["ETag"] != before.headers["ETag"]


@pytest.mark.live
def test_errors_are_never_cached(server):
    response = get(server, "/likes/?ids=")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "no-store" in response.headers["Cache-Control"]
    assert "ETag" not in response.headers


@pytest.mark.live
def test_public_answers_carry_security_headers_and_no_cookie(server):
    response = get(server, "/likes/?ids=headers-post")

    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert "set-cookie" not in response.headers
    assert "cookie" not in response.headers["Vary"].lower()


@pytest.mark.live
def test_a_host_outside_allowed_hosts_is_refused_on_every_route(server):
    for path in ("/likes/?ids=x", "/likes/x", "/health", "/admin/login/"):
        response = httpx.get(server + path, headers={"Host": "evil.example"})

        assert response.status_code == HTTPStatus.BAD_REQUEST, path
        assert response.json()["code"] == "bad_request", path


@pytest.mark.live
def test_the_admin_keeps_sessions_csrf_and_its_own_policy(server):
    with httpx.Client(base_url=server) as client:
        login = client.get("/admin/login/")
        assert login.status_code == HTTPStatus.OK
        assert login.headers["X-Frame-Options"] == "DENY"
        assert "form-action 'self'" in login.headers["Content-Security-Policy"]
        assert "csrftoken" in client.cookies

        refused = client.post("/admin/login/", data={"username": "a", "password": "b"})
        assert refused.status_code == HTTPStatus.FORBIDDEN
        assert refused.json()["code"] == "csrf_failed"

        token = client.cookies["csrftoken"]
        answered = client.post(
            "/admin/login/",
            data={"username": "a", "password": "b", "csrfmiddlewaretoken": token},
            headers={"Referer": server + "/admin/login/"},
        )
        assert answered.status_code == HTTPStatus.OK  # the form, with its error
        assert b"errornote" in answered.content

    # Without the trailing slash, the admin still redirects (CommonMiddleware).
    bare = httpx.get(server + "/admin")
    assert bare.status_code == HTTPStatus.MOVED_PERMANENTLY
    assert bare.headers["Location"] == "/admin/"


@pytest.mark.django_db
def test_read_cache_seconds_zero_means_revalidate_every_time(client):
    with override_settings(LIKES_READ_CACHE_SECONDS=0):
        response = client.get("/likes/?ids=p")

    assert response["Cache-Control"] == "no-cache"
    assert response["ETag"]


@pytest.mark.live
def test_popular_is_public_cors_for_allowed_origins_only_and_carries_titles_nowhere(
    server,
):
    # The widget's like: a CORS-simple POST whose text/plain body is JSON.
    liked = httpx.post(
        server + "/likes/popular-a",
        content='{"title": "Popular <A>"}',
        headers={"Origin": SITE, "Content-Type": "text/plain;charset=UTF-8"},
        timeout=10,
    )
    assert liked.status_code == HTTPStatus.OK
    assert liked.headers["Access-Control-Allow-Origin"] == SITE

    allowed = get(server, "/api/popular?limit=50")
    assert allowed.status_code == HTTPStatus.OK
    assert allowed.headers["Access-Control-Allow-Origin"] == SITE
    assert {"post_id": "popular-a", "likes": 1} in allowed.json()
    assert all(set(row) == {"post_id", "likes"} for row in allowed.json())

    other = httpx.get(
        server + "/api/popular", headers={"Origin": "https://evil.test"}, timeout=10
    )
    assert other.status_code == HTTPStatus.OK
    assert "Access-Control-Allow-Origin" not in other.headers

    preflight = httpx.options(
        server + "/api/popular",
        headers={"Origin": SITE, "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == SITE

    foreign_like = httpx.post(
        server + "/likes/popular-a", headers={"Origin": "https://evil.test"}, timeout=10
    )
    assert foreign_like.status_code == HTTPStatus.FORBIDDEN
    assert foreign_like.json()["code"] == "origin_not_allowed"
    assert get(server, "/likes/popular-a").json()["likes"] == 1

    too_many = get(server, "/api/popular?limit=51")
    assert too_many.status_code == HTTPStatus.BAD_REQUEST
    assert too_many.json()["code"] == "invalid_limit"
    assert too_many.headers["Cache-Control"] == "no-store"
    assert httpx.post(server + "/api/popular", timeout=10).status_code == (
        HTTPStatus.METHOD_NOT_ALLOWED
    )


@pytest.mark.live
def test_admin_allowed_ips_close_the_admin_to_other_addresses(tmp_path):
    env = project_env(
        DATA_DIR=str(tmp_path),
        STATIC_ROOT=str(tmp_path / "static"),
        SECURE_COOKIES="false",
        CLIENT_IP_HEADER="CF-Connecting-IP",
        ADMIN_ALLOWED_IPS="203.0.113.0/24,2001:db8::/48",
    )
    manage("migrate", "--noinput", env=env)
    manage("collectstatic", "--noinput", env=env)
    with gunicorn(env, workers=1) as proc:

        def admin(ip=None, path="/admin/login/"):
            headers = {"CF-Connecting-IP": ip} if ip else {}
            return httpx.get(proc.base_url + path, headers=headers, timeout=10)

        assert admin("203.0.113.9").status_code == HTTPStatus.OK
        assert admin("2001:db8::1").status_code == HTTPStatus.OK
        for refused in [admin("198.51.100.1"), admin(), admin("not-an-ip")]:
            assert refused.status_code == HTTPStatus.FORBIDDEN
            assert refused.json()["code"] == "admin_forbidden"
        assert admin("198.51.100.1", "/admin").status_code == HTTPStatus.FORBIDDEN
        # The public API is not the admin.
        public = httpx.get(
            proc.base_url + "/likes/x",
            headers={"CF-Connecting-IP": "198.51.100.1"},
            timeout=10,
        )
        assert public.status_code == HTTPStatus.OK
