"""The gateway console in a real browser: the live dashboard follows traffic
without a reload, and the request flow shows a retried request's tries."""

import re
import time
import uuid
from contextlib import ExitStack
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest

from tests.conftest import need
from tests.gateway_fixtures import Upstream, service_table, services_toml
from tests.live import CHROMIUM, CHROMIUM_ARGS, gunicorn, manage, project_env

pytestmark = pytest.mark.live

ADMIN_USER = "operator"
ADMIN_PASSWORD = "a-long-operator-password-42"


@pytest.fixture(scope="module")
def playwright_api():
    need(
        Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)"
    )
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def site(playwright_api, tmp_path_factory):
    """gunicorn (2 workers) with a service whose second replica always fails,
    and one whose first replica fails once."""
    tmp = tmp_path_factory.mktemp("console-e2e")
    with ExitStack() as stack:
        good, flaky, once, steady = (Upstream(n) for n in ("good", "flaky", "c", "d"))
        for upstream in (good, flaky, once, steady):
            stack.callback(upstream.kill)
        flaky.fail(10**6, 503)
        services = tmp / "services.toml"
        services.write_text(
            services_toml(
                "pair",
                [good.url, flaky.url],
                max_retries=0,
                circuit_breaker={"failure_threshold": 1, "recovery_timeout": 20},
            )
            + service_table("retried", [once.url, steady.url], max_retries=1)
        )
        env = project_env(
            DATA_DIR=str(tmp),
            STATIC_ROOT=str(tmp / "static"),
            GATEWAY_SERVICES_FILE=str(services),
            SECURE_COOKIES="false",  # plain HTTP on loopback
            DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
            GATEWAY_RATE_ANONYMOUS="1000000/h",
            GATEWAY_RATE_PROCESSING="1000000/h",
        )
        manage("migrate", "--noinput", env=env)
        manage("collectstatic", "--noinput", env=env)
        manage(
            "createsuperuser",
            "--noinput",
            "--username",
            ADMIN_USER,
            "--email",
            "operator@example.com",
            env=env,
        )
        server = stack.enter_context(gunicorn(env, workers=2))
        server.upstreams = {"good": good, "flaky": flaky, "c": once, "d": steady}
        yield server


@pytest.fixture(scope="module")
def page(playwright_api, site):
    """A signed-in operator's page (the admin login is rate-limited: once)."""
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, color_scheme="dark"
        )
        tab = context.new_page()
        tab.errors = []
        tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
        tab.on(
            "console",
            lambda m: (
                tab.errors.append(m.text)
                if m.type == "error" and "Failed to load resource" not in m.text
                else None
            ),
        )
        tab.on(
            "response",
            lambda r: (
                tab.errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        tab.goto(f"{site.base_url}/admin/gateway/")
        tab.fill("#id_username", ADMIN_USER)
        tab.fill("#id_password", ADMIN_PASSWORD)
        tab.click("input[type=submit]")
        tab.wait_for_url("**/admin/gateway/")
        yield tab
        browser.close()


def test_the_dashboard_follows_failures_without_a_reload(
    playwright_api, site, page, tmp_path
):
    expect = playwright_api.expect
    service = page.locator('tr.gw-service[data-service="pair"]')
    flaky_row = page.locator('tr.gw-replica[data-service="pair"][data-replica="1"]')
    expect(service.locator('[data-field="breaker"]')).to_have_attribute(
        "data-state", "closed"
    )
    expect(service.locator('[data-field="error-rate"]')).to_have_text("–")
    page.evaluate("window.notReloaded = true")

    flaky = site.upstreams["flaky"]
    statuses = []
    with httpx.Client(base_url=site.base_url) as client:
        # Round robin: a few requests reach the failing replica.
        while flaky.server.hits < 2 and len(statuses) < 40:
            statuses.append(client.get("/services/pair/x?cc=no-store").status_code)
    assert HTTPStatus.SERVICE_UNAVAILABLE in statuses

    errors = service.locator('[data-field="error-rate"]')
    expect(errors).to_have_text(re.compile(r"^[1-9]\d*\.\d %$"), timeout=10_000)
    expect(errors).to_have_attribute("data-level", re.compile("some|high"))
    expect(service.locator('[data-field="breaker"]')).to_have_attribute(
        "data-state", "open"
    )
    expect(service.locator('[data-field="breaker"]')).to_contain_text("half-open in")
    expect(flaky_row.locator('[data-field="health"]')).to_have_attribute(
        "data-state", "ejected"
    )
    expect(flaky_row.locator('[data-field="error-rate"]')).to_have_text("100.0 %")
    flow = page.locator("svg.gw-flow-chart")
    expect(flow.locator(".gw-node.gw-ejected")).to_have_count(1)
    expect(flow.locator(".gw-node.gw-open")).to_have_count(1)
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(tmp_path / "gateway-console.png"), full_page=True)
    assert page.errors == []


def test_the_request_flow_shows_a_retried_request_in_order(playwright_api, site, page):
    once = site.upstreams["c"]
    once.fail(1, 503)
    with httpx.Client(base_url=site.base_url) as client:
        for _ in range(10):
            request_id = uuid.uuid4().hex
            client.get(
                "/services/retried/y?cc=no-store", headers={"X-Request-ID": request_id}
            )
            if once.server.fail_next == 0:
                break
    assert once.server.fail_next == 0
    # Recorded just after the answer went out: wait until it has landed.
    for _ in range(50):
        found = page.request.get(
            f"{site.base_url}/admin/gateway/requests.json?id={request_id}"
        )
        if found.json()["requests"]:
            break
        time.sleep(0.05)

    page.goto(f"{site.base_url}/admin/gateway/requests/")
    page.fill("#gw-request-id", request_id)
    page.click(".gw-search input[type=submit]")

    expect = playwright_api.expect
    found = page.locator(f'article.gw-request[data-request-id="{request_id}"]')
    expect(found).to_have_count(1)
    tries = found.locator("ol.gw-attempts li")
    expect(tries).to_have_count(2)
    expect(tries.nth(0)).to_contain_text("replica 1 — server_error 503")
    expect(tries.nth(1)).to_contain_text("replica 2 — success 200")
    expect(found.locator("svg.gw-timeline rect.gw-try")).to_have_count(2)
    expect(found.locator(".gw-final")).to_contain_text("200")
    assert page.errors == []
