"""Benchmark evm.trie against trie.HexaryTrie / eth.db.trie.make_trie_root_and_nodes.

Run: .venv/bin/python benchmarks/trie_bench.py
"""

from __future__ import annotations

import random
import time

from eth.db.trie import _make_trie_root_and_nodes
from eth_hash.auto import keccak
from trie import HexaryTrie

from evm.trie import MerkleTrie, ordered_trie_root

BASE_KEYS = 50_000
BATCH = 2_000
ORDERED_ITEMS = 1_000


def _rand(rnd: random.Random, n: int) -> bytes:
    return rnd.randbytes(n)


def main() -> None:
    rnd = random.Random(2024)
    db: dict[bytes, bytes] = {}
    base = {keccak(_rand(rnd, 20)): _rand(rnd, 70) for _ in range(BASE_KEYS)}

    t = MerkleTrie(db.__getitem__)
    t0 = time.perf_counter()
    db.update(t.apply(base))
    dt = time.perf_counter() - t0
    per_key = dt / BASE_KEYS * 1e6
    print(f"build {BASE_KEYS} keys in one batch: {dt * 1e3:.0f} ms ({per_key:.1f} us/key)")
    base_root = t.root

    new_batch = {keccak(_rand(rnd, 20)): _rand(rnd, 70) for _ in range(BATCH)}
    existing = rnd.sample(sorted(base), BATCH)
    upd_batch = {k: _rand(rnd, 70) for k in existing}

    # ours, cold cache (fresh MerkleTrie over the store), then warm (same instance again)
    results: dict[str, float] = {}
    for label, batch in (("new keys", new_batch), ("existing keys", upd_batch)):
        cold = MerkleTrie(db.__getitem__, base_root)
        t0 = time.perf_counter()
        nodes = cold.apply(batch)
        results[f"ours cold, {label}"] = (time.perf_counter() - t0) / BATCH * 1e6
        cold.root = base_root  # same nodes, now cached
        t0 = time.perf_counter()
        nodes2 = cold.apply(batch)
        results[f"ours warm, {label}"] = (time.perf_counter() - t0) / BATCH * 1e6
        assert nodes2.keys() == nodes.keys()

        # HexaryTrie, one set at a time, on a dict-backed db holding our nodes
        hdb = dict(db)
        ht = HexaryTrie(hdb, base_root)
        t0 = time.perf_counter()
        for k, v in batch.items():
            ht[k] = v
        results[f"HexaryTrie, {label}"] = (time.perf_counter() - t0) / BATCH * 1e6
        assert ht.root_hash == cold.root, "root mismatch"

    print(f"\napply {BATCH} random 32-byte keys (~70-byte values) to a {BASE_KEYS}-key trie:")
    for label in ("new keys", "existing keys"):
        hx = results[f"HexaryTrie, {label}"]
        for kind in ("cold", "warm"):
            ours = results[f"ours {kind}, {label}"]
            print(
                f"  {label:14s} ours ({kind}): {ours:6.1f} us/key   HexaryTrie: {hx:6.1f} us/key"
                f"   ratio {hx / ours:5.1f}x"
            )

    items = tuple(_rand(rnd, 110) for _ in range(ORDERED_ITEMS))
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        ours_root = ordered_trie_root(items)
    ours_t = (time.perf_counter() - t0) / reps
    raw = _make_trie_root_and_nodes.__wrapped__  # bypass its lru_cache
    t0 = time.perf_counter()
    for _ in range(reps):
        ref_root, _nodes = raw(items)
    ref_t = (time.perf_counter() - t0) / reps
    assert ours_root == ref_root, "ordered root mismatch"
    print(f"\nordered_trie_root, {ORDERED_ITEMS} items of 110 bytes:")
    print(
        f"  ours: {ours_t * 1e3:.2f} ms   make_trie_root_and_nodes: {ref_t * 1e3:.2f} ms"
        f"   ratio {ref_t / ours_t:.1f}x"
    )


if __name__ == "__main__":
    main()
