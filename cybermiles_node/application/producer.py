"""Devnet block production: automine (a block as soon as transactions arrive) and/or an interval.

The producer drives the application only through its block interface (`build_block`,
`commit`), exactly as BFT consensus will. Automine wakes when the mempool reports executable
transactions, waits `batch_window` seconds so a burst lands in one block, and keeps building
while executable transactions remain. Interval mining builds a block every `interval` seconds,
empty or not. Both can be switched at run time (evm_setAutomine, evm_setIntervalMining), both
can be on (as in Hardhat), and `mine` builds blocks on request (evm_mine, anvil_mine) whatever
the mode. A devnet started with `block_time` > 0 mines on that interval, without automine.

Block timestamps come from a `BlockClock`: wall-clock seconds plus an offset the developer moves
(evm_increaseTime), never below the parent's (several automined blocks may share a second, as on
Tendermint chains whose clocks are read in seconds), or a timestamp pinned for the next block
(evm_setNextBlockTimestamp, evm_mine's). A block made at a chosen timestamp moves the offset so
that time goes on from there, as Hardhat and anvil do. `mix_hash` is the
randomness beacon's output over the parent's, produced with the devnet validator's key, exactly
as a BFT proposer does (the automine chain has no consensus metadata to carry the proof).

A block that halts the chain (governance, issue #10) is committed like any other; `commit` then
raises `ChainHalted` (application/app.py), which ends `run`, and with it the node.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from consensus.keys import Ed25519Key
from cybermiles_node.application.abc import Application
from cybermiles_node.application.chain import NO_CONSENSUS_METADATA, PendingBlock
from cybermiles_node.application.randomness import RandomnessBeacon

log = logging.getLogger(__name__)


@dataclass
class BlockClock:
    """The timestamps of a devnet's next blocks (module docstring)."""

    wall_clock: Callable[[], float] = time.time
    offset: int = 0  # seconds added to the wall clock (evm_increaseTime)
    pinned: int | None = None  # the next block's timestamp, when chosen

    def next_timestamp(self, parent_timestamp: int) -> int:
        if self.pinned is not None:
            return self.pinned
        return max(int(self.wall_clock()) + self.offset, parent_timestamp)

    def made(self, timestamp: int, *, chosen: bool) -> None:
        """A block was committed at `timestamp`; time goes on from a chosen one."""
        if chosen or self.pinned is not None:
            self.offset = timestamp - int(self.wall_clock())
        self.pinned = None


class DevnetProducer:
    def __init__(
        self,
        app: Application,
        *,
        coinbase: bytes,
        key: Ed25519Key,
        beacon: RandomnessBeacon,
        block_time: float = 0.0,
        batch_window: float = 0.005,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.coinbase = coinbase
        self.key = key
        self.beacon = beacon
        self.block_time = block_time
        self.batch_window = batch_window
        self.clock = BlockClock(wall_clock)
        # Automine unless the devnet was started on an interval (then that interval only).
        self.automine = block_time <= 0
        self.interval = block_time  # seconds between interval blocks; 0 = off
        self._tick_at = math.inf  # trio time of the next interval block
        self._stalled = False  # automine found nothing it could include: wait for news
        self._wake = trio.Event()
        app.on_pending.append(lambda _txs: self._wake.set())

    # -- settings (evm_setAutomine, evm_setIntervalMining) ----------------------------------
    def set_automine(self, on: bool) -> None:
        self.automine = on
        self._stalled = False
        self._wake.set()

    def set_interval(self, seconds: float) -> None:
        """Mine every `seconds` from now on (0: stop interval mining)."""
        self.interval = seconds
        self._tick_at = math.inf
        self._wake.set()

    # -- blocks -----------------------------------------------------------------------------
    async def mine(self, count: int = 1, interval: int | None = None) -> None:
        """Build and commit `count` blocks now, empty or not (evm_mine, anvil_mine). The first
        gets the clock's timestamp; with an `interval`, each next one `interval` seconds after
        the head, and the clock goes on from the last. Between blocks the event loop runs (RPC
        answers during a long run; a block automined meanwhile is simply one of the chain's)."""
        for i in range(count):
            timestamp = None
            if i and interval is not None:
                timestamp = self.app.head.timestamp + interval
            self.produce(timestamp=timestamp)
            await trio.sleep(0)

    def produce(self, *, allow_empty: bool = True, timestamp: int | None = None) -> PendingBlock:
        """Build one block from the best pending transactions and commit it (if not empty),
        at `timestamp` when given (not before the head's: the caller checks), else at the
        clock's."""
        head = self.app.head
        chosen = timestamp is not None
        if timestamp is None:
            timestamp = self.clock.next_timestamp(head.timestamp)
        ctx = self.app.next_context(
            time=timestamp,
            coinbase=self.coinbase,
            randomness=self.beacon.produce(self.key, bytes(head.mix_hash))[0],
            extra_data=NO_CONSENSUS_METADATA,
        )
        block = self.app.build_block(ctx)
        for tx, reason in block.skipped:
            log.info(
                "transaction 0x%s left out of block %d: %s", tx.hash.hex(), block.number, reason
            )
        if not allow_empty and not block.result.transactions:
            return block
        self.app.commit(block)
        self.clock.made(timestamp, chosen=chosen)
        # Devnets print each block and transaction at info through operator/activity.py.
        log.debug(
            "block %d: %d txs, gas %d",
            block.number,
            len(block.result.transactions),
            block.header.gas_used,
        )
        return block

    async def run(self) -> None:
        """Automine and interval mining, as the settings say, until cancelled."""
        while True:
            if self.automine and not self._stalled and self.app.pending_count:
                await trio.sleep(self.batch_window)
                block = self.produce(allow_empty=False)
                # Everything executable was skipped: wait for news rather than spin.
                self._stalled = not block.result.transactions
                continue
            if self.interval > 0 and self._tick_at == math.inf:
                self._tick_at = trio.current_time() + self.interval
            self._wake = trio.Event()
            with trio.move_on_at(self._tick_at):
                await self._wake.wait()
                self._stalled = False
                continue
            self._tick_at += self.interval
            self.produce()
