"""The node side of the dev chain methods (rpc/dev_chain.py) on a one-node automine devnet.

`DevChain` implements rpc.dev_chain.DevChainBackend over the application and its producer:

- mining and time are the producer's (application/producer.py: automine, interval mining,
  `mine`, the `BlockClock` with its offset and pinned next timestamp);
- a snapshot records what Hardhat's does: the head (number and hash), the mempool's
  transactions, the clock (offset, pinned timestamp). Ids count up from 1 and are never reused.
- reverting to a snapshot deletes the blocks above its head (`Chain.rollback`: blocks, their
  transaction and receipt indexes, the state through the flat snapshot's undo records), refills
  the pool with the snapshot's transactions (admitted again, against the same head they were
  admitted on), puts the clock back, forgets that snapshot and every later one, and tells the
  `on_rewind` listeners (polled filters) the hashes of the deleted blocks;
- a reset is a revert to genesis that forgets every snapshot and restores the start-up
  settings: the mining mode, the genesis block gas limit, the wall clock without offset.

A devnet's blocks are real blocks: mining N blocks builds N blocks (capped by the RPC layer).

Every method that builds, commits, rolls back or changes what the next block is (its timestamp,
its gas limit, whether it is automined) takes the producer's block lock first, so it never
interleaves with a block the producer is building in its worker thread: it runs before that
block starts or after it is committed. Dropping a pooled transaction needs no lock (the pool
is the event loop's; a block in flight keeps the candidates it reaped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.fees import LowPriceSlots
from cybermiles_node.application.producer import DevnetProducer
from cybermiles_node.errors import InvariantViolation, TxRejected
from evm.transactions import SignedTx

__all__ = ["DevChain", "Snapshot"]

log = logging.getLogger(__name__)

RewindListener = Callable[[Sequence[bytes]], None]


@dataclass(frozen=True)
class Snapshot:
    height: int
    block_hash: bytes
    pool: tuple[SignedTx, ...]  # arrival order
    clock_offset: int
    pinned_timestamp: int | None


class DevChain:
    def __init__(self, app: ChainApp, producer: DevnetProducer) -> None:
        self.app = app
        self.producer = producer
        self.on_rewind: list[RewindListener] = []
        self._snapshots: dict[int, Snapshot] = {}
        self._last_id = 0
        self._start_gas_limit = app.chain.gas_limit
        self._start_mining = (producer.automine, producer.interval)

    # -- reads --------------------------------------------------------------------------------
    @property
    def head_timestamp(self) -> int:
        return int(self.app.head.timestamp)

    @property
    def automine(self) -> bool:
        return self.producer.automine

    def clock_time(self) -> int:
        """The timestamp a block made now would get."""
        return self.producer.clock.next_timestamp(self.head_timestamp)

    # -- mining and time ----------------------------------------------------------------------
    async def mine(
        self, count: int, *, interval: int | None = None, timestamp: int | None = None
    ) -> None:
        await self.producer.mine(count, interval, timestamp)

    async def increase_time(self, seconds: int) -> int:
        async with self.producer.lock:
            self.producer.clock.offset += seconds
            return self.producer.clock.offset

    async def set_next_block_timestamp(self, timestamp: int) -> None:
        async with self.producer.lock:
            self.producer.clock.pinned = timestamp

    async def set_automine(self, on: bool) -> None:
        async with self.producer.lock:
            self.producer.set_automine(on)

    async def set_interval_mining(self, seconds: float) -> None:
        async with self.producer.lock:
            self.producer.set_interval(seconds)

    async def set_block_gas_limit(self, gas: int) -> None:
        """The gas limit of the next blocks (admission refuses transactions above it)."""
        async with self.producer.lock:
            self.app.chain.gas_limit = gas

    # -- the pool -----------------------------------------------------------------------------
    def drop_transaction(self, tx_hash: bytes) -> bool:
        """Remove a pooled transaction and its sender's later ones, which cannot execute
        without it (as anvil does); False when it is not pooled."""
        removed = self.app.mempool.drop(tx_hash)
        if removed:
            self.app.pending_system.refused()  # a dropped system tx leaves the pending state
        return bool(removed)

    # -- snapshots ----------------------------------------------------------------------------
    async def snapshot(self) -> int:
        async with self.producer.lock:
            return self._snapshot()

    def _snapshot(self) -> int:
        self._last_id += 1
        clock = self.producer.clock
        self._snapshots[self._last_id] = Snapshot(
            height=self.app.chain.head_number,
            block_hash=bytes(self.app.head.hash),
            pool=tuple(self.app.mempool.snapshot()),
            clock_offset=clock.offset,
            pinned_timestamp=clock.pinned,
        )
        return self._last_id

    async def revert(self, snapshot_id: int) -> bool:
        """Back to snapshot `snapshot_id`, which is used up with every later one; False (and
        nothing changes) when it is unknown."""
        async with self.producer.lock:
            return self._revert(snapshot_id)

    def _revert(self, snapshot_id: int) -> bool:
        snap = self._snapshots.get(snapshot_id)
        if snap is None:
            return False
        header = self.app.chain.header_by_number(snap.height)
        if header is None or bytes(header.hash) != snap.block_hash:
            raise InvariantViolation(f"snapshot {snapshot_id}'s block is no longer in the chain")
        for later in [i for i in self._snapshots if i >= snapshot_id]:
            del self._snapshots[later]
        self._rewind(snap.height, snap.pool)
        self.producer.clock.offset = snap.clock_offset
        self.producer.clock.pinned = snap.pinned_timestamp
        return True

    async def reset(self) -> None:
        """Back to this devnet's genesis with its start-up settings (module docstring)."""
        async with self.producer.lock:
            self._reset()

    def _reset(self) -> None:
        self._snapshots.clear()
        self._rewind(0, ())
        self.app.chain.gas_limit = self._start_gas_limit
        clock = self.producer.clock
        clock.offset, clock.pinned = 0, None
        automine, interval = self._start_mining
        self.producer.set_automine(automine)
        self.producer.set_interval(interval)

    def _rewind(self, height: int, pool: Sequence[SignedTx]) -> None:
        """Head back to `height`, the pool holding `pool` (what is pooled now is dropped)."""
        app = self.app
        removed = app.chain.rollback(height)
        app.mempool.clear(app.chain.state_at())
        app.low_price = LowPriceSlots(app.chain.fee_rules_at_head())
        app.pending_system.rebuild()  # the pool is empty: so is the pending system state
        if removed:
            log.info("rolled back to block %d (%d blocks deleted)", height, len(removed))
        for listener in self.on_rewind:
            listener(removed)
        # The senders are the ones admission found (recovered, or given for an impersonated
        # transaction, whose marker signature recovers to no one): pass them back.
        for tx in pool:
            try:
                app.check_tx(tx.raw, sender=tx.sender)
            except TxRejected as reason:
                log.warning("transaction 0x%s not restored to the pool: %s", tx.hash.hex(), reason)
