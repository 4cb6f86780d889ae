"""Voting power, election and consensus updates (SPEC §6; cybermiles_node/staking/power.py)."""

from __future__ import annotations

import dataclasses
import hashlib
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node.staking.power import (
    CONSENSUS_POWER,
    candidate_voting_powers,
    consensus_address,
    delegation_voting_power,
    elect,
    previous_set_owners,
    size_factor,
    validator_updates,
)
from cybermiles_node.staking.records import (
    Candidate,
    CandidateState,
    Delegation,
    DelegationSource,
    Description,
)
from genesis.params import Params

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)
CMT = 10**18
PARAMS = Params()  # threshold 12/100, min_staking_amount 1000 CMT, max_vals 4, backup_vals 1


def owner(i: int) -> bytes:
    return bytes([i]) * 20


def key(i: int) -> bytes:
    return hashlib.sha256(b"key" + bytes([i])).digest()


def candidate(
    i: int,
    shares: int = 0,
    *,
    voting_power: int = 0,
    active: bool = True,
    state: CandidateState = CandidateState.CANDIDATE,
    pub_key: bytes | None = None,
) -> Candidate:
    return Candidate(
        owner=owner(i),
        pub_key=key(i) if pub_key is None else pub_key,
        shares=shares,
        max_shares=10**30,
        comp_rate=Fraction(1, 5),
        description=Description(),
        verified=False,
        active=active,
        state=state,
        voting_power=voting_power,
        pending_voting_power=voting_power,
        num_of_delegators=1,
        block_height=1,
        created_at=0,
    )


def delegation(
    delegator: int,
    cand: int,
    amount: int,
    source: DelegationSource = DelegationSource.CUBE,
    *,
    pending: int = 0,
) -> Delegation:
    return Delegation(
        delegator=owner(delegator),
        candidate=owner(cand),
        delegate_amount=amount,
        award_amount=0,
        withdraw_amount=0,
        pending_withdraw_amount=pending,
        slash_amount=0,
        comp_rate=Fraction(1, 5),
        voting_power=0,
        active=True,
        source=source,
    )


# --- voting power: SPEC §6 examples ---------------------------------------------------------------

VAL = CandidateState.VALIDATOR


@pytest.mark.parametrize(
    ("shares", "total", "expected"),
    [
        (500_000 * CMT, 1_000_000, Fraction(12, 50)),  # p = 1/2 > 12 %: f = 0.12 / 0.5
        (120_000 * CMT, 1_000_000, Fraction(1)),  # p exactly the threshold: not "exceeds"
        (120_001 * CMT, 1_000_000, Fraction(120_000, 120_001)),
        (120_001 * CMT - 1, 1_000_000, Fraction(1)),  # p uses floor(shares / 1e18)
        (50 * CMT, 0, Fraction(1)),  # no stake in the set: factor 1, no division by zero
        (0, 0, Fraction(1)),
    ],
)
def test_size_factor(shares: int, total: int, expected: Fraction) -> None:
    assert size_factor(shares, total, PARAMS) == expected


@pytest.mark.parametrize(
    ("amount", "pending", "source", "factor", "expected"),
    [
        (100_000 * CMT, 0, DelegationSource.CUBE, Fraction(12, 50), 24_000),
        (100_000 * CMT, 0, DelegationSource.WALLET, Fraction(12, 50), 19_200),  # × 0.8
        # 0.8 applies to the floored power, floored again: floor(floor(1003 × 1/2) × 4/5) = 400,
        # where a single floor(1003 × 1/2 × 4/5) would give 401.
        (1003 * CMT, 0, DelegationSource.WALLET, Fraction(1, 2), 400),
        (1003 * CMT, 0, DelegationSource.CUBE, Fraction(1, 2), 501),
        (1234 * CMT + CMT - 1, 0, DelegationSource.CUBE, Fraction(1), 1234),  # whole CMT only
        (1000 * CMT - 1, 0, DelegationSource.CUBE, Fraction(1), 0),  # below min_staking_amount
        (1000 * CMT, 0, DelegationSource.CUBE, Fraction(1), 1000),  # exactly the minimum
        (1000 * CMT, 0, DelegationSource.WALLET, Fraction(1), 800),
        # pending withdrawals count: 999 CMT staying + 1 CMT unstaking reaches the minimum
        (1000 * CMT, CMT, DelegationSource.CUBE, Fraction(1), 1000),
        (1000 * CMT, 2 * CMT, DelegationSource.CUBE, Fraction(1), 1000),
        (0, 0, DelegationSource.CUBE, Fraction(1), 0),
    ],
)
def test_delegation_voting_power(
    amount: int, pending: int, source: DelegationSource, factor: Fraction, expected: int
) -> None:
    d = delegation(9, 1, amount, source, pending=pending)
    assert d.shares == amount - pending
    assert delegation_voting_power(d, factor, PARAMS) == expected


def test_min_staking_amount_is_a_parameter() -> None:
    params = dataclasses.replace(PARAMS, min_staking_amount=10)
    assert delegation_voting_power(delegation(9, 1, 10 * CMT), Fraction(1), params) == 10
    assert delegation_voting_power(delegation(9, 1, 10 * CMT - 1), Fraction(1), params) == 0


def test_threshold_factor_over_the_previous_set() -> None:
    # A and B were elected last time with 500k CMT each: total 1,000,000 CMT. C (not in the
    # set) has 300k: p = 0.3 > 0.12, f = 0.4. D has 100k: p = 0.1, f = 1.
    cands = [
        candidate(1, 500_000 * CMT, state=VAL),
        candidate(2, 500_000 * CMT, state=CandidateState.BACKUP),
        candidate(3, 300_000 * CMT),
        candidate(4, 100_000 * CMT),
    ]
    dels = [
        delegation(1, 1, 500_000 * CMT),
        delegation(2, 2, 400_000 * CMT),
        delegation(12, 2, 100_000 * CMT, DelegationSource.WALLET),
        delegation(3, 3, 300_000 * CMT, DelegationSource.WALLET),
        delegation(4, 4, 100_000 * CMT),
    ]
    previous = previous_set_owners(cands)
    assert previous == {owner(1), owner(2)}
    table = candidate_voting_powers(cands, dels, previous, PARAMS)
    assert table.total_cmt == 1_000_000
    assert table.candidate(owner(1)).factor == Fraction(6, 25)
    assert table.candidate(owner(1)).voting_power == 120_000
    # 400k × 0.24 = 96,000 and 100k × 0.24 × 0.8 = 19,200
    assert table.candidate(owner(2)).voting_power == 96_000 + 19_200
    assert table.candidate(owner(3)).voting_power == 300_000 * 2 // 5 * 4 // 5  # 96,000
    assert table.candidate(owner(4)).voting_power == 100_000
    assert [(p.candidate, p.delegator) for p in table.delegations] == sorted(
        (d.candidate, d.delegator) for d in dels
    )


def test_inactive_members_do_not_count_in_the_total() -> None:
    cands = [
        candidate(1, 100_000 * CMT, state=VAL),
        candidate(2, 900_000 * CMT, state=VAL, active=False),
    ]
    dels = [delegation(1, 1, 100_000 * CMT), delegation(2, 2, 900_000 * CMT)]
    table = candidate_voting_powers(cands, dels, previous_set_owners(cands), PARAMS)
    assert table.total_cmt == 100_000
    assert table.candidate(owner(1)).voting_power == 12_000  # p = 1: f = 0.12
    # inactive: voting power 0, its delegations still summed in pending_voting_power
    assert table.candidate(owner(2)).voting_power == 0
    assert table.candidate(owner(2)).pending_voting_power == 900_000 * 12 // 900  # f = 0.12/9


def test_withdrawn_candidate_has_no_voting_power() -> None:
    c = dataclasses.replace(candidate(1, 5000 * CMT), withdrawn=True)
    table = candidate_voting_powers([c], [delegation(1, 1, 5000 * CMT)], frozenset(), PARAMS)
    assert table.candidate(owner(1)).voting_power == 0
    assert table.candidate(owner(1)).pending_voting_power == 5000


def test_no_stake_at_all_is_factor_one_not_a_crash() -> None:
    cands = [candidate(1, 0, state=VAL), candidate(2, 5000 * CMT)]
    table = candidate_voting_powers(cands, [delegation(2, 2, 5000 * CMT)], {owner(1)}, PARAMS)
    assert table.total_cmt == 0
    assert table.candidate(owner(2)).factor == 1
    assert table.candidate(owner(2)).voting_power == 5000
    empty = candidate_voting_powers([], [], frozenset(), PARAMS)
    assert empty.candidates == () and empty.delegations == ()


def test_delegation_to_unknown_candidate_is_refused() -> None:
    with pytest.raises(ValueError):
        candidate_voting_powers([candidate(1)], [delegation(2, 2, CMT)], frozenset(), PARAMS)


# --- election -----------------------------------------------------------------------------------

SMALL = dataclasses.replace(PARAMS, max_vals=2, backup_vals=1)


def states(params: Params, *cands: Candidate) -> list[tuple[bytes, CandidateState, int]]:
    election = elect(cands, params)
    return [(a.owner, a.state, a.rank) for a in election.assignments]


def test_election_ranks_by_power_then_states() -> None:
    cands = [candidate(i, voting_power=vp) for i, vp in [(1, 20), (2, 50), (3, 30), (4, 40)]]
    election = elect(cands, SMALL)
    assert [(a.owner, a.state, a.rank) for a in election.assignments] == [
        (owner(2), CandidateState.VALIDATOR, 0),
        (owner(4), CandidateState.VALIDATOR, 1),
        (owner(3), CandidateState.BACKUP, 2),
        (owner(1), CandidateState.CANDIDATE, 3),
    ]
    assert election.consensus_set == (
        (key(2), CONSENSUS_POWER),
        (key(4), CONSENSUS_POWER),
        (key(3), CONSENSUS_POWER),
    )


def test_ties_go_to_the_lower_consensus_address() -> None:
    cands = [candidate(i, voting_power=7) for i in range(1, 6)]
    expected = sorted(cands, key=lambda c: consensus_address(c.pub_key))
    election = elect(cands, SMALL)
    assert [a.owner for a in election.assignments] == [c.owner for c in expected]
    assert consensus_address(key(1)) == hashlib.sha256(key(1)).digest()[:20]


def test_zero_power_is_never_a_validator_but_can_back_up() -> None:
    cands = [candidate(1, voting_power=10), candidate(2), candidate(3)]
    got = states(PARAMS, *cands)  # max_vals 4: only one has power
    assert [s for _, s, _ in got] == [
        CandidateState.VALIDATOR,
        CandidateState.BACKUP,  # "the next backup_vals active ones"
        CandidateState.CANDIDATE,
    ]


def test_backups_only_among_active_candidates() -> None:
    cands = [
        candidate(1, voting_power=50),
        candidate(2, voting_power=40),
        candidate(3, voting_power=0, active=False),  # deactivated: power 0, never a backup
        candidate(4, voting_power=0),
    ]
    by = elect(cands, SMALL).by_owner()
    assert by[owner(3)].state is CandidateState.CANDIDATE
    assert by[owner(4)].state is CandidateState.BACKUP
    # a stale power on an inactive record does not make it a validator either
    stale = [candidate(1, voting_power=99, active=False), candidate(2, voting_power=1)]
    by = elect(stale, SMALL).by_owner()
    assert by[owner(1)].state is CandidateState.CANDIDATE
    assert by[owner(2)].state is CandidateState.VALIDATOR


def test_no_candidates_no_set() -> None:
    election = elect([], PARAMS)
    assert election.assignments == () and election.consensus_set == ()


# --- consensus updates --------------------------------------------------------------------------


def sort_key(u: tuple[bytes, int]) -> bytes:
    return consensus_address(u[0])


def test_updates_add_remove_and_skip_unchanged() -> None:
    previous = [(key(1), 10), (key(2), 10)]
    new = [(key(2), 10), (key(3), 10)]
    assert validator_updates(previous, new) == sorted([(key(1), 0), (key(3), 10)], key=sort_key)
    assert validator_updates(new, new) == []
    assert validator_updates([], new) == sorted(new, key=sort_key)
    assert validator_updates(new, []) == sorted([(k, 0) for k, _ in new], key=sort_key)


def test_a_changed_power_is_resent() -> None:
    assert validator_updates([(key(1), 5)], [(key(1), 10)]) == [(key(1), 10)]


def test_a_new_pub_key_replaces_the_old_at_the_next_recompute() -> None:
    before = elect([candidate(1, voting_power=5), candidate(2, voting_power=5)], PARAMS)
    moved = candidate(1, voting_power=5, pub_key=key(99))
    after = elect([moved, candidate(2, voting_power=5)], PARAMS)
    updates = validator_updates(before.consensus_set, after.consensus_set)
    assert updates == sorted([(key(1), 0), (key(99), 10)], key=sort_key)


def test_duplicate_members_are_refused() -> None:
    with pytest.raises(ValueError):
        validator_updates([(key(1), 10), (key(1), 10)], [])


# --- properties ---------------------------------------------------------------------------------


@st.composite
def candidate_sets(draw: st.DrawFn) -> list[Candidate]:
    n = draw(st.integers(0, 12))
    out = []
    for i in range(1, n + 1):
        active = draw(st.booleans())
        vp = draw(st.sampled_from([0, 0, 1, 5, 5, 100])) if active else 0
        out.append(candidate(i, voting_power=vp, active=active))
    return out


@PROPERTY
@given(
    cands=candidate_sets(),
    max_vals=st.integers(1, 5),
    backup_vals=st.integers(0, 3),
    data=st.data(),
)
def test_election_properties(
    cands: list[Candidate], max_vals: int, backup_vals: int, data: st.DataObject
) -> None:
    params = dataclasses.replace(PARAMS, max_vals=max_vals, backup_vals=backup_vals)
    election = elect(cands, params)
    shuffled = data.draw(st.permutations(cands))
    assert elect(shuffled, params) == election  # a function of the set, not of the order

    by = {c.owner: c for c in cands}
    got = election.assignments
    assert [a.rank for a in got] == list(range(len(cands)))
    assert sorted(a.owner for a in got) == sorted(by)
    powers = [by[a.owner].voting_power for a in got]
    assert powers == sorted(powers, reverse=True)
    vals = [a for a in got if a.state is CandidateState.VALIDATOR]
    backs = [a for a in got if a.state is CandidateState.BACKUP]
    assert len(vals) <= max_vals and len(backs) <= backup_vals
    assert all(by[a.owner].voting_power > 0 and by[a.owner].active for a in vals)
    assert all(by[a.owner].active for a in backs)
    # as many validators as there can be, and backups fill up from the active rest
    positive = sum(1 for c in cands if c.voting_power > 0)
    assert len(vals) == min(max_vals, positive)
    active_rest = sum(1 for c in cands if c.active) - len(vals)
    assert len(backs) == min(backup_vals, active_rest)
    # backups rank after every validator
    if vals and backs:
        assert max(a.rank for a in vals) < min(a.rank for a in backs)
    members = {by[a.owner].pub_key for a in vals + backs}
    assert {k for k, _ in election.consensus_set} == members
    assert all(p == CONSENSUS_POWER for _, p in election.consensus_set)


@PROPERTY
@given(before=candidate_sets(), after=candidate_sets())
def test_updates_turn_the_old_set_into_the_new(
    before: list[Candidate], after: list[Candidate]
) -> None:
    old = elect(before, SMALL).consensus_set
    new = elect(after, SMALL).consensus_set
    updates = validator_updates(old, new)
    applied = dict(old)
    for k, p in updates:
        if p == 0:
            del applied[k]
        else:
            applied[k] = p
    assert applied == dict(new)
    assert len({k for k, _ in updates}) == len(updates)
    assert [consensus_address(k) for k, _ in updates] == sorted(
        consensus_address(k) for k, _ in updates
    )
    assert not set(updates) & (set(old) & set(new))  # unchanged members are not sent


@PROPERTY
@given(
    stakes=st.lists(
        st.tuples(
            st.integers(1, 4),  # candidate
            st.integers(0, 3000 * CMT),
            st.integers(0, 500 * CMT),  # pending withdrawal
            st.sampled_from(DelegationSource),
        ),
        max_size=12,
    ),
    previous=st.frozensets(st.integers(1, 4)),
    data=st.data(),
)
def test_voting_powers_do_not_depend_on_order(
    stakes: list[tuple[int, int, int, DelegationSource]],
    previous: frozenset[int],
    data: st.DataObject,
) -> None:
    dels = [
        delegation(20 + i, cand, amount + pending, source, pending=pending)
        for i, (cand, amount, pending, source) in enumerate(stakes)
    ]
    cands = [
        candidate(c, sum(d.shares for d in dels if d.candidate == owner(c)), active=c != 4)
        for c in range(1, 5)
    ]
    members = frozenset(owner(c) for c in previous)
    table = candidate_voting_powers(cands, dels, members, PARAMS)
    again = candidate_voting_powers(
        data.draw(st.permutations(cands)), data.draw(st.permutations(dels)), members, PARAMS
    )
    assert again == table
    for c in table.candidates:
        assert c.pending_voting_power == sum(
            p.voting_power for p in table.delegations if p.candidate == c.owner
        )
        assert 0 < c.factor <= 1
    for d, p in zip(
        sorted(dels, key=lambda d: (d.candidate, d.delegator)), table.delegations, strict=True
    ):
        # never above the delegation's whole CMT, 0 below the minimum
        stake = d.shares + d.pending_withdraw_amount
        assert 0 <= p.voting_power <= stake // CMT
        if stake < PARAMS.min_staking_amount * CMT:
            assert p.voting_power == 0
    assert table.candidate(owner(4)).voting_power == 0
