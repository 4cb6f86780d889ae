"""operator/native_memory.py: the glibc calls take effect on this (glibc) machine and refuse
nonsense."""

from __future__ import annotations

import ctypes
import platform

import pytest

from cybermiles_node.operator.native_memory import limit_malloc_arenas, trim_malloc


def _is_glibc() -> bool:
    return platform.libc_ver()[0] == "glibc"


def test_limit_malloc_arenas_is_taken_by_glibc() -> None:
    assert limit_malloc_arenas(2) is _is_glibc()


def test_limit_malloc_arenas_refuses_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        limit_malloc_arenas(0)


def test_trim_malloc_hands_freed_pages_back() -> None:
    if not _is_glibc():
        assert trim_malloc() is False
        return
    # Many small blocks from the main heap (below the mmap threshold), all freed but the last:
    # the freed memory sits below a live block, where only malloc_trim can release it.
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 * 1024) for _ in range(512)]  # 32 MiB
    for block in blocks[:-1]:
        libc.free(block)
    try:
        assert trim_malloc() is True
    finally:
        libc.free(blocks[-1])
