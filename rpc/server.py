"""HTTP and WebSocket transport for a `Dispatcher`, as an ASGI app served by hypercorn on trio.

One port serves both, on any path (as geth does):

- HTTP POST: the body is one JSON-RPC message; the answer is 200 application/json with the
  dispatcher's response (an empty body when the message held only notifications). JSON-RPC
  errors are 200 too. The content type of the request is not checked. A body larger than
  `max_body_bytes` is refused with 413 and a JSON-RPC error (-32600) as soon as the declared
  Content-Length, or the bytes streamed so far, exceed the limit; the rest is never read.
- HTTP GET without upgrade: 200 with a one-line JSON banner (a health check for load balancers).
  OPTIONS: CORS preflight (204). Anything else: 405.
- WebSocket: each text or binary message is one JSON-RPC message, handled one after another;
  responses are text messages. The connection has a `WebSocketSession`, so eth_subscribe works.
  Outgoing messages wait in a bounded queue; a client too slow to drain notifications has its
  connection closed (code 1008) and its subscriptions dropped, so memory stays bounded.
- ASGI lifespan events are acknowledged.

CORS: `cors_origins` lists the allowed origins ("*" allows any). Responses to an allowed origin
carry Access-Control-Allow-Origin; a WebSocket handshake from an origin that is not allowed is
refused (browsers do not apply CORS to WebSockets). Requests without an Origin header (non-browser
clients) are always served.

`serve` runs until cancelled and reports the bound port through `task_status` (port 0 works).
Nothing a client sends can stop it: the dispatcher never raises, and anything else a connection
does wrong ends that connection only. The one exception is the dispatcher's `fatal` types (a
broken node invariant): `serve` re-raises such an exception in its own task, so the node stops.

The node's other HTTP endpoints (the Tendermint-style status endpoint, Prometheus metrics) are
read-only: they subclass `GetApp` (lifespan acknowledged, WebSocket refused, GET routed to a
synchronous `get(path, query)`, anything else 405) and run under `serve_asgi`, which uses the same
hypercorn settings as `serve`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Final, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from rpc.dispatch import Dispatcher
from rpc.errors import InternalError, InvalidRequest, RpcError
from rpc.session import SessionBase

__all__ = ["GetApp", "HttpResponse", "RpcApp", "WebSocketSession", "serve", "serve_asgi"]

log = logging.getLogger(__name__)

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
HttpResponse = tuple[int, bytes, Headers]  # status, body, headers (content-length is added)

BANNER: Final = b'{"jsonrpc":"2.0","result":"cybermiles node: POST JSON-RPC here"}'
WS_QUEUE_SIZE: Final = 10_000
WS_CLOSE_QUEUE_FULL: Final = 1008
CLOSE_TIMEOUT_S: Final = 5.0
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]


def _error_body(error: RpcError) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": error.to_json()}, separators=(",", ":")
    ).encode()


class WebSocketSession(SessionBase):
    """A WebSocket connection as a `Session`: outgoing messages go through a bounded queue.

    Responses (`send_response`) wait for room in the queue, which throttles a client that sends
    requests faster than it reads answers. Notifications (`send`) never wait: if the queue is
    full the session closes, which ends the connection and drops its subscriptions.
    """

    def __init__(self, queue_size: int = WS_QUEUE_SIZE) -> None:
        super().__init__()
        self._out, self._queue = trio.open_memory_channel[bytes](queue_size)
        self._cancel_scope = trio.CancelScope()
        self.overflowed = False

    async def send(self, message: bytes) -> None:
        if self.closed:
            return
        try:
            self._out.send_nowait(message)
        except trio.WouldBlock:
            log.warning("WebSocket session %d: send queue full, closing it", self.id)
            self.overflowed = True
            self.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def send_response(self, message: bytes) -> None:
        if self.closed:
            return
        try:
            await self._out.send(message)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._out.close()
        self._cancel_scope.cancel()

    async def run_writer(self, asgi_send: Send) -> None:
        """Forward queued messages to the client until the session closes."""
        async with self._queue:
            async for message in self._queue:
                await asgi_send({"type": "websocket.send", "text": message.decode()})

    async def run(self, dispatcher: Dispatcher, receive: Receive, asgi_send: Send) -> None:
        """Serve an accepted connection until the client leaves or the session closes."""
        try:
            with self._cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.run_writer, asgi_send)
                    while True:
                        event = await receive()
                        kind = event["type"]
                        if kind == "websocket.receive":
                            payload = event.get("text")
                            if payload is None:
                                payload = event.get("bytes")
                            if payload is None:
                                continue
                            response = await dispatcher.handle(payload, self)
                            if response is not None:
                                await self.send_response(response)
                        elif kind == "websocket.disconnect":
                            break
                    nursery.cancel_scope.cancel()
        finally:
            overflowed = self.overflowed
            self.close()
        if overflowed:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await asgi_send(
                    {"type": "websocket.close", "code": WS_CLOSE_QUEUE_FULL, "reason": "queue full"}
                )


class RpcApp:
    """The ASGI application: JSON-RPC over HTTP POST and WebSocket."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        max_body_bytes: int = 5 * 2**20,
        cors_origins: tuple[str, ...] = ("*",),
        ws_queue_size: int = WS_QUEUE_SIZE,
    ) -> None:
        self.dispatcher = dispatcher
        self.max_body_bytes = max_body_bytes
        self.cors_origins = cors_origins
        self.ws_queue_size = ws_queue_size
        # An exception of a type in `dispatcher.fatal` raised by a handler: `serve` re-raises it.
        self.fatal_error: BaseException | None = None
        self.fatal_event = trio.Event()
        self.too_large_body = _error_body(
            InvalidRequest(f"request body too large (limit {max_body_bytes} bytes)")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        try:
            if kind == "http":
                await self._http(scope, receive, send)
            elif kind == "websocket":
                await self._websocket(scope, receive, send)
            elif kind == "lifespan":
                await self._lifespan(receive, send)
        except Exception as exc:
            fatal = _find(exc, self.dispatcher.fatal)
            if fatal is None:
                # A broken connection (or a bug) ends this connection only.
                log.debug("RPC connection ended with an error", exc_info=True)
            elif self.fatal_error is None:
                self.fatal_error = fatal
                self.fatal_event.set()

    # -- lifespan -----------------------------------------------------------------------------

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        await _lifespan(receive, send)

    # -- CORS ---------------------------------------------------------------------------------

    def _allowed_origin(self, scope: Scope) -> bytes | None:
        """The Access-Control-Allow-Origin value for this request, or None."""
        origin = _header(scope, b"origin")
        if origin is None or not self.cors_origins:
            return None
        if "*" in self.cors_origins:
            return b"*"
        return origin if origin.decode("latin-1") in self.cors_origins else None

    def _origin_refused(self, scope: Scope) -> bool:
        return _header(scope, b"origin") is not None and self._allowed_origin(scope) is None

    # -- HTTP ---------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        headers = list(_JSON_HEADERS)
        allow = self._allowed_origin(scope)
        if allow is not None:
            headers.append((b"access-control-allow-origin", allow))
            if allow != b"*":
                headers.append((b"vary", b"origin"))
        if method == "POST":
            body = await self._read_body(scope, receive)
            if body is None:
                await _respond(
                    send, 413, self.too_large_body, headers + [(b"connection", b"close")]
                )
                return
            try:
                response = await self.dispatcher.handle(body, None)
            except Exception as exc:  # the dispatcher does not raise; this is a safety net
                if self.dispatcher.fatal and isinstance(exc, self.dispatcher.fatal):
                    raise
                log.exception("dispatcher failed")
                response = _error_body(InternalError("internal error", type(exc).__name__))
            await _respond(send, 200, response or b"", headers)
        elif method == "GET" or method == "HEAD":
            await _respond(send, 200, BANNER, headers)
        elif method == "OPTIONS":
            preflight: list[tuple[bytes, bytes]] = []
            if allow is not None:
                requested = _header(scope, b"access-control-request-headers") or b"content-type"
                preflight = headers[1:] + [
                    (b"access-control-allow-methods", b"POST, GET, OPTIONS"),
                    (b"access-control-allow-headers", requested),
                    (b"access-control-max-age", b"600"),
                ]
            await _respond(send, 204, b"", preflight)
        else:
            await _respond(send, 405, b"", [(b"allow", b"POST, GET, OPTIONS")])

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The request body, or None (unread) if it exceeds `max_body_bytes`."""
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    return None
            except ValueError:
                pass  # h11 has already rejected malformed lengths
        chunks: list[bytes] = []
        total = 0
        while True:
            event = await receive()
            if event["type"] != "http.request":
                return b""  # http.disconnect: nothing to answer anyway
            chunk = event.get("body", b"")
            total += len(chunk)
            if total > limit:
                return None
            chunks.append(chunk)
            if not event.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- WebSocket ----------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        if self._origin_refused(scope):
            await send({"type": "websocket.close", "code": 1008, "reason": "origin not allowed"})
            return
        await send({"type": "websocket.accept"})
        session = WebSocketSession(self.ws_queue_size)
        await session.run(self.dispatcher, receive, send)


class GetApp:
    """The ASGI shell of a read-only HTTP endpoint: subclasses implement `get`.

    `get(path, query)` receives the percent-decoded path and the raw query string and returns
    (status, body, headers). It runs on the event loop, so it must be quick. Whatever it raises
    becomes a 500 for that request only: a client can never stop the server.
    """

    def get(self, path: str, query: str) -> HttpResponse:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        try:
            if kind == "http":
                await _respond(send, *self._answer(scope))
            elif kind == "websocket":
                await receive()  # websocket.connect
                # Closing before accepting refuses the handshake (HTTP 403).
                await send({"type": "websocket.close", "code": 1003})
            elif kind == "lifespan":
                await _lifespan(receive, send)
        except Exception:
            log.debug("%s connection ended with an error", type(self).__name__, exc_info=True)

    def _answer(self, scope: Scope) -> HttpResponse:
        if scope["method"] != "GET":
            return 405, b"", [(b"allow", b"GET")]
        # The query string is ASCII on the wire; latin-1 maps any stray byte instead of failing.
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        try:
            return self.get(scope["path"], query)
        except Exception:
            log.exception("%s failed on %s", type(self).__name__, scope["path"])
            return 500, b"internal error", [(b"content-type", b"text/plain")]


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge ASGI startup and shutdown (the apps hold no resources of their own)."""
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _find(exc: BaseException, types: tuple[type[BaseException], ...]) -> BaseException | None:
    """`exc`, or the first exception inside it (exception groups), that is one of `types`."""
    if not types:
        return None
    if isinstance(exc, types):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, types)
            if found is not None:
                return found
    return None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers + [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def hypercorn_config(
    host: str, port: int, max_body_bytes: int, logger: logging.Logger | None = None
) -> Config:
    """The hypercorn settings the RPC server runs with."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logger or logging.getLogger("rpc.server.hypercorn")
    config.keep_alive_timeout = 120.0
    config.keep_alive_max_requests = 2**31
    config.websocket_max_message_size = max_body_bytes
    config.include_server_header = False
    config.graceful_timeout = 1.0
    return config


def _port_of(bind: str) -> int:
    # hypercorn reports binds as "http://127.0.0.1:8545" or "http://[::1]:8545".
    return int(bind.rsplit(":", 1)[1])


async def _start_hypercorn(
    nursery: trio.Nursery, app: Any, host: str, port: int, max_body_bytes: int
) -> int:
    """Bind and start hypercorn in `nursery`; returns the bound port (the real one for port 0)."""
    config = hypercorn_config(host, port, max_body_bytes)
    binds: list[str] = await nursery.start(
        partial(hypercorn_serve, cast(Any, app), config, mode="asgi")
    )
    return _port_of(binds[0]) if binds else port


async def serve_asgi(
    app: Any,
    *,
    host: str,
    port: int,
    name: str,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    max_body_bytes: int = 2**20,
) -> None:
    """Serve any ASGI `app` (e.g. a `GetApp`) until cancelled; reports the bound port.

    `name` labels the log line ("status endpoint listening on 127.0.0.1:26657").
    """
    async with trio.open_nursery() as nursery:
        actual_port = await _start_hypercorn(nursery, app, host, port, max_body_bytes)
        log.info("%s listening on %s:%d", name, host, actual_port)
        task_status.started(actual_port)


async def serve(
    dispatcher: Dispatcher,
    *,
    host: str = "127.0.0.1",
    port: int = 8545,
    max_body_bytes: int = 5 * 2**20,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    cors_origins: tuple[str, ...] = ("*",),
    ws_queue_size: int = WS_QUEUE_SIZE,
) -> None:
    """Serve JSON-RPC over HTTP and WebSocket until cancelled; reports the bound port."""
    app = RpcApp(
        dispatcher,
        max_body_bytes=max_body_bytes,
        cors_origins=cors_origins,
        ws_queue_size=ws_queue_size,
    )
    async with trio.open_nursery() as nursery:
        actual_port = await _start_hypercorn(nursery, app, host, port, max_body_bytes)
        log.info("JSON-RPC listening on %s:%d (HTTP and WebSocket)", host, actual_port)
        task_status.started(actual_port)
        await app.fatal_event.wait()
        assert app.fatal_error is not None
        raise app.fatal_error
