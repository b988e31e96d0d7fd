"""The project's HTTP conventions, shared by Django's middleware and the data plane.

- Request ids: a client's ``X-Request-ID`` is kept when it is short and plain
  (a UUID is); any other value is replaced, so ids are safe to log and forward.
- Security headers: decided once from the settings, added to every answer
  that does not carry its own.
"""

import contextlib
import ipaddress
import os
import random
import re
from functools import lru_cache

from django.conf import settings

valid_request_id = re.compile(r"[A-Za-z0-9._-]{1,64}").fullmatch

# The API answers JSON only, so its policy forbids everything; the admin loads
# its own scripts and styles.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
ADMIN_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), payment=(), usb=(), interest-cohort=()"
)


# New request ids are random UUIDs (version 4) drawn from a generator seeded
# from the OS in each process: an id labels a request in logs and traces, it
# guards nothing, and ``uuid.uuid4()`` asks the kernel for 16 bytes every time
# (a system call that lets the event loop take the GIL from a Django thread).
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def request_id(offered: str | None) -> str:
    """The client's request id when well-formed, else a new uuid4 (hex)."""
    if offered is not None and valid_request_id(offered):
        return offered
    return f"{(_ids.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"


def hsts_value() -> str | None:
    if not settings.SECURE_HSTS_SECONDS:
        return None
    value = f"max-age={settings.SECURE_HSTS_SECONDS}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return value


@lru_cache(maxsize=4)
def api_security_headers(secure: bool) -> tuple[tuple[bytes, bytes], ...]:
    """The headers Django's security middleware gives an API answer, as bytes.

    ``secure``: the request came over HTTPS (HSTS is sent only then).
    """
    headers = []
    if secure and (hsts := hsts_value()):
        headers.append(("strict-transport-security", hsts))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("x-content-type-options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        if not isinstance(policy, str):
            policy = ",".join(policy)
        headers.append(("referrer-policy", policy))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(
            ("cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY)
        )
    headers.append(("x-frame-options", getattr(settings, "X_FRAME_OPTIONS", "DENY")))
    headers.append(("content-security-policy", API_CSP))
    headers.append(("permissions-policy", PERMISSIONS_POLICY))
    return tuple((name.encode(), value.encode()) for name, value in headers)


DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"


@lru_cache(maxsize=4)
def _trusted(raw: str):
    if raw.strip() == "*":
        return None  # every peer
    networks = []
    for item in raw.split(","):
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
    return tuple(networks)


def trusted_proxy(address: str) -> bool:
    """Whether a peer may set forwarding headers (gunicorn's FORWARDED_ALLOW_IPS)."""
    networks = _trusted(
        os.environ.get("FORWARDED_ALLOW_IPS", DEFAULT_FORWARDED_ALLOW_IPS)
    )
    if networks is None:
        return True
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    if peer.version == 6 and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    return any(peer in network for network in networks)


def is_secure(scheme: str, header_value) -> bool:
    """Whether a request came over HTTPS, as Django's ``request.is_secure()`` decides.

    ``header_value`` is the value of ``SECURE_PROXY_SSL_HEADER``'s header, if any.
    """
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        if header_value is None:
            return False
        return header_value.split(",", 1)[0].strip() == proxy_header[1]
    return scheme == "https"
