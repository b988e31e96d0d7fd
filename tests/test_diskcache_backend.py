import pytest
from django.core.cache import caches, close_caches

from gateway_site.diskcache_backend import PersistentDjangoCache


def test_connections_survive_the_end_of_a_request():
    cache = caches["default"]
    if not isinstance(cache, PersistentDjangoCache):
        pytest.skip("the cache is Redis (REDIS_URL): nothing to keep open")
    for n in range(16):
        cache.get(f"warm-{n}")  # touch every shard
    before = [getattr(shard._local, "con", None) for shard in cache._cache._shards]
    close_caches()  # what Django runs on request_finished
    after = [getattr(shard._local, "con", None) for shard in cache._cache._shards]
    assert all(before)
    assert after == before
