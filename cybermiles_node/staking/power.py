"""Voting power, the election and the consensus updates of SPEC §6, as pure functions.

No storage, clock or consensus here: the keeper reads the records, calls these and writes the
results back. Everything is exact integer / `Fraction` arithmetic and every output is sorted, so
two nodes given the same records compute the same bytes.

Voting power (each recompute, every `cal_vp_interval` blocks)::

    total  = floor(Σ shares of the active members of the PREVIOUS set / 1e18)      (whole CMT)
    p      = floor(candidate shares / 1e18) / total
    f      = validator_size_threshold / p   if p > threshold   else 1     (total 0: f = 1)
    s      = delegation.shares + delegation.pending_withdraw_amount        (wei)
    vp     = 0                               if s < min_staking_amount CMT
           = floor(floor(s / 1e18) × f)      for a "cube" delegation
           = floor(floor(floor(s / 1e18) × f) × 4/5)   for a "cmt_wallet" delegation
    candidate.pending_voting_power = Σ vp of its delegations
    candidate.voting_power         = pending_voting_power if active (and not withdrawn) else 0

Decisions (docs/DECISIONS.md, "Staking power and awards"):

- The SPEC's total is over "active validators and backups", i.e. the set the previous election
  made, which is an input of this one (the circularity is broken by time). It is passed
  explicitly as the owners of that set (`previous_members`, see `previous_set_owners`).
- A delegation's stake for power includes its pending withdrawals: the SPEC says so for the
  minimum ("its shares (incl. pending withdrawals)"), and an unstaking amount "keeps earning
  awards" until maturity, which it can only do through voting power.
- The 0.8 of "cmt_wallet" is applied last, to the already floored integer power, and floored
  again: the SPEC writes "floor(...), times 0.8", and an integer result is needed.
- The candidate's p uses `Candidate.shares` as the keeper records it.

Election: order by voting power descending, then consensus address (sha256(pub_key)[:20])
ascending, then owner; rank = index in that order. The first `max_vals` with voting power > 0
(and active, not withdrawn) are Validators; the next `backup_vals` active, not withdrawn ones
(in rank order, whatever their power) are Backup Validators; everyone else is a Candidate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from cybermiles_node.staking.records import (
    WEI_PER_CMT,
    Candidate,
    CandidateState,
    Delegation,
    DelegationSource,
)
from genesis.params import Params

__all__ = [
    "CONSENSUS_POWER",
    "WALLET_FACTOR",
    "Assignment",
    "CandidatePower",
    "DelegationPower",
    "Election",
    "ElectionInputs",
    "PowerTable",
    "RankedCandidate",
    "candidate_voting_powers",
    "consensus_address",
    "delegation_voting_power",
    "elect",
    "elect_ranked",
    "previous_set_owners",
    "set_stake_cmt",
    "size_factor",
    "size_factors",
    "stale_candidates",
    "validator_updates",
]

CONSENSUS_POWER = 10  # every member of the consensus set has this BFT power (SPEC §6)
WALLET_FACTOR = Fraction(4, 5)  # "cmt_wallet" delegations count 0.8

ConsensusMember = tuple[bytes, int]  # (ed25519 pub_key, consensus power)


def consensus_address(pub_key: bytes) -> bytes:
    """The consensus address of a key, as consensus/types.py `validator_address` computes it."""
    return hashlib.sha256(pub_key).digest()[:20]


# --- voting power -------------------------------------------------------------------------------


def previous_set_owners(candidates: Iterable[Candidate]) -> frozenset[bytes]:
    """Owners the last election made Validator or Backup Validator (from the records' states)."""
    return frozenset(
        c.owner for c in candidates if c.state in (CandidateState.VALIDATOR, CandidateState.BACKUP)
    )


def set_stake_cmt(candidates: Iterable[Candidate], previous_members: Collection[bytes]) -> int:
    """SPEC's total: floor(Σ shares of the active members of the previous set / 1e18)."""
    wei = sum(
        c.shares for c in candidates if c.owner in previous_members and c.active and not c.withdrawn
    )
    return wei // WEI_PER_CMT


def size_factor(candidate_shares: int, total_cmt: int, params: Params) -> Fraction:
    """f = threshold / p when p = floor(shares / 1e18) / total exceeds the threshold, else 1.

    No stake in the set (total 0) gives 1, never a division by zero.
    """
    if total_cmt <= 0:
        return Fraction(1)
    p = Fraction(candidate_shares // WEI_PER_CMT, total_cmt)
    threshold = params.validator_size_threshold
    if p > threshold:
        return threshold / p  # p > threshold > 0 here
    return Fraction(1)


def size_factors(
    candidates: Iterable[Candidate], previous_members: Collection[bytes], params: Params
) -> tuple[int, dict[bytes, Fraction]]:
    """The SPEC's total and every candidate's size factor f, by owner."""
    records = tuple(candidates)
    total = set_stake_cmt(records, previous_members)
    return total, {c.owner: size_factor(c.shares, total, params) for c in records}


def delegation_voting_power(delegation: Delegation, factor: Fraction, params: Params) -> int:
    """One delegation's voting power under its candidate's size factor (SPEC §6)."""
    stake = delegation.shares + delegation.pending_withdraw_amount
    if stake < params.min_staking_amount * WEI_PER_CMT:
        return 0
    power = _floor_mul(stake // WEI_PER_CMT, factor)
    if delegation.source is DelegationSource.WALLET:
        power = _floor_mul(power, WALLET_FACTOR)
    return max(power, 0)


def _floor_mul(n: int, r: Fraction) -> int:
    return n * r.numerator // r.denominator


@dataclass(frozen=True)
class DelegationPower:
    delegator: bytes
    candidate: bytes
    voting_power: int


@dataclass(frozen=True)
class CandidatePower:
    owner: bytes
    factor: Fraction
    pending_voting_power: int  # Σ over its delegations
    voting_power: int  # 0 when inactive or withdrawn


@dataclass(frozen=True)
class PowerTable:
    """The result of one recompute: candidates by owner, delegations by (candidate, delegator)."""

    total_cmt: int
    candidates: tuple[CandidatePower, ...]
    delegations: tuple[DelegationPower, ...]

    def candidate(self, owner: bytes) -> CandidatePower:
        for c in self.candidates:
            if c.owner == owner:
                return c
        raise KeyError(owner.hex())


def candidate_voting_powers(
    candidates: Iterable[Candidate],
    delegations: Iterable[Delegation],
    previous_members: Collection[bytes],
    params: Params,
) -> PowerTable:
    """Recompute every candidate's and delegation's voting power (SPEC §6).

    `previous_members` are the owners of the consensus set of the previous election (validators
    and backups), whose active stake is the denominator of p. A delegation to an unknown
    candidate is an error: the keeper must never hold one.
    """
    by_owner: dict[bytes, Candidate] = {}
    for c in candidates:
        if c.owner in by_owner:
            raise ValueError(f"candidate {c.owner.hex()} given twice")
        by_owner[c.owner] = c
    owners = sorted(by_owner)
    total, factors = size_factors((by_owner[o] for o in owners), previous_members, params)
    sums = dict.fromkeys(owners, 0)
    powers: list[DelegationPower] = []
    seen: set[tuple[bytes, bytes]] = set()
    for d in delegations:
        if d.candidate not in by_owner:
            raise ValueError(f"delegation to unknown candidate {d.candidate.hex()}")
        key = (d.candidate, d.delegator)
        if key in seen:
            raise ValueError(f"delegation {d.delegator.hex()} → {d.candidate.hex()} given twice")
        seen.add(key)
        vp = delegation_voting_power(d, factors[d.candidate], params)
        sums[d.candidate] += vp
        powers.append(DelegationPower(d.delegator, d.candidate, vp))
    powers.sort(key=lambda p: (p.candidate, p.delegator))
    table = tuple(
        CandidatePower(
            owner=o,
            factor=factors[o],
            pending_voting_power=sums[o],
            voting_power=sums[o] if _eligible(by_owner[o]) else 0,
        )
        for o in owners
    )
    return PowerTable(total, table, tuple(powers))


def _eligible(candidate: Candidate) -> bool:
    return candidate.active and not candidate.withdrawn


# --- what changes a delegation's power between two recomputes --------------------------------


@dataclass(frozen=True)
class ElectionInputs:
    """What an election's results depend on besides the records: the parameters that shape
    powers and sets, the SPEC's total, and the candidates' size factors (only those that are
    not 1, by owner). Two recomputes with equal inputs give a delegation whose record did not
    change the same power; the election keeps the last inputs in state to recompute only what
    moved, and to skip itself when nothing did."""

    min_staking_amount: int
    validator_size_threshold: Fraction
    max_vals: int
    backup_vals: int
    total_cmt: int
    factors: tuple[tuple[bytes, Fraction], ...]

    @classmethod
    def of(
        cls, total_cmt: int, factors: Mapping[bytes, Fraction], params: Params
    ) -> ElectionInputs:
        scaled = tuple(sorted((o, f) for o, f in factors.items() if f != 1))
        return cls(
            params.min_staking_amount,
            params.validator_size_threshold,
            params.max_vals,
            params.backup_vals,
            total_cmt,
            scaled,
        )

    def same_params(self, params: Params) -> bool:
        """Whether `params` shape powers and sets as the ones these inputs were taken with."""
        return (
            self.min_staking_amount,
            self.validator_size_threshold,
            self.max_vals,
            self.backup_vals,
        ) == (
            params.min_staking_amount,
            params.validator_size_threshold,
            params.max_vals,
            params.backup_vals,
        )


def stale_candidates(last: ElectionInputs | None, now: ElectionInputs) -> tuple[bytes, ...] | None:
    """The owners whose factor differs between the two inputs (a missing factor is 1), sorted;
    None when every delegation must be recomputed (no last inputs, or a parameter of power
    changed)."""
    if last is None or (last.min_staking_amount, last.validator_size_threshold) != (
        now.min_staking_amount,
        now.validator_size_threshold,
    ):
        return None
    before, after = dict(last.factors), dict(now.factors)
    return tuple(o for o in sorted(before.keys() | after.keys()) if before.get(o) != after.get(o))


# --- election -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    owner: bytes
    state: CandidateState
    rank: int


@dataclass(frozen=True)
class Election:
    """What an election decided: every candidate's state and rank (sorted by rank), and the
    consensus set (validators then backups, in rank order), each member with power 10."""

    assignments: tuple[Assignment, ...]
    consensus_set: tuple[ConsensusMember, ...]

    def by_owner(self) -> Mapping[bytes, Assignment]:
        return {a.owner: a for a in self.assignments}


@dataclass(frozen=True)
class RankedCandidate:
    """What the election needs of one candidate in rank order."""

    owner: bytes
    voting_power: int
    eligible: bool  # active and not withdrawn


def elect_ranked(
    ranking: Iterable[RankedCandidate], params: Params
) -> tuple[tuple[bytes, CandidateState], ...]:
    """The members, in rank order, from candidates given in rank order: the first `max_vals`
    with voting power > 0 (and eligible) are Validators, the next `backup_vals` eligible ones
    (whatever their power) are Backup Validators. Reads `ranking` only as far as it needs.

    The order puts every positive power first, so an eligible candidate that is not a validator
    is either past the max_vals validators or has no power: no validator can follow it, and
    once the backups are full nothing else can change."""
    validators: list[bytes] = []
    backups: list[bytes] = []
    for c in ranking:
        if len(validators) < params.max_vals and c.voting_power > 0 and c.eligible:
            validators.append(c.owner)
        elif len(backups) < params.backup_vals and c.eligible:
            backups.append(c.owner)
        if len(backups) >= params.backup_vals and (
            len(validators) >= params.max_vals or c.voting_power == 0
        ):
            break
    return tuple((o, CandidateState.VALIDATOR) for o in validators) + tuple(
        (o, CandidateState.BACKUP) for o in backups
    )


def _rank_key(c: Candidate) -> tuple[int, bytes, bytes]:
    return (-c.voting_power, consensus_address(c.pub_key), c.owner)


def elect(candidates: Iterable[Candidate], params: Params) -> Election:
    """Rank and assign states from the candidates' (freshly recomputed) `voting_power`.

    The result does not depend on the input order. Candidates' `pub_key`s must be distinct
    (the rules refuse a used key), and so must owners.
    """
    ordered = sorted(candidates, key=_rank_key)
    if len({c.owner for c in ordered}) != len(ordered):
        raise ValueError("a candidate is given twice")
    if len({c.pub_key for c in ordered}) != len(ordered):
        raise ValueError("two candidates share a pub_key")
    members = elect_ranked(
        (RankedCandidate(c.owner, c.voting_power, _eligible(c)) for c in ordered), params
    )
    states = dict(members)
    by_owner = {c.owner: c for c in ordered}
    assignments = tuple(
        Assignment(c.owner, states.get(c.owner, CandidateState.CANDIDATE), rank)
        for rank, c in enumerate(ordered)
    )
    consensus_set = tuple((by_owner[o].pub_key, CONSENSUS_POWER) for o, _ in members)
    return Election(assignments, consensus_set)


# --- consensus updates --------------------------------------------------------------------------


def validator_updates(
    previous_set: Iterable[ConsensusMember], new_set: Iterable[ConsensusMember]
) -> list[ConsensusMember]:
    """What consensus must change to go from `previous_set` to `new_set`.

    Sets are keyed by pub_key, so a candidate whose pub_key changed is the removal of its old
    key (power 0) and the addition of its new one. A member whose power differs (e.g. a genesis
    validator with another power) is re-sent with its new power; unchanged members are not sent.
    Sorted by consensus address, then pub_key.
    """
    before = _as_map(previous_set, "previous_set")
    after = _as_map(new_set, "new_set")
    changes: list[ConsensusMember] = [(k, 0) for k in before if k not in after]
    changes += [(k, p) for k, p in after.items() if before.get(k) != p]
    changes.sort(key=lambda u: (consensus_address(u[0]), u[0]))
    return changes


def _as_map(members: Iterable[ConsensusMember], name: str) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for pub_key, power in members:
        if pub_key in out:
            raise ValueError(f"{name}: pub_key {pub_key.hex()} given twice")
        if power <= 0:
            raise ValueError(f"{name}: member {pub_key.hex()} with power {power}")
        out[pub_key] = power
    return out
