"""The Prometheus configuration and alert rules, checked and exercised by promtool."""

import shutil
import subprocess

import pytest

from tests.conftest import need
from tests.live import BASE_DIR

PROMETHEUS_DIR = BASE_DIR / "docker" / "prometheus"


@pytest.fixture
def promtool():
    path = shutil.which("promtool")
    need(path is not None, "promtool is not installed (apt-get install prometheus)")
    return path


def run(promtool, *args):
    return subprocess.run(
        [promtool, *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_alert_rules_are_valid(promtool):
    result = run(promtool, "check", "rules", "alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_scrape_config_is_valid(promtool):
    result = run(promtool, "check", "config", "prometheus.yml")

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "path", sorted(p.name for p in (PROMETHEUS_DIR / "tests").glob("*.yml"))
)
def test_alert_rule_unit_tests_pass(promtool, path):
    result = run(promtool, "test", "rules", f"tests/{path}")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_unit_test():
    import yaml

    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"]}
    tested = set()
    for path in (PROMETHEUS_DIR / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])

    assert alerts == {
        "HighErrorRate",
        "ServiceDown",
        "UpstreamServiceDown",
        "HighLatency",
        "SignatureFailures",
        "ProcessingQueueBacklog",
    }
    assert tested == alerts
