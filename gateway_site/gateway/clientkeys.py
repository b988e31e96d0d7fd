"""Machine clients that sign their requests instead of sending a bearer token.

A client signs a request as the gateway signs the requests it forwards
(gateway/signing.py), with its own key, and names the key::

    X-Gateway-Key: gk_…                   the key id (admin: "Client HMAC keys")
    X-Request-ID: <fresh per request>     signed; makes each signature unique
    Content-Digest: sha-256=:…:
    X-Gateway-Timestamp: <Unix time>
    X-Gateway-Signature: v1=<hex HMAC-SHA256 of the canonical string>

where the target in the canonical string is the path and query as sent to the
gateway (``/services/<name>/…`` or ``/gateway``). The request then acts as the
key's user: same tier, same limits. A signature is accepted once (replays are
refused for twice the 300 s clock-skew window, across workers and replicas
through the shared store).

The secret is derived, not stored: HMAC-SHA256 of the key id and the key's
random salt under ``DJANGO_SECRET_KEY`` (Django's ``salted_hmac``), shown once
when the key is made. Changing the secret key changes every client secret;
``SECRET_KEY_FALLBACKS`` keeps the old ones working while clients move.
"""

import contextlib
import json
from dataclasses import asdict, dataclass
from http import HTTPStatus

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from gateway_site import metrics
from gateway_site.gateway import signing
from gateway_site.gateway.auth import Unauthorized
from gateway_site.gateway.conf import conf
from gateway_site.gateway.store import StoreUnavailable

KEY_HEADER = "x-gateway-key"
DERIVATION_SALT = "gateway_site.gateway.clientkeys"
# A key's last use is written at most this often (seconds).
LAST_USED_EVERY = 300


class HMACUnauthorized(Unauthorized):
    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": 'GW-HMAC realm="gateway"',
            "Cache-Control": "no-store",
        }


class ReplayCheckUnavailable(HMACUnauthorized):
    """The shared store is down: a replay could not be ruled out. Fail closed."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class KeyState:
    key_id: str
    salt: str
    user_id: int
    active: bool


def derive_secret(key_id: str, salt: str, secret: str | None = None) -> str:
    """A client key's secret (64 hex characters; the client uses their bytes)."""
    return salted_hmac(
        DERIVATION_SALT, f"{key_id}:{salt}", secret=secret, algorithm="sha256"
    ).hexdigest()


def secrets_of(state: KeyState) -> list[bytes]:
    """The key's secret under the current secret key and each fallback."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [derive_secret(state.key_id, state.salt, key).encode() for key in keys]


def _key_key(key_id: str) -> str:
    return f"client-key:{key_id}"


def load_key(key_id: str) -> KeyState | None:
    """The key's state from the database (blocking), or None."""
    from gateway_site.gateway.models import ClientKey

    found = (
        ClientKey.objects.filter(key_id=key_id)
        .values_list("key_id", "salt", "user_id", "is_active")
        .first()
    )
    return KeyState(*found) if found else None


def mark_used(key_id: str) -> None:
    from gateway_site.gateway.models import ClientKey

    ClientKey.objects.filter(key_id=key_id).update(last_used_at=timezone.now())


async def authenticate(
    store, request_headers, *, method, target, body, run_blocking, load_state
):
    """The state of the user a signed request acts as, or raise Unauthorized
    (counted in ``signature_failures_total`` by reason)."""
    try:
        return await _authenticate(
            store,
            request_headers,
            method=method,
            target=target,
            body=body,
            run_blocking=run_blocking,
            load_state=load_state,
        )
    except Unauthorized as refused:
        metrics.count_signature_failure(refused.code)
        raise


async def _authenticate(
    store, request_headers, *, method, target, body, run_blocking, load_state
):
    """``request_headers`` maps lowercase names to values; ``run_blocking(fn, *args)``
    runs a database call off the event loop; ``load_state(user_id)`` is the
    bearer-token path's coroutine for a user's state.
    """
    key_id = request_headers.get(KEY_HEADER, "").strip()
    if not key_id or len(key_id) > 40:
        raise HMACUnauthorized("X-Gateway-Key names no key.", "key_unknown")
    state = await _key_state(store, key_id, run_blocking)
    if state is None or not state.active:
        raise HMACUnauthorized("Unknown or revoked client key.", "key_unknown")
    reason = signing.verify(
        secrets_of(state),
        method=method,
        target=target,
        headers=request_headers,
        body=body,
    )
    if reason:
        raise HMACUnauthorized(signing.REASONS[reason], reason)
    signature = request_headers[signing.SIGNATURE_HEADER.lower()]
    try:
        first = await store.aadd_number(
            f"hmac-seen:{signature[3:]}", 1, 2 * signing.MAX_SKEW_SECONDS
        )
    except StoreUnavailable:
        raise ReplayCheckUnavailable(
            "Signed requests cannot be checked for replays right now.",
            "replay_check_unavailable",
        ) from None
    if not first:
        raise HMACUnauthorized(signing.REASONS["replayed"], "replayed")
    user = await load_state(state.user_id)
    if not user.is_active:
        raise HMACUnauthorized("User is inactive.", "user_inactive")
    with contextlib.suppress(StoreUnavailable):
        if await store.aadd_number(f"client-key-used:{key_id}", 1, LAST_USED_EVERY):
            await run_blocking(mark_used, key_id)
    return user


async def _key_state(store, key_id, run_blocking) -> KeyState | None:
    try:
        cached = await store.aget_bytes(_key_key(key_id))
    except StoreUnavailable:
        cached = None
    if cached is not None:
        data = json.loads(cached)
        return KeyState(**data) if data else None
    state = await run_blocking(load_key, key_id)
    with contextlib.suppress(StoreUnavailable):
        # Unknown ids are remembered too (briefly): guessing costs no query.
        await store.aset_bytes(
            _key_key(key_id),
            json.dumps(asdict(state) if state else None).encode(),
            conf.USER_CACHE_SECONDS if state else 60,
        )
    return state


def invalidate_key(sender, instance, **kwargs) -> None:
    """post_save/post_delete of ClientKey: forget its cached state on commit."""
    from gateway_site.gateway import store

    def drop():
        with contextlib.suppress(StoreUnavailable):
            store.get().delete_bytes(_key_key(instance.key_id))

    transaction.on_commit(drop)
