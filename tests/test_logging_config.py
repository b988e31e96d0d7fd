"""The LOGGING setting: console always, rotating JSON files under LOG_DIR."""

import json
import logging

import httpx
import pytest

from gateway_site.logs import MAX_BYTES, build_logging, level_name
from tests.live import gunicorn, manage, project_env


def test_without_a_log_dir_logs_go_to_the_console_only():
    config = build_logging(debug=False, level="INFO", log_dir=None)

    assert set(config["handlers"]) == {"console"}
    assert config["handlers"]["console"]["formatter"] == "json"
    assert config["root"]["handlers"] == ["console"]


def test_the_console_is_human_readable_when_debugging():
    config = build_logging(debug=True, level="DEBUG", log_dir=None)

    assert config["handlers"]["console"]["formatter"] == "human"
    assert config["loggers"]["likes"]["level"] == "DEBUG"


def test_log_files_rotate_at_10_mb(tmp_path):
    config = build_logging(debug=False, level="INFO", log_dir=tmp_path)

    file, errors = config["handlers"]["file"], config["handlers"]["error_file"]
    assert MAX_BYTES == 10 * 1024 * 1024
    assert (file["maxBytes"], file["backupCount"]) == (MAX_BYTES, 5)
    assert (errors["maxBytes"], errors["backupCount"]) == (MAX_BYTES, 3)
    assert errors["level"] == "ERROR"
    assert file["formatter"] == errors["formatter"] == "json"
    for handler in config["handlers"].values():
        assert handler["filters"] == ["request_context", "redact"]


@pytest.mark.parametrize(("value", "level"), [("debug", "DEBUG"), ("LOUD", "INFO")])
def test_log_levels_are_case_insensitive_and_fall_back_to_info(value, level):
    assert level_name(value) == level


def test_the_configured_loggers_are_the_projects(settings):
    assert set(settings.LOGGING["loggers"]) == {"django", "gateway_site", "likes"}
    assert logging.getLogger("likes.services").getEffectiveLevel() <= logging.INFO


LOG_SOME = (
    "import logging;"
    "logging.getLogger('likes.services').error('cannot count: password=%s', 'pw12345');"
    "logging.getLogger('gateway_site.gateway').info('upstream fine')"
)


def read_json_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_log_dir_gets_a_json_log_and_an_error_log(tmp_path):
    log_dir = tmp_path / "logs"
    env = project_env(DATA_DIR=str(tmp_path), LOG_DIR=str(log_dir))

    result = manage("shell", "-c", LOG_SOME, env=env)

    assert result.returncode == 0
    everything = read_json_lines(log_dir / "gateway_site.log")
    errors = read_json_lines(log_dir / "gateway_site-errors.log")
    assert [r["message"] for r in everything] == [
        "cannot count: password=[REDACTED]",
        "upstream fine",
    ]
    assert [r["logger"] for r in errors] == ["likes.services"]
    assert errors[0]["level"] == "ERROR"
    assert "pw12345" not in (log_dir / "gateway_site-errors.log").read_text()
    # The console gets JSON too (not debugging).
    assert json.loads(result.stderr.splitlines()[0])["logger"] == "likes.services"


def test_the_console_is_human_readable_with_debug(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), DJANGO_DEBUG="true")

    result = manage("shell", "-c", LOG_SOME, env=env)

    first = result.stderr.splitlines()[0]
    assert "ERROR [likes.services:1]" in first
    assert "password=[REDACTED]" in first
    assert not (tmp_path / "logs").exists()


@pytest.mark.live
def test_gunicorn_workers_write_request_ids_to_the_log_file(tmp_path):
    log_dir = tmp_path / "logs"
    env = project_env(DATA_DIR=str(tmp_path), LOG_DIR=str(log_dir))
    manage("migrate", "--noinput", env=env)

    with gunicorn(env, workers=2) as server:
        for n in range(6):
            response = httpx.get(
                f"{server.base_url}/missing-{n}",
                headers={"X-Request-ID": f"live-{n}"},
                timeout=10,
            )
            assert response.headers["X-Request-ID"] == f"live-{n}"

    records = [
        r
        for r in read_json_lines(log_dir / "gateway_site.log")
        if r["logger"] == "django.request"
    ]
    assert sorted((r["request_id"], r["message"]) for r in records) == [
        (f"live-{n}", f"Not Found: /missing-{n}") for n in range(6)
    ]
    assert {r["client_ip"] for r in records} == {"127.0.0.0/24"}
