"""One peer connection: the trio shell around the sans-I/O handshake, codecs and send queues.

```
             ┌──────────── PeerConnection ─────────────┐
reactor ──send()──▶ SendQueues (bounded, per channel) ──▶ send loop ──seal──▶ stream
reactor ◀─deliver── receive loop ◀─decode_packet── open ◀── FrameReader ◀── stream
```
`secure_handshake` authenticates a fresh stream and exchanges NodeInfo; the result becomes a
`PeerConnection`, whose `run` drives exactly two tasks, a send loop and a receive loop, until
the peer is stopped. `run` never raises (except trio's cancellation): whatever the peer does,
the connection ends with `stop_reason` set and, when the peer was at fault, `fault` holding the
`P2PError` for the switch to score before it closes the stream.

The send loop also keeps the connection alive: after `ping_interval` without receiving
anything it queues a ping on the CONTROL channel; if nothing at all arrives within
`pong_timeout` after that, the peer is dead and dropped. A send that cannot complete within
`send_timeout` (the peer stopped reading) also drops the peer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import trio

from p2p.abc import CONTROL, ChannelDescriptor, NodeKey
from p2p.errors import ConnectionClosed, MalformedFrame, P2PError
from p2p.framing import FrameDecoder, decode_packet, encode_frame, encode_packet
from p2p.handshake import (
    NODE_INFO_MAX_BYTES,
    TAG_BYTES,
    Handshake,
    NodeInfo,
    Session,
    check_peer_info,
)
from p2p.netaddr import HostPort, is_unspecified, parse_host_port

log = logging.getLogger(__name__)

READ_CHUNK = 65536
COALESCE_BYTES = 256 * 1024  # queued packets written together, at most about this much
HANDSHAKE_FRAME_LIMIT = NODE_INFO_MAX_BYTES + TAG_BYTES
AGING_PER_PICK = 1  # effective priority a waiting queue gains each time another queue is served

_PING, _PONG = 0, 1
PING_PACKET = encode_packet(CONTROL, _PING)
PONG_PACKET = encode_packet(CONTROL, _PONG)
CONTROL_CHANNEL = ChannelDescriptor(
    CONTROL, priority=1000, send_queue_capacity=4, max_message_bytes=16
)


@dataclass(frozen=True)
class Timing:
    """Every timeout of the network layer, in seconds (tests shrink or fake them)."""

    handshake_timeout: float = 10.0  # for connect, then again for handshake + NodeInfo
    ping_interval: float = 10.0  # idle time before we ping
    pong_timeout: float = 20.0  # silence after a ping that declares the peer dead
    send_timeout: float = 10.0  # one write (of the frames queued together)
    redial_base: float = 0.5  # first persistent-peer redial delay, doubled per failure
    redial_max_loopback: float = 5.0
    redial_max: float = 60.0


class FrameReader:
    """Frames from a stream, through a `FrameDecoder` (limit checked before bodies are read)."""

    def __init__(self, stream: trio.abc.ReceiveStream, max_frame_bytes: int) -> None:
        self._stream = stream
        self.decoder = FrameDecoder(max_frame_bytes)

    async def next_frame(self) -> bytes:
        while (frame := self.decoder.next_frame()) is None:
            data = await self._stream.receive_some(READ_CHUNK)
            if not data:
                raise ConnectionClosed("stream closed by peer")
            self.decoder.append(data)
        return frame


class SecureConnection:
    """An authenticated stream: `send` seals a plaintext frame, `receive` opens the next one."""

    def __init__(self, stream: trio.abc.Stream, reader: FrameReader, session: Session) -> None:
        self.stream = stream
        self._reader = reader
        self.session = session

    def set_frame_limit(self, max_plaintext_bytes: int) -> None:
        self._reader.decoder.max_frame_bytes = max_plaintext_bytes + TAG_BYTES

    async def send(self, plaintext: bytes) -> None:
        await self.stream.send_all(self.session.send.seal(plaintext))

    async def send_many(self, plaintexts: list[bytes]) -> None:
        """Seal each frame (in order: the nonce counts frames) and write them in one go."""
        seal = self.session.send.seal
        await self.stream.send_all(b"".join([seal(p) for p in plaintexts]))

    async def receive(self) -> bytes:
        return self.session.receive.open(await self._reader.next_frame())

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


async def secure_handshake(
    stream: trio.abc.Stream,
    node_key: NodeKey,
    our_info: NodeInfo,
    *,
    expected_id: str | None,
) -> tuple[SecureConnection, NodeInfo]:
    """Authenticate `stream` and exchange NodeInfo; raises P2PError subclasses on failure.

    The caller applies the timeout and closes the stream on failure."""
    reader = FrameReader(stream, HANDSHAKE_FRAME_LIMIT)
    handshake = Handshake(node_key, expected_id=expected_id)
    await stream.send_all(encode_frame(handshake.hello()))
    await stream.send_all(handshake.receive_hello(await reader.next_frame()))
    session = handshake.receive_auth(await reader.next_frame())
    conn = SecureConnection(stream, reader, session)
    await conn.send(our_info.to_wire())
    their_info = NodeInfo.from_wire(await conn.receive())
    check_peer_info(our_info, their_info, session.peer_id)
    return conn, their_info


class SendQueues:
    """Bounded per-channel queues of encoded packets, drained by priority with aging.

    `pop` serves the non-empty queue with the highest `priority + waited * AGING_PER_PICK`
    (ties: higher priority, then lower channel id), where `waited` counts the picks a queue
    has lost while non-empty. High priority goes first; a low-priority queue behind a busy
    one is served at least once every `(priority gap + 1)` picks, so it is never starved.
    """

    def __init__(self, channels: Iterable[ChannelDescriptor]) -> None:
        ordered = sorted(channels, key=lambda c: (-c.priority, c.id))
        self._descriptors = {c.id: c for c in ordered}
        self._queues: dict[int, deque[bytes]] = {c.id: deque() for c in ordered}
        self._waited: dict[int, int] = {c.id: 0 for c in ordered}

    def put(self, channel: int, packet: bytes) -> bool:
        queue = self._queues[channel]
        if len(queue) >= self._descriptors[channel].send_queue_capacity:
            return False
        queue.append(packet)
        return True

    def pop(self) -> tuple[int, bytes] | None:
        best: int | None = None
        best_key = (0, 0)
        for channel, queue in self._queues.items():  # ordered by priority, then id
            if not queue:
                continue
            key = (
                self._descriptors[channel].priority + self._waited[channel] * AGING_PER_PICK,
                self._descriptors[channel].priority,
            )
            if best is None or key > best_key:
                best, best_key = channel, key
        if best is None:
            return None
        for channel, queue in self._queues.items():
            self._waited[channel] = 0 if channel == best or not queue else self._waited[channel] + 1
        return best, self._queues[best].popleft()

    def empty(self) -> bool:
        return not any(self._queues.values())

    def sizes(self) -> dict[int, int]:
        return {c: len(q) for c, q in sorted(self._queues.items())}

    def clear(self) -> None:
        for queue in self._queues.values():
            queue.clear()


def dialable_listen_addr(advertised: str, remote_ip: str) -> str:
    """A peer listening on 0.0.0.0 / :: is reachable at the address it connected from."""
    hp = parse_host_port(advertised)
    return str(HostPort(remote_ip, hp.port)) if is_unspecified(hp.host) else str(hp)


Deliver = Callable[[int, Any], Awaitable[None]]


class PeerConnection:
    """A connected, authenticated peer (implements `p2p.abc.Peer`)."""

    def __init__(
        self,
        conn: SecureConnection,
        info: NodeInfo,
        *,
        outbound: bool,
        persistent: bool,
        remote_ip: str,
        channels: Iterable[ChannelDescriptor],
        max_frame_bytes: int,
        timing: Timing,
    ) -> None:
        channels = list(channels)
        self.node_id = info.node_id
        self.listen_addr = dialable_listen_addr(info.listen_addr, remote_ip)
        self.outbound = outbound
        self.persistent = persistent
        self.remote_ip = remote_ip
        self.node_info = info
        self.state: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.fault: P2PError | None = None  # what the peer did wrong, if it ended the connection
        self.detached = False  # reactors were told the peer is gone
        self.closed = trio.Event()
        self.cancel_scope = trio.CancelScope()
        self._conn = conn
        self._conn.set_frame_limit(max_frame_bytes)
        self._timing = timing
        self._limits = {c.id: c.max_message_bytes for c in channels}
        self._limits[CONTROL] = CONTROL_CHANNEL.max_message_bytes
        # Only channels both sides serve: the peer drops us for a packet on any other one.
        self._sendable = (set(info.channels) & set(self._limits)) | {CONTROL}
        self.queues = SendQueues([*channels, CONTROL_CHANNEL])
        self._wakeup = trio.Event()
        self._last_received = trio.current_time()
        self._ping_sent_at: float | None = None

    def __repr__(self) -> str:
        direction = "out" if self.outbound else "in"
        return f"<Peer {self.node_id[:12]} {direction} {self.remote_ip}>"

    # ----------------------------------------------------------------- Peer protocol

    def send(self, channel: int, message: Any) -> bool:
        if channel == CONTROL:
            return False  # the switch's own
        packet = encode_packet(channel, message)
        limit = self._limits.get(channel)
        if limit is None or len(packet) > limit:
            log.error(
                "%r: refusing %d-byte message on channel %#04x (limit %s)",
                self,
                len(packet),
                channel,
                limit,
            )
            return False
        return self.send_packet(channel, packet)

    def send_packet(self, channel: int, packet: bytes) -> bool:
        """Enqueue an already encoded packet (broadcast encodes once for all peers)."""
        if self.stop_reason is not None or channel not in self._sendable:
            return False
        if not self.queues.put(channel, packet):
            return False
        self._wakeup.set()
        return True

    # ----------------------------------------------------------------- lifecycle

    def stop(self, reason: str) -> None:
        """End the connection (idempotent; the first reason is kept)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.queues.clear()
        self.cancel_scope.cancel()

    async def aclose(self) -> None:
        """Close the stream (after `run`); `closed` is set from then on."""
        try:
            await self._conn.aclose()
        finally:
            self.closed.set()

    async def run(self, deliver: Deliver) -> None:
        """Run the send and receive loops until stopped; never raises (but Cancelled).

        The caller closes the stream afterwards, once it has settled the peer's account, so
        the remote side never sees the close before the consequences are recorded."""
        with self.cancel_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guard, self._receive_loop, deliver)
                nursery.start_soon(self._guard, self._send_loop)

    async def _guard(self, loop: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await loop(*args)
        except P2PError as exc:
            if not isinstance(exc, ConnectionClosed):
                self.fault = exc
            self.stop(f"{type(exc).__name__}: {exc}")
        except trio.TooSlowError:
            self.stop("send timed out")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.stop(f"connection lost: {exc!r}")
        except Exception:  # a bug of ours: drop the peer, keep the node
            log.exception("%r: unexpected error in the connection loop", self)
            self.stop("internal error")

    # ----------------------------------------------------------------- loops

    async def _receive_loop(self, deliver: Deliver) -> None:
        while True:
            plaintext = await self._conn.receive()
            # Any authenticated frame proves the peer alive, whatever it carries.
            self._last_received = trio.current_time()
            self._ping_sent_at = None
            channel, message = decode_packet(plaintext, self._limits)
            if channel == CONTROL:
                self._on_control(message)
            else:
                await deliver(channel, message)

    def _on_control(self, message: Any) -> None:
        if type(message) is not int or message not in (_PING, _PONG):
            raise MalformedFrame("unknown control message")
        if message == _PING:
            self.send_packet(CONTROL, PONG_PACKET)  # a full control queue already holds pongs

    async def _send_loop(self) -> None:
        while True:
            wait = self._keepalive()
            item = self.queues.pop()
            if item is not None:
                # Everything queued goes out in one write (up to COALESCE_BYTES): one frame per
                # write cost a syscall and a whole scheduler pass per vote or block part.
                packets, size = [item[1]], len(item[1])
                while size < COALESCE_BYTES and (item := self.queues.pop()) is not None:
                    packets.append(item[1])
                    size += len(item[1])
                with trio.fail_after(self._timing.send_timeout):
                    await self._conn.send_many(packets)
                continue
            self._wakeup = trio.Event()  # no await since pop(): a concurrent send() sets this one
            with trio.move_on_after(wait):
                await self._wakeup.wait()

    def _keepalive(self) -> float:
        """Queue a ping when idle; raise when a ping went unanswered. Returns the seconds until
        the keepalive needs looking at again."""
        now = trio.current_time()
        t = self._timing
        if self._ping_sent_at is not None:
            left = self._ping_sent_at + t.pong_timeout - now
            if left <= 0:
                raise ConnectionClosed(f"no answer to ping within {t.pong_timeout}s")
            return left
        idle = now - self._last_received
        if idle < t.ping_interval:
            return t.ping_interval - idle
        self.send_packet(CONTROL, PING_PACKET)
        self._ping_sent_at = now
        return t.pong_timeout
