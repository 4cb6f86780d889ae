"""The consensus reactor: gossip of proposals, block parts, votes and evidence between peers.

Every peer tells the others where it is (`RoundStep`, on every step change). Per peer we keep
its height and the set of messages of that height it is known to have (sent to it or received
from it), so nothing is sent twice to the same peer. New messages from our driver are pushed at
once; a gossip tick re-offers everything of the current height that a peer at our height still
lacks, which is what makes consensus live under message loss, full send queues and late
joiners. Peers at other heights get nothing from this reactor: a peer that is behind catches
up through blocksync.

Received messages are decoded with the consensus codec (malformed → the peer is punished) and
handed to the consensus host; the host reports inputs that fail signature checks back through
`punish_bad_input`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import trio

from consensus.core import RoundStep
from consensus.errors import ConsensusError, InvalidSignature, MalformedMessage
from consensus.host import ConsensusHost
from consensus.messages import decode_message, encode_message
from consensus.parts import BlockPart
from consensus.types import DuplicateVoteEvidence, Proposal, Vote
from p2p import (
    CONSENSUS_DATA,
    CONSENSUS_STATE,
    CONSENSUS_VOTE,
    EVIDENCE,
    PRIORITY_CONSENSUS,
    ChannelDescriptor,
    Peer,
    PeerMisbehaved,
)

log = logging.getLogger(__name__)

GOSSIP_INTERVAL_S = 0.1
MALFORMED_PENALTY = 20
BAD_SIGNATURE_PENALTY = 50
MAX_KNOWN_PER_PEER = 50_000
MAX_EVIDENCE_GOSSIP = 50

Punish = Callable[[Peer, str, int], None]


@dataclass
class PeerRoundState:
    height: int = 0
    round: int = 0
    known: set[Hashable] = field(default_factory=set)

    def move_to(self, step: RoundStep) -> None:
        if step.height != self.height:
            self.known.clear()
        self.height, self.round = step.height, step.round


def message_key(message: Any) -> Hashable:
    """What identifies a message for 'the peer already has it'."""
    if isinstance(message, Vote):
        return ("v", message.height, message.round, int(message.type), message.validator)
    if isinstance(message, BlockPart):
        return ("b", message.height, message.round, message.index)
    if isinstance(message, Proposal):
        return ("p", message.height, message.round)
    if isinstance(message, DuplicateVoteEvidence):
        return ("e", message.hash())
    raise TypeError(f"not a gossiped consensus message: {type(message).__name__}")


def channel_of(message: Any) -> int:
    if isinstance(message, Vote):
        return CONSENSUS_VOTE
    if isinstance(message, Proposal | BlockPart):
        return CONSENSUS_DATA
    if isinstance(message, DuplicateVoteEvidence):
        return EVIDENCE
    return CONSENSUS_STATE


class ConsensusReactor:
    name = "consensus"
    channels = (
        ChannelDescriptor(
            CONSENSUS_STATE,
            priority=PRIORITY_CONSENSUS,
            send_queue_capacity=100,
            max_message_bytes=1024,
        ),
        ChannelDescriptor(
            CONSENSUS_DATA,
            priority=PRIORITY_CONSENSUS,
            send_queue_capacity=200,
            max_message_bytes=2**20,
        ),
        ChannelDescriptor(
            CONSENSUS_VOTE,
            priority=PRIORITY_CONSENSUS,
            send_queue_capacity=2000,
            max_message_bytes=4096,
        ),
        ChannelDescriptor(
            EVIDENCE, priority=PRIORITY_CONSENSUS, send_queue_capacity=100, max_message_bytes=8192
        ),
    )

    def __init__(self, host: ConsensusHost, *, punish: Punish | None = None) -> None:
        self.host = host
        self.punish = punish
        self._peers: dict[str, Peer] = {}
        self._last_step: RoundStep | None = None
        host.gossip = self
        host.on_bad_input.append(self.punish_bad_input)
        host.on_step.append(self._announce_step)

    # -- p2p.Reactor -----------------------------------------------------------------------
    def add_peer(self, peer: Peer) -> None:
        peer.state[self.name] = PeerRoundState()
        self._peers[peer.node_id] = peer
        step = self._current_step()
        peer.send(CONSENSUS_STATE, encode_message(step))

    def remove_peer(self, peer: Peer, reason: str) -> None:
        self._peers.pop(peer.node_id, None)

    async def receive(self, channel: int, peer: Peer, message: Any) -> None:
        if not isinstance(message, bytes):
            raise PeerMisbehaved("consensus message is not bytes", MALFORMED_PENALTY)
        try:
            decoded = decode_message(message)
        except MalformedMessage as exc:
            raise PeerMisbehaved(f"malformed consensus message: {exc}", MALFORMED_PENALTY) from None
        state = self._state_of(peer)
        if isinstance(decoded, RoundStep):
            state.move_to(decoded)
            return
        if not isinstance(decoded, Proposal | BlockPart | Vote | DuplicateVoteEvidence):
            raise PeerMisbehaved(
                f"{type(decoded).__name__} is not sent on consensus channels", MALFORMED_PENALTY
            )
        self._remember(state, message_key(decoded))
        self.host.submit(decoded, origin=peer)

    async def run(self) -> None:
        while True:
            await trio.sleep(GOSSIP_INTERVAL_S)
            self.gossip_tick()

    # -- outbound --------------------------------------------------------------------------
    def broadcast(self, message: Any) -> None:
        """Push a new message of ours to every peer that can use it and lacks it."""
        for peer in self._sorted_peers():
            self._offer(peer, message)

    def gossip_tick(self) -> None:
        driver = self.host.driver
        messages = driver.known_messages()
        # Evidence not yet in a block is re-offered too (once per peer and height): a lost
        # broadcast must not keep it from every proposer.
        evidence = driver.evidence.pending(MAX_EVIDENCE_GOSSIP)
        height = driver.height
        for peer in self._sorted_peers():
            for ev in evidence:
                self._offer(peer, ev)
            if self._state_of(peer).height == height:
                for message in messages:
                    self._offer(peer, message)

    def _offer(self, peer: Peer, message: Any) -> None:
        state = self._state_of(peer)
        key = message_key(message)
        if key in state.known:
            return
        at_height = isinstance(message, DuplicateVoteEvidence) or state.height in (
            0,
            message.height,
        )
        if at_height and peer.send(channel_of(message), encode_message(message)):
            self._remember(state, key)

    def _announce_step(self) -> None:
        """Tell the peers our new step, except those more than a height ahead: they gossip
        nothing to a node at another height, and a node catching up through blocksync
        changes step twice a block (three packets a block per peer, the bulk of its writes,
        for nothing). They hear from us again as soon as we are within a height of them."""
        step = self._current_step()
        if step == self._last_step:
            return
        self._last_step = step
        data = encode_message(step)
        for peer in self._sorted_peers():
            if self._state_of(peer).height <= step.height + 1:
                peer.send(CONSENSUS_STATE, data)

    def punish_bad_input(self, origin: Any, error: ConsensusError) -> None:
        if origin is None or self.punish is None:
            return
        penalty = (
            BAD_SIGNATURE_PENALTY if isinstance(error, InvalidSignature) else MALFORMED_PENALTY
        )
        self.punish(origin, f"invalid consensus message: {error}", penalty)

    def peers(self) -> list[Peer]:
        return self._sorted_peers()

    # -- helpers ---------------------------------------------------------------------------
    def _current_step(self) -> RoundStep:
        # The core state's own fields: this runs after every input, and `driver.status` would
        # also work out the round's proposer each time.
        state = self.host.driver.state
        return RoundStep(state.height, state.round, state.step)

    def _sorted_peers(self) -> list[Peer]:
        return [self._peers[node_id] for node_id in sorted(self._peers)]

    def _state_of(self, peer: Peer) -> PeerRoundState:
        state = peer.state.get(self.name)
        if not isinstance(state, PeerRoundState):
            state = peer.state[self.name] = PeerRoundState()
        return state

    @staticmethod
    def _remember(state: PeerRoundState, key: Hashable) -> None:
        if len(state.known) >= MAX_KNOWN_PER_PEER:
            state.known.clear()  # a peer flooding keys costs it re-sends, not our memory
        state.known.add(key)
