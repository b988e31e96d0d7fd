"""The embedded default's caches: counters in shared memory, the rest on disk."""

import os
from pathlib import Path

from diskcache import DjangoCache
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from gateway_site import counters

# A key without a lifetime (timeout=None) lives this long: ten years.
FOREVER = 10 * 365 * 86400


class DiskCache(DjangoCache):
    """diskcache's Django backend, keeping its SQLite connections between requests.

    Django closes every cache it used when a request finishes. For diskcache
    that closes each shard's SQLite connection, and the next request opens it
    again and re-reads the cache's settings: with rate limits counting, that
    made a count read cost ~2.4 ms of CPU instead of ~0.85 ms
    (``make bench BENCH_ARGS=--rate-limits``). Connections are per thread, and
    diskcache reopens them in a forked worker (it checks the process id), so
    keeping them is safe.
    """

    def close(self, **kwargs):
        """Keep the connections; the next request reuses them."""


class CounterCache(BaseCache):
    """A cache of numbers shared by every process on the machine: rate limits.

    The cache alias ``counters`` (django-ratelimit's ``RATELIMIT_USE_CACHE``
    and the likes' per-network cap) holds only counters with lifetimes. Here
    they live in a :class:`gateway_site.counters.SharedTable`: a file mapped
    into every worker, where an increment is a byte-range lock and a few
    bytes written, instead of a SQLite write transaction (``DiskCache``).
    ``add`` and ``incr`` are atomic across processes and threads.

    Only numbers are stored (exact integers up to 2**53); any other value is a
    ``TypeError``. ``LOCATION`` is the table's file.
    """

    def __init__(self, location, params):
        super().__init__(params)
        self.path = Path(location)
        self._opened = (None, None)  # (process id, table)

    @property
    def _table(self) -> counters.SharedTable:
        pid, table = self._opened
        if pid != os.getpid():
            table = counters.table(self.path)
            self._opened = (os.getpid(), table)
        return table

    def _ttl(self, timeout) -> float:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return FOREVER if timeout is None else max(float(timeout), 0.0)

    def validate_key(self, key):
        """Any key: the table stores its digest, so no length or character rule
        applies (Django's memcached-compatibility check costs a tenth of a count)."""

    @staticmethod
    def _number(value) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"The counters cache stores numbers only, not {value!r}.")
        return float(value)

    @staticmethod
    def _value(stored: float):
        return int(stored) if stored.is_integer() else stored

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        return ttl > 0 and self._table.add(key, self._number(value), ttl)

    def get(self, key, default=None, version=None):
        key = self.make_and_validate_key(key, version=version)
        stored = self._table.get(key)
        return default if stored is None else self._value(stored)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl > 0:
            self._table.set(key, self._number(value), ttl)
        else:
            self._table.delete(key)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl <= 0:
            return self._table.delete(key)
        return self._table.touch(key, ttl)

    def incr(self, key, delta=1, version=None):
        key = self.make_and_validate_key(key, version=version)
        stored = self._table.incr(key, self._number(delta))
        if stored is None:
            raise ValueError(f"Key '{key}' not found")
        return self._value(stored)

    def has_key(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        return self._table.get(key) is not None

    def delete(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        return self._table.delete(key)

    def clear(self):
        self._table.clear()
