"""Helpers for tests and simulations of the network (like `trio.testing`; not used by the node).

`run_simulated` runs a test on a `MemoryNetwork` under a fake clock; `SimNode` is one switch
on it. `wait_until` is a condition wait (fails after a deadline instead of sleeping a fixed time);
under trio's `MockClock(autojump_threshold=0)` it costs no real time. `RecordingReactor` is a
minimal reactor that records what it sees and can be told how to react. `FakeTxPool` stands in
for the mempool behind `MempoolReactor`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing
from eth_hash.auto import keccak

from p2p.abc import ChannelDescriptor, Peer
from p2p.switch import Switch
from p2p.transport import MemoryNetwork


def run_simulated(test: Callable[[MemoryNetwork, trio.Nursery], Awaitable[None]]) -> None:
    """Run `test(network, nursery)` under a MockClock with autojump (timeouts cost no real
    time); everything still running is cancelled when the test returns."""

    async def main() -> None:
        with trio.fail_after(24 * 3600):  # virtual seconds: turns a hang into a failure
            async with trio.open_nursery() as nursery:
                await test(MemoryNetwork(), nursery)
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@dataclass
class SimNode:
    """A switch on a MemoryNetwork, with what tests need to address, stop and inspect it."""

    switch: Switch
    host: str
    reactors: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def node_id(self) -> str:
        return self.switch.node_id

    @property
    def addr(self) -> str:
        return f"{self.node_id}@{self.host}:{self.port}"

    def peer_ids(self) -> list[str]:
        return [p.node_id for p in self.switch.peers()]

    async def start(self, nursery: trio.Nursery) -> SimNode:
        """Run the switch in its own cancel scope (`scope.cancel()` stops just this node)."""
        self.scope = trio.CancelScope()

        async def runner(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            with self.scope:
                await self.switch.run(task_status=task_status)

        self.port = await nursery.start(runner)
        return self


async def wait_until(
    predicate: Callable[[], bool], *, timeout: float = 60.0, poll: float = 0.05
) -> None:
    """Return as soon as `predicate()` holds; raise trio.TooSlowError after `timeout`."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(poll)


class RecordingReactor:
    """Records peers and messages; `on_receive` (if set) runs for each message and may raise."""

    def __init__(
        self,
        name: str,
        channels: Sequence[ChannelDescriptor],
        on_receive: Callable[[int, Peer, Any], None] | None = None,
    ) -> None:
        self.name = name
        self.channels: Sequence[ChannelDescriptor] = channels
        self.on_receive = on_receive
        self.peers: dict[str, Peer] = {}
        self.received: list[tuple[str, int, Any]] = []
        self.removed: list[tuple[str, str]] = []

    def add_peer(self, peer: Peer) -> None:
        self.peers[peer.node_id] = peer

    def remove_peer(self, peer: Peer, reason: str) -> None:
        if self.peers.get(peer.node_id) is peer:
            del self.peers[peer.node_id]
        self.removed.append((peer.node_id, reason))

    async def receive(self, channel: int, peer: Peer, message: Any) -> None:
        self.received.append((peer.node_id, channel, message))
        if self.on_receive is not None:
            self.on_receive(channel, peer, message)

    async def run(self) -> None:
        await trio.sleep_forever()


@dataclass(frozen=True)
class FakeTx:
    raw: bytes
    hash: bytes


class TxRejectedForTest(Exception):
    pass


@dataclass
class FakeTxPool:
    """Accepts every new raw tx (unless its first byte is 0xff) and reports it pending."""

    on_pending: list[Callable[[Sequence[Any]], None]] = field(default_factory=list)
    txs: dict[bytes, FakeTx] = field(default_factory=dict)
    checked: list[bytes] = field(default_factory=list)  # every raw ever passed to check_txs

    def ship_senders(self, raws: Sequence[bytes], piece: int) -> Sequence[Future[Any]]:
        return []  # fake transactions have no signatures: nothing to ship

    def check_txs(
        self, raws: Sequence[bytes], senders: Sequence[Any] | None = None
    ) -> list[object]:
        self.checked.extend(raws)
        outcomes: list[object] = []
        fresh: list[FakeTx] = []
        for raw in raws:
            tx = FakeTx(raw, keccak(raw))
            if raw[:1] == b"\xff":
                outcomes.append(TxRejectedForTest("invalid"))
            elif tx.hash in self.txs:
                outcomes.append(TxRejectedForTest("already known"))
            else:
                self.txs[tx.hash] = tx
                fresh.append(tx)
                outcomes.append(tx)
        if fresh:
            for listener in list(self.on_pending):
                listener(fresh)
        return outcomes
