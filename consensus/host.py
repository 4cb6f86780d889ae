"""The trio shell of consensus: one task owns the driver; everything reaches it as an input.

`ConsensusHost.run` is the only code that touches the `ConsensusDriver`. Reactors, timers and
blocksync put inputs into its inbox with `submit` (never blocking, never touching state); the
host feeds them to the driver one at a time and carries out the effects the driver returns:
broadcasts go to the gossip layer, timeouts become trio sleeps that submit a `TimeoutInfo`
back, commits are announced to listeners (metrics, RPC, blocksync). Whoever submitted an input
that turns out malformed or wrongly signed is told through `on_bad_input`, so the network layer
can punish the peer that sent it; nothing a peer sends can stop the host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from consensus.core import Step, TimeoutInfo
from consensus.driver import Broadcast, Committed, ConsensusDriver, ScheduleTimeout
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


BadInputListener = Callable[[Any, ConsensusError], None]
CommitListener = Callable[[Committed], None]


class ConsensusHost:
    def __init__(
        self,
        driver: ConsensusDriver,
        *,
        gossip: Gossip | None = None,
        inbox_size: int = INBOX_SIZE,
    ) -> None:
        self.driver = driver
        self.gossip = gossip
        self.on_commit: list[CommitListener] = []
        self.on_bad_input: list[BadInputListener] = []
        self.on_step: list[Callable[[], None]] = []
        self._send, self._receive = trio.open_memory_channel[Input](inbox_size)
        self._nursery: trio.Nursery | None = None
        self.work_waiting: Callable[[], bool] = lambda: False
        self._commit_wait: TimeoutInfo | None = None

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
            self._apply(self.driver.start())
            task_status.started()
            async for item in self._receive:
                self._handle(item)
                self._drain(time.perf_counter() + DRAIN_BUDGET_S)
                # Let timers, RPC and peers run between batches: a flood of votes must not
                # starve the rest of the node.
                await trio.sleep(0)

    def _drain(self, deadline: float) -> None:
        """Handle what is already queued, until the inbox is empty or the deadline passes.

        One input per scheduler pass made a block's proposal, parts and votes wait one whole
        pass each behind every other runnable task (transaction admission, RPC): seconds per
        height under load, enough for proposals to miss timeout_propose. The budget keeps the
        promise that the rest of the node still runs between batches."""
        while time.perf_counter() < deadline:
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
        """End the wait after a commit early when nothing is left to wait for.

        `timeout_commit` exists to gather the precommits of slower validators into the next
        block's last commit. When every validator's precommit is already in and transactions
        are waiting, waiting longer only adds latency, so the next height starts now (CometBFT's
        skip_timeout_commit, limited to when it helps). An idle chain still makes one block per
        `timeout_commit`. Only liveness timing changes; safety never depends on timeouts."""
        wait = self._commit_wait
        if wait is None:
            return
        state = self.driver.state
        if state.height != wait.height or state.step != Step.NEW_HEIGHT:
            self._commit_wait = None
            return
        last = state.last_precommits
        if last is not None and last.has_all() and self.work_waiting():
            self._commit_wait = None
            self.submit(wait)

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
