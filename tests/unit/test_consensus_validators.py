"""ValidatorSet: Tendermint's proposer rotation reproduced exactly (sequences and priority tables
from Tendermint's types/validator_set_test.go), quorum, updates, hashing and the wire form."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.errors import MalformedMessage
from consensus.keys import Ed25519Key
from consensus.types import Validator, validator_address
from consensus.validators import ValidatorSet


def _pub_keys(n: int, tag: bytes = b"v") -> list[bytes]:
    """n public keys sorted by their address, so index order == address order."""
    keys = [Ed25519Key.from_seed(bytes([i + 1]) * 31 + tag[:1]).public_key for i in range(n)]
    return sorted(keys, key=validator_address)


def _named(names_by_address_order: list[str], powers: dict[str, int]) -> tuple[ValidatorSet, dict]:
    keys = _pub_keys(len(names_by_address_order))
    name_of = {
        validator_address(k): name for k, name in zip(keys, names_by_address_order, strict=True)
    }
    vs = ValidatorSet([Validator(k, powers[name_of[validator_address(k)]]) for k in keys])
    return vs, name_of


def _sequence(vs: ValidatorSet, name_of: dict, steps: int) -> list[str]:
    out = []
    for _ in range(steps):
        out.append(name_of[vs.proposer_address])
        vs = vs.increment(1)
    return out


# TestProposerSelection1: addresses "bar" < "baz" < "foo", powers 300 / 330 / 1000.
SELECTION1 = (
    "foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar "
    "foo foo baz foo bar foo foo baz foo bar foo foo baz foo foo bar foo baz foo foo bar "
    "foo baz foo foo bar foo baz foo foo bar foo baz foo foo foo baz bar foo foo foo baz "
    "foo bar foo foo baz foo bar foo foo baz foo bar foo foo baz foo bar foo foo baz foo "
    "foo bar foo baz foo foo bar foo baz foo foo bar foo baz foo foo"
)


def test_tendermint_proposer_selection_sequence() -> None:
    vs, name_of = _named(["bar", "baz", "foo"], {"foo": 1000, "bar": 300, "baz": 330})
    assert " ".join(_sequence(vs, name_of, 99)) == SELECTION1


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_equal_powers_rotate_round_robin_by_address(n: int) -> None:
    names = [f"v{i}" for i in range(n)]
    vs, name_of = _named(names, dict.fromkeys(names, 100))
    assert _sequence(vs, name_of, 5 * n) == names * 5


@pytest.mark.parametrize(
    ("power2", "expected"),
    [
        (100, ["a0", "a1", "a2", "a0", "a1", "a2"]),
        # more power than the others, not enough to propose twice in a row
        (400, ["a2", "a0"]),
        # enough to propose twice in a row
        (401, ["a2", "a2", "a0"]),
    ],
)
def test_tendermint_selection2_cases(power2: int, expected: list[str]) -> None:
    vs, name_of = _named(["a0", "a1", "a2"], {"a0": 100, "a1": 100, "a2": power2})
    assert _sequence(vs, name_of, len(expected)) == expected


def test_proposals_are_proportional_to_power() -> None:
    vs, name_of = _named(["a0", "a1", "a2"], {"a0": 4, "a1": 5, "a2": 3})
    seq = _sequence(vs, name_of, 120)
    assert (seq.count("a0"), seq.count("a1"), seq.count("a2")) == (40, 50, 30)


def test_increment_many_times_keeps_round_robin() -> None:
    """Tendermint's TestProposerSelection3: the order is stable even when rounds are skipped
    (IncrementProposerPriority with times > 1), and across wire round trips."""
    names = ["a", "b", "c", "d"]
    vs, name_of = _named(names, dict.fromkeys(names, 1))
    rng = random.Random(5)
    j = 0
    for _ in range(2000):
        assert name_of[vs.proposer_address] == names[j % 4]
        vs = ValidatorSet.from_wire(vs.to_wire())
        times = rng.randint(1, 4) if rng.random() < 0.3 else 1
        vs = vs.increment(times)
        j += times


def test_priority_table_with_voting_power() -> None:
    """TestAveragingInIncrementProposerPriorityWithVotingPower: exact priorities after
    `times` increments of powers (10, 1, 1) starting at priority 0."""
    vp0, vp1, vp2 = 10, 1, 1
    total = 12
    keys = _pub_keys(3)
    base = ValidatorSet(
        [Validator(keys[0], vp0), Validator(keys[1], vp1), Validator(keys[2], vp2)], [0, 0, 0]
    )
    table = [
        (1, [0 + vp0 - total, 0 + vp1, 0 + vp2], 0),
        (2, [(0 + vp0 - total) + vp0 - total, 2 * vp1, 2 * vp2], 0),
        (3, [3 * (vp0 - total), 3 * vp1, 3 * vp2], 0),
        (4, [4 * (vp0 - total), 4 * vp1, 4 * vp2], 0),
        (5, [4 * (vp0 - total) + vp0, 5 * vp1 - total, 5 * vp2], 1),
        (6, [6 * vp0 - 5 * total, 6 * vp1 - total, 6 * vp2], 0),
        (7, [7 * vp0 - 6 * total, 7 * vp1 - total, 7 * vp2], 0),
        (8, [8 * vp0 - 7 * total, 8 * vp1 - total, 8 * vp2], 0),
        (9, [9 * vp0 - 7 * total, 9 * vp1 - total, 9 * vp2 - total], 2),
        (10, [10 * vp0 - 8 * total, 10 * vp1 - total, 10 * vp2 - total], 0),
        (11, [11 * vp0 - 9 * total, 11 * vp1 - total, 11 * vp2 - total], 0),
    ]
    for times, priorities, proposer in table:
        vs = base.increment(times)
        assert list(vs.priorities) == priorities, times
        assert vs.proposer_address == validator_address(keys[proposer]), times


@pytest.mark.parametrize(
    ("priorities", "after", "proposer"),
    [
        ([0, 0, 0], [-2, 1, 1], 0),
        ([3, 0, 0], [0, 0, 0], 0),  # centred on the average 1 first
        ([7, 0, 0], [0, 0, 0], 0),  # spread 7 > 2 * 3: divided by 2 (7 / 2 = 3), then centred
        ([-7, 0, 0], [-1, -1, 2], 1),  # Go truncates -7 / 2 to -3, the average floors to -1
    ],
)
def test_rescale_and_centre_like_go(priorities: list[int], after: list[int], proposer: int) -> None:
    keys = _pub_keys(3)
    vs = ValidatorSet([Validator(k, 1) for k in keys], priorities).increment(1)
    assert list(vs.priorities) == after
    assert vs.proposer_address == validator_address(keys[proposer])


@pytest.mark.parametrize(("total", "quorum"), [(1, 1), (2, 2), (3, 3), (4, 3), (40, 27), (100, 67)])
def test_quorum_is_strictly_more_than_two_thirds(total: int, quorum: int) -> None:
    vs = ValidatorSet([Validator(_pub_keys(1)[0], total)])
    assert vs.quorum == quorum
    assert 3 * vs.quorum > 2 * total and 3 * (vs.quorum - 1) <= 2 * total


def test_validators_sorted_by_address_and_lookup() -> None:
    keys = _pub_keys(4)
    vs = ValidatorSet([Validator(k, 10) for k in reversed(keys)])
    assert list(vs.addresses) == sorted(validator_address(k) for k in keys)
    index, v = vs.get(validator_address(keys[2])) or (None, None)
    assert index == 2 and v == Validator(keys[2], 10)
    assert vs.get(b"\x00" * 20) is None
    assert vs.total_power == 40 and len(vs) == 4


def test_hash_ignores_priorities_and_wire_keeps_them() -> None:
    keys = _pub_keys(3)
    vs = ValidatorSet([Validator(k, p) for k, p in zip(keys, (1, 2, 3), strict=True)])
    later = vs.increment(5)
    assert later.hash() == vs.hash()
    assert later.priorities != vs.priorities
    back = ValidatorSet.from_wire(later.to_wire())
    assert back == later
    assert back.proposer_address == later.proposer_address
    assert back.priorities == later.priorities


@pytest.mark.parametrize(
    "wire",
    [
        "nope",
        [[], b"\x00" * 20],
        [[[b"\x01" * 32, 1, 0], [b"\x01" * 32, 1, 0]], b"\x00" * 20],  # duplicate
        [[[b"\x01" * 32, 0, 0]], b"\x00" * 20],  # zero power
        [[[b"\x01" * 32, 1, 2**64]], b"\x00" * 20],  # priority out of int64
    ],
)
def test_from_wire_rejects_malformed(wire: object) -> None:
    with pytest.raises(MalformedMessage):
        ValidatorSet.from_wire(wire)


def test_from_wire_rejects_unknown_proposer() -> None:
    key = _pub_keys(1)[0]
    with pytest.raises(MalformedMessage):
        ValidatorSet.from_wire([[[key, 1, 0]], b"\x00" * 20])


def test_apply_updates_add_change_remove() -> None:
    keys = _pub_keys(4)
    vs = ValidatorSet([Validator(keys[0], 10), Validator(keys[1], 10), Validator(keys[2], 10)])
    updated = vs.apply_updates(
        [Validator(keys[3], 20), Validator(keys[1], 0), Validator(keys[0], 5)]
    )
    assert [v.pub_key for v in updated.validators] == [keys[0], keys[2], keys[3]]
    assert [v.power for v in updated.validators] == [5, 10, 20]
    assert updated.total_power == 35
    # A newcomer starts at -1.125 * new total (35 + 35 >> 3 = 39), existing keep their
    # priorities, then everything is centred on the floor average.
    raw = [vs.priority_of(validator_address(keys[0])), vs.priority_of(validator_address(keys[2]))]
    raw.append(-(35 + (35 >> 3)))
    avg = sum(raw) // 3
    assert list(updated.priorities) == [p - avg for p in raw]
    assert vs.apply_updates([]) is vs


@pytest.mark.parametrize(
    "updates",
    [
        lambda k: [Validator(k[0], 5), Validator(k[0], 6)],  # duplicate
        lambda k: [Validator(k[3], 0)],  # remove unknown
        lambda k: [Validator(k[0], 0), Validator(k[1], 0)],  # remove everyone
        lambda k: [Validator(k[0], -1)],  # negative
    ],
)
def test_apply_updates_rejects_invalid_change_sets(updates) -> None:  # type: ignore[no-untyped-def]
    keys = _pub_keys(4)
    vs = ValidatorSet([Validator(keys[0], 10), Validator(keys[1], 10)])
    with pytest.raises(ValueError):
        vs.apply_updates(updates(keys))


def test_constructor_rejects_bad_sets() -> None:
    key = _pub_keys(1)[0]
    with pytest.raises(ValueError):
        ValidatorSet([])
    with pytest.raises(ValueError):
        ValidatorSet([Validator(key, 1), Validator(key, 2)])
    with pytest.raises(ValueError):
        ValidatorSet([Validator(key, 0)])
    with pytest.raises(ValueError):
        ValidatorSet([Validator(key, 1)]).increment(0)


def test_rescaling_bounds_the_priority_spread() -> None:
    keys = _pub_keys(2)
    vs = ValidatorSet([Validator(keys[0], 1), Validator(keys[1], 1)], [10**9, -(10**9)])
    moved = vs.increment(1)
    assert max(moved.priorities) - min(moved.priorities) <= 2 * moved.total_power + 2


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=6))
def test_each_validator_proposes_its_power_in_every_cycle(powers: list[int]) -> None:
    """Weighted round robin: over `total power` consecutive rounds from a fresh set, each
    validator proposes exactly `power` times."""
    keys = _pub_keys(len(powers))
    vs = ValidatorSet([Validator(k, p) for k, p in zip(keys, powers, strict=True)])
    counts: dict[bytes, int] = {}
    for _ in range(vs.total_power):
        counts[vs.proposer_address] = counts.get(vs.proposer_address, 0) + 1
        vs = vs.increment(1)
    assert counts == {validator_address(k): p for k, p in zip(keys, powers, strict=True)}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 1000), min_size=1, max_size=5),
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 50)), max_size=6),
)
def test_updates_keep_the_set_well_formed(
    powers: list[int], changes: list[tuple[int, int]]
) -> None:
    keys = _pub_keys(7)
    vs = ValidatorSet([Validator(keys[i], p) for i, p in enumerate(powers)])
    updates = {keys[i]: p for i, p in changes}
    try:
        new = vs.apply_updates([Validator(k, p) for k, p in updates.items()])
    except ValueError:
        return  # removing an unknown validator or everyone: refused, nothing changed
    assert list(new.addresses) == sorted(new.addresses)
    assert all(v.power > 0 for v in new.validators)
    assert abs(sum(new.priorities)) < len(new)  # centred
    moved = new.increment(3)
    assert ValidatorSet.from_wire(moved.to_wire()) == moved
