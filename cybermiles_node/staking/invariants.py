"""The staking state's invariants, as named pure checks over a `SystemStorage`.

Each check reads the state and raises `InvariantViolation` naming the first relation it finds
broken (and the records involved); it changes nothing. The node runs `check_hold_covers_stakes`
at every election (election.py: a shortfall stops the node rather than pay out CMT that is not
there); tests and simulations run all of them after every block.

| check                      | relation                                                         |
|----------------------------|------------------------------------------------------------------|
| check_hold_covers_stakes   | Hold balance ≥ Σ over all delegations (shares + pending          |
|                            | withdrawals)                                                     |
| check_records              | the records agree with each other and with their indices (below) |
| check_election_outcome     | right after an election: the powers it stored add up, and what   |
|                            | consensus was sent is the consensus-set index                    |
| check_supply               | Σ balances = genesis supply + minted − burned                    |
| check_power_bookkeeping    | what the incremental election relies on (below)                  |

`check_records`, one relation per helper:
- no negative amount: every delegation's shares (the derived amount, SPEC §6; the stored fields
  are unsigned by encoding) and every pending unstake request's amount (> 0: a zero withdrawal
  makes no request);
- every delegator index entry names a delegation keyed, and recorded, under that candidate and
  delegator;
- each candidate's `shares` = Σ of its delegations' shares (withdrawn candidates too: their
  delegations are all pending, so both are 0), and `num_of_delegators` = its index length;
- a withdrawn candidate is inactive;
- the consensus-set index = the candidates in state Validator / Backup Validator that are
  active and not withdrawn (what `keeper.put_candidate` maintains);
- the ranking and the shares index hold exactly each candidate's key (`keeper.rank_key`,
  `keeper.shares_key`), in order;
- at most `max_vals` candidates are in state Validator and at most `backup_vals` in state
  Backup Validator, the two of the last election (its stored inputs): genesis makes every
  genesis validator a Validator whatever max_vals (genesis does not bound their number), and a
  governance change of the two parameters applies from the next election on (the simulation
  found the check reading the new values in the block that changed them);
- every PENDING unstake request is in the unstake queue under its maturity height and every
  queue entry is a PENDING request; Σ of the PENDING requests of a delegation (following
  account updates from the owner named in the request) = its `pending_withdraw_amount`.

`check_power_bookkeeping` (election.py's incremental recompute rests on it; holds at every
block once an election ran):
- the keeper's staked total = Σ (shares + pending withdrawals) over every delegation, and each
  candidate's delegated power = Σ of its delegations' stored voting powers;
- every delegation NOT marked dirty holds the voting power a recompute with the last
  election's inputs (`keeper.election_inputs`: min_staking_amount, its candidate's factor) gives
  it, and every candidate without a dirty delegation holds its delegated power as
  pending_voting_power. So a full recompute could only differ on dirty delegations and on
  candidates whose factor or whose parameters moved: what the election recomputes.

Relations that do NOT hold by design, so are not checked:
- candidate shares ≤ max_shares: updateCandidacy may lower max_amount below the shares held
  ("lowering never refunds", SPEC §6);
- Hold = Σ (shares + pending) exactly: anyone can send CMT to Hold (and, once awards land, Hold
  also keeps the award reserve);
- stored voting powers add up between elections: stakes change at once, voting powers only at
  the next recompute (`check_election_outcome` is for right after one);
- Σ balances over the accounts a node knows: a live node cannot iterate accounts, so the caller
  of `check_supply` supplies the sum (tests and simulations know every account).

The checks read every delegation and every unstake request ever made: O(state), for tests,
simulations and the election (which reads every delegation anyway), not for every block of a
production node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from fractions import Fraction

from cybermiles_node.errors import InvariantViolation
from cybermiles_node.params import read_params
from cybermiles_node.staking import keeper
from cybermiles_node.staking.power import (
    CONSENSUS_POWER,
    ElectionInputs,
    delegation_voting_power,
)
from cybermiles_node.staking.records import (
    Candidate,
    CandidateState,
    Delegation,
    RequestState,
    UnstakeRequest,
)
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS
from cybermiles_node.system.storage import SystemStorage
from genesis import Params

__all__ = [
    "all_delegations",
    "check_election_outcome",
    "check_hold_covers_stakes",
    "check_power_bookkeeping",
    "check_records",
    "check_supply",
    "pending_unstake_requests",
]

_IN_CONSENSUS = (CandidateState.VALIDATOR, CandidateState.BACKUP)


def _fail(message: str) -> InvariantViolation:
    return InvariantViolation(f"staking: {message}")


def _hex(address: bytes) -> str:
    return "0x" + address.hex()


# -- reading the whole state ----------------------------------------------------------------------
def all_delegations(storage: SystemStorage) -> tuple[Delegation, ...]:
    """Every delegation, by candidate then delegator, as the delegator indices list them; an
    index entry without its record (or with a record keyed elsewhere) is a violation."""
    found = []
    for owner in keeper.CANDIDATE_SET.keys(storage):
        for delegator in keeper.delegators_of(storage, owner):
            record = keeper.delegation(storage, owner, delegator)
            if record is None:
                raise _fail(f"{_hex(owner)}'s delegator index names {_hex(delegator)}, no record")
            if (record.candidate, record.delegator) != (owner, delegator):
                raise _fail(
                    f"the delegation stored under {_hex(owner)}/{_hex(delegator)} reads "
                    f"{_hex(record.candidate)}/{_hex(record.delegator)}"
                )
            found.append(record)
    return tuple(found)


def pending_unstake_requests(storage: SystemStorage) -> tuple[UnstakeRequest, ...]:
    """Every PENDING unstake request, by id (ids run from 1 to the counter's next id − 1)."""
    requests = []
    for request_id in range(1, keeper.UNSTAKE_NEXT_ID.get(storage)):
        request = keeper.unstake_request(storage, request_id)
        if request is None:
            raise _fail(f"unstake request {request_id} is below the next id but missing")
        if request.state is RequestState.PENDING:
            requests.append(request)
    return tuple(requests)


# -- Hold ------------------------------------------------------------------------------------------
def check_hold_covers_stakes(
    storage: SystemStorage,
    delegations: Sequence[Delegation] | None = None,
    *,
    staked: int | None = None,
) -> None:
    """The Hold account holds at least every delegation's stake and pending withdrawal
    (SPEC §6), plus the awards not yet settled into them (the reserve). At least, not
    exactly: anyone can send CMT to the Hold address, and that must not stop the chain. A
    shortfall is a broken invariant: the node stops rather than pay out CMT that is not
    there. `delegations`: all of them, when the caller has read them already (the full
    election); `staked`: their sum, when the caller has it (the incremental election gives
    the keeper's running total, which `check_power_bookkeeping` checks); neither reads them
    here."""
    if staked is None:
        records = all_delegations(storage) if delegations is None else delegations
        staked = sum(d.shares + d.pending_withdraw_amount for d in records)
    reserve = keeper.award_reserve(storage)
    held = storage.get_balance(HOLD_ADDRESS)
    if held < staked + reserve:
        raise _fail(
            f"the Hold account holds {held} wei, below the {staked} wei staked "
            f"+ {reserve} wei of unsettled awards"
        )


# -- the records -----------------------------------------------------------------------------------
def check_records(storage: SystemStorage, params: Params | None = None) -> None:
    """The staking records agree with each other and with their indices (module docstring).
    `params`: the set sizes to check against (default: those the last election obeyed, kept
    in its inputs; none before the first election)."""
    candidates = keeper.candidates(storage)
    delegations = all_delegations(storage)
    _check_amounts(delegations)
    by_candidate = _by_candidate(delegations)
    for record in candidates:
        _check_candidate(storage, record, by_candidate.get(record.owner, []))
    _check_consensus_index(storage, candidates)
    _check_order_indices(storage, candidates)
    limits = _set_size_limits(storage, params)
    if limits is not None:
        _check_set_sizes(candidates, *limits)
    requests = pending_unstake_requests(storage)
    _check_queue(storage, requests)
    _check_pending_sums(storage, delegations, requests)


def _by_candidate(delegations: Iterable[Delegation]) -> dict[bytes, list[Delegation]]:
    grouped: dict[bytes, list[Delegation]] = {}
    for d in delegations:
        grouped.setdefault(d.candidate, []).append(d)
    return grouped


def _check_amounts(delegations: Iterable[Delegation]) -> None:
    for d in delegations:
        if d.shares < 0:
            raise _fail(
                f"the delegation of {_hex(d.delegator)} to {_hex(d.candidate)} has negative "
                f"shares {d.shares} wei"
            )


def _check_candidate(storage: SystemStorage, record: Candidate, mine: list[Delegation]) -> None:
    owner = _hex(record.owner)
    total = sum(d.shares for d in mine)
    if record.shares != total:
        raise _fail(
            f"candidate {owner} records {record.shares} wei of shares, its delegations {total}"
        )
    count = keeper.delegator_count(storage, record.owner)
    if record.num_of_delegators != count:
        raise _fail(
            f"candidate {owner} records {record.num_of_delegators} delegators, its index {count}"
        )
    if record.withdrawn and record.active:
        raise _fail(f"candidate {owner} has withdrawn but is active")


def _check_consensus_index(storage: SystemStorage, candidates: Iterable[Candidate]) -> None:
    expected = tuple(
        c.owner for c in candidates if c.state in _IN_CONSENSUS and c.active and not c.withdrawn
    )  # candidates come by owner, as the index is sorted
    indexed = keeper.CONSENSUS_SET.keys(storage)
    if indexed != expected:
        raise _fail(
            f"the consensus-set index holds {[_hex(o) for o in indexed]}, the active validators "
            f"and backups are {[_hex(o) for o in expected]}"
        )


def _check_order_indices(storage: SystemStorage, candidates: Sequence[Candidate]) -> None:
    """The ranking and the shares index hold exactly one key per candidate, the one its record
    gives (so an election reading their heads sees what reading every record would)."""
    for name, stored, key_of in (
        ("ranking", keeper.rank_keys(storage), keeper.rank_key),
        ("shares index", keeper.shares_keys(storage), keeper.shares_key),
    ):
        expected = tuple(sorted(key_of(c) for c in candidates))
        if stored != expected:
            wrong = sorted(set(stored) ^ set(expected))
            raise _fail(
                f"the {name} holds {len(stored)} keys, the records give {len(expected)}; "
                f"{len(wrong)} differ (first 0x{wrong[0]:064x})"
                if wrong
                else f"the {name} is out of order"
            )


def _set_size_limits(storage: SystemStorage, params: Params | None) -> tuple[int, int] | None:
    """(max_vals, backup_vals) the states must obey: a governance change of either applies
    from the next election on, so by default those of the last election's inputs."""
    if params is not None:
        return params.max_vals, params.backup_vals
    inputs = keeper.election_inputs(storage)
    return None if inputs is None else (inputs.max_vals, inputs.backup_vals)


def _check_set_sizes(candidates: Sequence[Candidate], max_vals: int, backup_vals: int) -> None:
    for state, limit, name in (
        (CandidateState.VALIDATOR, max_vals, "max_vals"),
        (CandidateState.BACKUP, backup_vals, "backup_vals"),
    ):
        count = sum(1 for c in candidates if c.state is state)
        if count > limit:
            raise _fail(f"{count} candidates are in state {state.value!r}, above {name} {limit}")


def _queue_key(request: UnstakeRequest) -> bytes:
    return request.matures_at.to_bytes(32, "big") + request.id.to_bytes(32, "big")


def _check_queue(storage: SystemStorage, requests: Sequence[UnstakeRequest]) -> None:
    for request in requests:
        if request.amount <= 0:
            raise _fail(f"unstake request {request.id} is for {request.amount} wei")
    queued = keeper.UNSTAKE_QUEUE.keys(storage)
    expected = tuple(sorted(_queue_key(r) for r in requests))
    if queued != expected:
        missing = sorted(set(expected) - set(queued))
        extra = sorted(set(queued) - set(expected))
        raise _fail(
            "the unstake queue and the PENDING requests differ: not queued "
            f"{[_describe_key(k) for k in missing]}, queued but not PENDING "
            f"{[_describe_key(k) for k in extra]}"
        )


def _describe_key(key: bytes) -> str:
    return f"#{int.from_bytes(key[32:], 'big')}@{int.from_bytes(key[:32], 'big')}"


def _current_owner(storage: SystemStorage, owner: bytes) -> bytes:
    """Follow account updates from the owner a request named (a new owner never was a
    candidate, so the chain cannot loop; the guard is for a corrupted store)."""
    seen = {owner}
    while (new := keeper.renamed_to(storage, owner)) is not None and new not in seen:
        owner = new
        seen.add(new)
    return owner


def _check_pending_sums(
    storage: SystemStorage, delegations: Iterable[Delegation], requests: Iterable[UnstakeRequest]
) -> None:
    pending: dict[tuple[bytes, bytes], int] = {}
    for r in requests:
        key = (_current_owner(storage, r.candidate), r.delegator)
        pending[key] = pending.get(key, 0) + r.amount
    recorded = {(d.candidate, d.delegator): d.pending_withdraw_amount for d in delegations}
    for key in sorted(set(pending) | set(recorded)):
        owed, kept = pending.get(key, 0), recorded.get(key)
        if kept is None or owed != kept:
            candidate, delegator = key
            what = "no delegation" if kept is None else f"pending_withdraw_amount {kept} wei"
            raise _fail(
                f"the PENDING unstake requests of {_hex(delegator)} from {_hex(candidate)} sum "
                f"to {owed} wei, its delegation has {what}"
            )


# -- right after an election -----------------------------------------------------------------------
def check_election_outcome(storage: SystemStorage) -> None:
    """What the last election stored adds up; holds right after one (end_block at a height
    that is a multiple of cal_vp_interval), before any transaction moves a stake:

    - each candidate's pending_voting_power = Σ of its delegations' voting powers, and its
      voting_power is that sum when active and not withdrawn, else 0;
    - the set last sent to consensus is the consensus-set index's keys, each at power 10.
    """
    by_candidate = _by_candidate(all_delegations(storage))
    for record in keeper.candidates(storage):
        total = sum(d.voting_power for d in by_candidate.get(record.owner, []))
        eligible = record.active and not record.withdrawn
        if record.pending_voting_power != total:
            raise _fail(
                f"candidate {_hex(record.owner)} has pending_voting_power "
                f"{record.pending_voting_power}, its delegations {total}"
            )
        if record.voting_power != (total if eligible else 0):
            raise _fail(
                f"candidate {_hex(record.owner)} (active {record.active}, withdrawn "
                f"{record.withdrawn}) has voting_power {record.voting_power}, pending {total}"
            )
    members = sorted((c.pub_key, CONSENSUS_POWER) for c in keeper.consensus_set(storage))
    sent = sorted(keeper.sent_set(storage))
    if sent != members:
        raise _fail(
            f"consensus was last sent {[(k.hex(), p) for k, p in sent]}, the consensus set is "
            f"{[(k.hex(), p) for k, p in members]}"
        )


# -- the incremental election's bookkeeping ------------------------------------------------------
def check_power_bookkeeping(storage: SystemStorage) -> None:
    """The keeper's running sums and the election's dirty marks are right (module docstring)."""
    delegations = all_delegations(storage)
    staked = sum(max(d.shares, 0) + d.pending_withdraw_amount for d in delegations)
    if keeper.staked_total(storage) != staked:
        raise _fail(
            f"the staked total is {keeper.staked_total(storage)} wei, the delegations hold {staked}"
        )
    by_candidate = _by_candidate(delegations)
    dirty = frozenset(keeper.dirty_delegations(storage))
    dirty_owners = frozenset(owner for owner, _ in dirty)
    for record in keeper.candidates(storage):
        total = sum(d.voting_power for d in by_candidate.get(record.owner, []))
        if keeper.delegated_power(storage, record.owner) != total:
            raise _fail(
                f"candidate {_hex(record.owner)}'s delegated power is "
                f"{keeper.delegated_power(storage, record.owner)}, its delegations hold {total}"
            )
        if record.owner not in dirty_owners and record.pending_voting_power != total:
            raise _fail(
                f"candidate {_hex(record.owner)} has no dirty delegation but pending_voting_power "
                f"{record.pending_voting_power}, its delegations {total}"
            )
    inputs = keeper.election_inputs(storage)
    if inputs is not None:
        # Only min_staking_amount of the params counts for a delegation's power.
        params = replace(read_params(storage), min_staking_amount=inputs.min_staking_amount)
        _check_clean_powers(delegations, dirty, inputs, params)


def _check_clean_powers(
    delegations: Iterable[Delegation],
    dirty: frozenset[tuple[bytes, bytes]],
    inputs: ElectionInputs,
    params: Params,
) -> None:
    factors = dict(inputs.factors)
    for d in delegations:
        if (d.candidate, d.delegator) in dirty:
            continue
        expected = delegation_voting_power(d, factors.get(d.candidate, Fraction(1)), params)
        if d.voting_power != expected:
            raise _fail(
                f"the delegation of {_hex(d.delegator)} to {_hex(d.candidate)} is not dirty but "
                f"holds voting power {d.voting_power}, the last election's inputs give {expected}"
            )


# -- supply ----------------------------------------------------------------------------------------
def check_supply(balances_total: int, storage: SystemStorage, genesis_supply: int) -> None:
    """Σ balances = genesis supply + minted − burned (SPEC §6, Ours). The caller supplies
    Σ balances over every account (a node cannot iterate accounts; tests and simulations can)."""
    counters = ledger.read_supply(storage)
    expected = ledger.expected_supply(genesis_supply, counters)
    if balances_total != expected:
        raise _fail(
            f"the balances sum to {balances_total} wei, but genesis {genesis_supply} + minted "
            f"{counters.minted} − burned {counters.burned} = {expected} wei"
        )
