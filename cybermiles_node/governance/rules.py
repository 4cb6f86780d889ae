"""Governance rules (SPEC §7): one guard per message, run at admission (against the pending
state) and again in the block, then its effect; and the decisions that heights and times bring.

Who: only owners of the current validators and backups (`TxContext.members`, owner → staking
voting power, read from staking through the narrow `Electorate` of module.py) may propose or
vote.

Expiry: a proposal names `expire_timestamp` or `expire_block_height` (deploy_libeni: deploy_*,
retire/upgrade: their height), not both and neither in the past; the default is height +
`proposal_expire_period`. Times compare with block time, never a clock. Votes are refused from
expire height − 2 on (and once the expiry time has come). For deploy_libeni, retire_program and
upgrade_program the expiry is also when the decision takes effect.

Decisions: after every vote the proposal is tallied (tally.py); a decided proposal is settled
at once:

| type           | approved                                   | rejected / expired          |
|----------------|--------------------------------------------|-----------------------------|
| transfer_fund  | escrow paid from Hold to transfer_to       | escrow refunded to          |
|                |                                            | transfer_from               |
| change_param   | params.change_param: in force for the next | nothing                     |
|                | transaction                                |                             |
| deploy_libeni  | scheduled: the version is enabled at the   | nothing                     |
|                | first block at or after the deploy point   |                             |
| retire/upgrade | scheduled: at its height the block commits | nothing                     |
|                | and the chain halts (module.py)            |                             |

`begin_block` settles what expires at this block (tallied once more, else EXPIRED). Deploys are
settled and run at the end of the block before their deploy point (`settle_deploys`): a block
runs the library versions of its parent's state, so the version is in force from the deploy
height on (for a deploy time: from the block after the first one whose time reached it).

Fund recovery (transfer_fund) moves the amount from `transfer_from` into Hold at once, without
its consent: that is the point of it (SPEC §7). The escrow total is kept (keeper.escrow) for the
invariant Σ balances + escrow constant.

Library versions: a deploy_libeni may only name a library and version this node carries (nothing
is downloaded; evm/eni), newer than the one enabled, with no other undecided or undeployed
deploy proposal for the same name. All validators run the same software release, so they agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from eth_typing import Address

from cybermiles_node import params as chain_params
from cybermiles_node.governance import keeper, versions
from cybermiles_node.governance.errors import (
    GovernanceRuleViolation,
    InsufficientGovernanceFunds,
    NotAValidator,
    UnknownProposal,
)
from cybermiles_node.governance.msgs import (
    GovernanceMsg,
    ProposalMsg,
    ProposeChangeParam,
    ProposeDeployLibEni,
    ProposeRetireProgram,
    ProposeTransferFund,
    ProposeUpgradeProgram,
    Vote,
    gas_of_kind,
)
from cybermiles_node.governance.records import Proposal, Result
from cybermiles_node.governance.tally import tally
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS
from cybermiles_node.system.storage import SystemStorage
from evm import eni
from genesis import ParamError, Params

__all__ = [
    "EventKind",
    "Events",
    "GovernanceEvent",
    "TxContext",
    "apply",
    "check",
    "due_halts",
    "fee_of",
    "settle_deploys",
    "settle_due",
]


@dataclass(frozen=True)
class TxContext:
    """What a governance transaction is judged against besides the state."""

    sender: bytes
    tx_hash: bytes
    height: int  # the block being built / validated (admission: head + 1)
    time: int  # block time, unix seconds (admission: the head's time)
    params: Params
    members: Mapping[bytes, int]  # owner → voting power of the current validators and backups


class EventKind(Enum):
    FEE_PAID = "fee_paid"  # amount: from the sender to the award pool
    PROPOSED = "proposed"
    ESCROWED = "escrowed"  # amount: from transfer_from into Hold
    VOTED = "voted"  # answer
    DECIDED = "decided"  # result
    PAID = "paid"  # amount: from Hold to transfer_to
    REFUNDED = "refunded"  # amount: from Hold back to transfer_from
    PARAM_CHANGED = "param_changed"  # name, value
    LIBENI_DEPLOYED = "libeni_deployed"  # name, version
    HALT_DECIDED = "halt_decided"  # name, version: the chain halts after this block


@dataclass(frozen=True)
class GovernanceEvent:
    kind: EventKind
    proposal_id: bytes | None
    account: bytes | None = None  # who paid, was paid or voted
    amount: int = 0
    answer: str | None = None
    result: str | None = None
    name: str | None = None
    value: str | None = None


Events = tuple[GovernanceEvent, ...]


# -- the seam -------------------------------------------------------------------------------------
def fee_of(msg: GovernanceMsg, params: Params) -> int:
    """The fee in wei (SPEC §5): the kind's gas × gas_price; 0 for a vote."""
    return gas_of_kind(msg.KIND, params) * params.gas_price


def check(msg: GovernanceMsg, ctx: TxContext, storage: SystemStorage) -> None:
    """Raise the GovernanceRejected of the first rule `msg` breaks in this state."""
    guard, _ = _rules_for(msg)
    guard(msg, ctx, storage)


def apply(msg: GovernanceMsg, ctx: TxContext, storage: SystemStorage) -> Events:
    """Check `msg`, then charge its fee and apply its effect; the events describe both."""
    guard, effect = _rules_for(msg)
    guard(msg, ctx, storage)
    return _charge_fee(msg, ctx, storage) + effect(msg, ctx, storage)


def _charge_fee(msg: GovernanceMsg, ctx: TxContext, storage: SystemStorage) -> Events:
    fee = fee_of(msg, ctx.params)
    if fee == 0:
        return ()
    ledger.transfer(storage, ctx.sender, HOLD_ADDRESS, fee)  # into this block's award pool
    return (GovernanceEvent(EventKind.FEE_PAID, None, ctx.sender, fee),)


# -- guards ---------------------------------------------------------------------------------------
def _require_member(ctx: TxContext, what: str) -> None:
    if ctx.sender not in ctx.members:
        raise NotAValidator(
            f"{what}: 0x{ctx.sender.hex()} owns no current validator or backup validator; only "
            "they may propose and vote"
        )


def _require_balance(storage: SystemStorage, account: bytes, amount: int, what: str) -> None:
    balance = storage.get_balance(Address(account))
    if balance < amount:
        raise InsufficientGovernanceFunds(
            f"{what}: 0x{account.hex()} holds {balance} wei, needs {amount} wei"
        )


def _expiry(
    ctx: TxContext, what: str, timestamp: int | None, height: int | None
) -> tuple[int, int]:
    """(expire_block_height, expire_timestamp) of a new proposal: exactly one is non-zero."""
    if timestamp is not None and height is not None:
        raise GovernanceRuleViolation(f"{what}: give an expiry time or an expiry height, not both")
    if timestamp is not None:
        if timestamp <= ctx.time:
            raise GovernanceRuleViolation(
                f"{what}: the expiry time {timestamp} is not after the block time {ctx.time}"
            )
        return 0, timestamp
    if height is not None:
        if height <= ctx.height:
            raise GovernanceRuleViolation(
                f"{what}: the expiry height {height} is not after this block ({ctx.height})"
            )
        return height, 0
    return ctx.height + ctx.params.proposal_expire_period, 0


def _check_propose(msg: ProposalMsg, ctx: TxContext, storage: SystemStorage) -> None:
    what = msg.KIND
    _require_member(ctx, what)
    _expiry(ctx, what, *_expiry_fields(msg))
    fee = fee_of(msg, ctx.params)
    if isinstance(msg, ProposeTransferFund):
        if msg.transfer_from == msg.transfer_to:
            raise GovernanceRuleViolation(f"{what}: transfer_from and transfer_to are the same")
        own = fee if msg.transfer_from == ctx.sender else 0
        _require_balance(storage, msg.transfer_from, msg.amount + own, what)
    _require_balance(storage, ctx.sender, fee, what)
    _check_detail(msg, ctx, storage)


def _expiry_fields(msg: ProposalMsg) -> tuple[int | None, int | None]:
    """(timestamp, height) as the message names them."""
    if isinstance(msg, ProposeTransferFund | ProposeChangeParam):
        return msg.expire_timestamp, msg.expire_block_height
    if isinstance(msg, ProposeDeployLibEni):
        return msg.deploy_timestamp, msg.deploy_block_height
    if isinstance(msg, ProposeRetireProgram):
        return None, msg.retired_block_height
    return None, msg.upgrade_block_height


def _check_detail(msg: ProposalMsg, ctx: TxContext, storage: SystemStorage) -> None:
    if isinstance(msg, ProposeChangeParam):
        try:
            chain_params.check_change(msg.name, msg.value)
        except ParamError as error:
            raise GovernanceRuleViolation(f"{msg.KIND}: {error}") from None
    elif isinstance(msg, ProposeDeployLibEni):
        _check_deploy(msg, storage)
    elif isinstance(msg, ProposeUpgradeProgram):
        if msg.name != versions.PROGRAM_NAME:
            raise GovernanceRuleViolation(
                f"{msg.KIND}: this chain runs {versions.PROGRAM_NAME!r}, not {msg.name!r}"
            )


def _check_deploy(msg: ProposeDeployLibEni, storage: SystemStorage) -> None:
    what = msg.KIND
    carried = available_eni_versions(msg.name)
    if not carried:
        raise GovernanceRuleViolation(f"{what}: this node carries no ENI library {msg.name!r}")
    if msg.version not in carried:
        raise GovernanceRuleViolation(
            f"{what}: this node carries {msg.name} {', '.join(carried)}, not {msg.version} "
            "(nothing is downloaded: a version is deployable once a release carries it)"
        )
    enabled = enabled_eni_version(storage, msg.name)
    if not versions.parse_version(msg.version) > versions.parse_version(enabled):
        raise GovernanceRuleViolation(
            f"{what}: {msg.name} {msg.version} is not newer than the enabled {enabled}"
        )
    pending = keeper.open_proposals(storage) + keeper.scheduled_proposals(storage)
    for other in pending:
        if isinstance(other.msg, ProposeDeployLibEni) and other.msg.name == msg.name:
            raise GovernanceRuleViolation(
                f"{what}: proposal {other.id.hex()} for {msg.name} is still undecided or undeployed"
            )


def _check_vote(msg: Vote, ctx: TxContext, storage: SystemStorage) -> None:
    what = msg.KIND
    _require_member(ctx, what)
    record = keeper.proposal(storage, msg.proposal_id)
    if record is None:
        raise UnknownProposal(f"{what}: no proposal 0x{msg.proposal_id.hex()}")
    if record.result is not Result.OPEN:
        raise GovernanceRuleViolation(
            f"{what}: proposal 0x{msg.proposal_id.hex()} is decided ({record.result.value})"
        )
    if record.expire_block_height and ctx.height >= record.expire_block_height - 2:
        raise GovernanceRuleViolation(
            f"{what}: votes on proposal 0x{msg.proposal_id.hex()} closed at height "
            f"{record.expire_block_height - 2} (it expires at {record.expire_block_height})"
        )
    if record.expire_timestamp and ctx.time >= record.expire_timestamp:
        raise GovernanceRuleViolation(
            f"{what}: proposal 0x{msg.proposal_id.hex()} expired at time {record.expire_timestamp}"
        )


# -- effects --------------------------------------------------------------------------------------
def _apply_propose(msg: ProposalMsg, ctx: TxContext, storage: SystemStorage) -> Events:
    expire_height, expire_time = _expiry(ctx, msg.KIND, *_expiry_fields(msg))
    record = keeper.new_proposal(
        storage, ctx.tx_hash, msg, ctx.sender, ctx.height, expire_height, expire_time
    )
    events = [GovernanceEvent(EventKind.PROPOSED, record.id, ctx.sender)]
    if isinstance(msg, ProposeTransferFund):
        ledger.transfer(storage, msg.transfer_from, HOLD_ADDRESS, msg.amount)
        keeper.put_escrow(storage, keeper.escrow(storage) + msg.amount)
        events.append(GovernanceEvent(EventKind.ESCROWED, record.id, msg.transfer_from, msg.amount))
    return tuple(events)


def _apply_vote(msg: Vote, ctx: TxContext, storage: SystemStorage) -> Events:
    keeper.put_vote(storage, msg.proposal_id, ctx.sender, msg.answer)
    voted = GovernanceEvent(
        EventKind.VOTED, msg.proposal_id, ctx.sender, answer="Y" if msg.answer else "N"
    )
    record = keeper.proposal(storage, msg.proposal_id)
    if record is None:  # the guard found it a moment ago
        raise UnknownProposal(f"{msg.KIND}: no proposal 0x{msg.proposal_id.hex()}")
    result = tally(keeper.votes(storage, record.id), ctx.members)
    if result is Result.OPEN:
        return (voted,)
    return (voted, *_decide(storage, record, result, ctx.height, ctx.params))


# -- decisions ------------------------------------------------------------------------------------
def _decide(
    storage: SystemStorage, record: Proposal, result: Result, height: int, params: Params
) -> Events:
    """Record `result` for `record` and settle what it decides (module docstring)."""
    message = ""
    events: list[GovernanceEvent] = []
    msg = record.msg
    if isinstance(msg, ProposeTransferFund):
        keeper.put_escrow(storage, keeper.escrow(storage) - msg.amount)
        approved = result is Result.APPROVED
        to = msg.transfer_to if approved else msg.transfer_from
        ledger.transfer(storage, HOLD_ADDRESS, to, msg.amount)
        kind = EventKind.PAID if approved else EventKind.REFUNDED
        events.append(GovernanceEvent(kind, record.id, to, msg.amount))
    elif isinstance(msg, ProposeChangeParam) and result is Result.APPROVED:
        try:
            chain_params.change_param(storage, msg.name, msg.value)
            events.append(
                GovernanceEvent(EventKind.PARAM_CHANGED, record.id, name=msg.name, value=msg.value)
            )
        except ParamError as error:  # checked when proposed; kept as the result message
            message = str(error)
    decided = dataclasses.replace(
        record, result=result, result_msg=message, result_block_height=height
    )
    keeper.put_proposal(storage, decided)
    events.insert(0, GovernanceEvent(EventKind.DECIDED, record.id, result=result.value))
    return tuple(events)


# The block's electorate (owner → voting power), read only if a decision needs it.
LazyMembers = Callable[[], Mapping[bytes, int]]


def settle_due(
    storage: SystemStorage, height: int, time: int, members_of: LazyMembers, params: Params
) -> Events:
    """At the start of a block: tally once more every open proposal that expires here (else
    EXPIRED). Deploy proposals are settled at the end of the block before (`settle_deploys`).
    `members_of()` is read once, before the first tally, and only when a proposal is due (it
    costs a read of every validator's record, most blocks settle nothing)."""
    due = [
        record
        for record in keeper.open_proposals(storage)
        if not isinstance(record.msg, ProposeDeployLibEni) and _due(record, height, time)
    ]
    return _final_tallies(storage, due, members_of, height, params)


def _final_tallies(
    storage: SystemStorage,
    due: list[Proposal],
    members_of: LazyMembers,
    height: int,
    params: Params,
) -> Events:
    if not due:
        return ()
    members = members_of()
    events: list[GovernanceEvent] = []
    for record in due:
        events.extend(_final_tally(storage, record, members, height, params))
    return tuple(events)


def settle_deploys(
    storage: SystemStorage, height: int, time: int, members_of: LazyMembers, params: Params
) -> Events:
    """At the end of block `height`: the deploy proposals whose deploy point is the next block
    (deploy height = height + 1, or a deploy time this block's time has reached) are tallied
    once more if undecided, and an approved one enables its version. A block runs the versions
    of its parent's state, so the version is in force from the deploy height on. `members_of`
    as in `settle_due`."""
    due = [
        record
        for record in keeper.open_proposals(storage)
        if isinstance(record.msg, ProposeDeployLibEni) and _due(record, height + 1, time)
    ]
    events = list(_final_tallies(storage, due, members_of, height, params))
    for record in keeper.scheduled_proposals(storage):
        msg = record.msg
        if isinstance(msg, ProposeDeployLibEni) and _due(record, height + 1, time):
            versions.enable_eni_version(storage, msg.name, msg.version)
            keeper.put_proposal(storage, dataclasses.replace(record, executed=True))
            events.append(
                GovernanceEvent(
                    EventKind.LIBENI_DEPLOYED, record.id, name=msg.name, value=msg.version
                )
            )
    return tuple(events)


def _final_tally(
    storage: SystemStorage,
    record: Proposal,
    members: Mapping[bytes, int],
    height: int,
    params: Params,
) -> Events:
    result = tally(keeper.votes(storage, record.id), members)
    final = Result.EXPIRED if result is Result.OPEN else result
    return _decide(storage, record, final, height, params)


def due_halts(storage: SystemStorage, height: int) -> versions.ProgramRequirement | None:
    """At the end of a block: an approved retire/upgrade whose height has come writes the
    program requirement; the block is the chain's last for this software. None otherwise."""
    requirement = None
    for record in keeper.scheduled_proposals(storage):
        msg = record.msg
        if not isinstance(msg, ProposeRetireProgram | ProposeUpgradeProgram):
            continue
        if height < record.expire_block_height:
            continue
        if isinstance(msg, ProposeUpgradeProgram):
            requirement = versions.ProgramRequirement(msg.name, msg.version, height)
        else:
            requirement = versions.ProgramRequirement(versions.RETIRED, "v0.0.0", height)
        versions.put_program_requirement(storage, requirement)
        keeper.put_proposal(storage, dataclasses.replace(record, executed=True))
    return requirement


def _due(record: Proposal, height: int, time: int) -> bool:
    if record.expire_block_height:
        return height >= record.expire_block_height
    return time >= record.expire_timestamp


# -- library versions -----------------------------------------------------------------------------
def available_eni_versions(name: str) -> tuple[str, ...]:
    """The versions of ENI library `name` this node carries ("vX.Y.Z"), oldest first."""
    return eni.available().get(name, ())


def enabled_eni_version(storage: SystemStorage, name: str) -> str:
    """The version of `name` in force: governance's choice, else the node's default."""
    chosen = versions.enabled_eni_versions(storage).get(name)
    return chosen or eni.default_version(name) or "v0.0.0"


# -- the table ------------------------------------------------------------------------------------
_Guard = Callable[[Any, TxContext, SystemStorage], None]
_Effect = Callable[[Any, TxContext, SystemStorage], Events]

_RULES: dict[type, tuple[_Guard, _Effect]] = {
    ProposeTransferFund: (_check_propose, _apply_propose),
    ProposeChangeParam: (_check_propose, _apply_propose),
    ProposeDeployLibEni: (_check_propose, _apply_propose),
    ProposeRetireProgram: (_check_propose, _apply_propose),
    ProposeUpgradeProgram: (_check_propose, _apply_propose),
    Vote: (_check_vote, _apply_vote),
}


def _rules_for(msg: GovernanceMsg) -> tuple[_Guard, _Effect]:
    rules = _RULES.get(type(msg))
    if rules is None:
        raise TypeError(f"not a governance message: {type(msg).__name__}")
    return rules
