"""Block awards and their lazy accounting (SPEC §6; cybermiles_node/staking/awards.py)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node.staking.awards import (
    CandidateAwards,
    DelegationAwards,
    Member,
    accrue,
    accrue_all,
    block_award,
    distribute,
    open_snapshot,
    per_validator_totals,
    settle,
)
from cybermiles_node.staking.records import CandidateState, Delegation, DelegationSource
from genesis.params import Params

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None)
PARAMS = Params()  # inflation 8 %, validators_block_award_ratio 90/100
VAL = CandidateState.VALIDATOR
BAK = CandidateState.BACKUP


def owner(i: int) -> bytes:
    return bytes([i]) * 20


def delegation(voting_power: int, comp_rate: Fraction) -> Delegation:
    return Delegation(
        delegator=owner(200),
        candidate=owner(1),
        delegate_amount=10**21,
        award_amount=0,
        withdraw_amount=0,
        pending_withdraw_amount=0,
        slash_amount=0,
        comp_rate=comp_rate,
        voting_power=voting_power,
        active=True,
        source=DelegationSource.CUBE,
    )


def amounts(members: list[Member], pool: int, params: Params = PARAMS) -> dict[bytes, int]:
    return {a.owner: a.amount for a in distribute(pool, members, params).awards}


# --- the block award and the pool split -----------------------------------------------------------


def test_block_award_at_8_percent() -> None:
    assert block_award(PARAMS) == 25_367_833_587_011_669_203


def test_block_award_follows_the_inflation_parameter() -> None:
    assert block_award(dataclasses.replace(PARAMS, inflation_rate=Fraction(0))) == 0
    five = dataclasses.replace(PARAMS, inflation_rate=Fraction(5, 100))
    assert block_award(five) == 5 * 10**25 // 3_153_600


def test_validators_and_backups_split_by_the_ratio() -> None:
    members = [
        Member(owner(1), VAL, 300, True),
        Member(owner(2), VAL, 100, True),
        Member(owner(3), BAK, 50, True),
    ]
    got = amounts(members, 1000)
    assert got == {owner(1): 675, owner(2): 225, owner(3): 100}


def test_all_to_validators_when_no_backup_has_stake() -> None:
    members = [Member(owner(1), VAL, 3, True), Member(owner(2), BAK, 0, True)]
    assert amounts(members, 1000) == {owner(1): 1000, owner(2): 0}
    absent_backup = [Member(owner(1), VAL, 3, True), Member(owner(2), BAK, 9, False)]
    assert amounts(absent_backup, 1000) == {owner(1): 1000, owner(2): 0}


def test_absent_validators_earn_nothing_and_the_present_share_their_part() -> None:
    members = [
        Member(owner(1), VAL, 100, True),
        Member(owner(2), VAL, 900, False),  # did not sign the previous commit
        Member(owner(3), BAK, 10, True),
    ]
    assert amounts(members, 1000) == {owner(1): 900, owner(2): 0, owner(3): 100}


def test_backups_take_all_when_no_present_validator_has_power() -> None:
    members = [Member(owner(1), VAL, 100, False), Member(owner(3), BAK, 10, True)]
    assert amounts(members, 1000) == {owner(1): 0, owner(3): 1000}


def test_nothing_distributed_without_power() -> None:
    d = distribute(1000, [Member(owner(1), VAL, 0, True)], PARAMS)
    assert d.distributed == 0 and d.undistributed == 1000
    assert distribute(1000, [], PARAMS).undistributed == 1000


def test_largest_remainder_makes_the_totals_exact() -> None:
    # 10 wei among three equal validators: 4, 3, 3 (the remainders tie: lowest owner first).
    # Then 111 wei: validators floor(111 × 0.9) = 99 → 33 each, backups 12 by 1:2 → 4 and 8.
    members = [Member(owner(i), VAL, 7, True) for i in (3, 1, 2)]
    assert amounts(members, 10) == {owner(1): 4, owner(2): 3, owner(3): 3}
    members += [Member(owner(8), BAK, 1, True), Member(owner(9), BAK, 2, True)]
    got = amounts(members, 111)
    assert got == {owner(1): 33, owner(2): 33, owner(3): 33, owner(8): 4, owner(9): 8}


def test_award_infos_sum_to_the_block_award_without_fees() -> None:
    members = [
        Member(owner(1), VAL, 123_457, True),
        Member(owner(2), VAL, 98_765, True),
        Member(owner(3), VAL, 1, True),
        Member(owner(4), BAK, 77_777, True),
    ]
    award = block_award(PARAMS)
    infos = per_validator_totals(distribute(award, members, PARAMS))
    assert sum(i.amount for i in infos) == award
    assert [(i.owner, i.state) for i in infos] == [
        (owner(1), VAL),
        (owner(2), VAL),
        (owner(3), VAL),
        (owner(4), BAK),
    ]


def test_members_must_be_in_the_set() -> None:
    with pytest.raises(ValueError):
        distribute(1, [Member(owner(1), CandidateState.CANDIDATE, 1, True)], PARAMS)
    with pytest.raises(ValueError):
        distribute(1, [Member(owner(1), VAL, 1, True), Member(owner(1), BAK, 1, True)], PARAMS)


# --- settlement ---------------------------------------------------------------------------------


def test_settlement_splits_by_comp_rate() -> None:
    acc = accrue(CandidateAwards(), 1000, 400)  # 2.5 wei per unit of power
    s = settle(delegation(100, Fraction(1, 3)), DelegationAwards(), acc)
    assert s.total == 250
    assert s.owner_award == 83  # floor(250 / 3) to the owner's own delegation
    assert s.delegator_award == 167
    assert s.snapshot == DelegationAwards(acc.accumulator)
    again = settle(delegation(100, Fraction(1, 3)), s.snapshot, acc)
    assert again.total == 0  # nothing twice


def test_a_new_delegation_earns_nothing_accrued_before_it() -> None:
    acc = accrue(CandidateAwards(), 10**18, 7)
    snap = open_snapshot(acc)
    assert settle(delegation(7, Fraction(1, 2)), snap, acc).total == 0
    later = accrue(acc, 700, 7)
    assert settle(delegation(7, Fraction(0)), snap, later).delegator_award == 700


def test_accrue_refuses_an_award_without_power() -> None:
    assert accrue(CandidateAwards(5), 0, 0) == CandidateAwards(5)
    with pytest.raises(ValueError):
        accrue(CandidateAwards(), 1, 0)
    with pytest.raises(ValueError):
        settle(delegation(1, Fraction(0)), DelegationAwards(10), CandidateAwards(5))


# --- lazy settlement against the naive distribution, over random histories ---------------------


@dataclasses.dataclass
class Book:
    """One delegation in the simulation: its lazy state and what the naive way would pay."""

    candidate: int
    voting_power: int
    comp_rate: Fraction
    snapshot: DelegationAwards = DelegationAwards()
    lazy_delegator: int = 0
    lazy_owner: int = 0
    settlements: int = 0
    naive: int = 0  # per block floor(amount × vp / candidate vp)
    exact: Fraction = Fraction(0)  # per block amount × vp / candidate vp, no rounding
    exact_owner: Fraction = Fraction(0)
    paid_blocks: int = 0

    def record(self) -> Delegation:
        return delegation(self.voting_power, self.comp_rate)


powers = st.sampled_from([0, 1, 3, 1000, 10**6]) | st.integers(0, 10**9)
rates = st.integers(0, 99).map(lambda k: Fraction(k, 100))


@dataclasses.dataclass(frozen=True)
class Block:
    fees: int
    states: list[CandidateState | None]  # per candidate: its place in the set, None if out
    present: list[bool]  # per candidate: signed the previous commit
    changes: list[tuple[int, int]]  # (delegation index, new voting power) before the block


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Book], list[Block]]:
    n_candidates = draw(st.integers(1, 5))
    books = [
        Book(c, draw(powers), draw(rates))
        for c in range(n_candidates)
        for _ in range(draw(st.integers(1, 4)))
    ]
    blocks = []
    for _ in range(draw(st.integers(1, 12))):
        fees = draw(st.sampled_from([0, 0, 1, 21000 * 2 * 10**9]) | st.integers(0, 10**20))
        states = [draw(st.sampled_from([VAL, VAL, BAK, None])) for _ in range(n_candidates)]
        present = [draw(st.booleans()) for _ in range(n_candidates)]
        changes = draw(st.lists(st.tuples(st.integers(0, len(books) - 1), powers), max_size=3))
        blocks.append(Block(fees, states, present, changes))
    return books, blocks


def touch(book: Book, acc: CandidateAwards) -> int:
    """Settle a delegation as the keeper must before changing it; return the wei credited."""
    s = settle(book.record(), book.snapshot, acc)
    book.lazy_delegator += s.delegator_award
    book.lazy_owner += s.owner_award
    book.settlements += 1
    book.snapshot = s.snapshot
    return s.total


@PROPERTY
@given(history=histories(), ratio=st.sampled_from([Fraction(90, 100), Fraction(1), Fraction(0)]))
def test_lazy_settlement_equals_naive_distribution(
    history: tuple[list[Book], list[Block]], ratio: Fraction
) -> None:
    books, blocks = history
    params = dataclasses.replace(PARAMS, validators_block_award_ratio=ratio)
    n_candidates = 1 + max(b.candidate for b in books)
    accs = {owner(c): CandidateAwards() for c in range(n_candidates)}
    award = block_award(params)
    pools = 0
    distributed = 0
    credited = 0
    for block in blocks:
        # delegations change voting power between blocks, each settled first
        for index, new_power in block.changes:
            book = books[index]
            credited += touch(book, accs[owner(book.candidate)])
            book.voting_power = new_power

        candidate_power = [
            sum(b.voting_power for b in books if b.candidate == c) for c in range(n_candidates)
        ]
        members = [
            Member(owner(c), state, candidate_power[c], block.present[c])
            for c, state in enumerate(block.states)
            if state is not None
        ]
        fees = block.fees
        pool = award + fees
        dist = distribute(pool, members, params)
        pools += pool
        distributed += dist.distributed

        # the members' totals are the pool, exactly, whenever someone present has power
        anyone = any(m.present and m.voting_power > 0 for m in members)
        assert dist.distributed == (pool if anyone else 0)
        if fees == 0 and anyone:
            assert sum(a.amount for a in per_validator_totals(dist)) == award

        accs.update(accrue_all(accs, dist))

        # the naive way: every delegation of every paid member, every block
        for a in dist.awards:
            if a.amount == 0:
                continue
            c = a.owner[0]
            assert a.voting_power == candidate_power[c]
            for b in books:
                if b.candidate == c:
                    exact = Fraction(a.amount * b.voting_power, a.voting_power)
                    b.naive += a.amount * b.voting_power // a.voting_power
                    b.exact += exact
                    b.exact_owner += exact * b.comp_rate
                    b.paid_blocks += 1

        # what the keeper holds back (the award reserve) always covers every unsettled claim
        outstanding = sum(
            settle(b.record(), b.snapshot, accs[owner(b.candidate)]).total for b in books
        )
        assert credited + outstanding <= distributed <= pools

    for b in books:
        credited += touch(b, accs[owner(b.candidate)])
    assert credited <= distributed <= pools  # nothing is credited beyond the award and fees

    tiny = Fraction(1, 10**9)  # the accumulator's ×1e36 truncation, far below a wei
    for b in books:
        lazy = b.lazy_delegator + b.lazy_owner
        # within 1 wei per delegation per block of the naive per-delegation distribution
        assert abs(lazy - b.naive) <= b.paid_blocks
        # never more than exact, and less by under 1 wei per settlement
        assert lazy <= b.exact
        assert b.exact - lazy < b.settlements + tiny
        # the owner's and the delegator's parts follow comp_rate to within the same rounding
        assert b.lazy_owner <= b.exact_owner
        assert b.exact_owner - b.lazy_owner < 2 * b.settlements + tiny
        assert abs((b.exact - b.exact_owner) - b.lazy_delegator) < b.settlements + tiny
