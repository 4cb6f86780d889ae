"""The rules of each staking transaction (SPEC §5, §6): one guard and one apply per message.

`check(msg, ctx, storage)` runs the guards of SPEC §6's table against the state and raises a
`StakingRejected` subclass naming the value at fault; it changes nothing. `apply` runs the same
`check` first, then the effect, and returns the `StakingEvent`s describing it. The same code
runs at admission (on the pending state, `ctx.height` = head + 1) and in a block, so a
transaction admitted against a state is executed against it in the same way.

Every apply charges the fee first: gas_of_kind × params.gas_price (SPEC §5), moved from the
sender into Hold, where the block's award pool is kept (a FEE_PAID event says so; the module
reports it to the executor, which adds it to the block's fees). The sender must afford the fee
plus any stake the transaction moves into Hold (InsufficientStakingFunds, check_tx 20,
otherwise).

Awards are settled (`rewards.settle`) before anything changes what a delegation earns: its
comp_rate, a payout that includes its awards (maturity of a complete withdrawal, withdrawing a
candidacy), its removal, and a change of its candidate's owner. A new delegation starts at its
candidate's current accumulator, so it earns nothing awarded before it.

`mature_unstakes(storage, height)` is end_block work: it pays every unstake request maturing at
or before `height` from Hold.

Decisions (also in docs/DECISIONS.md, "Staking rules"):
- a complete withdrawal (`completely_withdraw`) takes all the delegation's shares at execution;
  the given amount must still be > 0 and ≤ the shares (the table's rule), so a wallet can send
  the shares it read even though awards grew them meanwhile;
- a delegation's source is decided when it is created; a later Cube-signed delegation to it
  does not turn a cmt_wallet delegation into a cube one (else one 1-wei signed delegation would
  lift the weight of a large unsigned one), but its signature is still verified;
- a consensus key once used by a candidate stays taken (by that owner) forever, and an address
  that ever owned a candidate — withdrawn or handed over — can neither declare again nor be
  named by an account update request;
- updateCandidacy resets verified to N when any non-empty description field is given;
- acceptCandidacyAccountUpdate: "pending unstake" means the old owner's self-delegation has a
  pending withdrawal; the new owner gets a fresh self-delegation of exactly the old owner's
  self-stake (same source and comp_rate), and the old owner is paid that self-stake from Hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from fractions import Fraction
from math import floor
from typing import Any

from eth_typing import Address

from cybermiles_node.staking import keeper, rewards
from cybermiles_node.staking.cube import delegation_source
from cybermiles_node.staking.errors import (
    InsufficientStakingFunds,
    StakingRuleViolation,
    UnknownCandidate,
)
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
    gas_of_kind,
)
from cybermiles_node.staking.records import (
    AccountUpdateRequest,
    Candidate,
    CandidateState,
    Delegation,
    DelegationSource,
    Description,
    RequestState,
)
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS
from cybermiles_node.system.errors import StorageError
from cybermiles_node.system.storage import SystemStorage
from genesis import Params

__all__ = [
    "EventKind",
    "StakingEvent",
    "TxContext",
    "apply",
    "check",
    "fee_of",
    "forget_delegation",
    "mature_unstakes",
]

ZERO_ADDRESS = bytes(20)


@dataclass(frozen=True)
class TxContext:
    """What a staking transaction is judged against besides the state."""

    sender: bytes
    nonce: int
    tx_hash: bytes
    height: int  # the block being built / validated (admission: head + 1)
    time: int  # block time, unix seconds (admission: the head's time)
    params: Params


class EventKind(Enum):
    FEE_PAID = "fee_paid"  # amount = fee, moved from delegator (= the sender) to the award pool
    CANDIDATE_DECLARED = "candidate_declared"
    CANDIDATE_UPDATED = "candidate_updated"
    CANDIDATE_WITHDRAWN = "candidate_withdrawn"
    CANDIDATE_VERIFIED = "candidate_verified"  # verified = the new value
    CANDIDATE_ACTIVATED = "candidate_activated"
    CANDIDATE_DEACTIVATED = "candidate_deactivated"
    STAKED = "staked"  # amount moved from delegator to Hold (delegations, self-stake)
    UNSTAKE_REQUESTED = "unstake_requested"  # request_id, amount, matures_at
    COMP_RATE_SET = "comp_rate_set"  # comp_rate = the delegation's new rate
    ACCOUNT_UPDATE_REQUESTED = "account_update_requested"  # request_id, new_owner
    ACCOUNT_UPDATED = "account_updated"  # request_id; candidate = the old owner, new_owner
    STAKE_RETURNED = "stake_returned"  # amount paid from Hold to delegator (the old owner)
    UNSTAKE_PAID = "unstake_paid"  # request_id, amount paid from Hold to delegator


@dataclass(frozen=True)
class StakingEvent:
    """One effect of a staking transaction or of end_block, for receipts and logs.

    `candidate` is the candidate's owner address (None for a fee); `delegator` the account
    whose stake or balance moved (for a fee: the sender). Amounts are wei.
    """

    kind: EventKind
    candidate: bytes | None
    delegator: bytes
    amount: int = 0
    request_id: int | None = None
    matures_at: int | None = None
    new_owner: bytes | None = None
    comp_rate: Fraction | None = None
    verified: bool | None = None
    completely_withdraw: bool | None = None


Events = tuple[StakingEvent, ...]


# -- the seam ------------------------------------------------------------------------------------
def fee_of(msg: StakingMsg, params: Params) -> int:
    """The fee in wei (SPEC §5): the kind's gas × gas_price; 0 for the free kinds."""
    return gas_of_kind(msg.KIND, params) * params.gas_price


def check(msg: StakingMsg, ctx: TxContext, storage: SystemStorage) -> None:
    """Raise the StakingRejected of the first rule `msg` breaks in this state; change nothing."""
    guard, _ = _rules_for(msg)
    guard(msg, ctx, storage)


def apply(msg: StakingMsg, ctx: TxContext, storage: SystemStorage) -> Events:
    """Check `msg`, then charge its fee and apply its effect; the events describe both."""
    guard, effect = _rules_for(msg)
    guard(msg, ctx, storage)
    return _charge_fee(msg, ctx, storage) + effect(msg, ctx, storage)


def _charge_fee(msg: StakingMsg, ctx: TxContext, storage: SystemStorage) -> Events:
    fee = fee_of(msg, ctx.params)
    if fee == 0:
        return ()
    ledger.transfer(storage, ctx.sender, HOLD_ADDRESS, fee)  # into this block's award pool
    return (StakingEvent(EventKind.FEE_PAID, None, ctx.sender, fee),)


# -- shared guards -------------------------------------------------------------------------------
def _hex(address: bytes) -> str:
    return "0x" + address.hex()


def _cmt(wei: int) -> str:
    return f"{wei} wei"


def _self_stake_of(max_shares: int, params: Params) -> int:
    """floor(max × self_staking_ratio): what an owner must keep staked in its own candidate."""
    return floor(max_shares * params.self_staking_ratio)


def _require_funds(
    kind: str, ctx: TxContext, storage: SystemStorage, stake: int, account: bytes | None = None
) -> None:
    """`account` (default: the sender) must afford `stake` + the fee of `kind`."""
    payer = ctx.sender if account is None else account
    fee = gas_of_kind(kind, ctx.params) * ctx.params.gas_price
    balance = storage.get_balance(Address(payer))
    if balance < stake + fee:
        raise InsufficientStakingFunds(
            f"{kind}: {_hex(payer)} has {_cmt(balance)}, needs {_cmt(stake + fee)} "
            f"({_cmt(stake)} to stake + {_cmt(fee)} fee)"
        )


def _existing(kind: str, storage: SystemStorage, owner: bytes) -> Candidate:
    record = keeper.candidate(storage, owner)
    if record is None:
        raise UnknownCandidate(f"{kind}: no candidate owned by {_hex(owner)}")
    return record


def _live(kind: str, storage: SystemStorage, owner: bytes) -> Candidate:
    """The candidate of `owner`, refusing when there is none or it has withdrawn."""
    record = _existing(kind, storage, owner)
    if record.withdrawn:
        raise StakingRuleViolation(f"{kind}: candidate {_hex(owner)} has withdrawn its candidacy")
    return record


def _require_key_free(kind: str, storage: SystemStorage, pub_key: bytes, owner: bytes) -> None:
    user = keeper.pub_key_owner(storage, pub_key)
    if user is not None and user != owner:
        raise StakingRuleViolation(
            f"{kind}: pub_key {pub_key.hex()} is already used by candidate {_hex(user)}"
        )


def _own_delegation(storage: SystemStorage, owner: bytes) -> Delegation | None:
    return keeper.delegation(storage, owner, owner)


def _shares_of(record: Delegation | None) -> int:
    return 0 if record is None else record.shares


def _new_delegation(
    storage: SystemStorage,
    delegator: bytes,
    candidate: Candidate,
    amount: int,
    source: DelegationSource,
) -> Delegation:
    return Delegation(
        delegator=delegator,
        candidate=candidate.owner,
        delegate_amount=amount,
        award_amount=0,
        withdraw_amount=0,
        pending_withdraw_amount=0,
        slash_amount=0,
        comp_rate=candidate.comp_rate,
        voting_power=0,
        active=True,
        source=source,
        award_snapshot=keeper.award_accumulator(storage, candidate.owner),
    )


def _stake(
    storage: SystemStorage,
    candidate: Candidate,
    delegator: bytes,
    amount: int,
    source: DelegationSource,
) -> Events:
    """Move `amount` from `delegator` into Hold, onto its delegation (created if missing), and
    keep the candidate's shares and delegator count in step."""
    ledger.transfer(storage, delegator, HOLD_ADDRESS, amount)
    current = keeper.delegation(storage, candidate.owner, delegator)
    if current is None:
        keeper.put_delegation(
            storage, _new_delegation(storage, delegator, candidate, amount, source)
        )
    else:
        keeper.put_delegation(
            storage, replace(current, delegate_amount=current.delegate_amount + amount)
        )
    _recount(storage, replace(candidate, shares=candidate.shares + amount))
    return (StakingEvent(EventKind.STAKED, candidate.owner, delegator, amount),)


def _recount(storage: SystemStorage, candidate: Candidate) -> Candidate:
    """Store `candidate` with its num_of_delegators taken from the delegator index."""
    count = keeper.delegator_count(storage, candidate.owner)
    record = replace(candidate, num_of_delegators=count)
    keeper.put_candidate(storage, record)
    return record


# -- declareCandidacy ------------------------------------------------------------------------------
def _check_declare(msg: DeclareCandidacy, ctx: TxContext, storage: SystemStorage) -> None:
    if msg.max_amount <= 0:
        raise StakingRuleViolation(f"{msg.KIND}: max_amount must be > 0, got {msg.max_amount}")
    if not 0 < msg.comp_rate < 1:
        raise StakingRuleViolation(f"{msg.KIND}: comp_rate must be in (0, 1), got {msg.comp_rate}")
    if keeper.was_candidate(storage, ctx.sender):
        raise StakingRuleViolation(
            f"{msg.KIND}: {_hex(ctx.sender)} is or was a candidate (withdrawn or handed-over "
            f"candidacies can never be declared again)"
        )
    _require_key_free(msg.KIND, storage, msg.pub_key, ctx.sender)
    _require_funds(msg.KIND, ctx, storage, _self_stake_of(msg.max_amount, ctx.params))


def _apply_declare(msg: DeclareCandidacy, ctx: TxContext, storage: SystemStorage) -> Events:
    record = Candidate(
        owner=ctx.sender,
        pub_key=msg.pub_key,
        shares=0,
        max_shares=msg.max_amount,
        comp_rate=msg.comp_rate,
        description=msg.description,
        verified=False,
        active=True,
        state=CandidateState.CANDIDATE,
        voting_power=0,
        pending_voting_power=0,
        num_of_delegators=0,
        block_height=ctx.height,
        created_at=ctx.time,
    )
    keeper.put_candidate(storage, record)
    stake = _self_stake_of(msg.max_amount, ctx.params)
    declared = StakingEvent(EventKind.CANDIDATE_DECLARED, ctx.sender, ctx.sender, stake)
    return (declared, *_stake(storage, record, ctx.sender, stake, DelegationSource.CUBE))


# -- updateCandidacy -------------------------------------------------------------------------------
def _shortfall(msg: UpdateCandidacy, record: Candidate, storage: SystemStorage, p: Params) -> int:
    """What raising max_amount charges into the owner's self-delegation (never negative)."""
    if msg.max_amount is None or msg.max_amount <= record.max_shares:
        return 0
    own = _shares_of(_own_delegation(storage, record.owner))
    return max(0, _self_stake_of(msg.max_amount, p) - own)


def _check_update(msg: UpdateCandidacy, ctx: TxContext, storage: SystemStorage) -> None:
    record = _live(msg.KIND, storage, ctx.sender)
    if msg.pub_key is not None:
        _require_key_free(msg.KIND, storage, msg.pub_key, ctx.sender)
    if msg.max_amount is not None and msg.max_amount <= 0:
        raise StakingRuleViolation(f"{msg.KIND}: max_amount must be > 0, got {msg.max_amount}")
    _require_funds(msg.KIND, ctx, storage, _shortfall(msg, record, storage, ctx.params))


def _merged(old: Description, new: Description) -> Description:
    """Non-empty fields of `new` replace those of `old`."""
    return Description(
        *(
            given or kept
            for given, kept in zip(
                (new.name, new.website, new.location, new.email, new.profile),
                (old.name, old.website, old.location, old.email, old.profile),
                strict=True,
            )
        )
    )


def _apply_update(msg: UpdateCandidacy, ctx: TxContext, storage: SystemStorage) -> Events:
    record = _existing(msg.KIND, storage, ctx.sender)
    shortfall = _shortfall(msg, record, storage, ctx.params)
    described = msg.description != Description()
    record = replace(
        record,
        pub_key=record.pub_key if msg.pub_key is None else msg.pub_key,
        max_shares=record.max_shares if msg.max_amount is None else msg.max_amount,
        comp_rate=record.comp_rate if msg.comp_rate is None else msg.comp_rate,
        description=_merged(record.description, msg.description),
        verified=record.verified and not described,
    )
    keeper.put_candidate(storage, record)
    updated = StakingEvent(EventKind.CANDIDATE_UPDATED, ctx.sender, ctx.sender, shortfall)
    if shortfall == 0:
        return (updated,)
    return (updated, *_stake(storage, record, ctx.sender, shortfall, DelegationSource.CUBE))


# -- withdrawCandidacy -----------------------------------------------------------------------------
def _check_withdraw_candidacy(
    msg: WithdrawCandidacy, ctx: TxContext, storage: SystemStorage
) -> None:
    _live(msg.KIND, storage, ctx.sender)


def _apply_withdraw_candidacy(
    msg: WithdrawCandidacy, ctx: TxContext, storage: SystemStorage
) -> Events:
    events: list[StakingEvent] = []
    rewards.settle_all_of(storage, ctx.sender)
    for current in keeper.delegations_to(storage, ctx.sender):
        events.extend(_unstake(storage, ctx, current, current.shares, complete=True))
    record = _existing(msg.KIND, storage, ctx.sender)
    keeper.put_candidate(
        storage, replace(record, shares=0, withdrawn=True, active=False, voting_power=0)
    )
    return (StakingEvent(EventKind.CANDIDATE_WITHDRAWN, ctx.sender, ctx.sender), *events)


# -- verifyCandidacy -------------------------------------------------------------------------------
def _check_verify(msg: VerifyCandidacy, ctx: TxContext, storage: SystemStorage) -> None:
    foundation = ctx.params.foundation_address
    if ctx.sender != foundation:
        raise StakingRuleViolation(
            f"{msg.KIND}: only the foundation address {_hex(foundation)} may verify, "
            f"not {_hex(ctx.sender)}"
        )
    _live(msg.KIND, storage, msg.candidate_address)


def _apply_verify(msg: VerifyCandidacy, ctx: TxContext, storage: SystemStorage) -> Events:
    record = _existing(msg.KIND, storage, msg.candidate_address)
    keeper.put_candidate(storage, replace(record, verified=msg.verified))
    event = StakingEvent(
        EventKind.CANDIDATE_VERIFIED, record.owner, ctx.sender, verified=msg.verified
    )
    return (event,)


# -- activate / deactivate -------------------------------------------------------------------------
def _check_activation(
    msg: ActivateCandidacy | DeactivateCandidacy, ctx: TxContext, storage: SystemStorage
) -> None:
    record = _live(msg.KIND, storage, ctx.sender)
    wanted = isinstance(msg, ActivateCandidacy)
    if record.active == wanted:
        state = "active" if wanted else "inactive"
        raise StakingRuleViolation(f"{msg.KIND}: candidate {_hex(ctx.sender)} is already {state}")


def _apply_activation(
    msg: ActivateCandidacy | DeactivateCandidacy, ctx: TxContext, storage: SystemStorage
) -> Events:
    record = _existing(msg.KIND, storage, ctx.sender)
    active = isinstance(msg, ActivateCandidacy)
    keeper.put_candidate(storage, replace(record, active=active))
    kind = EventKind.CANDIDATE_ACTIVATED if active else EventKind.CANDIDATE_DEACTIVATED
    return (StakingEvent(kind, ctx.sender, ctx.sender),)


# -- delegate --------------------------------------------------------------------------------------
def _source(msg: Delegate, ctx: TxContext) -> DelegationSource:
    return delegation_source(
        ctx.sender, ctx.nonce, msg.cube_batch, msg.sig, ctx.params.cube_pub_keys
    )


def _check_delegate(msg: Delegate, ctx: TxContext, storage: SystemStorage) -> None:
    _source(msg, ctx)
    record = _live(msg.KIND, storage, msg.validator_address)
    if msg.amount <= 0:
        raise StakingRuleViolation(f"{msg.KIND}: amount must be > 0, got {msg.amount}")
    _require_funds(msg.KIND, ctx, storage, msg.amount)
    current = keeper.delegation(storage, record.owner, ctx.sender)
    if current is not None and current.completely_withdraw:
        raise StakingRuleViolation(
            f"{msg.KIND}: the delegation of {_hex(ctx.sender)} to {_hex(record.owner)} is being "
            f"completely withdrawn"
        )
    if record.shares + msg.amount > record.max_shares:
        raise StakingRuleViolation(
            f"{msg.KIND}: candidate {_hex(record.owner)} holds {_cmt(record.shares)} of at most "
            f"{_cmt(record.max_shares)}; {_cmt(msg.amount)} more does not fit"
        )


def _apply_delegate(msg: Delegate, ctx: TxContext, storage: SystemStorage) -> Events:
    record = _existing(msg.KIND, storage, msg.validator_address)
    return _stake(storage, record, ctx.sender, msg.amount, _source(msg, ctx))


# -- withdraw --------------------------------------------------------------------------------------
def _check_withdraw(msg: Withdraw, ctx: TxContext, storage: SystemStorage) -> None:
    record = _existing(msg.KIND, storage, msg.validator_address)
    current = keeper.delegation(storage, record.owner, ctx.sender)
    if current is None:
        raise StakingRuleViolation(
            f"{msg.KIND}: {_hex(ctx.sender)} has no delegation to {_hex(record.owner)}"
        )
    if current.completely_withdraw:
        raise StakingRuleViolation(
            f"{msg.KIND}: the delegation of {_hex(ctx.sender)} to {_hex(record.owner)} is already "
            f"being completely withdrawn"
        )
    if not 0 < msg.amount <= current.shares:
        raise StakingRuleViolation(
            f"{msg.KIND}: amount must be > 0 and at most the delegation's shares "
            f"{_cmt(current.shares)}, got {_cmt(msg.amount)}"
        )
    left = current.shares - _withdrawn_amount(msg, current)
    floor_stake = _self_stake_of(record.max_shares, ctx.params)
    if ctx.sender == record.owner and left < floor_stake:
        raise StakingRuleViolation(
            f"{msg.KIND}: the owner must keep at least {_cmt(floor_stake)} staked "
            f"(max × self_staking_ratio); {_cmt(left)} would be left"
        )


def _withdrawn_amount(msg: Withdraw, current: Delegation) -> int:
    return current.shares if msg.completely_withdraw else msg.amount


def _apply_withdraw(msg: Withdraw, ctx: TxContext, storage: SystemStorage) -> Events:
    current = keeper.delegation(storage, msg.validator_address, ctx.sender)
    assert current is not None  # checked
    amount = _withdrawn_amount(msg, current)
    events = _unstake(storage, ctx, current, amount, complete=msg.completely_withdraw)
    record = _existing(msg.KIND, storage, msg.validator_address)
    keeper.put_candidate(storage, replace(record, shares=max(0, record.shares - amount)))
    return events


def _unstake(
    storage: SystemStorage, ctx: TxContext, current: Delegation, amount: int, *, complete: bool
) -> Events:
    """Move `amount` of `current`'s shares to pending and queue its payment."""
    keeper.put_delegation(
        storage,
        replace(
            current,
            pending_withdraw_amount=current.pending_withdraw_amount + amount,
            completely_withdraw=current.completely_withdraw or complete,
        ),
    )
    if amount == 0:
        return ()
    matures_at = ctx.height + ctx.params.unstake_waiting_period
    request = keeper.new_unstake_request(
        storage, current.delegator, current.candidate, amount, ctx.height, matures_at, complete
    )
    event = StakingEvent(
        EventKind.UNSTAKE_REQUESTED, current.candidate, current.delegator, amount,
        request_id=request.id, matures_at=matures_at, completely_withdraw=complete,
    )  # fmt: skip
    return (event,)


# -- setCompRate -----------------------------------------------------------------------------------
def _check_set_comp_rate(msg: SetCompRate, ctx: TxContext, storage: SystemStorage) -> None:
    record = _existing(msg.KIND, storage, ctx.sender)
    if not 0 < msg.comp_rate < 1:
        raise StakingRuleViolation(f"{msg.KIND}: comp_rate must be in (0, 1), got {msg.comp_rate}")
    if msg.comp_rate > record.comp_rate:
        raise StakingRuleViolation(
            f"{msg.KIND}: comp_rate {msg.comp_rate} is above the candidate's {record.comp_rate}"
        )
    if keeper.delegation(storage, ctx.sender, msg.delegator_address) is None:
        raise StakingRuleViolation(
            f"{msg.KIND}: {_hex(msg.delegator_address)} has no delegation to {_hex(ctx.sender)}"
        )
    _require_funds(msg.KIND, ctx, storage, 0)


def _apply_set_comp_rate(msg: SetCompRate, ctx: TxContext, storage: SystemStorage) -> Events:
    current = keeper.delegation(storage, ctx.sender, msg.delegator_address)
    assert current is not None  # checked
    current = rewards.settle(storage, current)  # what it earned so far, at the old rate
    keeper.put_delegation(storage, replace(current, comp_rate=msg.comp_rate))
    event = StakingEvent(
        EventKind.COMP_RATE_SET, ctx.sender, msg.delegator_address, comp_rate=msg.comp_rate
    )
    return (event,)


# -- updateCandidacyAccount ------------------------------------------------------------------------
def _require_new_owner_fits(kind: str, storage: SystemStorage, owner: bytes, new: bytes) -> None:
    if keeper.was_candidate(storage, new):
        raise StakingRuleViolation(f"{kind}: {_hex(new)} is or was a candidate")
    if keeper.delegation(storage, owner, new) is not None:
        raise StakingRuleViolation(f"{kind}: {_hex(new)} is a delegator of {_hex(owner)}")


def _check_update_account(
    msg: UpdateCandidacyAccount, ctx: TxContext, storage: SystemStorage
) -> None:
    _existing(msg.KIND, storage, ctx.sender)
    new = msg.new_candidate_account
    if new == ZERO_ADDRESS:
        raise StakingRuleViolation(f"{msg.KIND}: the new account must not be the zero address")
    if new == ctx.sender:
        raise StakingRuleViolation(f"{msg.KIND}: the new account {_hex(new)} is the owner itself")
    _require_new_owner_fits(msg.KIND, storage, ctx.sender, new)
    if keeper.is_account_update_target(storage, new):
        raise StakingRuleViolation(
            f"{msg.KIND}: {_hex(new)} was already named by an account update request"
        )
    _require_funds(msg.KIND, ctx, storage, 0)


def _apply_update_account(
    msg: UpdateCandidacyAccount, ctx: TxContext, storage: SystemStorage
) -> Events:
    request = keeper.new_account_update_request(
        storage, ctx.sender, msg.new_candidate_account, ctx.height
    )
    event = StakingEvent(
        EventKind.ACCOUNT_UPDATE_REQUESTED, ctx.sender, ctx.sender,
        request_id=request.id, new_owner=request.new_owner,
    )  # fmt: skip
    return (event,)


# -- acceptCandidacyAccountUpdate ------------------------------------------------------------------
def _request(
    msg: AcceptCandidacyAccountUpdate, ctx: TxContext, storage: SystemStorage
) -> AccountUpdateRequest:
    request = keeper.account_update_request(storage, msg.account_update_request_id)
    if request is None:
        raise StakingRuleViolation(
            f"{msg.KIND}: no account update request {msg.account_update_request_id}"
        )
    return request


def _check_accept(
    msg: AcceptCandidacyAccountUpdate, ctx: TxContext, storage: SystemStorage
) -> None:
    request = _request(msg, ctx, storage)
    if ctx.sender != request.new_owner:
        raise StakingRuleViolation(
            f"{msg.KIND}: request {request.id} names {_hex(request.new_owner)}, "
            f"not {_hex(ctx.sender)}"
        )
    if request.state is not RequestState.PENDING:
        raise StakingRuleViolation(f"{msg.KIND}: request {request.id} is {request.state.value}")
    _existing(msg.KIND, storage, request.candidate)
    _require_new_owner_fits(msg.KIND, storage, request.candidate, ctx.sender)
    own = _own_delegation(storage, request.candidate)
    if own is not None and own.pending_withdraw_amount > 0:
        raise StakingRuleViolation(
            f"{msg.KIND}: the owner {_hex(request.candidate)} has a pending unstake of "
            f"{_cmt(own.pending_withdraw_amount)}"
        )
    _require_funds(msg.KIND, ctx, storage, _shares_of(own))


def _apply_accept(
    msg: AcceptCandidacyAccountUpdate, ctx: TxContext, storage: SystemStorage
) -> Events:
    request = _request(msg, ctx, storage)
    old, new = request.candidate, ctx.sender
    rewards.settle_all_of(storage, old)  # the old owner's cut up to now is the old owner's
    own = _own_delegation(storage, old)
    stake = _shares_of(own)
    keeper.rename_candidate(storage, old, new)
    moved = keeper.delegation(storage, new, old)  # the old owner's self-delegation, re-keyed
    if moved is not None:
        forget_delegation(storage, moved)
    record = _existing(msg.KIND, storage, new)
    keeper.put_account_update_request(storage, replace(request, state=RequestState.DONE))
    ledger.transfer(storage, HOLD_ADDRESS, old, stake)
    record = _recount(storage, replace(record, shares=record.shares - stake))
    source = DelegationSource.CUBE if own is None else own.source
    staked = _stake(storage, record, new, stake, source)
    if own is not None:
        current = keeper.delegation(storage, new, new)
        assert current is not None  # just staked
        keeper.put_delegation(storage, replace(current, comp_rate=own.comp_rate))
    return (
        StakingEvent(
            EventKind.ACCOUNT_UPDATED, old, old, stake, request_id=request.id, new_owner=new
        ),
        StakingEvent(EventKind.STAKE_RETURNED, old, old, stake),
        *staked,
    )


# -- unstake maturity (end_block) ------------------------------------------------------------------
def mature_unstakes(storage: SystemStorage, height: int) -> Events:
    """Pay from Hold every PENDING unstake request maturing at or before `height` and mark it
    DONE; a delegation left with no shares and nothing pending is removed.

    A complete withdrawal also pays what the delegation earned while waiting (its shares at
    maturity: everything else was pending). Awards must be settled into the delegations before
    this runs.
    """
    events: list[StakingEvent] = []
    for request_id in keeper.matured_unstake_ids(storage, height):
        events.extend(_pay_unstake(storage, request_id))
    return tuple(events)


def _current_owner(storage: SystemStorage, owner: bytes) -> bytes:
    """Follow account updates from the owner named when a request was made."""
    seen = {owner}
    while (new := keeper.renamed_to(storage, owner)) is not None and new not in seen:
        owner = new
        seen.add(new)
    return owner


def _pay_unstake(storage: SystemStorage, request_id: int) -> Events:
    request = keeper.unstake_request(storage, request_id)
    if request is None:
        raise StorageError(f"staking: the unstake queue names a missing request {request_id}")
    owner = _current_owner(storage, request.candidate)
    current = keeper.delegation(storage, owner, request.delegator)
    if current is not None:
        current = rewards.settle(storage, current)
    earned = current.shares if current is not None and request.completely_withdraw else 0
    paid = request.amount + earned
    ledger.transfer(storage, HOLD_ADDRESS, request.delegator, paid)
    keeper.put_unstake_request(storage, replace(request, state=RequestState.DONE))
    if current is not None:
        _close_request(storage, owner, current, request.amount, earned)
    event = StakingEvent(
        EventKind.UNSTAKE_PAID, owner, request.delegator, paid, request_id=request.id,
        completely_withdraw=request.completely_withdraw,
    )  # fmt: skip
    return (event,)


def _close_request(
    storage: SystemStorage, owner: bytes, current: Delegation, amount: int, earned: int
) -> None:
    settled = replace(
        current,
        withdraw_amount=current.withdraw_amount + amount + earned,
        pending_withdraw_amount=current.pending_withdraw_amount - amount,
    )
    if settled.shares == 0 and settled.pending_withdraw_amount == 0:
        forget_delegation(storage, settled)
    else:
        keeper.put_delegation(storage, settled)
    record = keeper.candidate(storage, owner)
    if record is not None:
        _recount(storage, replace(record, shares=max(0, record.shares - earned)))


def forget_delegation(storage: SystemStorage, record: Delegation) -> None:
    """Remove a settled delegation, and its voting power from its candidate's at once, so the
    candidate's award accumulator keeps dividing by the power of the delegations that remain."""
    keeper.remove_delegation(storage, record.candidate, record.delegator)
    owner = keeper.candidate(storage, record.candidate)
    if owner is None or record.voting_power == 0:
        return
    keeper.put_candidate(
        storage,
        replace(
            owner,
            voting_power=max(0, owner.voting_power - record.voting_power),
            pending_voting_power=max(0, owner.pending_voting_power - record.voting_power),
        ),
    )


_Guard = Callable[[Any, TxContext, SystemStorage], None]
_Effect = Callable[[Any, TxContext, SystemStorage], Events]

# Per message class: its guard and its effect (each takes the message, the context, the state).
_RULES: dict[type, tuple[_Guard, _Effect]] = {
    DeclareCandidacy: (_check_declare, _apply_declare),
    UpdateCandidacy: (_check_update, _apply_update),
    WithdrawCandidacy: (_check_withdraw_candidacy, _apply_withdraw_candidacy),
    VerifyCandidacy: (_check_verify, _apply_verify),
    ActivateCandidacy: (_check_activation, _apply_activation),
    DeactivateCandidacy: (_check_activation, _apply_activation),
    Delegate: (_check_delegate, _apply_delegate),
    Withdraw: (_check_withdraw, _apply_withdraw),
    SetCompRate: (_check_set_comp_rate, _apply_set_comp_rate),
    UpdateCandidacyAccount: (_check_update_account, _apply_update_account),
    AcceptCandidacyAccountUpdate: (_check_accept, _apply_accept),
}


def _rules_for(msg: StakingMsg) -> tuple[_Guard, _Effect]:
    """The guard and the effect of `msg`."""
    rules = _RULES.get(type(msg))
    if rules is None:
        raise TypeError(f"not a staking message: {type(msg).__name__}")
    return rules
