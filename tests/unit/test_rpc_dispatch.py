"""JSON-RPC 2.0 dispatch (rpc.dispatch), parameter parsers (rpc.params) and errors (rpc.errors).

The dispatch cases are the examples of the JSON-RPC 2.0 specification plus the edge cases an
Ethereum node meets: id types, parameter counts, handler failures, batch limits.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio

from cybermiles_node.errors import NonceTooLow
from rpc import params as p
from rpc.dispatch import Dispatcher
from rpc.errors import (
    ExecutionReverted,
    InvalidParams,
    LimitExceeded,
    ResourceNotFound,
    RpcError,
    TransactionRejected,
)
from rpc.session import MemorySession, Session

# -- fixtures --------------------------------------------------------------------------------


class Fatal(Exception):
    pass


class DuckError(Exception):
    """Not an RpcError, but carries code/message/data (like cybermiles_node.errors.TxRejected)."""

    def __init__(self) -> None:
        super().__init__("duck")
        self.code = 42
        self.message = "quack"
        self.data = {"why": "duck"}


def make_dispatcher(**kwargs: Any) -> Dispatcher:
    d = Dispatcher(**kwargs)
    d.register("subtract", lambda a, b: a - b)
    d.register("subtract_named", lambda o: o["minuend"] - o["subtrahend"], named_params=True)
    d.register("sum", lambda *xs: sum(xs))
    d.register("update", lambda *xs: None)
    d.register("notify_hello", lambda *xs: None)
    d.register("notify_sum", lambda *xs: None)
    d.register("get_data", lambda: ["hello", 5])
    d.register("three", lambda a, b, c=3: [a, b, c])
    d.register("boom", lambda: 1 // 0)
    d.register("reject", _reject)
    d.register("duck", _duck)
    d.register("nonce", _nonce)
    d.register("fatal", _fatal)
    d.register("unserialisable", lambda: {1, 2})
    d.register("nan", lambda: float("nan"))
    d.register("big", lambda n: "x" * n)

    async def async_echo(x: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return x

    d.register("async_echo", async_echo)
    d.register("wrapped_async", lambda x: async_echo(x))  # returns a coroutine
    d.register(
        "whoami", lambda session: None if session is None else session.id, wants_session=True
    )
    return d


def _reject() -> None:
    raise TransactionRejected("nope", "0x01")


def _duck() -> None:
    raise DuckError()


def _nonce() -> None:
    raise NonceTooLow("nonce too low: next nonce 5, tx nonce 1")


def _fatal() -> None:
    raise Fatal("invariant broken")


def handle(d: Dispatcher, payload: bytes | str, session: Session | None = None) -> Any:
    raw = trio.run(d.handle, payload, session)
    if raw is None:
        return None
    assert isinstance(raw, bytes)
    return json.loads(raw)


def assert_error(response: Any, code: int, rid: Any = None) -> dict[str, Any]:
    assert response["jsonrpc"] == "2.0"
    assert "result" not in response
    assert response["id"] == rid and type(response["id"]) is type(rid)
    assert response["error"]["code"] == code, response
    assert isinstance(response["error"]["message"], str)
    return dict(response["error"])


# -- the specification's examples ------------------------------------------------------------

SPEC_CASES = [
    (
        '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
        {"jsonrpc": "2.0", "result": 19, "id": 1},
    ),
    (
        '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
        {"jsonrpc": "2.0", "result": -19, "id": 2},
    ),
    (
        '{"jsonrpc": "2.0", "method": "subtract_named", '
        '"params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
        {"jsonrpc": "2.0", "result": 19, "id": 3},
    ),
    ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
    ('{"jsonrpc": "2.0", "method": "foobar"}', None),
    (
        '{"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 4], "id": "1"}',
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
    ),
]


@pytest.mark.parametrize(("request_text", "expected"), SPEC_CASES)
def test_spec_successes(request_text: str, expected: Any) -> None:
    assert handle(make_dispatcher(), request_text) == expected


ERROR_CASES = [
    # (request, code, id echoed)
    ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}', -32601, "1"),
    ('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]', -32700, None),
    ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}', -32600, None),
    (
        '[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
        '{"jsonrpc": "2.0", "method"]',
        -32700,
        None,
    ),
    ("[]", -32600, None),
    ("", -32700, None),
    ("nul", -32700, None),
    (b"\xff\xfe\x00garbage", -32700, None),
    ('{"jsonrpc": "2.0", "method": "sum", "params": [NaN], "id": 1}', -32700, None),
    ("[" * 100_000 + "]" * 100_000, -32700, None),
    ('"just a string"', -32600, None),
    ("42", -32600, None),
    ("null", -32600, None),
    ('{"jsonrpc": "1.0", "method": "sum", "id": 7}', -32600, 7),
    ('{"method": "sum", "id": 7}', -32600, 7),
    ('{"jsonrpc": "2.0", "method": "sum", "params": "bar", "id": 7}', -32600, 7),
    ('{"jsonrpc": "2.0", "method": "sum", "params": 3, "id": 7}', -32600, 7),
    ('{"jsonrpc": "2.0", "id": 7}', -32600, 7),
    ('{"jsonrpc": "2.0", "method": "sum", "id": true}', -32600, None),
    ('{"jsonrpc": "2.0", "method": "sum", "id": {"a": 1}}', -32600, None),
    ('{"jsonrpc": "2.0", "method": "sum", "id": [1]}', -32600, None),
    ('{"jsonrpc": "2.0", "method": "sum", "id": 1e999}', -32600, None),
    # object params for a method that takes an array
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"a": 1, "b": 2}, "id": 8}', -32602, 8),
    # parameter counts: three(a, b, c=3)
    ('{"jsonrpc": "2.0", "method": "three", "params": [], "id": 9}', -32602, 9),
    ('{"jsonrpc": "2.0", "method": "three", "params": [1], "id": 9}', -32602, 9),
    ('{"jsonrpc": "2.0", "method": "three", "params": [1, 2, 3, 4], "id": 9}', -32602, 9),
    ('{"jsonrpc": "2.0", "method": "get_data", "params": [1], "id": 9}', -32602, 9),
]


@pytest.mark.parametrize(("request_text", "code", "rid"), ERROR_CASES)
def test_spec_errors(request_text: str | bytes, code: int, rid: Any) -> None:
    assert_error(handle(make_dispatcher(), request_text), code, rid)


def test_method_not_found_message() -> None:
    e = assert_error(
        handle(make_dispatcher(), '{"jsonrpc":"2.0","method":"nope","id":1}'), -32601, 1
    )
    assert e["message"] == "the method nope does not exist/is not available"


def test_param_count_messages() -> None:
    d = make_dispatcher()
    e = assert_error(handle(d, '{"jsonrpc":"2.0","method":"three","params":[1],"id":1}'), -32602, 1)
    assert e["message"] == "missing value for required argument 1"
    e = assert_error(
        handle(d, '{"jsonrpc":"2.0","method":"three","params":[1,2,3,4],"id":1}'), -32602, 1
    )
    assert e["message"] == "too many arguments, want at most 3"


@pytest.mark.parametrize(("params", "result"), [([1, 2], [1, 2, 3]), ([1, 2, 9], [1, 2, 9])])
def test_optional_trailing_params(params: Any, result: Any) -> None:
    request = {"jsonrpc": "2.0", "method": "three", "params": params, "id": 1}
    assert handle(make_dispatcher(), json.dumps(request))["result"] == result


def test_responses_are_compact() -> None:
    raw = trio.run(make_dispatcher().handle, '{"jsonrpc":"2.0","method":"get_data","id":1}', None)
    assert raw == b'{"jsonrpc":"2.0","id":1,"result":["hello",5]}'


def test_sync_handler_returning_a_coroutine_is_awaited() -> None:
    request = '{"jsonrpc":"2.0","method":"wrapped_async","params":[5],"id":1}'
    assert handle(make_dispatcher(), request)["result"] == 5


def test_params_omitted_or_null_means_none() -> None:
    d = make_dispatcher()
    for request in (
        '{"jsonrpc":"2.0","method":"get_data","id":1}',
        '{"jsonrpc":"2.0","method":"get_data","params":null,"id":1}',
        '{"jsonrpc":"2.0","method":"get_data","params":[],"id":1}',
    ):
        assert handle(d, request)["result"] == ["hello", 5]


def test_spec_mixed_batch() -> None:
    batch = """[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]"""
    out = handle(make_dispatcher(), batch)
    assert isinstance(out, list) and len(out) == 5
    assert out[0] == {"jsonrpc": "2.0", "result": 7, "id": "1"}
    assert out[1] == {"jsonrpc": "2.0", "result": 19, "id": "2"}
    assert_error(out[2], -32600, None)
    assert_error(out[3], -32601, "5")
    assert out[4] == {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}


@pytest.mark.parametrize("batch", ["[1]", "[1,2,3]"])
def test_batch_of_non_objects(batch: str) -> None:
    out = handle(make_dispatcher(), batch)
    assert isinstance(out, list) and len(out) == len(json.loads(batch))
    for response in out:
        assert_error(response, -32600, None)


def test_batch_of_notifications_gives_nothing() -> None:
    batch = """[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "no_such_method"},
        {"jsonrpc": "2.0", "method": "boom"},
        {"jsonrpc": "2.0", "method": "three", "params": [1]}
    ]"""
    assert trio.run(make_dispatcher().handle, batch, None) is None


def test_batch_order_preserved_and_ids_echoed_with_type() -> None:
    ids: list[Any] = [1, "1", None, 1.5, -3, 2**70, "", 0]
    batch = [
        {"jsonrpc": "2.0", "method": "async_echo", "params": [i], "id": rid}
        for i, rid in enumerate(ids)
    ]
    raw = trio.run(make_dispatcher().handle, json.dumps(batch), None)
    assert raw is not None
    out = json.loads(raw)
    assert [r["result"] for r in out] == list(range(len(ids)))
    for response, rid in zip(out, ids, strict=True):
        assert response["id"] == rid and type(response["id"]) is type(rid)
    assert b'"id":1.5' in raw and b'"id":"1"' in raw and b'"id":null' in raw


# Ids that web3-cmt.js and other clients send: numbers (large ones too), floats, strings, null.
ECHOED_IDS: list[Any] = [
    0,
    7,
    -3,
    2**64,
    2**70 + 1,
    10**30,
    1.5,
    0.1,
    -2.25,
    1e20,
    "",
    "7",
    "x y",
    None,
]


def _echoes(response: Any, rid: Any) -> bool:
    return response["id"] == rid and type(response["id"]) is type(rid)


@pytest.mark.parametrize("rid", ECHOED_IDS)
def test_single_call_echoes_the_id_with_its_json_type(rid: Any) -> None:
    d = make_dispatcher()
    text = json.dumps({"jsonrpc": "2.0", "method": "subtract", "params": [3, 1], "id": rid})
    raw = trio.run(d.handle, text, None)
    assert raw is not None
    assert _echoes(json.loads(raw), rid)
    # the id's JSON text itself: an integer never becomes a float or a string
    assert f'"id":{json.dumps(rid)}'.encode() in raw


@pytest.mark.parametrize("rid", ECHOED_IDS)
def test_errors_echo_the_id_with_its_json_type(rid: Any) -> None:
    d = make_dispatcher()
    for method, params, code in [
        ("nope", [], -32601),
        ("three", [1], -32602),
        ("three", [1, 2, 3, 4], -32602),
        ("subtract", {"a": 1}, -32602),
        ("boom", [], -32603),
        ("reject", [], -32003),
        ("duck", [], 42),
    ]:
        text = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": rid})
        assert_error(handle(d, text), code, rid)
    wrong_version = json.dumps({"jsonrpc": "1.0", "method": "sum", "id": rid})
    assert_error(handle(d, wrong_version), -32600, rid)


def test_batches_echo_each_id_with_its_json_type_errors_and_refusals_included() -> None:
    d = make_dispatcher(max_response_bytes=10_000)
    methods = [("subtract", [5, 2]), ("nope", []), ("three", [1]), ("boom", []), ("big", [20_000])]
    batch = [
        {
            "jsonrpc": "2.0",
            "method": methods[i % len(methods)][0],
            "params": methods[i % len(methods)][1],
            "id": rid,
        }
        for i, rid in enumerate(ECHOED_IDS)
    ]
    out = handle(d, json.dumps(batch))
    assert len(out) == len(ECHOED_IDS)
    for response, rid in zip(out, ECHOED_IDS, strict=True):
        assert _echoes(response, rid), (response, rid)


# -- web3-cmt.js pads params with nulls up to the arity it declares ---------------------------


@pytest.mark.parametrize(
    ("method", "params", "result"),
    [
        ("get_data", [None], ["hello", 5]),
        ("get_data", [None, None, None], ["hello", 5]),
        ("subtract", [5, 2, None], 3),
        ("three", [1, 2, 9, None, None], [1, 2, 9]),
        ("three", [1, 2, None], [1, 2, None]),  # within the arity: the handler gets the null
    ],
)
def test_trailing_nulls_beyond_the_arity_are_dropped(
    method: str, params: list[Any], result: Any
) -> None:
    request = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
    assert handle(make_dispatcher(), json.dumps(request))["result"] == result


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("get_data", [0]),
        ("get_data", [None, 0]),  # a non-null surplus value behind a null
        ("get_data", [False, None]),
        ("subtract", [5, 2, 0, None]),
        ("subtract", [5, 2, "", None]),
        ("three", [1, 2, 3, [], None]),
    ],
)
def test_a_non_null_surplus_argument_is_still_invalid_params(
    method: str, params: list[Any]
) -> None:
    calls: list[list[Any]] = []
    d = make_dispatcher()
    d.register("get_data", lambda: calls.append([]) or ["hello", 5])
    request = {"jsonrpc": "2.0", "method": method, "params": params, "id": 4}
    error = assert_error(handle(d, json.dumps(request)), -32602, 4)
    assert error["message"].startswith("too many arguments")
    assert calls == []  # the handler never ran


def test_null_padding_is_tolerated_in_batches_and_never_fills_required_arguments() -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "subtract", "params": [9, 4, None, None], "id": 1},
        {"jsonrpc": "2.0", "method": "subtract", "params": [9, None], "id": 2},
        {"jsonrpc": "2.0", "method": "get_data", "params": [None, 1], "id": 3},
    ]
    out = handle(make_dispatcher(), json.dumps(batch))
    assert out[0]["result"] == 5
    assert_error(out[1], -32603, 2)  # None reached the handler: 9 - None fails inside it
    assert_error(out[2], -32602, 3)


def test_batch_too_large() -> None:
    d = make_dispatcher(max_batch=3)
    batch = json.dumps([{"jsonrpc": "2.0", "method": "get_data", "id": i} for i in range(4)])
    e = assert_error(handle(d, batch), -32005, None)
    assert e["message"] == "batch too large (limit 3 requests)"
    ok = json.dumps([{"jsonrpc": "2.0", "method": "get_data", "id": i} for i in range(3)])
    assert len(handle(d, ok)) == 3


def test_handler_exception_is_internal_error_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    d = make_dispatcher()
    with caplog.at_level(logging.ERROR, logger="rpc.dispatch"):
        e = assert_error(handle(d, '{"jsonrpc":"2.0","method":"boom","id":1}'), -32603, 1)
    assert e == {"code": -32603, "message": "internal error", "data": "ZeroDivisionError"}
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    # The dispatcher keeps working, in a batch too.
    out = handle(
        d,
        '[{"jsonrpc":"2.0","method":"boom","id":1},{"jsonrpc":"2.0","method":"sum",'
        '"params":[1,1],"id":2}]',
    )
    assert_error(out[0], -32603, 1)
    assert out[1]["result"] == 2


def test_rpc_errors_and_duck_typed_errors_keep_code_message_data() -> None:
    d = make_dispatcher()
    e = assert_error(handle(d, '{"jsonrpc":"2.0","method":"reject","id":1}'), -32003, 1)
    assert e == {"code": -32003, "message": "nope", "data": "0x01"}
    e = assert_error(handle(d, '{"jsonrpc":"2.0","method":"duck","id":1}'), 42, 1)
    assert e == {"code": 42, "message": "quack", "data": {"why": "duck"}}
    e = assert_error(handle(d, '{"jsonrpc":"2.0","method":"nonce","id":1}'), 1, 1)
    assert e == {"code": 1, "message": "nonce too low: next nonce 5, tx nonce 1"}


def test_fatal_exceptions_propagate() -> None:
    d = make_dispatcher(fatal=(Fatal,))
    with pytest.raises(Fatal):
        trio.run(d.handle, '{"jsonrpc":"2.0","method":"fatal","id":1}', None)
    # Without `fatal`, it is just an internal error.
    assert_error(handle(make_dispatcher(), '{"jsonrpc":"2.0","method":"fatal","id":1}'), -32603, 1)


def test_unserialisable_results_are_internal_errors() -> None:
    d = make_dispatcher()
    assert_error(handle(d, '{"jsonrpc":"2.0","method":"unserialisable","id":1}'), -32603, 1)
    assert_error(handle(d, '{"jsonrpc":"2.0","method":"nan","id":1}'), -32603, 1)
    out = handle(
        d,
        '[{"jsonrpc":"2.0","method":"nan","id":1},{"jsonrpc":"2.0","method":"get_data","id":2}]',
    )
    assert_error(out[0], -32603, 1)
    assert out[1]["result"] == ["hello", 5]


def test_response_size_limit() -> None:
    d = make_dispatcher(max_response_bytes=1000)
    e = assert_error(
        handle(d, '{"jsonrpc":"2.0","method":"big","params":[2000],"id":1}'), -32005, 1
    )
    assert "response too large" in e["message"]
    batch = json.dumps(
        [{"jsonrpc": "2.0", "method": "big", "params": [300], "id": i} for i in range(5)]
    )
    out = handle(d, batch)
    assert [r["id"] for r in out] == [0, 1, 2, 3, 4]
    assert out[0]["result"] == "x" * 300 and out[1]["result"] == "x" * 300
    for r in out[2:]:
        assert_error(r, -32005, r["id"])


def test_session_is_passed_to_handlers_that_want_it() -> None:
    d = make_dispatcher()
    session = MemorySession()
    assert handle(d, '{"jsonrpc":"2.0","method":"whoami","id":1}', session)["result"] == session.id
    assert handle(d, '{"jsonrpc":"2.0","method":"whoami","id":1}')["result"] is None
    # The session parameter is not counted as a JSON param.
    assert_error(handle(d, '{"jsonrpc":"2.0","method":"whoami","params":[1],"id":1}'), -32602, 1)


def test_bytes_str_and_bytearray_payloads() -> None:
    d = make_dispatcher()
    text = '{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}'
    for payload in (text, text.encode(), bytearray(text.encode())):
        assert handle(d, payload)["result"] == 3  # type: ignore[arg-type]


def test_registration_inspects_signature() -> None:
    d = Dispatcher()

    def needs_kw(a: int, *, k: int) -> None: ...

    with pytest.raises(TypeError):
        d.register("x", needs_kw)
    with pytest.raises(TypeError):
        d.register("y", lambda: None, wants_session=True)
    d.register("z", lambda a, *, k=1: a)
    assert "z" in d and d.methods() == ["z"]
    assert d.unregister("z") and "z" not in d


# -- batch handlers ------------------------------------------------------------------------


def test_batch_handler_receives_all_calls_and_results_keep_order() -> None:
    seen: list[list[list[Any]]] = []

    def single(raw: str) -> str:
        return "single:" + raw

    async def many(calls: list[list[Any]]) -> list[Any]:
        seen.append(calls)
        return [
            InvalidParams("bad tx")
            if c[0] == "bad"
            else ValueError("x")
            if c[0] == "oops"
            else "batch:" + c[0]
            for c in calls
        ]

    d = Dispatcher()
    d.register("send", single, batch=many)
    d.register("other", lambda: "other")
    batch = [
        {"jsonrpc": "2.0", "method": "send", "params": ["a"], "id": 1},
        {"jsonrpc": "2.0", "method": "other", "id": 2},
        {"jsonrpc": "2.0", "method": "send", "params": ["bad"], "id": 3},
        {"jsonrpc": "2.0", "method": "send", "params": [], "id": 4},  # wrong arity: not passed
        {"jsonrpc": "2.0", "method": "send", "params": ["n"]},  # notification: run, no answer
        {"jsonrpc": "2.0", "method": "send", "params": ["oops"], "id": 6},
    ]
    out = handle(d, json.dumps(batch))
    assert seen == [[["a"], ["bad"], ["n"], ["oops"]]]
    assert [r["id"] for r in out] == [1, 2, 3, 4, 6]
    assert out[0]["result"] == "batch:a" and out[1]["result"] == "other"
    assert_error(out[2], -32602, 3)
    assert_error(out[3], -32602, 4)
    assert_error(out[4], -32603, 6)
    # A single request uses the single handler.
    assert handle(d, '{"jsonrpc":"2.0","method":"send","params":["s"],"id":1}')["result"] == (
        "single:s"
    )


def test_failing_batch_handler_falls_back_to_each_call_alone() -> None:
    """A batch handler that breaks on one entry (or miscounts) must not fail the others: each
    call is answered by the single handler, and only the entry that breaks it gets an error."""

    def single(raw: str) -> str:
        if raw == "poison":
            raise KeyError(raw)
        return "single:" + raw

    def many(calls: list[list[Any]]) -> list[Any]:
        if ["poison"] in calls:
            raise KeyError("poison")
        return ["only one"]

    d = Dispatcher()
    d.register("send", single, batch=many)
    d.register("other", lambda: "other")
    batch = [
        {"jsonrpc": "2.0", "method": "send", "params": ["a"], "id": 1},
        {"jsonrpc": "2.0", "method": "send", "params": ["poison"], "id": 2},
        {"jsonrpc": "2.0", "method": "send", "params": ["b"], "id": 3},
        {"jsonrpc": "2.0", "method": "other", "id": 4},
    ]
    out = handle(d, json.dumps(batch))
    assert [r.get("result") for r in out] == ["single:a", None, "single:b", "other"]
    assert_error(out[1], -32603, 2)
    miscounted = handle(d, json.dumps([batch[0], batch[2]]))
    assert [r["result"] for r in miscounted] == ["single:a", "single:b"]


# -- params ----------------------------------------------------------------------------------

QUANTITY_OK = [
    ("0x0", 0),
    ("0x1", 1),
    ("0xff", 255),
    ("0xFF", 255),
    ("0X1a", 26),
    ("0x" + "f" * 64, 2**256 - 1),
]
QUANTITY_BAD = [
    "0x",
    "0x00",
    "0x01",
    "1",
    "ff",
    "0xg",
    "0x1_0",
    " 0x1",
    "0x1 ",
    "0x-1",
    "0x1" + "0" * 64,
    "",
    1,
    0,
    True,
    None,
    1.5,
    ["0x1"],
    "０x1",
]


@pytest.mark.parametrize(("text", "value"), QUANTITY_OK)
def test_quantity_ok(text: str, value: int) -> None:
    assert p.quantity(text, "q") == value


@pytest.mark.parametrize("value", QUANTITY_BAD)
def test_quantity_bad(value: object) -> None:
    with pytest.raises(InvalidParams) as info:
        p.quantity(value, "gasPrice")
    assert "gasPrice" in info.value.message and info.value.code == -32602


def test_quantity_messages() -> None:
    with pytest.raises(InvalidParams, match="leading zero"):
        p.quantity("0x01", "q")
    with pytest.raises(InvalidParams, match="256 bits"):
        p.quantity("0x1" + "0" * 64, "q")


@pytest.mark.parametrize(
    ("text", "value"), [("0x", b""), ("0x00", b"\x00"), ("0x00ff", b"\x00\xff"), ("0XAB", b"\xab")]
)
def test_data_ok(text: str, value: bytes) -> None:
    assert p.data(text, "d") == value


@pytest.mark.parametrize(
    "value", ["0xabc", "0xzz", "0xab cd", "0xab  cd", "abcd", "", "0x\u00e9\u00e9", None, 12, b"0x"]
)
def test_data_bad(value: object) -> None:
    with pytest.raises(InvalidParams, match="input"):
        p.data(value, "input")


@pytest.mark.parametrize(
    ("text", "value"),
    [("0x0", 0), ("0x00", 0), ("0x01", 1), ("0X1F", 31), ("0x" + "f" * 64, 2**256 - 1)],
)
def test_storage_slot_ok(text: str, value: int) -> None:
    """Slots come as quantities or as 32-byte data: leading zeros are fine."""
    assert p.storage_slot(text, "slot") == value


@pytest.mark.parametrize(
    "value",
    ["0x-1", "0x+1", "0x1_0", "0x 1", " 0x1", "0x", "0x" + "0" * 65, "1", "0xg", 1, None, ["0x1"]],
)
def test_storage_slot_bad_is_invalid_params_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidParams) as info:
        p.storage_slot(value, "storageKeys[2]")
    assert info.value.code == -32602
    assert info.value.message.startswith("invalid storageKeys[2]: ")


CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        (CHECKSUMMED, bytes.fromhex(CHECKSUMMED[2:])),
        (CHECKSUMMED.lower(), bytes.fromhex(CHECKSUMMED[2:])),
        ("0x" + CHECKSUMMED[2:].upper(), bytes.fromhex(CHECKSUMMED[2:])),
        ("0x" + "00" * 20, bytes(20)),
    ],
)
def test_address_ok(text: str, raw: bytes) -> None:
    assert p.address(text, "a") == raw


@pytest.mark.parametrize(
    "value",
    [
        "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # one letter's case flipped
        "0x" + "00" * 19,
        "0x" + "00" * 21,
        "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        None,
    ],
)
def test_address_bad(value: object) -> None:
    with pytest.raises(InvalidParams, match="to"):
        p.address(value, "to")


def test_checksum_and_hash32() -> None:
    assert p.to_checksum(bytes.fromhex(CHECKSUMMED[2:])) == CHECKSUMMED
    assert p.hash32("0x" + "11" * 32, "h") == b"\x11" * 32
    with pytest.raises(InvalidParams, match="blockHash"):
        p.hash32("0x" + "11" * 31, "blockHash")


H = "0x" + "ab" * 32


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("latest", "latest"),
        ("earliest", "earliest"),
        ("pending", "pending"),
        ("safe", "safe"),
        ("finalized", "finalized"),
        ("0x10", 16),
        ({"blockNumber": "0x10"}, p.BlockRef(number=16)),
        ({"blockNumber": "latest"}, p.BlockRef(tag="latest")),
        ({"blockHash": H}, p.BlockRef(hash=bytes.fromhex(H[2:]))),
        (
            {"blockHash": H, "requireCanonical": True},
            p.BlockRef(hash=bytes.fromhex(H[2:]), require_canonical=True),
        ),
    ],
)
def test_block_tag_ok(value: object, expected: object) -> None:
    assert p.block_tag(value, "block") == expected


@pytest.mark.parametrize(
    "value",
    [
        "Latest",
        "0x010",
        16,
        None,
        {},
        {"blockNumber": "0x1", "blockHash": H},
        {"blockNumber": "0x1", "requireCanonical": True},
        {"blockHash": H, "requireCanonical": "yes"},
        {"blockHash": "0x12"},
        {"blockNumber": "0x01"},
        {"number": "0x1"},
    ],
)
def test_block_tag_bad(value: object) -> None:
    with pytest.raises(InvalidParams, match="block"):
        p.block_tag(value, "block")


def test_block_ref_normalises() -> None:
    assert p.block_ref("0x5", "b") == p.BlockRef(number=5)
    assert p.block_ref("pending", "b") == p.BlockRef(tag="pending")
    assert p.block_ref({"blockNumber": "0x5"}, "b") == p.BlockRef(number=5)


def test_bool_optional_and_formatters() -> None:
    assert p.bool_param(True, "full") is True
    with pytest.raises(InvalidParams, match="full"):
        p.bool_param("true", "full")
    assert p.optional(p.quantity, None, "q", 7) == 7
    assert p.optional(p.quantity, "0x8", "q", 7) == 8
    assert p.optional_quantity(None, "q") is None and p.optional_data("0x01", "d") == b"\x01"
    assert p.optional_address(None, "a") is None
    assert p.hex_quantity(0) == "0x0" and p.hex_quantity(255) == "0xff"
    with pytest.raises(ValueError):
        p.hex_quantity(-1)
    assert p.hex_data(b"") == "0x" and p.hex_data(b"\x00\xff") == "0x00ff"
    for n in (0, 1, 15, 16, 2**256 - 1):
        assert p.quantity(p.hex_quantity(n), "q") == n


# -- errors ----------------------------------------------------------------------------------


def test_error_objects() -> None:
    assert RpcError(-1, "m").to_json() == {"code": -1, "message": "m"}
    assert RpcError(-1, "m", [1]).to_json() == {"code": -1, "message": "m", "data": [1]}
    assert ResourceNotFound().to_json() == {"code": -32001, "message": "resource not found"}
    assert LimitExceeded("too many").code == -32005
    reverted = ExecutionReverted("Ownable: caller is not the owner", b"\x08\xc3\x79\xa0")
    assert reverted.to_json() == {
        "code": 3,
        "message": "execution reverted: Ownable: caller is not the owner",
        "data": "0x08c379a0",
    }
    assert ExecutionReverted().to_json() == {
        "code": 3,
        "message": "execution reverted",
        "data": "0x",
    }
