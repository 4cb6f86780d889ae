"""The switch: owns every peer connection and routes messages between peers and reactors.

```
            dial / persistent peers / pex            listener (transport)
                       │                                   │
                       ▼                                   ▼
              connect ─┴─▶ secure_handshake (timeout) ◀────┘   bans, max_inbound checked
                              │ NodeInfo checked (network, id, version)
                              ▼
                  admit: not self, not banned, no duplicate  ──▶ reactors.add_peer
                              │
                   PeerConnection.run (send loop + receive loop)
                              │ receive ──▶ reactor.receive  (PeerMisbehaved ──▶ punish)
                              ▼
                  detach ──▶ reactors.remove_peer; faults scored; persistent peers redialled
```
Robustness rule: nothing a peer sends can crash the node. Everything a peer can cause ends in
that peer being dropped (and possibly scored or banned); the switch and its other peers go on.
Bugs of our own inside a peer's tasks also only drop that peer, with the traceback logged.

Scores: every node id starts at 100 (`policy.ScoreBoard`). Oversize frames, undecodable
packets, failed decryption and `PeerMisbehaved` lower it; a reactor raising anything else costs
the peer a little. At zero, or at once for a failed handshake signature or a wrong network, the
node id and the IP are banned for `ban_seconds`: inbound connections are refused and we do not
dial them. (Loopback IPs are exempt from IP bans, see `policy.py`.)

Duplicate connections: when two nodes dial each other at the same moment, both sides keep the
connection dialed by the node with the lower node id, so they always agree on the survivor.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import trio

from p2p.abc import CONTROL, NodeKey, Peer, Reactor
from p2p.addrbook import AddressBook
from p2p.connection import PeerConnection, SecureConnection, Timing, secure_handshake
from p2p.errors import (
    DecryptionFailed,
    DialFailed,
    FrameTooLarge,
    HandshakeFailed,
    MalformedFrame,
    P2PError,
    PeerMisbehaved,
)
from p2p.framing import encode_packet
from p2p.handshake import P2P_VERSION, NodeInfo, node_id_of
from p2p.netaddr import HostPort, NetAddress, is_loopback, parse_address, parse_host_port
from p2p.pex import PexReactor
from p2p.policy import BanList, ScoreBoard
from p2p.transport import TcpTransport, Transport

log = logging.getLogger(__name__)

# Penalties out of a starting score of 100.
PENALTY_DECRYPTION = 100  # a stream that fails authentication is hostile or broken beyond use
PENALTY_OVERSIZE = 50
PENALTY_MALFORMED = 50
PENALTY_REACTOR_BUG = 5  # probably our fault, but a peer that triggers it repeatedly goes


class SwitchConfig(Protocol):
    """The settings the switch reads (`cybermiles_node.operator.config.P2PConfig` provides them)."""

    @property
    def listen_host(self) -> str: ...
    @property
    def listen_port(self) -> int: ...
    @property
    def external_address(self) -> str: ...
    @property
    def persistent_peers(self) -> Sequence[str]: ...
    @property
    def seeds(self) -> Sequence[str]: ...
    @property
    def seed_mode(self) -> bool: ...
    @property
    def pex(self) -> bool: ...
    @property
    def max_inbound(self) -> int: ...
    @property
    def max_outbound(self) -> int: ...
    @property
    def max_frame_bytes(self) -> int: ...
    @property
    def send_queue_size(self) -> int: ...
    @property
    def ban_seconds(self) -> int: ...


def _fault_penalty(fault: P2PError | None) -> int:
    if isinstance(fault, DecryptionFailed):
        return PENALTY_DECRYPTION
    if isinstance(fault, FrameTooLarge):
        return PENALTY_OVERSIZE
    if isinstance(fault, MalformedFrame):
        return PENALTY_MALFORMED
    return 0


class Switch:
    def __init__(
        self,
        node_key: NodeKey,
        network: str,
        config: SwitchConfig,
        reactors: Sequence[Reactor],
        *,
        moniker: str = "",
        address_book_path: Path | None = None,
        clock: Callable[[], float] = trio.current_time,
        transport: Transport | None = None,
        timing: Timing | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._node_key = node_key
        self._node_id = node_id_of(node_key.public_key)
        self.network = network
        self.config = config
        self.moniker = moniker
        self.timing = timing or Timing()
        self._clock = clock
        self._transport: Transport = transport or TcpTransport()
        self._persistent = [parse_address(a) for a in config.persistent_peers]
        self._persistent_ids = {a.node_id for a in self._persistent}
        self.pex: PexReactor | None = None
        if config.pex or config.seed_mode:
            book = AddressBook(self._node_id, address_book_path)
            self.pex = PexReactor(
                self,
                book,
                seeds=config.seeds,
                seed_mode=config.seed_mode,
                max_outbound=config.max_outbound,
                clock=clock,
                rng=rng or random.Random(),
            )
            reactors = [*reactors, self.pex]
        elif config.seeds:
            log.warning("p2p: seeds configured but peer exchange is off; they are ignored")
        self.reactors = list(reactors)
        self._by_channel = self._route(self.reactors)
        # config.send_queue_size bounds every channel's queue, whatever the reactor asked for.
        self._channels = [
            replace(c, send_queue_capacity=min(c.send_queue_capacity, config.send_queue_size))
            for r in self.reactors
            for c in r.channels
        ]
        self._peers: dict[str, PeerConnection] = {}
        self._dialing: set[str] = set()
        self._inbound_handshakes = 0
        self._scores = ScoreBoard()
        self._bans = BanList(clock)
        self.bans_total = 0  # peers banned since start, for metrics
        self._nursery: trio.Nursery | None = None
        self._node_info: NodeInfo | None = None
        self.listen_addr = ""

    @staticmethod
    def _route(reactors: Sequence[Reactor]) -> dict[int, Reactor]:
        routes: dict[int, Reactor] = {}
        for reactor in reactors:
            for channel in reactor.channels:
                if channel.id == CONTROL or channel.id in routes:
                    raise ValueError(f"channel {channel.id:#04x} claimed twice or reserved")
                routes[channel.id] = reactor
        return routes

    # ----------------------------------------------------------------- public API

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def listening(self) -> bool:
        return self._node_info is not None

    def peers(self) -> list[Peer]:
        return [self._peers[k] for k in sorted(self._peers)]

    def peer(self, node_id: str) -> PeerConnection | None:
        return self._peers.get(node_id)

    def score(self, node_id: str) -> int:
        return self._scores.score(node_id)

    def is_banned(self, node_id_or_ip: str) -> bool:
        return self._bans.is_banned(node_id_or_ip)

    def broadcast(self, channel: int, message: Any) -> None:
        """Enqueue `message` to every peer that serves `channel` (encoded once); peers whose
        queue is full miss it."""
        if channel == CONTROL:
            raise ValueError("the control channel is the switch's own")
        packet = encode_packet(channel, message)
        for node_id in sorted(self._peers):
            self._peers[node_id].send_packet(channel, packet)

    def punish(self, peer: Peer, reason: str, penalty: int) -> None:
        score = self._scores.penalize(peer.node_id, penalty)
        log.info("p2p: peer %s penalised %d (%s), score %d", peer.node_id, penalty, reason, score)
        if score <= 0:
            remote_ip = peer.remote_ip if isinstance(peer, PeerConnection) else None
            self._ban(peer.node_id, remote_ip, reason)

    def stop_peer(self, peer: Peer, reason: str) -> None:
        if isinstance(peer, PeerConnection):
            self._detach(peer, reason)

    async def dial(self, addr: str) -> Peer:
        """Connect to `node_id@host:port` and start the peer; raises DialFailed or
        HandshakeFailed. Needs `run` to be running."""
        return await self._dial(addr)

    async def _dial(self, addr: str) -> PeerConnection:
        try:
            target = parse_address(addr)
        except ValueError as exc:
            raise DialFailed(str(exc)) from None
        self._check_dialable(target)
        self._dialing.add(target.node_id)
        try:
            peer = await self._open(target)
        finally:
            self._dialing.discard(target.node_id)
        nursery = self._nursery
        if nursery is None:
            await peer.aclose()
            raise DialFailed("switch stopped")
        await self._admit_or_close(peer)
        nursery.start_soon(self._run_peer, peer)
        return peer

    def net_info(self) -> dict[str, Any]:
        return {
            "listening": self.listening,
            "listen_addr": self.listen_addr,
            "n_peers": len(self._peers),
            "peers": [
                {
                    "node_id": p.node_id,
                    "listen_addr": p.listen_addr,
                    "outbound": p.outbound,
                    "remote_ip": p.remote_ip,
                    "moniker": p.node_info.moniker,
                    "score": self._scores.score(p.node_id),
                    "send_queue_sizes": p.queues.sizes(),
                }
                for p in (self._peers[k] for k in sorted(self._peers))
            ],
        }

    async def run(self, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, run the reactors, keep persistent peers connected; until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for reactor in self.reactors:
                    nursery.start_soon(reactor.run)
                port = await nursery.start(
                    self._transport.listen,
                    self.config.listen_host,
                    self.config.listen_port,
                    self._accept,
                )
                self._node_info = self._make_node_info(port)
                for address in self._persistent:
                    nursery.start_soon(self._keep_connected, address)
                log.info("p2p: node %s listening on %s", self.node_id, self.listen_addr)
                task_status.started(port)
        finally:
            self._nursery = None
            self._node_info = None
            if self.pex is not None:
                self.pex.book.save()

    # ----------------------------------------------------------------- connecting

    def _make_node_info(self, port: int) -> NodeInfo:
        self.listen_addr = str(HostPort(self.config.listen_host, port))
        advertised = self.config.external_address or self.listen_addr
        parse_host_port(advertised)  # a bad external_address is a config error: fail loudly
        return NodeInfo(
            node_id=self.node_id,
            listen_addr=advertised,
            network=self.network,
            version=P2P_VERSION,
            channels=tuple(sorted(c.id for c in self._channels)),
            moniker=self.moniker,
        )

    def _check_dialable(self, target: NetAddress) -> None:
        if self._node_info is None:
            raise DialFailed("switch is not running")
        if target.node_id == self.node_id:
            raise DialFailed("refusing to dial ourselves")
        if self._bans.is_banned(target.node_id) or self._bans.is_banned(target.host):
            raise DialFailed(f"{target} is banned")
        if target.node_id in self._peers or target.node_id in self._dialing:
            raise DialFailed(f"already connected or dialing {target.node_id}")

    async def _open(self, target: NetAddress) -> PeerConnection:
        try:
            with trio.fail_after(self.timing.handshake_timeout):
                stream, remote_ip = await self._transport.connect(target.host, target.port)
        except (OSError, trio.TooSlowError) as exc:
            raise DialFailed(f"cannot connect to {target}: {exc!r}") from None
        return await self._secure(stream, remote_ip, outbound=True, expected_id=target.node_id)

    async def _secure(
        self, stream: trio.abc.Stream, remote_ip: str, *, outbound: bool, expected_id: str | None
    ) -> PeerConnection:
        """Handshake under the timeout; on any failure close the stream and raise P2PError."""
        assert self._node_info is not None
        try:
            with trio.fail_after(self.timing.handshake_timeout):
                conn, info = await secure_handshake(
                    stream, self._node_key, self._node_info, expected_id=expected_id
                )
        except BaseException as exc:
            await trio.aclose_forcefully(stream)
            if isinstance(exc, HandshakeFailed):
                if exc.ban:
                    self._ban(exc.node_id, remote_ip, exc.reason)
                raise
            if isinstance(exc, P2PError | trio.TooSlowError | trio.BrokenResourceError | OSError):
                raise HandshakeFailed(f"handshake with {remote_ip} failed: {exc!r}") from None
            raise
        return self._new_peer(conn, info, remote_ip, outbound)

    def _new_peer(
        self, conn: SecureConnection, info: NodeInfo, remote_ip: str, outbound: bool
    ) -> PeerConnection:
        return PeerConnection(
            conn,
            info,
            outbound=outbound,
            persistent=info.node_id in self._persistent_ids,
            remote_ip=remote_ip,
            channels=self._channels,
            max_frame_bytes=self.config.max_frame_bytes,
            timing=self.timing,
        )

    async def _accept(self, stream: trio.abc.Stream, remote_ip: str) -> None:
        """Transport handler for one inbound stream; never raises (but Cancelled)."""
        if self._bans.is_banned(remote_ip) or self._inbound_count() >= self.config.max_inbound:
            await trio.aclose_forcefully(stream)
            return
        self._inbound_handshakes += 1
        try:
            peer = await self._secure(stream, remote_ip, outbound=False, expected_id=None)
        except P2PError as exc:
            log.debug("p2p: inbound from %s refused: %s", remote_ip, exc)
            return
        except Exception:
            log.exception("p2p: inbound handshake from %s crashed", remote_ip)
            return
        finally:
            self._inbound_handshakes -= 1
        try:
            await self._admit_or_close(peer)
        except DialFailed as exc:
            log.debug("p2p: inbound peer %s refused: %s", peer.node_id, exc)
            return
        # In this task: transports close the stream when their handler returns.
        await self._run_peer(peer)

    def _inbound_count(self) -> int:
        registered = sum(1 for p in self._peers.values() if not p.outbound)
        return registered + self._inbound_handshakes

    async def _admit_or_close(self, peer: PeerConnection) -> None:
        try:
            self._admit(peer)
        except DialFailed:
            await peer.aclose()
            raise

    def _admit(self, peer: PeerConnection) -> None:
        """Register the peer and tell the reactors, or raise DialFailed to refuse it."""
        if peer.node_id == self.node_id:
            raise DialFailed("connected to ourselves")
        if self._bans.is_banned(peer.node_id):
            raise DialFailed(f"{peer.node_id} is banned")
        existing = self._peers.get(peer.node_id)
        if existing is not None:
            if not self._preferred(peer) or self._preferred(existing):
                raise DialFailed(f"duplicate connection to {peer.node_id}")
            self._detach(existing, "replaced by a simultaneous connection")
        if not peer.outbound and self._inbound_count() >= self.config.max_inbound:
            raise DialFailed("too many inbound peers")
        self._peers[peer.node_id] = peer
        log.info("p2p: peer %r connected", peer)
        for reactor in self.reactors:
            self._call_reactor(reactor, "add_peer", peer)

    def _preferred(self, peer: PeerConnection) -> bool:
        """Of two connections between the same nodes, keep the one the lower id dialed."""
        return (self.node_id < peer.node_id) == peer.outbound

    async def _run_peer(self, peer: PeerConnection) -> None:
        try:
            await peer.run(lambda channel, message: self._deliver(peer, channel, message))
        finally:
            penalty = _fault_penalty(peer.fault)
            if penalty:
                self.punish(peer, str(peer.fault), penalty)
            self._detach(peer, peer.stop_reason or "stopped")
            await peer.aclose()

    def _detach(self, peer: PeerConnection, reason: str) -> None:
        """Stop the peer and tell the reactors, exactly once."""
        peer.stop(reason)
        if peer.detached:
            return
        peer.detached = True
        if self._peers.get(peer.node_id) is peer:
            del self._peers[peer.node_id]
        log.info("p2p: peer %r disconnected: %s", peer, peer.stop_reason)
        for reactor in self.reactors:
            self._call_reactor(reactor, "remove_peer", peer, peer.stop_reason or reason)

    @staticmethod
    def _call_reactor(reactor: Reactor, method: str, *args: Any) -> None:
        try:
            getattr(reactor, method)(*args)
        except Exception:  # a reactor bug must not take the switch down
            log.exception("p2p: reactor %s.%s failed", reactor.name, method)

    async def _deliver(self, peer: PeerConnection, channel: int, message: Any) -> None:
        reactor = self._by_channel[channel]
        try:
            await reactor.receive(channel, peer, message)
        except PeerMisbehaved as exc:
            self.punish(peer, f"{reactor.name}: {exc.reason}", exc.penalty)
        except Exception:
            log.exception("p2p: reactor %s failed on a message from %r", reactor.name, peer)
            self.punish(peer, f"{reactor.name} failed on its message", PENALTY_REACTOR_BUG)

    def _ban(self, node_id: str | None, remote_ip: str | None, reason: str) -> None:
        seconds = self.config.ban_seconds
        if remote_ip is not None:
            self._bans.ban_ip(remote_ip, seconds)
        if node_id is not None:
            self._bans.ban(node_id, seconds)
            self._scores.reset(node_id)  # a fresh start once the ban is over
            peer = self._peers.get(node_id)
            if peer is not None:
                self._detach(peer, f"banned: {reason}")
        self.bans_total += 1
        log.warning("p2p: banned %s / %s for %ds: %s", node_id, remote_ip, seconds, reason)

    async def _keep_connected(self, address: NetAddress) -> None:
        """Redial a persistent peer whenever it is not connected.

        The delay doubles per failed dial and per connection that dies young (a peer that
        accepts and drops us at once must not be hammered); a connection that lasted longer
        than the cap resets it."""
        t = self.timing
        cap = t.redial_max_loopback if is_loopback(address.host) else t.redial_max
        delay = t.redial_base
        while True:
            peer = self._peers.get(address.node_id)
            if peer is None:
                try:
                    peer = await self._dial(str(address))
                except P2PError as exc:
                    log.info("p2p: persistent peer %s: %s; retry in %.1fs", address, exc, delay)
                    await trio.sleep(delay)
                    delay = min(delay * 2, cap)
                    continue
            connected_at = trio.current_time()
            await peer.closed.wait()
            if trio.current_time() - connected_at >= cap:
                delay = t.redial_base
            else:
                await trio.sleep(delay)
                delay = min(delay * 2, cap)
