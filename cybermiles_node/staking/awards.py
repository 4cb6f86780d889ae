"""Block awards of SPEC §6 with lazy reward-per-voting-power accounting, as pure functions.

Per block (after its transactions), O(members of the consensus set):

1. `pool = block_award(params) + fees`.
2. `distribute(pool, members, params)` splits it: the present validators get
   floor(pool × validators_block_award_ratio), the present backups the rest; a group with no
   voting power hands its part to the other group; within a group each member gets its part
   weighted by voting power, by largest remainder, so the members' amounts sum to the group's
   exactly. If no present member has voting power, nothing is distributed
   (`Distribution.undistributed == pool`).
3. `accrue(candidate_awards, amount, voting_power)` adds floor(amount × ACC_SCALE / voting_power)
   to each paid member's cumulative reward per unit of voting power.

Per delegation, only when it is touched (its voting power or comp_rate is about to change, it is
withdrawn, or it is read): `settle(delegation, snapshot, candidate_awards)` pays
floor(voting_power × (accumulator − snapshot) / ACC_SCALE) wei, floor(earned × comp_rate) of it
to the candidate owner and the rest to the delegator, and moves the snapshot to the accumulator.
A delegation starts with `open_snapshot(candidate_awards)`.

Where the wei go (docs/DECISIONS.md, "Staking power and awards"):

- The per-member amounts (`per_validator_totals`, what `cmt_queryAwardInfos` returns) sum to the
  pool exactly whenever someone present has power: to block_award when the block has no fees.
- Delegations are credited at most what their member received: the accumulator and each
  settlement floor, so less than 1 wei per delegation per settlement stays behind. The keeper
  keeps an award reserve in Hold: + pool at each distribution (the inflation part minted once,
  the fees moved), − every settlement. The reserve is never negative and only dust remains in it;
  Hold = Σ shares + pending withdrawals + reserve.
- If nothing is distributed, the keeper mints nothing; the fees have no one to go to and are
  burned (so supply stays Σ balances = genesis + minted − burned).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from cybermiles_node.staking.records import CandidateState, Delegation
from genesis.params import Params

__all__ = [
    "ACC_SCALE",
    "BLOCKS_PER_YEAR",
    "INFLATION_BASE_WEI",
    "CandidateAwards",
    "DelegationAwards",
    "Distribution",
    "Member",
    "MemberAward",
    "Settlement",
    "accrue",
    "accrue_all",
    "block_award",
    "distribute",
    "open_snapshot",
    "per_validator_totals",
    "settle",
]

BLOCKS_PER_YEAR = 3_153_600
INFLATION_BASE_WEI = 10**9 * 10**18  # 1,000,000,000 CMT, fixed (not compounding)
# Reward per unit of voting power is kept ×1e36: with voting power in whole CMT (< 1e10) the
# accumulator's truncation costs a delegation < 1e-26 wei per block, and it stays within 256 bits
# for > 1e20 blocks of the default award even at voting power 1.
ACC_SCALE = 10**36


def block_award(params: Params) -> int:
    """floor(1e27 × inflation_rate / 3,153,600) wei: 25,367,833,587,011,669,203 at 8 %."""
    rate = params.inflation_rate
    return INFLATION_BASE_WEI * rate.numerator // (rate.denominator * BLOCKS_PER_YEAR)


# --- one block's distribution among the members ----------------------------------------------


@dataclass(frozen=True)
class Member:
    """A member of the consensus set as the awards see it."""

    owner: bytes
    state: CandidateState  # VALIDATOR or BACKUP
    voting_power: int  # its candidate's voting power = Σ of its delegations' voting power
    present: bool  # signed the previous block's commit


@dataclass(frozen=True)
class MemberAward:
    """One line of `cmt_queryAwardInfos`: what a member's delegations earned in the block."""

    owner: bytes
    state: CandidateState
    amount: int
    voting_power: int


@dataclass(frozen=True)
class Distribution:
    pool: int
    awards: tuple[MemberAward, ...]  # every member given, validators first, then by owner

    @property
    def distributed(self) -> int:
        return sum(a.amount for a in self.awards)

    @property
    def undistributed(self) -> int:
        """0, or the whole pool when no present member has voting power."""
        return self.pool - self.distributed


_STATE_ORDER = {CandidateState.VALIDATOR: 0, CandidateState.BACKUP: 1}


def distribute(pool: int, members: Iterable[Member], params: Params) -> Distribution:
    """Split `pool` among the present members by SPEC §6 (see the module docstring).

    Absent members and members with no voting power get 0. Rounding: the validators' part is
    floor(pool × ratio), the backups get the rest; inside a group largest remainder (ties by
    owner), so nothing is lost between the pool and the members.
    """
    if pool < 0:
        raise ValueError(f"negative pool {pool}")
    listed = sorted(members, key=lambda m: (_STATE_ORDER[_checked_state(m)], m.owner))
    if len({m.owner for m in listed}) != len(listed):
        raise ValueError("a member is given twice")
    for m in listed:
        if m.voting_power < 0:
            raise ValueError(f"member {m.owner.hex()} with negative voting power")
    paid = [m for m in listed if m.present and m.voting_power > 0]
    validators = [m for m in paid if m.state is CandidateState.VALIDATOR]
    backups = [m for m in paid if m.state is CandidateState.BACKUP]
    if not validators and not backups:
        to_validators, to_backups = 0, 0
    elif not backups:
        to_validators, to_backups = pool, 0
    elif not validators:
        to_validators, to_backups = 0, pool
    else:
        ratio = params.validators_block_award_ratio
        to_validators = pool * ratio.numerator // ratio.denominator
        to_backups = pool - to_validators
    amounts = _largest_remainder(to_validators, validators)
    amounts.update(_largest_remainder(to_backups, backups))
    awards = tuple(
        MemberAward(m.owner, m.state, amounts.get(m.owner, 0), m.voting_power) for m in listed
    )
    return Distribution(pool, awards)


def _checked_state(m: Member) -> CandidateState:
    if m.state not in _STATE_ORDER:
        raise ValueError(f"member {m.owner.hex()} is a {m.state.value}, not in the set")
    return m.state


def _largest_remainder(amount: int, group: list[Member]) -> dict[bytes, int]:
    """amount × power / Σ power each, floored, the leftover wei one each to the largest
    remainders (ties by owner, ascending). Σ result = amount when the group has power."""
    total = sum(m.voting_power for m in group)
    if total == 0:
        return {}
    shares = {m.owner: divmod(amount * m.voting_power, total) for m in group}
    leftover = amount - sum(q for q, _ in shares.values())
    by_remainder = sorted(group, key=lambda m: (-shares[m.owner][1], m.owner))
    out = {owner: q for owner, (q, _) in shares.items()}
    for m in by_remainder[:leftover]:
        out[m.owner] += 1
    return out


def per_validator_totals(distribution: Distribution) -> tuple[MemberAward, ...]:
    """The per-member totals of the block for `cmt_queryAwardInfos` ({address, state, amount}),
    validators first, then backups, each by owner address. Their sum is the pool (block_award
    when the block has no fees) unless nothing was distributed."""
    return distribution.awards


# --- lazy accounting --------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateAwards:
    """Per candidate: Σ over its paid blocks of floor(amount × ACC_SCALE / voting_power)."""

    accumulator: int = 0


@dataclass(frozen=True)
class DelegationAwards:
    """Per delegation: its candidate's accumulator when it was last settled."""

    snapshot: int = 0


def accrue(candidate: CandidateAwards, amount: int, voting_power: int) -> CandidateAwards:
    """Add one block's `amount` for a candidate whose delegations' powers sum to `voting_power`.

    Every delegation must have been settled before any change of its voting power, so the powers
    the accumulator is read with are those it was accrued with.
    """
    if amount < 0:
        raise ValueError(f"negative award {amount}")
    if amount == 0:
        return candidate
    if voting_power <= 0:
        raise ValueError("an award for a candidate without voting power")
    return CandidateAwards(candidate.accumulator + amount * ACC_SCALE // voting_power)


def accrue_all(
    accumulators: Mapping[bytes, CandidateAwards], distribution: Distribution
) -> dict[bytes, CandidateAwards]:
    """The new accumulators of the members paid by `distribution` (only those: O(members)).

    A member missing from `accumulators` starts at 0.
    """
    out: dict[bytes, CandidateAwards] = {}
    for a in distribution.awards:
        if a.amount > 0:
            current = accumulators.get(a.owner, CandidateAwards())
            out[a.owner] = accrue(current, a.amount, a.voting_power)
    return out


def open_snapshot(candidate: CandidateAwards) -> DelegationAwards:
    """The snapshot of a new delegation: it earns nothing of what was accrued before."""
    return DelegationAwards(candidate.accumulator)


@dataclass(frozen=True)
class Settlement:
    delegator_award: int  # credit to this delegation's award_amount
    owner_award: int  # credit to the candidate owner's own delegation's award_amount
    snapshot: DelegationAwards  # store it with the delegation

    @property
    def total(self) -> int:
        return self.delegator_award + self.owner_award


def settle(
    delegation: Delegation, snapshot: DelegationAwards, candidate: CandidateAwards
) -> Settlement:
    """What `delegation` earned since `snapshot`, at the voting power and comp_rate it has held
    since then: floor(vp × Δ / ACC_SCALE) wei, floor(× comp_rate) of it to the owner."""
    delta = candidate.accumulator - snapshot.snapshot
    if delta < 0:
        raise ValueError("snapshot is ahead of the candidate's accumulator")
    if delegation.voting_power < 0:
        raise ValueError("negative voting power")
    earned = delegation.voting_power * delta // ACC_SCALE
    owner = _owner_cut(earned, delegation.comp_rate)
    return Settlement(earned - owner, owner, DelegationAwards(candidate.accumulator))


def _owner_cut(earned: int, comp_rate: Fraction) -> int:
    if not 0 <= comp_rate <= 1:
        raise ValueError(f"comp_rate {comp_rate} outside [0, 1]")
    return earned * comp_rate.numerator // comp_rate.denominator
