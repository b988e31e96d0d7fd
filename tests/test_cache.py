import pytest
from django.core.cache import caches
from django.core.signals import request_finished

from gateway_site.cache import DiskCache


@pytest.fixture
def disk_cache():
    cache = caches["default"]
    if not isinstance(cache, DiskCache):
        pytest.skip("the suite runs on another cache backend (REDIS_URL is set)")
    return cache


def shard_connections(cache):
    return [getattr(shard._local, "con", None) for shard in cache._cache._shards]


@pytest.mark.django_db
def test_the_on_disk_cache_keeps_its_connections_when_a_request_finishes(disk_cache):
    for n in range(16):  # keys land on every shard
        disk_cache.set(f"key-{n}", n)
    before = shard_connections(disk_cache)
    assert all(con is not None for con in before)

    request_finished.send(sender=None)  # what Django sends after every response

    assert disk_cache.get("key-3") == 3
    assert shard_connections(disk_cache) == before
