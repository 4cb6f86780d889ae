"""Transaction gossip: de-duplication, no echo to the sender, chunked admission, bad input."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from eth_hash.auto import keccak

from consensus.keys import Ed25519Key
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.operator.config import P2PConfig
from evm.db import MemoryDB
from p2p import MEMPOOL, MemoryNetwork, MempoolReactor, PeerMisbehaved, Switch
from p2p.abc import TxPool
from p2p.mempool_reactor import MAX_BATCH_BYTES, MAX_TXS_PER_MESSAGE, PENALTY_MALFORMED, batches
from p2p.testing import FakeTx, FakeTxPool, SimNode, run_simulated, wait_until
from tests.unit.test_app import GENESIS, SENDER, raw_transfer

NETWORK = "cmt-test-1/0xgenesis"


def gossip_node(net: MemoryNetwork, host: str, pool: TxPool | None = None) -> SimNode:
    pool = FakeTxPool() if pool is None else pool
    reactor = MempoolReactor(pool)
    switch = Switch(
        Ed25519Key.generate(),
        NETWORK,
        P2PConfig(listen_host=host, listen_port=26656, pex=False),
        [reactor],
        transport=net.transport(host),
    )
    return SimNode(switch, host, {"pool": pool, "mempool": reactor})


def pool(node: SimNode) -> FakeTxPool:
    p: FakeTxPool = node.reactors["pool"]
    return p


def stats(node: SimNode) -> Any:
    return node.reactors["mempool"].stats


async def network(
    net: MemoryNetwork, nursery: trio.Nursery, links: list[tuple[int, int]]
) -> list[SimNode]:
    n = 1 + max(max(link) for link in links)
    nodes = [await gossip_node(net, f"10.0.1.{i + 1}").start(nursery) for i in range(n)]
    for x, y in links:
        await link(nodes[x], nodes[y])
    return nodes


async def link(dialer: SimNode, listener: SimNode) -> None:
    await dialer.switch.dial(listener.addr)
    await wait_until(lambda: dialer.node_id in listener.peer_ids())


TXS = [bytes([1, i]) * 50 for i in range(20)]


def test_a_tx_travels_a_to_b_to_c_and_never_back() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b, c = await network(net, nursery, [(0, 1), (1, 2)])
        pool(a).check_txs(TXS)  # submitted locally (RPC) at a
        await wait_until(lambda: len(pool(c).txs) == len(TXS))
        await trio.testing.wait_all_tasks_blocked()  # whatever was in flight has landed
        for node in (a, b, c):
            assert pool(node).checked == TXS  # every tx checked exactly once on every node
        assert stats(a).received == 0  # nothing came back to the origin
        assert stats(b).received == len(TXS) and stats(b).sent == len(TXS)  # only to c
        assert stats(c).received == len(TXS) and stats(c).sent == 0  # not back to b

    run_simulated(test)


def test_in_a_triangle_each_node_checks_each_tx_once() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b, c = await network(net, nursery, [(0, 1), (1, 2), (0, 2)])
        pool(a).check_txs(TXS[:10])
        pool(c).check_txs(TXS[10:])
        await wait_until(lambda: all(len(pool(n).txs) == len(TXS) for n in (a, b, c)))
        await trio.testing.wait_all_tasks_blocked()
        for node in (a, b, c):
            assert sorted(pool(node).checked) == sorted(TXS)
        assert stats(b).duplicates + stats(b).received >= len(TXS)

    run_simulated(test)


def test_rejected_txs_are_not_gossiped_further() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a, b, c = await network(net, nursery, [(0, 1), (1, 2)])
        bad = b"\xff" + b"\x00" * 40  # every FakeTxPool rejects it...
        reactor_a: MempoolReactor = a.reactors["mempool"]
        reactor_a._on_pending([FakeTx(bad, keccak(bad))])  # ...but a gossips it anyway
        pool(a).check_txs([TXS[0]])
        await wait_until(lambda: len(pool(c).txs) == 1)
        await trio.testing.wait_all_tasks_blocked()
        assert pool(b).checked == [bad, TXS[0]] and stats(b).rejected == 1
        assert pool(c).checked == [TXS[0]]  # b never passed the rejected tx on
        assert b.peer_ids() == sorted([a.node_id, c.node_id])  # a rejection is no offence

    run_simulated(test)


class RecordingPool(FakeTxPool):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def check_txs(self, raws: Any, senders: Any = None) -> list[object]:
        self.calls.append(len(raws))
        return super().check_txs(raws, senders)


class Peer:
    def __init__(self, node_id: str = "aa" * 20) -> None:
        self.node_id = node_id
        self.listen_addr = "10.0.0.1:1"
        self.outbound = False
        self.persistent = False
        self.state: dict[str, Any] = {}
        self.sent: list[Any] = []

    def send(self, channel: int, message: Any) -> bool:
        self.sent.append(message)
        return True


def test_large_batches_are_admitted_in_chunks_and_duplicates_skipped() -> None:
    txpool = RecordingPool()
    reactor = MempoolReactor(txpool, check_chunk=100)
    peer = Peer()
    reactor.add_peer(peer)
    raws = [i.to_bytes(4, "big") for i in range(1, 351)]
    trio.run(reactor.receive, MEMPOOL, peer, raws + raws[:10])
    assert txpool.calls == [100, 100, 100, 50]
    assert reactor.stats.duplicates == 10 and reactor.stats.admitted == 350
    second = Peer("bb" * 20)
    reactor.add_peer(second)
    trio.run(reactor.receive, MEMPOOL, second, raws[:5])
    assert txpool.calls == [100, 100, 100, 50]  # already checked: the pool is not asked again


@pytest.mark.parametrize(
    "message",
    [
        b"raw",
        [],
        ["text"],
        [b""],
        [b"ok", 5],
        [b"x" * (128 * 1024 + 1)],
        [b"x"] * (MAX_TXS_PER_MESSAGE + 1),
        {"txs": [b"x"]},
    ],
)
def test_undecodable_messages_are_misbehaviour(message: Any) -> None:
    reactor = MempoolReactor(FakeTxPool())
    peer = Peer()
    reactor.add_peer(peer)
    with pytest.raises(PeerMisbehaved):
        trio.run(reactor.receive, MEMPOOL, peer, message)


def test_batches_stay_under_a_mebibyte() -> None:
    txs = [FakeTx(bytes(100_000), bytes([i]) * 32) for i in range(25)]
    split = list(batches(txs))
    assert [tx for batch in split for tx in batch] == txs
    assert all(sum(len(tx.raw) + 5 for tx in batch) <= MAX_BATCH_BYTES for batch in split)
    assert len(split) == 3
    assert list(batches([FakeTx(bytes(MAX_BATCH_BYTES), b"h" * 32)])) == []  # cannot fit at all


def test_gossip_skips_known_peers_and_full_queues() -> None:
    txpool = FakeTxPool()
    reactor = MempoolReactor(txpool)
    source, other = Peer("aa" * 20), Peer("bb" * 20)
    full = Peer("cc" * 20)
    full.send = lambda channel, message: False  # type: ignore[method-assign]
    for p in (source, other, full):
        reactor.add_peer(p)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reactor.run)
            await reactor.receive(MEMPOOL, source, TXS[:3])
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert source.sent == [] and other.sent == [TXS[:3]]
    assert reactor.stats.dropped == 3


# -- one bad tx in a chunk ---------------------------------------------------------------------

BAD_TYPE_BYTES = [b"\x00" + raw_transfer(7), b"\x7f" + raw_transfer(8)]  # EIP-2718's two ends


def test_a_bad_tx_in_a_gossiped_chunk_is_rejected_alone() -> None:
    """Real admission (ChainApp) on the receiving node: txs with type bytes 0x00 and 0x7f sent
    in one message between valid ones are rejected; the valid ones are admitted, and a plain
    rejection costs the sender nothing."""

    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await gossip_node(net, "10.0.2.1").start(nursery)
        app = ChainApp(Chain(MemoryDB(), GENESIS))
        b = await gossip_node(net, "10.0.2.2", app).start(nursery)
        await link(a, b)
        valid = [raw_transfer(0), raw_transfer(1)]
        message = [valid[0], *BAD_TYPE_BYTES, valid[1]]
        reactor_a: MempoolReactor = a.reactors["mempool"]
        reactor_a._on_pending([FakeTx(raw, keccak(raw)) for raw in message])  # one message
        await wait_until(lambda: stats(b).received == len(message))
        await trio.testing.wait_all_tasks_blocked()
        pending = app.mempool.pending_by_sender()[SENDER.address]
        assert sorted(tx.raw for tx in pending) == sorted(valid)
        assert stats(b).admitted == 2 and stats(b).rejected == 2
        assert b.peer_ids() == [a.node_id] and b.switch.score(a.node_id) == 100

    run_simulated(test)


class BreakingPool(FakeTxPool):
    """Raises (instead of rejecting) whenever a chunk holds a tx starting with 0x00."""

    def check_txs(self, raws: Any, senders: Any = None) -> list[object]:
        if any(raw[:1] == b"\x00" for raw in raws):
            raise RuntimeError("admission bug")
        return super().check_txs(raws, senders)


def test_a_tx_that_breaks_admission_costs_only_itself_and_a_penalty() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        a = await gossip_node(net, "10.0.3.1").start(nursery)
        b = await gossip_node(net, "10.0.3.2", BreakingPool()).start(nursery)
        await link(a, b)
        message = [TXS[0], b"\x00poison", TXS[1]]
        reactor_a: MempoolReactor = a.reactors["mempool"]
        reactor_a._on_pending([FakeTx(raw, keccak(raw)) for raw in message])
        await wait_until(lambda: stats(b).received == len(message))
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(pool(b).txs.values(), key=lambda t: t.raw) == sorted(
            (FakeTx(raw, keccak(raw)) for raw in (TXS[0], TXS[1])), key=lambda t: t.raw
        )
        assert stats(b).admitted == 2 and stats(b).rejected == 1
        assert b.switch.score(a.node_id) == 100 - PENALTY_MALFORMED  # once for the message
        assert b.peer_ids() == [a.node_id]

    run_simulated(test)
