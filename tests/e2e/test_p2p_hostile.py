"""Hostile peers against a real validator process on 127.0.0.1.

The attacker is this test: it speaks our wire protocol (the authenticated handshake of `p2p`) or
plain TCP garbage to a running one-validator BFT node. Whatever it sends — random bytes,
an oversized frame, consensus frames that decode but carry bad signatures or votes of unknown
validators — the node drops (and for repeated invalid data bans) the peer, and keeps serving
RPC and committing blocks.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import pytest
import trio

from consensus.keys import Ed25519Key
from consensus.messages import encode_message
from consensus.types import Vote, VoteType
from p2p import CONSENSUS_VOTE
from p2p.connection import SecureConnection, secure_handshake
from p2p.errors import P2PError
from p2p.framing import encode_packet
from p2p.handshake import NodeInfo, node_id_of
from tests.e2e.cluster import Cluster
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.e2e

DROP_TIMEOUT_S = 30.0


def p2p_endpoint(cluster: Cluster) -> tuple[str, str, int]:
    node_id, hostport = cluster.nodes[0].p2p_address.split("@")
    host, port = hostport.rsplit(":", 1)
    return node_id, host, int(port)


def node_height(cluster: Cluster) -> int:
    state = cluster._get(f"{cluster.nodes[0].status_url}/consensus_state").json()
    return int(state["result"]["round_state"]["height"])


async def connect(cluster: Cluster, key: Ed25519Key) -> SecureConnection:
    node_id, host, port = p2p_endpoint(cluster)
    network = cluster.status(0)["node_info"]["network"]
    stream = await trio.open_tcp_stream(host, port)
    info = NodeInfo(
        node_id=node_id_of(key.public_key),
        listen_addr="127.0.0.1:1",
        network=network,
        channels=(CONSENSUS_VOTE,),
        moniker="attacker",
    )
    conn, _ = await secure_handshake(stream, key, info, expected_id=node_id)
    return conn


async def until_dropped(conn: SecureConnection, keep_sending: Callable[[], Any]) -> None:
    """Keep sending bad data until the node closes the connection (fails after a deadline)."""
    with trio.fail_after(DROP_TIMEOUT_S):
        async with trio.open_nursery() as nursery:

            async def send_loop() -> None:
                while True:
                    try:
                        await keep_sending()
                    except (P2PError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        return
                    await trio.sleep(0.1)

            nursery.start_soon(send_loop)
            try:
                while True:
                    await conn.receive()
            except (P2PError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                nursery.cancel_scope.cancel()


def assert_still_serving(cluster: Cluster) -> None:
    height = cluster.height(0)
    cluster.wait_height(0, height + 2, timeout=60)
    assert cluster.health(0)


@pytest.fixture
def node(cluster_factory: Callable[..., Cluster]) -> Cluster:
    cluster = cluster_factory(validators=1)
    cluster.wait_height(0, 1, timeout=60)
    return cluster


def test_random_bytes_and_oversized_frames_are_dropped(node: Cluster) -> None:
    _, host, port = p2p_endpoint(node)
    rnd = random.Random(7)

    async def garbage() -> None:
        stream = await trio.open_tcp_stream(host, port)
        with trio.fail_after(DROP_TIMEOUT_S):
            try:
                await stream.send_all(rnd.randbytes(4096))
                while await stream.receive_some(65536):
                    pass
            except (trio.BrokenResourceError, OSError):
                pass

    async def oversized() -> None:
        conn = await connect(node, Ed25519Key.generate())
        # A frame header announcing 2 GiB: refused before a byte of the body is read.
        await conn.stream.send_all((2**31 - 1).to_bytes(4, "big"))
        await until_dropped(conn, lambda: trio.sleep(0))

    trio.run(garbage)
    trio.run(oversized)
    assert_still_serving(node)


def test_invalid_signatures_and_unknown_validators_get_the_peer_banned(node: Cluster) -> None:
    key = Ed25519Key.generate()
    validator = bytes.fromhex(node.nodes[0].validator_address)

    def forged_votes() -> list[bytes]:
        height = node_height(node)
        votes = []
        for h in (height, height + 1):
            # A real validator's vote with a forged signature, and one from nobody.
            votes.append(Vote(VoteType.PREVOTE, h, 0, None, validator, os.urandom(64)))
            votes.append(Vote(VoteType.PREVOTE, h, 0, None, os.urandom(20), os.urandom(64)))
        return [encode_packet(CONSENSUS_VOTE, encode_message(v)) for v in votes]

    async def attack() -> None:
        conn = await connect(node, key)

        async def send_forged() -> None:
            for packet in await trio.to_thread.run_sync(forged_votes):
                await conn.send(packet)

        await until_dropped(conn, send_forged)

    async def banned() -> None:
        with (
            trio.fail_after(DROP_TIMEOUT_S),
            pytest.raises((P2PError, OSError, trio.BrokenResourceError)),
        ):
            conn = await connect(node, key)
            await conn.receive()  # a banned node id gets no session

    async def others_welcome() -> None:
        conn = await connect(node, Ed25519Key.generate())  # the ban is the attacker's alone
        await conn.aclose()

    trio.run(attack)
    trio.run(banned)
    trio.run(others_welcome)
    assert_still_serving(node)
    peers = node._get(f"{node.nodes[0].status_url}/net_info").json()["result"]["peers"]
    assert node_id_of(key.public_key) not in {p["node_id"] for p in peers}
    wait_for(
        lambda: (
            metric(node, "cybermiles_p2p_bans_total") >= 1
            and metric(node, "cybermiles_rpc_requests_total") >= 1
        ),
        timeout=DROP_TIMEOUT_S,
        what="the ban and the RPC requests counted in /metrics",
    )


def metric(cluster: Cluster, name: str) -> float:
    for line in cluster.metrics(0).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing from /metrics")
