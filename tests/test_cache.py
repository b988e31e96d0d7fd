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


# --- The counters cache (rate limits, the per-network cap) ----------------------


@pytest.fixture
def counters(tmp_path):
    from gateway_site.cache import CounterCache

    return CounterCache(str(tmp_path / "limits.bin"), {})


def test_counters_add_incr_get_and_expire(counters):
    assert counters.add("k", 0, 60) is True
    assert counters.add("k", 5, 60) is False  # live: untouched
    assert counters.incr("k") == 1
    assert counters.incr("k", 2) == 3
    assert counters.get("k") == 3
    assert isinstance(counters.get("k"), int)
    assert counters.get("missing", "default") == "default"
    with pytest.raises(ValueError, match="not found"):
        counters.incr("missing")

    counters.set("short", 7, 0.05)
    assert counters.has_key("short")
    import time

    time.sleep(0.1)
    assert counters.get("short") is None
    assert counters.add("short", 1, 60) is True  # an expired key is free again


def test_counters_touch_delete_clear_and_timeouts(counters):
    counters.set("a", 1.5, 60)
    assert counters.get("a") == 1.5
    assert counters.touch("a", 120) is True
    assert counters.touch("nope", 120) is False
    assert counters.delete("a") is True
    assert counters.delete("a") is False
    counters.set("forever", 1, None)
    assert counters.get("forever") == 1
    counters.set("gone", 1, 0)  # a timeout of 0 stores nothing
    assert counters.get("gone") is None
    assert counters.add("zero", 1, 0) is False
    counters.clear()
    assert counters.get("forever") is None


@pytest.mark.parametrize("value", ["text", b"bytes", None, True, [1]])
def test_counters_refuse_anything_but_numbers(counters, value):
    with pytest.raises(TypeError, match="numbers only"):
        counters.set("k", value, 60)


def test_counters_take_any_key(counters):
    key = "x" * 400 + " spaces and\ttabs"  # memcached would refuse both
    counters.set(key, 1, 60)
    assert counters.get(key) == 1


def _add_many(path, n):
    from gateway_site.cache import CounterCache

    cache = CounterCache(path, {})
    for _ in range(n):
        cache.add("shared", 0, 600)
        cache.incr("shared")


def test_counters_add_up_across_processes(counters):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    procs = [
        context.Process(target=_add_many, args=(str(counters.path), 2000))
        for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    _add_many(str(counters.path), 2000)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0

    assert counters.get("shared") == 5 * 2000


def test_a_process_local_counters_cache_with_several_workers_is_refused(
    settings, monkeypatch
):
    from gateway_site.checks import check_shared_cache

    settings.CACHES = {
        **settings.CACHES,
        "counters": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    monkeypatch.setenv("WEB_CONCURRENCY", "2")

    errors = check_shared_cache(None)

    assert [e.id for e in errors] == ["gateway_site.E002"]
    assert "counters (django.core.cache.backends.locmem.LocMemCache)" in errors[0].msg


def test_a_table_finds_a_key_past_look_alike_bytes_and_its_own_expired_slot(tmp_path):
    import struct
    import time

    from gateway_site.counters import SLOT, SharedTable

    table = SharedTable(tmp_path / "t.bin", slots_per_stripe=4)
    digest, _, base = table._locate("key")
    now = time.time()
    # Slot 0: another key whose expiry and value bytes spell "key"'s digest;
    # slot 1: "key" itself, expired; slot 2: "key", live.
    expires, value = struct.unpack("<dd", digest)
    SLOT.pack_into(table._map, base, b"x" * 16, expires, value)
    SLOT.pack_into(table._map, base + SLOT.size, digest, now - 1, 7.0)
    SLOT.pack_into(table._map, base + 2 * SLOT.size, digest, now + 60, 3.0)

    assert table.get("key") == 3.0
    assert table.add("key", 1, 60) is False
    assert table.incr("key") == 4.0
    table.close()


def _append_many(path: str, name: bytes, n: int) -> None:
    from gateway_site.counters import SharedRing

    ring = SharedRing(path, size=50, record_bytes=64)
    for i in range(n):
        ring.append([b"%s-%d" % (name, i)])


def test_a_ring_keeps_the_last_records_of_every_process_whole(tmp_path):
    import multiprocessing

    from gateway_site.counters import SharedRing

    path = tmp_path / "ring.bin"
    ring = SharedRing(path, size=50, record_bytes=64)
    context = multiprocessing.get_context("fork")
    procs = [
        context.Process(target=_append_many, args=(str(path), b"p%d" % n, 500))
        for n in range(3)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0

    records = ring.records()
    assert len(records) == 50
    # Whole records only, and each process's in the order it wrote them.
    for name in (b"p0", b"p1", b"p2"):
        mine = [int(r.split(b"-")[1]) for r in records if r.startswith(name + b"-")]
        assert mine == sorted(mine)
    assert {r.split(b"-")[0] for r in records} <= {b"p0", b"p1", b"p2"}
    assert any(r == b"p%d-499" % n for n in range(3) for r in records[-3:])


def test_a_ring_skips_what_does_not_fit_and_mends_a_file_cut_short(
    tmp_path,
):
    from gateway_site.counters import SharedRing

    path = tmp_path / "ring.bin"
    ring = SharedRing(path, size=3, record_bytes=8)
    ring.append([b"a", b"x" * 9, b"", b"b"])
    ring.append([b"c", b"d"])

    assert ring.records() == [b"b", b"c", b"d"]
    ring.close()
    path.write_bytes(b"\xff" * 7)  # cut short, e.g. by a full disk
    again = SharedRing(path, size=3, record_bytes=8)
    assert again.records() == []
    again.append([b"e"])
    assert again.records() == [b"e"]
    again.close()
