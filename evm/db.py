"""Key-value databases under py-evm: LevelDB on disk and an in-memory overlay per block.

`LevelDB` adapts plyvel to py-evm's `AtomicDatabaseAPI`, so py-evm code (and ours) can read
trie nodes and code straight from disk. `OverlayDB` collects everything one block writes in a
dict on top of a read-only base; the chain flushes it into LevelDB in ONE write batch when the
block commits, which is what makes a crash at any moment harmless: either the whole block is
on disk or none of it is. An overlay made with `flat_snapshot=True` lets a `StateDB` on it read
and update the flat state snapshot (evm/flat.py) beside the trie nodes: the chain's block
pipeline asks for it, read views for RPC do not (the snapshot moves at every commit).

`LevelDB` keeps the flat snapshot's entries it has read or written in a bounded write-through
cache (`SnapshotCache`): every block reads the same hot accounts and slots (the staking
records, the system accounts) again from a fresh overlay, and a dict hit costs a fraction of a
plyvel read. Every write to the database passes through this class, so the cache is never
stale.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import plyvel
from eth.abc import AtomicWriteBatchAPI, DatabaseAPI
from eth.db.backends.base import BaseAtomicDB, BaseDB

from evm.errors import EvmError
from evm.flat import is_snapshot_key
from evm.trie import NodeCache

# Decoded trie nodes a database keeps for every StateDB over it (~470 bytes each: ~23 MiB).
# Enough for the top of the state trie and several blocks' paths; a bigger cache is resident
# memory a long-running node keeps growing into (issue #13's soak).
SHARED_NODE_CACHE_NODES = 50_000
# LevelDB's own cache of decompressed table blocks: LevelDB's default size. It sits under our
# caches (decoded trie nodes, flat-snapshot entries, recent blocks), so it mostly serves reads
# that miss them; at 64 MiB it filled at ~4.5 MiB a minute under the soak's load (random reads
# over a 6 GB chain), resident memory that looked like a leak for a quarter of an hour.
LEVELDB_BLOCK_CACHE_BYTES = 8 * 2**20
# Bits per key of the Bloom filter in each table LevelDB writes (its recommended 10: ~1 %
# false positives). Without one, a read of a key that is not there (every new account a
# transfer pays, every fresh storage slot) searches every table whose range covers it: 20-26 us
# against 12-15 us with the filter, measured over 400,000 keys. Tables written before keep
# working without a filter until compaction rewrites them.
LEVELDB_BLOOM_BITS_PER_KEY = 10

_DELETED = None


class DatabaseUnavailable(EvmError):
    """The database cannot be opened: locked by another process, corrupt, unreadable."""


class _BatchingDB(BaseAtomicDB):
    """`atomic_batch` through an overlay flushed by the subclass's `write_batch`."""

    @contextlib.contextmanager
    def atomic_batch(self) -> Iterator[AtomicWriteBatchAPI]:
        overlay = OverlayDB(self)
        yield overlay  # type: ignore[misc]
        self.write_batch(overlay.writes, sync=False)

    def write_batch(self, writes: dict[bytes, bytes | None], *, sync: bool) -> None:
        raise NotImplementedError


class SnapshotCache:
    """What the database holds under recently used flat-snapshot keys (None: absent).

    Bounded: beyond `maxsize` entries the oldest insertion goes (hits do not reorder: a dict
    in insertion order, no bookkeeping on the hot path). Thread-safe with the database's lock
    held by every writer and every miss: a read of the database and its insertion here cannot
    interleave with a write of the same key, and hits read one dict entry (atomic).
    """

    __slots__ = ("_entries", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: dict[bytes, bytes | None] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: bytes) -> tuple[bool, bytes | None]:
        """(whether `key` is cached, its value)."""
        entries = self._entries
        try:
            return True, entries[key]
        except KeyError:
            return False, None

    def store(self, key: bytes, value: bytes | None) -> None:
        """Record the database's value of `key` (caller holds the database's lock)."""
        entries = self._entries
        entries[key] = value
        if len(entries) > self.maxsize:
            del entries[next(iter(entries))]


class LevelDB(_BatchingDB):
    """A plyvel database. Writes outside `atomic_batch` go straight to disk."""

    SNAPSHOT_CACHE_SIZE = 1 << 16

    def __init__(self, path: Path | str, *, create: bool = True) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.path = Path(path)
        self.node_cache = NodeCache(SHARED_NODE_CACHE_NODES)
        self.snapshot_cache = SnapshotCache(self.SNAPSHOT_CACHE_SIZE)
        self._lock = threading.Lock()  # writers and snapshot-cache misses
        try:
            self._db = plyvel.DB(
                str(path),
                create_if_missing=create,
                lru_cache_size=LEVELDB_BLOCK_CACHE_BYTES,
                bloom_filter_bits=LEVELDB_BLOOM_BITS_PER_KEY,
            )
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise DatabaseUnavailable(
                    f"{path} is in use by another running node (LevelDB lock held)"
                ) from None
            raise DatabaseUnavailable(f"{path}: {exc}") from None
        except plyvel.CorruptionError as exc:
            raise DatabaseUnavailable(f"{path} is corrupt: {exc}") from None

    def __getitem__(self, key: bytes) -> bytes:
        value = self._db.get(key)
        if value is None:
            raise KeyError(key)
        return value  # type: ignore[no-any-return]

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        if not is_snapshot_key(key):
            return self._db.get(key, default)  # type: ignore[no-any-return]
        cached, value = self.snapshot_cache.lookup(key)
        if not cached:
            with self._lock:
                value = self._db.get(key)
                self.snapshot_cache.store(key, value)
        return default if value is None else value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        with self._lock:
            self._db.put(key, value)
            self._note(key, value)

    def __delitem__(self, key: bytes) -> None:
        with self._lock:
            if self._db.get(key) is None:
                raise KeyError(key)
            self._db.delete(key)
            self._note(key, None)

    def _note(self, key: bytes, value: bytes | None) -> None:
        """Keep the snapshot cache in step with a write (the lock is held)."""
        if is_snapshot_key(key):
            self.snapshot_cache.store(key, value)

    def _exists(self, key: bytes) -> bool:
        return self._db.get(key) is not None

    def write_batch(self, writes: dict[bytes, bytes | None], *, sync: bool) -> None:
        """Apply a set of writes and deletes atomically (one LevelDB WriteBatch)."""
        with self._lock:
            with self._db.write_batch(sync=sync) as batch:
                for key, value in writes.items():
                    if value is _DELETED:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
            for key, value in writes.items():
                self._note(key, value)

    def iterate_prefix(
        self, prefix: bytes, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        yield from self._db.iterator(prefix=prefix, reverse=reverse)

    def close(self) -> None:
        self._db.close()


class MemoryDB(_BatchingDB):
    """A dict database with the same surface as `LevelDB`, for tests and throwaway chains."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.node_cache = NodeCache(SHARED_NODE_CACHE_NODES)

    def __getitem__(self, key: bytes) -> bytes:
        return self.data[key]

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        return self.data.get(key, default)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self.data[key]

    def _exists(self, key: bytes) -> bool:
        return key in self.data

    def write_batch(self, writes: dict[bytes, bytes | None], *, sync: bool) -> None:
        for key, value in writes.items():
            if value is _DELETED:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def iterate_prefix(
        self, prefix: bytes, *, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        keys = sorted((k for k in self.data if k.startswith(prefix)), reverse=reverse)
        for key in keys:
            yield key, self.data[key]

    def close(self) -> None:
        pass


class OverlayDB(BaseDB):
    """Pending writes over a read-only base; `writes` is what a commit must flush.

    `flat_snapshot`: a `StateDB` on this overlay may use the flat state snapshot (it still
    checks that the snapshot is of the root it opens at). Only for a caller that commits the
    overlay in one batch, on the state it was opened at (the chain's blocks and genesis).
    `slot_preimages`: the snapshot also records each written slot's preimage (evm/flat.py)."""

    def __init__(
        self, base: DatabaseAPI, *, flat_snapshot: bool = False, slot_preimages: bool = False
    ) -> None:
        self.base = base
        self.node_cache: NodeCache | None = getattr(base, "node_cache", None)
        self.flat_snapshot = flat_snapshot
        self.slot_preimages = slot_preimages  # evm/flat.py "Preimages"
        self.writes: dict[bytes, bytes | None] = {}

    def __getitem__(self, key: bytes) -> bytes:
        if key in self.writes:
            value = self.writes[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.base[key]

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        # No KeyError round trip: flat snapshot reads of absent slots (zeros) come here.
        writes = self.writes
        if key in writes:
            value = writes[key]
            return default if value is _DELETED else value
        return self.base.get(key, default)  # type: ignore[no-any-return]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def __delitem__(self, key: bytes) -> None:
        self.writes[key] = _DELETED

    def _exists(self, key: bytes) -> bool:
        if key in self.writes:
            return self.writes[key] is not _DELETED
        return key in self.base
