"""Sessions: the connection a request arrived on, as the dispatcher and handlers see it.

A `Session` is what a long-lived transport (a WebSocket connection) offers to the handlers that
need one (`eth_subscribe`): a unique `id`, `send` to push a notification to the client, and
`on_close` to learn when the connection goes away. HTTP requests have no session (None).

`SessionBase` implements the id and close bookkeeping for transports; `MemorySession` keeps the
messages it is sent in a list, for tests and in-process clients.

`http_client` is the address of the HTTP client whose request is being handled (set by the HTTP
transport in the request's own task; None in-process and over WebSocket). Per-client quotas of
state that outlives an HTTP connection (polled filters) are keyed by it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Protocol, runtime_checkable

__all__ = ["MemorySession", "Session", "SessionBase", "http_client"]

log = logging.getLogger(__name__)

http_client: ContextVar[str | None] = ContextVar("rpc_http_client", default=None)

_ids = itertools.count(1)


@runtime_checkable
class Session(Protocol):
    """A connection that can carry server-to-client notifications."""

    @property
    def id(self) -> int:
        """Unique for the lifetime of the process."""
        ...

    async def send(self, message: bytes) -> None:
        """Push one JSON message to the client. Never raises; a dead session drops it."""
        ...

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` once when the session closes (at once if it is already closed)."""
        ...


class SessionBase:
    """Id allocation and close callbacks; subclasses implement `send`."""

    def __init__(self) -> None:
        self._id = next(_ids)
        self._callbacks: list[Callable[[], None]] = []
        self.closed = False

    @property
    def id(self) -> int:
        return self._id

    def on_close(self, callback: Callable[[], None]) -> None:
        if self.closed:
            _run_callback(callback)
        else:
            self._callbacks.append(callback)

    def close(self) -> None:
        """Mark closed and run the close callbacks (each once; errors are logged)."""
        if self.closed:
            return
        self.closed = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _run_callback(callback)


def _run_callback(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        log.exception("session close callback %r failed", callback)


class MemorySession(SessionBase):
    """A session that records what it is sent in `messages`."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[bytes] = []

    async def send(self, message: bytes) -> None:
        if not self.closed:
            self.messages.append(message)
