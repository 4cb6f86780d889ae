"""Blocksync's reactor logic without sockets: what it requests from whom, what it hands to
consensus and in which order, what it serves, and which answers get the sender punished.

Peers and the consensus host are minimal recorders here (the reactor talks to them through
`Peer.send` and `host.submit` only); the real wiring is covered by the e2e restart tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from consensus.blocksync import REQUEST_RUN, REQUEST_TIMEOUT_S, WINDOW, BlocksyncReactor
from consensus.driver import Committed, DecidedBlock
from consensus.types import BlockID, Commit
from p2p import BLOCKSYNC, PeerMisbehaved


@dataclass
class RecordingPeer:
    node_id: str
    listen_addr: str = "127.0.0.1:1"
    outbound: bool = True
    persistent: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    sent: list[Any] = field(default_factory=list)

    def send(self, channel: int, message: Any) -> bool:
        assert channel == BLOCKSYNC
        self.sent.append(message)
        return True


@dataclass
class RecordingHost:
    on_commit: list[Any] = field(default_factory=list)
    submitted: list[tuple[Any, Any]] = field(default_factory=list)

    def submit(self, message: Any, origin: Any = None) -> bool:
        self.submitted.append((message, origin))
        return True


@dataclass
class Store:
    height: int = 0
    blocks: dict[int, tuple[bytes, bytes, Commit]] = field(default_factory=dict)

    def committed_height(self) -> int:
        return self.height

    def decided_block(self, height: int) -> tuple[bytes, bytes, Commit] | None:
        return self.blocks.get(height)


def commit_of(height: int) -> Commit:
    return Commit(height, 0, BlockID(bytes([height]) * 32, 1, b"\x00" * 32), ())


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[BlocksyncReactor, RecordingHost, Store, Clock]:
    host, store, clock = RecordingHost(), Store(), Clock()
    return BlocksyncReactor(host, store, clock=clock), host, store, clock  # type: ignore[arg-type]


def connected(reactor: BlocksyncReactor, *letters: str) -> list[RecordingPeer]:
    """Peers with node ids of 40 times each letter, added to `reactor` in that order."""
    peers = [RecordingPeer(letter * 40) for letter in letters]
    for peer in peers:
        reactor.add_peer(peer)  # type: ignore[arg-type]
    return peers


def receive(reactor: BlocksyncReactor, peer: RecordingPeer, message: Any) -> None:
    trio.run(reactor.receive, BLOCKSYNC, peer, message)


def requests(peer: RecordingPeer) -> list[int]:
    return [m[1] for m in peer.sent if m[0] == "get"]


def test_requests_go_to_peers_that_have_the_heights_and_move_on_after_a_timeout() -> None:
    reactor, _, _, clock = make()
    a, b = connected(reactor, "a", "b")
    receive(reactor, a, ["status", 3])
    receive(reactor, b, ["status", 1])
    assert reactor.catching_up
    reactor.tick()
    # One run of consecutive heights, to a peer that has the highest of them.
    assert requests(a) == [1, 2, 3] and requests(b) == []
    reactor.tick()  # nothing is re-requested before the timeout
    assert requests(a) == [1, 2, 3] and requests(b) == []
    clock.now += REQUEST_TIMEOUT_S + 1
    receive(reactor, a, ["status", 3])
    reactor.tick()
    # Nobody answered: height 1 moves from a to b; 2 and 3 stay with a, their only holder.
    assert sorted(requests(a)) == [1, 2, 2, 3, 3] and requests(b) == [1]


def test_a_far_behind_node_asks_in_runs_spread_over_the_peers() -> None:
    """The first window goes out as runs of REQUEST_RUN consecutive heights, each to one peer,
    the runs rotating over the peers; afterwards a commit asks for nothing until a whole run
    of the window is free, and then asks one peer for that run."""
    reactor, host, store, _ = make()
    peers = connected(reactor, "a", "b", "c")
    for peer in peers:
        receive(reactor, peer, ["status", 1000])
    reactor.tick()
    asked = {peer.node_id[0]: requests(peer) for peer in peers}
    assert sorted(h for hs in asked.values() for h in hs) == list(range(1, WINDOW + 1))
    runs = [list(range(s, s + REQUEST_RUN)) for s in range(1, WINDOW + 1, REQUEST_RUN)]
    for run in runs:
        assert sum(1 for hs in asked.values() if set(run) <= set(hs)) == 1
    assert all(asked.values())  # every peer got a run
    before = sum(len(requests(p)) for p in peers)
    for height in range(1, REQUEST_RUN + 1):
        store.height = height
        for listener in host.on_commit:
            listener(Committed(height, bytes([height]) * 32, commit_of(height)))
        sent = sum(len(requests(p)) for p in peers) - before
        assert sent == (REQUEST_RUN if height == REQUEST_RUN else 0)
    new_run = list(range(WINDOW + 1, WINDOW + REQUEST_RUN + 1))
    assert sum(1 for p in peers if requests(p)[-REQUEST_RUN:] == new_run) == 1


def test_the_lowest_peer_height_is_what_the_furthest_behind_announced() -> None:
    reactor, _, _, _ = make()
    assert reactor.lowest_peer_height() is None  # no peers
    a, b = connected(reactor, "a", "b")
    assert reactor.lowest_peer_height() == 0  # nothing announced yet
    receive(reactor, a, ["status", 7])
    receive(reactor, b, ["status", 5])
    assert reactor.lowest_peer_height() == 5
    reactor.remove_peer(b, "gone")
    assert reactor.lowest_peer_height() == 7


def test_blocks_reach_consensus_in_height_order_with_their_sender() -> None:
    reactor, host, store, _ = make()
    peer = RecordingPeer("a" * 40)
    reactor.add_peer(peer)
    receive(reactor, peer, ["status", 2])
    reactor.tick()
    receive(reactor, peer, ["block", 2, bytes([2]) * 32, b"block2", commit_of(2).to_wire()])
    assert host.submitted == []  # 2 waits for 1
    receive(reactor, peer, ["block", 1, bytes([1]) * 32, b"block1", commit_of(1).to_wire()])
    assert [(m.height, m.data) for m, _ in host.submitted] == [(1, b"block1")]
    assert all(isinstance(m, DecidedBlock) and origin is peer for m, origin in host.submitted)
    store.height = 1
    for listener in host.on_commit:
        listener(Committed(1, bytes([1]) * 32, commit_of(1)))
    assert [m.height for m, _ in host.submitted] == [1, 2]


def test_unrequested_answers_are_ignored_and_lies_are_punished() -> None:
    reactor, host, _, _ = make()
    peer = RecordingPeer("a" * 40)
    reactor.add_peer(peer)
    receive(reactor, peer, ["block", 5, b"\x05" * 32, b"x", commit_of(5).to_wire()])
    assert host.submitted == []
    receive(reactor, peer, ["status", 1])
    reactor.tick()
    with pytest.raises(PeerMisbehaved):  # a commit of another block than the one sent
        receive(reactor, peer, ["block", 1, b"\x09" * 32, b"x", commit_of(1).to_wire()])
    for junk in (
        ["block", 1, b"h", b"x", "not a commit"],
        ["nope", 1],
        "text",
        ["get", -1],
        ["status", 2**70],
        ["get", 1, 2],
    ):
        with pytest.raises(PeerMisbehaved):
            receive(reactor, peer, junk)


def test_serves_decided_blocks_and_says_when_it_has_none() -> None:
    reactor, _, store, _ = make()
    store.height = 1
    store.blocks[1] = (b"\x01" * 32, b"block1", commit_of(1))
    peer = RecordingPeer("a" * 40)
    reactor.add_peer(peer)
    assert peer.sent == [["status", 1]]
    receive(reactor, peer, ["get", 1])
    receive(reactor, peer, ["get", 2])
    assert peer.sent[1:] == [
        ["block", 1, b"\x01" * 32, b"block1", commit_of(1).to_wire()],
        ["none", 2],
    ]


def test_a_block_handed_to_consensus_is_not_asked_for_again_until_it_is_late() -> None:
    reactor, host, store, clock = make()
    a, b = connected(reactor, "a", "b")
    receive(reactor, a, ["status", 1])
    reactor.tick()
    receive(reactor, a, ["block", 1, bytes([1]) * 32, b"block1", commit_of(1).to_wire()])
    assert [m.height for m, _ in host.submitted] == [1]
    # Executing: neither a tick nor a repeated answer brings block 1 again.
    reactor.tick()
    receive(reactor, a, ["block", 1, bytes([1]) * 32, b"block1", commit_of(1).to_wire()])
    assert requests(a) == [1] and [m.height for m, _ in host.submitted] == [1]
    # It never commits (it did not execute): asked for again from another peer, once late.
    receive(reactor, b, ["status", 1])
    clock.now += REQUEST_TIMEOUT_S + 1
    reactor.tick()
    assert requests(a) == [1] and requests(b) == [1]
    # Committed meanwhile: the request is forgotten, nothing is asked for again.
    store.height = 1
    clock.now += REQUEST_TIMEOUT_S + 1
    reactor.tick()
    assert requests(a) == [1] and requests(b) == [1] and reactor.progress.requests == {}
