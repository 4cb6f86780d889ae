"""The pure parts of the RPC resource limits (issue #8, parts 4 and 7), in process.

- eth_feeHistory's rewardPercentiles validation;
- the log-subscription index: exactly the pairwise matcher's answer (Hypothesis), at a cost
  proportional to the matching subscriptions;
- subscription caps per connection and per node;
- polled-filter quotas per owner and per node;
- the batch budget (cost units and time) answering the tail of a batch with -32005;
- the response-size budget;
- the byte-bounded WebSocket queue;
- origin matching, and no cross-origin access by default.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node.operator.config import DEVNET_CORS_ORIGINS, RpcConfig
from rpc.budget import BatchBudget, ResponseBudget
from rpc.dispatch import Dispatcher
from rpc.errors import InvalidParams, LimitExceeded
from rpc.eth import reward_percentiles
from rpc.filters import FilterRegistry, LogFilter, log_json_matches
from rpc.log_index import LogIndex
from rpc.origins import origin_allowed
from rpc.server import OutboundQueue, RpcApp, WebSocketSession
from rpc.session import MemorySession, Session
from rpc.subscriptions import SubscriptionHub

# -- eth_feeHistory percentiles -------------------------------------------------------------


def test_percentiles_accepted() -> None:
    assert reward_percentiles([]) == []
    assert reward_percentiles([0, 25.5, 50, 100]) == [0.0, 25.5, 50.0, 100.0]
    assert reward_percentiles([50, 50]) == [50.0, 50.0]  # repeats allowed, as geth
    assert len(reward_percentiles([i * 0.5 for i in range(100)])) == 100


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("50", "expected an array"),
        ({"a": 1}, "expected an array"),
        ([i / 10 for i in range(101)], "101 percentiles, at most 100"),
        (list(range(1000)), "1000 percentiles, at most 100"),
        ([10, "20"], "rewardPercentiles[1]: expected a number"),
        ([True], "rewardPercentiles[0]: expected a number"),
        ([None], "rewardPercentiles[0]: expected a number"),
        ([-1], "rewardPercentiles[0]: expected a number from 0 to 100"),
        ([100.5], "rewardPercentiles[0]: expected a number from 0 to 100"),
        ([float("inf")], "rewardPercentiles[0]"),
        ([10, 5], "rewardPercentiles[1]: 5 is below"),
        ([10, 20, 15], "rewardPercentiles[2]: 15 is below"),
    ],
)
def test_percentiles_refused(value: object, fragment: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        reward_percentiles(value)
    assert caught.value.code == -32602
    assert fragment in caught.value.message


# -- the log index ----------------------------------------------------------------------------

ADDRESSES = [bytes([i]) * 20 for i in range(1, 5)]
TOPICS = [bytes([0xA0 + i]) * 32 for i in range(4)]

alternatives = st.lists(st.sampled_from(TOPICS), max_size=3).map(tuple)
position = st.one_of(st.none(), alternatives)
filters = st.builds(
    LogFilter,
    addresses=st.lists(st.sampled_from(ADDRESSES), max_size=3).map(tuple),
    topics=st.lists(position, max_size=4).map(tuple),
)
logs = st.builds(
    lambda address, topics: {
        "address": "0x" + address.hex(),
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x",
    },
    st.sampled_from(ADDRESSES),
    st.lists(st.sampled_from(TOPICS), max_size=4),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(filters, max_size=30),
    st.lists(logs, min_size=1, max_size=10),
    st.sets(st.integers(0, 29)),
)
def test_index_matches_exactly_what_the_pairwise_matcher_matches(
    installed: list[LogFilter], published: list[dict[str, Any]], removed: set[int]
) -> None:
    index = LogIndex[int]()
    for key, log_filter in enumerate(installed):
        index.add(key, log_filter)
    for key in removed:
        index.remove(key)
    live = {k: f for k, f in enumerate(installed) if k not in removed}
    assert len(index) == len(live)
    for log in published:
        expected = sorted(k for k, f in live.items() if log_json_matches(f, log))
        found = index.matching(log)
        assert sorted(found) == expected
        assert len(found) == len(set(found))  # never twice


def test_index_checks_only_filters_that_share_a_key_with_the_log() -> None:
    """10,000 subscriptions on distinct addresses: a log is checked against one of them."""
    index = LogIndex[int]()
    many = [i.to_bytes(20, "big") for i in range(1, 10_001)]
    for key, address in enumerate(many):
        index.add(key, LogFilter(addresses=(address,), topics=((TOPICS[0],),)))
    index.add(-1, LogFilter())  # one wildcard subscription
    log = {"address": "0x" + many[42].hex(), "topics": ["0x" + TOPICS[0].hex()]}
    assert len(index._candidates(log)) == 2
    assert sorted(index.matching(log)) == [-1, 42]
    index.remove(42)
    assert index.matching(log) == [-1]
    assert len(index._postings) == 9_999  # emptied postings are dropped


# -- subscription caps ------------------------------------------------------------------------


def call(d: Dispatcher, method: str, params: list[Any], session: Session | None) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    raw = trio.run(d.handle, body, session)
    assert raw is not None
    return json.loads(raw)


def test_subscription_caps_per_connection_and_per_node() -> None:
    d = Dispatcher()
    hub = SubscriptionHub(max_per_session=3, max_total=5)
    hub.install(d)
    first, second = MemorySession(), MemorySession()
    for _ in range(3):
        assert "result" in call(d, "eth_subscribe", ["newHeads"], first)
    error = call(d, "eth_subscribe", ["logs", {}], first)["error"]
    assert error["code"] == -32005
    assert "on this connection (limit 3)" in error["message"]
    for _ in range(2):
        assert "result" in call(d, "eth_subscribe", ["newHeads"], second)
    error = call(d, "eth_subscribe", ["newHeads"], second)["error"]
    assert error["code"] == -32005
    assert "on this node (limit 5)" in error["message"]
    first.close()  # its subscriptions are freed for everyone
    assert "result" in call(d, "eth_subscribe", ["newHeads"], second)
    assert hub.count() == 3


def test_log_notifications_keep_log_order_per_subscription() -> None:
    d = Dispatcher()
    hub = SubscriptionHub()
    hub.install(d)
    session = MemorySession()
    address = "0x" + ADDRESSES[0].hex()
    by_address = call(d, "eth_subscribe", ["logs", {"address": address}], session)["result"]
    everything = call(d, "eth_subscribe", ["logs", {}], session)["result"]
    published = [{"address": address, "topics": [], "logIndex": hex(i)} for i in range(5)] + [
        {"address": "0x" + ADDRESSES[1].hex(), "topics": [], "logIndex": "0x5"}
    ]
    trio.run(hub.publish_logs, published)
    seen: dict[str, list[str]] = {}
    for raw in session.messages:
        params = json.loads(raw)["params"]
        seen.setdefault(params["subscription"], []).append(params["result"]["logIndex"])
    assert seen[by_address] == [hex(i) for i in range(5)]
    assert seen[everything] == [hex(i) for i in range(6)]


# -- filter quotas ----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_filter_quota_per_owner_leaves_room_for_others() -> None:
    clock = FakeClock()
    registry = FilterRegistry(clock, timeout_s=300, max_filters=5, max_per_owner=2)
    mine = [registry.install_block_filter("attacker") for _ in range(2)]
    with pytest.raises(LimitExceeded, match="too many filters for this client \\(limit 2\\)"):
        registry.install_pending_filter("attacker")
    # Another client still gets filters; the attacker's quota frees as its filters go.
    assert registry.install_log_filter(LogFilter(), "honest")
    assert registry.uninstall(mine[0])
    assert registry.owned("attacker") == 1
    assert registry.install_block_filter("attacker")
    assert registry.owned("attacker") == 2


def test_global_filter_cap_and_owner_release() -> None:
    clock = FakeClock()
    registry = FilterRegistry(clock, timeout_s=300, max_filters=3, max_per_owner=2)
    registry.install_block_filter("a")
    registry.install_block_filter("a")
    registry.install_block_filter("b")
    with pytest.raises(LimitExceeded, match="too many filters on this node \\(limit 3\\)"):
        registry.install_block_filter("c")
    assert registry.drop_owner("a") == 2
    assert registry.owned("a") == 0 and len(registry) == 1
    registry.install_block_filter("c")
    clock.now += 301  # expiry releases quota too
    registry.install_block_filter("b")
    assert registry.owned("b") == 1 and registry.owned("c") == 0


# -- batch budget -----------------------------------------------------------------------------


def batch(
    d: Dispatcher, calls: list[tuple[str, list[Any]]], notify: frozenset[int] = frozenset()
) -> Any:
    body = [
        {"jsonrpc": "2.0", "method": m, "params": p} | ({} if i in notify else {"id": i})
        for i, (m, p) in enumerate(calls)
    ]
    raw = trio.run(d.handle, json.dumps(body), None)
    assert raw is not None
    return {item["id"]: item for item in json.loads(raw)}


def test_batch_cost_budget_answers_the_tail_with_errors() -> None:
    ran: list[int] = []
    d = Dispatcher(batch_budget=BatchBudget(max_cost=80, max_seconds=60, costs={"heavy": 30}))
    d.register("heavy", lambda i: ran.append(i) or i)
    d.register("cheap", lambda i: ran.append(i) or i)
    answers = batch(
        d,
        [
            ("heavy", [0]),
            ("heavy", [1]),
            ("cheap", [2]),
            ("heavy", [3]),
            ("cheap", [4]),
            ("cheap", [5]),
        ],
    )
    assert [answers[i]["result"] for i in range(3)] == [0, 1, 2]
    # 61 units spent: the next heavy call (30) does not fit; it and everything after it are
    # refused, cheap calls included, and never run.
    for i in (3, 4, 5):
        error = answers[i]["error"]
        assert error["code"] == -32005
        assert "batch budget exhausted (61 of 80 cost units spent" in error["message"]
    assert ran == [0, 1, 2]


def test_batch_time_budget() -> None:
    now = [0.0]
    d = Dispatcher(batch_budget=BatchBudget(max_cost=10**6, max_seconds=5), clock=lambda: now[0])

    def slow(i: int) -> int:
        now[0] += 2.0  # each call takes 2 s of the fake clock
        return i

    d.register("slow", slow)
    answers = batch(d, [("slow", [i]) for i in range(6)])
    assert [answers[i]["result"] for i in range(3)] == [0, 1, 2]  # started at 0, 2, 4 s
    for i in range(3, 6):
        assert answers[i]["error"]["code"] == -32005
        assert "more than 5 s" in answers[i]["error"]["message"]


def test_batch_budget_refuses_notifications_silently_and_groups_as_a_whole() -> None:
    d = Dispatcher(batch_budget=BatchBudget(max_cost=3, max_seconds=60))
    grouped: list[list[list[Any]]] = []
    d.register("one", lambda x: x)
    d.register(
        "raw", lambda x: x, batch=lambda calls: grouped.append(calls) or [c[0] for c in calls]
    )
    answers = batch(
        d,
        [("one", [0]), ("one", [1]), ("raw", [2]), ("one", [3]), ("raw", [4])],
        notify=frozenset({1}),
    )
    assert answers[0]["result"] == 0 and 1 not in answers
    # The two "raw" calls run as one group, charged together at the group's first member:
    # 2 + 2 > 3, so both are refused, and the call between them too.
    assert {i: answers[i]["error"]["code"] for i in (2, 3, 4)} == {2: -32005, 3: -32005, 4: -32005}
    assert grouped == []


def test_single_requests_have_no_batch_budget() -> None:
    d = Dispatcher(batch_budget=BatchBudget(max_cost=1, max_seconds=60, costs={"heavy": 50}))
    d.register("heavy", lambda: 1)
    assert call(d, "heavy", [], None)["result"] == 1


# -- response-size budget ---------------------------------------------------------------------


def test_response_budget_refuses_once_the_estimate_passes_the_limit() -> None:
    budget = ResponseBudget(1000, "the logs")
    budget.charge(600)
    budget.charge(400)  # exactly at the limit is fine
    with pytest.raises(LimitExceeded) as caught:
        budget.charge(1)
    assert caught.value.code == -32005
    assert "response too large: the logs would exceed 1000 bytes" in caught.value.message


# -- WebSocket outbound queue -----------------------------------------------------------------


def test_outbound_queue_is_bounded_in_bytes() -> None:
    queue = OutboundQueue(max_bytes=100, max_messages=1000)
    assert queue.put_nowait(b"x" * 60)
    assert not queue.put_nowait(b"x" * 41)  # 101 bytes
    assert queue.put_nowait(b"x" * 40)
    assert queue.queued_bytes == 100 and len(queue) == 2

    async def drain() -> list[int]:
        return [len(await queue.get() or b""), len(await queue.get() or b"")]

    assert trio.run(drain) == [60, 40]
    assert queue.put_nowait(b"x" * 500)  # an empty queue takes one message of any size
    queue.close()
    assert trio.run(queue.get) is None


def test_websocket_session_closes_when_notification_bytes_overflow() -> None:
    session = WebSocketSession(max_bytes=1000, max_messages=10_000)
    closed: list[bool] = []
    session.on_close(lambda: closed.append(True))

    async def flood() -> None:
        for _ in range(10):
            await session.send(b"n" * 150)  # nobody drains: the 7th does not fit

    trio.run(flood)
    assert session.overflowed and session.closed and closed == [True]
    assert session.queued_bytes == 0  # what was queued is released


# -- origins ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("http://localhost", True),
        ("http://LOCALHOST:8080", True),
        ("http://127.0.0.1:5173", True),
        ("http://[::1]:8000", True),
        ("https://localhost:3000", False),
        ("http://localhost.evil.com", False),
        ("http://localhost:3000.evil.com", False),
        ("http://localhost:", False),
        ("http://localhost:123456", False),
        ("http://evil.example", False),
        ("null", False),
    ],
)
def test_devnet_origins(origin: str, allowed: bool) -> None:
    assert origin_allowed(origin, DEVNET_CORS_ORIGINS) is allowed


def test_exact_and_any_origins() -> None:
    assert origin_allowed("https://app.example", ("https://app.example",))
    assert not origin_allowed("https://app.example:444", ("https://app.example",))
    assert origin_allowed("https://anything", ("*",))
    assert not origin_allowed("http://localhost:3000", ())


def test_no_cross_origin_access_by_default() -> None:
    assert RpcConfig().cors_origins == ()
    app = RpcApp(Dispatcher())
    assert app._allowed_origin({"headers": [(b"origin", b"http://localhost:3000")]}) is None
    assert app._origin_refused({"headers": [(b"origin", b"http://localhost:3000")]})
    assert not app._origin_refused({"headers": []})  # not a browser: served
