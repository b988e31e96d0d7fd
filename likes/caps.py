"""A daily cap on the likes one client network may give one post.

The visitor-hash dedupe (likes.services) keys on IP *and* User-Agent, so a
client rotating its User-Agent could like a post again and again. On top of it,
at most ``LIKES_NETWORK_DAILY_CAP`` likes a day are accepted per post from one
network (an IPv4 /24, an IPv6 /48); more are answered like a repeat like, not
counted. The counter's key is a keyed hash of the network and the post under
the dedupe's daily salt (deleted after 48 h): no address is stored.
"""

import datetime
import functools
import hashlib
import hmac
import ipaddress

from django.core.cache import caches
from django.utils import timezone

from likes import services
from likes.conf import conf

TTL = 49 * 3600  # outlives its day, then goes with the salt


@functools.lru_cache(maxsize=4096)
def network_of(ip: str) -> str | None:
    """The client's network, not its address: IPv4 by /24, IPv6 by /48."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _key(ip: str, post_id: str) -> str | None:
    network = network_of(ip)
    today: datetime.date = timezone.now().date()
    secret = services.salt_for(today)
    if network is None or secret is None:
        return None
    message = f"{network}\x1f{post_id}".encode()
    digest = hmac.new(bytes.fromhex(secret), message, hashlib.sha256).hexdigest()
    return f"likes:netcap:{today.isoformat()}:{digest}"


def reached(*, ip: str, post_id: str) -> bool:
    """Whether this network gave this post its cap of likes today."""
    cap = conf.NETWORK_DAILY_CAP
    if not cap:
        return False
    key = _key(ip, post_id)
    try:
        return key is not None and (caches["counters"].get(key) or 0) >= cap
    except Exception:  # the cache is down: the dedupe still applies
        return False


def counted(*, ip: str, post_id: str) -> None:
    """Record one accepted like from this network to this post."""
    if not conf.NETWORK_DAILY_CAP:
        return
    key = _key(ip, post_id)
    if key is None:
        return
    cache = caches["counters"]
    try:
        cache.add(key, 0, TTL)
        cache.incr(key)
    except Exception:  # noqa: S110  (the key expired meanwhile, or no cache)
        pass
