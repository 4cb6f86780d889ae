"""The staking invariants (cybermiles_node/staking/invariants.py): each check passes on a state
built by the real rules and fires, naming the broken relation, on that state corrupted in one
place.

The good state, over a MemoryStorage from a devnet genesis (validators V0, V1): ALICE declares
and gets a delegation from BOB and a partial withdrawal from him (PENDING, maturing at 30), then
hands her candidacy to DAVE (so BOB's request names ALICE and is followed to DAVE); CAROL
delegates to V0 and withdraws part, which has matured and been paid (a DONE request); then an
election runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction

import pytest

from cybermiles_node.errors import InvariantViolation
from cybermiles_node.params import write_params
from cybermiles_node.staking import keeper
from cybermiles_node.staking.election import run_election
from cybermiles_node.staking.invariants import (
    all_delegations,
    check_election_outcome,
    check_hold_covers_stakes,
    check_records,
    check_supply,
    pending_unstake_requests,
)
from cybermiles_node.staking.msgs import (
    AcceptCandidacyAccountUpdate,
    DeactivateCandidacy,
    DeclareCandidacy,
    Delegate,
    StakingMsg,
    UpdateCandidacyAccount,
    Withdraw,
)
from cybermiles_node.staking.power import consensus_address
from cybermiles_node.staking.records import CandidateState, RequestState
from cybermiles_node.staking.rules import TxContext, apply, mature_unstakes
from cybermiles_node.system import MemoryStorage, ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS
from genesis import dev_accounts, devnet_genesis

CMT = 10**18
T0 = 1_700_000_000
BASE = devnet_genesis(validator_pub_keys=[bytes([i + 1]) * 32 for i in range(2)], genesis_time=T0)
PARAMS = dataclasses.replace(BASE.params, unstake_waiting_period=10, max_vals=1, backup_vals=1)
GENESIS = dataclasses.replace(BASE, params=PARAMS)
GENESIS_SUPPLY = sum(account.balance for _, account in GENESIS.alloc)
V0, V1, ALICE, BOB, CAROL, DAVE = (account.address for account in dev_accounts(6))


def run(storage: MemoryStorage, sender: bytes, msg: StakingMsg, height: int) -> None:
    apply(msg, TxContext(sender, 0, bytes(32), height, T0 + height, PARAMS), storage)


def good_state() -> MemoryStorage:
    storage = MemoryStorage()
    for address, account in GENESIS.alloc:
        storage.set_balance(address, account.balance)
    write_params(storage, PARAMS)
    keeper.init_genesis(storage, GENESIS)
    run(storage, ALICE, DeclareCandidacy(b"\xaa" * 32, 50_000 * CMT, Fraction(1, 5)), 1)
    run(storage, BOB, Delegate(ALICE, 5_000 * CMT), 1)
    run(storage, CAROL, Delegate(V0, 3_000 * CMT), 1)
    run(storage, CAROL, Withdraw(V0, 1_000 * CMT), 2)  # matures at 12
    run(storage, BOB, Withdraw(ALICE, 1_000 * CMT), 20)  # matures at 30
    run(storage, ALICE, UpdateCandidacyAccount(DAVE), 21)
    run(storage, DAVE, AcceptCandidacyAccountUpdate(1), 22)
    mature_unstakes(storage, 25)
    run_election(storage, PARAMS)
    return storage


@pytest.fixture
def state() -> MemoryStorage:
    return good_state()


def balances_total(storage: MemoryStorage) -> int:
    return sum(balance for _, balance in storage.balances())


def check_all(storage: MemoryStorage) -> None:
    check_hold_covers_stakes(storage)
    check_records(storage)
    check_election_outcome(storage)
    check_supply(balances_total(storage), storage, GENESIS_SUPPLY)


def test_the_good_state_is_what_it_claims_to_be(state: MemoryStorage) -> None:
    """The corruptions below start from a state that exercises what they corrupt."""
    assert keeper.candidate(state, ALICE) is None and keeper.renamed_to(state, ALICE) == DAVE
    (pending,) = pending_unstake_requests(state)
    assert (pending.candidate, pending.delegator, pending.matures_at) == (ALICE, BOB, 30)
    done = keeper.unstake_request(state, 1)
    assert done is not None and done.state is RequestState.DONE
    states = sorted(c.state.value for c in keeper.candidates(state))
    assert states == ["Backup Validator", "Candidate", "Validator"]
    assert len(all_delegations(state)) == 5  # V0, V0←CAROL, V1, DAVE, DAVE←BOB
    check_all(state)


# -- Hold ------------------------------------------------------------------------------------------
def test_hold_must_cover_every_stake_and_pending_withdrawal(state: MemoryStorage) -> None:
    owed = sum(d.shares + d.pending_withdraw_amount for d in all_delegations(state))
    # Beyond the stakes, Hold keeps the staking fees paid into the award pool: no block ended
    # here to distribute them.
    assert state.get_balance(HOLD_ADDRESS) > owed
    state.set_balance(HOLD_ADDRESS, owed + 1)
    check_hold_covers_stakes(state)  # a gift to Hold breaks nothing
    state.set_balance(HOLD_ADDRESS, owed - 1)
    with pytest.raises(InvariantViolation, match=rf"holds {owed - 1} wei, below the {owed} wei"):
        check_hold_covers_stakes(state)
    state.set_balance(HOLD_ADDRESS, owed)
    keeper.put_award_reserve(state, 1)  # awards not yet settled are owed too
    with pytest.raises(InvariantViolation, match=r"\+ 1 wei of unsettled awards"):
        check_hold_covers_stakes(state)


def test_hold_check_uses_the_delegations_it_is_given(state: MemoryStorage) -> None:
    delegations = all_delegations(state)
    state.set_balance(HOLD_ADDRESS, 0)
    check_hold_covers_stakes(state, [])
    with pytest.raises(InvariantViolation, match="below the"):
        check_hold_covers_stakes(state, delegations)


# -- the records -----------------------------------------------------------------------------------
Corruption = Callable[[MemoryStorage], None]


def replace_delegation(candidate: bytes, delegator: bytes, **changes: int) -> Corruption:
    def corrupt(storage: MemoryStorage) -> None:
        record = keeper.delegation(storage, candidate, delegator)
        assert record is not None
        keeper.put_delegation(storage, dataclasses.replace(record, **changes))  # type: ignore[arg-type]

    return corrupt


def replace_candidate(owner: bytes, **changes: object) -> Corruption:
    def corrupt(storage: MemoryStorage) -> None:
        record = keeper.candidate(storage, owner)
        assert record is not None
        keeper.put_candidate(storage, dataclasses.replace(record, **changes))  # type: ignore[arg-type]

    return corrupt


def drop_delegation_record(storage: MemoryStorage) -> None:
    keeper.DELEGATIONS.delete(storage, V0 + CAROL)


def misfile_delegation_record(storage: MemoryStorage) -> None:
    keeper.DELEGATIONS.set(storage, V0 + CAROL, keeper.DELEGATIONS.get(storage, V0 + V0))


def index_a_candidate_in_consensus(storage: MemoryStorage) -> None:
    outsider = next(c for c in keeper.candidates(storage) if c.state is CandidateState.CANDIDATE)
    keeper.CONSENSUS_SET.insert(storage, outsider.owner)


def unindex_a_validator(storage: MemoryStorage) -> None:
    keeper.CONSENSUS_SET.remove(storage, keeper.CONSENSUS_SET.at(storage, 0))


def queue_key(matures_at: int, request_id: int) -> bytes:
    return matures_at.to_bytes(32, "big") + request_id.to_bytes(32, "big")


def unqueue_pending(storage: MemoryStorage) -> None:
    (request,) = pending_unstake_requests(storage)
    keeper.UNSTAKE_QUEUE.remove(storage, queue_key(request.matures_at, request.id))


def mark_pending_done(storage: MemoryStorage) -> None:
    (request,) = pending_unstake_requests(storage)
    keeper.put_unstake_request(storage, dataclasses.replace(request, state=RequestState.DONE))


def requeue_done(storage: MemoryStorage) -> None:
    request = keeper.unstake_request(storage, 1)
    assert request is not None
    keeper.UNSTAKE_QUEUE.insert(storage, queue_key(request.matures_at, request.id))


def zero_pending_amount(storage: MemoryStorage) -> None:
    (request,) = pending_unstake_requests(storage)
    keeper.put_unstake_request(storage, dataclasses.replace(request, amount=0))


def lose_a_request(storage: MemoryStorage) -> None:
    keeper.UNSTAKES.delete(storage, 1)


def forget_the_rename(storage: MemoryStorage) -> None:
    keeper.RENAMED_TO.set(storage, ALICE, bytes(20))


CORRUPTIONS: list[tuple[str, Corruption, str]] = [
    (
        "negative shares",
        replace_delegation(V0, CAROL, withdraw_amount=10**30),
        "has negative shares",
    ),
    (
        "index names a missing delegation",
        drop_delegation_record,
        "delegator index names .*, no record",
    ),
    ("record filed under another key", misfile_delegation_record, "stored under .* reads"),
    (
        "candidate shares off by one wei",
        replace_candidate(V1, shares=10_000 * CMT + 1),
        "records 10000000000000000000001 wei of shares, its delegations 10000000000000000000000",
    ),
    (
        "delegator count",
        replace_candidate(DAVE, num_of_delegators=1),
        "records 1 delegators, its index 2",
    ),
    ("withdrawn yet active", replace_candidate(V1, withdrawn=True), "has withdrawn but is active"),
    (
        "a candidate in the consensus index",
        index_a_candidate_in_consensus,
        "consensus-set index holds",
    ),
    ("a validator missing from it", unindex_a_validator, "consensus-set index holds"),
    ("a pending request not queued", unqueue_pending, r"not queued \['#2@30'\]"),
    ("a done request queued", requeue_done, r"queued but not PENDING \['#1@12'\]"),
    ("a request for nothing", zero_pending_amount, "unstake request 2 is for 0 wei"),
    (
        "a request missing below the next id",
        lose_a_request,
        "unstake request 1 is below the next id",
    ),
    (
        "pending amount without its request",
        mark_pending_done,
        "requests of .* sum to 0 wei, its delegation has pending_withdraw_amount 1000",
    ),
    (
        "pending amount above its requests",
        replace_delegation(
            DAVE, BOB, pending_withdraw_amount=1_001 * CMT, delegate_amount=5_001 * CMT
        ),
        "sum to 1000000000000000000000 wei, its delegation has pending_withdraw_amount 1001",
    ),
    (
        "a request whose candidate cannot be found",
        forget_the_rename,
        "its delegation has no delegation",
    ),
]


@pytest.mark.parametrize(
    ("corrupt", "message"), [(c, m) for _, c, m in CORRUPTIONS], ids=[n for n, _, _ in CORRUPTIONS]
)
def test_check_records_fires_on_each_corruption(
    state: MemoryStorage, corrupt: Corruption, message: str
) -> None:
    corrupt(state)
    with pytest.raises(InvariantViolation, match=message):
        check_records(state)


def test_set_sizes_follow_the_parameters(state: MemoryStorage) -> None:
    check_records(state, PARAMS)
    with pytest.raises(
        InvariantViolation,
        match="1 candidates are in state 'Backup Validator', above backup_vals 0",
    ):
        check_records(state, dataclasses.replace(PARAMS, backup_vals=0))
    backup = next(c for c in keeper.candidates(state) if c.state is CandidateState.BACKUP)
    keeper.put_candidate(state, dataclasses.replace(backup, state=CandidateState.VALIDATOR))
    with pytest.raises(InvariantViolation, match="2 candidates are in state 'Validator', above"):
        check_records(state, PARAMS)
    check_records(state, dataclasses.replace(PARAMS, max_vals=2))


# -- right after an election -----------------------------------------------------------------------
def test_election_outcome_holds_after_an_election_not_between(state: MemoryStorage) -> None:
    check_election_outcome(state)
    run(state, V1, DeactivateCandidacy(), 30)  # its power goes only at the next election
    with pytest.raises(InvariantViolation, match=r"active False, withdrawn False\) has voting_p"):
        check_election_outcome(state)
    run_election(state, PARAMS)
    check_election_outcome(state)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (replace_candidate(V1, pending_voting_power=1), "pending_voting_power 1, its delegations"),
        (replace_candidate(V1, voting_power=1), r"has voting_power 1, pending \d+$"),
        (
            replace_delegation(V0, V0, voting_power=1),
            r"has pending_voting_power \d+, its delegations \d+$",
        ),
        (lambda s: keeper.put_sent_set(s, []), r"consensus was last sent \[\], the consensus set"),
    ],
    ids=["candidate pending power", "candidate power", "delegation power", "sent set"],
)
def test_election_outcome_fires(state: MemoryStorage, corrupt: Corruption, message: str) -> None:
    corrupt(state)
    with pytest.raises(InvariantViolation, match=message):
        check_election_outcome(state)


def test_an_inactive_candidate_has_no_voting_power(state: MemoryStorage) -> None:
    replace_candidate(V1, active=False)(state)
    with pytest.raises(
        InvariantViolation, match=r"active False, withdrawn False\) has voting_power"
    ):
        check_election_outcome(state)


# -- lookups that stand for a search -------------------------------------------------------------
def _member_owner_by_search(storage: MemoryStorage, address: bytes) -> bytes | None:
    found = [
        c.owner for c in keeper.consensus_set(storage) if consensus_address(c.pub_key) == address
    ]
    return found[0] if found else None


def test_consensus_member_owner_is_a_search_of_the_consensus_set(state: MemoryStorage) -> None:
    """Members, a plain candidate, the key of a handed-over candidacy (now DAVE's), a member
    deactivated since the election (out of the set until the next), an unknown address."""

    def check() -> None:
        keys = [c.pub_key for c in keeper.candidates(state)] + [b"\x77" * 32]
        for address in [consensus_address(k) for k in keys]:
            expected = _member_owner_by_search(state, address)
            assert keeper.consensus_member_owner(state, address) == expected

    assert keeper.consensus_member_owner(state, consensus_address(b"\xaa" * 32)) == DAVE
    check()
    member = keeper.consensus_set(state)[0]
    run(state, member.owner, DeactivateCandidacy(), 26)
    assert keeper.consensus_member_owner(state, consensus_address(member.pub_key)) is None
    check()


# -- supply ----------------------------------------------------------------------------------------
def test_supply_is_genesis_plus_minted_minus_burned(state: MemoryStorage) -> None:
    assert ledger.read_supply(state).burned == 0  # staking fees go to the award pool
    check_supply(balances_total(state), state, GENESIS_SUPPLY)
    ledger.mint(state, HOLD_ADDRESS, 7)
    ledger.burn(state, BOB, 5)
    check_supply(balances_total(state), state, GENESIS_SUPPLY)
    state.set_balance(BOB, state.get_balance(BOB) + 1)  # CMT from nowhere
    with pytest.raises(InvariantViolation, match=r"minted 7 − burned \d+ = \d+ wei"):
        check_supply(balances_total(state), state, GENESIS_SUPPLY)
    with pytest.raises(InvariantViolation, match="the balances sum to"):
        check_supply(balances_total(state) - 2, state, GENESIS_SUPPLY)


def test_the_checks_change_nothing(state: MemoryStorage) -> None:
    before = (state.words(), state.balances())
    check_all(state)
    assert (state.words(), state.balances()) == before
