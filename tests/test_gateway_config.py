import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from gateway_site.gateway.checks import check_gateway_services
from gateway_site.gateway.conf import EXAMPLE_SERVICES_FILE
from gateway_site.gateway.config import configured, load
from tests.gateway_fixtures import services_toml


@pytest.fixture
def services_file(tmp_path, settings):
    def write(text):
        path = tmp_path / "services.toml"
        path.write_text(text)
        settings.GATEWAY_SERVICES_FILE = path
        return path

    return write


def errors():
    return [(e.id, e.msg) for e in check_gateway_services(None)]


def test_the_example_file_declares_the_four_design_services(monkeypatch):
    for var in ("IMAGE_PROCESSOR_URL", "ML_EMBEDDINGS_URL"):
        monkeypatch.delenv(var, raising=False)
    config, problems = load(EXAMPLE_SERVICES_FILE, {})
    assert problems == []
    got = {
        name: (
            s.urls,
            s.timeout,
            s.max_retries,
            s.retry_delay,
            s.failure_threshold,
            s.recovery_timeout,
        )
        for name, s in config.services.items()
    }
    assert got == {
        "image_processor": (("http://localhost:8001",), 30, 3, 1.0, 5, 30),
        "ml_embeddings": (("http://localhost:8002",), 60, 2, 2.0, 3, 60),
        "ml_classifier": (("http://localhost:8003",), 45, 3, 1.5, 4, 45),
        "ocr_extractor": (("http://localhost:8004",), 90, 2, 3.0, 3, 90),
    }
    assert config.default_ttl == 3600
    assert config.health_ttl == 60
    assert {s.name: (s.ttl, s.per_user) for s in config.strategies} == {
        "processing_results": (86400, False),
        "user_sessions": (1800, True),  # the design's 30 minutes, per user
    }


def test_the_example_file_passes_the_checks(settings):
    settings.GATEWAY_SERVICES_FILE = EXAMPLE_SERVICES_FILE
    assert errors() == []


def test_a_fresh_install_serves_no_service(settings):
    settings.GATEWAY_SERVICES_FILE = None

    config, problems = configured(None, {})

    assert problems == []
    assert config.services == {}
    assert errors() == []


def test_a_design_services_url_alone_serves_it_with_the_examples_values():
    config, problems = configured(None, {"OCR_EXTRACTOR_URL": "http://10.0.0.4:80"})

    assert problems == []
    assert list(config.services) == ["ocr_extractor"]
    ocr = config.services["ocr_extractor"]
    assert (ocr.urls, ocr.timeout, ocr.max_retries) == (("http://10.0.0.4:80",), 90, 2)


def test_a_file_with_no_service_is_valid(services_file):
    services_file("[health]\ninterval = 30\n")

    assert errors() == []


def test_env_overrides_the_url_and_commas_make_replicas():
    config, problems = load(
        EXAMPLE_SERVICES_FILE,
        {"IMAGE_PROCESSOR_URL": "http://10.0.0.1:9000, http://10.0.0.2:9000/"},
    )
    assert problems == []
    assert config.services["image_processor"].urls == (
        "http://10.0.0.1:9000",
        "http://10.0.0.2:9000",
    )


def test_missing_file_is_e010(settings, tmp_path):
    settings.GATEWAY_SERVICES_FILE = tmp_path / "absent.toml"
    [(check_id, message)] = errors()
    assert check_id == "gateway_site.E010"
    assert "absent.toml" in message


def test_invalid_toml_is_e010(services_file):
    services_file("[services.a\nurl=")
    [(check_id, message)] = errors()
    assert check_id == "gateway_site.E010"
    assert "not valid TOML" in message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timeout": -1}, "timeout"),
        ({"timeout": "fast"}, "timeout"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"retry_delay": -0.1}, "retry_delay"),
        ({"health_endpoint": "health"}, "health_endpoint"),
        (
            {"circuit_breaker": {"failure_threshold": 0, "recovery_timeout": 5}},
            "circuit_breaker.failure_threshold",
        ),
        (
            {"circuit_breaker": {"failure_threshold": 3}},
            "circuit_breaker.recovery_timeout",
        ),
    ],
)
def test_bad_values_are_e011_naming_service_and_field(services_file, overrides, field):
    services_file(services_toml("billing", ["http://127.0.0.1:9"], **overrides))
    [(check_id, message)] = errors()
    assert check_id == "gateway_site.E011"
    assert f"services.billing.{field}" in message


@pytest.mark.parametrize(
    "url",
    ["ftp://host", "http://", "localhost:8001", "http://u:p@host", "http://h/?q=1"],
)
def test_bad_urls_are_e011(services_file, url):
    services_file(services_toml("billing", [url]))
    [(check_id, message)] = errors()
    assert check_id == "gateway_site.E011"
    assert "services.billing.url" in message


def test_bad_env_url_is_e011_naming_the_variable(services_file, monkeypatch):
    services_file(services_toml("billing", ["http://127.0.0.1:9"]))
    monkeypatch.setenv("BILLING_URL", "not a url")
    [(check_id, message)] = errors()
    assert check_id == "gateway_site.E011"
    assert "BILLING_URL" in message


def test_unknown_field_is_e012(services_file):
    services_file(services_toml("billing", ["http://127.0.0.1:9"], timeuot=3))
    [(check_id, message)] = errors()
    assert check_id == "gateway_site.E012"
    assert "services.billing.timeuot" in message


def test_timeout_beyond_the_gunicorn_budget_is_e013(services_file, monkeypatch):
    monkeypatch.setenv("GUNICORN_TIMEOUT", "30")
    services_file(services_toml("billing", ["http://127.0.0.1:9"], timeout=60))
    [(check_id, message)] = errors()
    assert check_id == "gateway_site.E013"
    assert "billing" in message


# The checks include the database ones (quick_check, cached per worker).
@pytest.mark.django_db
def test_manage_check_fails_on_a_bad_services_file(services_file):
    services_file("not toml [")
    with pytest.raises(SystemCheckError, match="gateway_site.E010"):
        call_command("check")
