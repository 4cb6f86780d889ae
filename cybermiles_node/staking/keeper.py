"""The staking state in storage: the ONLY module that knows where staking records live.

Everything is kept in the storage of the staking account (0x…c0de05, `STAKING_ADDRESS`), so one
state root covers it and `eth_getProof` proves it. Records are stored whole, as the canonical RLP
of their fields (`_encode_*` below) in a `BYTES` value: one read gives a record, the encoding
depends only on the record, and a new field is one more list item.

Slot layout (module "staking"; derivations in cybermiles_node/system/storage.py)

| name                   | kind                     | key → value                                  |
|------------------------|--------------------------|----------------------------------------------|
| candidates             | map address → bytes      | owner → RLP of `Candidate`                   |
| candidate_set          | sorted index of address  | every owner holding a candidate record       |
|                        |                          | (withdrawn ones too; not an old owner after  |
|                        |                          | an account update)                           |
| ever_candidate         | map address → bool       | owner → true once it owned a candidate:      |
|                        |                          | such an address can never declare again      |
| pub_key_owners         | map bytes32 → address    | consensus key → the owner that used it last; |
|                        |                          | a key once used is never free again          |
| delegations            | map bytes(40) → bytes    | candidate ‖ delegator → RLP of `Delegation`  |
| delegators_of/<owner>  | sorted index of address  | (one per candidate, <owner> = 40 lowercase   |
|                        |                          | hex digits) the delegators of that candidate |
| consensus_set          | sorted index of address  | owners of the current validators and backups |
| sent_set               | bytes                    | RLP [pub_key, power] pairs last sent to BFT  |
| unstake_next_id        | uint                     | the id the next unstake request gets (from 1)|
| unstakes               | map uint → bytes         | id → RLP of `UnstakeRequest`                 |
| unstake_queue          | sorted queue of bytes    | matures_at (32 bytes) ‖ id (32 bytes) of     |
|                        |                          | every PENDING unstake request                |
| account_update_next_id | uint                     | the id the next account update request gets  |
|                        |                          | (from 1)                                     |
| account_updates        | map uint → bytes         | id → RLP of `AccountUpdateRequest`           |
| account_update_targets | map address → bool       | new owner → true once any request named it   |
| renamed_to             | map address → address    | old owner → new owner, after an accepted     |
|                        |                          | account update (unstake requests keep the    |
|                        |                          | old name and follow this map)                |
| address_owners         | map address → address    | consensus address (sha256(pub_key)[:20]) →   |
|                        |                          | the owner that used the key last (commits    |
|                        |                          | and evidence name validators so)             |
| absences               | map address → uint       | owner → commits missed in a row (slashing)   |
| award_accumulators     | map address → uint       | owner → Σ floor(award × 1e36 / voting power) |
|                        |                          | over the blocks it was paid (awards.py)      |
| award_reserve          | uint                     | wei in Hold awarded but not yet settled into |
|                        |                          | a delegation's award_amount                  |
| award_infos            | bytes                    | RLP [owner, state, amount] of each member in |
|                        |                          | the last block's distribution                |
| staked_total           | uint                     | Σ (shares + pending_withdraw_amount) over    |
|                        |                          | every delegation: what Hold must cover       |
|                        |                          | (negative shares, a broken record, count 0)  |
| delegated_power        | map address → uint       | owner → Σ voting_power of its delegations as |
|                        |                          | stored (withdrawn candidates' too)           |
| dirty_candidates       | sorted index of address  | owners with a delegation written or removed  |
|                        |                          | since the last election                      |
| dirty_delegators/<own> | sorted index of address  | (one per candidate, as delegators_of) the    |
|                        |                          | delegators whose delegation to <own> was     |
|                        |                          | written or removed since the last election   |
| touched_candidates     | sorted index of address  | owners whose candidate record was written or |
|                        |                          | removed since the last election              |
| ranking                | sorted index of uint     | one rank key per candidate (withdrawn ones   |
|                        |                          | too): (2^64-1-voting_power) << 192 |         |
|                        |                          | consensus address << 32 | eligible << 1 | 1 |
|                        |                          | (ascending = SPEC's rank order)              |
| by_shares              | sorted index of uint     | shares << 160 | owner, one per candidate     |
| election_inputs        | bytes                    | RLP [min_staking_amount, threshold, max_vals,|
|                        |                          | backup_vals, the SPEC's total, [[owner,      |
|                        |                          | factor] of each candidate whose size factor  |
|                        |                          | is not 1]] as the last election used them;   |
|                        |                          | empty before the first                       |

The last six make the election incremental (election.py): `put_delegation` and
`remove_delegation` keep `staked_total` and `delegated_power` in step (they read the record they
replace) and mark the delegation dirty, and `put_candidate` marks its candidate touched, so no
caller can forget to; the election reads and clears the marks, and compares its inputs with
`election_inputs` to find the candidates whose every delegation must be recomputed, or that
nothing moved at all. The dirty marks are two-level (candidates, then delegators
per candidate) so a block's inserts shift short arrays only. The election alone opts out of the
marking (`mark=False`, `touch=False`) and passes the record it read (`replacing`), for its own
writes: it ends by clearing the dirty and the touched marks (it leaves every power what the
stakes give), so the marks its writes would make are never needed.

`ranking` and `by_shares` are kept by `put_candidate` from the record it stores (its stored
voting power, consensus key and eligibility; its shares), so they are a function of the records:
the election reads the top of `ranking` to elect (O(set + what moved)), a candidate's rank is
its position there (`rank_of`, computed when asked, never stored: a stored rank would make every
move rewrite every record in between), and the size factors need only the head of `by_shares`
(the candidates whose stake can exceed the size threshold). A key moves with
`SortedIndex.replace`, which shifts only the keys it passes: a stake that changes a little moves
a few words. The key to move is computed from the record being replaced (put_candidate reads
it), so no per-candidate copy of the keys is stored.

`consensus_set` is what the EVM's ISVALIDATOR / isValidator and consensus read every block, so
it is kept apart: reading it costs O(validators), never O(candidates).

`delegators_of/<owner>` is one sorted index per candidate (storage.py's advice for a large set
that churns): a delegation changes only its own candidate's index. Its namespace is built here,
not declared in `LAYOUT`: "staking/delegators_of/<hex>" contains a second "/", which no declared
name can (names match [a-z][a-z0-9_]*), so it can never collide with a declared namespace.
`put_delegation` and `remove_delegation` keep it in step with `delegations`, and
`put_candidate` keeps `ever_candidate` and `pub_key_owners`, so every writer (genesis included)
fills them. The unstake queue is ordered by maturity height then id: `matured_unstakes` reads
its head. It is a sorted queue: paying a matured request drains it from the front and a new
request (maturing after every pending one, unless governance shortened the waiting period)
appends, both O(1) writes.

Genesis (`init_genesis`): each genesis validator becomes a candidate in state "Validator",
active, with its owner's self-delegation (source "cube") of `shares` CMT moved from the owner's
balance into the Hold account through the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

import rlp

from cybermiles_node.staking.power import CONSENSUS_POWER, ElectionInputs, consensus_address
from cybermiles_node.staking.records import (
    AccountUpdateRequest,
    Candidate,
    CandidateState,
    Delegation,
    DelegationSource,
    Description,
    RequestState,
    UnstakeRequest,
)
from cybermiles_node.system import ledger, rlp_codec
from cybermiles_node.system.addresses import HOLD_ADDRESS, STAKING_ADDRESS
from cybermiles_node.system.errors import StorageError
from cybermiles_node.system.storage import (
    ADDRESS,
    ADDRESS_KEY,
    BOOL,
    BYTES,
    BYTES32_KEY,
    BYTES_KEY,
    UINT,
    UINT_KEY,
    Item,
    Layout,
    SortedIndex,
    SystemStorage,
)
from genesis import Genesis

__all__ = [
    "Ranked",
    "absences",
    "largest_shares",
    "rank_key",
    "rank_keys",
    "rank_of",
    "ranked",
    "shares_key",
    "shares_keys",
    "account_update_request",
    "clear_dirty_delegations",
    "clear_touched_candidates",
    "delegated_power",
    "dirty_delegations",
    "election_inputs",
    "put_election_inputs",
    "staked_total",
    "touched_candidates",
    "written_since_election",
    "award_accumulator",
    "award_infos",
    "award_reserve",
    "candidate",
    "candidate_owners",
    "consensus_member_owner",
    "consensus_set",
    "consensus_set_owners",
    "delegation",
    "delegations_to",
    "delegator_count",
    "delegators_of",
    "init_genesis",
    "mark_dirty",
    "is_account_update_target",
    "matured_unstake_ids",
    "new_account_update_request",
    "new_unstake_request",
    "owner_of_address",
    "pub_key_owner",
    "put_absences",
    "put_account_update_request",
    "put_award_accumulator",
    "put_award_infos",
    "put_award_reserve",
    "put_candidate",
    "put_delegation",
    "put_unstake_request",
    "remove_delegation",
    "rename_candidate",
    "renamed_to",
    "unstake_request",
    "was_candidate",
]

WEI_PER_CMT = 10**18

LAYOUT = Layout(STAKING_ADDRESS, "staking")
CANDIDATES = LAYOUT.map("candidates", ADDRESS_KEY, BYTES)
CANDIDATE_SET = LAYOUT.sorted_index("candidate_set", ADDRESS_KEY)
DELEGATIONS = LAYOUT.map("delegations", BYTES_KEY, BYTES)
CONSENSUS_SET = LAYOUT.sorted_index("consensus_set", ADDRESS_KEY)
EVER_CANDIDATE = LAYOUT.map("ever_candidate", ADDRESS_KEY, BOOL)
PUB_KEY_OWNERS = LAYOUT.map("pub_key_owners", BYTES32_KEY, ADDRESS)
UNSTAKE_NEXT_ID = LAYOUT.item("unstake_next_id", UINT)
UNSTAKES = LAYOUT.map("unstakes", UINT_KEY, BYTES)
UNSTAKE_QUEUE = LAYOUT.sorted_queue("unstake_queue", BYTES_KEY)
ACCOUNT_UPDATE_NEXT_ID = LAYOUT.item("account_update_next_id", UINT)
ACCOUNT_UPDATES = LAYOUT.map("account_updates", UINT_KEY, BYTES)
ACCOUNT_UPDATE_TARGETS = LAYOUT.map("account_update_targets", ADDRESS_KEY, BOOL)
RENAMED_TO = LAYOUT.map("renamed_to", ADDRESS_KEY, ADDRESS)
# The consensus set last handed to consensus, as RLP of [pub_key, power] pairs: elections diff
# against it (a candidate's record may already hold a new pub_key that consensus has not seen).
SENT_SET = LAYOUT.item("sent_set", BYTES)
ADDRESS_OWNERS = LAYOUT.map("address_owners", ADDRESS_KEY, ADDRESS)
ABSENCES = LAYOUT.map("absences", ADDRESS_KEY, UINT)
AWARD_ACCUMULATORS = LAYOUT.map("award_accumulators", ADDRESS_KEY, UINT)
AWARD_RESERVE = LAYOUT.item("award_reserve", UINT)
AWARD_INFOS = LAYOUT.item("award_infos", BYTES)
STAKED_TOTAL = LAYOUT.item("staked_total", UINT)
DELEGATED_POWER = LAYOUT.map("delegated_power", ADDRESS_KEY, UINT)
DIRTY_CANDIDATES = LAYOUT.sorted_index("dirty_candidates", ADDRESS_KEY)
TOUCHED_CANDIDATES = LAYOUT.sorted_index("touched_candidates", ADDRESS_KEY)
ELECTION_INPUTS = LAYOUT.item("election_inputs", BYTES)
RANKING = LAYOUT.sorted_index("ranking", UINT_KEY)
BY_SHARES = LAYOUT.sorted_index("by_shares", UINT_KEY)
# Widths of the key fields: a voting power in whole CMT and shares in wei fit with room to
# spare (the supply is ~1e9 CMT = 2^90 wei); beyond them the store is broken (StorageError).
POWER_LIMIT = 2**64
SHARES_LIMIT = 2**96

_IN_CONSENSUS = (CandidateState.VALIDATOR, CandidateState.BACKUP)


# -- records ------------------------------------------------------------------------------------
def candidate(storage: SystemStorage, owner: bytes) -> Candidate | None:
    encoded = CANDIDATES.get(storage, owner)
    return _decode_candidate(encoded) if encoded else None


class _Unread:
    """The record a put replaces was not read by the caller: the keeper reads it."""


UNREAD = _Unread()


def put_candidate(
    storage: SystemStorage,
    record: Candidate,
    *,
    replacing: Candidate | None | _Unread = UNREAD,
    touch: bool = True,
) -> None:
    """Store `record`, keeping the candidate and consensus-set indices, the ever-a-candidate
    marker, the pub_key owner, the ranking and the shares index in step with it, and mark it
    touched for the next election. Reads the record it replaces, so only what changed is
    written (most writes change a stake and move two keys a little).

    For the election, which has the stored record in hand and clears every touched mark when
    it ends: `replacing` is the stored record (None: there is none), not read again;
    `touch=False` leaves the touched marks alone."""
    old = candidate(storage, record.owner) if isinstance(replacing, _Unread) else replacing
    encoded = _encode_candidate(record)
    CANDIDATES.set(storage, record.owner, encoded)
    _decode_candidate.remember(encoded, record)
    if touch:
        TOUCHED_CANDIDATES.insert(storage, record.owner)
    if old is None or old.pub_key != record.pub_key:
        CANDIDATE_SET.insert(storage, record.owner)
        EVER_CANDIDATE.set(storage, record.owner, True)
        PUB_KEY_OWNERS.set(storage, record.pub_key, record.owner)
        ADDRESS_OWNERS.set(storage, consensus_address(record.pub_key), record.owner)
    if old is None or _in_consensus(old) != _in_consensus(record):
        if _in_consensus(record):
            CONSENSUS_SET.insert(storage, record.owner)
        else:
            CONSENSUS_SET.remove(storage, record.owner)
    _move_key(storage, RANKING, None if old is None else rank_key(old), rank_key(record))
    _move_key(storage, BY_SHARES, None if old is None else shares_key(old), shares_key(record))


def _in_consensus(record: Candidate) -> bool:
    return record.state in _IN_CONSENSUS and record.active and not record.withdrawn


def rank_key(record: Candidate) -> int:
    """The candidate's key in `ranking`: ascending keys are descending voting power, then
    ascending consensus address (SPEC §6's order); bit 1 says eligible (active, not
    withdrawn), bit 0 is always set so no key is the unset value 0."""
    if not 0 <= record.voting_power < POWER_LIMIT:
        raise StorageError(f"staking: voting power {record.voting_power} does not fit a rank key")
    address = int.from_bytes(consensus_address(record.pub_key), "big")
    eligible = record.active and not record.withdrawn
    return ((POWER_LIMIT - 1 - record.voting_power) << 192) | (address << 32) | eligible << 1 | 1


def shares_key(record: Candidate) -> int:
    """The candidate's key in `by_shares`: ascending shares, then owner."""
    shares = max(record.shares, 0)  # negative shares: a broken record the invariants name
    if shares >= SHARES_LIMIT:
        raise StorageError(f"staking: shares {shares} do not fit a shares key")
    return (shares << 160) | int.from_bytes(record.owner, "big")


def _move_key(storage: SystemStorage, index: SortedIndex[int], old: int | None, new: int) -> None:
    """Replace a record's key `old` (None: it had no record) by `new` in `index`."""
    if old is None:
        index.insert(storage, new)
    elif old != new:
        index.replace(storage, old, new)


@dataclass(frozen=True)
class Ranked:
    """One entry of `ranking`, decoded."""

    rank: int
    voting_power: int
    consensus_address: bytes
    eligible: bool


def _decode_rank_key(rank: int, key: int) -> Ranked:
    return Ranked(
        rank=rank,
        voting_power=POWER_LIMIT - 1 - (key >> 192),
        consensus_address=((key >> 32) & (2**160 - 1)).to_bytes(20, "big"),
        eligible=bool(key & 2),
    )


def ranked(storage: SystemStorage) -> Iterator[Ranked]:
    """The ranking from the top, lazily: an election reads only as far as it needs."""
    for rank in range(RANKING.length(storage)):
        yield _decode_rank_key(rank, RANKING.at(storage, rank))


def rank_of(storage: SystemStorage, owner: bytes) -> int | None:
    """The candidate's position in the ranking (0 = first), or None if there is none."""
    record = candidate(storage, owner)
    if record is None:
        return None
    position, found = RANKING.position(storage, rank_key(record))
    if not found:
        raise StorageError(f"staking: the rank key of 0x{owner.hex()} is not in the ranking")
    return position


def largest_shares(storage: SystemStorage) -> Iterator[tuple[bytes, int]]:
    """(owner, shares) of the candidates by descending shares, lazily."""
    for position in range(BY_SHARES.length(storage) - 1, -1, -1):
        key = BY_SHARES.at(storage, position)
        yield (key & (2**160 - 1)).to_bytes(20, "big"), key >> 160


def rank_keys(storage: SystemStorage) -> tuple[int, ...]:
    """Every key of the ranking, ascending (invariants)."""
    return RANKING.keys(storage)


def shares_keys(storage: SystemStorage) -> tuple[int, ...]:
    """Every key of `by_shares`, ascending (invariants)."""
    return BY_SHARES.keys(storage)


def delegation(
    storage: SystemStorage, candidate_owner: bytes, delegator: bytes
) -> Delegation | None:
    encoded = DELEGATIONS.get(storage, candidate_owner + delegator)
    return _decode_delegation(encoded) if encoded else None


def put_delegation(
    storage: SystemStorage,
    record: Delegation,
    *,
    replacing: Delegation | None | _Unread = UNREAD,
    mark: bool = True,
) -> None:
    """Store `record`, list its delegator under its candidate, keep the staked total and the
    candidate's delegated power in step, and mark it dirty for the next election.

    For the election, which has the stored record in hand and clears the dirty marks when it
    ends (`clear_dirty_delegations`): `replacing` is the stored record (None: there is none),
    not read again; `mark=False` leaves the dirty marks alone."""
    old = (
        delegation(storage, record.candidate, record.delegator)
        if isinstance(replacing, _Unread)
        else replacing
    )
    _account_for(storage, old, record, mark=mark)
    encoded = _encode_delegation(record)
    DELEGATIONS.set(storage, record.candidate + record.delegator, encoded)
    _decode_delegation.remember(encoded, record)
    if old is None:  # a record is listed from its first write until its removal
        _delegators_index(record.candidate).insert(storage, record.delegator)


def remove_delegation(storage: SystemStorage, candidate_owner: bytes, delegator: bytes) -> None:
    """Forget the delegation of `delegator` to `candidate_owner` (a no-op if there is none)."""
    old = delegation(storage, candidate_owner, delegator)
    if old is not None:
        _account_for(storage, old, None)
    DELEGATIONS.delete(storage, candidate_owner + delegator)
    _delegators_index(candidate_owner).remove(storage, delegator)


def _stake_of(record: Delegation | None) -> int:
    """What Hold must cover for `record`. Negative shares are a broken record (the invariants
    name it) that the keeper still stores: it counts as 0, so the total never goes negative."""
    return 0 if record is None else max(record.shares, 0) + record.pending_withdraw_amount


def _account_for(
    storage: SystemStorage, old: Delegation | None, new: Delegation | None, *, mark: bool = True
) -> None:
    """The aggregates and dirty marks for replacing `old` by `new` (either may be absent)."""
    STAKED_TOTAL.set(storage, STAKED_TOTAL.get(storage) - _stake_of(old) + _stake_of(new))
    for record, sign in ((old, -1), (new, 1)):
        if record is not None and record.voting_power:
            owner = record.candidate
            DELEGATED_POWER.set(
                storage, owner, DELEGATED_POWER.get(storage, owner) + sign * record.voting_power
            )
    marked = new if new is not None else old
    if mark and marked is not None:
        mark_dirty(storage, marked.candidate, marked.delegator)


def delegators_of(storage: SystemStorage, candidate_owner: bytes) -> tuple[bytes, ...]:
    """The delegators of a candidate, ascending (its owner included when self-delegated)."""
    return _delegators_index(candidate_owner).keys(storage)


def delegations_to(storage: SystemStorage, candidate_owner: bytes) -> tuple[Delegation, ...]:
    """The delegations to a candidate, by delegator; an index entry without its record is a
    broken store."""
    records = []
    for delegator in delegators_of(storage, candidate_owner):
        record = delegation(storage, candidate_owner, delegator)
        if record is None:
            raise StorageError(
                f"staking: the delegators of 0x{candidate_owner.hex()} name "
                f"0x{delegator.hex()}, no delegation"
            )
        records.append(record)
    return tuple(records)


def delegator_count(storage: SystemStorage, candidate_owner: bytes) -> int:
    """How many delegations the candidate has (one read: its index's length)."""
    return _delegators_index(candidate_owner).length(storage)


def _delegators_index(candidate_owner: bytes) -> SortedIndex[bytes]:
    return _per_candidate_index("delegators_of", candidate_owner)


def _dirty_index(candidate_owner: bytes) -> SortedIndex[bytes]:
    return _per_candidate_index("dirty_delegators", candidate_owner)


def _per_candidate_index(name: str, candidate_owner: bytes) -> SortedIndex[bytes]:
    if len(candidate_owner) != 20:
        raise StorageError(f"staking: a candidate is named by 20 bytes, got {candidate_owner!r}")
    namespace = f"staking/{name}/{candidate_owner.hex()}"
    return SortedIndex(STAKING_ADDRESS, namespace, ADDRESS_KEY)


# -- what the election needs to be incremental ----------------------------------------------------
def staked_total(storage: SystemStorage) -> int:
    """Σ (shares + pending_withdraw_amount) over every delegation (one read)."""
    return STAKED_TOTAL.get(storage)


def delegated_power(storage: SystemStorage, candidate_owner: bytes) -> int:
    """Σ of the stored voting powers of the candidate's delegations (one read)."""
    return DELEGATED_POWER.get(storage, candidate_owner)


def dirty_delegations(storage: SystemStorage) -> tuple[tuple[bytes, bytes], ...]:
    """(candidate, delegator) of every delegation written or removed since the marks were last
    cleared, sorted."""
    return tuple(
        (owner, delegator)
        for owner in DIRTY_CANDIDATES.keys(storage)
        for delegator in _dirty_index(owner).keys(storage)
    )


def mark_dirty(storage: SystemStorage, candidate_owner: bytes, delegator: bytes) -> None:
    """Mark a delegation dirty for the next election."""
    DIRTY_CANDIDATES.insert(storage, candidate_owner)
    _dirty_index(candidate_owner).insert(storage, delegator)


def clear_dirty_delegations(storage: SystemStorage) -> None:
    """Forget every dirty mark (the indices emptied in place: the words any removals would
    leave, storage.py, without searching for each key)."""
    for owner in DIRTY_CANDIDATES.keys(storage):
        _dirty_index(owner).assign(storage, ())
    DIRTY_CANDIDATES.assign(storage, ())


def election_inputs(storage: SystemStorage) -> ElectionInputs | None:
    """The inputs of the last election; None before the first."""
    encoded = ELECTION_INPUTS.get(storage)
    if not encoded:
        return None
    minimum, threshold, max_vals, backup_vals, total, factors = rlp.decode(encoded)
    return ElectionInputs(
        min_staking_amount=_uint(minimum),
        validator_size_threshold=_fraction(threshold),
        max_vals=_uint(max_vals),
        backup_vals=_uint(backup_vals),
        total_cmt=_uint(total),
        factors=tuple((bytes(owner), _fraction(factor)) for owner, factor in factors),
    )


def put_election_inputs(storage: SystemStorage, inputs: ElectionInputs) -> None:
    factors = [[owner, _rational(f)] for owner, f in sorted(inputs.factors)]
    encoded: list[rlp_codec.Encodable] = [
        inputs.min_staking_amount, _rational(inputs.validator_size_threshold), inputs.max_vals,
        inputs.backup_vals, inputs.total_cmt, factors,
    ]  # fmt: skip
    ELECTION_INPUTS.set(storage, rlp_codec.encode(encoded))


def touched_candidates(storage: SystemStorage) -> tuple[bytes, ...]:
    """Owners whose candidate record was written or removed since the last election."""
    return TOUCHED_CANDIDATES.keys(storage)


def clear_touched_candidates(storage: SystemStorage) -> None:
    for owner in reversed(TOUCHED_CANDIDATES.keys(storage)):  # from the end: no shifting
        TOUCHED_CANDIDATES.remove(storage, owner)


def written_since_election(storage: SystemStorage) -> bool:
    """Was any delegation or candidate written or removed since the marks were cleared?"""
    return bool(DIRTY_CANDIDATES.length(storage) or TOUCHED_CANDIDATES.length(storage))


def was_candidate(storage: SystemStorage, address: bytes) -> bool:
    """Did `address` ever own a candidate (declared, withdrawn, or handed over)?"""
    return EVER_CANDIDATE.get(storage, address)


def pub_key_owner(storage: SystemStorage, pub_key: bytes) -> bytes | None:
    """The owner that last used consensus key `pub_key`, or None if no candidate ever did."""
    owner = PUB_KEY_OWNERS.get(storage, pub_key)
    return owner if owner != bytes(20) else None


def owner_of_address(storage: SystemStorage, address: bytes) -> bytes | None:
    """The owner that last used the consensus key of `address` (a consensus address)."""
    owner = ADDRESS_OWNERS.get(storage, address)
    return owner if owner != bytes(20) else None


def absences(storage: SystemStorage, owner: bytes) -> int:
    """How many commits in a row the candidate of `owner` has missed."""
    return ABSENCES.get(storage, owner)


def put_absences(storage: SystemStorage, owner: bytes, count: int) -> None:
    if count:
        ABSENCES.set(storage, owner, count)
    else:
        ABSENCES.delete(storage, owner)


def rename_candidate(storage: SystemStorage, old_owner: bytes, new_owner: bytes) -> Candidate:
    """Re-key the candidate of `old_owner` to `new_owner`: its record, indices, award
    accumulator and every delegation to it (delegators unchanged, the old owner's
    self-delegation included: the rules decide what becomes of it). Returns the re-keyed
    record."""
    record = candidate(storage, old_owner)
    if record is None:
        raise StorageError(f"staking: no candidate 0x{old_owner.hex()} to rename")
    for delegator in delegators_of(storage, old_owner):
        moved = delegation(storage, old_owner, delegator)
        if moved is None:
            raise StorageError(f"staking: index names a missing delegation of 0x{delegator.hex()}")
        remove_delegation(storage, old_owner, delegator)
        put_delegation(storage, replace(moved, candidate=new_owner))
    CANDIDATES.delete(storage, old_owner)
    CANDIDATE_SET.remove(storage, old_owner)
    RANKING.remove(storage, rank_key(record))
    BY_SHARES.remove(storage, shares_key(record))
    TOUCHED_CANDIDATES.insert(storage, old_owner)
    CONSENSUS_SET.remove(storage, old_owner)
    AWARD_ACCUMULATORS.set(storage, new_owner, AWARD_ACCUMULATORS.get(storage, old_owner))
    AWARD_ACCUMULATORS.delete(storage, old_owner)
    ABSENCES.delete(storage, old_owner)
    renamed = replace(record, owner=new_owner)
    put_candidate(storage, renamed)
    RENAMED_TO.set(storage, old_owner, new_owner)
    return renamed


def renamed_to(storage: SystemStorage, old_owner: bytes) -> bytes | None:
    """Who owns the candidate `old_owner` handed over, or None if it never did."""
    new_owner = RENAMED_TO.get(storage, old_owner)
    return new_owner if new_owner != bytes(20) else None


# -- unstake requests ---------------------------------------------------------------------------
def new_unstake_request(
    storage: SystemStorage,
    delegator: bytes,
    candidate_owner: bytes,
    amount: int,
    initiated_at: int,
    matures_at: int,
    completely_withdraw: bool,
) -> UnstakeRequest:
    """Record a PENDING request under the next id and queue it for its maturity height."""
    request_id = _next_id(UNSTAKE_NEXT_ID, storage)
    request = UnstakeRequest(
        request_id, delegator, candidate_owner, amount, initiated_at, matures_at,
        completely_withdraw,
    )  # fmt: skip
    put_unstake_request(storage, request)
    return request


def unstake_request(storage: SystemStorage, request_id: int) -> UnstakeRequest | None:
    encoded = UNSTAKES.get(storage, request_id)
    return _decode_unstake(encoded) if encoded else None


def put_unstake_request(storage: SystemStorage, request: UnstakeRequest) -> None:
    """Store `request`: queued while PENDING, out of the queue once DONE."""
    UNSTAKES.set(storage, request.id, _encode_unstake(request))
    key = _queue_key(request.matures_at, request.id)
    if request.state is RequestState.PENDING:
        UNSTAKE_QUEUE.insert(storage, key)
    else:
        UNSTAKE_QUEUE.remove(storage, key)


def matured_unstake_ids(storage: SystemStorage, height: int) -> tuple[int, ...]:
    """Ids of the PENDING requests maturing at or before `height`, by maturity then id."""
    ids = []
    for index in range(UNSTAKE_QUEUE.length(storage)):
        key = UNSTAKE_QUEUE.at(storage, index)
        if _uint(key[:32]) > height:
            break
        ids.append(_uint(key[32:]))
    return tuple(ids)


def _next_id(counter: Item[int], storage: SystemStorage) -> int:
    """Take the next id of a request counter (ids start at 1)."""
    request_id = counter.get(storage) or 1
    counter.set(storage, request_id + 1)
    return request_id


def _queue_key(matures_at: int, request_id: int) -> bytes:
    return matures_at.to_bytes(32, "big") + request_id.to_bytes(32, "big")


# -- account update requests --------------------------------------------------------------------
def new_account_update_request(
    storage: SystemStorage, candidate_owner: bytes, new_owner: bytes, created_at: int
) -> AccountUpdateRequest:
    """Record a PENDING request under the next id; `new_owner` is a target from now on."""
    request_id = _next_id(ACCOUNT_UPDATE_NEXT_ID, storage)
    request = AccountUpdateRequest(request_id, candidate_owner, new_owner, created_at)
    put_account_update_request(storage, request)
    ACCOUNT_UPDATE_TARGETS.set(storage, new_owner, True)
    return request


def account_update_request(storage: SystemStorage, request_id: int) -> AccountUpdateRequest | None:
    encoded = ACCOUNT_UPDATES.get(storage, request_id)
    return _decode_account_update(encoded) if encoded else None


def put_account_update_request(storage: SystemStorage, request: AccountUpdateRequest) -> None:
    ACCOUNT_UPDATES.set(storage, request.id, _encode_account_update(request))


def is_account_update_target(storage: SystemStorage, address: bytes) -> bool:
    """Was `address` ever named as the new owner by an account update request?"""
    return ACCOUNT_UPDATE_TARGETS.get(storage, address)


def candidate_owners(storage: SystemStorage) -> tuple[bytes, ...]:
    """The owner of every candidate record, ascending (one word each)."""
    return CANDIDATE_SET.keys(storage)


def candidates(storage: SystemStorage) -> tuple[Candidate, ...]:
    """Every candidate that ever declared (withdrawn ones too), by owner address."""
    return _candidates_in(CANDIDATE_SET, storage)


def _candidates_in(index: SortedIndex[bytes], storage: SystemStorage) -> tuple[Candidate, ...]:
    """The records of the owners in `index`; a name without a record is a broken store."""
    records = []
    for owner in index.keys(storage):
        record = candidate(storage, owner)
        if record is None:
            raise StorageError(f"staking: {index.namespace} names 0x{owner.hex()}, no candidate")
        records.append(record)
    return tuple(records)


def sent_set(storage: SystemStorage) -> tuple[tuple[bytes, int], ...]:
    """The consensus set last handed to consensus: (pub_key, power) pairs."""
    encoded = SENT_SET.get(storage)
    return _decode_sent_set(encoded) if encoded else ()


@rlp_codec.memoised_decoder
def _decode_sent_set(encoded: bytes) -> tuple[tuple[bytes, int], ...]:
    return tuple((bytes(k), _uint(p)) for k, p in rlp.decode(encoded))


def put_sent_set(storage: SystemStorage, members: Iterable[tuple[bytes, int]]) -> None:
    SENT_SET.set(storage, rlp_codec.encode([[k, p] for k, p in sorted(members)]))


def consensus_set_owners(storage: SystemStorage) -> frozenset[bytes]:
    """Owners of the current validators and backups: what ISVALIDATOR answers."""
    return frozenset(CONSENSUS_SET.keys(storage))


def consensus_set(storage: SystemStorage) -> tuple[Candidate, ...]:
    """The current validators and backups, by owner address."""
    return _candidates_in(CONSENSUS_SET, storage)


def consensus_member_owner(storage: SystemStorage, address: bytes) -> bytes | None:
    """The owner of the validator or backup whose consensus key has `address`, None if no
    member of the consensus set has it: what a search of `consensus_set` finds, from one
    record. A key is never used by two owners (`pub_key_owner`), so the member with that key,
    if any, is the owner that last used it, and it is a member exactly when its record is (the
    index follows the records, `put_candidate`)."""
    owner = owner_of_address(storage, address)
    record = None if owner is None else candidate(storage, owner)
    if record is None or not _in_consensus(record) or consensus_address(record.pub_key) != address:
        return None
    return owner


# -- awards -------------------------------------------------------------------------------------
def award_accumulator(storage: SystemStorage, owner: bytes) -> int:
    """The candidate's cumulative award per unit of voting power (× awards.ACC_SCALE)."""
    return AWARD_ACCUMULATORS.get(storage, owner)


def put_award_accumulator(storage: SystemStorage, owner: bytes, value: int) -> None:
    AWARD_ACCUMULATORS.set(storage, owner, value)


def award_reserve(storage: SystemStorage) -> int:
    """Wei held in Hold for awards not yet settled into delegations."""
    return AWARD_RESERVE.get(storage)


def put_award_reserve(storage: SystemStorage, value: int) -> None:
    if value < 0:
        raise StorageError(f"staking: the award reserve would be negative ({value})")
    AWARD_RESERVE.set(storage, value)


def award_infos(storage: SystemStorage) -> tuple[tuple[bytes, CandidateState, int], ...]:
    """(owner, state, amount) of each member in the last block's distribution."""
    encoded = AWARD_INFOS.get(storage)
    if not encoded:
        return ()
    return tuple(
        (bytes(owner), CandidateState(state.decode()), _uint(amount))
        for owner, state, amount in rlp.decode(encoded)
    )


def put_award_infos(
    storage: SystemStorage, infos: Iterable[tuple[bytes, CandidateState, int]]
) -> None:
    rows: list[rlp_codec.Encodable] = [
        [owner, state.value.encode(), amount] for owner, state, amount in infos
    ]
    AWARD_INFOS.set(storage, rlp_codec.encode(rows))


# -- genesis ------------------------------------------------------------------------------------
def init_genesis(storage: SystemStorage, genesis: Genesis) -> None:
    """The genesis validators as elected candidates with their self-stake in Hold."""
    for validator in genesis.validators:
        stake = validator.shares * WEI_PER_CMT
        ledger.transfer(storage, validator.owner, HOLD_ADDRESS, stake)
        description = Description(
            validator.name, validator.website, validator.location, validator.email,
            validator.profile,
        )  # fmt: skip
        put_candidate(
            storage,
            Candidate(
                owner=validator.owner,
                pub_key=validator.pub_key,
                shares=stake,
                max_shares=validator.max_amount * WEI_PER_CMT,
                comp_rate=validator.comp_rate,
                description=description,
                verified=False,
                active=True,
                state=CandidateState.VALIDATOR,
                voting_power=validator.shares,
                pending_voting_power=validator.shares,
                num_of_delegators=1,
                block_height=0,
                created_at=genesis.genesis_time,
            ),
        )
        put_delegation(
            storage,
            Delegation(
                delegator=validator.owner,
                candidate=validator.owner,
                delegate_amount=stake,
                award_amount=0,
                withdraw_amount=0,
                pending_withdraw_amount=0,
                slash_amount=0,
                comp_rate=validator.comp_rate,
                voting_power=validator.shares,
                active=True,
                source=DelegationSource.CUBE,
            ),
        )
    put_sent_set(storage, [(v.pub_key, CONSENSUS_POWER) for v in genesis.validators])


# -- codecs ---------------------------------------------------------------------------------------
def _uint(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _flag(value: bool) -> int:
    return int(value)


def _rational(value: Fraction) -> list[int]:
    return [value.numerator, value.denominator]


def _fraction(items: list[bytes]) -> Fraction:
    return Fraction(_uint(items[0]), _uint(items[1]))


def _encode_candidate(c: Candidate) -> bytes:
    d = c.description
    return rlp_codec.encode(
        [
            c.owner, c.pub_key, c.shares, c.max_shares, _rational(c.comp_rate),
            [d.name.encode(), d.website.encode(), d.location.encode(), d.email.encode(),
             d.profile.encode()],
            _flag(c.verified), _flag(c.active), c.state.value.encode(),
            c.voting_power, c.pending_voting_power, c.num_of_delegators, c.block_height,
            c.created_at, _flag(c.withdrawn),
        ]
    )  # fmt: skip


@rlp_codec.memoised_decoder
def _decode_candidate(encoded: bytes) -> Candidate:
    f = rlp.decode(encoded)
    return Candidate(
        owner=f[0],
        pub_key=f[1],
        shares=_uint(f[2]),
        max_shares=_uint(f[3]),
        comp_rate=_fraction(f[4]),
        description=Description(*(part.decode() for part in f[5])),
        verified=bool(_uint(f[6])),
        active=bool(_uint(f[7])),
        state=CandidateState(f[8].decode()),
        voting_power=_uint(f[9]),
        pending_voting_power=_uint(f[10]),
        num_of_delegators=_uint(f[11]),
        block_height=_uint(f[12]),
        created_at=_uint(f[13]),
        withdrawn=bool(_uint(f[14])),
    )


def _encode_delegation(d: Delegation) -> bytes:
    return rlp_codec.encode(
        [
            d.delegator, d.candidate, d.delegate_amount, d.award_amount, d.withdraw_amount,
            d.pending_withdraw_amount, d.slash_amount, _rational(d.comp_rate),
            d.voting_power, _flag(d.active), d.source.value.encode(),
            _flag(d.completely_withdraw), d.award_snapshot,
        ]
    )  # fmt: skip


@rlp_codec.memoised_decoder
def _decode_delegation(encoded: bytes) -> Delegation:
    f = rlp.decode(encoded)
    return Delegation(
        delegator=f[0],
        candidate=f[1],
        delegate_amount=_uint(f[2]),
        award_amount=_uint(f[3]),
        withdraw_amount=_uint(f[4]),
        pending_withdraw_amount=_uint(f[5]),
        slash_amount=_uint(f[6]),
        comp_rate=_fraction(f[7]),
        voting_power=_uint(f[8]),
        active=bool(_uint(f[9])),
        source=DelegationSource(f[10].decode()),
        completely_withdraw=bool(_uint(f[11])),
        award_snapshot=_uint(f[12]),
    )


def _encode_unstake(r: UnstakeRequest) -> bytes:
    return rlp_codec.encode(
        [
            r.id, r.delegator, r.candidate, r.amount, r.initiated_at, r.matures_at,
            _flag(r.completely_withdraw), r.state.value.encode(),
        ]
    )  # fmt: skip


@rlp_codec.memoised_decoder
def _decode_unstake(encoded: bytes) -> UnstakeRequest:
    f = rlp.decode(encoded)
    return UnstakeRequest(
        id=_uint(f[0]),
        delegator=f[1],
        candidate=f[2],
        amount=_uint(f[3]),
        initiated_at=_uint(f[4]),
        matures_at=_uint(f[5]),
        completely_withdraw=bool(_uint(f[6])),
        state=RequestState(f[7].decode()),
    )


def _encode_account_update(r: AccountUpdateRequest) -> bytes:
    return rlp_codec.encode([r.id, r.candidate, r.new_owner, r.created_at, r.state.value.encode()])


@rlp_codec.memoised_decoder
def _decode_account_update(encoded: bytes) -> AccountUpdateRequest:
    f = rlp.decode(encoded)
    return AccountUpdateRequest(
        id=_uint(f[0]),
        candidate=f[1],
        new_owner=f[2],
        created_at=_uint(f[3]),
        state=RequestState(f[4].decode()),
    )
