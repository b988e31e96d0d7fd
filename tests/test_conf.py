from datetime import timedelta

import pytest
from django.test import override_settings

from gateway_site.gateway.conf import GatewaySettings
from gateway_site.gateway.conf import conf as gateway_conf
from likes.conf import Setting, Settings, conf


def test_a_setting_follows_override_settings():
    with override_settings(LIKES_READ_CACHE_SECONDS=60):
        assert conf.READ_CACHE_SECONDS == 60
    with override_settings(LIKES_READ_CACHE_SECONDS=0):
        assert conf.READ_CACHE_SECONDS == 0


@pytest.mark.parametrize(
    ("owner", "name", "setting", "default"),
    [
        (conf, "READ_CACHE_SECONDS", "LIKES_READ_CACHE_SECONDS", 5),
        (conf, "BATCH_MAX", "LIKES_BATCH_MAX", 100),
        (conf, "POST_RATE", "LIKES_POST_RATE", "10/m"),
        (conf, "DEDUPE", "LIKES_DEDUPE", True),
        (conf, "SITE_URL", "LIKES_SITE_URL", ""),
        (gateway_conf, "MAX_BODY_SIZE", "GATEWAY_MAX_BODY_SIZE", 10 * 1024 * 1024),
        (gateway_conf, "STORE_PREFIX", "GATEWAY_STORE_PREFIX", "gw:"),
        (gateway_conf, "JWT_ALGORITHM", "JWT_ALGORITHM", "HS256"),
    ],
)
def test_a_setting_has_its_default_when_unset(settings, owner, name, setting, default):
    delattr(settings, setting)

    assert getattr(owner, name) == default


@pytest.mark.parametrize("value", [None, ""])
def test_a_text_setting_reads_none_and_empty_as_empty(settings, value):
    settings.LIKES_SITE_URL = value
    settings.LIKES_CLIENT_IP_HEADER = value
    settings.JWT_SECRET_KEY = value

    assert conf.SITE_URL == conf.CLIENT_IP_HEADER == gateway_conf.JWT_SECRET_KEY == ""


def test_computed_gateway_settings_follow_their_setting(settings, tmp_path):
    settings.JWT_ACCESS_TOKEN_EXPIRE_MINUTES = 2
    settings.JWT_REFRESH_TOKEN_EXPIRE_DAYS = 3
    settings.GATEWAY_SERVICES_FILE = str(tmp_path / "services.toml")

    computed = (
        gateway_conf.ACCESS_TOKEN_LIFETIME,
        gateway_conf.REFRESH_TOKEN_LIFETIME,
        gateway_conf.SERVICES_FILE,
    )
    assert computed == (
        timedelta(minutes=2),
        timedelta(days=3),
        tmp_path / "services.toml",
    )


@pytest.mark.parametrize("settings_class", [Settings, GatewaySettings])
def test_every_setting_is_documented(settings_class):
    found = [
        value for value in vars(settings_class).values() if isinstance(value, Setting)
    ]

    assert found
    assert all(setting.__doc__ for setting in found)
