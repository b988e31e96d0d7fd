"""Bearer tokens of the gateway: verify an access token, find its user's state.

Tokens are djangorestframework-simplejwt access and refresh tokens signed with
the ``JWT_*`` settings (issued by gateway_site/gateway/tokens.py). Both planes
verify them here, with PyJWT and the checks simplejwt applies (signature and
algorithm, expiry, token type, token id), so a token works the same on either.

A token is tied to its user's password (the ``auth`` claim holds Django's
session hash of it) and works only while the user is active. The data plane
must not query the database for every call: the user's state is cached in the
shared store for ``GATEWAY_USER_CACHE_SECONDS`` (30 min) and dropped the moment
the user is saved or deleted (``invalidate_user``, connected in apps.py), so a
new password or a deactivation revokes tokens at once on every worker and
replica. A change made with ``QuerySet.update()`` sends no signal and is seen
when the cached state expires.
"""

import contextlib
import json
import logging
from dataclasses import asdict, dataclass
from functools import lru_cache
from http import HTTPStatus

import jwt
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.crypto import constant_time_compare

from gateway_site.gateway.conf import conf
from gateway_site.gateway.store import StoreUnavailable

# The algorithms accepted for JWT_ALGORITHM, with the shortest HMAC key each
# allows (the hash size: RFC 7518 section 3.2). RSA and EC need the
# cryptography package and a PEM private key.
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}
)
ALGORITHMS = frozenset(HMAC_KEY_BYTES) | ASYMMETRIC_ALGORITHMS

BEARER_CHALLENGE = 'Bearer realm="gateway"'
# The claim that ties a token to the password it was issued under.
AUTH_CLAIM = "auth"
NO_STORE = {"Cache-Control": "no-store"}  # RFC 6749 section 5.1

logger = logging.getLogger("gateway_site.gateway.auth")


class Unauthorized(Exception):
    """A bearer token (or its absence) that must be refused: a 401."""

    status = HTTPStatus.UNAUTHORIZED

    def __init__(self, detail: str, code: str):
        super().__init__(detail)
        self.detail = detail
        self.code = code

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": BEARER_CHALLENGE, **NO_STORE}


NOT_AUTHENTICATED = Unauthorized(
    "Authentication credentials were not provided.", "not_authenticated"
)


def bearer_token(authorization: str) -> str | None:
    """The token of a ``Bearer`` Authorization header; None for no or another scheme."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    credentials = credentials.strip()
    if not credentials or " " in credentials:
        raise Unauthorized(
            'The Authorization header must be "Bearer <token>".',
            "bad_authorization_header",
        )
    return credentials


@lru_cache(maxsize=8)
def verifying_key(algorithm: str, key: str):
    if algorithm in HMAC_KEY_BYTES:
        return key
    # RS*/ES*: the key is a PEM private key; verify with its public half.
    return jwt.PyJWS().get_algorithm_by_name(algorithm).prepare_key(key).public_key()


def decode(raw: str, token_type: str = "access") -> dict:
    """The claims of a valid token of ``token_type``, or raise Unauthorized."""
    algorithm = conf.JWT_ALGORITHM
    try:
        claims = jwt.decode(
            raw,
            verifying_key(algorithm, conf.JWT_SIGNING_KEY),
            algorithms=[algorithm],
            options={"require": ["exp"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Token is expired.", "token_expired") from None
    except (jwt.InvalidTokenError, ValueError):
        raise Unauthorized("Token is invalid.", "token_not_valid") from None
    if "jti" not in claims or claims.get("token_type") != token_type:
        raise Unauthorized("Token is invalid.", "token_not_valid")
    return claims


@dataclass(frozen=True, slots=True)
class UserState:
    """What the gateway needs of a token's user: enough to authorize and to tier."""

    pk: int
    username: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    auth: str  # Django's session hash of the password

    @classmethod
    def of(cls, user) -> "UserState":
        return cls(
            pk=user.pk,
            username=user.get_username(),
            is_active=user.is_active,
            is_staff=user.is_staff,
            is_superuser=user.is_superuser,
            auth=user.get_session_auth_hash(),
        )


def _user_key(user_id) -> str:
    return f"user:{user_id}"


def load_user(user_id):
    """The user named by a token's ``user_id`` claim, or raise Unauthorized."""
    user_model = get_user_model()
    try:
        return user_model._default_manager.get(pk=user_id)
    except (user_model.DoesNotExist, ValueError, TypeError, ValidationError):
        raise Unauthorized("User not found.", "user_not_found") from None


def check(claims: dict, user) -> None:
    """Refuse a token whose user is inactive or changed their password since."""
    if not user.is_active:
        raise Unauthorized("User is inactive.", "user_inactive")
    # Django's session hash of the password: a new password revokes the
    # tokens issued before it, as it ends the user's admin sessions.
    if not constant_time_compare(str(claims.get(AUTH_CLAIM, "")), _auth_of(user)):
        raise Unauthorized(
            "Token was issued before the password changed.", "token_revoked"
        )


def _auth_of(user) -> str:
    return user.auth if isinstance(user, UserState) else user.get_session_auth_hash()


async def authenticate(store, authorization: str, load_state) -> UserState | None:
    """The state of the user a request's bearer token names (None: anonymous).

    ``load_state(user_id)`` is a coroutine that reads the user from the
    database when the store has no state for it.
    """
    raw = bearer_token(authorization)
    if raw is None:
        return None
    claims = decode(raw)
    user_id = claims.get("user_id")
    state = None
    try:
        cached = await store.aget_bytes(_user_key(user_id))
    except StoreUnavailable:
        cached = None
    if cached is not None:
        state = UserState(**json.loads(cached))
    else:
        state = await load_state(user_id)
        with contextlib.suppress(StoreUnavailable):
            await store.aset_bytes(
                _user_key(state.pk),
                json.dumps(asdict(state)).encode(),
                conf.USER_CACHE_SECONDS,
            )
    check(claims, state)
    return state


def authenticate_blocking(authorization: str):
    """The active user a request's bearer token names (None: anonymous), for Django."""
    raw = bearer_token(authorization)
    if raw is None:
        return None
    claims = decode(raw)
    user = load_user(claims.get("user_id"))
    check(claims, user)
    return user


def invalidate_user(sender, instance, **kwargs) -> None:
    """Receiver of the user model's post_save/post_delete: forget its cached state.

    After the transaction commits: dropped earlier, a concurrent call could
    read the old row and cache it again.
    """
    from gateway_site.gateway import store

    def drop():
        try:
            store.get().delete_bytes(_user_key(instance.pk))
        except StoreUnavailable:
            logger.error(
                "The cached state of user %s could not be dropped: its tokens "
                "keep working for up to %s s.",
                instance.pk,
                conf.USER_CACHE_SECONDS,
            )

    transaction.on_commit(drop)
