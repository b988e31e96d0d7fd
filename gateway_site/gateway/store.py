"""The gateway's shared state: counters, breaker state, cached answers, users.

Every gunicorn worker (and every replica, with Redis) must see the same rate
-limit counts and the same circuit breakers, and the control plane (``/ready``,
the admin) reads what the data plane wrote. Two backends, one key scheme:

- ``RedisStore`` when ``REDIS_URL`` is set: redis-py's asyncio client in the
  data plane and its blocking client in Django. After an error the store
  answers "unavailable" at once for a second instead of waiting on a dead
  server for every request; callers fail open (rate limits, breakers) or treat
  it as a miss (cache).
- ``EmbeddedStore`` otherwise: numbers in ``gateway_site.counters`` (a mapped
  file shared by every process on the box) and larger values in a diskcache
  directory, both under ``DATA_DIR``. Both answer in microseconds from local
  files, so the data plane calls them inline.

Numbers are floats (counts, timestamps); other values are bytes.
"""

import logging
import threading
import time
from pathlib import Path

from django.conf import settings

from gateway_site import counters
from gateway_site.gateway.conf import conf

logger = logging.getLogger("gateway_site.gateway.store")


class StoreUnavailable(Exception):
    """The shared store did not answer."""


class EmbeddedStore:
    """The embedded default: a shared mapped table for numbers, diskcache for bytes."""

    def __init__(self, data_dir: Path, prefix: str):
        self.prefix = prefix
        self.data_dir = Path(data_dir)
        self.numbers = counters.table(self.data_dir / "counters.bin")
        self._blob_dir = Path(data_dir) / "gateway-cache"
        self._blobs = None

    @property
    def blobs(self):
        if self._blobs is None:
            import diskcache

            self._blobs = diskcache.FanoutCache(
                str(self._blob_dir), shards=4, timeout=0.25
            )
        return self._blobs

    def _k(self, key: str) -> str:
        return self.prefix + key

    # Numbers ---------------------------------------------------------------

    def hit(self, key: str, ttl: float, amount: float = 1) -> float:
        return self.numbers.hit(self._k(key), ttl, amount)

    def get_numbers(self, keys: list[str]) -> list[float | None]:
        return [self.numbers.get(self._k(key)) for key in keys]

    def set_number(self, key: str, value: float, ttl: float) -> None:
        self.numbers.set(self._k(key), value, ttl)

    def add_number(self, key: str, value: float, ttl: float) -> bool:
        return self.numbers.add(self._k(key), value, ttl)

    def delete_numbers(self, keys: list[str]) -> None:
        for key in keys:
            self.numbers.delete(self._k(key))

    # Bytes -------------------------------------------------------------------

    # A key stored in diskcache is also marked in the mapped table: a lookup
    # of a key that is not there (most of the response cache's) costs a
    # table probe, not a SQLite query.

    def get_bytes(self, key: str) -> bytes | None:
        key = self._k(key)
        if self.numbers.get("blob:" + key) is None:
            return None
        try:
            return self.blobs.get(key)
        except Exception as exc:
            raise StoreUnavailable(str(exc)) from exc

    def set_bytes(self, key: str, value: bytes, ttl: float) -> None:
        key = self._k(key)
        try:
            self.blobs.set(key, value, expire=ttl)
        except Exception as exc:
            raise StoreUnavailable(str(exc)) from exc
        self.numbers.set("blob:" + key, 1, ttl)

    def delete_bytes(self, key: str) -> None:
        key = self._k(key)
        self.numbers.delete("blob:" + key)
        try:
            self.blobs.delete(key)
        except Exception as exc:
            raise StoreUnavailable(str(exc)) from exc

    # The data plane's coroutines: the same calls, inline (local files).

    async def ahit(self, key, ttl):
        return self.hit(key, ttl)

    async def aget_numbers(self, keys):
        return self.get_numbers(keys)

    async def aset_number(self, key, value, ttl):
        self.set_number(key, value, ttl)

    async def aadd_number(self, key, value, ttl):
        return self.add_number(key, value, ttl)

    async def adelete_numbers(self, keys):
        self.delete_numbers(keys)

    async def aget_bytes(self, key):
        return self.get_bytes(key)

    async def aset_bytes(self, key, value, ttl):
        self.set_bytes(key, value, ttl)

    async def adelete_bytes(self, key):
        self.delete_bytes(key)

    async def aclose(self):
        pass


class RedisStore:
    """Redis: the asyncio client in the data plane, the blocking one in Django."""

    # After a failure, answer "unavailable" at once for this long.
    BACKOFF = 1.0
    SOCKET_TIMEOUT = 0.5

    def __init__(self, url: str, prefix: str):
        self.url = url
        self.prefix = prefix
        self._sync = None
        self._async = {}  # one client per event loop
        self._down_until = 0.0
        self._lock = threading.Lock()

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _check(self):
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("Redis failed less than a second ago")

    def _failed(self, exc: Exception):
        if time.monotonic() >= self._down_until:
            logger.warning("Redis unavailable: %s", exc)
        self._down_until = time.monotonic() + self.BACKOFF
        raise StoreUnavailable(str(exc)) from exc

    def _options(self):
        return {
            "socket_timeout": self.SOCKET_TIMEOUT,
            "socket_connect_timeout": self.SOCKET_TIMEOUT,
            "health_check_interval": 30,
        }

    @property
    def sync(self):
        if self._sync is None:
            import redis

            with self._lock:
                if self._sync is None:
                    self._sync = redis.Redis.from_url(self.url, **self._options())
        return self._sync

    def client(self):
        import asyncio

        import redis.asyncio

        loop = asyncio.get_running_loop()
        found = self._async.get(loop)
        if found is None:
            found = self._async[loop] = redis.asyncio.Redis.from_url(
                self.url, **self._options()
            )
        return found

    @staticmethod
    def _ms(ttl: float) -> int:
        return max(int(ttl * 1000), 1)

    # Blocking (Django) --------------------------------------------------------

    def _run(self, fn):
        self._check()
        try:
            return fn(self.sync)
        except Exception as exc:
            self._failed(exc)

    def hit(self, key, ttl):
        def run(r):
            pipe = r.pipeline(transaction=False)
            pipe.set(self._k(key), 0, px=self._ms(ttl), nx=True)
            pipe.incr(self._k(key))
            return float(pipe.execute()[1])

        return self._run(run)

    def get_numbers(self, keys):
        values = self._run(lambda r: r.mget([self._k(k) for k in keys]))
        return [None if v is None else float(v) for v in values]

    def set_number(self, key, value, ttl):
        self._run(lambda r: r.set(self._k(key), repr(value), px=self._ms(ttl)))

    def add_number(self, key, value, ttl):
        added = self._run(
            lambda r: r.set(self._k(key), repr(value), px=self._ms(ttl), nx=True)
        )
        return bool(added)

    def delete_numbers(self, keys):
        self._run(lambda r: r.delete(*[self._k(k) for k in keys]))

    def get_bytes(self, key):
        return self._run(lambda r: r.get(self._k(key)))

    def set_bytes(self, key, value, ttl):
        self._run(lambda r: r.set(self._k(key), value, px=self._ms(ttl)))

    def delete_bytes(self, key):
        self._run(lambda r: r.delete(self._k(key)))

    # asyncio (the data plane) -------------------------------------------------

    async def _arun(self, fn):
        self._check()
        try:
            return await fn(self.client())
        except StoreUnavailable:
            raise
        except Exception as exc:
            self._failed(exc)

    async def ahit(self, key, ttl):
        async def run(r):
            pipe = r.pipeline(transaction=False)
            pipe.set(self._k(key), 0, px=self._ms(ttl), nx=True)
            pipe.incr(self._k(key))
            return float((await pipe.execute())[1])

        return await self._arun(run)

    async def aget_numbers(self, keys):
        values = await self._arun(lambda r: r.mget([self._k(k) for k in keys]))
        return [None if v is None else float(v) for v in values]

    async def aset_number(self, key, value, ttl):
        await self._arun(lambda r: r.set(self._k(key), repr(value), px=self._ms(ttl)))

    async def aadd_number(self, key, value, ttl):
        added = await self._arun(
            lambda r: r.set(self._k(key), repr(value), px=self._ms(ttl), nx=True)
        )
        return bool(added)

    async def adelete_numbers(self, keys):
        await self._arun(lambda r: r.delete(*[self._k(k) for k in keys]))

    async def aget_bytes(self, key):
        return await self._arun(lambda r: r.get(self._k(key)))

    async def aset_bytes(self, key, value, ttl):
        await self._arun(lambda r: r.set(self._k(key), value, px=self._ms(ttl)))

    async def adelete_bytes(self, key):
        await self._arun(lambda r: r.delete(self._k(key)))

    async def aclose(self):
        import asyncio

        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


_stores: dict = {}
_stores_lock = threading.Lock()


def get():
    """This process's store, as the settings (REDIS_URL, DATA_DIR) describe it."""
    redis_url = getattr(settings, "REDIS_URL", "")
    key = (redis_url, str(settings.DATA_DIR), conf.STORE_PREFIX)
    found = _stores.get(key)
    if found is None:
        with _stores_lock:
            found = _stores.get(key)
            if found is None:
                if redis_url:
                    found = RedisStore(redis_url, conf.STORE_PREFIX)
                else:
                    found = EmbeddedStore(settings.DATA_DIR, conf.STORE_PREFIX)
                _stores[key] = found
    return found
