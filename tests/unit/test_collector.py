"""The node's collector policy (operator/collector.py): no automatic whole-heap passes while
it runs, its own passes freeze what survives and still find cycles, Python's settings come back
afterwards."""

from __future__ import annotations

import gc

import pytest
import trio
import trio.testing

from cybermiles_node.operator import collector


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_the_policy_switches_the_automatic_old_generation_off_and_restores_it() -> None:
    before = gc.get_threshold()
    with collector.managed_collector():
        young0, young1, old = gc.get_threshold()
        assert (young0, young1) == (700, 10)
        assert old >= 2**31 - 1
        assert gc.get_freeze_count() > 0  # start-up's objects
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_pass_freezes_survivors_and_a_full_pass_finds_cycles_among_frozen_objects() -> None:
    with collector.managed_collector():
        cycle = _Cycle()
        first = collector.collect_old_generation(full=False)
        assert not first.full
        frozen = gc.get_freeze_count()
        assert frozen > 0
        del cycle  # garbage now, but frozen: only a full pass sees it
        assert collector.collect_old_generation(full=False).collected == 0
        full = collector.collect_old_generation(full=True)
        assert full.full and full.collected >= 2  # the object and its __dict__
        assert gc.get_freeze_count() > 0  # what survived the full pass is frozen again


def test_the_task_makes_a_full_pass_every_tenth_time(monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[bool] = []

    def record(*, full: bool) -> collector.CollectionPass:
        passes.append(full)
        return collector.CollectionPass(full, 0, 0.0)

    async def main() -> None:
        with trio.move_on_after(collector.OLD_GENERATION_INTERVAL_S * 20 + 1):
            await collector.collect_periodically()

    monkeypatch.setattr(collector, "collect_old_generation", record)
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(passes) == 20
    assert [i for i, full in enumerate(passes, 1) if full] == [10, 20]
