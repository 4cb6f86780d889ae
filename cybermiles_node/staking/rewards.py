"""Block awards in state: each block's pool distributed, delegations settled lazily (SPEC §6).

`awards.py` holds the arithmetic as pure functions; this module applies it to the staking state
through the keeper.

Per block, at end_block, O(members of the consensus set) — `distribute_block_awards`:

1. The members are the current validators and backups (`keeper.consensus_set`). A member is
   present when its consensus key (as consensus knows it: the set last sent, `sent_set`) signed
   the previous block's commit. A block without commit information (block 1, the one-node
   automine devnet) counts everyone present.
2. pool = block award (minted) + the block's fees (already paid into Hold by the executor and
   by the staking fees), split by `awards.distribute`.
3. If someone present has voting power: the block award is minted into Hold, the pool joins
   the award reserve, and each paid member's accumulator grows. Otherwise nothing is minted and
   the fees are burned (nobody may receive them).
4. The per-member amounts are kept for `cmt_queryAwardInfos`.

Per delegation, only when touched — `settle`: what it earned since its snapshot, at the voting
power and comp_rate it has held since then, moves from the reserve into award_amount (its own
part) and into the candidate owner's self-delegation (the comp_rate part). The candidate's
shares grow by the total. Callers settle before anything that changes what a delegation earns
per block: its voting power (elections, removal), its comp_rate, a payout that includes its
awards, slashing, and a change of owner. Queries add the unsettled part without writing
(`unsettled_award`).

Decision (docs/DECISIONS.md, "Awards in state"): when the owner has no self-delegation left
(it withdrew everything), the comp_rate part stays with the delegator rather than being lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cybermiles_node.staking import awards, keeper
from cybermiles_node.staking.power import consensus_address
from cybermiles_node.staking.records import Candidate, Delegation
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS
from cybermiles_node.system.context import BlockContext
from cybermiles_node.system.errors import StorageError
from cybermiles_node.system.storage import SystemStorage

__all__ = [
    "distribute_block_awards",
    "settle",
    "settle_all_of",
    "settle_delegation",
    "unsettled_award",
]


def distribute_block_awards(
    storage: SystemStorage, ctx: BlockContext, fees: int, consensus_set: Sequence[Candidate]
) -> awards.Distribution:
    """Share this block's pool among the present members (see the module docstring);
    `consensus_set`: `keeper.consensus_set(storage)`, read by the caller."""
    members = tuple(_members(storage, ctx, consensus_set))
    award = awards.block_award(ctx.params)
    distribution = awards.distribute(award + fees, members, ctx.params)
    if distribution.distributed == 0:
        ledger.burn(storage, HOLD_ADDRESS, fees)
    else:
        ledger.mint(storage, HOLD_ADDRESS, award)
        keeper.put_award_reserve(storage, keeper.award_reserve(storage) + distribution.pool)
        current = {  # only the paid members' accumulators grow
            a.owner: awards.CandidateAwards(keeper.award_accumulator(storage, a.owner))
            for a in distribution.awards
            if a.amount > 0
        }
        for owner, grown in sorted(awards.accrue_all(current, distribution).items()):
            keeper.put_award_accumulator(storage, owner, grown.accumulator)
    keeper.put_award_infos(storage, ((a.owner, a.state, a.amount) for a in distribution.awards))
    return distribution


def _members(
    storage: SystemStorage, ctx: BlockContext, consensus_set: Sequence[Candidate]
) -> list[awards.Member]:
    signers = frozenset(ctx.last_commit_signers)
    known = {
        owner
        for pub_key, _ in keeper.sent_set(storage)
        if consensus_address(pub_key) in signers
        and (owner := keeper.pub_key_owner(storage, pub_key)) is not None
    }
    return [
        awards.Member(
            owner=c.owner,
            state=c.state,
            voting_power=c.voting_power,
            present=not signers or c.owner in known,
        )
        for c in consensus_set
    ]


def unsettled_award(storage: SystemStorage, delegation: Delegation) -> awards.Settlement:
    """What settling `delegation` now would credit (nothing is written)."""
    accumulator = keeper.award_accumulator(storage, delegation.candidate)
    return awards.settle(
        delegation,
        awards.DelegationAwards(delegation.award_snapshot),
        awards.CandidateAwards(accumulator),
    )


def settle(storage: SystemStorage, delegation: Delegation) -> Delegation:
    """Credit what `delegation` earned since it was last settled; the stored, settled record.

    The record is read afresh by its key (the caller's copy may be stale: settling another
    delegation credits the owner's). The candidate is written back with its shares grown:
    callers holding a `Candidate` record must read it again after settling."""
    settled, credited = settle_delegation(storage, delegation)
    if credited:
        keeper.put_award_reserve(storage, keeper.award_reserve(storage) - credited)
        record = _candidate(storage, delegation.candidate)
        keeper.put_candidate(storage, replace(record, shares=record.shares + credited))
    return settled


def settle_delegation(
    storage: SystemStorage,
    delegation: Delegation,
    *,
    voting_power: int | None = None,
    mark: bool = True,
) -> tuple[Delegation, int]:
    """The delegations' half of `settle`: credit the delegation (and the owner's own one with
    its cut) and store it, with `voting_power` in its place when given; (the stored record,
    the wei credited). The caller takes the credited wei from the award reserve and adds them
    to the candidate's shares: the election settles several delegations of a candidate and
    writes the candidate once. `mark`: as `keeper.put_delegation`'s."""
    stored = keeper.delegation(storage, delegation.candidate, delegation.delegator)
    if stored is None:
        raise StorageError(
            f"staking: no delegation of 0x{delegation.delegator.hex()} to "
            f"0x{delegation.candidate.hex()} to settle"
        )
    power = stored.voting_power if voting_power is None else voting_power
    earned = unsettled_award(storage, stored)
    snapshot = earned.snapshot.snapshot
    if earned.total == 0 and snapshot == stored.award_snapshot:
        if power == stored.voting_power:
            return stored, 0
        powered = replace(stored, voting_power=power)
        keeper.put_delegation(storage, powered, replacing=stored, mark=mark)
        return powered, 0
    own_part, owner_part = earned.delegator_award, earned.owner_award
    owner = stored.candidate
    owner_delegation = None
    if stored.delegator != owner:
        owner_delegation = keeper.delegation(storage, owner, owner)
    if stored.delegator == owner or owner_delegation is None:
        own_part, owner_part = earned.total, 0
    settled = replace(
        stored,
        award_amount=stored.award_amount + own_part,
        award_snapshot=snapshot,
        voting_power=power,
    )
    keeper.put_delegation(storage, settled, replacing=stored, mark=mark)
    if owner_delegation is not None and owner_part:
        cut = replace(owner_delegation, award_amount=owner_delegation.award_amount + owner_part)
        keeper.put_delegation(storage, cut, replacing=owner_delegation, mark=mark)
    return settled, earned.total


def settle_all_of(storage: SystemStorage, owner: bytes) -> None:
    """Settle every delegation to the candidate of `owner` (O(its delegations))."""
    for record in keeper.delegations_to(storage, owner):
        settle(storage, record)


def _candidate(storage: SystemStorage, owner: bytes) -> Candidate:
    record = keeper.candidate(storage, owner)
    if record is None:
        raise StorageError(f"staking: a delegation names a missing candidate 0x{owner.hex()}")
    return record
