"""hypercorn's HTTP/WebSocket protocol handling behind an accept loop that caps connections.

hypercorn's own `serve` accepts every connection the kernel hands it and only then runs the
application, so a connection cap enforced in the ASGI app cannot stop file-descriptor exhaustion:
a thousand clients that send headers and never a body each hold a descriptor until the process
runs out (and then consensus sockets and the database fail too).

`serve_capped` binds hypercorn's sockets itself and runs one accept loop per listening socket.
Each loop takes a slot from a shared `ConnectionSlots` BEFORE calling accept(): at the cap it
stops accepting, new connections wait in the kernel's listen backlog (hypercorn's `backlog`) or
are refused by the kernel once that is full, and none of them costs this process a descriptor.
A slot is returned when the connection is closed. HTTP and WebSocket connections share the cap
(both arrive on the same port). Other listeners of the process (p2p, consensus) are not affected.

Each accepted connection is served by hypercorn's `TCPServer`, exactly as hypercorn's worker
does, minus ASGI lifespan events: the apps served here hold no resources to set up.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

import trio
from hypercorn.config import Config
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

__all__ = ["ConnectionSlots", "serve_capped"]

log = logging.getLogger(__name__)

# accept() failures that mean "the process or system is out of something", not a broken socket:
# retry later instead of crashing the server (trio.serve_listeners does the same).
_ACCEPT_CAPACITY_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)
ACCEPT_RETRY_S: Final = 0.1

ConnectionHandler = Callable[[trio.SocketStream], Awaitable[None]]


class ConnectionSlots:
    """At most `limit` open connections, counted from accept() until the socket is closed."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"connection limit must be at least 1, got {limit}")
        self.limit = limit
        self._free = trio.Semaphore(limit)

    @property
    def active(self) -> int:
        """Connections currently open."""
        return self.limit - self._free.value

    async def acquire(self) -> None:
        await self._free.acquire()

    def release(self) -> None:
        self._free.release()


async def _accept(listener: trio.SocketListener) -> trio.SocketStream:
    while True:
        try:
            return await listener.accept()
        except OSError as exc:
            if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                raise
            log.warning(
                "accept failed (%s); retrying in %.1fs", errno.errorcode[exc.errno], ACCEPT_RETRY_S
            )
            await trio.sleep(ACCEPT_RETRY_S)


async def _serve_connection(
    handle: ConnectionHandler, stream: trio.SocketStream, slots: ConnectionSlots
) -> None:
    try:
        await handle(stream)
    except Exception:
        # One connection's failure ends that connection, never the server.
        log.debug("connection handler failed", exc_info=True)
    finally:
        await trio.aclose_forcefully(stream)  # the descriptor is gone before the slot is back
        slots.release()


async def accept_loop(
    listener: trio.SocketListener,
    slots: ConnectionSlots,
    handle: ConnectionHandler,
    connections: trio.Nursery,
) -> None:
    """Accept connections while a slot is free; serve each in `connections`."""
    while True:
        await slots.acquire()
        try:
            stream = await _accept(listener)
        except BaseException:
            slots.release()
            raise
        connections.start_soon(_serve_connection, handle, stream, slots)


def _listeners(config: Config) -> list[trio.SocketListener]:
    sockets = config.create_sockets()
    if sockets.secure_sockets or sockets.quic_sockets:
        raise ValueError("TLS and QUIC binds are not supported here")
    listeners = []
    for sock in sockets.insecure_sockets:
        sock.listen(config.backlog)
        listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
    return listeners


def _hypercorn_handler(app: object, config: Config) -> ConnectionHandler:
    wrapped = wrap_app(cast(Any, app), config.wsgi_max_body_size, "asgi")
    context = WorkerContext(None)

    async def handle(stream: trio.SocketStream) -> None:
        await TCPServer(wrapped, config, context, ConnectionState({}), cast(Any, stream)).run()

    return handle


async def serve_capped(
    app: object,
    config: Config,
    slots: ConnectionSlots,
    *,
    task_status: trio.TaskStatus[list[int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the ASGI `app` on `config.bind` with at most `slots.limit` connections open.

    Reports the bound ports (the real ones for port 0) and runs until cancelled.
    """
    listeners = _listeners(config)
    handle = _hypercorn_handler(app, config)
    try:
        async with trio.open_nursery() as connections:
            for listener in listeners:
                connections.start_soon(accept_loop, listener, slots, handle, connections)
            task_status.started([int(lst.socket.getsockname()[1]) for lst in listeners])
    finally:
        for listener in listeners:
            await trio.aclose_forcefully(listener)
