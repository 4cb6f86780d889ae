"""Unit and property tests for the transaction pool core (cybermiles_node.txpool.mempool)."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cybermiles_node.errors import (
    AlreadyKnown,
    GasPriceTooLow,
    InsufficientFunds,
    NonceTooHigh,
    NonceTooLow,
    PoolLimitReached,
    ReplacementUnderpriced,
    TxRejected,
)
from cybermiles_node.txpool.mempool import Mempool, MempoolConfig

GAS = 21_000
RICH = 10**30


@dataclass(frozen=True)
class FakeTx:
    hash: bytes
    sender: bytes
    nonce: int
    gas: int
    tip: int
    fee_cap: int
    max_cost: int
    size: int


def addr(i: int) -> bytes:
    return bytes([i + 1]) * 20


_salt = iter(range(10**9))


def mk(
    sender: int | bytes,
    nonce: int,
    tip: int = 10,
    *,
    fee_cap: int | None = None,
    gas: int = GAS,
    value: int = 0,
    size: int = 100,
) -> FakeTx:
    s = addr(sender) if isinstance(sender, int) else sender
    cap = tip if fee_cap is None else fee_cap
    h = hashlib.sha256(repr((s, nonce, tip, cap, gas, value, size, next(_salt))).encode())
    return FakeTx(h.digest(), s, nonce, gas, tip, cap, value + gas * cap, size)


@dataclass
class FakeState:
    nonces: dict[bytes, int] = field(default_factory=dict)
    balances: dict[bytes, int] = field(default_factory=dict)
    default_balance: int = RICH

    def get_nonce(self, address: bytes) -> int:
        return self.nonces.get(address, 0)

    def get_balance(self, address: bytes) -> int:
        return self.balances.get(address, self.default_balance)


def new_pool(state: FakeState | None = None, **cfg: int) -> tuple[Mempool[FakeTx], FakeState]:
    st_ = state if state is not None else FakeState()
    return Mempool(MempoolConfig(**cfg), st_), st_


def nonces(txs: Sequence[FakeTx]) -> list[int]:
    return [t.nonce for t in txs]


# ---------------------------------------------------------------------------- rejections


def test_already_known() -> None:
    pool, _ = new_pool()
    tx = mk(0, 0)
    assert pool.add(tx) is True
    with pytest.raises(AlreadyKnown) as ei:
        pool.add(tx)
    assert ei.value.code == 1000


def test_nonce_too_low_message_and_code() -> None:
    pool, _ = new_pool(FakeState(nonces={addr(0): 5}))
    with pytest.raises(NonceTooLow) as ei:
        pool.add(mk(0, 3))
    assert ei.value.code == 1
    assert ei.value.message == "nonce too low: next nonce 5, tx nonce 3"
    assert pool.add(mk(0, 5)) is True


def test_nonce_too_high_boundary_is_relative_to_pending_nonce() -> None:
    pool, _ = new_pool(max_nonce_gap=4)
    pool.add(mk(0, 0))
    pool.add(mk(0, 1))  # pending nonce is now 2
    assert pool.add(mk(0, 6)) is False  # 2 + 4: accepted, queued
    with pytest.raises(NonceTooHigh) as ei:
        pool.add(mk(0, 7))
    assert ei.value.code == 2


def test_gas_price_too_low() -> None:
    pool, _ = new_pool(min_tip=5)
    with pytest.raises(GasPriceTooLow) as ei:
        pool.add(mk(0, 0, tip=4))
    assert ei.value.code == 802
    assert pool.add(mk(0, 0, tip=5)) is True


def test_insufficient_funds_single_and_cumulative() -> None:
    s = addr(0)
    pool, _ = new_pool(FakeState(balances={s: 100 * GAS}))
    with pytest.raises(InsufficientFunds) as ei:
        pool.add(mk(0, 0, tip=101))
    assert ei.value.code == 809
    assert ei.value.message == (
        f"insufficient funds for gas * price + value: balance {100 * GAS}, tx cost {101 * GAS}"
    )
    pool.add(mk(0, 0, tip=60))
    with pytest.raises(InsufficientFunds) as ei:
        pool.add(mk(0, 1, tip=41))  # 60 + 41 > 100 cumulatively
    assert ei.value.message.startswith(
        f"insufficient funds for gas * price + value: balance {100 * GAS}, tx cost {41 * GAS}"
    )
    assert pool.add(mk(0, 1, tip=40)) is True
    # A queued tx counts too: nonce 3 needs 0..2 of the pool covered plus itself.
    with pytest.raises(InsufficientFunds):
        pool.add(mk(0, 3, tip=1))


def test_replacement_underpriced_code() -> None:
    pool, _ = new_pool()
    pool.add(mk(0, 0, tip=100))
    with pytest.raises(ReplacementUnderpriced) as ei:
        pool.add(mk(0, 0, tip=100))
    assert ei.value.code == -32003
    assert ei.value.message == "replacement transaction underpriced"


def test_per_sender_cap() -> None:
    pool, _ = new_pool(max_per_sender=3)
    for n in range(3):
        pool.add(mk(0, n))
    with pytest.raises(PoolLimitReached) as ei:
        pool.add(mk(0, 3))
    assert ei.value.code == -32003
    assert "limit 3" in ei.value.message
    assert pool.add(mk(0, 2, tip=20)) is True  # a replacement is allowed at the cap
    assert pool.add(mk(1, 0)) is True


def test_rejection_leaves_pool_unchanged() -> None:
    pool, _ = new_pool(max_txs=2)
    a, b = mk(0, 0, tip=5), mk(1, 0, tip=5)
    pool.add(a)
    pool.add(b)
    with pytest.raises(PoolLimitReached):
        pool.add(mk(2, 0, tip=5))
    assert len(pool) == 2 and a.hash in pool and b.hash in pool
    pool.check_invariants()


# ---------------------------------------------------------------------------- gaps


def test_gap_holding_and_promotion_by_add() -> None:
    pool, _ = new_pool()
    seen: list[list[int]] = []
    pool.on_pending.append(lambda txs: seen.append(nonces(txs)))
    assert pool.add(mk(0, 0)) is True
    assert pool.add(mk(0, 2)) is False
    assert pool.add(mk(0, 3)) is False
    assert (pool.pending_count, pool.queued_count) == (1, 2)
    assert pool.pending_nonce(addr(0)) == 1
    assert nonces(pool.queued_by_sender()[addr(0)]) == [2, 3]
    assert pool.add(mk(0, 1)) is True
    assert (pool.pending_count, pool.queued_count) == (4, 0)
    assert pool.pending_nonce(addr(0)) == 4
    assert seen == [[0], [1, 2, 3]]
    assert pool.queued_by_sender() == {}


def test_pending_nonce_and_balance() -> None:
    s = addr(0)
    pool, _ = new_pool(FakeState(nonces={s: 7}, balances={s: 50 * GAS}))
    assert pool.pending_nonce(s) == 7
    assert pool.pending_balance(s) == 50 * GAS
    pool.add(mk(0, 7, tip=10))
    pool.add(mk(0, 9, tip=10))  # queued: not counted
    assert pool.pending_nonce(s) == 8
    assert pool.pending_balance(s) == 40 * GAS
    pool.add(mk(0, 8, tip=30))
    assert pool.pending_nonce(s) == 10
    assert pool.pending_balance(s) == 0  # 50 - (10 + 30 + 10)


def test_queries() -> None:
    pool, _ = new_pool()
    a, b, c = mk(1, 0, size=10), mk(0, 0, size=20), mk(0, 2, size=30)
    for t in (a, b, c):
        pool.add(t)
    assert len(pool) == 3 and pool.byte_size == 60
    assert pool.get(a.hash) is a and pool.get(b"\x00" * 32) is None
    assert a.hash in pool and b"\x00" * 32 not in pool
    assert list(pool.pending_by_sender()) == [addr(0), addr(1)]  # sorted by sender
    assert pool.queued_by_sender() == {addr(0): [c]}


# ---------------------------------------------------------------------------- replacement


@pytest.mark.parametrize(
    ("old", "new", "accepted"),
    [
        (100, 110, True),  # exactly +10%
        (100, 109, False),
        (10_000, 11_000, True),
        (10_000, 10_999, False),  # +9.99%
        (1001, 1102, True),  # 1101.1 needed, rounding must not help
        (1001, 1101, False),
    ],
)
def test_replacement_bump_boundary(old: int, new: int, accepted: bool) -> None:
    pool, _ = new_pool()
    pool.add(mk(0, 0, tip=old))
    repl = mk(0, 0, tip=new)
    if accepted:
        assert pool.add(repl) is True
        assert pool.pending_by_sender()[addr(0)] == [repl]
    else:
        with pytest.raises(ReplacementUnderpriced):
            pool.add(repl)


def test_replacement_needs_both_tip_and_fee_cap_bumped() -> None:
    pool, _ = new_pool()
    pool.add(mk(0, 0, tip=10, fee_cap=100))
    with pytest.raises(ReplacementUnderpriced):
        pool.add(mk(0, 0, tip=20, fee_cap=105))
    with pytest.raises(ReplacementUnderpriced):
        pool.add(mk(0, 0, tip=10, fee_cap=200))
    assert pool.add(mk(0, 0, tip=11, fee_cap=110)) is True


def test_replacement_swaps_in_place_and_keeps_arrival_position() -> None:
    pool, _ = new_pool()
    a0 = mk(0, 0, tip=10)
    b0 = mk(1, 0, tip=11)
    pool.add(a0)
    pool.add(b0)
    a0r = mk(0, 0, tip=11)
    pool.add(a0r)
    assert a0.hash not in pool and len(pool) == 2
    # Equal tips: a0r inherits a0's (earlier) arrival, so it goes first.
    assert pool.reap(10**9, 10**9, 10) == [a0r, b0]


def test_replacement_cost_recheck_drops_unaffordable_successors() -> None:
    s = addr(0)
    pool, _ = new_pool(FakeState(balances={s: 100 * GAS}))
    t0, t1, t2 = mk(0, 0, tip=20), mk(0, 1, tip=30), mk(0, 2, tip=40)
    for t in (t0, t1, t2):
        pool.add(t)
    # 40 + 30 = 70 fits, 70 + 40 does not: t2 goes, t1 stays.
    t0r = mk(0, 0, tip=40)
    assert pool.add(t0r) is True
    assert pool.pending_by_sender()[s] == [t0r, t1]
    assert t2.hash not in pool
    # A replacement that alone exceeds the balance (with earlier txs) is refused.
    with pytest.raises(InsufficientFunds):
        pool.add(mk(0, 1, tip=61))
    pool.check_invariants()


def test_gap_fill_drops_successors_it_makes_unaffordable() -> None:
    s = addr(0)
    pool, _ = new_pool(FakeState(balances={s: 100 * GAS}))
    t0, t2 = mk(0, 0, tip=30), mk(0, 2, tip=30)
    pool.add(t0)
    pool.add(t2)
    t1 = mk(0, 1, tip=50)
    assert pool.add(t1) is True
    assert t2.hash not in pool
    assert nonces(pool.pending_by_sender()[s]) == [0, 1]


# ---------------------------------------------------------------------------- eviction


def test_eviction_takes_only_highest_nonce_txs() -> None:
    pool, _ = new_pool(max_txs=3)
    a0, a1, b0 = mk(0, 0, tip=1), mk(0, 1, tip=100), mk(1, 0, tip=50)
    for t in (a0, a1, b0):
        pool.add(t)
    # a0 is the cheapest tx but evicting it would strand a1: b0 goes instead.
    c0 = mk(2, 0, tip=60)
    assert pool.add(c0) is True
    assert b0.hash not in pool and {a0.hash, a1.hash, c0.hash} <= set(pool._by_hash)
    # Now the candidates are a1 (100) and c0 (60); 60 is not beaten by 60.
    with pytest.raises(PoolLimitReached) as ei:
        pool.add(mk(3, 0, tip=60))
    assert "does not exceed" in ei.value.message
    pool.check_invariants()


def test_eviction_walks_down_one_sender_without_gaps() -> None:
    pool, _ = new_pool(max_txs=4)
    a = [mk(0, n, tip=t) for n, t in enumerate((50, 5, 4, 3))]
    for t in a:
        pool.add(t)
    big = mk(1, 0, tip=10)
    assert pool.add(big) is True
    assert a[3].hash not in pool  # tip 3, the top
    big2 = mk(2, 0, tip=10)
    pool.add(big2)
    assert a[2].hash not in pool  # next top, tip 4
    assert nonces(pool.pending_by_sender()[addr(0)]) == [0, 1]


def test_eviction_tie_breaks_later_arrival_first() -> None:
    pool, _ = new_pool(max_txs=3)
    x, y, z = mk(0, 0, tip=5), mk(1, 0, tip=5), mk(2, 0, tip=5)
    for t in (x, y, z):
        pool.add(t)
    pool.add(mk(3, 0, tip=6))
    assert z.hash not in pool and x.hash in pool and y.hash in pool
    pool.add(mk(4, 0, tip=6))
    assert y.hash not in pool and x.hash in pool


def test_eviction_by_bytes_may_take_several() -> None:
    pool, _ = new_pool(max_bytes=1000)
    small = [mk(i, 0, tip=1 + i, size=300) for i in range(3)]
    for t in small:
        pool.add(t)
    big = mk(9, 0, tip=10, size=700)
    pool.add(big)
    # 900 + 700 needs 600 freed: tips 1 and 2 go, tip 3 stays.
    assert [t.hash in pool for t in small] == [False, False, True]
    assert pool.byte_size == 1000
    with pytest.raises(PoolLimitReached):
        pool.add(mk(10, 0, tip=100, size=1001))  # can never fit
    pool.check_invariants()


def test_newcomer_never_evicts_below_itself() -> None:
    pool, _ = new_pool(max_txs=3)
    a0, a1 = mk(0, 0, tip=1), mk(0, 1, tip=2)
    b0 = mk(1, 0, tip=9)
    for t in (a0, a1, b0):
        pool.add(t)
    # a2 (tip 5) would have to evict a1 beneath it: refused, not a gap.
    with pytest.raises(PoolLimitReached):
        pool.add(mk(0, 2, tip=5))
    # A gap fill of a sender may evict that sender's txs above it.
    c = addr(2)
    pool2, _ = new_pool(max_txs=3)
    c1, c2, d0 = mk(c, 1, tip=1), mk(c, 2, tip=1), mk(1, 0, tip=9)
    for t in (c1, c2, d0):
        pool2.add(t)
    c0 = mk(c, 0, tip=5)
    assert pool2.add(c0) is True
    assert c2.hash not in pool2
    assert nonces(pool2.pending_by_sender()[c]) == [0, 1]
    pool2.check_invariants()


def test_front_gap_fill_may_evict_all_of_its_senders_queue() -> None:
    c = addr(2)
    pool, _ = new_pool(max_bytes=900)
    c1, c2, d0 = mk(c, 1, tip=1, size=300), mk(c, 2, tip=1, size=300), mk(1, 0, tip=9, size=300)
    for t in (c1, c2, d0):
        pool.add(t)
    c0 = mk(c, 0, tip=5, size=600)
    assert pool.add(c0) is True
    assert pool.pending_by_sender() == {addr(1): [d0], c: [c0]}
    assert pool.queued_by_sender() == {}
    pool.check_invariants()


def test_replacement_when_full_by_bytes() -> None:
    pool, _ = new_pool(max_bytes=300)
    a0, b0 = mk(0, 0, tip=10, size=150), mk(1, 0, tip=1, size=150)
    pool.add(a0)
    pool.add(b0)
    a0r = mk(0, 0, tip=20, size=200)
    assert pool.add(a0r) is True
    assert b0.hash not in pool and pool.byte_size == 200


# ---------------------------------------------------------------------------- reap


def test_reap_orders_by_tip_across_senders_and_nonce_within() -> None:
    pool, _ = new_pool()
    a0, a1 = mk(0, 0, tip=5), mk(0, 1, tip=100)
    b0, b1 = mk(1, 0, tip=10), mk(1, 1, tip=1)
    c0 = mk(2, 0, tip=7)
    c2 = mk(2, 2, tip=1000)  # queued: never reaped
    for t in (a0, a1, b0, b1, c0, c2):
        pool.add(t)
    assert pool.reap(10**9, 10**9, 100) == [b0, c0, a0, a1, b1]
    assert len(pool) == 6  # reap does not remove


def test_reap_tie_break_earlier_arrival() -> None:
    pool, _ = new_pool()
    txs = [mk(i, 0, tip=3) for i in (4, 2, 7, 0)]
    for t in txs:
        pool.add(t)
    assert pool.reap(10**9, 10**9, 100) == txs


def test_reap_gas_limit_skips_sender_but_continues() -> None:
    pool, _ = new_pool()
    a0 = mk(0, 0, tip=10, gas=50_000)
    a1 = mk(0, 1, tip=10, gas=21_000)
    b0 = mk(1, 0, tip=9, gas=21_000)
    b1 = mk(1, 1, tip=9, gas=21_000)
    for t in (a0, a1, b0, b1):
        pool.add(t)
    # 45k gas: a0 does not fit -> a's later txs are skipped; b goes on.
    assert pool.reap(45_000, 10**9, 100) == [b0, b1]
    assert pool.reap(71_000, 10**9, 100) == [a0, a1]
    assert pool.reap(0, 10**9, 100) == []


def test_reap_bytes_and_count_limits() -> None:
    pool, _ = new_pool()
    txs = [mk(i, 0, tip=10 - i, size=100) for i in range(5)]
    for t in txs:
        pool.add(t)
    assert pool.reap(10**9, 250, 100) == txs[:2]
    assert pool.reap(10**9, 300, 100) == txs[:3]
    assert pool.reap(10**9, 10**9, 3) == txs[:3]
    assert pool.reap(10**9, 10**9, 0) == []
    assert pool.reap(10**9, 10**9) == txs  # max_count is optional


# ---------------------------------------------------------------------------- update


def test_update_after_block() -> None:
    a, b, c, d = addr(0), addr(1), addr(2), addr(3)
    state = FakeState(balances={c: 100 * GAS})
    pool, _ = new_pool(state)
    a0, a1, a2 = mk(a, 0), mk(a, 1), mk(a, 2)
    b0, b1, b3 = mk(b, 0), mk(b, 1), mk(b, 3)  # b3 queued
    c0, c1, c2 = mk(c, 0, tip=30), mk(c, 1, tip=30), mk(c, 2, tip=30)
    d0, d2 = mk(d, 0), mk(d, 2)  # d2 queued; d1 arrives by another path
    for t in (a0, a1, a2, b0, b1, b3, c0, c1, c2, d0, d2):
        pool.add(t)
    seen: list[list[int]] = []
    pool.on_pending.append(lambda txs: seen.append(nonces(txs)))

    # Block: a0, b0, d0 from the pool, d1 from elsewhere; c's balance drops from a
    # transfer out of band so only c0 stays affordable; b's nonce is bumped by an extra
    # (unpooled) tx so b1 is stale.
    new_state = FakeState(
        nonces={a: 1, b: 2, d: 2},
        balances={c: 45 * GAS},
    )
    removed = pool.update(new_state, [a0.hash, b0.hash, d0.hash, b"\xee" * 32])
    assert removed == [b1.hash, c1.hash, c2.hash]
    assert pool.state is new_state
    assert set(pool.pending_by_sender()) == {a, c, d}
    assert pool.pending_by_sender()[a] == [a1, a2]
    assert pool.pending_by_sender()[c] == [c0]
    assert pool.pending_by_sender()[d] == [d2]  # promoted
    assert pool.queued_by_sender() == {b: [b3]}
    assert pool.pending_nonce(b) == 2
    assert seen == [[2]]
    pool.check_invariants()


def test_update_with_gap_in_included_demotes() -> None:
    pool, state = new_pool()
    a0, a1, a2 = mk(0, 0), mk(0, 1), mk(0, 2)
    for t in (a0, a1, a2):
        pool.add(t)
    # Inconsistent but possible from the pool's view: a1 reported included, nonce stays 1.
    new_state = FakeState(nonces={addr(0): 1})
    assert pool.update(new_state, [a0.hash, a1.hash]) == []
    assert pool.pending_by_sender() == {}
    assert pool.queued_by_sender() == {addr(0): [a2]}
    pool.check_invariants()


def test_add_resyncs_sender_when_state_moved_without_update() -> None:
    state = FakeState()
    pool, _ = new_pool(state)
    a0, a1 = mk(0, 0), mk(0, 1)
    pool.add(a0)
    pool.add(a1)
    state.nonces[addr(0)] = 1  # live reader moved
    assert pool.add(mk(0, 2)) is True
    assert a0.hash not in pool
    assert nonces(pool.pending_by_sender()[addr(0)]) == [1, 2]
    pool.check_invariants()


def test_pending_queries_follow_a_live_reader_before_update() -> None:
    state = FakeState(balances={addr(0): 100 * GAS})
    pool, _ = new_pool(state)
    for n in range(3):
        pool.add(mk(0, n, tip=10))
    state.nonces[addr(0)] = 2  # two txs committed, update not yet called
    assert pool.pending_nonce(addr(0)) == 3
    assert pool.pending_balance(addr(0)) == 90 * GAS
    assert len(pool) == 3  # queries do not mutate
    pool.check_invariants()


def test_add_batch_outcomes_and_single_notification() -> None:
    pool, _ = new_pool()
    calls: list[list[FakeTx]] = []
    pool.on_pending.append(lambda txs: calls.append(list(txs)))
    a0, a2, a1, dup = mk(0, 0), mk(0, 2), mk(0, 1), mk(1, 0)
    a1r = mk(0, 1, tip=20)
    out = pool.add_batch([a0, a2, dup, dup, a1, a1r, mk(0, 0, tip=10)])
    assert out[:3] == [True, False, True]
    assert isinstance(out[3], AlreadyKnown)
    assert out[4:6] == [True, True]
    assert isinstance(out[6], ReplacementUnderpriced) and isinstance(out[6], TxRejected)
    # One call; the replaced a1 is not announced, a1r is.
    assert len(calls) == 1
    assert calls[0] == [a0, dup, a2, a1r]


# ---------------------------------------------------------------------------- performance


def _best_of(n: int, fn: object) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def test_reap_speed_5000_from_200_senders() -> None:
    pool, _ = new_pool()
    for n in range(25):
        for s in range(200):
            pool.add(mk(s.to_bytes(20, "big"), n, tip=1 + (s * 7 + n * 13) % 50))
    assert pool.pending_count == 5000
    out: list[FakeTx] = []
    elapsed = _best_of(5, lambda: out.__setitem__(slice(None), pool.reap(10**12, 10**12, 10**6)))
    assert len(out) == 5000
    print(f"reap 5000 txs / 200 senders: {elapsed * 1000:.2f} ms")
    assert elapsed < 0.020


def test_update_speed_10000_pool_5000_included() -> None:
    senders = [s.to_bytes(20, "big") for s in range(200)]

    def build() -> tuple[Mempool[FakeTx], list[bytes], FakeState]:
        pool, _ = new_pool()
        included: list[bytes] = []
        for n in range(50):
            for s in senders:
                tx = mk(s, n, tip=1 + n)
                pool.add(tx)
                if n < 25:
                    included.append(tx.hash)
        return pool, included, FakeState(nonces={s: 25 for s in senders})

    best = float("inf")
    for _ in range(3):
        pool, included, after = build()
        assert len(pool) == 10_000
        t = time.perf_counter()
        removed = pool.update(after, included)
        best = min(best, time.perf_counter() - t)
        assert removed == [] and len(pool) == 5000 and pool.pending_count == 5000
    print(f"update 10000-tx pool after a 5000-tx block: {best * 1000:.2f} ms")
    assert best < 0.050


# ---------------------------------------------------------------------------- properties

N_SENDERS = 4
PROP_CONFIG = MempoolConfig(max_txs=7, max_bytes=1200, max_per_sender=4, max_nonce_gap=2)
BALANCES = [0, 30 * GAS, 80 * GAS, 400 * GAS]


@dataclass(frozen=True)
class AddOp:
    sender: int
    rel_nonce: int  # relative to the sender's pending nonce; negative = replacement
    tip: int
    extra_cap: int  # fee_cap - tip
    value: int
    size: int


@dataclass(frozen=True)
class BlockOp:
    gas: int
    count: int
    poor: int  # sender whose balance is reset out of band (-1: none)
    poor_balance: int
    bumped: int  # sender with an out-of-band tx in the block (-1: none)


@dataclass(frozen=True)
class DriftOp:
    """The (live) state moves without `update`; the sender's next `add` must resync."""

    sender: int
    balance: int
    bump: bool
    tip: int


Op = AddOp | BlockOp | DriftOp

add_ops = st.builds(
    AddOp,
    st.integers(0, N_SENDERS - 1),
    st.integers(-2, 3),
    st.integers(1, 12),
    st.integers(0, 3),
    st.sampled_from([0, 0, GAS, 10 * GAS, 50 * GAS]),
    st.integers(50, 400),
)
block_ops = st.builds(
    BlockOp,
    st.integers(0, 6 * GAS),
    st.integers(0, 6),
    st.integers(-1, N_SENDERS - 1),
    st.sampled_from(BALANCES),
    st.integers(-1, N_SENDERS - 1),
)
drift_ops = st.builds(
    DriftOp,
    st.integers(0, N_SENDERS - 1),
    st.sampled_from(BALANCES),
    st.booleans(),
    st.integers(1, 12),
)
ops_strategy = st.lists(
    st.one_of(add_ops, add_ops, add_ops, block_ops, drift_ops), min_size=15, max_size=50
)


def random_ops(rng: random.Random, n: int) -> list[Op]:
    """Long sequences with a flat distribution (hypothesis favours small values)."""
    ops: list[Op] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.7:
            ops.append(
                AddOp(
                    rng.randrange(N_SENDERS),
                    rng.randint(-2, 3),
                    rng.randint(1, 12),
                    rng.randint(0, 3),
                    rng.choice([0, 0, GAS, 10 * GAS, 50 * GAS]),
                    rng.randint(50, 400),
                )
            )
        elif r < 0.9:
            ops.append(
                BlockOp(
                    rng.randint(0, 6 * GAS),
                    rng.randint(0, 6),
                    rng.randint(-1, N_SENDERS - 1) if rng.random() < 0.3 else -1,
                    rng.choice(BALANCES),
                    rng.randint(-1, N_SENDERS - 1) if rng.random() < 0.3 else -1,
                )
            )
        else:
            ops.append(
                DriftOp(
                    rng.randrange(N_SENDERS),
                    rng.choice(BALANCES),
                    rng.random() < 0.3,
                    rng.randint(1, 12),
                )
            )
    return ops


def contents(pool: Mempool[FakeTx]) -> dict[bytes, list[FakeTx]]:
    """All pooled txs per sender, nonce order (pending then queued)."""
    out: dict[bytes, list[FakeTx]] = {}
    for per_sender in (pool.pending_by_sender(), pool.queued_by_sender()):
        for sender, txs in per_sender.items():
            out.setdefault(sender, []).extend(txs)
    return out


def pool_hashes(pool: Mempool[FakeTx]) -> set[bytes]:
    return {t.hash for txs in contents(pool).values() for t in txs}


def check_pool(pool: Mempool[FakeTx], state: FakeState, announced: set[bytes]) -> None:
    cfg = pool.config
    pool.check_invariants()
    pending = pool.pending_by_sender()
    queued = pool.queued_by_sender()
    for sender, txs in pending.items():
        base = state.get_nonce(sender)
        assert nonces(txs) == list(range(base, base + len(txs)))
        assert pool.pending_nonce(sender) == base + len(txs)
    for sender, txs in queued.items():
        assert nonces(txs) == sorted(set(nonces(txs)))
        assert txs[0].nonce > pool.pending_nonce(sender)  # a real gap
    hashes: list[bytes] = []
    size = 0
    for sender, txs in contents(pool).items():
        assert len(txs) <= cfg.max_per_sender
        cum = 0
        for t in txs:
            cum += t.max_cost
            assert cum <= state.get_balance(sender)  # cumulative cost rule
            hashes.append(t.hash)
            size += t.size
            assert pool.get(t.hash) is t and t.hash in pool
    assert len(hashes) == len(set(hashes)) == len(pool) <= cfg.max_txs
    assert pool.pending_count == sum(map(len, pending.values()))
    assert pool.queued_count == sum(map(len, queued.values()))
    assert pool.byte_size == size <= cfg.max_bytes
    # Every executable tx has been announced to listeners.
    assert {t.hash for txs in pending.values() for t in txs} <= announced
    reaped = pool.reap(10**12, 10**12, 10**6)
    assert len(reaped) == pool.pending_count
    by_sender: dict[bytes, list[int]] = {}
    for t in reaped:
        by_sender.setdefault(t.sender, []).append(t.nonce)
    for sender, ns in by_sender.items():
        base = state.get_nonce(sender)
        assert ns == list(range(base, base + len(ns)))


def run_ops(ops: Sequence[Op]) -> None:
    state = FakeState(default_balance=400 * GAS)
    pool: Mempool[FakeTx] = Mempool(PROP_CONFIG, state)
    announced: set[bytes] = set()
    pool.on_pending.append(lambda txs: announced.update(t.hash for t in txs))
    for op in ops:
        if isinstance(op, AddOp):
            s = addr(op.sender)
            before = contents(pool)
            nonce = max(0, pool.pending_nonce(s) + op.rel_nonce)
            tx = mk(s, nonce, op.tip, fee_cap=op.tip + op.extra_cap, value=op.value, size=op.size)
            try:
                ok = pool.add(tx)
            except TxRejected:
                assert tx.hash not in pool
            else:
                assert tx.hash in pool
                assert ok == (tx in pool.pending_by_sender().get(s, []))
                # Eviction only ever trims other senders from the top: no new gaps.
                after = contents(pool)
                for snd, txs in before.items():
                    if snd != s:
                        kept = after.get(snd, [])
                        assert kept == txs[: len(kept)]
        elif isinstance(op, BlockOp):
            block = pool.reap(op.gas, 10**9, op.count)
            new_state = FakeState(dict(state.nonces), dict(state.balances), state.default_balance)
            for t in block:
                assert new_state.get_nonce(t.sender) == t.nonce
                new_state.nonces[t.sender] = t.nonce + 1
                new_state.balances[t.sender] = new_state.get_balance(t.sender) - t.max_cost
            if op.poor >= 0:
                new_state.balances[addr(op.poor)] = op.poor_balance
            if op.bumped >= 0:
                new_state.nonces[addr(op.bumped)] = new_state.get_nonce(addr(op.bumped)) + 1
            hashes_before = pool_hashes(pool)
            included = [t.hash for t in block]
            removed = pool.update(new_state, included)
            state = new_state
            assert len(removed) == len(set(removed))
            assert not set(removed) & set(included)
            assert pool_hashes(pool) == hashes_before - set(included) - set(removed)
        else:
            s = addr(op.sender)
            state.balances[s] = op.balance
            if op.bump:
                state.nonces[s] = state.get_nonce(s) + 1
            try:
                pool.add(mk(s, pool.pending_nonce(s), op.tip))
            except TxRejected:
                pass
        check_pool(pool, state, announced)


@settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=ops_strategy)
def test_random_operations_keep_invariants(ops: list[Op]) -> None:
    run_ops(ops)


@pytest.mark.parametrize("seed", range(40))
def test_seeded_long_runs_keep_invariants(seed: int) -> None:
    run_ops(random_ops(random.Random(seed), 150))


def test_admit_hears_whether_each_tx_is_executable_and_can_refuse_it() -> None:
    pool, _ = new_pool()
    heard: list[tuple[int, bool, bool]] = []

    def admit(tx: FakeTx, executable: bool, replaced: FakeTx | None) -> None:
        heard.append((tx.nonce, executable, replaced is not None))
        if tx.tip == 13:
            raise GasPriceTooLow("refused by the caller's rule")

    later, first, refused, bump = mk(0, 1), mk(0, 0), mk(0, 2, tip=13), mk(0, 0, tip=20)
    assert pool.add(later, admit) is False
    assert not pool.is_pending(later.hash)
    results = pool.add_batch([first, refused, bump], admit)
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], GasPriceTooLow)
    # nonce 1 queued; nonce 0 executable (and, within the batch, nonce 2 after it promoted
    # nonce 1); the bump replaces nonce 0, an executable tx.
    assert heard == [(1, False, False), (0, True, False), (2, True, False), (0, True, True)]
    assert refused.hash not in pool and pool.is_pending(later.hash)
    assert pool.is_pending(bump.hash) and not pool.is_pending(first.hash)
    pool.check_invariants()
