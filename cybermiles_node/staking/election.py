"""The election at the end of a block (SPEC §6): voting power recomputed, ranks and states
assigned, and what consensus must change.

Every `cal_vp_interval` blocks: voting powers are recomputed, written back to the delegations
and candidates whose numbers moved (each delegation settled first: its awards so far were
earned at the old power), the candidates ranked (`power.elect`), their states and ranks written
(the keeper keeps the consensus-set index in step), and the new consensus set diffed against
the one last sent to consensus (`power.validator_updates`), which it replaces. The updates take
effect in consensus at H+2.

Incremental (`run_election`), O(what changed + candidates), not O(delegations). A delegation's
power depends only on its own record, `min_staking_amount` and its candidate's size factor
(power.py), so between two elections it can change only if

(a) the delegation was written or removed since (the keeper marks it dirty itself),
(b) its candidate's factor changed (f ≠ 1 only above `validator_size_threshold` of the set), or
(c) a parameter changed (then everything is recomputed, as at the first election).

The last election's inputs are kept in state (`keeper.election_inputs`) to find (b) and (c),
and to skip the election altogether when nothing was written since the last one and neither the
parameters nor the previous set's stake moved (a block without staking activity: then it costs
O(validators)). Every other delegation's stored power is still what a full recompute would give
it (`invariants.check_power_bookkeeping`). A candidate's pending power is the keeper's running sum
of its delegations' stored powers (`keeper.delegated_power`) when one of them was recomputed,
else the one it holds. The election consumes every dirty mark.

Fixed point (`_settle_powers`). A delegation is settled before its power changes; settling
credits awards, which grows stakes and shares, so the SPEC's total and the size factors, so
other powers. The election therefore runs in rounds: recompute the dirty delegations and those
of candidates whose factor moved (settling each whose power changes), then again those whose
stake settling grew and those of candidates whose factor the grown shares moved, until a round
changes nothing. It ends with every power what the settled stakes give, and no dirty mark, so
the next block's election is quiet unless something was written: an idle chain's blocks cost
the award step alone, O(validators) words. (Each pass settles only what earned since the
block's awards, so the second pass credits nothing new: two or three rounds.) Voting power
follows settled shares (docs/DECISIONS.md, "Awards in state"): a validator's awards count in
its power once something settles them, not every block, as they do not for any delegation.

`run_full_election` is the reference: every delegation read and `power.candidate_voting_powers`
over them all, as the SPEC states it. It leaves the same state (bookkeeping included); the
staking simulation runs both after every election and compares. It reads every delegation, so
it also checks the staking invariant that the Hold account covers them
(`invariants.check_hold_covers_stakes`); the incremental one checks it against the keeper's
running total. A violation stops the node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from fractions import Fraction

from cybermiles_node.staking import keeper, power, rewards
from cybermiles_node.staking.invariants import check_hold_covers_stakes
from cybermiles_node.staking.records import (
    Candidate,
    CandidateState,
    Delegation,
    DelegationSource,
)
from cybermiles_node.system.errors import StorageError
from cybermiles_node.system.storage import SystemStorage
from genesis import Params

__all__ = ["run_election", "run_full_election"]

DelegationKey = tuple[bytes, bytes]  # (candidate owner, delegator)
_ONE = Fraction(1)
_IN_CONSENSUS = (CandidateState.VALIDATOR, CandidateState.BACKUP)
# A delegation credits something new at most once a block (a later settlement in the same
# block earns nothing), so rounds stop after two or three; more is a broken invariant.
_MAX_ROUNDS = 64


def run_election(
    storage: SystemStorage, params: Params, *, members: Sequence[Candidate] | None = None
) -> list[tuple[bytes, int]]:
    """Recompute what moved, elect and store; the (pub_key, power) changes for consensus.
    `members`: the consensus set as read earlier in the block (the award step), for the quiet
    check, which uses it only when nothing was written since the last election."""
    last = keeper.election_inputs(storage)
    if last is not None and _quiet(storage, last, params, members):
        return []
    touched = keeper.touched_candidates(storage)  # before this election's own writes
    holders = frozenset(m.owner for m in keeper.consensus_set(storage))
    check_hold_covers_stakes(storage, staked=keeper.staked_total(storage))
    inputs, recomputed, credited = _settle_powers(storage, holders, last, params)
    moved = sorted(frozenset(touched) | recomputed | credited)
    records = {}
    for owner in moved:
        stored = keeper.candidate(storage, owner)
        if stored is None:
            if owner in credited:
                raise StorageError(f"staking: settled delegations name no candidate {owner.hex()}")
            continue  # handed over to a new owner (account update), which is touched too
        pending = (
            keeper.delegated_power(storage, owner)
            if owner in recomputed
            else stored.pending_voting_power
        )
        records[owner] = _with_power(stored, pending)
        if records[owner] != stored:  # moves its rank key; _finish clears the touched marks
            keeper.put_candidate(storage, records[owner], replacing=stored, touch=False)
    holders |= {o for o, r in records.items() if r.state in _IN_CONSENSUS}
    return _elect_from_ranking(storage, holders, records, inputs, params, last)


def _settle_powers(
    storage: SystemStorage,
    holders: frozenset[bytes],
    last: power.ElectionInputs | None,
    params: Params,
) -> tuple[power.ElectionInputs, frozenset[bytes], frozenset[bytes]]:
    """Bring every delegation's stored power to what its stake gives under the inputs the
    settled stakes give (module docstring, "Fixed point"); (those inputs, the owners with a
    recomputed delegation, the owners whose shares settling grew). Round by round: the dirty
    delegations and those of candidates whose factor moved are recomputed, each whose power
    changes settled first; what settling credited changes stakes and the shares (so the total
    and the factors), which the next round recomputes. Clears the dirty marks."""
    keys_from: Iterable[DelegationKey] = keeper.dirty_delegations(storage)
    previous = last
    recomputed: set[bytes] = set()
    credited: set[bytes] = set()
    for _ in range(_MAX_ROUNDS):
        members = keeper.consensus_set(storage)
        total = power.set_stake_cmt(members, holders)
        factors = _size_factors(storage, total, params)
        inputs = power.ElectionInputs.of(total, factors, params)
        stale = power.stale_candidates(previous, inputs)
        owners = keeper.candidate_owners(storage) if stale is None else stale
        keys = _to_recompute(storage, keys_from, owners)
        if not keys:
            break
        delegations = [d for key in keys if (d := keeper.delegation(storage, *key)) is not None]
        powers = {
            (d.candidate, d.delegator): power.delegation_voting_power(
                d, factors.get(d.candidate, _ONE), params
            )
            for d in delegations
        }
        credits, keys_from = _store_powers(storage, delegations, powers)
        recomputed.update(owner for owner, _ in keys)
        credited.update(o for o, wei in credits.items() if wei)
        _credit_candidates(storage, credits)
        previous = inputs
    else:
        raise StorageError(f"staking: the election did not settle in {_MAX_ROUNDS} rounds")
    keeper.clear_dirty_delegations(storage)
    return inputs, frozenset(recomputed), frozenset(credited)


def _size_factors(storage: SystemStorage, total_cmt: int, params: Params) -> dict[bytes, Fraction]:
    """The size factors that are not 1: f > 1 needs p > threshold, and p grows with the
    shares, so they are the head of the candidates by descending shares."""
    factors = {}
    for owner, shares in keeper.largest_shares(storage):
        factor = power.size_factor(shares, total_cmt, params)
        if factor == 1:
            break
        factors[owner] = factor
    return factors


def _elect_from_ranking(
    storage: SystemStorage,
    holders: Collection[bytes],
    records: dict[bytes, Candidate],
    inputs: power.ElectionInputs,
    params: Params,
    last: power.ElectionInputs | None,
) -> list[tuple[bytes, int]]:
    """Elect from the head of the ranking (`power.elect_ranked`), write the states that
    changed (of `holders`, who held a seat, and of the elected), remember the inputs, and
    diff the new consensus set against the one last sent. `records`: the candidates this
    election has read (with their new powers, as stored), to read no record twice; `last`:
    the stored inputs of the last election."""
    elected = power.elect_ranked(_ranked_owners(storage), params)
    states = dict(elected)
    for owner in sorted(frozenset(holders) | states.keys()):
        record = records.get(owner) or keeper.candidate(storage, owner)
        if record is None:
            raise StorageError(f"staking: the consensus set names 0x{owner.hex()}, no candidate")
        records[owner] = record
        state = states.get(owner, CandidateState.CANDIDATE)
        if record.state is not state:
            records[owner] = dataclasses.replace(record, state=state)
            keeper.put_candidate(storage, records[owner], replacing=record, touch=False)
    consensus_set = tuple((records[owner].pub_key, power.CONSENSUS_POWER) for owner, _ in elected)
    return _finish(storage, consensus_set, inputs, last)


def _ranked_owners(storage: SystemStorage) -> Iterator[power.RankedCandidate]:
    """The ranking from the top, each entry with its owner, read lazily."""
    for entry in keeper.ranked(storage):
        owner = keeper.owner_of_address(storage, entry.consensus_address)
        if owner is None:
            raise StorageError(
                f"staking: rank {entry.rank} names consensus address "
                f"0x{entry.consensus_address.hex()}, no owner"
            )
        yield power.RankedCandidate(owner, entry.voting_power, entry.eligible)


def _finish(
    storage: SystemStorage,
    consensus_set: tuple[tuple[bytes, int], ...],
    inputs: power.ElectionInputs,
    last: power.ElectionInputs | None,
) -> list[tuple[bytes, int]]:
    """Remember the inputs (`last`: those stored), clear the touched marks (the election's
    own writes leave none: it clears them all here), and send what changed in the set."""
    if last != inputs:
        keeper.put_election_inputs(storage, inputs)
    keeper.clear_touched_candidates(storage)  # the marks of the writes since the last one
    changes = power.validator_updates(keeper.sent_set(storage), consensus_set)
    if changes:
        keeper.put_sent_set(storage, consensus_set)
    return changes


def run_full_election(
    storage: SystemStorage, params: Params, *, members: Sequence[Candidate] | None = None
) -> list[tuple[bytes, int]]:
    """The reference: recompute every delegation (module docstring); same results and state.
    `members` is accepted for `run_election`'s signature and not used: nothing is skipped.
    Round by round like the incremental one: store every power that changed (settling
    first), grow the candidates' shares by the credits, until no power changes."""
    candidates = keeper.candidates(storage)
    check_hold_covers_stakes(storage, _delegations_of(storage, candidates))
    previous = power.previous_set_owners(candidates)
    while True:
        candidates = keeper.candidates(storage)
        delegations = _delegations_of(storage, candidates)
        table = power.candidate_voting_powers(candidates, delegations, previous, params)
        powers = {(d.candidate, d.delegator): d.voting_power for d in table.delegations}
        if all(powers[(d.candidate, d.delegator)] == d.voting_power for d in delegations):
            break
        credits, _ = _store_powers(storage, delegations, powers)
        _credit_candidates(storage, credits)
    keeper.clear_dirty_delegations(storage)
    computed = {c.owner: c for c in table.candidates}
    powered = [_with_power(c, computed[c.owner].pending_voting_power) for c in candidates]
    factors = {c.owner: c.factor for c in table.candidates}
    inputs = power.ElectionInputs.of(table.total_cmt, factors, params)
    return _elect_and_store(storage, candidates, powered, inputs, params)


def _delegations_of(storage: SystemStorage, candidates: Iterable[Candidate]) -> list[Delegation]:
    return [d for c in candidates for d in keeper.delegations_to(storage, c.owner)]


def _quiet(
    storage: SystemStorage,
    last: power.ElectionInputs,
    params: Params,
    members: Sequence[Candidate] | None,
) -> bool:
    """Would this election change nothing? Yes when no delegation or candidate was written
    since the last one, the parameters are the same, and so is the SPEC's total (the previous
    set's stake: the set may have changed at the last election). Then every input of every
    power and of the ranking is what the last election left, and so are its results. Nothing
    written since also means `members`, read earlier in the block, are the records now."""
    if keeper.written_since_election(storage) or not last.same_params(params):
        return False
    if members is None:
        members = keeper.consensus_set(storage)  # the active validators and backups
    return power.set_stake_cmt(members, {m.owner for m in members}) == last.total_cmt


def _to_recompute(
    storage: SystemStorage, dirty: Iterable[DelegationKey], owners: Iterable[bytes]
) -> tuple[DelegationKey, ...]:
    """The dirty delegations and every delegation of `owners`, sorted, each once."""
    keys = set(dirty)
    for owner in owners:
        keys.update((owner, delegator) for delegator in keeper.delegators_of(storage, owner))
    return tuple(sorted(keys))


def _store_powers(
    storage: SystemStorage, delegations: Sequence[Delegation], powers: Mapping[DelegationKey, int]
) -> tuple[dict[bytes, int], tuple[DelegationKey, ...]]:
    """Store the new powers (`_store_delegation_powers`); (the wei settling credited, by
    candidate owner, the delegations whose stake no longer is the one their stored power was
    computed from: settling credited them, the delegation itself or the owner's own one with
    its cut)."""
    before = {(d.candidate, d.delegator): d for d in delegations}
    for owner in sorted({d.candidate for d in delegations}):
        own = (owner, owner)
        if own not in before and (record := keeper.delegation(storage, *own)) is not None:
            before[own] = record  # its power is as current as its record (not dirty)
    credits = _store_delegation_powers(storage, delegations, powers)
    changed = []
    for key in sorted(before):
        after = keeper.delegation(storage, *key) if key[0] in credits else before[key]
        if after is not None and _stake(after) != _stake(before[key]):
            changed.append(key)
    return credits, tuple(changed)


def _credit_candidates(storage: SystemStorage, credits: Mapping[bytes, int]) -> None:
    """Grow the candidates' shares by what settling their delegations credited."""
    for owner, wei in sorted(credits.items()):
        if wei:
            stored = keeper.candidate(storage, owner)
            if stored is None:
                raise StorageError(f"staking: settled delegations name no candidate {owner.hex()}")
            keeper.put_candidate(storage, _credited(stored, credits), replacing=stored, touch=False)


def _stake(record: Delegation) -> tuple[int, DelegationSource]:
    """What a delegation's power depends on in its own record."""
    return record.shares + record.pending_withdraw_amount, record.source


def _store_delegation_powers(
    storage: SystemStorage, delegations: Sequence[Delegation], powers: Mapping[DelegationKey, int]
) -> dict[bytes, int]:
    """Store the delegations' new voting powers, each settled first (its awards so far were
    earned at the old power), and take what settling credited from the award reserve. The
    credited wei by candidate owner, for every owner with a settled delegation (0 when it
    earned nothing): the candidates' shares must grow by them."""
    credits: dict[bytes, int] = {}
    for record in delegations:
        voting_power = powers[(record.candidate, record.delegator)]
        if voting_power != record.voting_power:
            _, credited = rewards.settle_delegation(
                storage, record, voting_power=voting_power, mark=False
            )
            credits[record.candidate] = credits.get(record.candidate, 0) + credited
    total = sum(credits.values())
    if total:
        keeper.put_award_reserve(storage, keeper.award_reserve(storage) - total)
    return credits


def _credited(candidate: Candidate, credits: Mapping[bytes, int]) -> Candidate:
    """`candidate` with its shares grown by what settling credited it."""
    credit = credits.get(candidate.owner, 0)
    return dataclasses.replace(candidate, shares=candidate.shares + credit) if credit else candidate


def _with_power(candidate: Candidate, pending: int) -> Candidate:
    eligible = candidate.active and not candidate.withdrawn
    return dataclasses.replace(
        candidate, voting_power=pending if eligible else 0, pending_voting_power=pending
    )


def _elect_and_store(
    storage: SystemStorage,
    stored: Sequence[Candidate],
    powered: Sequence[Candidate],
    inputs: power.ElectionInputs,
    params: Params,
) -> list[tuple[bytes, int]]:
    """The reference's election: rank every candidate (`power.elect`), write what moved."""
    election = power.elect(powered, params)
    assignments = election.by_owner()
    for before, record in zip(stored, powered, strict=True):
        updated = dataclasses.replace(record, state=assignments[record.owner].state)
        if updated != before:  # only what moved is written
            keeper.put_candidate(storage, updated, replacing=before, touch=False)
    return _finish(storage, election.consensus_set, inputs, keeper.election_inputs(storage))
