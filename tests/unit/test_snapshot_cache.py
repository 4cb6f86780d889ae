"""LevelDB's write-through cache of flat-snapshot entries (evm/db.py `SnapshotCache`): every
read sees the last write, whichever way it was written, absent keys included, and the cache
stays within its bound. Other keys are never cached."""

from __future__ import annotations

from pathlib import Path

from evm.db import LevelDB
from evm.flat import account_key, storage_key

SLOT = storage_key(b"\x05" * 20, 0, b"\x11" * 32)
ACCOUNT = account_key(b"\x05" * 20)


def test_reads_follow_every_kind_of_write(tmp_path: Path) -> None:
    db = LevelDB(tmp_path / "db")
    assert db.get(SLOT) is None and db.get(SLOT, b"d") == b"d"  # absent, and now cached so
    db.write_batch({SLOT: b"\x01", ACCOUNT: b"acct"}, sync=False)
    assert db.get(SLOT) == b"\x01" and db.get(ACCOUNT) == b"acct"
    db[SLOT] = b"\x02"
    assert db.get(SLOT) == b"\x02"
    with db.atomic_batch() as batch:
        del batch[SLOT]
    assert db.get(SLOT) is None
    db[SLOT] = b"\x03"
    del db[SLOT]
    assert db.get(SLOT) is None
    db.close()
    reopened = LevelDB(tmp_path / "db")
    assert reopened.get(SLOT) is None and reopened.get(ACCOUNT) == b"acct"
    reopened.close()


def test_only_snapshot_keys_are_cached_and_the_cache_is_bounded(tmp_path: Path) -> None:
    db = LevelDB(tmp_path / "db")
    db.snapshot_cache.maxsize = 8
    node_hash = b"fs" + b"\x00" * 30  # 32 bytes: a node or code hash, whatever its prefix
    db[node_hash] = b"node"
    assert db.get(node_hash) == b"node" and len(db.snapshot_cache) == 0
    keys = [storage_key(b"\x05" * 20, 0, bytes([i]) * 32) for i in range(20)]
    db.write_batch({key: bytes([i + 1]) for i, key in enumerate(keys)}, sync=False)
    assert len(db.snapshot_cache) == 8
    assert [db.get(key) for key in keys] == [bytes([i + 1]) for i in range(20)]
    assert len(db.snapshot_cache) == 8
    db.close()
