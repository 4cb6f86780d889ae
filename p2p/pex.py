"""Peer exchange (channel PEX): find peers, share addresses, fill outbound slots.

Messages: `["request"]` asks for addresses; `["addrs", [node_id@host:port, ...]]` answers (at
most `MAX_ADDRS_PER_MESSAGE`). Addresses are learned from every peer's NodeInfo listen address
and from replies to our own requests; unsolicited replies, malformed or oversized lists and
more than `max_requests_per_interval` requests per `ensure_interval` are `PeerMisbehaved`.

Every `ensure_interval` (and at once when a peer leaves or new addresses arrive) the reactor
tops outbound connections up to `max_outbound` from the address book. When the book cannot
offer enough, it asks a connected peer for more and, failing that, dials the configured seeds.
A seed is asked for addresses right after connecting and dropped when it has answered (or
has not, `seed_disconnect_after` seconds later).

Seed mode (a crawler that only hands out addresses): answer requests, disconnect every
non-persistent peer `seed_disconnect_after` seconds after it connected, and crawl the book:
dial addresses (each at most once per `crawl_interval`), ask them for theirs, drop them.
Outside seed mode an address is dialed at most once per `redial_cooldown` (longer after
failures, see the address book).
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from p2p.abc import PEX, PRIORITY_PEX, ChannelDescriptor, Peer, SwitchView
from p2p.addrbook import AddressBook
from p2p.errors import P2PError, PeerMisbehaved
from p2p.netaddr import parse_address

log = logging.getLogger(__name__)

REQUEST = "request"
ADDRS = "addrs"
MAX_ADDRS_PER_MESSAGE = 100
PENALTY_MALFORMED = 20
PENALTY_FLOOD = 20
PENALTY_UNSOLICITED = 10
PEX_CHANNEL = ChannelDescriptor(
    PEX, priority=PRIORITY_PEX, send_queue_capacity=16, max_message_bytes=64 * 1024
)


@dataclass
class _PexPeerState:
    connected_at: float
    awaiting_reply: bool = False
    last_request_sent: float = float("-inf")
    requests_received: deque[float] = field(default_factory=deque)


def _parse_message(message: Any) -> list[str] | None:
    """None for a request, the address list for a reply; PeerMisbehaved for anything else."""
    if message == [REQUEST]:
        return None
    if not (isinstance(message, list) and len(message) == 2 and message[0] == ADDRS):
        raise PeerMisbehaved("malformed pex message", PENALTY_MALFORMED)
    addrs = message[1]
    if not isinstance(addrs, list):
        raise PeerMisbehaved("pex reply is not a list", PENALTY_MALFORMED)
    if len(addrs) > MAX_ADDRS_PER_MESSAGE:
        raise PeerMisbehaved(f"pex reply of {len(addrs)} addresses", PENALTY_MALFORMED)
    try:
        for text in addrs:
            parse_address(text)
    except ValueError as exc:
        raise PeerMisbehaved(f"bad address in pex reply: {exc}", PENALTY_MALFORMED) from None
    return addrs


class PexReactor:
    name = "pex"

    def __init__(
        self,
        switch: SwitchView,
        book: AddressBook,
        *,
        seeds: Sequence[str] = (),
        seed_mode: bool = False,
        max_outbound: int = 10,
        clock: Callable[[], float] = trio.current_time,
        rng: random.Random | None = None,
        ensure_interval: float = 30.0,
        max_requests_per_interval: int = 3,
        seed_disconnect_after: float = 5.0,
        crawl_interval: float = 300.0,
        redial_cooldown: float = 10.0,
    ) -> None:
        self.channels: Sequence[ChannelDescriptor] = (PEX_CHANNEL,)
        self.switch = switch
        self.book = book
        self.seeds = [parse_address(s) for s in seeds]
        self._seed_ids = {s.node_id for s in self.seeds}
        self.seed_mode = seed_mode
        self.max_outbound = max_outbound
        self._clock = clock
        self._rng = rng or random.Random()
        self.ensure_interval = ensure_interval
        self.max_requests_per_interval = max_requests_per_interval
        self.seed_disconnect_after = seed_disconnect_after
        self.crawl_interval = crawl_interval
        self.redial_cooldown = redial_cooldown
        self._seed_dialed_at: dict[str, float] = {}
        self._wake = trio.Event()

    # ----------------------------------------------------------------- Reactor protocol

    def add_peer(self, peer: Peer) -> None:
        state = _PexPeerState(connected_at=self._clock())
        peer.state[self.name] = state
        if peer.node_id not in self._seed_ids:
            try:
                self.book.add(f"{peer.node_id}@{peer.listen_addr}", authoritative=True)
            except ValueError:
                log.debug("pex: peer %s advertises an unusable address", peer.node_id)
            if peer.outbound:
                self.book.mark_good(peer.node_id)
        if peer.outbound:
            self._request(peer, state)

    def remove_peer(self, peer: Peer, reason: str) -> None:
        self._wake.set()  # an outbound slot may have opened

    async def receive(self, channel: int, peer: Peer, message: Any) -> None:
        state: _PexPeerState = peer.state[self.name]
        addrs = _parse_message(message)
        if addrs is None:
            self._answer(peer, state)
        else:
            self._learn(peer, state, addrs)

    async def run(self) -> None:
        while True:
            self._wake = trio.Event()
            await self._ensure_peers()
            self._end_seed_sessions()
            self.book.save()
            tick = min(self.ensure_interval, 1.0) if self.seed_mode else self.ensure_interval
            with trio.move_on_after(tick):
                await self._wake.wait()

    # ----------------------------------------------------------------- messages

    def _request(self, peer: Peer, state: _PexPeerState) -> None:
        if peer.send(PEX, [REQUEST]):
            state.awaiting_reply = True
            state.last_request_sent = self._clock()

    def _answer(self, peer: Peer, state: _PexPeerState) -> None:
        now = self._clock()
        recent = state.requests_received
        while recent and recent[0] <= now - self.ensure_interval:
            recent.popleft()
        if len(recent) >= self.max_requests_per_interval:
            raise PeerMisbehaved("too many address requests", PENALTY_FLOOD)
        recent.append(now)
        addrs = self.book.sample(MAX_ADDRS_PER_MESSAGE, exclude={peer.node_id}, rng=self._rng)
        peer.send(PEX, [ADDRS, addrs])

    def _learn(self, peer: Peer, state: _PexPeerState, addrs: list[str]) -> None:
        if not state.awaiting_reply:
            raise PeerMisbehaved("unsolicited pex reply", PENALTY_UNSOLICITED)
        state.awaiting_reply = False
        added = sum(self.book.add(text) for text in addrs)
        log.debug("pex: %d new addresses from %s", added, peer.node_id)
        if added:
            self._wake.set()
        if (self.seed_mode or peer.node_id in self._seed_ids) and not peer.persistent:
            self.switch.stop_peer(peer, "pex: address exchange done")

    # ----------------------------------------------------------------- background work

    async def _ensure_peers(self) -> None:
        peers = self.switch.peers()
        need = self.max_outbound - sum(1 for p in peers if p.outbound)
        if need <= 0:
            return
        now = self._clock()
        exclude = {p.node_id for p in peers} | self._seed_ids
        candidates = self.book.pick(need, exclude=exclude, now=now, rng=self._rng)
        cooldown = self.crawl_interval if self.seed_mode else self.redial_cooldown
        for addr in candidates:
            self.book.mark_attempt(parse_address(addr).node_id, now, cooldown)
        async with trio.open_nursery() as nursery:
            for addr in candidates:
                nursery.start_soon(self._dial, addr)
            if len(candidates) < need and not self.seed_mode:
                if not self._ask_for_more(peers, now):
                    self._dial_seeds(nursery, peers, now)

    async def _dial(self, addr: str) -> None:
        node_id = parse_address(addr).node_id
        try:
            await self.switch.dial(addr)
        except P2PError as exc:
            log.debug("pex: dialing %s failed: %s", addr, exc)
            self.book.mark_failed(node_id, self._clock())
        else:
            self.book.mark_good(node_id)

    def _ask_for_more(self, peers: Sequence[Peer], now: float) -> bool:
        """Ask one peer that we have not asked recently; False if there is none."""
        # A peer that never answered may be asked again after the interval.
        askable = [
            p
            for p in peers
            if p.node_id not in self._seed_ids
            and now - p.state[self.name].last_request_sent >= self.ensure_interval
        ]
        if not askable:
            return False
        peer = self._rng.choice(askable)
        self._request(peer, peer.state[self.name])
        return True

    def _dial_seeds(self, nursery: trio.Nursery, peers: Sequence[Peer], now: float) -> None:
        connected = {p.node_id for p in peers}
        for seed in self.seeds:
            last = self._seed_dialed_at.get(seed.node_id, float("-inf"))
            if seed.node_id in connected or now - last < self.ensure_interval:
                continue
            self._seed_dialed_at[seed.node_id] = now
            nursery.start_soon(self._dial_seed, str(seed))

    async def _dial_seed(self, addr: str) -> None:
        try:
            await self.switch.dial(addr)
        except P2PError as exc:
            log.info("pex: seed %s unreachable: %s", addr, exc)

    def _end_seed_sessions(self) -> None:
        """A seed keeps nobody for long; a node keeps no seed that failed to answer."""
        deadline = self._clock() - self.seed_disconnect_after
        for peer in self.switch.peers():
            if (
                (self.seed_mode or peer.node_id in self._seed_ids)
                and not peer.persistent
                and peer.state[self.name].connected_at <= deadline
            ):
                self.switch.stop_peer(peer, "seed session over")
