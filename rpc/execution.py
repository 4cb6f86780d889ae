"""EVM work for RPC (eth_call, eth_estimateGas) in a worker thread, off the event loop.

Anyone who reaches the RPC port can ask the node to execute code, so that execution must
never hold the event loop that also runs consensus, p2p and signal handling. `EvmWorker`
runs each job in a trio worker thread under a `Deadline` (evm/call.py), which stops the job
from inside the EVM once its wall-clock limit is reached; the limit counts from the moment
the request arrives, so a job that waited its whole budget for a thread fails at its first
opcode instead of running late. Threads are few (one by default): the EVM is pure Python and
holds the GIL, so more threads would only share the same core while slowing the event loop's
access to it. A cancelled request (node shutdown) abandons its thread, which the deadline ends
soon after; worker threads are daemons, so they never hold up the process exit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

from evm.call import Deadline

T = TypeVar("T")


class EvmWorker:
    """Runs `job(deadline)` in a worker thread, at most `threads` at a time."""

    def __init__(self, *, timeout: float, threads: int = 1) -> None:
        self.timeout = timeout
        self._limiter = trio.CapacityLimiter(threads)

    async def run(self, job: Callable[[Deadline], T], *, timeout: float | None = None) -> T:
        """`job` under a deadline of `timeout` seconds, never longer than the worker's own."""
        deadline = Deadline(self.timeout if timeout is None else min(timeout, self.timeout))
        return await trio.to_thread.run_sync(
            job, deadline, limiter=self._limiter, abandon_on_cancel=True
        )
