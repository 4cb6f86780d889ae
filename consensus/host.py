"""The trio shell of consensus: one task owns the driver; everything reaches it as an input.

`ConsensusHost.run` is the only code that touches the `ConsensusDriver`. Reactors, timers and
blocksync put inputs into its inbox with `submit` (never blocking, never touching state); the
host feeds them to the driver one at a time and carries out the effects the driver returns:
broadcasts go to the gossip layer, timeouts become trio sleeps that submit a `TimeoutInfo`
back, commits are announced to listeners (metrics, RPC, blocksync). Whoever submitted an input
that turns out malformed or wrongly signed is told through `on_bad_input`, so the network layer
can punish the peer that sent it; nothing a peer sends can stop the host.

Block work (`RunJob` effects: building, validating, committing) runs in a second task, one
job at a time and in order, each job's work through `runner` (by default `worker_thread()`: one
dedicated thread, never abandoned) and its finish back on the loop. Meanwhile the host goes on
handling votes and block parts, so a 2,000-transaction block executing no longer delays them by
its execution time. A light job (a block without transactions) runs on the loop, in order with
the others: a thread round trip would cost more than its work. While a commit job is in flight
the host hands the driver no input (they wait in the inbox), so the core never sees a message
of the next height before it is there.
Tests on trio's MockClock pass `on_the_loop`, whose autojump would otherwise move virtual time
on while a thread works in real time.

`EarlyStart` (optional) ends the wait after a commit (timeout_commit) early when transactions
are waiting: at once when every validator's precommit is in, otherwise when `grace_s` has
passed since the commit (see `poke`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from consensus.core import Step, TimeoutInfo
from consensus.driver import Broadcast, Committed, ConsensusDriver, RunJob, ScheduleTimeout
from consensus.errors import ConsensusError

log = logging.getLogger(__name__)

INBOX_SIZE = 10_000
DRAIN_BUDGET_S = 0.02  # inputs handled back to back before the host yields to other tasks


class Gossip(Protocol):
    """Where the host sends what the driver broadcasts (the consensus reactor)."""

    def broadcast(self, message: Any) -> None: ...


@dataclass(frozen=True)
class Input:
    message: Any
    origin: Any = None  # the peer that sent it; None for our own timers and blocksync


@dataclass(frozen=True)
class EarlyStart:
    """When the next height may start before timeout_commit ends: `work_waiting` says whether
    transactions wait for a block; `grace_s` is how long after a commit the precommits still
    missing from it are waited for (DECISIONS "Ending timeout_commit early")."""

    work_waiting: Callable[[], bool]
    grace_s: float


BadInputListener = Callable[[Any, ConsensusError], None]
CommitListener = Callable[[Committed], None]
JobFinish = Callable[[], list[Any]]
JobRunner = Callable[[Callable[[], JobFinish]], Awaitable[JobFinish]]


def worker_thread() -> JobRunner:
    """Runs block work in one dedicated worker thread (a capacity limiter of 1), never
    abandoned: a cancelled host waits for the job, so a commit is written whole."""
    limiter = trio.CapacityLimiter(1)

    async def run(work: Callable[[], JobFinish]) -> JobFinish:
        return await trio.to_thread.run_sync(work, limiter=limiter)

    return run


async def on_the_loop(work: Callable[[], JobFinish]) -> JobFinish:
    """Runs block work on the event loop itself (tests on trio's MockClock)."""
    return work()


class ConsensusHost:
    def __init__(
        self,
        driver: ConsensusDriver,
        *,
        gossip: Gossip | None = None,
        inbox_size: int = INBOX_SIZE,
        runner: JobRunner | None = None,
        early_start: EarlyStart | None = None,
    ) -> None:
        self.driver = driver
        self._run_job = runner or worker_thread()
        self._jobs_in, self._jobs_out = trio.open_memory_channel[RunJob](math.inf)
        self._committing: trio.Event | None = None  # set while a commit job is in flight
        self.gossip = gossip
        self.on_commit: list[CommitListener] = []
        self.on_bad_input: list[BadInputListener] = []
        self.on_step: list[Callable[[], None]] = []
        self._send, self._receive = trio.open_memory_channel[Input](inbox_size)
        self._nursery: trio.Nursery | None = None
        self.early_start = early_start
        self._commit_wait: TimeoutInfo | None = None
        self._commit_wait_since = 0.0

    def submit(self, message: Any, origin: Any = None) -> bool:
        """Queue an input for the consensus task; False when the inbox is full (dropped)."""
        try:
            self._send.send_nowait(Input(message, origin))
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._run_jobs)
            self._apply(self.driver.start())
            task_status.started()
            async for item in self._receive:
                while self._committing is not None:
                    await self._committing.wait()
                self._handle(item)
                self._drain(time.perf_counter() + DRAIN_BUDGET_S)
                # Let timers, RPC and peers run between batches: a flood of votes must not
                # starve the rest of the node.
                await trio.sleep(0)

    async def _run_jobs(self) -> None:
        """Block jobs, one at a time: the work off the loop, then its finish on the loop before
        the next job starts (a commit's finish moves the head the next job builds on)."""
        async for job in self._jobs_out:
            try:
                finish = job.work() if job.light else await self._run_job(job.work)
                effects = finish()
            except ConsensusError as exc:  # a decided block that does not execute
                log.error("block job failed: %s", exc)
                effects = []
            finally:
                if job.commit and self._committing is not None:
                    self._committing.set()
                    self._committing = None
            self._apply(effects)
            self.poke()

    def _drain(self, deadline: float) -> None:
        """Handle what is already queued, until the inbox is empty or the deadline passes.

        One input per scheduler pass made a block's proposal, parts and votes wait one whole
        pass each behind every other runnable task (transaction admission, RPC): seconds per
        height under load, enough for proposals to miss timeout_propose. The budget keeps the
        promise that the rest of the node still runs between batches."""
        while self._committing is None and time.perf_counter() < deadline:
            try:
                item = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            self._handle(item)

    def _handle(self, item: Input) -> None:
        try:
            effects = self.driver.handle(item.message)
        except ConsensusError as exc:
            if item.origin is None:
                log.warning("consensus input refused: %s", exc)
            for listener in self.on_bad_input:
                listener(item.origin, exc)
            return
        self._apply(effects)
        self.poke()

    def poke(self) -> None:
        """End the wait after a commit early when nothing is left worth waiting for.

        `timeout_commit` exists to gather the precommits of slower validators into the next
        block's last commit. When transactions are waiting, the next height starts as soon as
        every validator's precommit is in, or `grace_s` after the commit with the ones still
        missing left out (CometBFT's skip_timeout_commit, limited to when it helps). The grace
        catches precommits in flight; waiting longer rarely brings more under load: a validator
        still executing the block when the others' +2/3 precommits reach it commits without
        voting, so its precommit never comes, and the whole network idled for timeout_commit
        every such height (half the heights at 2,000 tx/s on four validators sharing two
        cores). An idle chain still makes one block per `timeout_commit`. Only liveness timing
        changes; safety never depends on timeouts."""
        wait, early = self._commit_wait, self.early_start
        if wait is None or early is None:
            return
        state = self.driver.state
        if state.height != wait.height or state.step != Step.NEW_HEIGHT:
            self._commit_wait = None
            return
        last = state.last_precommits
        if last is None or not early.work_waiting():
            return
        if last.has_all() or trio.current_time() >= self._commit_wait_since + early.grace_s:
            self._commit_wait = None
            self.submit(wait)

    async def _poke_after(self, delay_s: float) -> None:
        await trio.sleep(delay_s)
        self.poke()

    def _apply(self, effects: Sequence[Any]) -> None:
        for effect in effects:
            if isinstance(effect, Broadcast):
                if self.gossip is not None:
                    self.gossip.broadcast(effect.message)
            elif isinstance(effect, ScheduleTimeout):
                assert self._nursery is not None
                self._nursery.start_soon(self._fire, effect.timeout)
                if effect.timeout.step == Step.NEW_HEIGHT:
                    self._commit_wait = effect.timeout
                    self._commit_wait_since = trio.current_time()
                    if self.early_start is not None:
                        self._nursery.start_soon(self._poke_after, self.early_start.grace_s)
            elif isinstance(effect, RunJob):
                if effect.commit:
                    self._committing = trio.Event()
                self._jobs_in.send_nowait(effect)
            elif isinstance(effect, Committed):
                for listener in self.on_commit:
                    try:
                        listener(effect)
                    except Exception:
                        log.exception("commit listener failed")
        for step_listener in self.on_step:
            step_listener()

    async def _fire(self, timeout: TimeoutInfo) -> None:
        await trio.sleep(timeout.duration_ms / 1000)
        # Wait for room rather than drop: a lost timeout could stall the round forever.
        await self._send.send(Input(timeout))
