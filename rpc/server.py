"""HTTP and WebSocket transport for a `Dispatcher`, as an ASGI app served by hypercorn on trio.

One port serves both, on any path (as geth does):

- HTTP POST: the body is one JSON-RPC message; the answer is 200 application/json with the
  dispatcher's response (an empty body when the message held only notifications). JSON-RPC
  errors are 200 too. The content type of the request is not checked. A body larger than
  `max_body_bytes` is refused with 413 and a JSON-RPC error (-32600) as soon as the declared
  Content-Length, or the bytes streamed so far, exceed the limit; the rest is never read.
- HTTP GET without upgrade: 200 with a one-line JSON banner (a health check for load balancers).
  OPTIONS: CORS preflight (204). Anything else: 405.
- HTTP GET and HEAD under /explorer: the built-in explorer's static files (`rpc.static`), when the
  node serves it (`pages`); otherwise a 404 saying how to turn it on. Other methods on those
  paths are answered as on any path (POST is JSON-RPC).
- WebSocket: each text or binary message is one JSON-RPC message, handled in its own task, so
  a request that waits (a cmt_* transaction waits for its block) holds up neither the server
  nor later requests on the same connection; responses are text messages sent as they finish
  (JSON-RPC clients match them by id). At most `ws_max_in_flight` requests of one connection
  run at once; beyond that the next message is not read until one finishes. A new request's
  task takes its first step before the next message is read, so requests whose handlers do not
  wait (eth_sendRawTransaction, reads) are still handled in arrival order. The connection has
  a `WebSocketSession`, so eth_subscribe works.
  Outgoing messages wait in a queue bounded in bytes and in messages (`ServerLimits`); a client
  too slow to drain notifications has its connection closed (code 1008) and its subscriptions
  dropped, so memory stays bounded.
- ASGI lifespan events are acknowledged.

Resource limits (`ServerLimits`): at most `max_connections` HTTP + WebSocket connections are open
at once (`rpc.connections`: beyond the cap the server stops accepting, so waiting clients cost no
file descriptor); a connection without a request in progress (idle keep-alive, or request headers
not complete) is closed after `idle_timeout_s`; a request body must arrive within
`read_timeout_s` of its headers, or the answer is 408 and the connection is closed.

CORS: `cors_origins` lists the allowed origins (`rpc.origins`: exact origins, `scheme://host:*`
for any port, "*" for any origin); empty (the default) allows no cross-origin access. Responses
to an allowed origin carry Access-Control-Allow-Origin; a WebSocket handshake from an origin that
is not allowed is refused with 403 (browsers do not apply CORS to WebSockets). Requests without
an Origin header (non-browser clients) are always served. When the node serves the explorer, a
WebSocket handshake from the node's own origin (Origin = http(s)://<Host header>) is accepted
too: that is the explorer page (same-origin HTTP needs no CORS at all).

`serve` runs until cancelled and reports the bound port through `task_status` (port 0 works).
Nothing a client sends can stop it: the dispatcher never raises, and anything else a connection
does wrong ends that connection only. The one exception is the dispatcher's `fatal` types (a
broken node invariant): `serve` re-raises such an exception in its own task, so the node stops.

The node's other HTTP endpoints (the Tendermint-style status endpoint, Prometheus metrics) are
read-only: they subclass `GetApp` (lifespan acknowledged, WebSocket refused, GET routed to a
synchronous `get(path, query)`, anything else 405) and run under `serve_asgi`, which uses the same
hypercorn settings and connection cap machinery as `serve` (with `GET_APP_MAX_CONNECTIONS`).
"""

from __future__ import annotations

import json
import logging
import resource
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import trio
from hypercorn.config import Config

from rpc.connections import ConnectionSlots, serve_capped
from rpc.dispatch import Dispatcher
from rpc.errors import InternalError, InvalidRequest, RpcError
from rpc.origins import origin_allowed
from rpc.session import SessionBase, http_client
from rpc.static import EXPLORER_PREFIX, StaticSite, explorer_off_response, under_prefix

__all__ = [
    "GetApp",
    "HttpResponse",
    "OutboundQueue",
    "RpcApp",
    "ServerLimits",
    "WebSocketSession",
    "serve",
    "serve_asgi",
]

log = logging.getLogger(__name__)

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
HttpResponse = tuple[int, bytes, Headers]  # status, body, headers (content-length is added)

BANNER: Final = b'{"jsonrpc":"2.0","result":"cybermiles node: POST JSON-RPC here"}'
WS_CLOSE_POLICY: Final = 1008  # policy violation: too slow a reader, or a refused origin
CLOSE_TIMEOUT_S: Final = 5.0
GET_APP_MAX_CONNECTIONS: Final = 64  # status and metrics endpoints: a few scrapers and operators


@dataclass(frozen=True)
class ServerLimits:
    """What one client may cost the server (the `rpc.*` settings of the same names)."""

    max_body_bytes: int = 5 * 2**20  # request body, and a WebSocket message
    max_connections: int = 512  # HTTP + WebSocket connections open at once
    read_timeout_s: float = 30.0  # a request body must arrive within this after its headers
    idle_timeout_s: float = 30.0  # no request in progress (idle, or headers incomplete): close
    ws_queue_bytes: int = 4 * 2**20  # bytes waiting to be written to one WebSocket client
    ws_queue_messages: int = 10_000  # messages waiting to be written to one WebSocket client
    ws_max_in_flight: int = 32  # requests of one WebSocket connection being handled at once


_JSON_HEADERS: Final = [(b"content-type", b"application/json")]


def _error_body(error: RpcError) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": error.to_json()}, separators=(",", ":")
    ).encode()


class OutboundQueue:
    """Messages waiting to be written to one client, bounded in bytes and in count.

    A message that does not fit is refused (`put_nowait`) or waited for (`put`); an empty queue
    accepts one message of any size, so a response larger than the byte bound (responses are
    bounded by the dispatcher's max_response_bytes) still gets through.
    """

    def __init__(self, max_bytes: int, max_messages: int) -> None:
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.queued_bytes = 0
        self._items: deque[bytes] = deque()
        self._closed = False
        self._changed = trio.lowlevel.ParkingLot()

    def __len__(self) -> int:
        return len(self._items)

    def _has_room(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self.max_messages and self.queued_bytes + size <= self.max_bytes

    def _push(self, message: bytes) -> None:
        self._items.append(message)
        self.queued_bytes += len(message)
        self._changed.unpark_all()

    def put_nowait(self, message: bytes) -> bool:
        """Queue `message` if it fits; False if it does not (or the queue is closed)."""
        if self._closed or not self._has_room(len(message)):
            return False
        self._push(message)
        return True

    async def put(self, message: bytes) -> None:
        """Queue `message` once it fits; dropped if the queue closes meanwhile."""
        while not self._closed and not self._has_room(len(message)):
            await self._changed.park()
        if not self._closed:
            self._push(message)

    async def get(self) -> bytes | None:
        """The oldest message, waiting for one; None once the queue is closed."""
        while not self._items:
            if self._closed:
                return None
            await self._changed.park()
        message = self._items.popleft()
        self.queued_bytes -= len(message)
        self._changed.unpark_all()
        return message

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        self.queued_bytes = 0
        self._changed.unpark_all()


class WebSocketSession(SessionBase):
    """A WebSocket connection as a `Session`: outgoing messages go through an `OutboundQueue`.

    Responses (`send_response`) wait for room in the queue, which throttles a client that sends
    requests faster than it reads answers. Notifications (`send`) never wait: if they do not fit
    (the client does not read), the session closes, which ends the connection with code 1008 and
    drops its subscriptions.
    """

    def __init__(
        self,
        max_bytes: int = ServerLimits.ws_queue_bytes,
        max_messages: int = ServerLimits.ws_queue_messages,
    ) -> None:
        super().__init__()
        self._queue = OutboundQueue(max_bytes, max_messages)
        self._cancel_scope = trio.CancelScope()
        self.overflowed = False

    @property
    def queued_bytes(self) -> int:
        return self._queue.queued_bytes

    async def send(self, message: bytes) -> None:
        if self.closed:
            return
        if not self._queue.put_nowait(message):
            log.warning(
                "WebSocket session %d: client too slow (%d messages, %d bytes waiting), closing it",
                self.id,
                len(self._queue),
                self._queue.queued_bytes,
            )
            self.overflowed = True
            self.close()

    async def send_response(self, message: bytes) -> None:
        if not self.closed:
            await self._queue.put(message)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._queue.close()
        self._cancel_scope.cancel()

    async def run_writer(self, asgi_send: Send) -> None:
        """Forward queued messages to the client until the session closes."""
        while (message := await self._queue.get()) is not None:
            await asgi_send({"type": "websocket.send", "text": message.decode()})

    async def run(
        self,
        dispatcher: Dispatcher,
        receive: Receive,
        asgi_send: Send,
        max_in_flight: int = ServerLimits.ws_max_in_flight,
    ) -> None:
        """Serve an accepted connection until the client leaves or the session closes: each
        message is answered by its own task, at most `max_in_flight` at once."""
        in_flight = trio.Semaphore(max_in_flight)
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
                            await in_flight.acquire()
                            nursery.start_soon(self._answer, dispatcher, payload, in_flight)
                            # The new task's first step runs before the next message is read:
                            # handlers that never wait finish in it, in arrival order.
                            await trio.lowlevel.checkpoint()
                        elif kind == "websocket.disconnect":
                            break
                    nursery.cancel_scope.cancel()
        finally:
            overflowed = self.overflowed
            self.close()
        if overflowed:
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                await asgi_send(
                    {"type": "websocket.close", "code": WS_CLOSE_POLICY, "reason": "too slow"}
                )

    async def _answer(
        self, dispatcher: Dispatcher, payload: str | bytes, in_flight: trio.Semaphore
    ) -> None:
        try:
            response = await dispatcher.handle(payload, self)
            if response is not None:
                await self.send_response(response)
        finally:
            in_flight.release()


class RpcApp:
    """The ASGI application: JSON-RPC over HTTP POST and WebSocket."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        limits: ServerLimits = ServerLimits(),
        cors_origins: tuple[str, ...] = (),
        pages: StaticSite | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.limits = limits
        self.pages = pages
        self.max_body_bytes = max_body_bytes = limits.max_body_bytes
        self.cors_origins = cors_origins
        # An exception of a type in `dispatcher.fatal` raised by a handler: `serve` re-raises it.
        self.fatal_error: BaseException | None = None
        self.fatal_event = trio.Event()
        self.too_large_body = _error_body(
            InvalidRequest(f"request body too large (limit {max_body_bytes} bytes)")
        )
        self.body_timeout = _error_body(
            InvalidRequest(f"request body not received within {limits.read_timeout_s:g} s")
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
        return origin if origin_allowed(origin.decode("latin-1"), self.cors_origins) else None

    def _origin_refused(self, scope: Scope) -> bool:
        origin = _header(scope, b"origin")
        if origin is None or self._allowed_origin(scope) is not None:
            return False
        return not (self.pages is not None and _same_origin(origin, scope))

    # -- HTTP ---------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        headers = list(_JSON_HEADERS)
        allow = self._allowed_origin(scope)
        if allow is not None:
            headers.append((b"access-control-allow-origin", allow))
            if allow != b"*":
                headers.append((b"vary", b"origin"))
        if (method == "GET" or method == "HEAD") and under_prefix(scope["path"], EXPLORER_PREFIX):
            await self._page(scope, send, head=method == "HEAD")
        elif method == "POST":
            body = await self._body_or_refusal(scope, receive)
            if isinstance(body, tuple):
                status, error = body
                await _respond(send, status, error, headers + [(b"connection", b"close")])
                return
            http_client.set(_client_host(scope))
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

    async def _page(self, scope: Scope, send: Send, *, head: bool) -> None:
        if self.pages is None:
            status, body, headers = explorer_off_response()
        else:
            status, body, headers = self.pages.answer(
                scope["path"], _header(scope, b"if-none-match")
            )
        await _respond(send, status, body, headers, head=head)

    async def _body_or_refusal(self, scope: Scope, receive: Receive) -> bytes | tuple[int, bytes]:
        """The request body, or the (status, body) refusing it: too large, or too slow (a
        client that sends headers and then trickles or withholds the body holds a connection
        slot for at most `read_timeout_s`)."""
        with trio.move_on_after(self.limits.read_timeout_s):
            body = await self._read_body(scope, receive)
            return (413, self.too_large_body) if body is None else body
        return 408, self.body_timeout

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
            # Closing before accepting refuses the handshake (HTTP 403).
            await send(
                {"type": "websocket.close", "code": WS_CLOSE_POLICY, "reason": "origin not allowed"}
            )
            return
        await send({"type": "websocket.accept"})
        session = WebSocketSession(self.limits.ws_queue_bytes, self.limits.ws_queue_messages)
        await session.run(self.dispatcher, receive, send, self.limits.ws_max_in_flight)


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


def _client_host(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _same_origin(origin: bytes, scope: Scope) -> bool:
    """Does `origin` name the server the request was sent to (its Host header)?"""
    host = _header(scope, b"host")
    return host is not None and origin in (b"http://" + host, b"https://" + host)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], *, head: bool = False
) -> None:
    """Send a whole response; for HEAD (`head`) the headers of GET's, without the body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers + [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body, "more_body": False})


def hypercorn_config(
    host: str, port: int, limits: ServerLimits, logger: logging.Logger | None = None
) -> Config:
    """The hypercorn settings the RPC server runs with."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logger or logging.getLogger("rpc.server.hypercorn")
    # hypercorn's keep-alive timer runs whenever no request is in progress: between requests,
    # and from accept until the request headers are complete. It is therefore also the
    # header-read timeout (a client trickling headers is closed when it fires).
    config.keep_alive_timeout = limits.idle_timeout_s
    config.keep_alive_max_requests = 2**31
    # hypercorn's read_timeout (per socket read) stays off: a WebSocket subscriber legitimately
    # sends nothing for hours. The body deadline is RpcApp's (read_timeout_s for the whole body).
    config.read_timeout = None
    config.h11_max_incomplete_size = 16 * 2**10  # request line + headers
    config.websocket_max_message_size = limits.max_body_bytes
    config.include_server_header = False
    config.graceful_timeout = 1.0
    return config


def warn_if_near_fd_limit(max_connections: int) -> None:
    """Log a warning when the RPC cap could take more than half the process's descriptors:
    consensus, p2p and the database need the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and max_connections > soft // 2:
        log.warning(
            "rpc.max_connections = %d is more than half the open-file limit (%d): "
            "RPC clients could starve consensus of file descriptors; lower it",
            max_connections,
            soft,
        )


async def _start_hypercorn(
    nursery: trio.Nursery, app: object, host: str, port: int, limits: ServerLimits
) -> int:
    """Bind and start serving `app` in `nursery`; returns the bound port (the real one for 0)."""
    config = hypercorn_config(host, port, limits)
    slots = ConnectionSlots(limits.max_connections)
    ports: list[int] = await nursery.start(partial(serve_capped, app, config, slots))
    return ports[0] if ports else port


async def serve_asgi(
    app: object,
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
    limits = ServerLimits(max_body_bytes=max_body_bytes, max_connections=GET_APP_MAX_CONNECTIONS)
    async with trio.open_nursery() as nursery:
        actual_port = await _start_hypercorn(nursery, app, host, port, limits)
        log.info("%s listening on %s:%d", name, host, actual_port)
        task_status.started(actual_port)


async def serve(
    dispatcher: Dispatcher,
    *,
    host: str = "127.0.0.1",
    port: int = 8545,
    limits: ServerLimits = ServerLimits(),
    cors_origins: tuple[str, ...] = (),
    pages: StaticSite | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve JSON-RPC over HTTP and WebSocket (and the explorer's `pages`, when given) until
    cancelled; reports the bound port."""
    warn_if_near_fd_limit(limits.max_connections)
    app = RpcApp(dispatcher, limits=limits, cors_origins=cors_origins, pages=pages)
    async with trio.open_nursery() as nursery:
        actual_port = await _start_hypercorn(nursery, app, host, port, limits)
        log.info("JSON-RPC listening on %s:%d (HTTP and WebSocket)", host, actual_port)
        if pages is not None:
            shown = f"[{host}]" if ":" in host else host
            log.info("explorer at http://%s:%d%s/", shown, actual_port, pages.prefix)
        task_status.started(actual_port)
        await app.fatal_event.wait()
        assert app.fatal_error is not None
        raise app.fatal_error
