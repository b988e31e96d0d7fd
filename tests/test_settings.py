import json
import subprocess
import sys

import pytest

from tests.live import BASE_DIR, BIN, free_port, manage, project_env

PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "CORS": settings.CORS_ALLOWED_ORIGINS,
    "DB": {
        key: settings.DATABASES["default"][key]
        for key in ("ENGINE", "NAME", "CONN_MAX_AGE")
    },
    "DB_OPTIONS": settings.DATABASES["default"].get("OPTIONS", {}),
    "CACHE": settings.CACHES["default"],
}))
"""


def load_settings(**env) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        env=project_env(**env),
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_production_refuses_to_start_without_secret_key(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path))
    del env["DJANGO_SECRET_KEY"]

    result = manage("check", env=env, check=False)

    assert result.returncode != 0
    assert "gateway_site.E001" in result.stderr
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_gunicorn_refuses_to_start_without_secret_key(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), API_GATEWAY_PORT=str(free_port()))
    del env["DJANGO_SECRET_KEY"]

    result = subprocess.run(
        [str(BIN / "gunicorn"), "-c", str(BASE_DIR / "gateway_site/gunicorn.conf.py")],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "Refusing to start" in result.stderr


def test_debug_runs_with_a_dev_only_key(tmp_path):
    env = project_env(DATA_DIR=str(tmp_path), DJANGO_DEBUG="true")
    del env["DJANGO_SECRET_KEY"]

    assert manage("check", env=env, check=False).returncode == 0


def test_defaults_are_the_embedded_mode(tmp_path):
    loaded = load_settings(DATA_DIR=str(tmp_path))

    assert loaded["DEBUG"] is False
    assert loaded["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1"]
    assert loaded["CORS"] == ["http://localhost:1313", "http://127.0.0.1:1313"]
    assert loaded["DB"]["ENGINE"] == "django.db.backends.sqlite3"
    assert loaded["DB"]["NAME"] == str(tmp_path / "likes.sqlite3")
    assert loaded["DB"]["CONN_MAX_AGE"] is None  # persistent connections
    assert loaded["DB_OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in loaded["DB_OPTIONS"]["init_command"]
    assert "busy_timeout" in loaded["DB_OPTIONS"]["init_command"]
    assert loaded["CACHE"]["BACKEND"] == (
        "gateway_site.diskcache_backend.PersistentDjangoCache"
    )
    assert loaded["CACHE"]["LOCATION"] == str(tmp_path / "cache")


def test_lists_accept_commas_or_a_json_list(tmp_path):
    loaded = load_settings(
        DATA_DIR=str(tmp_path),
        ALLOWED_HOSTS="api.example.com, localhost",
        CORS_ORIGINS='["https://blog.example.com", "http://localhost:1313"]',
    )

    assert loaded["ALLOWED_HOSTS"] == ["api.example.com", "localhost"]
    assert loaded["CORS"] == ["https://blog.example.com", "http://localhost:1313"]


def test_database_and_redis_urls_switch_to_the_scaled_out_mode(tmp_path):
    loaded = load_settings(
        DATA_DIR=str(tmp_path),
        DATABASE_URL="postgres://u:p@db.internal:5432/likes",
        REDIS_URL="redis://cache.internal:6379/0",
    )

    assert loaded["DB"]["ENGINE"] == "django.db.backends.postgresql"
    assert loaded["DB"]["NAME"] == "likes"
    assert loaded["CACHE"]["BACKEND"] == "django_redis.cache.RedisCache"
    assert loaded["CACHE"]["LOCATION"] == "redis://cache.internal:6379/0"


def test_env_file_is_read_but_real_environment_wins(tmp_path):
    env_file = tmp_path / "site.env"
    env_file.write_text(
        "ALLOWED_HOSTS=from-file.example\nCORS_ORIGINS=https://f.example\n"
    )

    loaded = load_settings(
        DATA_DIR=str(tmp_path),
        DJANGO_ENV_FILE=str(env_file),
        CORS_ORIGINS="https://e.example",
    )

    assert loaded["ALLOWED_HOSTS"] == ["from-file.example"]
    assert loaded["CORS"] == ["https://e.example"]


@pytest.mark.parametrize("workers", ["2", "3"])
def test_process_local_cache_with_several_workers_is_refused(
    settings, monkeypatch, workers
):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    }
    monkeypatch.setenv("WEB_CONCURRENCY", workers)

    with pytest.raises(SystemCheckError, match="gateway_site.E002"):
        call_command("check")


def test_process_local_cache_with_one_worker_is_fine(settings, monkeypatch):
    from gateway_site.checks import check_shared_cache

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    }
    monkeypatch.setenv("WEB_CONCURRENCY", "1")

    assert check_shared_cache(None) == []
