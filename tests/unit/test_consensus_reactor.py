"""The consensus reactor's step announcements, without sockets: peers and the host are minimal
recorders (the gossip itself runs in the e2e and simulation tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from consensus.core import RoundStep, Step
from consensus.messages import decode_message, encode_message
from consensus.reactor import ConsensusReactor
from p2p import CONSENSUS_STATE


@dataclass
class RecordingPeer:
    node_id: str
    state: dict[str, Any] = field(default_factory=dict)
    sent: list[tuple[int, bytes]] = field(default_factory=list)

    def send(self, channel: int, message: bytes) -> bool:
        self.sent.append((channel, message))
        return True

    def steps(self) -> list[RoundStep]:
        return [decode_message(m) for c, m in self.sent if c == CONSENSUS_STATE]


@dataclass
class CoreState:
    height: int
    round: int = 0
    step: Step = Step.NEW_HEIGHT


@dataclass
class Driver:
    state: CoreState


@dataclass
class Host:
    driver: Driver
    gossip: Any = None
    on_bad_input: list[Any] = field(default_factory=list)
    on_step: list[Any] = field(default_factory=list)


def test_steps_reach_peers_within_a_height_not_those_far_ahead() -> None:
    host = Host(Driver(CoreState(height=5)))
    reactor = ConsensusReactor(host)  # type: ignore[arg-type]
    near, ahead, unknown = RecordingPeer("a" * 40), RecordingPeer("b" * 40), RecordingPeer("c" * 40)
    for peer in (near, ahead, unknown):
        reactor.add_peer(peer)  # type: ignore[arg-type]
    for peer, height in ((near, 6), (ahead, 9)):
        step = encode_message(RoundStep(height, 0, Step.PROPOSE))
        trio.run(reactor.receive, CONSENSUS_STATE, peer, step)
    for peer in (near, ahead, unknown):
        peer.sent.clear()
    host.driver.state = CoreState(height=6)
    for listener in host.on_step:
        listener()
    assert near.steps() == unknown.steps() == [RoundStep(6, 0, Step.NEW_HEIGHT)]
    assert ahead.steps() == []
    host.driver.state = CoreState(height=8)  # within a height of the one ahead again
    for listener in host.on_step:
        listener()
    assert ahead.steps() == [RoundStep(8, 0, Step.NEW_HEIGHT)]
