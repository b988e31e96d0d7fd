"""Hostile input against the live server: never a 5xx, always a JSON error.

One gunicorn on loopback, as deployed, with a stats key, a user and an upstream
service behind the proxy. Hand-picked attacks first, then property-based fuzzing
(hypothesis) of every route — the likes API, the stats API, the tokens, the
envelope and the transparent proxy — with odd methods, paths, query strings,
headers and bodies. The OpenAPI-driven run is tests/test_openapi.py.
"""

import json
import socket
from contextlib import ExitStack
from http import HTTPStatus
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway_fixtures import Upstream, services_toml
from tests.live import gunicorn, manage, project_env

pytestmark = pytest.mark.live

STATS_KEY = "hostile-input-stats-key-0123456789abcdef"
PASSWORD = "correct-horse-battery-staple"
CREATE_USER = (
    "from django.contrib.auth import get_user_model; "
    f"get_user_model().objects.create_user('ada', password='{PASSWORD}')"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    with ExitStack() as stack:
        echo = Upstream("echo")
        stack.callback(echo.kill)
        services = tmp / "services.toml"
        services.write_text(services_toml("echo", [echo.url]))
        env = project_env(
            DATA_DIR=str(tmp),
            ADMIN_API_KEY=STATS_KEY,
            GATEWAY_SERVICES_FILE=str(services),
            LOG_DIR=str(tmp / "logs"),
            LOG_REQUESTS="true",
            # The run is about answers, not limits (429 is documented).
            LIKES_GET_RATE="1000000/m",
            LIKES_POST_RATE="1000000/m",
            LIKES_API_KEY_FAILURE_RATE="1000000/m",
            GATEWAY_LOGIN_RATE="1000000/m",
            GATEWAY_RATE_ANONYMOUS="100000000/h",
            GATEWAY_RATE_AUTHENTICATED="100000000/h",
            GATEWAY_RATE_PROCESSING="100000000/h",
        )
        manage("migrate", "--noinput", env=env)
        manage("shell", "-c", CREATE_USER, env=env)
        server = stack.enter_context(gunicorn(env, workers=2))
        token = httpx.post(
            f"{server.base_url}/token", data={"username": "ada", "password": PASSWORD}
        ).json()["access_token"]
        server.bearer = {"Authorization": f"Bearer {token}"}
        server.log_dir = tmp / "logs"
        yield server


def assert_clean(response: httpx.Response, what=""):
    """Not a server error, and an error is JSON with detail and code."""
    assert response.status_code < 500 or response.status_code in (
        HTTPStatus.BAD_GATEWAY,
        HTTPStatus.SERVICE_UNAVAILABLE,
        HTTPStatus.GATEWAY_TIMEOUT,
    ), (what, response.status_code, response.text[:300])
    assert response.status_code != HTTPStatus.INTERNAL_SERVER_ERROR
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert response.headers.get("content-type", "").startswith(
            "application/json"
        ), (what, response.status_code, response.text[:300])
        body = response.json()
        assert {"detail", "code"} <= set(body), body


# --- Hand-picked -------------------------------------------------------------------

DEEP = b"[" * 5000 + b"]" * 5000
SURROGATE = b'{"username": "\\ud800", "password": "x", "refresh_token": "\\udfff"}'


@pytest.mark.parametrize("path", ["/token", "/token/refresh", "/gateway"])
@pytest.mark.parametrize("body", [DEEP, SURROGATE], ids=["deep", "surrogate"])
def test_bad_json_bodies_are_400_json(site, path, body):
    response = httpx.post(
        site.base_url + path,
        content=body,
        headers={**site.bearer, "Content-Type": "application/json"},
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.text[:200]
    assert_clean(response)


def test_an_unlike_with_a_deep_json_body_is_400_json(site):
    response = httpx.request("DELETE", f"{site.base_url}/likes/deep", content=DEEP)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid_receipt"


def test_a_lone_surrogate_in_the_envelope_method_is_400_json(site):
    response = httpx.post(
        f"{site.base_url}/gateway",
        content=b'{"service_name": "echo", "endpoint": "/x", "method": "\\ud800"}',
        headers={**site.bearer, "Content-Type": "application/json"},
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert_clean(response)


@pytest.mark.parametrize(
    "path",
    [
        "/api/schema/?version=%00",
        "/api/schema/?version=a%0Ab",
        "/api/schema/?format=%00",
        "/admin/login/?next=%00",
        "/likes/?ids=a%00b",
        "/likes/x?access_token=secret%01",
        "/api/stats?x=%7F",
        "/users/me?x=%1B",
    ],
)
def test_control_characters_in_a_query_are_400_json(site, path):
    response = httpx.get(
        site.base_url + path, headers={"X-API-Key": STATS_KEY, **site.bearer}
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST, response.text[:200]
    assert_clean(response)


def test_a_failed_requests_query_string_is_not_logged_with_its_secret(site):
    httpx.get(f"{site.base_url}/likes/x?access_token=s3cr3t-value%00")
    httpx.get(f"{site.base_url}/likes/%00?access_token=s3cr3t-value")
    httpx.get(f"{site.base_url}/api/stats?api_key=s3cr3t-value")

    logs = "".join(path.read_text() for path in site.log_dir.glob("*.log"))
    assert "s3cr3t-value" not in logs


def test_gunicorns_own_parser_errors_are_text_and_never_a_500(site):
    """Refused before the application runs: documented as plain text."""
    port = int(site.base_url.rsplit(":", 1)[1])
    for raw in (
        b"GET /likes/x HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET /likes/x\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            status_line = sock.recv(4096).split(b"\r\n", 1)[0]
        assert status_line.split(b" ")[1] in (b"400", b"414", b"431"), status_line


def test_the_admins_csrf_refusal_is_json(site):
    response = httpx.post(
        f"{site.base_url}/admin/login/",
        data={"username": "ada", "password": "x"},
        headers={"Host": "localhost"},
    )

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "csrf_failed"


# --- Property-based fuzzing ---------------------------------------------------------

ROUTES = [
    "/likes/{id}",
    "/likes/?ids={id}",
    "/likes/?ids={id},{id}",
    "/api/stats",
    "/api/popular?limit={id}",
    "/token",
    "/token/refresh",
    "/users/me",
    "/gateway",
    "/services/echo/{id}",
    "/services/{id}/x",
    "/ready",
    "/health",
    "/api/schema/?format={id}",
]
text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
)
raw_bodies = st.one_of(
    st.binary(max_size=300),
    text.map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | text,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    route=st.sampled_from(ROUTES),
    ident=text,
    method=st.sampled_from(
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    ),
    body=raw_bodies,
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]
    ),
    with_token=st.booleans(),
    junk_header=text,
)
def test_no_route_answers_a_server_error_to_anything(
    site, route, ident, method, body, content_type, with_token, junk_header
):
    path = route.replace("{id}", quote(ident, safe=""))
    headers = {"X-API-Key": junk_header.encode("utf-8").hex()}
    if content_type:
        headers["Content-Type"] = content_type
    if with_token:
        headers.update(site.bearer)
    response = httpx.request(
        method, site.base_url + path, content=body, headers=headers, timeout=30
    )

    assert_clean(response, (method, path))
