"""Prometheus metrics: labels, access to /metrics, likes and upstream metrics,
and exact totals across gunicorn workers."""

import os
import sys
import time
from http import HTTPStatus

import httpx
import psutil
import pytest
from django.core.checks import run_checks
from prometheus_client.parser import text_string_to_metric_families

from gateway_site import metrics
from tests.live import fire, gunicorn, manage, project_env

pytestmark = pytest.mark.django_db

KEY = "metrics-test-key-0123456789abcdef"
LIKE = "/likes/<post_id>"


def value(text: str, name: str, **labels) -> float:
    """The sample ``name`` whose labels include ``labels``; 0 when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return sample.value
    return 0.0


def scrape(client, **extra) -> str:
    response = client.get("/metrics", **extra)
    assert response.status_code == HTTPStatus.OK, response.content
    return response.content.decode()


@pytest.fixture
def stats_key(settings):
    settings.LIKES_ADMIN_API_KEY = KEY
    return KEY


# --- Labels ---------------------------------------------------------------------


def test_requests_are_counted_by_route_template(client):
    before = scrape(client)

    for post_id in ("a", "b", "c"):
        client.get(f"/likes/{post_id}")

    after = scrape(client)
    labels = {"method": "GET", "endpoint": LIKE, "status_code": "200"}
    assert value(after, "requests_total", **labels) - value(
        before, "requests_total", **labels
    ) == pytest.approx(3)
    hist = {"method": "GET", "endpoint": LIKE}
    assert value(after, "request_duration_seconds_count", **hist) - value(
        before, "request_duration_seconds_count", **hist
    ) == pytest.approx(3)
    assert 'endpoint="/likes/a"' not in after


def test_the_histogram_has_the_fine_and_the_design_buckets(client):
    client.get("/likes/p")

    text = scrape(client)

    buckets = {
        sample.labels["le"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "request_duration_seconds_bucket"
    }
    assert buckets == {
        "0.005",
        "0.01",
        "0.025",
        "0.05",
        "0.1",
        "0.5",
        "1.0",
        "2.5",
        "5.0",
        "10.0",
        "+Inf",
    }


def test_unmatched_urls_share_one_label(client):
    before = scrape(client)

    client.get("/no/such/page")
    client.get("/another-missing-page")

    after = scrape(client)
    labels = {"endpoint": "<unmatched>", "status_code": "404"}
    assert value(after, "requests_total", **labels) - value(
        before, "requests_total", **labels
    ) == pytest.approx(2)
    assert "no/such/page" not in after


def test_unknown_methods_share_one_label(client):
    before = scrape(client)

    client.generic("BREW", "/likes/p")
    client.generic("PROPFIND", "/likes/p")

    after = scrape(client)
    labels = {"method": "OTHER", "endpoint": LIKE}
    assert value(after, "requests_total", **labels) - value(
        before, "requests_total", **labels
    ) == pytest.approx(2)
    assert "BREW" not in after


def test_endpoint_labels_drop_converter_names():
    assert metrics.endpoint_label("likes/<anytext:post_id>") == "/likes/<post_id>"
    assert metrics.endpoint_label("api/stats") == "/api/stats"


def test_metrics_can_be_turned_off(client, settings):
    settings.METRICS_ENABLED = False
    before = metrics.requests_total.labels("GET", LIKE, "200")._value.get()

    client.get("/likes/p")
    response = client.get("/metrics")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["code"] == "not_found"
    assert metrics.requests_total.labels("GET", LIKE, "200")._value.get() == before


# --- Access -------------------------------------------------------------------------


def test_loopback_may_read_metrics(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/plain")
    assert "requests_total" in response.content.decode()


def test_ipv6_loopback_may_read_metrics(client):
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == HTTPStatus.OK


def test_other_addresses_get_403_json(client, stats_key):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.5")

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "permission_denied"
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}],
    ids=["x-api-key", "bearer"],
)
def test_a_stats_api_key_opens_metrics_from_anywhere(client, stats_key, headers):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.5", headers=headers)

    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    "headers",
    [{"X-API-Key": "wrong-key-wrong-key-wrong"}, {"Authorization": "Basic " + KEY}],
)
def test_a_wrong_key_is_refused(client, stats_key, headers):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.5", headers=headers)

    assert response.status_code == HTTPStatus.FORBIDDEN


def test_a_key_created_in_the_admin_opens_metrics(client):
    from likes.models import APIKey

    _, key = APIKey.objects.create_key(name="prometheus")

    response = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.5", headers={"X-API-Key": key}
    )

    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    "header", ["X-Forwarded-For", "Forwarded", "CF-Connecting-IP", "X-Real-IP"]
)
def test_a_proxied_request_from_loopback_is_not_trusted(client, header):
    response = client.get(
        "/metrics", REMOTE_ADDR="127.0.0.1", headers={header: "198.51.100.7"}
    )

    assert response.status_code == HTTPStatus.FORBIDDEN


def test_behind_the_client_ip_header_the_real_client_is_judged(client, settings):
    settings.LIKES_CLIENT_IP_HEADER = "CF-Connecting-IP"

    outside = client.get(
        "/metrics",
        REMOTE_ADDR="127.0.0.1",
        headers={"CF-Connecting-IP": "198.51.100.7"},
    )
    local = client.get(
        "/metrics", REMOTE_ADDR="127.0.0.1", headers={"CF-Connecting-IP": "127.0.0.1"}
    )

    assert outside.status_code == HTTPStatus.FORBIDDEN
    assert local.status_code == HTTPStatus.OK


@pytest.mark.parametrize("header", [None, "", "not-an-address", "127.0.0.1, 10.0.0.1"])
def test_behind_the_client_ip_header_a_request_without_it_is_refused(
    client, settings, header
):
    """Fail closed: the proxy's own loopback address must not let it in."""
    settings.LIKES_CLIENT_IP_HEADER = "CF-Connecting-IP"
    headers = {} if header is None else {"CF-Connecting-IP": header}

    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", headers=headers)

    assert response.status_code == HTTPStatus.FORBIDDEN


def test_allowed_networks_are_configurable(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "2001:db8::/32"]

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == HTTPStatus.OK
    assert (
        client.get("/metrics", REMOTE_ADDR="2001:db8::9").status_code == HTTPStatus.OK
    )
    assert (
        client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code
        == HTTPStatus.FORBIDDEN
    )


def test_require_key_closes_metrics_to_addresses(client, settings, stats_key):
    settings.METRICS_REQUIRE_KEY = True

    without = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    with_key = client.get(
        "/metrics", REMOTE_ADDR="127.0.0.1", headers={"X-API-Key": KEY}
    )

    assert without.status_code == HTTPStatus.FORBIDDEN
    assert with_key.status_code == HTTPStatus.OK


def test_metrics_only_answer_reads(client):
    response = client.post("/metrics")

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response.json()["code"] == "method_not_allowed"


# --- Likes and upstream metrics -------------------------------------------------------


def test_likes_counters_follow_the_services(client):
    before = scrape(client)

    first = client.post("/likes/counted", REMOTE_ADDR="192.0.2.1").json()
    repeat = client.post("/likes/counted", REMOTE_ADDR="192.0.2.1").json()
    client.delete("/likes/counted", headers={"X-Like-Receipt": first["receipt"]})

    after = scrape(client)
    assert repeat["duplicate"] is True
    for name in ("likes_added_total", "likes_duplicates_total", "likes_removed_total"):
        assert value(after, name) - value(before, name) == pytest.approx(1), name


def test_upstream_metrics_are_exposed(client):
    before = scrape(client)

    metrics.observe_upstream("image_processor", "success", 0.02)
    metrics.observe_upstream("image_processor", "timeout", 30.0)
    metrics.observe_upstream("image_processor", "circuit_open")
    metrics.set_breaker_state("image_processor", "half-open")
    metrics.set_service_health("ocr_extractor", False)

    after = scrape(client)
    svc = {"service": "image_processor"}
    for outcome in ("success", "timeout", "circuit_open"):
        delta = value(after, "upstream_requests_total", outcome=outcome, **svc) - value(
            before, "upstream_requests_total", outcome=outcome, **svc
        )
        assert delta == pytest.approx(1), outcome
    count = "upstream_request_duration_seconds_count"
    assert value(after, count, **svc) - value(before, count, **svc) == pytest.approx(2)
    assert value(after, "circuit_breaker_state", **svc) == 1
    assert value(after, "service_health", service="ocr_extractor") == 0


def test_unknown_upstream_outcomes_and_states_are_refused():
    with pytest.raises(ValueError):
        metrics.observe_upstream("image_processor", "meh")
    with pytest.raises(KeyError):
        metrics.set_breaker_state("image_processor", "ajar")


# --- Checks ------------------------------------------------------------------


def check_ids(**kwargs):
    return {message.id for message in run_checks(**kwargs)}


def test_observability_defaults_pass_the_checks():
    ids = check_ids()

    assert not {i for i in ids if i.startswith("gateway_site.E02")}


def test_an_invalid_allowed_network_is_an_error(settings):
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1", "not-a-network"]

    assert "gateway_site.E020" in check_ids()


def test_an_invalid_admin_allowed_network_is_an_error(settings):
    settings.ADMIN_ALLOWED_IPS = ["203.0.113.0/24", "10.0.0.0/33"]

    assert "gateway_site.E025" in check_ids()


def test_an_unwritable_log_dir_is_an_error(settings, tmp_path):
    missing = tmp_path / "file-not-dir"
    missing.write_text("")
    settings.LOG_DIR = missing

    assert "gateway_site.E021" in check_ids()


def test_an_unknown_log_level_is_an_error(settings):
    settings.LOG_LEVEL = "LOUD"

    assert "gateway_site.E022" in check_ids()


def test_an_otlp_endpoint_that_is_not_a_url_is_an_error(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "jaeger:4318")

    assert "gateway_site.E023" in check_ids()


def test_an_otlp_endpoint_without_opentelemetry_installed_is_an_error(monkeypatch):
    from gateway_site import checks

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert "gateway_site.E024" not in check_ids()  # installed here (dev.txt)

    monkeypatch.setitem(sys.modules, checks.TRACING_MODULE, None)  # as if absent
    assert "gateway_site.E024" in check_ids()


def test_check_command_refuses_a_bad_metrics_network(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), METRICS_ALLOWED_IPS="10.0.0.0/33")

    result = manage("check", env=env, check=False)

    assert result.returncode != 0
    assert "gateway_site.E020" in result.stderr


# --- Across gunicorn workers -------------------------------------------------


def wait_for_recycled_workers(directory, timeout: float = 20) -> None:
    """Until a worker that has written counters so far has exited (recycled)."""
    pids = {
        int(name.split("_")[-1].split(".")[0])
        for name in os.listdir(directory)
        if name.startswith("counter_")
    }
    deadline = time.monotonic() + timeout
    while all(psutil.pid_exists(pid) for pid in pids):
        assert time.monotonic() < deadline, "no worker was recycled"
        time.sleep(0.1)


@pytest.mark.live
def test_totals_are_exact_across_two_workers_and_worker_restarts(tmp_path):
    env = project_env(
        DATA_DIR=str(tmp_path),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        LIKES_DEDUPE="off",
        RATELIMIT_ENABLE="false",
        # Workers are recycled several times during the run: their counters
        # must survive them, and their live gauges must go with them.
        GUNICORN_MAX_REQUESTS="40",
    )
    manage("migrate", "--noinput", env=env)
    gets, posts = 300, 60

    # A connection per request: a worker past its limit closes each kept-alive
    # connection after its answer, and a request the client sent on one at that
    # moment is lost in transit (why recycling is off by default).
    fresh = {"Connection": "close"}
    with gunicorn(env, workers=2) as server:
        get_outcomes = fire(
            "GET",
            f"{server.base_url}/likes/live",
            total=gets,
            concurrency=8,
            headers=fresh,
        )
        wait_for_recycled_workers(tmp_path / "prometheus")
        post_outcomes = fire(
            "POST",
            f"{server.base_url}/likes/live",
            total=posts,
            concurrency=4,
            headers=fresh,
        )
        text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
        files = os.listdir(tmp_path / "prometheus")

    assert get_outcomes == {HTTPStatus.OK: gets}
    assert post_outcomes == {HTTPStatus.OK: posts}
    get_labels = {"method": "GET", "endpoint": LIKE, "status_code": "200"}
    post_labels = {"method": "POST", "endpoint": LIKE, "status_code": "200"}
    assert value(text, "requests_total", **get_labels) == gets
    assert value(text, "requests_total", **post_labels) == posts
    assert (
        value(text, "request_duration_seconds_count", method="GET", endpoint=LIKE)
        == gets
    )
    assert value(text, "likes_added_total") == posts
    # The scrape itself is the one request in progress.
    assert value(text, "active_connections") == 1
    counters = [f for f in files if f.startswith("counter_")]
    live_gauges = [f for f in files if f.startswith("gauge_livesum_")]
    assert len(counters) > 2, files  # recycled workers left their counts
    assert len(live_gauges) <= 3, files  # ...but not their live gauges


def test_metric_files_live_in_memory_by_default(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.METRICS_DIR)",
        env=env,
    )

    path = result.stdout.strip().splitlines()[-1]
    assert path.startswith("/dev/shm/gateway-site-"), path
    other = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.METRICS_DIR)",
        env={**env, "DATA_DIR": str(tmp_path / "other")},
    )
    assert other.stdout.strip().splitlines()[-1] != path  # one per DATA_DIR


@pytest.mark.live
def test_metric_files_are_cleared_when_gunicorn_starts(tmp_path):
    env = project_env(
        DATA_DIR=str(tmp_path),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        RATELIMIT_ENABLE="false",
    )
    manage("migrate", "--noinput", env=env)
    labels = {"method": "GET", "endpoint": LIKE, "status_code": "200"}

    with gunicorn(env, workers=2) as server:
        fire("GET", f"{server.base_url}/likes/x", total=25, concurrency=4)
    (tmp_path / "prometheus" / "keep-me.txt").write_text("not a metric file")
    with gunicorn(env, workers=2) as server:
        fire("GET", f"{server.base_url}/likes/x", total=7, concurrency=2)
        text = httpx.get(f"{server.base_url}/metrics", timeout=10).text

    assert value(text, "requests_total", **labels) == 7
    assert (tmp_path / "prometheus" / "keep-me.txt").exists()


# --- Process hooks (gateway_site/observability.py) -------------------------------


def test_gunicorn_start_clears_only_metric_files(tmp_path, monkeypatch):
    from gateway_site import observability

    (tmp_path / "counter_123.db").write_bytes(b"x")
    (tmp_path / "gauge_livesum_123.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    observability.gunicorn_on_starting(server=None)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_dead_workers_live_gauges_go_and_its_counters_stay(tmp_path, monkeypatch):
    from gateway_site import observability

    for name in ("counter_77.db", "gauge_livesum_77.db", "gauge_livesum_78.db"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    observability.worker_exited(77)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_77.db",
        "gauge_livesum_78.db",
    ]


def test_multiprocess_metrics_use_the_configured_directory(
    tmp_path, monkeypatch, settings
):
    from gateway_site import observability

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "shared"))

    assert observability.use_multiprocess_metrics() == tmp_path / "shared"
    assert (tmp_path / "shared").is_dir()
    settings.METRICS_ENABLED = False
    assert observability.use_multiprocess_metrics() is None


def test_tracing_stays_off_without_an_endpoint(monkeypatch):
    from gateway_site import observability

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)

    assert observability.setup_tracing() is False
    assert observability.tracing_enabled() is False
