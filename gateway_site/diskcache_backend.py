"""diskcache's Django backend, keeping its SQLite connections between requests.

Django closes every cache at the end of each request (``request_finished`` →
``close_caches``). For diskcache that closes the per-thread SQLite connections,
so the next request reconnects and re-runs its pragmas: about ten statements per
shard touched, several times the cost of the lookups themselves. The
connections are per thread and diskcache reopens them after a fork, so keeping
them is safe.
"""

from diskcache import DjangoCache


class PersistentDjangoCache(DjangoCache):
    def close(self, **kwargs):
        """Keep the connections open; they are reused by this thread's next request."""
