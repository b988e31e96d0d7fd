"""System checks for the likes app's settings."""

from django.core.checks import Error, Warning, register

from likes import reactions
from likes.conf import conf
from likes.ratelimit import is_rate

MIN_API_KEY_LENGTH = 20


@register()
def check_settings(app_configs, **kwargs):
    errors = []
    batch_max = conf.BATCH_MAX
    if not isinstance(batch_max, int) or isinstance(batch_max, bool) or batch_max < 1:
        errors.append(
            Error(
                "LIKES_BATCH_MAX must be a positive integer.",
                hint=f"It is {batch_max!r}.",
                id="likes.E001",
            )
        )
    for name, rate in (
        ("LIKES_POST_RATE", conf.POST_RATE),
        ("LIKES_GET_RATE", conf.GET_RATE),
        ("LIKES_API_KEY_FAILURE_RATE", conf.API_KEY_FAILURE_RATE),
    ):
        if rate and not is_rate(rate):
            errors.append(
                Error(
                    f"{name} is not a rate: {rate!r}.",
                    hint='Use "<count>/<period>", e.g. "10/m" or "100/h"; empty for '
                    "no limit.",
                    id="likes.E002",
                )
            )
    key = conf.ADMIN_API_KEY
    if key and len(key) < MIN_API_KEY_LENGTH:
        errors.append(
            Warning(
                f"ADMIN_API_KEY is shorter than {MIN_API_KEY_LENGTH} characters.",
                hint="Use a long random value, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
                id="likes.W001",
            )
        )
    errors.extend(check_webhooks())
    _, problems = reactions.parse(conf.REACTIONS)
    if problems:
        errors.append(
            Error(
                "LIKES_REACTIONS is not a list of reactions: " + " ".join(problems),
                hint="Comma-separated emoji or short names (a-z, 0-9, '-', '_'), at "
                f'most {reactions.MAX_REACTIONS}, e.g. "👍,❤️,🎉".',
                id="likes.E005",
            )
        )
    return errors


def check_webhooks():
    errors = []
    delivery = conf.WEBHOOK_DELIVERY
    if delivery not in ("auto", "command"):
        errors.append(
            Error(
                f"LIKES_WEBHOOK_DELIVERY is {delivery!r}.",
                hint='Use "auto" (gunicorn runs the sender beside its workers) or '
                '"command" (run `manage.py likes_deliver` yourself).',
                id="likes.E003",
            )
        )
    for name, least, most in (
        ("POLL_SECONDS", 0.05, 3600),
        ("RETRY_SECONDS", 0.05, 86400),
        ("TIMEOUT", 0.5, 60),  # a sender holds its rows 120 s
        ("MAX_ATTEMPTS", 1, 100),
    ):
        value = getattr(conf, f"WEBHOOK_{name}")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not least <= value <= most:
            errors.append(
                Error(
                    f"LIKES_WEBHOOK_{name} must be a number from {least} to {most}.",
                    hint=f"It is {value!r}.",
                    id="likes.E004",
                )
            )
    return errors
