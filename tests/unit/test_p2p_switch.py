"""The switch: connections, duplicates, bans, scores, queues, keepalive, redial.

Nodes run on a `MemoryNetwork` (one fake IP each) under trio's MockClock with autojump, so
timeouts of seconds or minutes cost no real time and waits are conditions, never sleeps. Hostile
peers are played by the test itself through the package's own handshake. One test runs over
real TCP on 127.0.0.1.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from consensus.keys import Ed25519Key
from cybermiles_node.operator.config import P2PConfig
from p2p import (
    CONSENSUS_VOTE,
    MEMPOOL,
    ChannelDescriptor,
    DialFailed,
    HandshakeFailed,
    MemoryNetwork,
    P2PError,
    PeerMisbehaved,
    Switch,
)
from p2p.connection import FrameReader, SecureConnection, SendQueues, secure_handshake
from p2p.framing import encode_frame, encode_packet
from p2p.handshake import Handshake, NodeInfo
from p2p.policy import INITIAL_SCORE
from p2p.testing import RecordingReactor, SimNode, run_simulated, wait_until
from p2p.transport import MemoryTransport

NETWORK = "cmt-test-1/0xgenesis"
VOTES = ChannelDescriptor(CONSENSUS_VOTE, 10, send_queue_capacity=8, max_message_bytes=4096)
TXS = ChannelDescriptor(MEMPOOL, 4, send_queue_capacity=64, max_message_bytes=4096)


run = run_simulated


@dataclass
class Node(SimNode):
    key: Ed25519Key = field(default_factory=Ed25519Key.generate)

    @property
    def app(self) -> RecordingReactor:
        app: RecordingReactor = self.reactors["app"]
        return app


_hosts = iter(f"10.0.0.{i}" for i in range(1, 255))


def make_node(
    net: MemoryNetwork,
    *,
    key: Ed25519Key | None = None,
    host: str | None = None,
    network: str = NETWORK,
    on_receive: Callable[[int, Any, Any], None] | None = None,
    **config: Any,
) -> Node:
    key = key or Ed25519Key.generate()
    host = host or next(_hosts)
    config.setdefault("listen_port", 0)
    config.setdefault("pex", False)
    app = RecordingReactor("app", [VOTES, TXS], on_receive)
    switch = Switch(
        key,
        network,
        P2PConfig(listen_host=host, **config),
        [app],
        moniker=f"node-{host}",
        transport=net.transport(host),
    )
    return Node(switch, host, {"app": app}, key=key)


async def started(nursery: trio.Nursery, net: MemoryNetwork, **kw: Any) -> Node:
    node = make_node(net, **kw)
    await node.start(nursery)
    return node


async def connect(a: Node, b: Node) -> None:
    await a.switch.dial(b.addr)
    await wait_until(lambda: a.node_id in b.peer_ids())


class Intruder:
    """A peer driven by the test: real handshake, then whatever bytes the test wants."""

    def __init__(self, net: MemoryNetwork, host: str = "10.9.9.9", network: str = NETWORK) -> None:
        self.key = Ed25519Key.generate()
        self.host = host
        self.network = network
        self.transport: MemoryTransport = net.transport(host)

    async def connect(self, target: Node) -> SecureConnection:
        stream, _ = await self.transport.connect(target.host, target.port)
        info = NodeInfo(self.key.node_id, f"{self.host}:1", self.network, channels=(MEMPOOL,))
        conn, _ = await secure_handshake(stream, self.key, info, expected_id=target.key.node_id)
        await wait_until(lambda: self.key.node_id in target.peer_ids())
        return conn


async def closed_by_peer(conn: SecureConnection) -> bool:
    """Read until the other side closes the stream (pings may arrive first)."""
    with trio.fail_after(120):
        while await conn.stream.receive_some(65536):
            pass
    return True


# --------------------------------------------------------------------------- connecting


def test_connect_in_both_directions_and_exchange_messages() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b, c = [await started(nursery, net) for _ in range(3)]
        await connect(a, b)  # a dials b
        await connect(c, a)  # c dials a
        pa = {p.node_id: p for p in a.switch.peers()}
        assert pa[b.node_id].outbound and not pa[c.node_id].outbound
        assert a.peer_ids() == sorted(a.peer_ids())
        assert pa[b.node_id].send(CONSENSUS_VOTE, {"vote": b"\x01"})
        b.app.peers[a.node_id].send(MEMPOOL, [b"tx"])
        a.switch.broadcast(CONSENSUS_VOTE, "to all")
        await wait_until(lambda: len(b.app.received) == 2 and len(a.app.received) == 1)
        assert b.app.received == [
            (a.node_id, CONSENSUS_VOTE, {"vote": b"\x01"}),
            (a.node_id, CONSENSUS_VOTE, "to all"),
        ]
        assert a.app.received == [(b.node_id, MEMPOOL, [b"tx"])]
        await wait_until(lambda: len(c.app.received) == 1)
        info = a.switch.net_info()
        assert info["listening"] and info["listen_addr"] == f"{a.host}:{a.port}"
        entry = next(p for p in info["peers"] if p["node_id"] == c.node_id)
        assert entry["remote_ip"] == c.host and entry["listen_addr"] == f"{c.host}:{c.port}"
        assert entry["moniker"] == f"node-{c.host}" and entry["score"] == INITIAL_SCORE
        assert entry["outbound"] is False and entry["send_queue_sizes"][MEMPOOL] == 0

    run(test)


def test_wrong_expected_id_is_dropped_without_a_ban() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b = await started(nursery, net), await started(nursery, net)
        impostor = f"{'ab' * 20}@{b.host}:{b.port}"
        with pytest.raises(HandshakeFailed, match="expected node"):
            await a.switch.dial(impostor)
        assert a.peer_ids() == [] and not a.switch.is_banned(b.host)
        await wait_until(lambda: b.peer_ids() == [])
        await connect(a, b)  # the real id still connects

    run(test)


def test_wrong_network_is_dropped_and_banned() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net)
        stranger = await started(nursery, net, network="other-chain/0xfeed")
        with pytest.raises(HandshakeFailed, match="network"):
            await stranger.switch.dial(a.addr)
        await wait_until(lambda: a.switch.is_banned(stranger.key.node_id))
        assert a.switch.is_banned(stranger.host) and a.peer_ids() == []
        # Banned both ways: a refuses to dial it, and it is refused inbound.
        with pytest.raises(DialFailed, match="banned"):
            await a.switch.dial(stranger.addr)

    run(test)


def test_self_and_duplicate_connections_are_refused() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b = await started(nursery, net), await started(nursery, net)
        with pytest.raises(DialFailed, match="ourselves"):
            await a.switch.dial(a.addr)
        await connect(a, b)
        with pytest.raises(DialFailed, match="already"):
            await a.switch.dial(b.addr)
        with pytest.raises(DialFailed, match="already"):
            await b.switch.dial(a.addr)
        assert a.peer_ids() == [b.node_id] and b.peer_ids() == [a.node_id]

    run(test)


def test_simultaneous_dials_leave_exactly_one_connection() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b = await started(nursery, net), await started(nursery, net)
        outcomes: list[str] = []

        async def dial(x: Node, y: Node) -> None:
            try:
                await x.switch.dial(y.addr)
                outcomes.append("ok")
            except DialFailed as exc:
                outcomes.append(str(exc))

        async with trio.open_nursery() as dials:
            dials.start_soon(dial, a, b)
            dials.start_soon(dial, b, a)

        def settled() -> bool:
            pa, pb = a.switch.peers(), b.switch.peers()
            # One connection each, and the same one: outbound on one side, inbound on the other.
            return len(pa) == len(pb) == 1 and pa[0].outbound != pb[0].outbound

        await wait_until(settled)
        assert "ok" in outcomes
        lower, _ = sorted((a, b), key=lambda n: n.key.node_id)
        assert lower.switch.peers()[0].outbound  # the connection the lower id dialed survives

    run(test)


def test_a_large_first_message_is_not_taken_for_an_oversize_handshake_frame() -> None:
    """A peer may send its first messages right behind its NodeInfo, before it has read ours:
    they arrive in the same read as the last handshake frame, whose size limit is small."""
    big = ChannelDescriptor(MEMPOOL, 4, send_queue_capacity=4, max_message_bytes=65536)

    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        host = next(_hosts)
        app = RecordingReactor("app", [big])
        config = P2PConfig(listen_host=host, listen_port=0, pex=False)
        switch = Switch(
            Ed25519Key.generate(), NETWORK, config, [app], transport=net.transport(host)
        )
        a = await SimNode(switch, host).start(nursery)
        intruder = Intruder(net)
        stream, _ = await intruder.transport.connect(a.host, a.port)
        reader = FrameReader(stream, 1 << 20)
        handshake = Handshake(intruder.key, expected_id=a.node_id)
        await stream.send_all(encode_frame(handshake.hello()))
        await stream.send_all(handshake.receive_hello(await reader.next_frame()))
        session = handshake.receive_auth(await reader.next_frame())
        info = NodeInfo(intruder.key.node_id, "10.9.9.9:1", NETWORK, channels=(MEMPOOL,))
        first = encode_packet(MEMPOOL, b"m" * 30_000)
        await stream.send_all(session.send.seal(info.to_wire()) + session.send.seal(first))
        await wait_until(lambda: app.received == [(intruder.key.node_id, MEMPOOL, b"m" * 30_000)])

    run(test)


def test_max_inbound_is_enforced() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net, max_inbound=1)
        b, c = await started(nursery, net), await started(nursery, net)
        await connect(b, a)
        with pytest.raises(HandshakeFailed):
            await c.switch.dial(a.addr)
        assert a.peer_ids() == [b.node_id]

    run(test)


# --------------------------------------------------------------------------- hostile peers


def test_garbage_before_the_handshake_is_dropped() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net)
        stream, _ = await net.transport("10.6.6.6").connect(a.host, a.port)
        await stream.send_all(os.urandom(2000))
        with trio.fail_after(30):
            while await stream.receive_some():
                pass  # a's hello, then EOF
        assert a.peer_ids() == []

    run(test)


def test_silent_peer_times_out_in_the_handshake() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net)
        stream, _ = await net.transport("10.6.6.7").connect(a.host, a.port)
        start = trio.current_time()
        with trio.fail_after(60):
            while await stream.receive_some():
                pass
        assert trio.current_time() - start == pytest.approx(
            a.switch.timing.handshake_timeout, abs=0.1
        )

    run(test)


def test_tampered_ciphertext_drops_and_bans_the_peer() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net)
        intruder = Intruder(net)
        conn = await intruder.connect(a)
        frame = bytearray(conn.session.send.seal(encode_packet(MEMPOOL, [b"tx"])))
        frame[-1] ^= 1
        await conn.stream.send_all(bytes(frame))
        assert await closed_by_peer(conn)
        assert a.switch.is_banned(intruder.key.node_id) and a.switch.is_banned(intruder.host)
        assert a.app.received == []

    run(test)


def test_random_bytes_after_the_handshake_cannot_hurt_the_others() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b = await started(nursery, net), await started(nursery, net)
        await connect(b, a)
        rng = random.Random(7)
        # Random bytes whose "header" fits the limit: the body fails decryption, ban at once.
        intruder = Intruder(net, host="10.9.9.1")
        conn = await intruder.connect(a)
        await conn.stream.send_all((60).to_bytes(4, "big") + rng.randbytes(60))
        assert await closed_by_peer(conn)
        assert a.switch.is_banned(intruder.key.node_id)
        # Random bytes whose "header" is over the limit: -50 each time, banned the second time.
        intruder = Intruder(net, host="10.9.9.2")
        for expected_score in (50, INITIAL_SCORE):  # the score restarts once banned
            conn = await intruder.connect(a)
            await conn.stream.send_all(bytes([rng.randrange(1, 256)]) + rng.randbytes(63))
            assert await closed_by_peer(conn)
            assert a.switch.score(intruder.key.node_id) == expected_score
        assert a.switch.is_banned(intruder.key.node_id)
        # The node still serves its honest peer.
        assert a.peer_ids() == [b.node_id]
        b.app.peers[a.node_id].send(MEMPOOL, ["still here"])
        await wait_until(lambda: a.app.received == [(b.node_id, MEMPOOL, ["still here"])])

    run(test)


def test_oversize_frame_drops_and_scores_then_bans_on_repeat() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net, max_frame_bytes=1024)
        intruder = Intruder(net)
        for attempt in (1, 2):
            conn = await intruder.connect(a)
            await conn.stream.send_all((10**6).to_bytes(4, "big"))  # header only: never a body
            assert await closed_by_peer(conn)
            if attempt == 1:
                assert a.switch.score(intruder.key.node_id) == 50
                assert not a.switch.is_banned(intruder.key.node_id)
        assert a.switch.is_banned(intruder.key.node_id)
        with pytest.raises(P2PError):  # refused at the door (IP ban)
            await intruder.connect(a)

    run(test)


def test_undecodable_packet_and_unknown_channel_are_malformed() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net)
        intruder = Intruder(net)
        for plaintext in (b"\xc1\xc1", encode_packet(0x77, "no such channel")):
            conn = await intruder.connect(a)
            await conn.send(plaintext)
            assert await closed_by_peer(conn)
        assert a.switch.is_banned(intruder.key.node_id)
        assert a.app.received == []

    run(test)


def test_reactor_punishment_lowers_the_score_until_a_ban() -> None:
    def judge(channel: int, peer: Any, message: Any) -> None:
        if message == "bad":
            raise PeerMisbehaved("bad message", penalty=40)

    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net, on_receive=judge)
        b = await started(nursery, net)
        await connect(b, a)
        peer = b.app.peers[a.node_id]
        peer.send(MEMPOOL, "bad")
        peer.send(MEMPOOL, "bad")
        peer.send(MEMPOOL, "fine")
        await wait_until(lambda: len(a.app.received) == 3)
        assert a.switch.score(b.node_id) == 20 and a.peer_ids() == [b.node_id]
        peer.send(MEMPOOL, "bad")
        await wait_until(lambda: a.peer_ids() == [] and b.peer_ids() == [])
        assert a.switch.is_banned(b.node_id) and a.switch.is_banned(b.host)
        assert a.app.removed[-1][1].startswith("banned")
        with pytest.raises(HandshakeFailed):
            await b.switch.dial(a.addr)
        # The ban ends after ban_seconds.
        await trio.sleep(P2PConfig().ban_seconds)
        await connect(b, a)
        assert a.switch.score(b.node_id) == INITIAL_SCORE

    run(test)


def test_a_crashing_reactor_costs_the_peer_little_and_the_node_nothing() -> None:
    def buggy(channel: int, peer: Any, message: Any) -> None:
        raise ZeroDivisionError("reactor bug")

    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net, on_receive=buggy)
        b = await started(nursery, net)
        await connect(b, a)
        b.app.peers[a.node_id].send(MEMPOOL, "x")
        b.app.peers[a.node_id].send(MEMPOOL, "y")
        await wait_until(lambda: len(a.app.received) == 2)
        assert a.switch.score(b.node_id) == INITIAL_SCORE - 10
        assert a.peer_ids() == [b.node_id]

    run(test)


# --------------------------------------------------------------------------- queues, priorities


def test_send_queues_are_bounded() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b = await started(nursery, net), await started(nursery, net)
        await connect(a, b)
        (peer,) = a.switch.peers()
        # No checkpoint in between: the send loop cannot drain, the queue fills up.
        accepted = [peer.send(CONSENSUS_VOTE, i) for i in range(VOTES.send_queue_capacity + 3)]
        assert accepted == [True] * VOTES.send_queue_capacity + [False] * 3
        assert a.switch.net_info()["peers"][0]["send_queue_sizes"][CONSENSUS_VOTE] == 8
        assert peer.send(MEMPOOL, "other channels are independent")
        assert not peer.send(CONSENSUS_VOTE, "x" * 5000)  # over the channel's message limit
        await wait_until(lambda: len(b.app.received) == VOTES.send_queue_capacity + 1)
        assert peer.send(CONSENSUS_VOTE, "room again")
        a.switch.stop_peer(peer, "test")
        assert not peer.send(CONSENSUS_VOTE, "closed")

    run(test)


def test_nothing_is_sent_on_a_channel_the_peer_does_not_serve() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await started(nursery, net)
        host = next(_hosts)
        txs_only = RecordingReactor("txs", [TXS])
        lean = Switch(
            Ed25519Key.generate(),
            NETWORK,
            P2PConfig(listen_host=host, listen_port=0, pex=False),
            [txs_only],
            transport=net.transport(host),
        )
        b = await SimNode(lean, host).start(nursery)
        await a.switch.dial(b.addr)
        await wait_until(lambda: len(txs_only.peers) == 1)
        (peer,) = a.switch.peers()
        assert not peer.send(CONSENSUS_VOTE, "b has no vote channel")  # it would drop us
        a.switch.broadcast(CONSENSUS_VOTE, "nor by broadcast")
        assert peer.send(MEMPOOL, "shared")
        await wait_until(lambda: txs_only.received == [(a.node_id, MEMPOOL, "shared")])
        assert a.switch.score(b.node_id) == b.switch.score(a.node_id) == INITIAL_SCORE
        with pytest.raises(ValueError):
            a.switch.broadcast(0xFF, "control is the switch's own")

    run(test)


def test_channel_claims_are_checked() -> None:
    with pytest.raises(ValueError):
        ChannelDescriptor(256, 1, 1, 1)
    with pytest.raises(ValueError):
        ChannelDescriptor(1, 0, 1, 1)
    twice = [RecordingReactor("x", [TXS]), RecordingReactor("y", [TXS])]
    with pytest.raises(ValueError, match="claimed twice"):
        Switch(Ed25519Key.generate(), NETWORK, P2PConfig(pex=False), twice)


def test_config_send_queue_size_caps_every_channel() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b = await started(nursery, net, send_queue_size=2), await started(nursery, net)
        await connect(a, b)
        (peer,) = a.switch.peers()
        assert [peer.send(MEMPOOL, i) for i in range(3)] == [True, True, False]

    run(test)


def test_priority_queues_serve_high_first_without_starving_low() -> None:
    hi = ChannelDescriptor(1, priority=10, send_queue_capacity=100, max_message_bytes=100)
    mid = ChannelDescriptor(2, priority=4, send_queue_capacity=100, max_message_bytes=100)
    low = ChannelDescriptor(3, priority=1, send_queue_capacity=100, max_message_bytes=100)
    queues = SendQueues([low, mid, hi])
    assert queues.pop() is None
    for channel in (low, mid, hi):
        for i in range(30):
            queues.put(channel.id, bytes([channel.id, i]))
    order = [item[0] for item in iter(queues.pop, None)]
    assert order[:7] == [1] * 7  # the busy high-priority queue goes first...
    assert order[7] == 2  # ...until mid has waited out the priority gap
    first_low = order.index(3)
    assert first_low < 15  # low is slowed down, not starved
    assert sorted(order) == [1] * 30 + [2] * 30 + [3] * 30
    assert queues.empty()


def test_priorities_on_a_live_connection() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b = await started(nursery, net), await started(nursery, net)
        await connect(a, b)
        (peer,) = a.switch.peers()
        for i in range(40):
            peer.send(MEMPOOL, i)
        for i in range(VOTES.send_queue_capacity):
            peer.send(CONSENSUS_VOTE, i)
        await wait_until(lambda: len(b.app.received) == 48)
        channels = [channel for _, channel, _ in b.app.received]
        assert channels[:7] == [CONSENSUS_VOTE] * 7
        assert channels.index(MEMPOOL) == 7  # aged past the vote queue once
        assert channels[8] == CONSENSUS_VOTE

    run(test)


# --------------------------------------------------------------------------- liveness


def test_keepalive_holds_idle_connections_and_drops_dead_peers() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b = await started(nursery, net), await started(nursery, net)
        await connect(a, b)
        await trio.sleep(600)  # idle for ten (virtual) minutes: pings keep it up
        assert a.peer_ids() == [b.node_id]
        intruder = Intruder(net)
        conn = await intruder.connect(a)  # handshakes, then never answers anything
        start = trio.current_time()
        assert await closed_by_peer(conn)
        t = a.switch.timing
        assert trio.current_time() - start == pytest.approx(
            t.ping_interval + t.pong_timeout, abs=0.1
        )
        assert not a.switch.is_banned(intruder.key.node_id)  # dead is not hostile

    run(test)


def test_persistent_peer_is_redialled_after_a_restart() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        b_key, b_host = Ed25519Key.generate(), "127.0.0.2"  # loopback: redial capped at 5 s
        b = await started(nursery, net, key=b_key, host=b_host, listen_port=26656)
        a = await started(nursery, net, persistent_peers=(b.addr,))
        await wait_until(lambda: a.peer_ids() == [b_key.node_id])
        assert a.switch.peers()[0].persistent
        b.scope.cancel()
        await wait_until(lambda: a.peer_ids() == [])
        await trio.sleep(30)  # down for a while: a keeps retrying, backing off to the cap
        stopped_at = trio.current_time()
        b2 = await started(nursery, net, key=b_key, host=b_host, listen_port=26656)
        await wait_until(lambda: a.peer_ids() == [b_key.node_id] and b2.peer_ids() == [a.node_id])
        assert trio.current_time() - stopped_at <= a.switch.timing.redial_max_loopback + 0.1

    run(test)


# --------------------------------------------------------------------------- real sockets


def test_two_switches_over_tcp() -> None:
    async def main() -> None:
        keys = [Ed25519Key.generate(), Ed25519Key.generate()]
        apps = [RecordingReactor("app", [VOTES, TXS]) for _ in keys]
        switches = [
            Switch(k, NETWORK, P2PConfig(listen_port=0, pex=False), [app])
            for k, app in zip(keys, apps, strict=True)
        ]
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                ports = [await nursery.start(s.run) for s in switches]
                assert switches[1].listen_addr == f"127.0.0.1:{ports[1]}"
                await switches[0].dial(f"{keys[1].node_id}@127.0.0.1:{ports[1]}")
                await wait_until(lambda: len(apps[1].peers) == 1, poll=0.01)
                apps[1].peers[keys[0].node_id].send(CONSENSUS_VOTE, b"over tcp")
                await wait_until(lambda: apps[0].received != [], poll=0.01)
                assert apps[0].received == [(keys[1].node_id, CONSENSUS_VOTE, b"over tcp")]
                peer = switches[1].peers()[0]
                assert peer.remote_ip == "127.0.0.1"  # type: ignore[attr-defined]
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_raw_frame_header_limit_over_tcp() -> None:
    """A frame header over the limit on a real socket: dropped before the body is sent."""

    async def main() -> None:
        key = Ed25519Key.generate()
        switch = Switch(
            key, NETWORK, P2PConfig(listen_port=0, pex=False), [RecordingReactor("app", [TXS])]
        )
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(switch.run)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(b"\xff\xff\xff\xff")
                while await stream.receive_some():
                    pass
                assert switch.peers() == []
                nursery.cancel_scope.cancel()

    trio.run(main)
