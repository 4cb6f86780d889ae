"""The HTTP + WebSocket server (rpc.server) on a real socket: 127.0.0.1, port 0.

Each test runs `serve` in a trio nursery and drives it with blocking stdlib / `websockets` clients
in a worker thread (`trio.to_thread.run_sync`); every client socket has a timeout and the whole
test a deadline, so a regression fails instead of hanging.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import pytest
import trio
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from rpc.dispatch import Dispatcher
from rpc.server import RpcApp, ServerLimits, WebSocketSession, serve
from rpc.subscriptions import SubscriptionHub

T = TypeVar("T")
TIMEOUT = 5.0


def make_dispatcher() -> tuple[Dispatcher, SubscriptionHub]:
    d = Dispatcher()
    d.register("echo", lambda x: x)
    d.register("sum", lambda *xs: sum(xs))
    d.register("boom", lambda: 1 // 0)
    hub = SubscriptionHub()
    hub.install(d)
    return d, hub


def run_server(client: Callable[[int], T], dispatcher: Dispatcher, **serve_kwargs: Any) -> T:
    """Start `serve` on port 0, run `client(port)` in a thread, stop the server."""
    results: list[T] = []

    async def main() -> None:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(
                    partial(serve, dispatcher, host="127.0.0.1", port=0, **serve_kwargs)
                )
                assert isinstance(port, int) and port > 0
                results.append(await trio.to_thread.run_sync(client, port))
                nursery.cancel_scope.cancel()

    trio.run(main)
    return results[0]


def post(
    port: int, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(
            method, "/", body=body, headers=headers or {"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def rpc(port: int, method: str, params: list[Any], rid: Any = 1) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode()
    status, _, raw = post(port, body)
    assert status == 200
    return json.loads(raw)


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll a condition (evaluated in the trio thread) until it holds."""
    deadline = time.monotonic() + timeout
    while not trio.from_thread.run_sync(condition):
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


# -- HTTP ------------------------------------------------------------------------------------


def test_http_single_batch_notifications_and_errors() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        assert rpc(port, "echo", ["hi"]) == {"jsonrpc": "2.0", "id": 1, "result": "hi"}
        batch = [{"jsonrpc": "2.0", "id": i, "method": "sum", "params": [i, 1]} for i in range(500)]
        status, headers, raw = post(port, json.dumps(batch).encode())
        assert status == 200 and headers["content-type"] == "application/json"
        assert [r["result"] for r in json.loads(raw)] == [i + 1 for i in range(500)]
        # Only notifications: 200 with an empty body.
        status, _, raw = post(port, b'{"jsonrpc":"2.0","method":"echo","params":[1]}')
        assert (status, raw) == (200, b"")
        # The content type is not checked.
        status, _, raw = post(
            port,
            b'{"jsonrpc":"2.0","id":"a","method":"echo","params":[2]}',
            {"Content-Type": "text/plain"},
        )
        assert json.loads(raw)["result"] == 2
        # Garbage: parse error, and the server goes on.
        for garbage in (b"\x00\xff\xfe garbage", b"", b"{", b"[]"):
            status, _, raw = post(port, garbage)
            assert status == 200
            assert json.loads(raw)["error"]["code"] in (-32700, -32600)
        assert rpc(port, "boom", [])["error"]["code"] == -32603
        assert rpc(port, "echo", [3])["result"] == 3

    run_server(client, d)


def test_http_keep_alive_connection() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        for i in range(20):
            body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "echo", "params": [i]})
            conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
            assert json.loads(conn.getresponse().read())["result"] == i
        conn.close()

    run_server(client, d)


def test_get_options_and_other_methods() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        status, _, raw = post(port, b"", {}, method="GET")
        assert status == 200
        assert json.loads(raw) == {
            "jsonrpc": "2.0",
            "result": "cybermiles node: POST JSON-RPC here",
        }
        status, headers, _ = post(
            port,
            b"",
            {
                "Origin": "http://dapp.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
            method="OPTIONS",
        )
        assert status == 204
        assert headers["access-control-allow-origin"] == "*"
        assert "POST" in headers["access-control-allow-methods"]
        assert headers["access-control-allow-headers"] == "content-type"
        status, headers, _ = post(port, b"x", {}, method="PUT")
        assert status == 405 and "POST" in headers["allow"]
        status, headers, _ = post(
            port,
            b'{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}',
            {"Origin": "http://dapp.example"},
        )
        assert status == 200 and headers["access-control-allow-origin"] == "*"

    run_server(client, d, cors_origins=("*",))


def test_cors_restricted_origins() -> None:
    d, _ = make_dispatcher()
    body = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}'

    def client(port: int) -> None:
        _, headers, _ = post(port, body, {"Origin": "http://good"})
        assert headers["access-control-allow-origin"] == "http://good"
        status, headers, raw = post(port, body, {"Origin": "http://evil"})
        assert "access-control-allow-origin" not in headers
        _, headers, _ = post(port, body)  # no Origin: not a browser, always served
        assert "access-control-allow-origin" not in headers
        with pytest.raises(InvalidStatus):
            with connect(
                f"ws://127.0.0.1:{port}/", origin=Origin("http://evil"), open_timeout=TIMEOUT
            ):
                pass
        with connect(
            f"ws://127.0.0.1:{port}/",
            origin=Origin("http://good"),
            open_timeout=TIMEOUT,
        ) as ws:
            ws.send(body.decode())
            assert json.loads(ws.recv(timeout=TIMEOUT))["result"] == 1

    run_server(client, d, cors_origins=("http://good",))


def test_declared_10mb_body_is_refused_unread() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        head = (
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10485760\r\n\r\n"
        )
        response = raw_exchange(port, head + b"[" * 1000)
        status_line, _, body = response.partition(b"\r\n")
        assert status_line.startswith(b"HTTP/1.1 413")
        error = json.loads(body.split(b"\r\n\r\n", 1)[1])
        assert error == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": -32600,
                "message": f"request body too large (limit {5 * 2**20} bytes)",
            },
        }
        assert rpc(port, "echo", ["still here"])["result"] == "still here"

    run_server(client, d)


def test_streamed_body_over_the_limit_is_refused() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        head = b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"258\r\n" + b" " * 600 + b"\r\n"  # 600 bytes
        response = raw_exchange(port, head + chunk + chunk)
        assert response.startswith(b"HTTP/1.1 413")
        assert b"request body too large (limit 1000 bytes)" in response
        # Under the limit, chunked works.
        small = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}'
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small)
        response = raw_exchange(
            port, head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + body
        )
        assert response.startswith(b"HTTP/1.1 200")
        assert rpc(port, "echo", ["ok"])["result"] == "ok"

    run_server(client, d, limits=ServerLimits(max_body_bytes=1000))


def test_full_10mb_upload_does_not_stop_the_server() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        body = b'["' + b"a" * (10 * 2**20) + b'"]'
        try:
            status, _, raw = post(port, body)
        except OSError:
            pass  # the server may reset the connection while the client is still sending
        else:
            assert status == 413 and b"-32600" in raw
        assert rpc(port, "echo", ["alive"])["result"] == "alive"

    run_server(client, d)


# -- WebSocket -------------------------------------------------------------------------------


def test_websocket_request_response() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
            ws.send('{"jsonrpc":"2.0","id":1,"method":"echo","params":["text"]}')
            assert json.loads(ws.recv(timeout=TIMEOUT)) == {
                "jsonrpc": "2.0",
                "id": 1,
                "result": "text",
            }
            ws.send(b'{"jsonrpc":"2.0","id":2,"method":"echo","params":["binary"]}')
            assert json.loads(ws.recv(timeout=TIMEOUT))["result"] == "binary"
            ws.send("this is not json")
            assert json.loads(ws.recv(timeout=TIMEOUT))["error"]["code"] == -32700
            ws.send('{"jsonrpc":"2.0","method":"echo","params":["notification"]}')
            ws.send('[{"jsonrpc":"2.0","id":3,"method":"sum","params":[1,2]},{"jsonrpc":"2.0"}]')
            batch = json.loads(ws.recv(timeout=TIMEOUT))  # the notification had no answer
            assert batch[0] == {"jsonrpc": "2.0", "id": 3, "result": 3}
            assert batch[1]["error"]["code"] == -32600

    run_server(client, d)


def test_websocket_garbage_and_oversized_frames_end_only_that_connection() -> None:
    d, _ = make_dispatcher()

    def client(port: int) -> None:
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT, close_timeout=1) as ws:
            ws.socket.sendall(b"\x8f\x05garbage that is no websocket frame" * 10)
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT, close_timeout=1) as big:
            big.send("x" * 5000)
            with pytest.raises(ConnectionClosed):
                big.recv(timeout=TIMEOUT)
        assert rpc(port, "echo", ["alive"])["result"] == "alive"
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws2:
            ws2.send('{"jsonrpc":"2.0","id":1,"method":"echo","params":["ws alive"]}')
            assert json.loads(ws2.recv(timeout=TIMEOUT))["result"] == "ws alive"

    run_server(client, d, limits=ServerLimits(max_body_bytes=1000))


def test_subscription_notifications_and_close() -> None:
    d, hub = make_dispatcher()

    def client(port: int) -> None:
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
            ws.send('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
            sub_id = json.loads(ws.recv(timeout=TIMEOUT))["result"]
            ws.send('{"jsonrpc":"2.0","id":2,"method":"eth_subscribe","params":["logs"]}')
            logs_id = json.loads(ws.recv(timeout=TIMEOUT))["result"]
            assert trio.from_thread.run_sync(hub.count) == 2
            trio.from_thread.run(hub.publish_new_head, {"number": "0x7"})
            assert json.loads(ws.recv(timeout=TIMEOUT)) == {
                "jsonrpc": "2.0",
                "method": "eth_subscription",
                "params": {"subscription": sub_id, "result": {"number": "0x7"}},
            }
            log = {"address": "0x" + "11" * 20, "topics": [], "data": "0x"}
            trio.from_thread.run(hub.publish_logs, [log, log])
            for _ in range(2):
                note = json.loads(ws.recv(timeout=TIMEOUT))
                assert note["params"] == {"subscription": logs_id, "result": log}
            ws.send(
                json.dumps(
                    {"jsonrpc": "2.0", "id": 3, "method": "eth_unsubscribe", "params": [logs_id]}
                )
            )
            assert json.loads(ws.recv(timeout=TIMEOUT))["result"] is True
            assert trio.from_thread.run_sync(hub.count) == 1
        # The client went away: its subscriptions go too.
        wait_until(lambda: hub.count() == 0)
        # Over HTTP, subscriptions are not supported.
        assert rpc(port, "eth_subscribe", ["newHeads"])["error"] == {
            "code": -32004,
            "message": "notifications not supported",
        }

    run_server(client, d)


# -- pieces without a socket -----------------------------------------------------------------


def test_slow_websocket_client_is_closed_not_buffered() -> None:
    """A client that reads nothing: the queue fills, the session closes, memory stays bounded."""
    d, hub = make_dispatcher()
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        session = WebSocketSession(max_messages=3)
        closed = trio.Event()
        session.on_close(closed.set)
        incoming_send, incoming = trio.open_memory_channel[dict[str, Any]](10)

        async def asgi_send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "websocket.send":
                await trio.sleep_forever()  # the client's TCP window is full

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(session.run, d, incoming.receive, asgi_send)
                await incoming_send.send(
                    {
                        "type": "websocket.receive",
                        "text": '{"jsonrpc":"2.0","id":1,"method":"eth_subscribe",'
                        '"params":["newHeads"]}',
                    }
                )
                while hub.count() == 0:
                    await trio.sleep(0.001)
                for i in range(10):
                    await hub.publish_new_head({"number": hex(i)})
                await closed.wait()
        assert session.closed and session.overflowed
        assert hub.count() == 0

    trio.run(main)
    # One message got stuck in the socket, the rest never left the bounded queue; then the close.
    assert [m["type"] for m in sent] == ["websocket.send", "websocket.close"]
    assert sent[-1]["code"] == 1008


def test_lifespan_events_are_acknowledged() -> None:
    d, _ = make_dispatcher()
    app = RpcApp(d)
    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(events)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    trio.run(app, {"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


def test_fatal_handler_exception_stops_serve() -> None:
    class Invariant(Exception):
        pass

    def broken() -> None:
        raise Invariant("state is inconsistent")

    d = Dispatcher(fatal=(Invariant,))
    d.register("broken", broken)
    d.register("echo", lambda x: x)

    def client(port: int) -> None:
        assert rpc(port, "echo", [1])["result"] == 1
        try:
            status, _, _ = post(port, b'{"jsonrpc":"2.0","id":1,"method":"broken"}')
        except OSError:
            pass  # the server may go down before it answers
        else:
            assert status == 500

    async def main() -> None:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                port = await nursery.start(partial(serve, d, host="127.0.0.1", port=0))
                await trio.to_thread.run_sync(client, port)
                await trio.sleep_forever()  # serve raising ends this

    with pytest.RaisesGroup(Invariant, flatten_subgroups=True):
        trio.run(main)


# -- a request that waits holds up only itself ------------------------------------------------


class Gate:
    """`wait` handlers park until `open` is called; `running` counts the parked ones."""

    def __init__(self) -> None:
        self.event = trio.Event()
        self.running = 0
        self.most = 0

    async def wait(self, tag: str) -> str:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.event.wait()
        finally:
            self.running -= 1
        return tag

    def open(self) -> bool:
        self.event.set()
        return True


def gated_dispatcher() -> tuple[Dispatcher, Gate]:
    d, _ = make_dispatcher()
    gate = Gate()
    d.register("wait", gate.wait)
    d.register("open", gate.open)
    return d, gate


def ws_call(ws: Any, rid: int, method: str, params: list[Any]) -> None:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))


def test_a_waiting_websocket_request_blocks_neither_its_connection_nor_others() -> None:
    d, gate = gated_dispatcher()

    def client(port: int) -> None:
        url = f"ws://127.0.0.1:{port}/"
        with connect(url, open_timeout=TIMEOUT) as ws, connect(url, open_timeout=TIMEOUT) as other:
            ws_call(ws, 1, "wait", ["first"])
            wait_until(lambda: gate.running == 1)
            # later requests on the same connection are answered while the first one waits
            ws_call(ws, 2, "echo", ["same connection"])
            assert json.loads(ws.recv(timeout=TIMEOUT)) == {
                "jsonrpc": "2.0",
                "id": 2,
                "result": "same connection",
            }
            ws_call(other, 7, "echo", ["other connection"])
            assert json.loads(other.recv(timeout=TIMEOUT))["result"] == "other connection"
            assert rpc(port, "echo", ["http"])["result"] == "http"
            assert gate.running == 1  # still waiting
            ws_call(ws, 3, "open", [])
            answers = {json.loads(ws.recv(timeout=TIMEOUT))["id"] for _ in range(2)}
            assert answers == {1, 3}

    run_server(client, d)


def test_in_flight_requests_of_one_connection_are_capped() -> None:
    d, gate = gated_dispatcher()

    def client(port: int) -> None:
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
            for rid in range(5):
                ws_call(ws, rid, "wait", [str(rid)])
            wait_until(lambda: gate.running == 2)
            ws_call(ws, 10, "echo", ["queued behind the cap"])
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.3)  # the cap holds: nothing was answered, nothing more ran
            assert trio.from_thread.run_sync(lambda: gate.running) == 2
            assert rpc(port, "open", [])["result"] is True
            ids = {json.loads(ws.recv(timeout=TIMEOUT))["id"] for _ in range(6)}
            assert ids == {0, 1, 2, 3, 4, 10}
            assert gate.most == 2

    run_server(client, d, limits=ServerLimits(ws_max_in_flight=2))


def test_requests_that_do_not_wait_are_handled_in_arrival_order() -> None:
    d, _ = make_dispatcher()
    seen: list[int] = []
    d.register("note", lambda n: seen.append(n) or n)
    count = 300

    def client(port: int) -> None:
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
            for n in range(count):
                ws_call(ws, n, "note", [n])
            answered = [json.loads(ws.recv(timeout=TIMEOUT))["id"] for _ in range(count)]
            assert sorted(answered) == list(range(count))

    run_server(client, d)
    assert seen == list(range(count))
