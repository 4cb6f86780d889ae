"""Mempool.snapshot / clear: what a devnet's evm_snapshot keeps and evm_revert rebuilds from."""

from __future__ import annotations

from tests.unit.test_mempool import FakeState, mk, new_pool


def test_snapshot_is_arrival_order_and_a_replacement_keeps_its_place() -> None:
    pool, _ = new_pool()
    a0, b1, b0, a1 = mk(0, 0), mk(1, 1), mk(1, 0), mk(0, 1)
    for tx in (a0, b1, b0, a1):
        pool.add(tx)
    bumped = mk(1, 1, tip=20)  # replaces b1
    pool.add(bumped)
    assert pool.snapshot() == [a0, bumped, b0, a1]


def test_clear_empties_and_re_adding_the_snapshot_rebuilds_the_pool() -> None:
    pool, state = new_pool()
    txs = [mk(0, 0), mk(0, 2), mk(1, 0), mk(0, 1), mk(2, 5)]
    for tx in txs:
        pool.add(tx)
    held = pool.snapshot()
    heard: list[object] = []
    pool.on_pending.append(heard.append)
    fresh = FakeState()
    assert pool.clear(fresh) == held
    assert (len(pool), pool.pending_count, pool.byte_size, heard) == (0, 0, 0, [])
    assert pool.state is fresh and pool.pending_nonce(mk(0, 0).sender) == 0
    pool.check_invariants()

    twin, _ = new_pool(state)
    for tx in held:
        pool.add(tx)
        twin.add(tx)
    assert pool.snapshot() == twin.snapshot() == held
    assert pool.pending_by_sender() == twin.pending_by_sender()
    assert pool.queued_by_sender() == twin.queued_by_sender()
    assert pool.pending_count == 4  # sender 0: nonces 0-2, sender 1: 0; sender 2 waits at 5
    pool.check_invariants()
