"""Numbers shared by every process on this machine: counters, timestamps, tokens.

The embedded default has no Redis, yet rate limits and circuit breakers must
add up across all gunicorn workers (and the gateway's data plane). Counting in
the on-disk cache costs a SQLite write transaction per request; this table
costs two ``fcntl`` calls per update: it is a file in ``DATA_DIR`` mapped into memory
(``MAP_SHARED``), whose fixed-size slots each hold a key digest, an expiry time
and a number. A key hashes to one stripe of slots; the stripe is locked (a
byte-range lock on the file, which excludes other processes, plus a thread
lock, which excludes other threads of this one) while a slot is read and
written. The file is allocated in full when created (``posix_fallocate``), so
a full disk can never turn a write into SIGBUS.

Values are 64-bit floats: counts are exact up to 2**53. A key that finds its
stripe full takes the slot that expires soonest: with the default size (4,096
stripes of 16 slots, 2 MB) that takes 17 live keys hashing to one stripe, and
costs one counter its history (a rate limit that forgets, never one
that refuses wrongly).

``SharedRing``, on the same footing, keeps the last records of a kind (the
gateway console's recent requests): a count, then fixed-size slots of bytes.
"""

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
from pathlib import Path

# digest (16 bytes), expires at (unix seconds, 0: empty), value
SLOT = struct.Struct("<16sdd")
EXPIRES = struct.Struct("<d")
EXPIRES_AT = 16  # the expiry's offset in a slot
STRIPES = 4096
EMPTY = bytes(16)


class MappedFile:
    """A file of ``length`` bytes mapped into memory (``MAP_SHARED``), with the
    thread lock that goes with its byte-range locks. A shorter file (cut short,
    or another version's) is extended."""

    def __init__(self, path: Path, length: int):
        self.path = Path(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < length:
                # Real blocks, not a sparse file: no SIGBUS on a full disk later.
                os.posix_fallocate(fd, 0, length)
            self._map = mmap.mmap(fd, length, mmap.MAP_SHARED)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._thread_lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self):
        self._thread_lock = threading.Lock()

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class SharedTable(MappedFile):
    """A fixed-size table of numbers with expiries in a shared, mapped file."""

    def __init__(self, path: Path, *, slots_per_stripe: int = 16):
        self.slots_per_stripe = slots_per_stripe
        self.stripe_bytes = slots_per_stripe * SLOT.size
        super().__init__(path, STRIPES * self.stripe_bytes)

    def _locate(self, key: str | bytes) -> tuple[bytes, int, int]:
        """(digest, stripe, first byte of the stripe) of a key."""
        raw = key.encode() if isinstance(key, str) else key
        digest = hashlib.blake2b(raw, digest_size=16).digest()
        if digest == EMPTY:
            digest = b"\x01" + digest[1:]
        stripe = int.from_bytes(digest[:2], "little") % STRIPES
        return digest, stripe, stripe * self.stripe_bytes

    def _lock(self, stripe: int) -> None:
        self._thread_lock.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, stripe)
        except BaseException:
            self._thread_lock.release()
            raise

    def _unlock(self, stripe: int) -> None:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, stripe)
        finally:
            self._thread_lock.release()

    def _live(self, stripe: bytes, digest: bytes, now: float) -> int | None:
        """Where in ``stripe`` the key's live slot is, if it has one.

        A key can hold more than one slot (an expired one, and the one taken
        when it was set again): only a live one counts.
        """
        at = stripe.find(digest)
        while at >= 0:
            # A slot's start (else inside another field), and not expired.
            if (
                not at % SLOT.size
                and EXPIRES.unpack_from(stripe, at + EXPIRES_AT)[0] > now
            ):
                return at
            at = stripe.find(digest, at + 1)
        return None

    def _find(self, base: int, digest: bytes, now: float) -> tuple[int, bool]:
        """(offset, live): the key's live slot, else the slot to take for it."""
        stripe = self._map[base : base + self.stripe_bytes]
        at = self._live(stripe, digest, now)
        if at is not None:
            return base + at, True
        free = None
        soonest, soonest_at = base, float("inf")
        for index, (_, expires, _) in enumerate(SLOT.iter_unpack(stripe)):
            offset = base + index * SLOT.size
            if expires <= now:
                if free is None:
                    free = offset
            elif expires < soonest_at:
                soonest, soonest_at = offset, expires
        return (soonest if free is None else free), False

    def hit(self, key: str | bytes, ttl: float, amount: float = 1) -> float:
        """Add ``amount`` to a counter that starts at 0 and lives ``ttl`` seconds."""
        digest, stripe, base = self._locate(key)
        now = time.time()
        self._lock(stripe)
        try:
            offset, live = self._find(base, digest, now)
            if live:
                _, expires, value = SLOT.unpack_from(self._map, offset)
                value += amount
            else:
                expires, value = now + ttl, amount
            SLOT.pack_into(self._map, offset, digest, expires, value)
        finally:
            self._unlock(stripe)
        return value

    def get_with_expiry(self, key: str | bytes) -> tuple[float, float] | None:
        """(value, expires at) of a live key, or None."""
        digest, stripe, base = self._locate(key)
        self._lock(stripe)
        try:
            # A read looks for the key's live slot only (no free slot to find).
            at = self._live(
                self._map[base : base + self.stripe_bytes], digest, time.time()
            )
            if at is None:
                return None
            _, expires, value = SLOT.unpack_from(self._map, base + at)
            return value, expires
        finally:
            self._unlock(stripe)

    def get(self, key: str | bytes) -> float | None:
        found = self.get_with_expiry(key)
        return None if found is None else found[0]

    def set(self, key: str | bytes, value: float, ttl: float) -> None:
        digest, stripe, base = self._locate(key)
        now = time.time()
        self._lock(stripe)
        try:
            offset, _ = self._find(base, digest, now)
            SLOT.pack_into(self._map, offset, digest, now + ttl, value)
        finally:
            self._unlock(stripe)

    def add(self, key: str | bytes, value: float, ttl: float) -> bool:
        """Set ``key`` only when it is not live; whether it was set.

        A key found live without the lock is an answer already (False): only
        a write of that very key puts its digest in a slot, so the key was
        live at that moment. django-ratelimit calls ``add`` before every
        ``incr``; this makes a count one locked update instead of two.
        """
        digest, stripe, base = self._locate(key)
        now = time.time()
        peek = self._map[base : base + self.stripe_bytes]
        if self._live(peek, digest, now) is not None:
            return False
        self._lock(stripe)
        try:
            offset, live = self._find(base, digest, now)
            if live:
                return False
            SLOT.pack_into(self._map, offset, digest, now + ttl, value)
            return True
        finally:
            self._unlock(stripe)

    def incr(self, key: str | bytes, amount: float = 1) -> float | None:
        """Add to a live key, keeping its expiry; None when it is not live."""
        digest, stripe, base = self._locate(key)
        self._lock(stripe)
        try:
            offset, live = self._find(base, digest, time.time())
            if not live:
                return None
            _, expires, value = SLOT.unpack_from(self._map, offset)
            value += amount
            SLOT.pack_into(self._map, offset, digest, expires, value)
            return value
        finally:
            self._unlock(stripe)

    def touch(self, key: str | bytes, ttl: float) -> bool:
        """Give a live key a new lifetime; whether it was live."""
        digest, stripe, base = self._locate(key)
        now = time.time()
        self._lock(stripe)
        try:
            offset, live = self._find(base, digest, now)
            if live:
                _, _, value = SLOT.unpack_from(self._map, offset)
                SLOT.pack_into(self._map, offset, digest, now + ttl, value)
            return live
        finally:
            self._unlock(stripe)

    def delete(self, key: str | bytes) -> bool:
        digest, stripe, base = self._locate(key)
        self._lock(stripe)
        try:
            offset, live = self._find(base, digest, time.time())
            if live:
                SLOT.pack_into(self._map, offset, EMPTY, 0.0, 0.0)
            return live
        finally:
            self._unlock(stripe)

    def clear(self) -> None:
        """Forget every key (the whole file is locked meanwhile)."""
        with self._thread_lock:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, STRIPES, 0)
            try:
                self._map[:] = bytes(len(self._map))
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, STRIPES, 0)


_opened: dict[tuple[int, Path], MappedFile] = {}
_opened_lock = threading.Lock()


def _once(kind, path: Path, **options):
    """The ``kind`` of mapped file at ``path``, opened once per process."""
    key = (os.getpid(), Path(path))
    found = _opened.get(key)
    if found is None:
        with _opened_lock:
            found = _opened.get(key)
            if found is None:
                found = _opened[key] = kind(path, **options)
    return found


def table(path: Path) -> SharedTable:
    """The table at ``path``, opened once per process."""
    return _once(SharedTable, path)


# --- a ring of records ---------------------------------------------------------------

RING_HEAD = struct.Struct("<Q")  # records appended so far
RING_LENGTH = struct.Struct("<I")  # a slot's record length (0: empty)


class SharedRing(MappedFile):
    """The last ``size`` records (bytes, up to ``record_bytes`` each) appended by
    any process, in a shared mapped file: the gateway console's recent requests.

    The file is a count of records appended so far, then ``size`` slots of a
    length and the record. An append takes the whole file's lock (a byte-range
    lock on it, plus a thread lock) for the time of a copy; a read takes it too.
    """

    def __init__(self, path: Path, *, size: int, record_bytes: int):
        self.size = size
        self.record_bytes = record_bytes
        self.slot_bytes = RING_LENGTH.size + record_bytes
        super().__init__(path, RING_HEAD.size + size * self.slot_bytes)

    @contextlib.contextmanager
    def _held(self, kind):
        with self._thread_lock:
            fcntl.lockf(self._fd, kind, 1, 0)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, 0)

    def _offset(self, slot: int) -> int:
        return RING_HEAD.size + slot * self.slot_bytes

    def append(self, records: list[bytes]) -> None:
        """Add records, oldest first; one longer than ``record_bytes`` is skipped."""
        records = [r for r in records if 0 < len(r) <= self.record_bytes]
        if not records:
            return
        records = records[-self.size :]
        with self._held(fcntl.LOCK_EX):
            (count,) = RING_HEAD.unpack_from(self._map, 0)
            if count >= 2**63:  # a damaged file: start counting again
                count = 0
            for record in records:
                at = self._offset(count % self.size)
                RING_LENGTH.pack_into(self._map, at, len(record))
                start = at + RING_LENGTH.size
                self._map[start : start + len(record)] = record
                count += 1
            RING_HEAD.pack_into(self._map, 0, count)

    def records(self) -> list[bytes]:
        """Every record kept, oldest first."""
        with self._held(fcntl.LOCK_SH):
            (count,) = RING_HEAD.unpack_from(self._map, 0)
            found = []
            for n in range(max(count - self.size, 0), count):
                at = self._offset(n % self.size)
                (length,) = RING_LENGTH.unpack_from(self._map, at)
                if 0 < length <= self.record_bytes:
                    start = at + RING_LENGTH.size
                    found.append(self._map[start : start + length])
            return found


def ring(path: Path, *, size: int, record_bytes: int) -> SharedRing:
    """The ring at ``path``, opened once per process."""
    return _once(SharedRing, path, size=size, record_bytes=record_bytes)
