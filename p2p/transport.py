"""How the switch gets byte streams: TCP in production, an in-memory network in tests.

A `Transport` listens (calling a handler per inbound stream with the remote IP) and connects.
`MemoryNetwork` is a whole fake internet inside one trio run: each node takes a
`MemoryTransport` bound to its own fake IP, so IP bans, duplicate connections, restarts and
dead listeners behave as over TCP, without sockets and under trio's MockClock.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import trio

InboundHandler = Callable[[trio.abc.Stream, str], Awaitable[None]]


class Transport(Protocol):
    async def listen(
        self,
        host: str,
        port: int,
        handler: InboundHandler,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections forever, running `handler(stream, remote_ip)` in a task per
        connection and closing the stream when it returns; report the bound port via
        `task_status.started`."""
        ...

    async def connect(self, host: str, port: int) -> tuple[trio.abc.Stream, str]:
        """Open a stream to host:port; returns it with the remote IP. Raises OSError."""
        ...


class TcpTransport:
    async def listen(
        self,
        host: str,
        port: int,
        handler: InboundHandler,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        task_status.started(bound)
        await trio.serve_listeners(partial(self._serve_one, handler), listeners)

    @staticmethod
    async def _serve_one(handler: InboundHandler, stream: trio.SocketStream) -> None:
        try:
            remote_ip = str(stream.socket.getpeername()[0])
        except OSError:  # already reset by the peer
            await trio.aclose_forcefully(stream)
            return
        await handler(stream, remote_ip)

    async def connect(self, host: str, port: int) -> tuple[trio.abc.Stream, str]:
        stream = await trio.open_tcp_stream(host, port)
        try:
            remote_ip = str(stream.socket.getpeername()[0])
        except OSError:
            await trio.aclose_forcefully(stream)
            raise
        return stream, remote_ip


_Incoming = tuple[trio.abc.Stream, str]


class MemoryNetwork:
    """Listeners by (host, port); `transport(host)` gives a node its view of the network."""

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, int], trio.MemorySendChannel[_Incoming]] = {}
        self._ports = itertools.count(30000)

    def transport(self, host: str) -> MemoryTransport:
        return MemoryTransport(self, host)

    def is_listening(self, host: str, port: int) -> bool:
        return (host, port) in self._listeners

    def _free_port(self, host: str) -> int:
        return next(p for p in self._ports if (host, p) not in self._listeners)


async def _serve_then_close(handler: InboundHandler, stream: trio.abc.Stream, ip: str) -> None:
    """As `trio.serve_listeners` does: the stream lives as long as its handler."""
    try:
        await handler(stream, ip)
    finally:
        await trio.aclose_forcefully(stream)


class MemoryTransport:
    def __init__(self, network: MemoryNetwork, host: str) -> None:
        self._network = network
        self.host = host

    async def listen(
        self,
        host: str,
        port: int,
        handler: InboundHandler,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = self._network._listeners
        port = port or self._network._free_port(host)
        if (host, port) in listeners:
            raise OSError(errno.EADDRINUSE, f"{host}:{port} already in use")
        send, receive = trio.open_memory_channel[_Incoming](16)
        listeners[(host, port)] = send
        try:
            async with trio.open_nursery() as nursery:
                task_status.started(port)
                async for stream, remote_ip in receive:
                    nursery.start_soon(_serve_then_close, handler, stream, remote_ip)
        finally:
            del listeners[(host, port)]

    async def connect(self, host: str, port: int) -> tuple[trio.abc.Stream, str]:
        await trio.lowlevel.checkpoint()
        listener = self._network._listeners.get((host, port))
        if listener is None:
            raise OSError(errno.ECONNREFUSED, f"connection to {host}:{port} refused")
        # Imported here: trio.testing loads pytest, which a real node never needs.
        from trio.testing import memory_stream_pair

        ours, theirs = memory_stream_pair()
        try:
            listener.send_nowait((theirs, self.host))
        except trio.WouldBlock:
            raise OSError(errno.ECONNREFUSED, "accept backlog full") from None
        return ours, host
