"""Seeded schedules of the deterministic simulation (see harness.py for the model).

Each scenario runs many seeds; a failure prints the seed and the command that replays exactly
that schedule. `CYBERMILES_SIM_SEEDS=N` runs N seeds per scenario instead of the default;
`CYBERMILES_SIM_SEED=n` runs only seed n.
"""

from __future__ import annotations

import os
import random

import pytest

from consensus.validators import ValidatorSet
from tests.sim.harness import (
    SCENARIOS,
    Partition,
    Schedule,
    SimFailure,
    Simulation,
    random_schedule,
)

# Seeds per scenario in the default run: 1,000+ schedules in total.
DEFAULT_SEEDS = {
    "happy": 120,
    "lossy": 110,
    "partition": 110,
    "crash": 120,
    "equivocate": 110,
    "silent": 110,
    "bad_proposer": 110,
    "mixed": 130,
    "valset_change": 90,
}


def _seeds(scenario: str) -> list[int]:
    if "CYBERMILES_SIM_SEED" in os.environ:
        return [int(os.environ["CYBERMILES_SIM_SEED"])]
    count = int(os.environ.get("CYBERMILES_SIM_SEEDS", DEFAULT_SEEDS[scenario]))
    return list(range(count))


def run_seed(scenario: str, seed: int, **kwargs: object) -> Simulation:
    schedule = random_schedule(scenario, random.Random(seed))
    sim = Simulation(seed, schedule, **kwargs)  # type: ignore[arg-type]
    sim.run()
    return sim


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario: str) -> None:
    for seed in _seeds(scenario):
        failure = None
        try:
            run_seed(scenario, seed)
        except SimFailure as exc:
            failure = str(exc)
        if failure is not None:
            pytest.fail(
                f"{failure}\n  reproduce: CYBERMILES_SIM_SEED={seed} "
                f".venv/bin/pytest tests/sim -k {scenario}",
                pytrace=False,
            )


def test_same_seed_same_run() -> None:
    """A seed is a schedule: two runs of one seed take the same steps, event for event."""
    for scenario in ("mixed", "crash", "equivocate"):
        runs = [run_seed(scenario, 7, tracing=True) for _ in range(2)]
        assert runs[0].events == runs[1].events
        assert runs[0].trace.hexdigest() == runs[1].trace.hexdigest()
        assert runs[0].decided == runs[1].decided


def test_single_validator_progresses_alone() -> None:
    for skip in (False, True):
        schedule = Schedule(n=1, powers=(10,), target_height=8, skip_timeout_commit=skip)
        sim = Simulation(1, schedule)
        sim.run()
        assert sim.nodes[0].committed_height > 8


class OneThirdQuorum(ValidatorSet):
    """A deliberately broken rule: 'quorum' is just over 1/3 of the power."""

    @property
    def quorum(self) -> int:
        return self.total_power // 3 + 1


SPLIT = Schedule(
    n=4,
    powers=(10, 10, 10, 10),
    partitions=(Partition(0.0, 3000.0, (frozenset({0, 1}), frozenset({2, 3}))),),
    target_height=2,
)


def test_the_simulation_catches_a_broken_quorum_rule() -> None:
    """The checks can fail: with quorum at 1/3, both halves of a partition commit a block of
    their own and the agreement invariant fires (with the seed in the message)."""
    with pytest.raises(SimFailure, match=r"seed 3: agreement: node \d committed"):
        Simulation(3, SPLIT, validator_set_type=OneThirdQuorum).run()


def test_the_same_partition_is_safe_with_the_real_quorum() -> None:
    sim = Simulation(3, SPLIT)
    sim.run()  # no commit during the split, progress after it heals
    assert min(n.committed_height for n in sim.nodes) > 2


def test_broken_quorum_is_caught_in_random_schedules() -> None:
    caught = 0
    for seed in range(30):
        schedule = random_schedule("partition", random.Random(seed))
        try:
            Simulation(seed, schedule, validator_set_type=OneThirdQuorum).run()
        except SimFailure as exc:
            assert "agreement" in str(exc) or "liveness" in str(exc)
            caught += "agreement" in str(exc)
    assert caught > 0
