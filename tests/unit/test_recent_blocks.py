"""The chain's cache of recent blocks' decoded entries: bounded by entries and by blocks, with
a running count that stays equal to what it holds through replacements and rollbacks."""

from __future__ import annotations

import pytest

from cybermiles_node.application import chain
from cybermiles_node.application.chain import _Decoded, _RecentBlocks


def entries(n: int) -> _Decoded[int]:
    return _Decoded.of(list(range(n)))


def held(cache: _RecentBlocks[int]) -> list[int]:
    return [n for n in range(10_000) if cache.get(n) is not None]


def counted(cache: _RecentBlocks[int]) -> int:
    return cache._entries


def test_oldest_blocks_go_beyond_the_entry_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "RECENT_BLOCK_ENTRIES", 10)
    cache: _RecentBlocks[int] = _RecentBlocks()
    for number in range(1, 6):
        cache.remember(number, entries(3))
    assert held(cache) == [3, 4, 5]
    assert counted(cache) == 9


def test_oldest_blocks_go_beyond_the_block_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain, "RECENT_BLOCKS_DECODED", 4)
    cache: _RecentBlocks[int] = _RecentBlocks()
    for number in range(1, 8):
        cache.remember(number, entries(1))
    assert held(cache) == [4, 5, 6, 7]
    assert counted(cache) == 4


def test_the_newest_block_stays_even_when_alone_over_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chain, "RECENT_BLOCK_ENTRIES", 10)
    cache: _RecentBlocks[int] = _RecentBlocks()
    cache.remember(1, entries(2))
    cache.remember(2, entries(50))
    assert held(cache) == [2]
    assert counted(cache) == 50


def test_replacing_and_forgetting_keep_the_count() -> None:
    cache: _RecentBlocks[int] = _RecentBlocks()
    for number in range(1, 6):
        cache.remember(number, entries(number))
    cache.remember(3, entries(10))  # the same block decoded again: counted once
    assert counted(cache) == 1 + 2 + 10 + 4 + 5
    cache.forget_above(3)
    assert held(cache) == [1, 2, 3]
    assert counted(cache) == 1 + 2 + 10
    assert len(cache) == 3
