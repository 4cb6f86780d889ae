"""Blocksync: a node that is behind downloads decided blocks with their commits from peers.

Peers announce their committed height (`["status", height]`) when they connect, after every
commit and every few seconds. When a peer is ahead, we request the next heights
(`["get", height]`, a window of them spread over the peers that have them) and the peer answers
`["block", height, block_wire, commit]` or `["none", height]`. Downloaded blocks are handed to the
consensus host in height order as `DecidedBlock` inputs: the driver verifies the commit's
signatures against the validator set of that height, the application executes the block and
checks every root, and only then is it committed. A peer whose block or commit does not verify is
punished through the host's bad-input report; a request that times out goes to another peer.

Consensus keeps running meanwhile: the node joins the rounds of a height as soon as blocksync
has brought it there, with no mode switch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from consensus.driver import Committed, DecidedBlock
from consensus.errors import MalformedMessage
from consensus.host import ConsensusHost
from consensus.parts import MAX_BLOCK_BYTES
from consensus.types import MAX_HEIGHT, Commit
from p2p import BLOCKSYNC, PRIORITY_BLOCKSYNC, ChannelDescriptor, Peer, PeerMisbehaved

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 2.0
TICK_S = 0.1
REQUEST_TIMEOUT_S = 5.0
WINDOW = 16
# Heights are asked for in runs of consecutive heights, each run of one peer: a refill waits
# until a run's worth of the window is free, so a catching-up node writes one request frame
# per run, not one per committed block (each write and each answer is a syscall and a wake-up).
REQUEST_RUN = 4
MALFORMED_PENALTY = 20
# A whole block plus its commit and the message framing.
MAX_BLOCK_MESSAGE_BYTES = MAX_BLOCK_BYTES + 2**20


class BlockStore(Protocol):
    """The committed chain, as blocksync serves it."""

    def committed_height(self) -> int: ...

    def decided_block(self, height: int) -> tuple[bytes, bytes, Commit] | None:
        """(block hash, block wire bytes, commit) of a committed height, None if unknown."""
        ...


@dataclass
class PeerSyncState:
    height: int = 0
    last_served: float = 0.0


@dataclass
class Request:
    peer_id: str
    sent_at: float  # or when its block was handed to consensus
    delivered: bool = False  # handed to consensus, not committed yet


@dataclass
class Downloaded:
    block_hash: bytes
    data: bytes
    commit: Commit
    peer: Peer


@dataclass
class SyncProgress:
    requests: dict[int, Request] = field(default_factory=dict)
    downloaded: dict[int, Downloaded] = field(default_factory=dict)


class BlocksyncReactor:
    name = "blocksync"
    channels = (
        ChannelDescriptor(
            BLOCKSYNC,
            priority=PRIORITY_BLOCKSYNC,
            send_queue_capacity=64,
            max_message_bytes=MAX_BLOCK_MESSAGE_BYTES,
        ),
    )

    def __init__(
        self,
        host: ConsensusHost,
        store: BlockStore,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.host = host
        self.store = store
        self.clock = clock
        self._peers: dict[str, Peer] = {}
        self.progress = SyncProgress()
        host.on_commit.append(self._on_commit)

    # -- what the node reports -------------------------------------------------------------
    def best_peer_height(self) -> int:
        return max((self._state(p).height for p in self._peers.values()), default=0)

    def lowest_peer_height(self) -> int | None:
        """The committed height of the peer furthest behind, as announced (None: no peers);
        a node that stops at a height waits for its peers to have that block (node.py)."""
        return min((self._state(p).height for p in self._peers.values()), default=None)

    @property
    def catching_up(self) -> bool:
        return self.best_peer_height() > self.store.committed_height() + 1

    # -- p2p.Reactor -----------------------------------------------------------------------
    def add_peer(self, peer: Peer) -> None:
        peer.state[self.name] = PeerSyncState()
        self._peers[peer.node_id] = peer
        peer.send(BLOCKSYNC, ["status", self.store.committed_height()])

    def remove_peer(self, peer: Peer, reason: str) -> None:
        self._peers.pop(peer.node_id, None)
        for height, request in sorted(self.progress.requests.items()):
            if request.peer_id == peer.node_id and not request.delivered:
                del self.progress.requests[height]

    async def receive(self, channel: int, peer: Peer, message: Any) -> None:
        kind, height, rest = _parse(message)
        if kind == "status":
            self._state(peer).height = height
        elif kind == "get":
            self._serve(peer, height)
        elif kind == "block":
            self._accept(peer, height, rest)
        elif kind == "none":
            self.progress.requests.pop(height, None)

    async def run(self) -> None:
        next_status = 0.0
        while True:
            now = self.clock()
            if now >= next_status:
                self._announce()
                next_status = now + STATUS_INTERVAL_S
            self.tick()
            await trio.sleep(TICK_S)

    # -- serving ---------------------------------------------------------------------------
    def _serve(self, peer: Peer, height: int) -> None:
        found = self.store.decided_block(height)
        if found is None:
            peer.send(BLOCKSYNC, ["none", height])
            return
        block_hash, data, commit = found
        peer.send(BLOCKSYNC, ["block", height, block_hash, data, commit.to_wire()])

    # -- syncing ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Hand over what arrived in order, then (re)request the next missing heights."""
        ours = self.store.committed_height()
        self._forget_through(ours)
        self._deliver(ours + 1)
        self._request_window(ours)

    def _forget_through(self, ours: int) -> None:
        """Drop the downloads and requests of heights committed meanwhile."""
        progress = self.progress
        for table in (progress.downloaded, progress.requests):
            for height in [h for h in sorted(table) if h <= ours]:
                del table[height]

    def _request_window(self, ours: int) -> None:
        """(Re)request the heights of the window after `ours` that are neither downloaded nor
        asked for (or asked for too long ago). A height handed to consensus keeps its request
        until it is committed: asked for again while it executes, every block was downloaded
        twice. If it never commits (a block that does not execute), it is asked for again,
        from another peer, when the request times out."""
        progress = self.progress
        now = self.clock()
        last = min(self.best_peer_height(), ours + WINDOW)
        fresh = []
        for height in range(ours + 1, last + 1):
            request = progress.requests.get(height)
            if height in progress.downloaded:
                continue
            if request is None:
                fresh.append(height)
            elif now - request.sent_at > REQUEST_TIMEOUT_S:
                self._request(height, now, avoid=request.peer_id)
        # Whole runs only, unless the window reaches the best height or nothing is pending.
        if fresh and (
            len(fresh) >= REQUEST_RUN or last < ours + WINDOW or len(fresh) == last - ours
        ):
            for start in range(0, len(fresh), REQUEST_RUN):
                self._request_run(fresh[start : start + REQUEST_RUN], now)

    def _deliver(self, height: int) -> None:
        got = self.progress.downloaded.pop(height, None)
        if got is None:
            return
        self.progress.requests[height] = Request(got.peer.node_id, self.clock(), delivered=True)
        decided = DecidedBlock(height, got.block_hash, got.data, got.commit)
        self.host.submit(decided, origin=got.peer)

    def _request_run(self, heights: list[int], now: float) -> None:
        """Ask one peer that has the highest of `heights` (ascending) for all of them; runs
        rotate over such peers by their first height."""
        holders = self._holders(heights[-1])
        if holders:
            self._ask(holders[heights[0] // REQUEST_RUN % len(holders)], heights, now)

    def _request(self, height: int, now: float, avoid: str | None) -> None:
        """Ask for one height again, from a peer other than `avoid` if another has it."""
        holders = self._holders(height)
        others = [p for p in holders if p.node_id != avoid] or holders
        if others:
            self._ask(others[height % len(others)], [height], now)

    def _holders(self, height: int) -> list[Peer]:
        """The peers that announced `height` or more, by node id."""
        return [p for _, p in sorted(self._peers.items()) if self._state(p).height >= height]

    def _ask(self, peer: Peer, heights: list[int], now: float) -> None:
        for height in heights:
            if peer.send(BLOCKSYNC, ["get", height]):
                self.progress.requests[height] = Request(peer.node_id, now)

    def _accept(self, peer: Peer, height: int, rest: list[Any]) -> None:
        request = self.progress.requests.get(height)
        if request is None or request.peer_id != peer.node_id or request.delivered:
            return  # late answer to a request we moved elsewhere, or a repeat: harmless
        if len(rest) != 3 or not isinstance(rest[0], bytes) or not isinstance(rest[1], bytes):
            raise PeerMisbehaved("blocksync block must be [hash, data, commit]", MALFORMED_PENALTY)
        try:
            commit = Commit.from_wire(rest[2])
        except MalformedMessage as exc:
            raise PeerMisbehaved(f"malformed commit: {exc}", MALFORMED_PENALTY) from None
        if commit.height != height or commit.block_id.hash != rest[0]:
            raise PeerMisbehaved("blocksync commit is for another block", MALFORMED_PENALTY)
        self.progress.downloaded[height] = Downloaded(rest[0], rest[1], commit, peer)
        self._deliver(self.store.committed_height() + 1)

    # -- status ----------------------------------------------------------------------------
    def _on_commit(self, committed: Committed) -> None:
        if not self.catching_up:  # while catching up, the periodic status is enough
            self._announce()
        self._forget_through(committed.height)
        self._deliver(committed.height + 1)
        # Keep the window full from commit to commit, not tick to tick: a catching-up node
        # commits a block in a few milliseconds, so a refill per tick would cap it at
        # WINDOW / TICK_S blocks a second.
        if self.progress.requests or self.best_peer_height() > committed.height:
            self._request_window(committed.height)

    def _announce(self) -> None:
        message = ["status", self.store.committed_height()]
        for _, peer in sorted(self._peers.items()):
            peer.send(BLOCKSYNC, message)

    def _state(self, peer: Peer) -> PeerSyncState:
        state = peer.state.get(self.name)
        if not isinstance(state, PeerSyncState):
            state = peer.state[self.name] = PeerSyncState()
        return state


def _parse(message: Any) -> tuple[str, int, list[Any]]:
    if (
        not isinstance(message, list)
        or len(message) < 2
        or message[0] not in ("status", "get", "block", "none")
        or type(message[1]) is not int
        or not 0 <= message[1] <= MAX_HEIGHT
    ):
        raise PeerMisbehaved("malformed blocksync message", MALFORMED_PENALTY)
    kind, height = message[0], message[1]
    if kind != "block" and len(message) != 2:
        raise PeerMisbehaved("malformed blocksync message", MALFORMED_PENALTY)
    return kind, height, message[2:]
