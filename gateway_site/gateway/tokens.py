"""simplejwt tokens signed and timed by the gateway's ``JWT_*`` settings.

simplejwt reads its own settings once, at import: token lifetimes are class
attributes, the signing backend is a module-level singleton, and its modules
keep the settings object they imported even after ``override_settings``
reloads it. These subclasses read gateway_site.gateway.conf when used
instead. This module is imported on first use, never at start: simplejwt's
settings module reads SECRET_KEY at import, which would turn a missing
DJANGO_SECRET_KEY into a crash rather than the gateway_site.E001 check.
Tokens are verified by gateway_site.gateway.auth, with the same checks.
"""

from functools import lru_cache

import jwt
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.serializers import TokenObtainSerializer
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from gateway_site.gateway.auth import AUTH_CLAIM, HMAC_KEY_BYTES
from gateway_site.gateway.conf import conf


@lru_cache(maxsize=8)
def backend(algorithm: str, key: str) -> TokenBackend:
    """A backend that signs and verifies with ``algorithm`` only."""
    if algorithm in HMAC_KEY_BYTES:
        return TokenBackend(algorithm, key)
    # RS*/ES*: the key is a PEM private key; verify with its public half.
    private = jwt.PyJWS().get_algorithm_by_name(algorithm).prepare_key(key)
    return TokenBackend(algorithm, private, private.public_key())


class GatewayTokenMixin:
    @classmethod
    def for_user(cls, user):
        """A token that stops working when the user's password changes."""
        token = super().for_user(user)
        token[AUTH_CLAIM] = user.get_session_auth_hash()
        return token

    def get_token_backend(self) -> TokenBackend:
        return backend(conf.JWT_ALGORITHM, conf.JWT_SIGNING_KEY)


class GatewayAccessToken(GatewayTokenMixin, AccessToken):
    @property
    def lifetime(self):
        return conf.ACCESS_TOKEN_LIFETIME


class GatewayRefreshToken(GatewayTokenMixin, RefreshToken):
    access_token_class = GatewayAccessToken

    @property
    def lifetime(self):
        return conf.REFRESH_TOKEN_LIFETIME


class LoginSerializer(TokenObtainSerializer):
    """Username and password through Django's auth backends; inactive users fail."""

    token_class = GatewayRefreshToken
