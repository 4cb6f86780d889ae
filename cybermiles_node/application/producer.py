"""Devnet block production: automine (a block as soon as transactions arrive) or an interval.

The producer drives the application only through its block interface (`build_block`,
`commit`), exactly as BFT consensus will. Automine wakes when the mempool reports executable
transactions, waits `batch_window` seconds so a burst lands in one block, and keeps building
while executable transactions remain. Interval mode builds a block every `block_time` seconds,
empty or not.

Block timestamps are wall-clock seconds, never below the parent's (several automined blocks may
share a second, as on Tendermint chains whose clocks are read in seconds). `mix_hash` is the
randomness beacon's output over the parent's, produced with the devnet validator's key, exactly
as a BFT proposer does (the automine chain has no consensus metadata to carry the proof).

A block that halts the chain (governance, issue #10) is committed like any other; `commit` then
raises `ChainHalted` (application/app.py), which ends `run`, and with it the node.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from consensus.keys import Ed25519Key
from cybermiles_node.application.abc import Application
from cybermiles_node.application.chain import NO_CONSENSUS_METADATA, PendingBlock
from cybermiles_node.application.randomness import RandomnessBeacon

log = logging.getLogger(__name__)


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
        self.wall_clock = wall_clock
        self._wake = trio.Event()
        app.on_pending.append(lambda _txs: self._wake.set())

    def produce(self, *, allow_empty: bool = True) -> PendingBlock:
        """Build one block from the best pending transactions and commit it (if not empty)."""
        head = self.app.head
        timestamp = max(int(self.wall_clock()), head.timestamp)
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
        # Devnets print each block and transaction at info through operator/activity.py.
        log.debug(
            "block %d: %d txs, gas %d",
            block.number,
            len(block.result.transactions),
            block.header.gas_used,
        )
        return block

    async def run(self) -> None:
        if self.block_time > 0:
            await self._run_interval()
        else:
            await self._run_automine()

    async def _run_interval(self) -> None:
        deadline = trio.current_time()
        while True:
            deadline += self.block_time
            await trio.sleep_until(deadline)
            self.produce()

    async def _run_automine(self) -> None:
        while True:
            if self.app.pending_count == 0:
                self._wake = trio.Event()
                await self._wake.wait()
            await trio.sleep(self.batch_window)
            block = self.produce(allow_empty=False)
            if not block.result.transactions:
                # Everything executable was skipped: wait for news rather than spin.
                self._wake = trio.Event()
                await self._wake.wait()
