"""The Tendermint-style status endpoint (rpc.tendermint) as an HTTP shell over a `StatusSource`.

The source is a small fake: the endpoint under test only shapes HTTP and JSON. Most tests call
the ASGI app directly (`asgi_get`); a few go over real HTTP through hypercorn on an ephemeral port
(`serve_in_thread`), and a Hypothesis test fuzzes paths and query strings. The two helpers are
also used by the metrics tests.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from rpc.server import serve_asgi
from rpc.tendermint import INTERNAL_ERROR, INVALID_PARAMS, ROUTES, TendermintApp, height_error

T = TypeVar("T")
TIMEOUT = 5.0
LATEST = 5
PUB_KEY = {"type": "tendermint/PubKeyEd25519", "value": "AAAA"}


class FakeSource:
    """Five blocks; validators known up to height 6 (the next block's set)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None]] = []

    def node_info(self) -> dict[str, Any]:
        return {
            "id": "ab" * 20,
            "listen_addr": "tcp://127.0.0.1:26656",
            "network": "1234",
            "version": "0.1.0",
            "moniker": "node0",
            "channels": "20212223",
        }

    def sync_info(self) -> dict[str, Any]:
        return {
            "latest_block_hash": "00" * 32,
            "latest_app_hash": "11" * 32,
            "latest_block_height": str(LATEST),
            "latest_block_time": "2026-11-21T10:00:00Z",
            "catching_up": False,
        }

    def validator_info(self) -> dict[str, Any]:
        return {"address": "CD" * 20, "pub_key": PUB_KEY, "voting_power": "10"}

    def validators(self, height: int | None) -> dict[str, Any]:
        self.calls.append(("validators", height))
        entry = {
            "address": "CD" * 20,
            "pub_key": PUB_KEY,
            "voting_power": "10",
            "proposer_priority": "0",
        }
        return {
            "block_height": str(height or LATEST),
            "validators": [entry],
            "count": "1",
            "total": "1",
        }

    def net_info(self) -> dict[str, Any]:
        return {
            "listening": True,
            "listeners": ["tcp://127.0.0.1:26656"],
            "n_peers": "0",
            "peers": [],
        }

    def block(self, height: int | None) -> dict[str, Any]:
        self.calls.append(("block", height))
        return {
            "block_id": {"hash": "22" * 32},
            "block": {"header": {"height": str(height or LATEST)}},
        }

    def commit(self, height: int | None) -> dict[str, Any]:
        self.calls.append(("commit", height))
        if height == 2:
            raise KeyError("height 2 is pruned")  # the source's own LookupError message
        header = {"height": str(height or LATEST)}
        return {"signed_header": {"header": header, "commit": {}}, "canonical": True}


class BrokenSource(FakeSource):
    def net_info(self) -> dict[str, Any]:
        raise RuntimeError("bug")

    def block(self, height: int | None) -> dict[str, Any]:
        return {"not json": object()}


# ------------------------------------------------------------------------ clients


def asgi_get(
    app: Any, target: str, method: str = "GET", raw_query: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP request to an ASGI app in-process: (status, headers, body).

    The query string is the part of `target` after "?", or `raw_query` (any bytes) if given.
    """
    path, _, query = target.partition("?")
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode() if raw_query is None else raw_query,
        "headers": [],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    trio.run(app, scope, receive, send)
    start, body = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, body["body"]


def serve_in_thread(app: Any, client: Callable[[int], T]) -> T:
    """Serve `app` with `serve_asgi` on an ephemeral port; run `client(port)` in a thread."""
    results: list[T] = []

    async def main() -> None:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(
                    partial(serve_asgi, app, host="127.0.0.1", port=0, name="test endpoint")
                )
                results.append(await trio.to_thread.run_sync(client, port))
                nursery.cancel_scope.cancel()

    trio.run(main)
    return results[0]


def http_get(port: int, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, target)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def get_json(target: str, source: Any = None) -> dict[str, Any]:
    status, headers, body = asgi_get(TendermintApp(source or FakeSource()), target)
    assert status == 200, (status, body)
    assert headers["content-type"] == "application/json"
    answer: dict[str, Any] = json.loads(body)
    assert answer["jsonrpc"] == "2.0" and answer["id"] == -1
    return answer


def error_of(target: str, source: Any = None) -> dict[str, Any]:
    answer = get_json(target, source)
    assert "result" not in answer, answer
    error: dict[str, Any] = answer["error"]
    return error


# ------------------------------------------------------------------------ routes


def test_health_is_an_empty_result() -> None:
    assert get_json("/health") == {"jsonrpc": "2.0", "id": -1, "result": {}}


def test_status_combines_node_sync_and_validator_info() -> None:
    source = FakeSource()
    result = get_json("/status", source)["result"]
    assert result == {
        "node_info": source.node_info(),
        "sync_info": source.sync_info(),
        "validator_info": source.validator_info(),
    }


def test_validators_default_to_latest_and_take_a_height() -> None:
    source = FakeSource()
    result = get_json("/validators", source)["result"]
    assert result["validators"][0]["pub_key"]["type"] == "tendermint/PubKeyEd25519"
    assert result["validators"][0]["voting_power"] == "10"
    get_json("/validators?height=3", source)
    assert source.calls == [("validators", None), ("validators", 3)]


def test_validators_of_the_next_height_are_known() -> None:
    assert get_json(f"/validators?height={LATEST + 1}")["result"]["block_height"] == "6"
    error = error_of(f"/validators?height={LATEST + 2}")
    assert error["code"] == INTERNAL_ERROR
    assert error["data"] == (
        f"height {LATEST + 2} must be less than or equal to the current blockchain height "
        f"{LATEST + 1}"
    )


@pytest.mark.parametrize("query", ["height=3", 'height="3"', "height=%223%22", "height= 3 "])
def test_height_may_be_quoted_or_bare(query: str) -> None:
    source = FakeSource()
    get_json(f"/block?{query}", source)
    assert source.calls == [("block", 3)]


@pytest.mark.parametrize("query", ["", "height=", 'height=""', "other=1"])
def test_missing_or_empty_height_means_latest(query: str) -> None:
    source = FakeSource()
    get_json(f"/commit?{query}", source)
    assert source.calls == [("commit", None)]


@pytest.mark.parametrize(
    "value",
    [
        "0",
        "-1",
        "%2B1",
        "1.5",
        "1e3",
        "abc",
        "0x10",
        '"',
        '"5',
        "%EF%BC%91",
        "%00",
        "9" * 40,
        str(2**63),
        "%221%22%22",
    ],
)
def test_malformed_heights_are_invalid_params(value: str) -> None:
    for route in ("/block", "/commit", "/validators"):
        error = error_of(f"{route}?height={value}")
        assert error["code"] == INVALID_PARAMS, (route, value, error)
        assert error["message"] == "Invalid params"
        assert "height must be a positive integer" in error["data"]


def test_heights_above_the_chain_are_internal_errors_in_tendermint_words() -> None:
    for route in ("/block", "/commit"):
        error = error_of(f"{route}?height=9")
        assert error == {
            "code": INTERNAL_ERROR,
            "message": "Internal error",
            "data": "height 9 must be less than or equal to the current blockchain height 5",
        }


def test_a_lookup_error_of_the_source_is_passed_through() -> None:
    error = error_of("/commit?height=2")
    assert error == {
        "code": INTERNAL_ERROR,
        "message": "Internal error",
        "data": "height 2 is pruned",
    }


def test_height_error_helper_uses_the_tendermint_wording() -> None:
    assert str(height_error(7, 3)) == (
        "height 7 must be less than or equal to the current blockchain height 3"
    )


def test_block_commit_and_net_info_pass_the_source_through() -> None:
    assert get_json("/block?height=4")["result"]["block"]["header"]["height"] == "4"
    assert get_json("/commit")["result"]["canonical"] is True
    assert get_json("/net_info")["result"]["n_peers"] == "0"


def test_root_lists_the_routes() -> None:
    routes = get_json("/")["result"]["routes"]
    assert routes == sorted(ROUTES)
    assert {"/status", "/health", "/net_info"} <= set(routes)


def test_unknown_path_is_404_with_a_json_error() -> None:
    status, _, body = asgi_get(TendermintApp(FakeSource()), "/nope?x=1")
    assert status == 404
    assert json.loads(body)["error"]["code"] == -32601


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD", "OPTIONS"])
def test_only_get_is_served(method: str) -> None:
    status, headers, _ = asgi_get(TendermintApp(FakeSource()), "/status", method)
    assert status == 405
    assert headers["allow"] == "GET"


def test_a_failing_source_gets_an_error_answer_not_a_crash() -> None:
    error = error_of("/net_info", BrokenSource())
    assert error["code"] == INTERNAL_ERROR and error["data"] == "RuntimeError"
    error = error_of("/block", BrokenSource())  # unserialisable result
    assert error["code"] == INTERNAL_ERROR and error["data"] == "TypeError"


def test_websocket_is_refused_and_lifespan_acknowledged() -> None:
    app = TendermintApp(FakeSource())
    sent: list[dict[str, Any]] = []
    events = iter(
        [
            {"type": "lifespan.startup"},
            {"type": "lifespan.shutdown"},
            {"type": "websocket.connect"},
        ]
    )

    async def receive() -> Any:
        return next(events)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    trio.run(app, {"type": "lifespan"}, receive, send)
    trio.run(app, {"type": "websocket", "path": "/status"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
        "websocket.close",
    ]


# ------------------------------------------------------------------------ fuzz

_paths = st.one_of(
    st.sampled_from(["/", "/health", "/status", "/validators", "/net_info", "/block", "/commit"]),
    st.text(max_size=30).map(lambda t: "/" + t),
)
_queries = (
    st.one_of(
        st.text(max_size=60),
        st.builds(lambda v: f"height={v}", st.text(max_size=30)),
        st.builds(lambda v: f"height={v}", st.integers(min_value=-(2**70), max_value=2**70)),
    ).map(str.encode)
    | st.binary(max_size=40)
    | st.binary(max_size=30).map(lambda b: b"height=" + b)
)


@settings(max_examples=300, deadline=None)
@given(path=_paths, query=_queries)
def test_fuzzed_requests_always_get_a_json_answer(path: str, query: bytes) -> None:
    status, _, body = asgi_get(TendermintApp(FakeSource()), path, raw_query=query)
    assert status in (200, 404)
    answer = json.loads(body)
    assert ("result" in answer) != ("error" in answer)
    if "error" in answer:
        assert answer["error"]["code"] in (-32601, INVALID_PARAMS, INTERNAL_ERROR)


# ------------------------------------------------------------------------ real HTTP


def test_over_http_through_hypercorn() -> None:
    def client(port: int) -> list[tuple[int, dict[str, str], bytes]]:
        return [
            http_get(port, "/status"),
            http_get(port, "/block?height=%223%22"),
            http_get(port, "/block?height=x"),
            http_get(port, "/status", "POST"),
            http_get(port, "/missing"),
            http_get(port, "/health?%ff%fe=%00&&&=="),
        ]

    status, block, bad, post, missing, weird = serve_in_thread(TendermintApp(FakeSource()), client)
    assert status[0] == 200 and json.loads(status[2])["result"]["node_info"]["moniker"] == "node0"
    assert json.loads(block[2])["result"]["block"]["header"]["height"] == "3"
    assert bad[0] == 200 and json.loads(bad[2])["error"]["code"] == INVALID_PARAMS
    assert post[0] == 405
    assert missing[0] == 404
    assert weird[0] == 200 and json.loads(weird[2])["result"] == {}
