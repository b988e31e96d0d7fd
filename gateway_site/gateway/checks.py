"""System checks of the gateway: its services file, bearer tokens and tiers."""

import os

from django.conf import settings
from django.core.checks import Error, register

from gateway_site.server import configured_timeout

# --- Bearer tokens (JWT) and rate-limit tiers -----------------------------------

RATE_SETTINGS = (
    "ADMIN_LOGIN_RATE",
    "GATEWAY_LOGIN_RATE",
    "GATEWAY_RATE_ANONYMOUS",
    "GATEWAY_RATE_AUTHENTICATED",
    "GATEWAY_RATE_ADMIN",
    "GATEWAY_RATE_PROCESSING",
)


@register()
def check_jwt(app_configs, **kwargs):
    """Refuse JWT settings that would sign weakly or not at all."""
    from gateway_site.gateway.auth import ALGORITHMS, HMAC_KEY_BYTES
    from gateway_site.gateway.conf import conf

    errors = []
    algorithm = conf.JWT_ALGORITHM
    key = conf.JWT_SECRET_KEY
    if algorithm not in ALGORITHMS:
        errors.append(
            Error(
                f"JWT_ALGORITHM {algorithm!r} is not supported.",
                hint="Use one of " + ", ".join(sorted(ALGORITHMS)) + ".",
                id="gateway_site.E101",
            )
        )
    elif algorithm in HMAC_KEY_BYTES:
        if key and not hmac_key_usable(algorithm, key):
            errors.append(
                Error(
                    f"JWT_SECRET_KEY is a PEM key, which {algorithm} cannot use.",
                    hint="Use a long random secret for HS*, or set JWT_ALGORITHM "
                    "to the RS*/ES* algorithm of that key.",
                    id="gateway_site.E102",
                )
            )
        elif key and len(key.encode()) < HMAC_KEY_BYTES[algorithm]:
            errors.append(
                Error(
                    f"JWT_SECRET_KEY is shorter than {HMAC_KEY_BYTES[algorithm]} "
                    f"bytes, too short for {algorithm}.",
                    hint="Use a long random value, e.g. the output of "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`, "
                    "or unset it to derive one from DJANGO_SECRET_KEY.",
                    id="gateway_site.E102",
                )
            )
    else:
        problem = asymmetric_key_problem(algorithm, key)
        if problem:
            errors.append(
                Error(
                    f"JWT_ALGORITHM {algorithm} needs {problem}.",
                    hint="Set JWT_SECRET_KEY to a PEM private key and install the "
                    "cryptography package, or use HS256.",
                    id="gateway_site.E103",
                )
            )
    for name in ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "JWT_REFRESH_TOKEN_EXPIRE_DAYS"):
        value = getattr(settings, name, 1)
        if type(value) is not int or value < 1:
            errors.append(
                Error(
                    f"{name} must be a positive whole number, not {value!r}.",
                    id="gateway_site.E104",
                )
            )
    return errors


def hmac_key_usable(algorithm: str, key: str) -> bool:
    """Whether PyJWT accepts ``key`` for an HS* algorithm (it refuses PEM keys)."""
    import jwt

    try:
        jwt.PyJWS().get_algorithm_by_name(algorithm).prepare_key(key)
    except jwt.InvalidKeyError:
        return False
    return True


def asymmetric_key_problem(algorithm: str, key: str) -> str:
    """What an RS*/ES* configuration lacks, or "" when the key loads."""
    import jwt
    from jwt.algorithms import has_crypto

    if not has_crypto:
        return "the cryptography package"
    if not key:
        return "JWT_SECRET_KEY set to a PEM private key"
    try:
        private = jwt.PyJWS().get_algorithm_by_name(algorithm).prepare_key(key)
    except Exception:  # any parse failure: the key is unusable
        return "a JWT_SECRET_KEY that is a valid PEM private key"
    if not hasattr(private, "public_key"):
        return "a private key in JWT_SECRET_KEY, not a public one"
    return ""


@register()
def check_gateway_rates(app_configs, **kwargs):
    """Refuse rates django-ratelimit would misread."""
    from likes.ratelimit import is_rate

    return [
        Error(
            f"{name} is not a rate: {getattr(settings, name, None)!r}.",
            hint='Use "<count>/<period>", e.g. "100/h" or "5/m".',
            id="gateway_site.E105",
        )
        for name in RATE_SETTINGS
        if not is_rate(getattr(settings, name, None))
    ]


# --- Services file (gateway_site/gateway/config.py) ----------------------------

SERVICES_CHECK_IDS = {
    "file": "gateway_site.E010",
    "value": "gateway_site.E011",
    "unknown": "gateway_site.E012",
}


@register()
def check_gateway_services(app_configs, **kwargs):
    """The services file parses, and every service and field in it is valid."""
    from gateway_site.gateway.conf import EXAMPLE_SERVICES_FILE, conf
    from gateway_site.gateway.config import configured
    from gateway_site.gateway.retry import budget

    path = conf.SERVICES_FILE
    config, problems = configured(path, os.environ)
    path = path or EXAMPLE_SERVICES_FILE
    errors = [
        Error(
            f"Gateway services file {path}: {problem.where} {problem.message}.",
            hint="Fix the file (GATEWAY_SERVICES_FILE) or the environment variable "
            "named; README.md, 'API gateway', lists the fields.",
            id=SERVICES_CHECK_IDS[problem.kind],
        )
        for problem in problems
    ]
    limit = budget(configured_timeout())
    for service in config.services.values():
        if service.timeout > limit:
            errors.append(
                Error(
                    f"Gateway service {service.name}: timeout {service.timeout:g} s "
                    f"exceeds the {limit:g} s that GUNICORN_TIMEOUT="
                    f"{configured_timeout()} leaves for a proxied request.",
                    hint=f"Lower services.{service.name}.timeout or raise "
                    "GUNICORN_TIMEOUT.",
                    id="gateway_site.E013",
                )
            )
    return errors
