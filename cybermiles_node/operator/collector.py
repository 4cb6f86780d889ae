"""When the node runs Python's cycle collector, so that it never stalls the event loop for long.

CPython collects reference cycles in three generations. A collection of the oldest one scans
every tracked object the process holds, with the GIL held: on a busy node (decoded-block
caches, the mempool, trie nodes: millions of objects) one such pass took 30-130 ms, growing
with the heap, and ran about once a second while blocks of 2,000 transfers executed, because
each block promotes many long-lived objects. Every RPC request waiting meanwhile waited that
long (issue #13: p99 of eth_blockNumber/eth_getBalance under load). The passes found nothing to
collect: the node's long-lived objects are freed by reference counting, not by the collector.

The policy (DECISIONS "Garbage collection off the hot path"):
- the young generations stay automatic (cheap: they scan only recent objects, and they are
  where short-lived cycles, such as exceptions with their tracebacks, are found);
- the oldest generation is never collected automatically (its threshold is out of reach);
- every `OLD_GENERATION_INTERVAL_S` the node collects the oldest generation itself, then
  freezes what survived (`gc.freeze`: moved where no later pass scans it), so each of these
  passes scans only what was promoted since the last one;
- every `FULL_COLLECTION_EVERY` such passes, the frozen objects are thawed first, so a cycle
  that formed among them later is still collected: memory stays bounded; that one pass costs
  a whole-heap scan, a few times an hour.

`managed_collector()` applies the policy for the node's lifetime and restores Python's
settings afterwards (tests run nodes inside the test process); `collect_periodically()` is the
node's task.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

import trio

__all__ = [
    "FULL_COLLECTION_EVERY",
    "OLD_GENERATION_INTERVAL_S",
    "CollectionPass",
    "collect_old_generation",
    "collect_periodically",
    "managed_collector",
]

OLD_GENERATION_INTERVAL_S: Final = 60.0
FULL_COLLECTION_EVERY: Final = 10  # passes: a whole-heap scan every 10 minutes
# Python's defaults for the young generations (700 allocations, 10 young passes); the oldest
# one's threshold out of reach: it runs only when `collect_old_generation` says.
_YOUNG_THRESHOLDS: Final = (700, 10)
_NEVER: Final = 2**31 - 1


@dataclass(frozen=True)
class CollectionPass:
    """What one pass of `collect_old_generation` did."""

    full: bool  # the frozen objects were thawed and scanned too
    collected: int  # unreachable objects found
    seconds: float


@contextmanager
def managed_collector() -> Iterator[None]:
    """Apply the module's policy until the block exits, then restore Python's settings."""
    before = gc.get_threshold()
    gc.freeze()  # what start-up made (modules, genesis, caches' first fill) is never garbage
    gc.set_threshold(*_YOUNG_THRESHOLDS, _NEVER)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def collect_old_generation(*, full: bool) -> CollectionPass:
    """Collect the oldest generation (after thawing the frozen objects when `full`), then
    freeze the survivors."""
    started = time.perf_counter()
    if full:
        gc.unfreeze()
    collected = gc.collect(2)
    gc.freeze()
    return CollectionPass(full, collected, time.perf_counter() - started)


async def collect_periodically(interval: float = OLD_GENERATION_INTERVAL_S) -> None:
    """The node's collector task (inside `managed_collector`)."""
    passes = 0
    while True:
        await trio.sleep(interval)
        passes += 1
        collect_old_generation(full=passes % FULL_COLLECTION_EVERY == 0)
