import base64
import hashlib
import hmac
import json
from datetime import timedelta
from http import HTTPStatus
from urllib.parse import urlencode

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from gateway_site.gateway.auth import Unauthorized, authenticate_blocking
from gateway_site.gateway.checks import check_jwt
from gateway_site.gateway.conf import conf, derived_signing_key
from tests.test_ratelimit import DEAD_REDIS

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user(
        "ada",
        email="ada@example.org",
        password=PASSWORD,
        first_name="Ada",
        last_name="Lovelace",
    )


def post(client, path, data, *, as_json=False, **extra):
    """POST as JSON, or as an HTML/OAuth2 form (application/x-www-form-urlencoded)."""
    if as_json:
        return client.post(path, data, content_type="application/json", **extra)
    return client.post(
        path, urlencode(data), content_type="application/x-www-form-urlencoded", **extra
    )


def obtain(client, username="ada", password=PASSWORD, *, as_json=False, **extra):
    data = {"username": username, "password": password}
    return post(client, "/token", data, as_json=as_json, **extra)


def refresh(client, token, *, as_json=False):
    return post(client, "/token/refresh", {"refresh_token": token}, as_json=as_json)


def me(client, token=None, *, authorization=None, **extra):
    if token is not None:
        authorization = f"Bearer {token}"
    headers = {"Authorization": authorization} if authorization is not None else {}
    return client.get("/users/me", headers=headers, **extra)


def assert_unauthorized(response, code):
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == code
    assert response.json()["detail"]


def forge(payload: dict, *, key: str, algorithm: str) -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def b64(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- /token ------


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_token_with_right_password_returns_bearer_tokens(client, user, as_json):
    response = obtain(client, as_json=as_json)

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert set(body) == {"access_token", "token_type", "refresh_token", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60
    assert response["Cache-Control"] == "no-store"


def test_access_token_is_signed_with_the_configured_algorithm(client, user):
    token = obtain(client).json()["access_token"]

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, conf.JWT_SIGNING_KEY, algorithms=["HS256"])
    assert header["alg"] == "HS256"
    assert claims["user_id"] == str(user.pk)
    assert claims["token_type"] == "access"
    assert claims["exp"] - claims["iat"] == 30 * 60


def test_token_with_wrong_password_is_401_with_a_bearer_challenge(client, user):
    assert_unauthorized(obtain(client, password="wrong"), "no_active_account")


def test_token_for_unknown_user_is_the_same_401(client, db):
    assert_unauthorized(obtain(client, username="nobody"), "no_active_account")


def test_token_for_inactive_user_is_refused(client, user):
    user.is_active = False
    user.save()

    assert_unauthorized(obtain(client), "no_active_account")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"username": "ada"}', "application/json"),
        ("[1, 2]", "application/json"),
        ("{not json", "application/json"),
        ("username=ada&password=x", "text/plain"),
    ],
)
def test_bad_token_requests_are_json_4xx(client, user, body, content_type):
    response = client.post("/token", body, content_type=content_type)

    assert HTTPStatus.BAD_REQUEST <= response.status_code < 500
    assert set(response.json()) >= {"detail", "code"}


def test_token_only_accepts_post(client, db):
    response = client.get("/token")

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response.json()["code"] == "method_not_allowed"


# --- /token/refresh ------


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_refresh_returns_a_new_working_access_token(client, user, as_json):
    token = obtain(client).json()["refresh_token"]

    response = refresh(client, token, as_json=as_json)

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["refresh_token"] == token
    assert body["expires_in"] == 30 * 60
    assert me(client, body["access_token"]).status_code == HTTPStatus.OK


def test_refresh_rejects_an_access_token(client, user):
    access = obtain(client).json()["access_token"]

    response = refresh(client, access)

    assert_unauthorized(response, "token_not_valid")


def test_refresh_for_a_user_deactivated_since_is_refused(client, user):
    token = obtain(client).json()["refresh_token"]
    user.is_active = False
    user.save()

    response = refresh(client, token)

    assert_unauthorized(response, "user_inactive")


def test_refresh_without_a_token_is_400(client, db):
    response = post(client, "/token/refresh", {})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid"


# --- /users/me ------


def test_users_me_returns_the_profile(client, user):
    token = obtain(client).json()["access_token"]

    response = me(client, token)

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {
        "username": "ada",
        "email": "ada@example.org",
        "full_name": "Ada Lovelace",
        "disabled": False,
    }
    assert response["Cache-Control"] == "no-store"


def test_users_me_accepts_a_lowercase_scheme(client, user):
    token = obtain(client).json()["access_token"]

    assert me(client, authorization=f"bearer {token}").status_code == HTTPStatus.OK


def test_users_me_without_a_token_is_401(client, db):
    assert_unauthorized(me(client), "not_authenticated")


def test_users_me_with_another_scheme_is_anonymous(client, db):
    assert_unauthorized(me(client, authorization="Basic YWRhOng="), "not_authenticated")


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "Bearer a b"])
def test_malformed_bearer_header_is_401(client, db, authorization):
    assert_unauthorized(
        me(client, authorization=authorization), "bad_authorization_header"
    )


def test_users_me_only_answers_get(client, user):
    token = obtain(client).json()["access_token"]

    response = client.post("/users/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED


# --- Refused tokens ------


def test_expired_token_is_401(client, user, settings):
    # A zero lifetime: the token expires the second it is issued. This also
    # shows the lifetime is read from the settings at use, not at import.
    settings.JWT_ACCESS_TOKEN_EXPIRE_MINUTES = 0
    token = obtain(client).json()["access_token"]

    assert_unauthorized(me(client, token), "token_expired")


def test_expired_token_from_the_past_is_401(client, user):
    from gateway_site.gateway.tokens import GatewayAccessToken

    token = GatewayAccessToken.for_user(user)
    token.set_exp(from_time=timezone.now() - timedelta(hours=1))

    assert_unauthorized(me(client, str(token)), "token_expired")


def test_tampered_signature_is_401(client, user):
    token = obtain(client).json()["access_token"]
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")

    assert_unauthorized(me(client, f"{head}.{payload}.{flipped}"), "token_not_valid")


def test_tampered_claims_are_401(client, user, db):
    other = get_user_model().objects.create_user("mallory", password=PASSWORD)
    token = obtain(client).json()["access_token"]
    head, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["user_id"] = other.pk

    forged = f"{head}.{b64(claims)}.{signature}"

    assert_unauthorized(me(client, forged), "token_not_valid")


def test_alg_none_is_401(client, user):
    token = obtain(client).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."

    assert_unauthorized(me(client, unsigned), "token_not_valid")


def test_another_hmac_algorithm_with_the_right_key_is_401(client, user):
    token = obtain(client).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})

    hs512 = forge(claims, key=conf.JWT_SIGNING_KEY, algorithm="HS512")

    assert_unauthorized(me(client, hs512), "token_not_valid")


def test_a_token_signed_with_another_key_is_401(client, user):
    token = obtain(client).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})

    other = forge(claims, key="another-key-" + "x" * 40, algorithm="HS256")

    assert_unauthorized(me(client, other), "token_not_valid")


def test_a_refresh_token_is_not_an_access_token(client, user):
    refresh = obtain(client).json()["refresh_token"]

    assert_unauthorized(me(client, refresh), "token_not_valid")


def test_garbage_token_is_401(client, db):
    assert_unauthorized(me(client, "not.a.jwt"), "token_not_valid")


def test_token_of_a_user_deactivated_since_is_401(client, user):
    token = obtain(client).json()["access_token"]
    user.is_active = False
    user.save()

    assert_unauthorized(me(client, token), "user_inactive")


def test_a_new_password_revokes_earlier_tokens(client, user):
    tokens = obtain(client).json()
    user.set_password("another-long-password-42")
    user.save()

    assert_unauthorized(me(client, tokens["access_token"]), "token_revoked")
    assert_unauthorized(refresh(client, tokens["refresh_token"]), "token_revoked")
    fresh = obtain(client, password="another-long-password-42").json()
    assert me(client, fresh["access_token"]).status_code == HTTPStatus.OK


def test_token_of_a_deleted_user_is_401(client, user):
    token = obtain(client).json()["access_token"]
    user.delete()

    assert_unauthorized(me(client, token), "user_not_found")


def test_changing_jwt_secret_key_invalidates_tokens(client, user, settings):
    token = obtain(client).json()["access_token"]

    settings.JWT_SECRET_KEY = "k" * 64

    assert_unauthorized(me(client, token), "token_not_valid")


def test_hs512_configured_works_and_refuses_hs256(client, user, settings):
    settings.JWT_ALGORITHM = "HS512"
    token = obtain(client).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})

    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    assert me(client, token).status_code == HTTPStatus.OK
    hs256 = forge(claims, key=conf.JWT_SIGNING_KEY, algorithm="HS256")
    assert_unauthorized(me(client, hs256), "token_not_valid")


# --- authenticate_blocking() for Django views ------


def test_no_authorization_header_is_anonymous(db):
    assert authenticate_blocking("") is None
    assert authenticate_blocking("Basic YTpi") is None


def test_a_valid_token_names_its_user(client, user):
    token = obtain(client).json()["access_token"]

    assert authenticate_blocking(f"Bearer {token}") == user


def test_a_bad_token_raises_unauthorized_with_a_bearer_challenge(db):
    with pytest.raises(Unauthorized) as raised:
        authenticate_blocking("Bearer nope")

    assert raised.value.status == HTTPStatus.UNAUTHORIZED
    assert raised.value.code == "token_not_valid"
    assert raised.value.headers()["WWW-Authenticate"] == 'Bearer realm="gateway"'


# --- Signing key ------


def test_without_jwt_secret_key_the_key_is_derived_from_the_django_secret(settings):
    settings.JWT_SECRET_KEY = ""

    key = conf.JWT_SIGNING_KEY

    assert key == derived_signing_key(settings.SECRET_KEY)
    assert settings.SECRET_KEY not in key
    assert len(key) >= 64
    settings.SECRET_KEY = "another-secret-" + "y" * 40
    assert key != conf.JWT_SIGNING_KEY


def test_jwt_secret_key_is_used_when_set(settings):
    settings.JWT_SECRET_KEY = "s" * 64

    assert conf.JWT_SIGNING_KEY == "s" * 64


# --- Brute force ------


@pytest.fixture
def limits_on(settings):
    settings.RATELIMIT_ENABLE = True
    caches["counters"].clear()
    yield settings
    caches["counters"].clear()


def test_token_attempts_are_rate_limited_per_ip(client, user, limits_on):
    limits_on.GATEWAY_LOGIN_RATE = "3/h"

    attempts = [obtain(client, password="wrong") for _ in range(4)]

    assert [r.status_code for r in attempts] == [401, 401, 401, 429]
    assert attempts[-1].json()["code"] == "rate_limited"
    assert attempts[-1]["RateLimit-Policy"] == '"token-login";q=3;w=3600'
    assert int(attempts[-1]["Retry-After"]) >= 1
    # Even the right password waits now; another client does not.
    assert obtain(client).status_code == HTTPStatus.TOO_MANY_REQUESTS
    other = obtain(client, REMOTE_ADDR="10.9.9.9")
    assert other.status_code == HTTPStatus.OK


def test_refreshes_are_rate_limited_per_ip(client, user, limits_on):
    token = obtain(client).json()["refresh_token"]
    limits_on.GATEWAY_LOGIN_RATE = "2/h"

    answers = [refresh(client, token) for _ in range(3)]

    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[-1]["RateLimit-Policy"] == '"token-refresh";q=2;w=3600'


def test_token_login_fails_closed_when_the_cache_is_down(client, user, limits_on):
    limits_on.CACHES = DEAD_REDIS

    response = obtain(client)

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS


# --- System checks ------


@pytest.mark.parametrize("algorithm", ["none", "HS1", "hs256", "PS256", "EdDSA", ""])
def test_unknown_algorithm_is_an_error(settings, algorithm):
    settings.JWT_ALGORITHM = algorithm

    assert [e.id for e in check_jwt(None)] == ["gateway_site.E101"]


@pytest.mark.parametrize(
    ("algorithm", "length"), [("HS256", 31), ("HS384", 47), ("HS512", 63)]
)
def test_short_hmac_key_is_an_error(settings, algorithm, length):
    settings.JWT_ALGORITHM = algorithm
    settings.JWT_SECRET_KEY = "k" * length

    assert [e.id for e in check_jwt(None)] == ["gateway_site.E102"]


def test_the_seed_placeholder_key_is_refused(settings):
    settings.JWT_SECRET_KEY = "your-super-secret-jwt-key-here"

    assert [e.id for e in check_jwt(None)] == ["gateway_site.E102"]


@pytest.mark.parametrize("key", ["", "not a pem key"])
def test_rsa_without_a_usable_private_key_is_an_error(settings, key):
    settings.JWT_ALGORITHM = "RS256"
    settings.JWT_SECRET_KEY = key

    assert [e.id for e in check_jwt(None)] == ["gateway_site.E103"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", 0),
        ("JWT_REFRESH_TOKEN_EXPIRE_DAYS", -1),
        ("JWT_REFRESH_TOKEN_EXPIRE_DAYS", "7"),
    ],
)
def test_non_positive_lifetimes_are_errors(settings, name, value):
    setattr(settings, name, value)

    assert [e.id for e in check_jwt(None)] == ["gateway_site.E104"]


@pytest.mark.parametrize("key", ["", "k" * 32])
def test_default_and_long_keys_pass(settings, key):
    settings.JWT_SECRET_KEY = key

    assert check_jwt(None) == []


def test_check_command_fails_on_a_jwt_error(settings):
    settings.JWT_ALGORITHM = "none"

    with pytest.raises(SystemCheckError, match="gateway_site.E101"):
        call_command("check")


@pytest.mark.django_db
def test_schema_describes_the_auth_endpoints(client):
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()

    paths = schema["paths"]
    assert set(paths["/token"]) == {"post"}
    assert set(paths["/token/refresh"]) == {"post"}
    assert set(paths["/users/me"]) == {"get"}
    assert set(paths["/token"]["post"]["responses"]) >= {"200", "400", "401", "429"}
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


# --- RSA and EC ---------------------------------------------------------------------


def private_pem(algorithm: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if algorithm.startswith("RS"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(private: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        .decode()
    )


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_asymmetric_algorithm_signs_with_the_private_key(
    client, user, settings, algorithm
):
    settings.JWT_ALGORITHM = algorithm
    settings.JWT_SECRET_KEY = private_pem(algorithm)

    token = obtain(client).json()["access_token"]

    assert check_jwt(None) == []
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    claims = jwt.decode(
        token, public_pem(settings.JWT_SECRET_KEY), algorithms=[algorithm]
    )
    assert claims["user_id"] == str(user.pk)
    assert me(client, token).status_code == HTTPStatus.OK


def test_rs256_refuses_hs256_signed_with_the_public_key(client, user, settings):
    # The classic algorithm confusion: the public key used as an HMAC secret.
    settings.JWT_ALGORITHM = "RS256"
    settings.JWT_SECRET_KEY = private_pem("RS256")
    token = obtain(client).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    mac = hmac.new(
        public_pem(settings.JWT_SECRET_KEY).encode(),
        signing_input.encode(),
        hashlib.sha256,
    ).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    assert_unauthorized(me(client, forged), "token_not_valid")


def test_rs256_with_a_public_key_is_an_error(settings):
    settings.JWT_ALGORITHM = "RS256"
    settings.JWT_SECRET_KEY = public_pem(private_pem("RS256"))

    errors = check_jwt(None)

    assert [e.id for e in errors] == ["gateway_site.E103"]
    assert "not a public one" in errors[0].msg


@pytest.mark.parametrize("which", ["private", "public"])
def test_a_pem_key_for_an_hmac_algorithm_is_an_error(settings, which):
    private = private_pem("RS256")
    settings.JWT_ALGORITHM = "HS256"
    settings.JWT_SECRET_KEY = private if which == "private" else public_pem(private)

    errors = check_jwt(None)

    assert [e.id for e in errors] == ["gateway_site.E102"]
    assert "PEM" in errors[0].msg
