"""Devnet block production: automine (a block as soon as transactions arrive) and/or an interval.

The producer drives the application only through its block interface (`reap`, `execute`,
`write`, `finish_commit`: `build_block` and `commit` in halves), as BFT consensus does.
Automine wakes when the mempool reports executable transactions, waits `batch_window` seconds
so a burst lands in one block, and keeps building while executable transactions remain.
Interval mining builds a block every `interval` seconds, empty or not. Both can be switched
at run time (evm_setAutomine, evm_setIntervalMining), both can be on (as in Hardhat), and
`mine` builds blocks on request (evm_mine, anvil_mine) whatever the mode. A devnet started
with `block_time` > 0 mines on that interval, without automine.

Block timestamps come from a `BlockClock`: wall-clock seconds plus an offset the developer moves
(evm_increaseTime), never below the parent's (several automined blocks may share a second, as on
Tendermint chains whose clocks are read in seconds), or a timestamp pinned for the next block
(evm_setNextBlockTimestamp, evm_mine's). A block made at a chosen timestamp moves the offset so
that time goes on from there, as Hardhat and anvil do. `mix_hash` is the
randomness beacon's output over the parent's, produced with the devnet validator's key, exactly
as a BFT proposer does (the automine chain has no consensus metadata to carry the proof).

Off the event loop (issue #13): the candidates are reaped and the timestamp read on the loop,
then the block is built (EVM, roots) and written to disk in one dedicated worker thread
(`worker_thread`), while the loop goes on serving RPC and admitting transactions; back on the
loop, `finish_commit` switches the head in one step and does the after-commit work (mempool
recheck, listeners, subscriptions, activity lines). Readers see the old head, whole, until then:
state reads go through the tries by root, and the block's writes sit in its overlay until the
one write batch. `lock` ("the chain is being changed") is held for the whole block, and taken
by every dev method that builds, commits, rolls back or changes the next block
(application/dev_chain.py, dev_state.py), so none interleaves with a block in flight. A
shutdown meanwhile waits for the thread (never abandoned) and the block is committed whole
before the cancellation takes effect; a kill -9 leaves it whole on disk or absent.

A block that halts the chain (governance, issue #10) is committed like any other; `commit` then
raises `ChainHalted` (application/app.py), which ends `run`, and with it the node.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from consensus.keys import Ed25519Key
from cybermiles_node.application.abc import Application, StateView
from cybermiles_node.application.chain import NO_CONSENSUS_METADATA, PendingBlock
from cybermiles_node.application.randomness import RandomnessBeacon
from evm.transactions import SignedTx

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


BlockRunner = Callable[[Callable[[], PendingBlock]], Awaitable[PendingBlock]]


def worker_thread() -> BlockRunner:
    """Runs block jobs in one dedicated worker thread (a capacity limiter of 1: one block at a
    time), never abandoned: a cancelled caller waits for the job to end."""
    limiter = trio.CapacityLimiter(1)

    async def run(job: Callable[[], PendingBlock]) -> PendingBlock:
        return await trio.to_thread.run_sync(job, limiter=limiter)

    return run


async def on_the_loop(job: Callable[[], PendingBlock]) -> PendingBlock:
    """Runs block jobs on the event loop itself: for tests on trio's MockClock, whose autojump
    would move virtual time on while a thread works in real time."""
    return job()


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
        lock: trio.Lock | None = None,
        runner: BlockRunner | None = None,
    ) -> None:
        self.app = app
        # "The chain is being changed": held while a block is built and committed, and by the
        # dev methods that build, commit, roll back or change what the next block is.
        self.lock = lock or trio.Lock()
        self._run_job = runner or worker_thread()
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
    async def mine(
        self, count: int = 1, interval: int | None = None, timestamp: int | None = None
    ) -> None:
        """Build and commit `count` blocks now, empty or not (evm_mine, anvil_mine). The first
        gets `timestamp` when given, else the clock's; with an `interval`, each next one
        `interval` seconds after the head, and the clock goes on from the last. Each block
        takes the block lock alone: between blocks the lock is free, so RPC answers during a
        long run, and a block automined meanwhile is simply one of the chain's."""
        for i in range(count):
            async with self.lock:
                at = None
                if i == 0 and timestamp is not None:
                    self.clock.pinned = timestamp
                if i and interval is not None:
                    at = self.app.head.timestamp + interval
                await self.produce_off_loop(timestamp=at)

    async def produce_off_loop(
        self, *, allow_empty: bool = True, timestamp: int | None = None
    ) -> PendingBlock:
        """`produce`, with the block built and written in the producer's worker thread while
        the event loop serves reads (of the old head) and admits transactions. The caller
        holds `lock`. A cancellation meanwhile (shutdown) waits for the thread, and takes effect
        at the next checkpoint, after this block is committed whole."""
        job = self._job(allow_empty, timestamp)
        block = await self._run_job(job.run)
        return self._finish(job, block)

    def produce(self, *, allow_empty: bool = True, timestamp: int | None = None) -> PendingBlock:
        """Build one block from the best pending transactions and commit it (if not empty),
        at `timestamp` when given (not before the head's: the caller checks), else at the
        clock's; all on the calling thread (tests and tools that own the chain alone)."""
        job = self._job(allow_empty, timestamp)
        return self._finish(job, job.run())

    def _job(self, allow_empty: bool, timestamp: int | None) -> _BlockJob:
        """What the next block is made of, read on the event loop: the clock, the candidates
        the pool offers now (transactions arriving later wait for the next block)."""
        head = self.app.head
        chosen = timestamp is not None
        if timestamp is None:
            timestamp = self.clock.next_timestamp(head.timestamp)
        return _BlockJob(
            app=self.app,
            parent_mix_hash=bytes(head.mix_hash),
            timestamp=timestamp,
            chosen=chosen,
            candidates=self.app.reap(),
            senders=self.app.pool_senders(),
            allow_empty=allow_empty,
            coinbase=self.coinbase,
            randomness=lambda parent: self.beacon.produce(self.key, parent)[0],
        )

    def _finish(self, job: _BlockJob, block: PendingBlock) -> PendingBlock:
        """After `job.run`, on the event loop: evictions, then (if written) the new head."""
        for tx, reason in block.skipped:
            log.info(
                "transaction 0x%s left out of block %d: %s", tx.hash.hex(), block.number, reason
            )
        self.app.evict_crashed(block)
        if job.state_after is None:
            return block
        self.app.finish_commit(block, job.state_after)
        self.clock.made(job.timestamp, chosen=job.chosen)
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
                async with self.lock:
                    if not (self.automine and self.app.pending_count):
                        continue  # a dev method changed that while we waited
                    block = await self.produce_off_loop(allow_empty=False)
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
            async with self.lock:
                if self.interval > 0:  # not switched off while we waited for the lock
                    await self.produce_off_loop()


@dataclass
class _BlockJob:
    """One block's building and writing, free of the event loop's state: `run` may execute in
    a worker thread (the block lock keeps the head still meanwhile)."""

    app: Application
    parent_mix_hash: bytes
    timestamp: int
    chosen: bool
    candidates: list[SignedTx]
    senders: list[bytes]  # the pool's when reaped: `read_ahead` reads their accounts
    allow_empty: bool
    coinbase: bytes
    randomness: Callable[[bytes], bytes]
    state_after: StateView | None = None  # once the block is written

    def run(self) -> PendingBlock:
        ctx = self.app.next_context(
            time=self.timestamp,
            coinbase=self.coinbase,
            randomness=self.randomness(self.parent_mix_hash),
            extra_data=NO_CONSENSUS_METADATA,
        )
        block = self.app.execute(ctx, self.candidates)
        if self.allow_empty or block.result.transactions:
            self.app.write(block)
            self.state_after = self.app.read_ahead(block, self.senders)
        return block
