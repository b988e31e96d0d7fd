"""The embedded default's cache backend."""

from diskcache import DjangoCache


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
