"""The staking rules (SPEC §5, §6): per message, (state, message) → (records, events, balances)
or (error class, check_tx code), with the same guard at admission (`check`) and execution
(`apply`), and `mature_unstakes` paying unstake requests at their height.

States start from a devnet genesis over a MemoryStorage (two validators owned by dev accounts 0
and 1, 10,000 CMT self-staked each, max 100,000 CMT, comp_rate 1/2). Every successful apply
here goes through `do`, which also checks the conservation laws: Σ balances never changes, Hold
= Σ (shares + pending withdrawals) of every delegation + the fees paid into the award pool (no
block ends here, so nothing distributes them), each candidate's shares and delegator count match
its delegations.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from fractions import Fraction

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.modules import ModuleSet
from cybermiles_node.staking import keeper
from cybermiles_node.staking.awards import block_award
from cybermiles_node.staking.cube import cube_digest
from cybermiles_node.staking.errors import (
    InsufficientStakingFunds,
    InvalidCubeSignature,
    StakingRejected,
    StakingRuleViolation,
    UnknownCandidate,
    UnknownCubeBatch,
)
from cybermiles_node.staking.invariants import all_delegations
from cybermiles_node.staking.module import StakingModule
from cybermiles_node.staking.msgs import (
    AcceptCandidacyAccountUpdate,
    ActivateCandidacy,
    DeactivateCandidacy,
    DeclareCandidacy,
    Delegate,
    SetCompRate,
    StakingMsg,
    UpdateCandidacy,
    UpdateCandidacyAccount,
    VerifyCandidacy,
    Withdraw,
    WithdrawCandidacy,
)
from cybermiles_node.staking.records import (
    CandidateState,
    DelegationSource,
    Description,
    RequestState,
)
from cybermiles_node.staking.rules import (
    EventKind,
    StakingEvent,
    TxContext,
    apply,
    check,
    mature_unstakes,
)
from cybermiles_node.system import MemoryStorage, ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS, STAKING_ADDRESS
from evm.db import MemoryDB
from genesis import DevAccount, dev_accounts, devnet_genesis

CMT = 10**18
T0 = 1_700_000_000
GENESIS = devnet_genesis(
    validator_pub_keys=[bytes([i + 1]) * 32 for i in range(2)], genesis_time=T0
)
PARAMS = dataclasses.replace(GENESIS.params, unstake_waiting_period=10)
V0, V1, ALICE, BOB, CAROL = (account.address for account in dev_accounts(5))
FOUNDATION = PARAMS.foundation_address
POOR = bytes.fromhex("00" * 19 + "99")
KEY_A, KEY_B = b"\xaa" * 32, b"\xbb" * 32
HEIGHT = 5
FEE_DECLARE = PARAMS.declare_candidacy_gas * PARAMS.gas_price
FEE_UPDATE = PARAMS.update_candidacy_gas * PARAMS.gas_price
FEE_COMP = PARAMS.set_comp_rate_gas * PARAMS.gas_price
FEE_ACCOUNT = PARAMS.update_candidate_account_gas * PARAMS.gas_price
FEE_ACCEPT = PARAMS.accept_candidate_account_update_request_gas * PARAMS.gas_price
BALANCE = dict(GENESIS.alloc)[ALICE].balance  # every dev account's genesis balance

Snapshot = tuple[tuple[tuple[bytes, int, int], ...], tuple[tuple[bytes, int], ...]]


# -- helpers -------------------------------------------------------------------------------------
def genesis_state() -> MemoryStorage:
    storage = MemoryStorage()
    for address, account in GENESIS.alloc:
        storage.set_balance(address, account.balance)
    keeper.init_genesis(storage, GENESIS)
    return storage


def ctx(sender: bytes, height: int = HEIGHT, nonce: int = 0, params: object = None) -> TxContext:
    p = PARAMS if params is None else params
    assert isinstance(p, type(PARAMS))
    return TxContext(sender, nonce, b"\x00" * 32, height, T0 + height, p)


def snapshot(storage: MemoryStorage) -> Snapshot:
    return storage.words(), storage.balances()


def fees_in_hold(storage: MemoryStorage) -> int:
    """What Hold holds beyond the stakes and the award reserve: the fees paid into the pool."""
    delegations = all_delegations(storage)
    held = sum(d.shares + d.pending_withdraw_amount for d in delegations)
    return storage.get_balance(HOLD_ADDRESS) - held - keeper.award_reserve(storage)


def assert_invariants(storage: MemoryStorage) -> None:
    delegations = all_delegations(storage)
    assert fees_in_hold(storage) >= 0
    assert all(d.shares >= 0 and d.pending_withdraw_amount >= 0 for d in delegations)
    for owner in keeper.CANDIDATE_SET.keys(storage):
        record = keeper.candidate(storage, owner)
        assert record is not None
        mine = [d for d in delegations if d.candidate == owner]
        assert record.num_of_delegators == len(mine)
        if not record.withdrawn:
            assert record.shares == sum(d.shares for d in mine)


def do(
    storage: MemoryStorage, sender: bytes, msg: StakingMsg, **context: int
) -> tuple[StakingEvent, ...]:
    """Apply `msg` (it must pass), checking supply conservation and the staking invariants."""
    total = sum(balance for _, balance in storage.balances())
    fees = fees_in_hold(storage)
    check(msg, ctx(sender, **context), storage)
    events = apply(msg, ctx(sender, **context), storage)
    assert sum(balance for _, balance in storage.balances()) == total
    assert ledger.read_supply(storage).burned == 0
    paid = fees_in_hold(storage) - fees
    assert paid == sum(e.amount for e in events if e.kind is EventKind.FEE_PAID)
    assert_invariants(storage)
    return events


def mature(storage: MemoryStorage, height: int) -> tuple[StakingEvent, ...]:
    total = sum(balance for _, balance in storage.balances())
    events = mature_unstakes(storage, height)
    assert sum(balance for _, balance in storage.balances()) == total
    assert_invariants(storage)
    return events


def kinds(events: tuple[StakingEvent, ...]) -> list[EventKind]:
    return [e.kind for e in events]


def declare(max_cmt: int = 50_000, key: bytes = KEY_A) -> DeclareCandidacy:
    return DeclareCandidacy(key, max_cmt * CMT, Fraction(1, 5), Description(name="alice"))


# -- every rejection of SPEC §6's table ----------------------------------------------------------
Setup = Callable[[MemoryStorage], None]


def nothing(storage: MemoryStorage) -> None:
    pass


def v1_withdrew(storage: MemoryStorage) -> None:
    do(storage, V1, WithdrawCandidacy())


def v0_inactive(storage: MemoryStorage) -> None:
    do(storage, V0, DeactivateCandidacy())


def poor_has(wei: int) -> Setup:
    def setup(storage: MemoryStorage) -> None:
        storage.set_balance(POOR, wei)

    return setup


def alice_delegated(storage: MemoryStorage) -> None:
    do(storage, ALICE, Delegate(V0, 1_000 * CMT))


def alice_withdraws_all(storage: MemoryStorage) -> None:
    alice_delegated(storage)
    do(storage, ALICE, Withdraw(V0, 1_000 * CMT, completely_withdraw=True))


def v0_nearly_full(storage: MemoryStorage) -> None:
    do(storage, ALICE, Delegate(V0, 90_000 * CMT))


def request_to_carol(storage: MemoryStorage) -> None:
    do(storage, V0, UpdateCandidacyAccount(CAROL))


def carol_accepted(storage: MemoryStorage) -> None:
    request_to_carol(storage)
    do(storage, CAROL, AcceptCandidacyAccountUpdate(1))


def poor_is_asked(storage: MemoryStorage) -> None:
    do(storage, V0, UpdateCandidacyAccount(POOR))
    storage.set_balance(POOR, 10_000 * CMT + FEE_ACCEPT - 1)


def v0_unstaking(storage: MemoryStorage) -> None:
    request_to_carol(storage)
    do(storage, V0, UpdateCandidacy(max_amount=50_000 * CMT))  # lower the floor to 5,000 CMT
    do(storage, V0, Withdraw(V0, 1 * CMT))


def carol_delegates_after_request(storage: MemoryStorage) -> None:
    request_to_carol(storage)
    do(storage, CAROL, Delegate(V0, 1 * CMT))


def carol_declares_after_request(storage: MemoryStorage) -> None:
    request_to_carol(storage)
    do(storage, CAROL, declare(key=KEY_B))


def alice_asked_before(storage: MemoryStorage) -> None:
    do(storage, V1, UpdateCandidacyAccount(ALICE))


RULE, FUNDS, UNKNOWN = StakingRuleViolation, InsufficientStakingFunds, UnknownCandidate
Q = 10_000 * CMT  # each genesis validator's self-stake = floor(max × ssr)
REJECTIONS: list[tuple[str, Setup, bytes, StakingMsg, type[StakingRejected], str]] = [
    # declareCandidacy
    ("declare: already a candidate", nothing, V0, declare(), RULE, "is or was a candidate"),
    ("declare: withdrew before", v1_withdrew, V1, declare(), RULE, "is or was a candidate"),
    ("declare: pub_key used", nothing, ALICE, declare(key=b"\x01" * 32), RULE, "already used"),
    ("declare: stake + fee unaffordable", poor_has(5_000 * CMT + FEE_DECLARE - 1), POOR,
     declare(), FUNDS, "needs"),
    ("declare: max 0", nothing, ALICE, DeclareCandidacy(KEY_A, 0, Fraction(1, 5)), RULE,
     "max_amount"),
    ("declare: comp_rate 1", nothing, ALICE, DeclareCandidacy(KEY_A, CMT, Fraction(1)), RULE,
     "comp_rate"),
    # updateCandidacy
    ("update: not a candidate", nothing, ALICE, UpdateCandidacy(), UNKNOWN, "no candidate"),
    ("update: withdrawn", v1_withdrew, V1, UpdateCandidacy(), RULE, "withdrawn"),
    ("update: pub_key used", nothing, V0, UpdateCandidacy(pub_key=b"\x02" * 32), RULE,
     "already used"),
    ("update: max 0", nothing, V0, UpdateCandidacy(max_amount=0), RULE, "max_amount"),
    ("update: shortfall unaffordable", nothing, V0,
     UpdateCandidacy(max_amount=BALANCE * 10), FUNDS, "to stake"),
    # withdrawCandidacy
    ("withdrawCandidacy: not a candidate", nothing, ALICE, WithdrawCandidacy(), UNKNOWN,
     "no candidate"),
    ("withdrawCandidacy: twice", v1_withdrew, V1, WithdrawCandidacy(), RULE, "withdrawn"),
    # verifyCandidacy
    ("verify: not the foundation", nothing, ALICE, VerifyCandidacy(V0, True), RULE,
     "only the foundation"),
    ("verify: unknown", nothing, FOUNDATION, VerifyCandidacy(ALICE, True), UNKNOWN,
     "no candidate"),
    ("verify: withdrawn", v1_withdrew, FOUNDATION, VerifyCandidacy(V1, True), RULE, "withdrawn"),
    # activate / deactivate
    ("activate: unknown", nothing, ALICE, ActivateCandidacy(), UNKNOWN, "no candidate"),
    ("activate: already active", nothing, V0, ActivateCandidacy(), RULE, "already active"),
    ("activate: withdrawn", v1_withdrew, V1, ActivateCandidacy(), RULE, "withdrawn"),
    ("deactivate: already inactive", v0_inactive, V0, DeactivateCandidacy(), RULE,
     "already inactive"),
    ("deactivate: withdrawn", v1_withdrew, V1, DeactivateCandidacy(), RULE, "withdrawn"),
    # delegate
    ("delegate: unknown candidate", nothing, ALICE, Delegate(BOB, CMT), UNKNOWN, "no candidate"),
    ("delegate: withdrawn candidate", v1_withdrew, ALICE, Delegate(V1, CMT), RULE, "withdrawn"),
    ("delegate: amount 0", nothing, ALICE, Delegate(V0, 0), RULE, "amount must be > 0"),
    ("delegate: balance", poor_has(CMT - 1), POOR, Delegate(V0, CMT), FUNDS, "needs"),
    ("delegate: completely withdrawing", alice_withdraws_all, ALICE, Delegate(V0, CMT), RULE,
     "completely withdrawn"),
    ("delegate: above max_shares", v0_nearly_full, BOB, Delegate(V0, CMT), RULE,
     "does not fit"),
    ("delegate: unknown cube batch", nothing, ALICE, Delegate(V0, CMT, "nope", "01"),
     UnknownCubeBatch, "unknown cube_batch"),
    ("delegate: bad cube signature", nothing, ALICE, Delegate(V0, CMT, "01", "01"),
     InvalidCubeSignature, "invalid Cube signature"),
    # withdraw
    ("withdraw: unknown candidate", nothing, ALICE, Withdraw(BOB, CMT), UNKNOWN, "no candidate"),
    ("withdraw: no delegation", nothing, ALICE, Withdraw(V0, CMT), RULE, "no delegation"),
    ("withdraw: amount 0", alice_delegated, ALICE, Withdraw(V0, 0), RULE, "at most"),
    ("withdraw: above shares", alice_delegated, ALICE, Withdraw(V0, 1_000 * CMT + 1), RULE,
     "at most"),
    ("withdraw: completely withdrawing", alice_withdraws_all, ALICE, Withdraw(V0, 1), RULE,
     "completely withdrawn"),
    ("withdraw: owner below its floor", nothing, V0, Withdraw(V0, 1), RULE, "must keep"),
    # setCompRate
    ("setCompRate: not an owner", alice_delegated, ALICE, SetCompRate(ALICE, Fraction(1, 4)),
     UNKNOWN, "no candidate"),
    ("setCompRate: rate 0", alice_delegated, V0, SetCompRate(ALICE, Fraction(0)), RULE,
     "must be in"),
    ("setCompRate: rate 1", alice_delegated, V0, SetCompRate(ALICE, Fraction(1)), RULE,
     "must be in"),
    ("setCompRate: above the candidate's", alice_delegated, V0,
     SetCompRate(ALICE, Fraction(3, 5)), RULE, "above the candidate's"),
    ("setCompRate: no delegation", nothing, V0, SetCompRate(ALICE, Fraction(1, 4)), RULE,
     "no delegation"),
    # updateCandidacyAccount
    ("updateAccount: not an owner", nothing, ALICE, UpdateCandidacyAccount(BOB), UNKNOWN,
     "no candidate"),
    ("updateAccount: zero address", nothing, V0, UpdateCandidacyAccount(bytes(20)), RULE,
     "zero address"),
    ("updateAccount: itself", nothing, V0, UpdateCandidacyAccount(V0), RULE, "owner itself"),
    ("updateAccount: a candidate", nothing, V0, UpdateCandidacyAccount(V1), RULE,
     "is or was a candidate"),
    ("updateAccount: a delegator", alice_delegated, V0, UpdateCandidacyAccount(ALICE), RULE,
     "is a delegator"),
    ("updateAccount: asked before", alice_asked_before, V0, UpdateCandidacyAccount(ALICE),
     RULE, "already named"),
    # acceptCandidacyAccountUpdate
    ("accept: no request", nothing, CAROL, AcceptCandidacyAccountUpdate(1), RULE,
     "no account update request"),
    ("accept: not the new owner", request_to_carol, BOB, AcceptCandidacyAccountUpdate(1), RULE,
     "not 0x"),
    ("accept: done", carol_accepted, CAROL, AcceptCandidacyAccountUpdate(1), RULE, "DONE"),
    ("accept: now a delegator", carol_delegates_after_request, CAROL,
     AcceptCandidacyAccountUpdate(1), RULE, "is a delegator"),
    ("accept: now a candidate", carol_declares_after_request, CAROL,
     AcceptCandidacyAccountUpdate(1), RULE, "is or was a candidate"),
    ("accept: self-stake + fee unaffordable", poor_is_asked, POOR,
     AcceptCandidacyAccountUpdate(1), FUNDS, "needs"),
    ("accept: old owner unstaking", v0_unstaking, CAROL, AcceptCandidacyAccountUpdate(1), RULE,
     "pending unstake"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "sender", "msg", "error", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in REJECTIONS],
)
def test_every_rule_refuses_at_check_and_apply_and_changes_nothing(
    setup: Setup,
    sender: bytes,
    msg: StakingMsg,
    error: type[StakingRejected],
    message: str,
) -> None:
    storage = genesis_state()
    setup(storage)
    before = snapshot(storage)
    with pytest.raises(error, match=message) as refused:
        check(msg, ctx(sender), storage)
    assert type(refused.value) is error
    assert refused.value.check_tx_code == {
        RULE: 21, FUNDS: 20, UNKNOWN: 5, UnknownCubeBatch: 21, InvalidCubeSignature: 21,
    }[error]  # fmt: skip
    with pytest.raises(error, match=message):
        apply(msg, ctx(sender), storage)
    assert snapshot(storage) == before


def test_poor_fee_payers_are_refused_with_code_20() -> None:
    cases = (
        (UpdateCandidacyAccount(CAROL), FEE_ACCOUNT),
        (SetCompRate(V0, Fraction(1, 4)), FEE_COMP),
    )
    for msg, fee in cases:
        storage = genesis_state()
        storage.set_balance(V0, fee - 1)
        before = snapshot(storage)
        with pytest.raises(InsufficientStakingFunds, match=str(fee)) as refused:
            apply(msg, ctx(V0), storage)
        assert refused.value.check_tx_code == 20
        assert snapshot(storage) == before


# -- the effects, message by message ---------------------------------------------------------------
def test_declare_creates_a_candidate_with_its_self_stake_in_hold_and_pools_the_fee() -> None:
    storage = genesis_state()
    hold = storage.get_balance(HOLD_ADDRESS)
    events = do(storage, ALICE, declare(), height=7)
    stake = 5_000 * CMT  # floor(50,000 CMT × 1/10)
    record = keeper.candidate(storage, ALICE)
    assert record is not None
    assert (record.pub_key, record.shares, record.max_shares) == (KEY_A, stake, 50_000 * CMT)
    assert (record.comp_rate, record.description.name) == (Fraction(1, 5), "alice")
    assert (record.verified, record.active, record.withdrawn) == (False, True, False)
    assert record.state is CandidateState.CANDIDATE
    assert (record.block_height, record.created_at, record.num_of_delegators) == (7, T0 + 7, 1)
    own = keeper.delegation(storage, ALICE, ALICE)
    assert own is not None and own.source is DelegationSource.CUBE
    assert (own.shares, own.comp_rate) == (stake, Fraction(1, 5))
    assert storage.get_balance(ALICE) == BALANCE - stake - FEE_DECLARE
    assert storage.get_balance(HOLD_ADDRESS) == hold + stake + FEE_DECLARE
    assert fees_in_hold(storage) == FEE_DECLARE
    assert events == (
        StakingEvent(EventKind.FEE_PAID, None, ALICE, FEE_DECLARE),
        StakingEvent(EventKind.CANDIDATE_DECLARED, ALICE, ALICE, stake),
        StakingEvent(EventKind.STAKED, ALICE, ALICE, stake),
    )
    assert keeper.pub_key_owner(storage, KEY_A) == ALICE
    assert ALICE not in keeper.consensus_set_owners(storage)  # elected only by a recompute


def test_update_raises_charges_the_shortfall_lowers_without_refund_and_resets_verified() -> None:
    storage = genesis_state()
    do(storage, FOUNDATION, VerifyCandidacy(V0, True))
    balance = storage.get_balance(V0)
    events = do(
        storage, V0,
        UpdateCandidacy(KEY_B, 200_000 * CMT, Fraction(1, 4), Description(website="w")),
    )  # fmt: skip
    shortfall = 20_000 * CMT - 10_000 * CMT
    assert kinds(events) == [EventKind.FEE_PAID, EventKind.CANDIDATE_UPDATED, EventKind.STAKED]
    assert events[1].amount == events[2].amount == shortfall
    record = keeper.candidate(storage, V0)
    assert record is not None
    assert (record.pub_key, record.max_shares, record.comp_rate) == (
        KEY_B,
        200_000 * CMT,
        Fraction(1, 4),
    )
    assert (
        record.description.website == "w" and record.description.name == GENESIS.validators[0].name
    )
    assert record.verified is False and record.shares == 20_000 * CMT
    assert storage.get_balance(V0) == balance - shortfall - FEE_UPDATE
    own = keeper.delegation(storage, V0, V0)
    assert own is not None and own.comp_rate == Fraction(1, 2)  # existing delegations keep theirs
    # Lowering never refunds; an empty update keeps everything and verified stays as it is.
    do(storage, FOUNDATION, VerifyCandidacy(V0, True))
    balance = storage.get_balance(V0)
    assert kinds(do(storage, V0, UpdateCandidacy(max_amount=30_000 * CMT))) == [
        EventKind.FEE_PAID, EventKind.CANDIDATE_UPDATED,
    ]  # fmt: skip
    record = keeper.candidate(storage, V0)
    assert record is not None and record.shares == 20_000 * CMT and record.verified
    assert storage.get_balance(V0) == balance - FEE_UPDATE
    # Its old key stays taken; it may re-use it itself.
    with pytest.raises(StakingRuleViolation, match="already used"):
        check(declare(key=b"\x01" * 32), ctx(ALICE), storage)
    do(storage, V0, UpdateCandidacy(pub_key=b"\x01" * 32))


def test_withdraw_candidacy_unstakes_every_delegation_and_pays_them_at_maturity() -> None:
    storage = genesis_state()
    do(storage, ALICE, Delegate(V0, 1_000 * CMT))
    do(storage, ALICE, Withdraw(V0, 300 * CMT), height=3)  # matures at 13
    events = do(storage, V0, WithdrawCandidacy(), height=6)  # matures at 16
    assert kinds(events) == [EventKind.CANDIDATE_WITHDRAWN] + [EventKind.UNSTAKE_REQUESTED] * 2
    assert {(e.delegator, e.amount, e.matures_at) for e in events[1:]} == {
        (ALICE, 700 * CMT, 16), (V0, 10_000 * CMT, 16),
    }  # fmt: skip
    assert all(e.completely_withdraw for e in events[1:])
    record = keeper.candidate(storage, V0)
    assert record is not None
    assert (record.shares, record.withdrawn, record.active) == (0, True, False)
    assert V0 not in keeper.consensus_set_owners(storage)
    alice, v0 = storage.get_balance(ALICE), storage.get_balance(V0)
    assert mature(storage, 12) == ()
    assert [e.amount for e in mature(storage, 13)] == [300 * CMT]
    assert storage.get_balance(ALICE) == alice + 300 * CMT
    assert mature(storage, 15) == ()
    paid = mature(storage, 16)
    assert [(e.delegator, e.amount) for e in paid] == [(ALICE, 700 * CMT), (V0, 10_000 * CMT)]
    assert storage.get_balance(ALICE) == alice + 1_000 * CMT
    assert storage.get_balance(V0) == v0 + 10_000 * CMT
    assert keeper.delegators_of(storage, V0) == ()
    record = keeper.candidate(storage, V0)
    assert record is not None and record.num_of_delegators == 0
    assert mature(storage, 100) == ()
    for request_id in (1, 2, 3):
        request = keeper.unstake_request(storage, request_id)
        assert request is not None and request.state is RequestState.DONE


def test_verify_activate_and_deactivate_are_free_and_flip_their_flag() -> None:
    storage = genesis_state()
    events = do(storage, FOUNDATION, VerifyCandidacy(V1, True))
    assert events == (StakingEvent(EventKind.CANDIDATE_VERIFIED, V1, FOUNDATION, verified=True),)
    record = keeper.candidate(storage, V1)
    assert record is not None and record.verified
    assert do(storage, V1, DeactivateCandidacy()) == (
        StakingEvent(EventKind.CANDIDATE_DEACTIVATED, V1, V1),
    )
    assert V1 not in keeper.consensus_set_owners(storage)
    do(storage, V1, ActivateCandidacy())
    record = keeper.candidate(storage, V1)
    assert record is not None and record.active and V1 in keeper.consensus_set_owners(storage)
    do(storage, FOUNDATION, VerifyCandidacy(V1, False))
    record = keeper.candidate(storage, V1)
    assert record is not None and not record.verified
    assert fees_in_hold(storage) == 0


def test_delegate_creates_then_increases_a_delegation_at_the_candidates_rate() -> None:
    storage = genesis_state()
    hold = storage.get_balance(HOLD_ADDRESS)
    events = do(storage, ALICE, Delegate(V0, 400 * CMT))
    assert events == (StakingEvent(EventKind.STAKED, V0, ALICE, 400 * CMT),)
    do(storage, ALICE, Delegate(V0, 600 * CMT))
    d = keeper.delegation(storage, V0, ALICE)
    assert d is not None
    assert (d.delegate_amount, d.comp_rate, d.source) == (
        1_000 * CMT,
        Fraction(1, 2),
        DelegationSource.WALLET,
    )
    record = keeper.candidate(storage, V0)
    assert record is not None and (record.shares, record.num_of_delegators) == (11_000 * CMT, 2)
    assert storage.get_balance(ALICE) == BALANCE - 1_000 * CMT
    assert storage.get_balance(HOLD_ADDRESS) == hold + 1_000 * CMT
    # exactly up to max_shares fits
    do(storage, BOB, Delegate(V0, 89_000 * CMT))  # 10k + 1k + 89k = max


@pytest.fixture(scope="module")
def cube_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def test_a_valid_cube_signature_makes_a_cube_delegation(cube_key: rsa.RSAPrivateKey) -> None:
    pem = (
        cube_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    params = dataclasses.replace(
        PARAMS, cube_pub_keys=json.dumps([{"cube_batch": "07", "pub_key": pem}])
    )
    numbers = cube_key.private_numbers()
    sig = format(pow(cube_digest(ALICE, 3), numbers.d, numbers.public_numbers.n), "x")
    storage = genesis_state()
    msg = Delegate(V0, 5 * CMT, "07", sig)
    with pytest.raises(InvalidCubeSignature):  # signed for nonce 3, not 4
        check(msg, ctx(ALICE, nonce=4, params=params), storage)
    apply(msg, ctx(ALICE, nonce=3, params=params), storage)
    d = keeper.delegation(storage, V0, ALICE)
    assert d is not None and d.source is DelegationSource.CUBE
    assert_invariants(storage)


def test_withdraw_matures_after_the_waiting_period_and_complete_withdrawal_removes_it() -> None:
    storage = genesis_state()
    do(storage, ALICE, Delegate(V0, 1_000 * CMT))
    events = do(storage, ALICE, Withdraw(V0, 400 * CMT), height=5)
    assert events == (
        StakingEvent(
            EventKind.UNSTAKE_REQUESTED, V0, ALICE, 400 * CMT, request_id=1, matures_at=15,
            completely_withdraw=False,
        ),
    )  # fmt: skip
    d = keeper.delegation(storage, V0, ALICE)
    assert d is not None and (d.shares, d.pending_withdraw_amount) == (600 * CMT, 400 * CMT)
    record = keeper.candidate(storage, V0)
    assert record is not None and record.shares == 10_600 * CMT
    balance = storage.get_balance(ALICE)
    assert mature(storage, 14) == () and storage.get_balance(ALICE) == balance
    assert mature(storage, 15) == (
        StakingEvent(EventKind.UNSTAKE_PAID, V0, ALICE, 400 * CMT, request_id=1,
                     completely_withdraw=False),
    )  # fmt: skip
    assert storage.get_balance(ALICE) == balance + 400 * CMT
    d = keeper.delegation(storage, V0, ALICE)
    assert d is not None and (d.withdraw_amount, d.pending_withdraw_amount) == (400 * CMT, 0)
    # completely: takes all its shares, whatever amount (≤ shares) was given
    events = do(storage, ALICE, Withdraw(V0, 1, completely_withdraw=True), height=20)
    assert events[0].amount == 600 * CMT and events[0].matures_at == 30
    d = keeper.delegation(storage, V0, ALICE)
    assert d is not None and d.completely_withdraw and d.shares == 0
    mature(storage, 30)
    assert keeper.delegation(storage, V0, ALICE) is None
    record = keeper.candidate(storage, V0)
    assert record is not None and record.num_of_delegators == 1
    assert storage.get_balance(ALICE) == BALANCE
    # the owner may go down to its floor, not below
    do(storage, V0, UpdateCandidacy(max_amount=50_000 * CMT))
    do(storage, V0, Withdraw(V0, 5_000 * CMT))


def test_set_comp_rate_changes_only_that_delegation_and_charges_its_fee() -> None:
    storage = genesis_state()
    do(storage, ALICE, Delegate(V0, CMT))
    do(storage, BOB, Delegate(V0, CMT))
    balance = storage.get_balance(V0)
    events = do(storage, V0, SetCompRate(ALICE, Fraction(1, 2)))  # = the candidate's: allowed
    assert events[1] == StakingEvent(EventKind.COMP_RATE_SET, V0, ALICE, comp_rate=Fraction(1, 2))
    do(storage, V0, SetCompRate(ALICE, Fraction(1, 10)))
    alice, bob = keeper.delegation(storage, V0, ALICE), keeper.delegation(storage, V0, BOB)
    assert alice is not None and bob is not None
    assert (alice.comp_rate, bob.comp_rate) == (Fraction(1, 10), Fraction(1, 2))
    assert storage.get_balance(V0) == balance - 2 * FEE_COMP


def test_an_account_update_moves_the_candidate_and_swaps_the_self_stake() -> None:
    storage = genesis_state()
    do(storage, ALICE, Delegate(V0, 1_000 * CMT))
    do(storage, ALICE, Withdraw(V0, 100 * CMT), height=4)  # matures at 14, after the move
    events = do(storage, V0, UpdateCandidacyAccount(CAROL))
    assert events == (
        StakingEvent(EventKind.FEE_PAID, None, V0, FEE_ACCOUNT),
        StakingEvent(EventKind.ACCOUNT_UPDATE_REQUESTED, V0, V0, request_id=1, new_owner=CAROL),
    )
    request = keeper.account_update_request(storage, 1)
    assert request is not None and request.state is RequestState.PENDING
    v0, carol = storage.get_balance(V0), storage.get_balance(CAROL)
    events = do(storage, CAROL, AcceptCandidacyAccountUpdate(1))
    assert kinds(events) == [
        EventKind.FEE_PAID, EventKind.ACCOUNT_UPDATED, EventKind.STAKE_RETURNED,
        EventKind.STAKED,
    ]  # fmt: skip
    assert storage.get_balance(V0) == v0 + Q
    assert storage.get_balance(CAROL) == carol - Q - FEE_ACCEPT
    assert keeper.candidate(storage, V0) is None
    record = keeper.candidate(storage, CAROL)
    assert record is not None and record.pub_key == b"\x01" * 32
    assert (record.shares, record.num_of_delegators) == (Q + 900 * CMT, 2)
    assert keeper.consensus_set_owners(storage) == {CAROL, V1}
    assert keeper.delegators_of(storage, CAROL) == tuple(sorted((ALICE, CAROL)))
    own = keeper.delegation(storage, CAROL, CAROL)
    assert own is not None and (own.shares, own.source) == (Q, DelegationSource.CUBE)
    request = keeper.account_update_request(storage, 1)
    assert request is not None and request.state is RequestState.DONE
    with pytest.raises(StakingRuleViolation, match="is or was a candidate"):
        check(declare(key=KEY_B), ctx(V0), storage)
    # Alice's earlier request follows the candidate to its new owner.
    balance = storage.get_balance(ALICE)
    (paid,) = mature(storage, 14)
    assert (paid.candidate, paid.amount) == (CAROL, 100 * CMT)
    assert storage.get_balance(ALICE) == balance + 100 * CMT


FEES = [
    (ALICE, declare(), FEE_DECLARE),
    (V0, UpdateCandidacy(), FEE_UPDATE),
    (V0, SetCompRate(V0, Fraction(1, 4)), FEE_COMP),
    (V0, UpdateCandidacyAccount(CAROL), FEE_ACCOUNT),
    (V0, WithdrawCandidacy(), 0),
    (V0, DeactivateCandidacy(), 0),
    (FOUNDATION, VerifyCandidacy(V0, True), 0),
    (ALICE, Delegate(V0, CMT), 0),
    (ALICE, Withdraw(V0, CMT), 0),  # after delegating 1 CMT
]


@pytest.mark.parametrize(("sender", "msg", "fee"), FEES)
def test_fees_are_spec_section_5s(sender: bytes, msg: StakingMsg, fee: int) -> None:
    storage = genesis_state()
    if isinstance(msg, Withdraw):
        do(storage, ALICE, Delegate(V0, CMT))
    events = do(storage, sender, msg)
    assert fees_in_hold(storage) == fee
    assert [e.amount for e in events if e.kind is EventKind.FEE_PAID] == ([fee] if fee else [])


def test_the_accept_fee_is_its_gas_times_the_price() -> None:
    storage = genesis_state()
    do(storage, V0, UpdateCandidacyAccount(CAROL))
    pooled = fees_in_hold(storage)
    do(storage, CAROL, AcceptCandidacyAccountUpdate(1))
    assert fees_in_hold(storage) - pooled == FEE_ACCEPT == 10**6 * 2 * 10**9


def test_activate_is_free() -> None:
    storage = genesis_state()
    do(storage, V0, DeactivateCandidacy())
    do(storage, V0, ActivateCandidacy())
    assert fees_in_hold(storage) == 0


# -- random histories ------------------------------------------------------------------------------
ACTORS = (V0, V1, ALICE, BOB)
TARGETS = st.sampled_from((V0, V1, ALICE))
STAKERS = st.sampled_from((ALICE, BOB))
op = st.one_of(
    st.tuples(st.just("delegate"), STAKERS, TARGETS, st.integers(0, 3_000)),
    st.tuples(st.just("withdraw"), STAKERS, TARGETS, st.integers(0, 400)),
    st.tuples(st.just("withdraw"), st.sampled_from(ACTORS), TARGETS, st.integers(0, 3_000)),
    st.tuples(st.just("complete"), STAKERS, TARGETS, st.integers(1, 300)),
    st.tuples(st.just("declare"), st.sampled_from(ACTORS), st.just(ALICE), st.integers(1, 90)),
    st.tuples(st.just("quit"), st.sampled_from((V1, ALICE, BOB)), st.just(ALICE), st.just(0)),
    st.tuples(st.just("wait"), st.just(V0), st.just(V0), st.integers(0, 12)),
)  # fmt: skip


def as_msg(kind: str, target: bytes, n: int) -> StakingMsg:
    if kind == "delegate":
        return Delegate(target, n * CMT)
    if kind in ("withdraw", "complete"):
        return Withdraw(target, n * CMT, completely_withdraw=kind == "complete")
    if kind == "declare":
        return DeclareCandidacy(bytes([n]) * 32, n * 1_000 * CMT, Fraction(1, 3))
    return WithdrawCandidacy()


@settings(derandomize=True, max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(st.lists(op, max_size=40))
def test_random_histories_keep_the_invariants_and_refusals_change_nothing(
    ops: list[tuple[str, bytes, bytes, int]],
) -> None:
    storage = genesis_state()
    for staker in (ALICE, BOB):
        for candidate in (V0, V1):
            do(storage, staker, Delegate(candidate, 2_000 * CMT), height=1)
    height = 1
    for kind, sender, target, n in ops:
        if kind == "wait":
            height += n
            mature(storage, height)
            continue
        msg = as_msg(kind, target, n)
        before = snapshot(storage)
        try:
            check(msg, ctx(sender, height=height), storage)
        except StakingRejected:
            with pytest.raises(StakingRejected):
                apply(msg, ctx(sender, height=height), storage)
            assert snapshot(storage) == before
            continue
        do(storage, sender, msg, height=height)
    mature(storage, height + PARAMS.unstake_waiting_period)
    assert keeper.matured_unstake_ids(storage, 2**64) == ()


# -- through the chain: admission and blocks run the same rules ------------------------------------
CHAIN_GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=T0)
OWNER, STAKER = dev_accounts(2)


def staking_tx(account: DevAccount, nonce: int, kind: str, data: dict[str, object]) -> bytes:
    body = json.dumps({"type": kind, "data": data}).encode()
    fields = {"to": b"", "value": 0, "gas": 0, "gasPrice": 0, "nonce": nonce, "data": body,
              "chainId": CHAIN_GENESIS.chain_id}  # fmt: skip
    return bytes(Account.sign_transaction(fields, account.private_key).raw_transaction)


def test_through_the_chain_admission_refuses_and_blocks_apply_with_the_fee_as_gas() -> None:
    app = ChainApp(Chain(MemoryDB(), CHAIN_GENESIS, modules=ModuleSet([StakingModule()])))
    with pytest.raises(UnknownCandidate, match="no candidate") as refused:
        unknown = {"validator_address": "0x" + "42" * 20, "amount": str(CMT)}
        app.check_tx(staking_tx(STAKER, 0, "stake/delegate", unknown))
    assert refused.value.code == 2005 and len(app.mempool) == 0
    delegate = app.check_tx(staking_tx(
        STAKER, 0, "stake/delegate",
        {"validator_address": "0x" + OWNER.address.hex(), "amount": str(500 * CMT)},
    ))  # fmt: skip
    declare_tx = app.check_tx(staking_tx(
        STAKER, 1, "stake/declareCandidacy",
        {"pub_key": base64.b64encode(KEY_A).decode(), "max_amount": str(20_000 * CMT),
         "comp_rate": "1/5"},
    ))  # fmt: skip
    before = app.chain.state_at().get_balance(STAKER.address)
    ctx_ = app.next_context(
        time=app.head.timestamp + 1, coinbase=b"\x05" * 20, randomness=b"\x00" * 32,
        extra_data=b"\x00" * 32,
    )  # fmt: skip
    block = app.build_block(ctx_)
    assert [t.hash for t in block.result.transactions] == [delegate.hash, declare_tx.hash]
    assert [r.gas_used for r in block.result.receipts] == [0, PARAMS.declare_candidacy_gas]
    declared = [json.loads(log.data) for log in block.result.receipts[1].logs]
    assert {log.address for log in block.result.receipts[1].logs} == {STAKING_ADDRESS}
    assert "0x" + STAKER.address.hex() in {event["candidate"] for event in declared}
    app.commit(block)
    state = app.chain.state_at()
    d = keeper.delegation(state, OWNER.address, STAKER.address)
    assert d is not None and d.shares == 500 * CMT
    record = keeper.candidate(state, STAKER.address)
    assert record is not None and record.block_height == 1 and record.shares == 2_000 * CMT
    spent = 500 * CMT + 2_000 * CMT + FEE_DECLARE
    assert state.get_balance(STAKER.address) == before - spent
    # The fee joined the block's award pool, distributed at its end with the minted award.
    counters = ledger.read_supply(state)
    assert (counters.burned, counters.minted) == (0, block_award(PARAMS))
    settled = sum(d.award_amount for d in keeper.delegations_to(state, OWNER.address))
    assert keeper.award_reserve(state) + settled == block_award(PARAMS) + FEE_DECLARE
    assert keeper.award_reserve(state) <= 1  # the settled delegation's rounding, at most
