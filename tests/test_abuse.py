"""Abuse of the public API and of forwarding headers, against the live server."""

from contextlib import ExitStack
from http import HTTPStatus

import httpx
import pytest

from likes.ratelimit import bucket_of, resolve_ip
from tests.gateway_fixtures import Upstream, services_toml
from tests.live import gunicorn, manage, project_env

STATS_KEY = "abuse-stats-key-0123456789abcdefghijkl"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The defaults, behind a proxy that names the client in X-Client-IP."""
    tmp = tmp_path_factory.mktemp("abuse")
    env = project_env(
        DATA_DIR=str(tmp),
        ADMIN_API_KEY=STATS_KEY,
        CLIENT_IP_HEADER="X-Client-IP",
        LIKES_POST_RATE="1000/m",
        # The default 5/m, counted per hour: a minute window could roll over
        # between the sixth wrong key and the seventh request.
        LIKES_API_KEY_FAILURE_RATE="5/h",
    )
    manage("migrate", "--noinput", env=env)
    with gunicorn(env, workers=2) as server:
        yield server


def like(site, post, *, ip, agent):
    return httpx.post(
        f"{site.base_url}/likes/{post}",
        headers={"X-Client-IP": ip, "User-Agent": agent},
    )


@pytest.mark.live
def test_rotating_the_user_agent_does_not_multiply_likes(site):
    answers = [
        like(site, "rotated", ip="198.51.100.7", agent=f"ua-{n}") for n in range(15)
    ]

    counted = [a for a in answers if not a.json().get("duplicate")]
    assert [a.status_code for a in answers] == [HTTPStatus.OK] * 15
    assert len(counted) == 10  # LIKES_NETWORK_DAILY_CAP
    assert answers[-1].json() == {
        "post_id": "rotated",
        "likes": 10,
        "liked": True,
        "duplicate": True,
    }
    # The same network (/24), another address: the same cap.
    assert like(site, "rotated", ip="198.51.100.200", agent="x").json()["likes"] == 10
    # Another network, or another post: counted.
    assert like(site, "rotated", ip="203.0.113.9", agent="x").json()["likes"] == 11
    assert like(site, "other", ip="198.51.100.7", agent="x").json()["likes"] == 1


@pytest.mark.live
def test_wrong_api_keys_are_limited_per_address(site):
    def stats(key, ip):
        return httpx.get(
            f"{site.base_url}/api/stats",
            headers={"X-API-Key": key, "X-Client-IP": ip},
        )

    wrong = [stats(f"wrong-key-{n}", "192.0.2.50") for n in range(6)]
    blocked = stats(STATS_KEY, "192.0.2.50")  # even the right one, for now
    elsewhere = stats(STATS_KEY, "192.0.2.51")

    assert [r.status_code for r in wrong] == [HTTPStatus.FORBIDDEN] * 5 + [
        HTTPStatus.TOO_MANY_REQUESTS
    ]
    assert blocked.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert blocked.json()["code"] == "rate_limited"
    assert int(blocked.headers["Retry-After"]) >= 1
    assert elsewhere.status_code == HTTPStatus.OK


@pytest.mark.live
def test_metrics_refuse_a_request_without_the_client_ip_header(site):
    # From loopback, but with CLIENT_IP_HEADER set and not sent: refused.
    assert httpx.get(f"{site.base_url}/metrics").status_code == HTTPStatus.FORBIDDEN
    allowed = httpx.get(
        f"{site.base_url}/metrics", headers={"X-Client-IP": "127.0.0.1"}
    )
    assert allowed.status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    ("remote", "header", "seen"),
    [
        ("::ffff:192.0.2.1", None, "192.0.2.1"),
        ("127.0.0.1", "::ffff:198.51.100.7", "198.51.100.7"),
        ("2001:db8::1", None, "2001:db8::1"),
    ],
)
def test_ipv4_mapped_addresses_are_unmapped(remote, header, seen):
    assert resolve_ip(remote, header) == seen
    assert bucket_of(resolve_ip(remote, header)) == bucket_of(seen)


# --- X-Forwarded-Proto from untrusted peers ------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize(
    ("allow", "trusted"), [("127.0.0.1", True), ("10.9.9.9", False)]
)
def test_forwarded_proto_is_believed_only_from_forwarded_allow_ips(
    tmp_path, allow, trusted
):
    echo = Upstream("echo")
    services = tmp_path / "services.toml"
    services.write_text(services_toml("echo", [echo.url]))
    env = project_env(
        DATA_DIR=str(tmp_path),
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        FORWARDED_ALLOW_IPS=allow,
        GATEWAY_SERVICES_FILE=str(services),
    )
    manage("migrate", "--noinput", env=env)
    claim = {"X-Forwarded-Proto": "https"}
    with ExitStack() as stack:
        stack.callback(echo.kill)
        server = stack.enter_context(gunicorn(env, workers=1))
        django = httpx.get(f"{server.base_url}/likes/p", headers=claim)
        proxied = httpx.get(f"{server.base_url}/services/echo/x", headers=claim)

    assert ("strict-transport-security" in django.headers) is trusted
    assert ("strict-transport-security" in proxied.headers) is trusted
    sent = echo.received[-1]["headers"]["X-Forwarded-Proto"]
    assert sent == ("https" if trusted else "http")
