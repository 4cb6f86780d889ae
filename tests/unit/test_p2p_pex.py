"""Peer exchange and the address book: discovery through a seed, abuse, persistence."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from consensus.keys import Ed25519Key
from cybermiles_node.operator.config import P2PConfig
from p2p import MEMPOOL, PEX, ChannelDescriptor, MemoryNetwork, PeerMisbehaved, Switch
from p2p.addrbook import MAX_FAILURES, AddressBook
from p2p.pex import ADDRS, MAX_ADDRS_PER_MESSAGE, REQUEST, PexReactor
from p2p.testing import RecordingReactor, SimNode, run_simulated, wait_until

NETWORK = "cmt-test-1/0xgenesis"
SELF = "00" * 20


def nid(i: int) -> str:
    return f"{i:040x}"


def addr(i: int, host: str = "10.0.0.1", port: int = 26656) -> str:
    return f"{nid(i)}@{host}:{port}"


# --------------------------------------------------------------------------- address book


def test_book_validates_and_never_holds_itself() -> None:
    book = AddressBook(SELF)
    assert book.add(addr(1))
    assert not book.add(addr(1))  # already known
    assert not book.add(f"{SELF}@10.0.0.9:1")  # ourselves
    assert not book.add(f"{nid(2)}@0.0.0.0:26656")  # not dialable
    for bad in ["", "no-at-sign", f"{nid(3)}@host", f"{'XY' * 20}@h:1", f"{nid(3)}@h:70000"]:
        with pytest.raises(ValueError):
            book.add(bad)
    assert book.addresses() == [addr(1)]


def test_third_parties_cannot_move_a_known_node() -> None:
    book = AddressBook(SELF)
    book.add(addr(1, host="10.0.0.1"))
    assert not book.add(addr(1, host="6.6.6.6"))  # hearsay from a pex reply
    assert book.add(addr(1, host="10.0.0.2"), authoritative=True)  # the node's own NodeInfo
    assert book.addresses() == [addr(1, host="10.0.0.2")]


def test_book_is_bounded_and_evicts_failing_entries_only() -> None:
    book = AddressBook(SELF, max_size=3)
    for i in (1, 2, 3):
        book.add(addr(i))
    assert not book.add(addr(4))  # full of healthy entries
    book.mark_failed(nid(2), now=0.0)
    assert book.add(addr(4))
    assert sorted(book.addresses()) == [addr(1), addr(3), addr(4)]


def test_failed_entries_back_off_and_are_dropped() -> None:
    book = AddressBook(SELF)
    book.add(addr(1))
    book.add(addr(2))
    rng = random.Random(1)
    book.mark_failed(nid(1), now=100.0)
    assert book.pick(5, exclude=set(), now=100.0, rng=rng) == [addr(2)]
    assert book.pick(5, exclude=set(), now=102.0, rng=rng) == [addr(2), addr(1)]  # 2 s later
    assert book.pick(5, exclude={nid(2)}, now=102.0, rng=rng) == [addr(1)]
    book.mark_good(nid(1))
    assert nid(1) in book
    for _ in range(MAX_FAILURES):
        book.mark_failed(nid(1), now=0.0)
    assert nid(1) not in book


def test_book_persists_atomically(tmp_path: Path) -> None:
    path = tmp_path / "addrbook.json"
    book = AddressBook(SELF, path)
    for i in (3, 1, 2):
        book.add(addr(i))
    book.mark_failed(nid(2), now=0.0)
    book.save()
    assert [p.name for p in tmp_path.iterdir()] == ["addrbook.json"]  # no temporary left
    body = json.loads(path.read_text())
    assert [e["addr"] for e in body["addresses"]] == [addr(1), addr(2), addr(3)]  # sorted
    again = AddressBook(SELF, path)
    assert again.addresses() == book.addresses()
    rng = random.Random(0)
    assert again.pick(3, exclude=set(), now=0.0, rng=rng)[-1] == addr(2)  # still the worst


def test_corrupt_book_file_is_an_empty_book(tmp_path: Path) -> None:
    path = tmp_path / "addrbook.json"
    path.write_text("{not json")
    assert len(AddressBook(SELF, path)) == 0
    path.write_text(json.dumps({"addresses": [{"addr": "junk"}, {"addr": addr(1)}, 5]}))
    assert AddressBook(SELF, path).addresses() == [addr(1)]


# --------------------------------------------------------------------------- reactor, sans switch


@dataclass
class FakePeer:
    node_id: str
    listen_addr: str = "10.0.0.1:26656"
    outbound: bool = False
    persistent: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    sent: list[tuple[int, Any]] = field(default_factory=list)

    def send(self, channel: int, message: Any) -> bool:
        self.sent.append((channel, message))
        return True


@dataclass
class FakeSwitch:
    node_id: str = SELF
    connected: list[FakePeer] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    def peers(self) -> list[Any]:
        return list(self.connected)

    async def dial(self, addr: str) -> Any:
        raise AssertionError("not dialing in this test")

    def stop_peer(self, peer: Any, reason: str) -> None:
        self.stopped.append(peer.node_id)


def make_pex(**kw: Any) -> tuple[PexReactor, FakeSwitch]:
    switch = FakeSwitch()
    book = AddressBook(SELF)
    now = [0.0]
    kw.setdefault("clock", lambda: now[0])
    return PexReactor(switch, book, rng=random.Random(3), **kw), switch


def test_outbound_peers_are_asked_and_their_reply_is_learned() -> None:
    pex, _ = make_pex()
    peer = FakePeer(nid(1), outbound=True)
    pex.add_peer(peer)
    assert peer.sent == [(PEX, [REQUEST])]
    assert pex.book.addresses() == [addr(1)]  # learned from its NodeInfo
    reply = [ADDRS, [addr(2, host="10.0.0.2"), f"{SELF}@10.0.0.3:1", addr(1, host="6.6.6.6")]]
    trio.run(pex.receive, PEX, peer, reply)
    assert pex.book.addresses() == [addr(1), addr(2, host="10.0.0.2")]
    with pytest.raises(PeerMisbehaved, match="unsolicited"):
        trio.run(pex.receive, PEX, peer, [ADDRS, []])  # we asked once, it answered once


@pytest.mark.parametrize(
    "message",
    [
        "request",
        [REQUEST, 1],
        [ADDRS],
        [ADDRS, "not a list"],
        [ADDRS, [addr(i) for i in range(MAX_ADDRS_PER_MESSAGE + 1)]],
        [ADDRS, [addr(1), "garbage"]],
        [ADDRS, [addr(1), 7]],
        ["gossip", []],
    ],
)
def test_malformed_pex_messages_are_misbehaviour(message: Any) -> None:
    pex, _ = make_pex()
    peer = FakePeer(nid(1), outbound=True)
    pex.add_peer(peer)
    with pytest.raises(PeerMisbehaved):
        trio.run(pex.receive, PEX, peer, message)
    assert pex.book.addresses() == [addr(1)]  # nothing from a bad list was kept


def test_request_flood_is_misbehaviour() -> None:
    now = [0.0]
    pex, _ = make_pex(clock=lambda: now[0], ensure_interval=30.0, max_requests_per_interval=3)
    for i in range(2, 6):
        pex.book.add(addr(i))
    peer = FakePeer(nid(1))
    pex.add_peer(peer)
    for _ in range(3):
        trio.run(pex.receive, PEX, peer, [REQUEST])
    assert [m[0] for _, m in peer.sent] == [ADDRS] * 3
    assert nid(1) not in " ".join(peer.sent[0][1][1])  # never its own address back
    with pytest.raises(PeerMisbehaved, match="too many"):
        trio.run(pex.receive, PEX, peer, [REQUEST])
    now[0] = 31.0  # a new interval
    trio.run(pex.receive, PEX, peer, [REQUEST])


def test_seed_is_dropped_once_it_answered() -> None:
    seed = addr(9, host="10.0.0.9")
    pex, switch = make_pex(seeds=[seed])
    peer = FakePeer(nid(9), listen_addr="10.0.0.9:26656", outbound=True)
    pex.add_peer(peer)
    assert len(pex.book) == 0  # seeds are not dialed as ordinary peers
    trio.run(pex.receive, PEX, peer, [ADDRS, [addr(1)]])
    assert switch.stopped == [nid(9)]


# --------------------------------------------------------------------------- whole network


APP = ChannelDescriptor(MEMPOOL, 4, send_queue_capacity=16, max_message_bytes=1024)


def pex_node(net: MemoryNetwork, host: str, **config: Any) -> SimNode:
    switch = Switch(
        Ed25519Key.generate(),
        NETWORK,
        P2PConfig(listen_host=host, listen_port=26656, **config),
        [RecordingReactor("app", [APP])],
        transport=net.transport(host),
        rng=random.Random(host),
    )
    return SimNode(switch, host)


def test_a_third_node_is_discovered_through_a_seed() -> None:
    async def test(net: MemoryNetwork, nursery: trio.Nursery) -> None:
        seed = await pex_node(net, "10.0.0.100", seed_mode=True).start(nursery)
        a = await pex_node(net, "10.0.0.1", seeds=(seed.addr,)).start(nursery)
        # a met the seed (which learned a's address) and was dropped by it.
        await wait_until(lambda: seed.switch.pex is not None and a.node_id in seed.switch.pex.book)
        b = await pex_node(net, "10.0.0.2", seeds=(seed.addr,)).start(nursery)
        await wait_until(lambda: a.node_id in b.peer_ids() and b.node_id in a.peer_ids())
        assert b.switch.peers()[0].outbound  # b dialed the address the seed gave it
        # The seed hands out addresses but keeps nobody.
        await wait_until(lambda: seed.peer_ids() == [])
        assert a.peer_ids() == [b.node_id] and b.peer_ids() == [a.node_id]
        assert a.switch.pex is not None and b.node_id in a.switch.pex.book

    run_simulated(test)
