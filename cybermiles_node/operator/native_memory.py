"""glibc malloc settings that keep a long-running node's resident memory flat.

The node allocates natively from several threads (the event loop, the block builder's worker,
RPC execution workers; LevelDB's block cache and memtables, and every Python object larger than
512 bytes, come from malloc). glibc gives each thread that meets contention an arena of its
own, up to 8 per core, and keeps freed memory inside its arenas: pages freed in the middle of a
heap stay resident until `malloc_trim` hands them back. Under a steady load that shows as RSS
creeping up for tens of minutes while the Python heap and the caches stay at their bounds
(DECISIONS "Native memory: arenas and trimming").

Two calls, both no-ops (returning False) on a libc without them (musl, macOS):
- `limit_malloc_arenas(n)`: `mallopt(M_ARENA_MAX, n)`, before the node starts its threads.
- `trim_malloc()`: `malloc_trim(0)`, which the node calls periodically off the event loop
  (ctypes releases the GIL for the call).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Final

__all__ = ["MALLOC_ARENAS", "MALLOC_TRIM_INTERVAL_S", "limit_malloc_arenas", "trim_malloc"]

# Two arenas: the event loop's and one the worker threads share. Python threads take turns on
# the GIL, so they rarely contend for an arena lock; more arenas only add heaps that each keep
# their own free memory.
MALLOC_ARENAS: Final = 2
# How often the node hands freed heap pages back. A trim of ~100 MiB of heaps takes a few
# milliseconds in a worker thread; between two trims a busy node frees at most a few MiB.
MALLOC_TRIM_INTERVAL_S: Final = 10.0
_M_ARENA_MAX: Final = -8  # glibc's malloc.h


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas`; True when the C library took the setting."""
    if arenas < 1:
        raise ValueError(f"arenas must be at least 1, got {arenas}")
    libc = _glibc()
    return libc is not None and libc.mallopt(_M_ARENA_MAX, arenas) == 1


def trim_malloc() -> bool:
    """Return free heap memory to the system; True when glibc released some."""
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) == 1
