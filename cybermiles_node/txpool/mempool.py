"""The transaction pool: a pure, I/O-free, deterministic core.

Bird's-eye view
---------------
The pool holds transactions that the caller has already decoded, signature-checked
(sender recovered once) and validated statelessly. It sees them only through the
`PoolTransaction` protocol and reads the latest committed state through
`PoolStateReader`. Nothing here does I/O, spawns tasks or reads a clock, so the same
sequence of calls always produces the same pool, on every node (the model is geth's
legacypool, simplified).

Per sender (`_Account`) the pool keeps the transactions by nonce, a sorted nonce list
and the sender's committed nonce. Transactions whose nonces run consecutively from the
committed nonce are *pending* (executable in the next block); the rest wait in the
*queue* behind a nonce gap and are promoted as soon as the gap fills, by `add` or by
`update` after a block.

Admission (`add`): already known -> tip below the pool minimum -> nonce too low ->
nonce too far above the pending nonce -> replacement price bump -> per-sender cap ->
balance covers the cumulative cost of the sender's transactions up to this nonce ->
the caller's own rule (`Admit`: told whether the newcomer is executable at once) ->
room in the pool (count and bytes), evicting if the newcomer pays more. Eviction only
ever takes a sender's *highest-nonce* transaction, so it never opens a nonce gap; the
candidates live in a lazily maintained heap ordered by (tip, later arrival first, hash).

Block building (`reap`) walks the pending transactions with a heap over every sender's
next nonce (geth's TransactionsByPriceAndNonce): highest tip first, nonce order within a
sender. After a commit, `update` removes the included transactions, re-reads each
sender's nonce and balance, drops what became stale or unaffordable and promotes what
became executable.

Devnet reverts: `snapshot` lists the pool in arrival order and `clear` empties it; adding the
listed transactions again on the same state rebuilds the same pool.

Listeners in `on_pending` hear about transactions that just became executable (gossip,
`newPendingTransactions`). They are called after the pool is consistent again; an
exception from a listener propagates to the caller of `add`/`update`.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from cybermiles_node.errors import (
    AlreadyKnown,
    GasPriceTooLow,
    InsufficientFunds,
    InvariantViolation,
    NonceTooHigh,
    NonceTooLow,
    PoolLimitReached,
    ReplacementUnderpriced,
    TxRejected,
)

__all__ = [
    "Mempool",
    "MempoolConfig",
    "PoolStateReader",
    "PoolTransaction",
]


class PoolTransaction(Protocol):
    """What the pool needs to know about a transaction (all read-only)."""

    @property
    def hash(self) -> bytes:
        """32-byte transaction hash."""
        ...

    @property
    def sender(self) -> bytes:
        """20-byte recovered sender."""
        ...

    @property
    def nonce(self) -> int: ...

    @property
    def gas(self) -> int:
        """Gas limit."""
        ...

    @property
    def tip(self) -> int:
        """Priority fee per gas, at most fee_cap (legacy: gas_price). Every transaction in a
        block meets the same base fee, so it ranks transactions by what they pay (a fee cap
        below base fee + tip aside)."""
        ...

    @property
    def fee_cap(self) -> int:
        """Maximum price per gas (legacy: gas_price; 1559: max_fee_per_gas)."""
        ...

    @property
    def max_cost(self) -> int:
        """value + gas * fee_cap: the balance the sender needs."""
        ...

    @property
    def size(self) -> int:
        """Encoded byte length."""
        ...


class PoolStateReader(Protocol):
    """The latest committed state, as far as the pool needs it."""

    def get_nonce(self, address: bytes) -> int: ...

    def get_balance(self, address: bytes) -> int: ...


TxT = TypeVar("TxT", bound=PoolTransaction)

# The caller's last admission rule: (tx, executable at once, the pooled tx it replaces or None);
# raises a TxRejected to refuse it, the pool then unchanged. Called once per admitted tx, after
# the pool's own checks, in arrival order (within a batch, after the earlier ones were added).
Admit = Callable[[TxT, bool, TxT | None], None]


@dataclass(frozen=True, slots=True)
class MempoolConfig:
    max_txs: int = 16384
    max_bytes: int = 64 * 1024 * 1024
    max_per_sender: int = 256
    # A nonce more than this above the sender's pending nonce is refused: it bounds how
    # much queue space one sender can park behind a gap it may never fill.
    max_nonce_gap: int = 64
    price_bump_percent: int = 10
    min_tip: int = 0


class _Entry(Generic[TxT]):
    """One pooled transaction plus the pool's bookkeeping about it."""

    __slots__ = ("tx", "seq", "in_heap")

    def __init__(self, tx: TxT, seq: int) -> None:
        self.tx = tx
        # Arrival order; a replacement inherits the seq of the transaction it replaces,
        # so it keeps its place in every tie-break.
        self.seq = seq
        # True while a copy of this entry sits in the eviction heap (stale or not); keeps
        # the heap free of duplicates of a live entry.
        self.in_heap = False


class _Account(Generic[TxT]):
    """The pooled transactions of one sender."""

    __slots__ = ("sender", "txs", "nonces", "state_nonce", "pending_len", "total_cost")

    def __init__(self, sender: bytes, state_nonce: int) -> None:
        self.sender = sender
        self.txs: dict[int, _Entry[TxT]] = {}
        self.nonces: list[int] = []  # sorted; every nonce >= state_nonce
        self.state_nonce = state_nonce  # committed nonce as of the last sync
        # nonces[:pending_len] == range(state_nonce, state_nonce + pending_len)
        self.pending_len = 0
        self.total_cost = 0  # sum of max_cost over txs

    def entry_at(self, index: int) -> _Entry[TxT]:
        return self.txs[self.nonces[index]]


# Eviction heap item: (tip, -seq, hash, push id, entry). Lowest first = evicted first:
# cheapest tip, then the later arrival, then the hash. The push id keeps tuples from ever
# comparing two entries (a stale copy can share tip, seq and hash with a live one).
_EvictItem = tuple[int, int, bytes, int, _Entry[TxT]]


def _run_length(nonces: list[int], start: int) -> int:
    """Length of the consecutive run `start, start+1, ...` at the head of sorted `nonces`.

    Sorted unique nonces make `nonces[i] - i` non-decreasing, so "nonces[i] == start + i"
    is true on a prefix and false after it: binary search.
    """
    lo, hi = 0, len(nonces)
    while lo < hi:
        mid = (lo + hi) // 2
        if nonces[mid] == start + mid:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _bumped(old: int, new: int, percent: int) -> bool:
    """new >= old * (100 + percent) / 100, exactly (integers, no rounding)."""
    return new * 100 >= old * (100 + percent)


class Mempool(Generic[TxT]):
    """Deterministic transaction pool; see the module docstring."""

    def __init__(self, config: MempoolConfig, state: PoolStateReader) -> None:
        self.config = config
        self._state = state
        self._by_hash: dict[bytes, _Entry[TxT]] = {}
        # Insertion-ordered; the only dict iterated for decisions, and in an order that
        # depends only on the sequence of calls.
        self._accounts: dict[bytes, _Account[TxT]] = {}
        self._bytes = 0
        self._pending = 0
        self._seq = itertools.count()
        self._push_ids = itertools.count()
        # Invariant: every sender's highest-nonce entry is in this heap. It may also hold
        # stale items (removed entries, entries no longer on top); they are skipped when
        # popped and purged by `_compact_heap`.
        self._evict_heap: list[_EvictItem[TxT]] = []
        self.on_pending: list[Callable[[Sequence[TxT]], None]] = []

    # ------------------------------------------------------------------ queries

    @property
    def state(self) -> PoolStateReader:
        return self._state

    def __len__(self) -> int:
        return len(self._by_hash)

    def senders(self) -> list[bytes]:
        """Every sender with pooled transactions (the accounts `update` re-reads)."""
        return list(self._accounts)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> TxT | None:
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.tx

    def is_pending(self, tx_hash: bytes) -> bool:
        """Pooled and executable (in its sender's run from the committed nonce)."""
        entry = self._by_hash.get(tx_hash)
        return entry is not None and self._is_pending(entry)

    @property
    def byte_size(self) -> int:
        return self._bytes

    @property
    def pending_count(self) -> int:
        return self._pending

    @property
    def queued_count(self) -> int:
        return len(self._by_hash) - self._pending

    def pending_nonce(self, sender: bytes) -> int:
        """Next nonce after the sender's executable run (`eth_getTransactionCount` "pending")."""
        nonce = self._state.get_nonce(sender)
        acct = self._accounts.get(sender)
        if acct is None:
            return nonce
        _, length = self._live_run(acct, nonce)
        return nonce + length

    def pending_balance(self, sender: bytes) -> int:
        """Committed balance minus the max_cost of the sender's executable txs, floored at 0.

        An approximation for "pending" balance reads: it assumes every executable tx
        spends its full gas at fee_cap and ignores value the sender would receive.
        """
        balance = self._state.get_balance(sender)
        acct = self._accounts.get(sender)
        if acct is None:
            return balance
        first, length = self._live_run(acct, self._state.get_nonce(sender))
        spent = sum(acct.entry_at(i).tx.max_cost for i in range(first, first + length))
        return max(0, balance - spent)

    @staticmethod
    def _live_run(acct: _Account[TxT], nonce: int) -> tuple[int, int]:
        """(index of the first tx, length) of the executable run from committed `nonce`.

        Normally the cached run; if a live state reader moved ahead of `update`, the run
        is counted from the fresh nonce without touching the pool (queries stay pure).
        """
        if nonce == acct.state_nonce:
            return 0, acct.pending_len
        first = bisect_left(acct.nonces, nonce)
        return first, _run_length(acct.nonces[first:], nonce)

    def pending_by_sender(self) -> dict[bytes, list[TxT]]:
        """Executable txs per sender, senders sorted, nonce order (txpool_content)."""
        out: dict[bytes, list[TxT]] = {}
        for sender in sorted(self._accounts):
            acct = self._accounts[sender]
            if acct.pending_len:
                out[sender] = [acct.entry_at(i).tx for i in range(acct.pending_len)]
        return out

    def queued_by_sender(self) -> dict[bytes, list[TxT]]:
        """Queued (non-executable) txs per sender, senders sorted, nonce order."""
        out: dict[bytes, list[TxT]] = {}
        for sender in sorted(self._accounts):
            acct = self._accounts[sender]
            if acct.pending_len < len(acct.nonces):
                out[sender] = [
                    acct.entry_at(i).tx for i in range(acct.pending_len, len(acct.nonces))
                ]
        return out

    # ------------------------------------------------------------------ admission

    def add(self, tx: TxT, admit: Admit[TxT] | None = None) -> bool:
        """Admit `tx`; True if it is executable now, False if queued behind a nonce gap.

        Raises a `TxRejected` subclass when refused (by the pool or by `admit`); the pool is
        then unchanged except for a resync of the sender with the current state.
        """
        fresh: dict[bytes, _Entry[TxT]] = {}
        try:
            return self._add(tx, fresh, admit)
        finally:
            self._notify(fresh)

    def add_batch(
        self, txs: Iterable[TxT], admit: Admit[TxT] | None = None
    ) -> list[bool | TxRejected]:
        """Add in order; per tx the `add` result or the rejection. One notification per batch."""
        fresh: dict[bytes, _Entry[TxT]] = {}
        results: list[bool | TxRejected] = []
        try:
            for tx in txs:
                try:
                    results.append(self._add(tx, fresh, admit))
                except TxRejected as exc:
                    results.append(exc)
        finally:
            self._notify(fresh)
        return results

    def _add(
        self, tx: TxT, fresh: dict[bytes, _Entry[TxT]], admit: Admit[TxT] | None = None
    ) -> bool:
        cfg = self.config
        if tx.hash in self._by_hash:
            raise AlreadyKnown("already known")
        if tx.tip < cfg.min_tip:
            raise GasPriceTooLow(
                f"gas price too low: tip {tx.tip} below the pool minimum {cfg.min_tip}"
            )
        sender = tx.sender
        state_nonce = self._state.get_nonce(sender)
        balance = self._state.get_balance(sender)
        acct = self._accounts.get(sender)
        if acct is not None and (state_nonce != acct.state_nonce or balance < acct.total_cost):
            # The state moved without an `update` for this sender (or the reader is live):
            # resync first so every check below sees a consistent account.
            self._sync_account(acct, state_nonce, balance, [], fresh)
            acct = self._accounts.get(sender)

        if tx.nonce < state_nonce:
            raise NonceTooLow(f"nonce too low: next nonce {state_nonce}, tx nonce {tx.nonce}")
        pending_nonce = state_nonce if acct is None else state_nonce + acct.pending_len
        if tx.nonce - pending_nonce > cfg.max_nonce_gap:
            raise NonceTooHigh(
                f"nonce too high: next nonce {pending_nonce}, tx nonce {tx.nonce}, "
                f"max gap {cfg.max_nonce_gap}"
            )

        old = None if acct is None else acct.txs.get(tx.nonce)
        if old is not None:
            bump = cfg.price_bump_percent
            if not (
                _bumped(old.tx.tip, tx.tip, bump) and _bumped(old.tx.fee_cap, tx.fee_cap, bump)
            ):
                raise ReplacementUnderpriced("replacement transaction underpriced")
        elif acct is not None and len(acct.nonces) >= cfg.max_per_sender:
            raise PoolLimitReached(
                f"sender 0x{sender.hex()} already has {len(acct.nonces)} transactions "
                f"in the pool (limit {cfg.max_per_sender})"
            )

        # Cumulative cost rule: the balance must cover this tx and every pooled tx of the
        # sender with a lower nonce (the replaced tx does not count).
        earlier = 0
        if acct is not None and acct.nonces and tx.nonce > acct.nonces[-1]:
            earlier = acct.total_cost  # the usual append: every pooled tx is earlier (O(1))
        elif acct is not None:
            for n in acct.nonces[: bisect_left(acct.nonces, tx.nonce)]:
                earlier += acct.txs[n].tx.max_cost
        if earlier + tx.max_cost > balance:
            msg = (
                f"insufficient funds for gas * price + value: balance {balance}, "
                f"tx cost {tx.max_cost}"
            )
            if earlier:
                msg += f", cost of earlier pool txs {earlier}"
            raise InsufficientFunds(msg)
        if admit is not None:
            admit(tx, tx.nonce <= pending_nonce, None if old is None else old.tx)

        entry: _Entry[TxT] = _Entry(tx, old.seq if old is not None else next(self._seq))
        victims = self._plan_eviction(entry, old, acct)

        # ---- commit: nothing below raises
        for victim in victims:
            self._evict(victim)
        # Evicting every tx of the sender above a front gap fill deletes its account.
        acct = self._accounts.get(sender)
        if acct is None:
            acct = _Account(sender, state_nonce)
            self._accounts[sender] = acct
        old_end = acct.state_nonce + acct.pending_len
        if old is not None:
            self._detach(acct, old)
        else:
            insort(acct.nonces, tx.nonce)
        self._attach(acct, entry)

        # A replacement or a gap fill raises the cumulative cost of the later txs: drop
        # the first one the balance no longer covers, and everything after it.
        idx = bisect_left(acct.nonces, tx.nonce)
        cum = earlier + tx.max_cost
        for j in range(idx + 1, len(acct.nonces)):
            cum += acct.entry_at(j).tx.max_cost
            if cum > balance:
                self._truncate(acct, j)
                break

        self._refresh_run(acct, old_end, entry, fresh)
        self._ensure_top_in_heap(acct)
        return acct.state_nonce <= tx.nonce < acct.state_nonce + acct.pending_len

    # ------------------------------------------------------------------ eviction

    def _plan_eviction(
        self, new: _Entry[TxT], old: _Entry[TxT] | None, acct: _Account[TxT] | None
    ) -> list[_Entry[TxT]]:
        """Victims that make room for `new`, or raise PoolLimitReached; the pool is not changed.

        The plan works on a view of the pool with `new` already inserted (replacing
        `old`). Candidates are each sender's highest-nonce tx in that view; taking one
        makes the sender's next-highest a candidate. The newcomer's own sender is walked
        from a local list, so its txs below `new` are never reached before `new` itself.
        """
        cfg = self.config
        need_count = len(self._by_hash) + (0 if old is not None else 1) - cfg.max_txs
        need_bytes = self._bytes + new.tx.size - (old.tx.size if old else 0) - cfg.max_bytes
        if need_count <= 0 and need_bytes <= 0:
            return []

        sender = new.tx.sender
        # Local candidates: (tip, -seq, hash, push id, entry, descending view, index).
        local: list[tuple[int, int, bytes, int, _Entry[TxT], list[_Entry[TxT]], int]] = []

        def push_local(view: list[_Entry[TxT]], index: int) -> None:
            if index < len(view):
                e = view[index]
                item = (e.tx.tip, -e.seq, e.tx.hash, next(self._push_ids), e, view, index)
                heapq.heappush(local, item)

        own: list[_Entry[TxT]] = (
            []
            if acct is None
            else [acct.txs[n] for n in reversed(acct.nonces) if n != new.tx.nonce]
        )
        insert_at = 0
        while insert_at < len(own) and own[insert_at].tx.nonce > new.tx.nonce:
            insert_at += 1
        own.insert(insert_at, new)
        push_local(own, 0)

        heap = self._evict_heap
        popped: list[_EvictItem[TxT]] = []  # live global items taken out; restored below
        victims: list[_Entry[TxT]] = []
        try:
            while need_count > 0 or need_bytes > 0:
                # Drop stale heads so heap[0] is a live candidate of another sender.
                while heap:
                    head = heap[0][4]
                    if self._is_live_top(head) and head.tx.sender != sender:
                        break
                    item = heapq.heappop(heap)
                    if self._is_live_top(item[4]):
                        popped.append(item)  # the newcomer's sender: valid, keep for later
                    else:
                        item[4].in_heap = False
                use_global = bool(heap) and (not local or heap[0][:4] < local[0][:4])
                if use_global:
                    item = heapq.heappop(heap)
                    popped.append(item)
                    victim = item[4]
                    view = [
                        self._accounts[victim.tx.sender].txs[n]
                        for n in reversed(self._accounts[victim.tx.sender].nonces)
                    ]
                    push_local(view, 1)
                elif local:
                    litem = heapq.heappop(local)
                    victim = litem[4]
                    if victim is not new:
                        push_local(litem[5], litem[6] + 1)
                else:
                    victim = new  # nothing left to evict
                if victim is new:
                    # The newcomer ranks lowest itself; name the cheapest tx it would have
                    # had to outbid (its tip is >= the newcomer's), if any is left.
                    others = [c[4] for c in heap[:1]] + [c[4] for c in local[:1]]
                    if not others:
                        raise PoolLimitReached(
                            "transaction pool is full: the transaction does not fit"
                        )
                    victim = min(others, key=lambda e: (e.tx.tip, -e.seq, e.tx.hash))
                if victim is new or victim.tx.tip >= new.tx.tip:
                    raise PoolLimitReached(
                        f"transaction pool is full: tip {new.tx.tip} does not exceed the "
                        f"lowest evictable tip {victim.tx.tip}"
                    )
                victims.append(victim)
                need_count -= 1
                need_bytes -= victim.tx.size
        finally:
            # Popped live items go back unless they are about to be evicted (the caller
            # evicts right after a successful plan; a raise keeps them all).
            chosen = {id(v) for v in victims} if need_count <= 0 and need_bytes <= 0 else set()
            for item in popped:
                if id(item[4]) in chosen:
                    item[4].in_heap = False
                else:
                    heapq.heappush(heap, item)
        return victims

    def _is_live_top(self, entry: _Entry[TxT]) -> bool:
        tx = entry.tx
        if self._by_hash.get(tx.hash) is not entry:
            return False
        acct = self._accounts[tx.sender]
        return acct.nonces[-1] == tx.nonce

    def _evict(self, entry: _Entry[TxT]) -> None:
        """Remove a sender's current highest-nonce tx (never opens a gap)."""
        acct = self._accounts[entry.tx.sender]
        if acct.txs.get(acct.nonces[-1]) is not entry:
            raise InvariantViolation("mempool: eviction victim is not its sender's top tx")
        self._truncate(acct, len(acct.nonces) - 1)
        self._ensure_top_in_heap(acct)
        if not acct.nonces:
            del self._accounts[acct.sender]

    def _ensure_top_in_heap(self, acct: _Account[TxT]) -> None:
        if not acct.nonces:
            return
        top = acct.entry_at(-1)
        if not top.in_heap:
            top.in_heap = True
            item = (top.tx.tip, -top.seq, top.tx.hash, next(self._push_ids), top)
            heapq.heappush(self._evict_heap, item)
        # Stale items accumulate (one per new top); rebuild before they dominate.
        if len(self._evict_heap) > 2 * len(self._accounts) + 1024:
            self._compact_heap()

    def _compact_heap(self) -> None:
        for item in self._evict_heap:
            item[4].in_heap = False
        heap: list[_EvictItem[TxT]] = []
        for acct in self._accounts.values():
            if acct.nonces:
                top = acct.entry_at(-1)
                top.in_heap = True
                heap.append((top.tx.tip, -top.seq, top.tx.hash, next(self._push_ids), top))
        heapq.heapify(heap)
        self._evict_heap = heap

    # ------------------------------------------------------------------ bookkeeping

    def _attach(self, acct: _Account[TxT], entry: _Entry[TxT]) -> None:
        """Register `entry` (its nonce is already in acct.nonces)."""
        tx = entry.tx
        acct.txs[tx.nonce] = entry
        acct.total_cost += tx.max_cost
        self._by_hash[tx.hash] = entry
        self._bytes += tx.size

    def _detach(self, acct: _Account[TxT], entry: _Entry[TxT]) -> None:
        """Unregister `entry`; the caller fixes acct.nonces and the pending run."""
        tx = entry.tx
        del acct.txs[tx.nonce]
        acct.total_cost -= tx.max_cost
        del self._by_hash[tx.hash]
        self._bytes -= tx.size

    def _truncate(
        self, acct: _Account[TxT], index: int, removed: list[bytes] | None = None
    ) -> None:
        """Remove the sender's txs from position `index` on (a suffix: no gap opens)."""
        for n in acct.nonces[index:]:
            entry = acct.txs[n]
            self._detach(acct, entry)
            if removed is not None:
                removed.append(entry.tx.hash)
        del acct.nonces[index:]
        if acct.pending_len > index:
            self._pending -= acct.pending_len - index
            acct.pending_len = index

    def _refresh_run(
        self,
        acct: _Account[TxT],
        old_end: int,
        new_entry: _Entry[TxT] | None,
        fresh: dict[bytes, _Entry[TxT]],
    ) -> None:
        """Recompute the pending run; record txs that just became executable.

        `old_end` is state_nonce + pending_len from before the change, with the current
        acct.state_nonce as the start: a tx is fresh if it is past the old run, or it is
        `new_entry` (a replacement inside the run is new to listeners too).
        """
        run = _run_length(acct.nonces, acct.state_nonce)
        self._pending += run - acct.pending_len
        acct.pending_len = run
        # Entry i of the run has nonce state_nonce + i: only those past old_end (and
        # new_entry) can be fresh, so skip the rest (an append was O(run) per tx).
        past = max(0, old_end - acct.state_nonce)
        if new_entry is not None:
            i = new_entry.tx.nonce - acct.state_nonce
            if 0 <= i < min(run, past) and acct.entry_at(i) is new_entry:
                fresh[new_entry.tx.hash] = new_entry
        for i in range(past, run):
            entry = acct.entry_at(i)
            fresh[entry.tx.hash] = entry

    def _sync_account(
        self,
        acct: _Account[TxT],
        state_nonce: int,
        balance: int,
        removed: list[bytes],
        fresh: dict[bytes, _Entry[TxT]],
    ) -> None:
        """Bring one sender in line with (state_nonce, balance).

        Drops txs below the committed nonce, then the first tx whose cumulative cost the
        balance does not cover together with all later ones, then recomputes the run.
        """
        old_start = acct.state_nonce
        old_end = old_start + acct.pending_len
        cut = bisect_left(acct.nonces, state_nonce)
        if cut:
            for n in acct.nonces[:cut]:
                entry = acct.txs[n]
                self._detach(acct, entry)
                removed.append(entry.tx.hash)
            del acct.nonces[:cut]
        # The run is recomputed from scratch below; forget the old one consistently.
        self._pending -= acct.pending_len
        acct.pending_len = 0
        acct.state_nonce = state_nonce
        if acct.total_cost > balance:
            cum = 0
            for i, n in enumerate(acct.nonces):
                cum += acct.txs[n].tx.max_cost
                if cum > balance:
                    self._truncate(acct, i, removed)
                    break
        run = _run_length(acct.nonces, state_nonce)
        self._pending += run
        acct.pending_len = run
        # Run position i holds nonce state_nonce + i: the fresh ones are those outside the
        # old run [old_start, old_end), found without walking the run (after a commit, a
        # long run is mostly still pending).
        before_old = range(min(run, max(0, old_start - state_nonce)))
        after_old = range(min(run, max(0, old_end - state_nonce)), run)
        for i in (*before_old, *after_old):
            entry = acct.entry_at(i)
            fresh[entry.tx.hash] = entry
        if acct.nonces:
            self._ensure_top_in_heap(acct)
        else:
            del self._accounts[acct.sender]

    def _notify(self, fresh: dict[bytes, _Entry[TxT]]) -> None:
        # Only what is still pooled and still executable: a tx replaced or evicted later
        # in the same batch must not be gossiped.
        txs = [e.tx for h, e in fresh.items() if self._by_hash.get(h) is e and self._is_pending(e)]
        if txs:
            for listener in list(self.on_pending):
                listener(txs)

    def _is_pending(self, entry: _Entry[TxT]) -> bool:
        acct = self._accounts[entry.tx.sender]
        return entry.tx.nonce < acct.state_nonce + acct.pending_len

    # ------------------------------------------------------------------ block building

    def reap(self, max_gas: int, max_bytes: int, max_count: int = 2**63 - 1) -> list[TxT]:
        """Executable txs for the next block, best tip first, nonce order per sender.

        A tx that exceeds the remaining gas retires its sender (its later nonces cannot
        go without it) and the walk goes on with the others; reaching max_bytes or
        max_count ends it. The pool is not modified (`update` removes after commit).
        """
        out: list[TxT] = []
        if max_count <= 0:
            return out
        # (-tip, seq, position in run, account): seq is unique among live entries, so
        # tuples never compare accounts.
        heap: list[tuple[int, int, int, _Account[TxT]]] = []
        for acct in self._accounts.values():
            if acct.pending_len:
                e = acct.txs[acct.nonces[0]]
                heap.append((-e.tx.tip, e.seq, 0, acct))
        heapq.heapify(heap)
        gas_left = max_gas
        bytes_left = max_bytes
        heappop, heapreplace = heapq.heappop, heapq.heapreplace
        while heap:
            _, _, pos, acct = heap[0]
            tx = acct.txs[acct.nonces[pos]].tx
            if tx.gas > gas_left:
                heappop(heap)  # this sender is done for this block
                continue
            if tx.size > bytes_left:
                break
            out.append(tx)
            if len(out) >= max_count:
                break
            gas_left -= tx.gas
            bytes_left -= tx.size
            pos += 1
            if pos < acct.pending_len:
                e = acct.txs[acct.nonces[pos]]
                heapreplace(heap, (-e.tx.tip, e.seq, pos, acct))
            else:
                heappop(heap)
        return out

    def drop(self, tx_hash: bytes) -> list[bytes]:
        """Remove a transaction and its sender's later ones (which cannot execute without
        it); returns the hashes removed, none when it is not pooled."""
        entry = self._by_hash.get(tx_hash)
        if entry is None:
            return []
        acct = self._accounts[entry.tx.sender]
        removed: list[bytes] = []
        self._truncate(acct, bisect_left(acct.nonces, entry.tx.nonce), removed)
        if acct.nonces:
            self._ensure_top_in_heap(acct)
        else:
            del self._accounts[acct.sender]
        return removed

    # ------------------------------------------------------------------ devnet rewinds

    def snapshot(self) -> list[TxT]:
        """Every pooled transaction in arrival order (a replacement in its predecessor's
        place): adding them again in this order on the same state rebuilds the pool."""
        return [entry.tx for entry in sorted(self._by_hash.values(), key=lambda e: e.seq)]

    def clear(self, state: PoolStateReader) -> list[TxT]:
        """Empty the pool and read `state` from now on (a devnet moved its head back);
        returns what the pool held, as `snapshot`. Listeners hear nothing."""
        held = self.snapshot()
        self._state = state
        self._by_hash = {}
        self._accounts = {}
        self._bytes = 0
        self._pending = 0
        self._evict_heap = []
        return held

    # ------------------------------------------------------------------ after a commit

    def update(self, state: PoolStateReader, included: Iterable[bytes]) -> list[bytes]:
        """Apply a committed block; return the hashes dropped (not counting `included`).

        Every sender in the pool is re-read (a block may move the nonce or balance of a
        sender whose txs reached the proposer by another path), but a sender whose nonce
        is unchanged, who lost no tx and who still covers its total cost is skipped after
        two state reads.
        """
        self._state = state
        touched: dict[bytes, None] = {}  # ordered set of senders that lost included txs
        for tx_hash in included:
            entry = self._by_hash.get(tx_hash)
            if entry is None:
                continue
            acct = self._accounts[entry.tx.sender]
            self._detach(acct, entry)
            del acct.nonces[bisect_left(acct.nonces, entry.tx.nonce)]
            touched[acct.sender] = None
        removed: list[bytes] = []
        fresh: dict[bytes, _Entry[TxT]] = {}
        for acct in list(self._accounts.values()):
            nonce = state.get_nonce(acct.sender)
            balance = state.get_balance(acct.sender)
            if (
                acct.sender not in touched
                and nonce == acct.state_nonce
                and balance >= acct.total_cost
            ):
                continue
            self._sync_account(acct, nonce, balance, removed, fresh)
        self._notify(fresh)
        return removed

    # ------------------------------------------------------------------ self-check

    def check_invariants(self) -> None:
        """Verify the internal bookkeeping; raise InvariantViolation if broken (tests, debug)."""
        count = pending = size = 0
        for sender, acct in self._accounts.items():
            if sender != acct.sender or not acct.nonces:
                raise InvariantViolation("mempool: empty or misfiled account")
            if acct.nonces != sorted(set(acct.nonces)) or set(acct.nonces) != set(acct.txs):
                raise InvariantViolation("mempool: nonce index out of sync")
            if acct.nonces[0] < acct.state_nonce:
                raise InvariantViolation("mempool: stale nonce kept")
            if acct.pending_len != _run_length(acct.nonces, acct.state_nonce):
                raise InvariantViolation("mempool: pending run out of sync")
            if acct.total_cost != sum(e.tx.max_cost for e in acct.txs.values()):
                raise InvariantViolation("mempool: total cost out of sync")
            if len(acct.nonces) > self.config.max_per_sender:
                raise InvariantViolation("mempool: sender over its limit")
            for n, entry in acct.txs.items():
                if entry.tx.nonce != n or entry.tx.sender != sender:
                    raise InvariantViolation("mempool: entry misfiled")
                if self._by_hash.get(entry.tx.hash) is not entry:
                    raise InvariantViolation("mempool: hash index out of sync")
                size += entry.tx.size
            count += len(acct.nonces)
            pending += acct.pending_len
        if count != len(self._by_hash) or pending != self._pending or size != self._bytes:
            raise InvariantViolation("mempool: counters out of sync")
        for entry in self._by_hash.values():
            owner = self._accounts.get(entry.tx.sender)
            if owner is None or owner.txs.get(entry.tx.nonce) is not entry:
                raise InvariantViolation("mempool: pooled tx without its account")
        in_heap = [item[4] for item in self._evict_heap]
        if len({id(e) for e in in_heap}) != len(in_heap):
            raise InvariantViolation("mempool: duplicate entry in the eviction heap")
        heap_ids = {id(e) for e in in_heap}
        for acct in self._accounts.values():
            if id(acct.entry_at(-1)) not in heap_ids:
                raise InvariantViolation("mempool: top tx missing from the eviction heap")
