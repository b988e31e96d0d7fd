"""Bearer-token (JWT) authentication of the gateway: /token, /token/refresh, /users/me.

Tokens are djangorestframework-simplejwt access and refresh tokens signed with
the ``JWT_*`` settings (gateway_site/tokens.py). Other views authenticate with
:func:`request_user`, DRF or not.
"""

import hashlib
import hmac
from datetime import timedelta
from functools import lru_cache, wraps
from http import HTTPStatus

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.crypto import constant_time_compare
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_site import tiers
from likes import ratelimit
from likes.api import ErrorSerializer
from likes.http import error_response, json_response, method_not_allowed

# The algorithms accepted for JWT_ALGORITHM, with the shortest HMAC key each
# allows (the hash size: RFC 7518 section 3.2). RSA and EC need the
# cryptography package and a PEM private key.
HMAC_KEY_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"}
)
ALGORITHMS = frozenset(HMAC_KEY_BYTES) | ASYMMETRIC_ALGORITHMS

# Without JWT_SECRET_KEY, HMAC tokens are signed with a key derived from
# DJANGO_SECRET_KEY under this label: a separate key (a token signature never
# doubles as a Django signature) that changes when the Django secret does.
DERIVED_KEY_LABEL = b"gateway_site.auth:jwt-signing-key"

BEARER_CHALLENGE = 'Bearer realm="gateway"'
# The claim that ties a token to the password it was issued under.
AUTH_CLAIM = "auth"
NO_STORE = {"Cache-Control": "no-store"}  # RFC 6749 section 5.1
_USER_ATTR = "_gateway_user"


@lru_cache(maxsize=4)
def derived_signing_key(secret: str) -> str:
    return hmac.new(secret.encode(), DERIVED_KEY_LABEL, hashlib.sha512).hexdigest()


class JwtSettings:
    """The ``JWT_*`` settings, read lazily so ``override_settings`` works."""

    @property
    def ALGORITHM(self) -> str:  # noqa: N802
        return getattr(settings, "JWT_ALGORITHM", "HS256")

    @property
    def SECRET_KEY(self) -> str:  # noqa: N802
        """The configured key: an HMAC secret, or a PEM private key for RS*/ES*."""
        return getattr(settings, "JWT_SECRET_KEY", "") or ""

    @property
    def SIGNING_KEY(self) -> str:  # noqa: N802
        return self.SECRET_KEY or derived_signing_key(settings.SECRET_KEY)

    @property
    def ACCESS_TOKEN_LIFETIME(self) -> timedelta:  # noqa: N802
        return timedelta(
            minutes=getattr(settings, "JWT_ACCESS_TOKEN_EXPIRE_MINUTES", 30)
        )

    @property
    def REFRESH_TOKEN_LIFETIME(self) -> timedelta:  # noqa: N802
        return timedelta(days=getattr(settings, "JWT_REFRESH_TOKEN_EXPIRE_DAYS", 7))

    @property
    def LOGIN_RATE(self) -> str:  # noqa: N802
        """Attempts at /token per client IP (django-ratelimit rate)."""
        return getattr(settings, "GATEWAY_LOGIN_RATE", "5/m")


jwt_conf = JwtSettings()


class Unauthorized(exceptions.AuthenticationFailed):
    """A bearer token that must be refused (a 401).

    DRF views answer it by themselves; plain Django views return
    ``exc.response()``.
    """

    def response(self, headers: dict | None = None):
        return error_response(
            HTTPStatus.UNAUTHORIZED,
            code=self.detail.code,
            detail=str(self.detail),
            headers={
                "WWW-Authenticate": BEARER_CHALLENGE,
                **NO_STORE,
                **(headers or {}),
            },
        )


NOT_AUTHENTICATED = (
    "Authentication credentials were not provided.",
    "not_authenticated",
)


def request_user(request):
    """The active user named by the request's bearer token, or None without one.

    No ``Authorization`` header, or one with another scheme (e.g. ``Basic``),
    is anonymous: None. A ``Bearer`` header whose token is malformed, tampered
    with, signed with another algorithm, expired, not an access token, or names
    a deleted or inactive user raises :class:`Unauthorized`; DRF views turn it
    into a 401 themselves, plain views answer ``exc.response()``. The answer is
    remembered on the request, so calling this twice costs one lookup.
    """
    try:
        return getattr(request, _USER_ATTR)
    except AttributeError:
        pass
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    user = None
    if scheme.lower() == "bearer":
        credentials = credentials.strip()
        if not credentials or " " in credentials:
            raise Unauthorized(
                'The Authorization header must be "Bearer <token>".',
                code="bad_authorization_header",
            )
        user = token_user(decode_access_token(credentials))
    setattr(request, _USER_ATTR, user)
    return user


class BearerAuthentication(BaseAuthentication):
    """DRF authentication by the gateway's bearer tokens (:func:`request_user`)."""

    def authenticate(self, request):
        user = request_user(request._request)
        return None if user is None else (user, None)

    def authenticate_header(self, request):
        return BEARER_CHALLENGE


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes :class:`BearerAuthentication`."""

    target_class = BearerAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def decode_access_token(raw: str):
    """Verify an access token (signature, algorithm, expiry, type) or raise."""
    from gateway_site import tokens  # imported on first use: see its docstring

    return tokens.verified(tokens.GatewayAccessToken, raw)


def token_user(token):
    """The active user a verified token was issued to, or raise Unauthorized."""
    user_model = get_user_model()
    try:
        user = user_model._default_manager.get(pk=token["user_id"])
    except (KeyError, user_model.DoesNotExist, ValueError, TypeError, ValidationError):
        raise Unauthorized("User not found.", code="user_not_found") from None
    if not user.is_active:
        raise Unauthorized("User is inactive.", code="user_inactive")
    # Django's session hash of the password: a new password revokes the
    # tokens issued before it, as it ends the user's admin sessions.
    if not constant_time_compare(
        str(token.get(AUTH_CLAIM, "")), user.get_session_auth_hash()
    ):
        raise Unauthorized(
            "Token was issued before the password changed.", code="token_revoked"
        )
    return user


def token_response(refresh, access) -> Response:
    """The OAuth2-style token answer the original gateway gave, plus refresh."""
    return Response(
        {
            "access_token": str(access),
            "token_type": "bearer",
            "refresh_token": str(refresh),
            "expires_in": int(jwt_conf.ACCESS_TOKEN_LIFETIME.total_seconds()),
        },
        headers=NO_STORE,
    )


class LoginRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class RefreshSerializer(serializers.Serializer):
    refresh_token = serializers.CharField()


class TokenSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.ChoiceField(["bearer"])
    refresh_token = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds the access token lasts.")


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


TOKEN_ERRORS = {
    400: _error("Missing fields or a malformed body"),
    401: _error("Refused credentials or token (WWW-Authenticate: Bearer)"),
    415: _error("Not a form or JSON body"),
}


class TokenEndpoint(APIView):
    """Form (OAuth2 password style) or JSON bodies; 401s challenge for Bearer."""

    parser_classes = [JSONParser, FormParser]
    authentication_classes = []
    permission_classes = []

    # Attempts per client IP, at GATEWAY_LOGIN_RATE, under this policy name.
    limit_policy: str
    limit_fail_open: bool

    def get_authenticate_header(self, request):
        return BEARER_CHALLENGE

    def over_limit(self, request):
        """The 429 answer when this client is over its limit, else None."""
        limit = ratelimit.check(
            request,
            policy=self.limit_policy,
            rate=jwt_conf.LOGIN_RATE,
            fail_open=self.limit_fail_open,
        )
        return ratelimit.too_many_requests(limit) if limit and limit.exceeded else None


class TokenView(TokenEndpoint):
    """POST username and password; get an access and a refresh token."""

    # Fail closed, as the admin login: with the cache down nobody can guess
    # passwords.
    limit_policy, limit_fail_open = "token-login", False

    @extend_schema(
        operation_id="token_obtain",
        tags=["gateway"],
        request=LoginRequestSerializer,
        responses={
            200: TokenSerializer,
            **TOKEN_ERRORS,
            429: _error("Too many sign-in attempts from this address"),
        },
    )
    def post(self, request):
        if refused := self.over_limit(request):
            return refused
        from gateway_site import tokens  # imported on first use: see its docstring

        serializer = tokens.LoginSerializer(
            data=request.data, context={"request": request._request}
        )
        serializer.is_valid(raise_exception=True)
        refresh = tokens.GatewayRefreshToken.for_user(serializer.user)
        return token_response(refresh, refresh.access_token)


class TokenRefreshView(TokenEndpoint):
    """POST a refresh token; get a new access token (the same refresh token)."""

    # Refresh tokens cannot be guessed: the limit bounds the database reads one
    # client can cause, and lets refreshes through when the cache is down.
    limit_policy, limit_fail_open = "token-refresh", True

    @extend_schema(
        operation_id="token_refresh",
        tags=["gateway"],
        request=RefreshSerializer,
        responses={
            200: TokenSerializer,
            **TOKEN_ERRORS,
            429: _error("Too many refreshes from this address"),
        },
    )
    def post(self, request):
        if refused := self.over_limit(request):
            return refused
        from gateway_site import tokens  # imported on first use: see its docstring

        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refresh = tokens.verified(
            tokens.GatewayRefreshToken, serializer.validated_data["refresh_token"]
        )
        token_user(refresh)
        return token_response(refresh, refresh.access_token)


def gateway_view(*, auth_required: bool = False, processing=False):
    """Decorate a plain view: authenticate the bearer token, apply the rate-limit tiers.

    ``processing`` is a bool or a function of the request (e.g. "not a GET")
    saying whether the call makes an upstream do work. A bad token is a 401,
    and so is no token when ``auth_required``; both are counted against the
    anonymous tier first. The view finds the user with :func:`request_user`
    and its answer gets the rate-limit headers.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                user, refused = request_user(request), None
            except Unauthorized as exc:
                user, refused = None, exc
            if refused is None and user is None and auth_required:
                refused = Unauthorized(*NOT_AUTHENTICATED)
            limit = tiers.limit_request(
                request,
                user=user,
                processing=processing(request) if callable(processing) else processing,
            )
            if limit and limit.exceeded:
                return ratelimit.too_many_requests(limit)
            headers = limit.headers() if limit else {}
            if refused is not None:
                return refused.response(headers)
            response = view(request, *args, **kwargs)
            for name, value in headers.items():
                response.headers.setdefault(name, value)
            return response

        return wrapper

    return decorator


@gateway_view(auth_required=True)
def users_me(request):
    """The authenticated user's profile."""
    if request.method != "GET":
        return method_not_allowed(request, ["GET"])
    user = request_user(request)
    return json_response(
        {
            "username": user.get_username(),
            "email": user.email,
            "full_name": user.get_full_name(),
            "disabled": not user.is_active,
        },
        headers=NO_STORE,
    )


USERS_ME_SCHEMA = {
    "get": {
        "operationId": "users_me",
        "summary": "The signed-in user's profile.",
        "tags": ["gateway"],
        "security": [{"bearerAuth": []}],
        "responses": {
            "200": {
                "description": "The profile",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["username", "email", "full_name", "disabled"],
                            "properties": {
                                "username": {"type": "string"},
                                "email": {"type": "string"},
                                "full_name": {"type": "string"},
                                "disabled": {"type": "boolean"},
                            },
                        }
                    }
                },
            },
            **{
                status: {
                    "description": description,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/Error"}
                        }
                    },
                }
                for status, description in (
                    ("401", "No, or a refused, bearer token"),
                    ("429", "Rate-limit tier exceeded"),
                )
            },
        },
    }
}


def add_openapi_paths(result, generator, request, public):
    """drf-spectacular postprocessing hook: describe /users/me (a plain view)."""
    result.setdefault("paths", {})["/users/me"] = USERS_ME_SCHEMA
    components = result.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    return result
