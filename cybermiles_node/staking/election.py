"""The election at the end of a block (SPEC §6): voting power recomputed, ranks and states
assigned, and what consensus must change.

Every `cal_vp_interval` blocks: voting powers are recomputed (`power.candidate_voting_powers`,
with the previous election's set as the denominator's members), written back to the candidates
and delegations whose numbers moved, the candidates ranked (`power.elect`), their states and
ranks written (the keeper keeps the consensus-set index in step), and the new consensus set
diffed against the one last sent to consensus (`power.validator_updates`), which it replaces.
The updates take effect in consensus at H+2.

The election reads every delegation anyway, so it also checks the staking invariant that the
Hold account covers them (`invariants.check_hold_covers_stakes`): a violation stops the node.
"""

from __future__ import annotations

import dataclasses

from cybermiles_node.staking import keeper, power, rewards
from cybermiles_node.staking.invariants import check_hold_covers_stakes
from cybermiles_node.staking.records import Candidate, Delegation
from cybermiles_node.system.storage import SystemStorage
from genesis import Params

__all__ = ["run_election"]


def run_election(storage: SystemStorage, params: Params) -> list[tuple[bytes, int]]:
    """Recompute, elect and store; the (pub_key, power) changes for consensus (power 0: out)."""
    candidates = keeper.candidates(storage)
    delegations = [
        found
        for c in candidates
        for delegator in keeper.delegators_of(storage, c.owner)
        if (found := keeper.delegation(storage, c.owner, delegator)) is not None
    ]
    check_hold_covers_stakes(storage, delegations)
    previous = power.previous_set_owners(candidates)
    table = power.candidate_voting_powers(candidates, delegations, previous, params)
    if _store_delegation_powers(storage, delegations, table):
        candidates = keeper.candidates(storage)  # settling awards grew their shares
    computed = {c.owner: c for c in table.candidates}
    powered = [_with_power(c, computed[c.owner]) for c in candidates]
    election = power.elect(powered, params)
    assignments = election.by_owner()
    for stored, record in zip(candidates, powered, strict=True):
        assigned = assignments[record.owner]
        updated = dataclasses.replace(record, state=assigned.state, rank=assigned.rank)
        if updated != stored:  # only what moved is written
            keeper.put_candidate(storage, updated)
    changes = power.validator_updates(keeper.sent_set(storage), election.consensus_set)
    if changes:
        keeper.put_sent_set(storage, election.consensus_set)
    return changes


def _with_power(candidate: Candidate, computed: power.CandidatePower) -> Candidate:
    return dataclasses.replace(
        candidate,
        voting_power=computed.voting_power,
        pending_voting_power=computed.pending_voting_power,
    )


def _store_delegation_powers(
    storage: SystemStorage, delegations: list[Delegation], table: power.PowerTable
) -> bool:
    """Store the delegations' new voting powers, each settled first (its awards so far were
    earned at the old power). Whether any changed."""
    by_key = {(d.candidate, d.delegator): d.voting_power for d in table.delegations}
    changed = False
    for record in delegations:
        voting_power = by_key[(record.candidate, record.delegator)]
        if voting_power != record.voting_power:
            settled = rewards.settle(storage, record)
            keeper.put_delegation(storage, dataclasses.replace(settled, voting_power=voting_power))
            changed = True
    return changed
