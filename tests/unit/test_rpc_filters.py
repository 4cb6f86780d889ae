"""Log filters, polled filters on a fake clock (rpc.filters), subscriptions (rpc.subscriptions)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import trio
from eth_bloom import BloomFilter

from rpc.dispatch import Dispatcher
from rpc.errors import InvalidInput, InvalidParams, LimitExceeded
from rpc.filters import (
    FilterRegistry,
    LogFilter,
    bloom_may_match,
    log_json_matches,
    log_matches,
    parse_log_filter,
)
from rpc.session import MemorySession
from rpc.subscriptions import SubscriptionHub

A1 = bytes.fromhex("11" * 20)
A2 = bytes.fromhex("22" * 20)
T1 = bytes.fromhex("aa" * 32)
T2 = bytes.fromhex("bb" * 32)
T3 = bytes.fromhex("cc" * 32)


def hx(b: bytes) -> str:
    return "0x" + b.hex()


def log_json(address: bytes, topics: list[bytes], number: int = 1, block: bytes = T3) -> dict:
    return {
        "address": hx(address),
        "topics": [hx(t) for t in topics],
        "data": "0x",
        "blockNumber": hex(number),
        "blockHash": hx(block),
        "logIndex": "0x0",
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- parse_log_filter ------------------------------------------------------------------------


def test_parse_defaults() -> None:
    f = parse_log_filter({})
    assert f == LogFilter()
    assert (f.from_block, f.to_block, f.addresses, f.topics, f.block_hash) == (
        "latest",
        "latest",
        (),
        (),
        None,
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"address": hx(A1)}, LogFilter(addresses=(A1,))),
        ({"address": [hx(A1), hx(A2)]}, LogFilter(addresses=(A1, A2))),
        ({"address": [hx(A1), hx(A1).upper().replace("0X", "0x")]}, LogFilter(addresses=(A1,))),
        ({"address": []}, LogFilter()),
        ({"address": None, "topics": None}, LogFilter()),
        ({"topics": [hx(T1)]}, LogFilter(topics=((T1,),))),
        ({"topics": [None, hx(T2)]}, LogFilter(topics=(None, (T2,)))),
        ({"topics": [[hx(T1), hx(T2)], None]}, LogFilter(topics=((T1, T2), None))),
        ({"topics": [[hx(T1), None]]}, LogFilter(topics=(None,))),  # null alternative = any
        ({"topics": [[]]}, LogFilter(topics=(None,))),  # empty alternatives = any
        ({"fromBlock": "0x1", "toBlock": "0x10"}, LogFilter(from_block=1, to_block=16)),
        ({"fromBlock": "earliest", "toBlock": "pending"}, LogFilter("earliest", "pending")),
        ({"blockHash": hx(T3)}, LogFilter(block_hash=T3)),
        ({"blockHash": hx(T3), "fromBlock": None}, LogFilter(block_hash=T3)),
    ],
)
def test_parse_ok(obj: dict[str, Any], expected: LogFilter) -> None:
    assert parse_log_filter(obj) == expected


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        (None, "filter"),
        ([], "filter"),
        ({"blockHash": hx(T3), "fromBlock": "0x1"}, "blockHash"),
        ({"blockHash": hx(T3), "toBlock": "latest"}, "blockHash"),
        ({"blockHash": "0x12"}, "filter.blockHash"),
        ({"fromBlock": "0x01"}, "filter.fromBlock"),
        ({"toBlock": {"blockNumber": "0x1"}}, "filter.toBlock"),
        ({"address": "0x12"}, "filter.address"),
        ({"address": [hx(A1), 5]}, "filter.address"),
        ({"topics": hx(T1)}, "filter.topics"),
        ({"topics": [None] * 5}, "filter.topics"),
        ({"topics": [None, "0x12"]}, "filter.topics[1]"),
        ({"topics": [[hx(T1), "0xzz"]]}, "filter.topics[0]"),
        ({"topics": [[None, "0x12"]]}, "filter.topics[0]"),
        ({"address": [hx(A1)] * 1001}, "filter.address"),
    ],
)
def test_parse_bad(obj: object, fragment: str) -> None:
    with pytest.raises(InvalidParams) as info:
        parse_log_filter(obj)
    assert fragment in info.value.message


# -- matching --------------------------------------------------------------------------------

MATCH_CASES = [
    # (filter, address, topics, matches)
    (LogFilter(), A1, [], True),
    (LogFilter(), A1, [T1, T2], True),
    (LogFilter(addresses=(A1,)), A1, [T1], True),
    (LogFilter(addresses=(A1,)), A2, [T1], False),
    (LogFilter(addresses=(A1, A2)), A2, [], True),
    (LogFilter(topics=((T1,),)), A1, [T1], True),
    (LogFilter(topics=((T1,),)), A1, [T2], False),
    (LogFilter(topics=((T1,),)), A1, [T1, T2, T3], True),
    (LogFilter(topics=((T1,),)), A1, [], False),
    (LogFilter(topics=(None, (T2,))), A1, [T3, T2], True),
    (LogFilter(topics=(None, (T2,))), A1, [T2, T3], False),
    (LogFilter(topics=(None, None)), A1, [T1], False),  # geth: fewer topics never match
    (LogFilter(topics=(None, None)), A1, [T1, T1], True),
    (LogFilter(topics=((T1, T2), (T3,))), A1, [T2, T3], True),
    (LogFilter(topics=((T1, T2), (T3,))), A1, [T3, T3], False),
    (LogFilter(addresses=(A1,), topics=((T1,),)), A2, [T1], False),
]


@pytest.mark.parametrize(("f", "address", "topics", "expected"), MATCH_CASES)
def test_log_matches(f: LogFilter, address: bytes, topics: list[bytes], expected: bool) -> None:
    assert log_matches(f, address, topics) is expected
    entry = log_json(address, topics)
    assert log_json_matches(f, entry) is expected
    upper = dict(
        entry, address=entry["address"].upper(), topics=[t.upper() for t in entry["topics"]]
    )
    assert log_json_matches(f, upper) is expected
    # A block whose bloom holds the log's address and topics may match whenever the log matches.
    bloom = int(BloomFilter.from_iterable([address, *topics]))
    if expected:
        assert bloom_may_match(f, bloom)


@pytest.mark.parametrize(("f", "address", "topics", "_expected"), MATCH_CASES)
def test_bloom_agrees_with_eth_bloom(
    f: LogFilter, address: bytes, topics: list[bytes], _expected: bool
) -> None:
    bloom = BloomFilter.from_iterable([address, *topics])
    expected = (not f.addresses or any(a in bloom for a in f.addresses)) and all(
        alternatives is None or any(t in bloom for t in alternatives) for alternatives in f.topics
    )
    assert bloom_may_match(f, int(bloom)) is expected


def test_bloom_rejects_absent_items() -> None:
    bloom = int(BloomFilter.from_iterable([A1, T1]))
    assert bloom_may_match(LogFilter(addresses=(A1,), topics=((T1,),)), bloom)
    assert not bloom_may_match(LogFilter(addresses=(A2,)), bloom)
    assert not bloom_may_match(LogFilter(topics=((T2,),)), bloom)
    assert bloom_may_match(LogFilter(topics=((T2, T1),)), bloom)
    assert bloom_may_match(LogFilter(), 0)
    assert not bloom_may_match(LogFilter(addresses=(A1,)), 0)


# -- FilterRegistry --------------------------------------------------------------------------


def test_block_and_pending_filters_accumulate_and_reset() -> None:
    reg = FilterRegistry(FakeClock())
    blocks = reg.install_block_filter()
    pending = reg.install_pending_filter()
    assert re.fullmatch(r"0x[1-9a-f][0-9a-f]{15}", blocks)
    assert reg.kind(blocks) == "blocks" and reg.kind(pending) == "pending"
    reg.push_block("0x01", [])
    reg.push_block("0x02")
    reg.push_pending(["0xaa", "0xbb"])
    assert reg.changes(blocks) == ["0x01", "0x02"]
    assert reg.changes(blocks) == []
    assert reg.changes(pending.upper().replace("0X", "0x")) == ["0xaa", "0xbb"]
    assert reg.changes(pending) == []


def test_log_filter_keeps_only_matching_logs_in_range() -> None:
    reg = FilterRegistry(FakeClock())
    f = parse_log_filter({"address": hx(A1), "topics": [hx(T1)], "fromBlock": "0x2"})
    fid = reg.install_log_filter(f)
    everything = reg.install_log_filter(LogFilter())
    one_block = reg.install_log_filter(LogFilter(block_hash=T2))
    logs = [
        log_json(A1, [T1], number=1),  # below fromBlock
        log_json(A1, [T1], number=2),
        log_json(A2, [T1], number=2),
        log_json(A1, [T2], number=2),
    ]
    reg.push_block("0x02", logs)
    assert reg.changes(fid) == [logs[1]]
    assert reg.changes(everything) == logs
    assert reg.changes(one_block) == []
    reg.push_block("0x03", [log_json(A1, [T1], number=3, block=T2)])
    assert len(reg.changes(one_block)) == 1
    assert reg.log_filter(fid) is f
    with pytest.raises(InvalidInput):
        reg.log_filter(reg.install_block_filter())


def test_to_block_bound() -> None:
    reg = FilterRegistry(FakeClock())
    fid = reg.install_log_filter(LogFilter(to_block=5))
    reg.push_block("0x05", [log_json(A1, [], number=5)])
    reg.push_block("0x06", [log_json(A1, [], number=6)])
    assert [entry["blockNumber"] for entry in reg.changes(fid)] == ["0x5"]


def test_expiry_on_fake_clock() -> None:
    clock = FakeClock()
    reg = FilterRegistry(clock, timeout_s=300)
    idle = reg.install_block_filter()
    polled = reg.install_block_filter()
    clock.now += 200
    reg.changes(polled)
    clock.now += 101  # idle: 301 s without a poll; polled: 101 s
    with pytest.raises(InvalidInput, match="filter not found"):
        reg.changes(idle)
    assert reg.changes(polled) == []
    assert len(reg) == 1
    clock.now += 300
    reg.push_pending(["0x1"])  # pushes expire too
    assert len(reg) == 1
    clock.now += 1
    reg.push_pending(["0x1"])
    assert len(reg) == 0
    with pytest.raises(InvalidInput) as info:
        reg.changes(polled)
    assert info.value.code == -32000


def test_uninstall_unknown_and_cap() -> None:
    clock = FakeClock()
    reg = FilterRegistry(clock, max_filters=3)
    ids = [reg.install_block_filter() for _ in range(3)]
    assert len(set(ids)) == 3
    with pytest.raises(LimitExceeded):
        reg.install_pending_filter()
    assert reg.uninstall(ids[0]) is True
    assert reg.uninstall(ids[0]) is False
    assert reg.uninstall(12) is False
    reg.install_pending_filter()
    with pytest.raises(InvalidInput):
        reg.changes("0x1234")
    with pytest.raises(InvalidInput):
        reg.changes(None)
    clock.now += 301  # all expire: room again
    reg.install_log_filter(LogFilter())
    assert len(reg) == 1


def test_buffer_cap_drops_oldest() -> None:
    reg = FilterRegistry(FakeClock(), max_items=5)
    fid = reg.install_pending_filter()
    reg.push_pending([f"0x{i}" for i in range(7)])
    assert reg.changes(fid) == [f"0x{i}" for i in range(2, 7)]


# -- SubscriptionHub -------------------------------------------------------------------------


def call(d: Dispatcher, method: str, params: list[Any], session: MemorySession | None) -> Any:
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    raw = trio.run(d.handle, request, session)
    assert raw is not None
    return json.loads(raw)


def notifications(session: MemorySession) -> list[dict[str, Any]]:
    out = [json.loads(m) for m in session.messages]
    session.messages.clear()
    for n in out:
        assert n["jsonrpc"] == "2.0" and n["method"] == "eth_subscription" and "id" not in n
    return out


def setup_hub() -> tuple[Dispatcher, SubscriptionHub]:
    d = Dispatcher()
    hub = SubscriptionHub()
    hub.install(d)
    return d, hub


def test_subscribe_over_http_is_not_supported() -> None:
    d, _ = setup_hub()
    error = call(d, "eth_subscribe", ["newHeads"], None)["error"]
    assert error == {"code": -32004, "message": "notifications not supported"}
    assert call(d, "eth_unsubscribe", ["0x1"], None)["error"]["code"] == -32004


@pytest.mark.parametrize(
    "params",
    [
        ["syncing"],
        ["nonsense"],
        [1],
        [],
        ["newHeads", {"x": 1}],
        ["logs", {"address": "0x12"}],
        ["logs", 5],
        ["newPendingTransactions", "yes"],
        ["newHeads", None, 3],
    ],
)
def test_subscribe_bad_params(params: list[Any]) -> None:
    d, hub = setup_hub()
    assert call(d, "eth_subscribe", params, MemorySession())["error"]["code"] == -32602
    assert hub.count() == 0


def test_new_heads() -> None:
    d, hub = setup_hub()
    s1, s2 = MemorySession(), MemorySession()
    id1 = call(d, "eth_subscribe", ["newHeads"], s1)["result"]
    id2 = call(d, "eth_subscribe", ["newHeads"], s2)["result"]
    assert re.fullmatch(r"0x[1-9a-f][0-9a-f]{31}", id1) and id1 != id2
    header = {"number": "0x1", "hash": hx(T1)}
    trio.run(hub.publish_new_head, header)
    assert notifications(s1) == [
        {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": id1, "result": header},
        }
    ]
    assert notifications(s2)[0]["params"]["subscription"] == id2


def test_logs_one_notification_per_matching_log() -> None:
    d, hub = setup_hub()
    session = MemorySession()
    sub = call(d, "eth_subscribe", ["logs", {"address": hx(A1), "topics": [hx(T1)]}], session)[
        "result"
    ]
    any_sub = call(d, "eth_subscribe", ["logs"], session)["result"]
    logs = [log_json(A1, [T1]), log_json(A2, [T1]), log_json(A1, [T1, T2])]
    trio.run(hub.publish_logs, logs)
    got = notifications(session)
    mine = [n["params"]["result"] for n in got if n["params"]["subscription"] == sub]
    every = [n["params"]["result"] for n in got if n["params"]["subscription"] == any_sub]
    assert mine == [logs[0], logs[2]]
    assert every == logs


def test_pending_hashes_and_full_transactions() -> None:
    d, hub = setup_hub()
    session = MemorySession()
    hashes_sub = call(d, "eth_subscribe", ["newPendingTransactions"], session)["result"]
    full_sub = call(d, "eth_subscribe", ["newPendingTransactions", True], session)["result"]
    txs = [{"hash": "0x01", "nonce": "0x0"}, {"hash": "0x02", "nonce": "0x1"}]
    trio.run(hub.publish_pending, ["0x01", "0x02"], txs)
    got = notifications(session)
    assert [n["params"]["result"] for n in got if n["params"]["subscription"] == hashes_sub] == [
        "0x01",
        "0x02",
    ]
    assert [n["params"]["result"] for n in got if n["params"]["subscription"] == full_sub] == txs
    trio.run(hub.publish_pending, ["0x03"])  # no full objects given: hashes for everyone
    assert [n["params"]["result"] for n in notifications(session)] == ["0x03", "0x03"]


def test_unsubscribe_only_own_subscriptions() -> None:
    d, hub = setup_hub()
    mine, other = MemorySession(), MemorySession()
    sub = call(d, "eth_subscribe", ["newHeads"], mine)["result"]
    assert call(d, "eth_unsubscribe", [sub], other)["result"] is False
    assert call(d, "eth_unsubscribe", [sub], mine)["result"] is True
    assert call(d, "eth_unsubscribe", [sub], mine)["result"] is False
    assert call(d, "eth_unsubscribe", [5], mine)["error"]["code"] == -32602
    trio.run(hub.publish_new_head, {"number": "0x1"})
    assert mine.messages == [] and hub.count() == 0


def test_session_close_drops_subscriptions() -> None:
    d, hub = setup_hub()
    session, other = MemorySession(), MemorySession()
    call(d, "eth_subscribe", ["newHeads"], session)
    call(d, "eth_subscribe", ["logs"], session)
    call(d, "eth_subscribe", ["newHeads"], other)
    assert hub.count() == 3 and hub.count("newHeads") == 2
    session.close()
    assert hub.count() == 1
    trio.run(hub.publish_new_head, {"number": "0x1"})
    assert session.messages == [] and len(other.messages) == 1
    # A closed session cannot subscribe again.
    assert call(d, "eth_subscribe", ["newHeads"], session)["error"]["code"] == -32004
    assert hub.count() == 1


def test_per_session_cap() -> None:
    d = Dispatcher()
    hub = SubscriptionHub(max_per_session=2)
    hub.install(d)
    session = MemorySession()
    call(d, "eth_subscribe", ["newHeads"], session)
    call(d, "eth_subscribe", ["newHeads"], session)
    assert call(d, "eth_subscribe", ["newHeads"], session)["error"]["code"] == -32005


def test_failing_session_is_dropped() -> None:
    class Broken(MemorySession):
        async def send(self, message: bytes) -> None:
            raise OSError("gone")

    d, hub = setup_hub()
    call(d, "eth_subscribe", ["newHeads"], Broken())
    ok = MemorySession()
    call(d, "eth_subscribe", ["newHeads"], ok)
    trio.run(hub.publish_new_head, {"number": "0x1"})
    assert hub.count() == 1 and len(ok.messages) == 1
