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


def test_defaults_pass(settings):
    settings.LIKES_ADMIN_API_KEY = "x" * 32

    assert check_settings(None) == []


def test_check_command_fails_on_a_likes_error(settings):
    settings.LIKES_BATCH_MAX = 0

    with pytest.raises(SystemCheckError, match="likes.E001"):
        call_command("check")
