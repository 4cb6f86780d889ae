"""The p2p package's public interface: what reactors implement and what they may use.

A *reactor* owns one or more *channels* (small integer ids carried in every packet). The switch
authenticates peers, then hands every message received on a channel to the reactor that owns it
(`receive`), and tells every reactor when a peer comes and goes (`add_peer`, `remove_peer`).
Reactors talk back through `Peer.send`, a non-blocking enqueue into a bounded per-channel queue;
the peer's send loop drains the queues by priority. Messages are anything msgpack can encode
(ints, bytes, str, lists/tuples, dicts with str/bytes keys, bool, None); tuples arrive as lists.

Priorities (higher first): consensus > blocksync > mempool > pex. The recommended values are the
`PRIORITY_*` constants below; the send loop serves the highest-priority non-empty queue but ages
waiting queues so that low-priority traffic is slowed down, never starved.

Reactors that need more than their peers (dialing, disconnecting) get a `SwitchView`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

# Channel ids (one byte; the same values as Tendermint where a counterpart exists).
PEX = 0x00
CONSENSUS_STATE = 0x20
CONSENSUS_DATA = 0x21
CONSENSUS_VOTE = 0x22
MEMPOOL = 0x30
EVIDENCE = 0x38
BLOCKSYNC = 0x40
# Keepalive ping/pong, owned by the switch itself; reactors may not claim it.
CONTROL = 0xFF

PRIORITY_CONSENSUS = 10
PRIORITY_BLOCKSYNC = 6
PRIORITY_MEMPOOL = 4
PRIORITY_PEX = 1


@dataclass(frozen=True)
class ChannelDescriptor:
    """One channel of a reactor.

    `send_queue_capacity`: messages queued per peer before `Peer.send` returns False.
    `max_message_bytes`: the largest encoded packet accepted on this channel, both ways.
    """

    id: int
    priority: int
    send_queue_capacity: int
    max_message_bytes: int

    def __post_init__(self) -> None:
        if not 0 <= self.id <= 0xFF:
            raise ValueError(f"channel id {self.id} is not one byte")
        if self.priority < 1 or self.send_queue_capacity < 1 or self.max_message_bytes < 1:
            raise ValueError(f"channel {self.id:#04x}: priority, capacity and size must be >= 1")


class Peer(Protocol):
    """An authenticated, connected peer as reactors see it."""

    node_id: str
    listen_addr: str  # "host:port" the peer accepts connections on (from its NodeInfo)
    outbound: bool  # we dialed it
    persistent: bool  # one of config.persistent_peers: redialled when lost
    state: dict[str, Any]  # per-reactor state for this peer, keyed by reactor name

    def send(self, channel: int, message: Any) -> bool:
        """Enqueue without blocking; False when the channel's queue is full or the peer closed."""
        ...


class Reactor(Protocol):
    name: str
    channels: Sequence[ChannelDescriptor]

    def add_peer(self, peer: Peer) -> None:
        """A peer completed the handshake (called before any of its messages is delivered)."""
        ...

    def remove_peer(self, peer: Peer, reason: str) -> None:
        """The peer is gone; no message from it is delivered after this."""
        ...

    async def receive(self, channel: int, peer: Peer, message: Any) -> None:
        """Handle one message. Raise `PeerMisbehaved` to punish the sender. Any other exception
        is treated as a bug in the reactor: logged with its traceback, the peer is punished
        lightly and the node goes on."""
        ...

    async def run(self) -> None:
        """The reactor's background loop, run for as long as the switch runs."""
        ...


class SwitchView(Protocol):
    """What a reactor may ask of the switch beyond its peers (used by peer exchange)."""

    @property
    def node_id(self) -> str: ...

    def peers(self) -> list[Peer]: ...

    async def dial(self, addr: str) -> Peer:
        """Connect to `node_id@host:port`; raises `DialFailed` or `HandshakeFailed`."""
        ...

    def stop_peer(self, peer: Peer, reason: str) -> None: ...


class NodeKey(Protocol):
    """The node's ed25519 identity (`cybermiles_node.operator.keys.Ed25519Key` is one)."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


class PendingTx(Protocol):
    @property
    def raw(self) -> bytes: ...
    @property
    def hash(self) -> bytes: ...  # keccak256 of raw


class TxPool(Protocol):
    """The mempool as the mempool reactor needs it."""

    on_pending: list[Callable[[Sequence[Any]], None]]
    """Listeners called (synchronously, on the trio thread) with transactions that just became
    executable; each has `.raw: bytes` and `.hash: bytes`."""

    def ship_senders(self, raws: Sequence[bytes], piece: int) -> Sequence[Future[Any]]:
        """Have worker processes recover the senders of `raws` in pieces of `piece`, in order:
        per piece a future of them (wait without blocking the event loop); empty when the
        pool recovers them itself in check_txs."""
        ...

    def check_txs(
        self, raws: Sequence[bytes], senders: Sequence[Any] | None = None
    ) -> Sequence[object]:
        """Admit a batch (with the senders a `ship_senders` wait gave, if any); per raw tx
        the accepted transaction or an exception instance."""
        ...
