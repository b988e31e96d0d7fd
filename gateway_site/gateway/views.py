"""The gateway's control-plane endpoints, served by Django: tokens and the profile.

``/token`` and ``/token/refresh`` issue the bearer tokens the data plane
(gateway_site/gateway/dataplane.py) accepts; ``/users/me`` answers who a token
belongs to. The routes the data plane serves are described in the OpenAPI
schema here too (:func:`add_openapi_paths`).
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway_site.gateway import auth, store, tiers
from gateway_site.gateway.conf import conf
from likes import ratelimit
from likes.http import error_response, json_response, method_not_allowed
from likes.parsers import JSONParser
from likes.serializers import ErrorSerializer


def unauthorized(exc: auth.Unauthorized, headers: dict | None = None):
    return error_response(
        exc.status,
        code=exc.code,
        detail=exc.detail,
        headers={**exc.headers(), **(headers or {})},
    )


def token_response(refresh, access) -> Response:
    """The OAuth2-style token answer the original gateway gave, plus refresh."""
    return Response(
        {
            "access_token": str(access),
            "token_type": "bearer",
            "refresh_token": str(refresh),
            "expires_in": int(conf.ACCESS_TOKEN_LIFETIME.total_seconds()),
        },
        headers=auth.NO_STORE,
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
        return auth.BEARER_CHALLENGE

    def over_limit(self, request):
        """The 429 answer when this client is over its limit, else None."""
        limit = ratelimit.check(
            request,
            policy=self.limit_policy,
            rate=conf.LOGIN_RATE,
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
        from gateway_site.gateway import tokens  # on first use: see its docstring

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
        from gateway_site.gateway import tokens  # on first use: see its docstring

        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        raw = serializer.validated_data["refresh_token"]
        try:
            claims = auth.decode(raw, token_type="refresh")
            auth.check(claims, auth.load_user(claims.get("user_id")))
        except auth.Unauthorized as exc:
            return unauthorized(exc)
        # Verified above, with the checks the data plane applies.
        refresh = tokens.GatewayRefreshToken(raw, verify=False)
        return token_response(refresh, refresh.access_token)


def users_me(request):
    """The profile of the user a bearer token names, within their rate-limit tier."""
    try:
        user, refused = (
            auth.authenticate_blocking(request.META.get("HTTP_AUTHORIZATION", "")),
            None,
        )
    except auth.Unauthorized as exc:
        user, refused = None, exc
    if refused is None and user is None:
        refused = auth.NOT_AUTHENTICATED
    # Counted against the caller's tier before anything else, refusals included.
    limit = tiers.admit_blocking(
        store.get(),
        user=user,
        ip_bucket=ratelimit.bucket_of(ratelimit.client_ip(request)),
        processing=False,
    )
    if limit and limit.exceeded:
        return ratelimit.too_many_requests(limit)
    headers = limit.headers() if limit else {}
    if refused is not None:
        return unauthorized(refused, headers)
    if request.method != "GET":
        return method_not_allowed(request, ["GET"])
    return json_response(
        {
            "username": user.get_username(),
            "email": user.email,
            "full_name": user.get_full_name(),
            "disabled": not user.is_active,
        },
        headers={**auth.NO_STORE, **headers},
    )


# --- OpenAPI: the routes answered outside DRF -------------------------------------


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _errors(*pairs: tuple[str, str]) -> dict:
    return {
        status: {
            "description": description,
            "content": _json({"$ref": "#/components/schemas/Error"}),
        }
        for status, description in pairs
    }


BEARER = [{"bearerAuth": []}]

USERS_ME_SCHEMA = {
    "get": {
        "operationId": "users_me",
        "summary": "The signed-in user's profile.",
        "tags": ["gateway"],
        "security": BEARER,
        "responses": {
            "200": {
                "description": "The profile",
                "content": _json(
                    {
                        "type": "object",
                        "required": ["username", "email", "full_name", "disabled"],
                        "properties": {
                            "username": {"type": "string"},
                            "email": {"type": "string"},
                            "full_name": {"type": "string"},
                            "disabled": {"type": "boolean"},
                        },
                    }
                ),
            },
            **_errors(
                ("401", "No, or a refused, bearer token"),
                ("429", "Rate-limit tier exceeded"),
            ),
        },
    }
}

GATEWAY_SCHEMA = {
    "post": {
        "operationId": "gateway_request",
        "summary": "Route a request to an upstream service; its answer in an envelope.",
        "description": "The service's answer comes back with HTTP 200 whatever "
        "its status; 404/502/503/504 mean the gateway itself could not get one.",
        "tags": ["gateway"],
        "security": BEARER,
        "requestBody": {
            "required": True,
            "content": _json(
                {
                    "type": "object",
                    "required": ["service_name", "endpoint"],
                    "properties": {
                        "service_name": {"type": "string", "maxLength": 63},
                        "endpoint": {
                            "type": "string",
                            "maxLength": 2048,
                            "pattern": r"^/(?!/)[^\s#]*$",
                        },
                        "method": {
                            "type": "string",
                            "enum": [
                                "GET",
                                "POST",
                                "PUT",
                                "PATCH",
                                "DELETE",
                                "HEAD",
                                "OPTIONS",
                            ],
                            "default": "GET",
                        },
                        "payload": {"nullable": True},
                    },
                }
            ),
        },
        "responses": {
            "200": {
                "description": "The service's answer",
                "content": _json(
                    {
                        "type": "object",
                        "required": ["status_code", "data"],
                        "properties": {
                            "status_code": {"type": "integer"},
                            "data": {},
                        },
                    }
                ),
            },
            **_errors(
                ("400", "Invalid request"),
                ("401", "Missing, invalid or expired bearer token"),
                ("404", "Unknown service"),
                ("413", "Body too large"),
                ("429", "Over the caller's rate-limit tier (Retry-After)"),
                ("502", "Service unreachable"),
                ("503", "Circuit open or service busy (Retry-After)"),
                ("504", "Service timed out"),
            ),
        },
    }
}


def add_openapi_paths(result, generator, request, public):
    """drf-spectacular postprocessing hook: the routes outside DRF."""
    paths = result.setdefault("paths", {})
    paths["/users/me"] = USERS_ME_SCHEMA
    paths["/gateway"] = GATEWAY_SCHEMA
    components = result.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    return result
