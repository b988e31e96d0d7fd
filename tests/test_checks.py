import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from likes.checks import check_settings


@pytest.mark.parametrize("value", [0, -1, "10", 2.5, True])
def test_bad_batch_max_is_an_error(settings, value):
    settings.LIKES_BATCH_MAX = value

    assert [e.id for e in check_settings(None)] == ["likes.E001"]


def test_short_admin_api_key_is_a_warning(settings):
    settings.LIKES_ADMIN_API_KEY = "short"

    assert [e.id for e in check_settings(None)] == ["likes.W001"]


@pytest.mark.parametrize("name", ["LIKES_POST_RATE", "LIKES_GET_RATE"])
@pytest.mark.parametrize("value", ["10", "ten/m", "10/minute", "0/m"])
def test_a_malformed_likes_rate_is_an_error(settings, name, value):
    setattr(settings, name, value)

    assert [e.id for e in check_settings(None)] == ["likes.E002"]


def test_an_empty_likes_rate_means_no_limit_and_passes(settings):
    settings.LIKES_GET_RATE = ""

    assert check_settings(None) == []


def test_defaults_pass(settings):
    settings.LIKES_ADMIN_API_KEY = "x" * 32

    assert check_settings(None) == []


def test_check_command_fails_on_a_likes_error(settings):
    settings.LIKES_BATCH_MAX = 0

    with pytest.raises(SystemCheckError, match="likes.E001"):
        call_command("check")
