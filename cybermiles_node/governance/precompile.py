"""The governance precompile at 0x…c0de06: contracts propose, vote and read proposals.

Bird's-eye view
---------------
An ABI precompile (`evm.precompiles.abi_precompile`: selector, fixed gas, strict decoding)
whose interface is `contracts/IGovernance.sol` (docs/PRECOMPILES.md, "Governance"), built the
way the staking precompile is (staking/precompile.py):

==========================================================  ==================  ===============
function                                                    gas                 does
==========================================================  ==================  ===============
proposeTransferFund(from, to, amount, reason, expTime,      50,000 + 2,000      propose/
    expHeight) returns (bytes32 id)                         per calldata word   transfer_fund
proposeChangeParam(name, value, reason, expTime, expHeight) same                change_param
proposeDeployLibEni(name, version, fileUrl, md5, reason,    same                deploy_libeni
    deployTime, deployHeight)
proposeRetireProgram(preservedValidators, reason, height)   same                retire_program
proposeUpgradeProgram(name, version, fileUrl, md5, reason,  same                upgrade_program
    height)
vote(bytes32 id, bool answer)                               20,000              vote
proposal(bytes32 id) returns (...)                          5,000               the record
proposalOutcome(bytes32 id) returns (...)                   5,000               its result
proposalCount() returns (uint256)                           5,000               how many
proposalId(uint256 seq) returns (bytes32)                   5,000               by creation no.
voteOf(bytes32 id, address voter) returns (bool, bool)      5,000               one vote
==========================================================  ==================  ===============

A write builds the message a `governance/*` transaction would carry and runs the module's own
rules, `rules.apply(msg, ctx, computation.state)`, on the EVM state: the same guard and effect
as a system transaction, undone with everything else when the caller (or the transaction)
reverts. The propose arguments become the transaction's `data` object and go through
`msgs.parse_governance_msg`, so the stateless checks (amount > 0, name and version patterns,
`fileUrl`/`md5` JSON objects, heights and times below 2^63) are the transaction's exactly. An
optional height or time is 0 for "omitted" (0 is never a valid expiry).

Who acts: the address whose code made the call (`evm.precompiles.calling_address`: the
caller under CALL, the calling contract under DELEGATECALL), as for staking. It must own a
current validator or backup validator (`TxContext.members`, from the `Electorate` the
composition root passes, staking's `members_voting_power`, as it passes it to the module).
A proposal's fee (its `*_proposal_gas` × gas_price, SPEC §5) is taken from that address's
balance in wei, as from a proposing account.

Proposal ids. A proposing transaction's id is its hash; a proposal made from a contract gets
`keccak(tx_hash ‖ caller ‖ n)` (`evm.cvm.next_derived_id`: tx_hash of the calling
transaction, caller 20 bytes, n a 32-byte big-endian counter of the ids derived in this
transaction, from 0). Unique: one transaction is never executed twice on a chain, and n never
repeats within it (it does not roll back when a sub-call reverts, like RAND's counter); it
cannot equal a transaction hash (a keccak preimage). Deterministic: every validator executes
the same transaction the same way. `propose*` returns it, and the `governance/proposed` log
carries it. Under eth_call there is no transaction: the hash is 32 zero bytes, so the id an
eth_call returns is not the one the transaction will get; read it from the receipt.

Outcomes, as for staking:
- a rule refusal (any `GovernanceRejected`, malformed arguments included) reverts with
  `Error(string)` data carrying the module's message; the gas left is returned;
- a call with value reverts the same way (the fee comes from the caller's balance);
- a write under STATICCALL is py-evm's `WriteProtection` (all gas of the call consumed);
- undecodable calldata, an unknown selector or a string that is not UTF-8 is
  `PrecompileInputError` (all gas consumed), like every CVM precompile.

Each event of a write becomes a log of the governance address exactly as in a system
transaction's receipt (`module.governance_log`: topic keccak("governance/<kind>"), JSON data).

Gas. Measured on py-evm (the precompile's call minus an empty call's; the prices are pinned in
tests/unit/test_governance_precompile.py): a proposal takes ~0.7 ms of CPU (the parameters,
the electorate, a record and its indices), about 5,000 gas at py-evm's ~7 Mgas/s; a vote that
decides ~0.6 ms; a view ~0.1 ms. A proposal costs 50,000 for that plus
the storage of its record, and 2,000 per 32-byte word of calldata: the record keeps the
strings, and a contract must not store megabytes for a fixed price (a 1 MB reason costs 64 M
gas, more than a block). Its fee in wei is the system transaction's, so a contract pays about
what an account pays, plus the execution. A vote (free as a system transaction) costs 20,000.
A view reads one record or one word: 5,000.

The fee paid from a contract reaches Hold like a proposing account's and is recorded with
`ledger.add_pool_fee` (in state: a reverting caller undoes it), so the block's award pool
shares it out like every other fee (system/ledger.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, cast

from eth.abc import ComputationAPI
from eth.exceptions import WriteProtection
from eth_abi import encode as abi_encode
from eth_typing import Address

from cybermiles_node.governance import keeper, rules
from cybermiles_node.governance.errors import GovernanceRejected
from cybermiles_node.governance.module import Electorate, governance_log
from cybermiles_node.governance.msgs import (
    GovernanceMsg,
    ProposeChangeParam,
    ProposeDeployLibEni,
    ProposeRetireProgram,
    ProposeTransferFund,
    ProposeUpgradeProgram,
    Vote,
    message_data,
    parse_governance_msg,
)
from cybermiles_node.governance.records import Proposal, Result
from cybermiles_node.params import read_params
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import GOVERNANCE_ADDRESS
from evm.cvm import next_derived_id, transaction_scope
from evm.precompiles import (
    AbiFunction,
    Precompile,
    PrecompileInputError,
    abi_precompile,
    calling_address,
    revert_with_reason,
)

__all__ = [
    "GAS_PROPOSE",
    "GAS_PROPOSE_PER_WORD",
    "GAS_VIEW",
    "GAS_VOTE",
    "OUTCOME_OUTPUT",
    "PROPOSAL_OUTPUT",
    "RESULT_CODES",
    "governance_precompiles",
    "outcome_values",
    "proposal_values",
]

GAS_PROPOSE = 50_000
GAS_PROPOSE_PER_WORD = 2_000
GAS_VOTE = 20_000
GAS_VIEW = 5_000

# The `result` of proposalOutcome(): IGovernance's 0/1/2/3.
RESULT_CODES: dict[Result, int] = {
    Result.OPEN: 0,
    Result.APPROVED: 1,
    Result.REJECTED: 2,
    Result.EXPIRED: 3,
}
# (exists, seq, kind, proposer, blockHeight, expireBlockHeight, expireTimestamp, detail)
PROPOSAL_OUTPUT = (
    "bool", "uint256", "string", "address", "uint256", "uint256", "uint256", "string",
)  # fmt: skip
# (result, resultBlockHeight, resultMsg, executed)
OUTCOME_OUTPUT = ("uint8", "uint256", "string", "bool")

Args = tuple[Any, ...]  # as `evm.precompiles.Handler` hands them over; unpacked and typed below
Handler = Callable[[ComputationAPI, Args], bytes]


def _text(value: object, name: str) -> str:
    """An ABI `string` argument (decoded as bytes) as text; not UTF-8 is bad input."""
    try:
        return cast(bytes, value).decode("utf-8")
    except UnicodeDecodeError:
        raise PrecompileInputError(f"governance: {name} is not UTF-8") from None


def _optional(value: object) -> int | None:
    """An optional height or time: 0 means omitted."""
    return int(cast(int, value)) or None


# -- the propose arguments as a transaction's `data` object ---------------------------------------
def _transfer_fund(args: Args) -> dict[str, object]:
    source, to, amount, reason, expire_time, expire_height = args
    return {
        "transfer_from": source, "transfer_to": to, "amount": str(amount),
        "reason": _text(reason, "reason"), "expire_timestamp": _optional(expire_time),
        "expire_block_height": _optional(expire_height),
    }  # fmt: skip


def _change_param(args: Args) -> dict[str, object]:
    name, value, reason, expire_time, expire_height = args
    return {
        "name": _text(name, "name"), "value": _text(value, "value"),
        "reason": _text(reason, "reason"), "expire_timestamp": _optional(expire_time),
        "expire_block_height": _optional(expire_height),
    }  # fmt: skip


def _release(name: object, version: object, file_url: object, md5: object) -> dict[str, object]:
    return {
        "name": _text(name, "name"), "version": _text(version, "version"),
        "file_url": _text(file_url, "fileUrl"), "md5": _text(md5, "md5"),
    }  # fmt: skip


def _deploy_libeni(args: Args) -> dict[str, object]:
    name, version, file_url, md5, reason, deploy_time, deploy_height = args
    return {
        **_release(name, version, file_url, md5), "reason": _text(reason, "reason"),
        "deploy_timestamp": _optional(deploy_time), "deploy_block_height": _optional(deploy_height),
    }  # fmt: skip


def _retire_program(args: Args) -> dict[str, object]:
    preserved, reason, height = args
    return {
        "preserved_validators": _text(preserved, "preservedValidators"),
        "reason": _text(reason, "reason"), "retired_block_height": _optional(height),
    }  # fmt: skip


def _upgrade_program(args: Args) -> dict[str, object]:
    name, version, file_url, md5, reason, height = args
    return {
        **_release(name, version, file_url, md5), "reason": _text(reason, "reason"),
        "upgrade_block_height": _optional(height),
    }  # fmt: skip


# -- writes ---------------------------------------------------------------------------------------
def _refuse_value(computation: ComputationAPI) -> None:
    msg = computation.msg
    if msg.should_transfer_value and msg.value:
        revert_with_reason(
            computation,
            f"governance: send no value (got {msg.value} wei); a proposal's fee comes from the "
            "caller's balance",
        )


def _writable(computation: ComputationAPI, kind: str) -> None:
    _refuse_value(computation)
    if computation.msg.is_static:
        raise WriteProtection(f"governance: {kind} writes state, refused in a static call")


def _apply(
    computation: ComputationAPI, electorate: Electorate, msg: GovernanceMsg, tx_hash: bytes
) -> None:
    """Run `msg`'s rules on the EVM state as the calling address; log its events.
    `tx_hash` is what the rules take as the transaction's hash: a new proposal's id."""
    state = computation.state
    ctx = rules.TxContext(
        sender=calling_address(computation),
        tx_hash=tx_hash,
        height=int(state.block_number),
        time=int(state.timestamp),
        params=read_params(state),
        members=electorate(state),
    )
    try:
        events = rules.apply(msg, ctx, state)
    except GovernanceRejected as exc:
        revert_with_reason(computation, str(exc))
    # The fee went into Hold inside this call: count it in the block's award pool.
    ledger.add_pool_fee(state, rules.fee_of(msg, ctx.params))
    for event in events:
        address, topics, data = governance_log(event)
        computation.add_log_entry(Address(address), topics, data)


def _proposer(
    electorate: Electorate, kind: str, data_of: Callable[[Args], dict[str, object]]
) -> Handler:
    def propose(computation: ComputationAPI, args: Args) -> bytes:
        _writable(computation, kind)
        try:
            msg = parse_governance_msg(kind, data_of(args))
        except GovernanceRejected as exc:
            revert_with_reason(computation, str(exc))
        proposal_id = next_derived_id(computation, calling_address(computation))
        _apply(computation, electorate, msg, proposal_id)
        return proposal_id

    return propose


def _voter(electorate: Electorate) -> Handler:
    def vote(computation: ComputationAPI, args: Args) -> bytes:
        _writable(computation, Vote.KIND)
        proposal_id, answer = args
        msg = Vote(bytes(proposal_id), bool(answer))
        _apply(computation, electorate, msg, transaction_scope(computation.state).tx_hash)
        return b""

    return vote


# -- views ----------------------------------------------------------------------------------------
def _view(handler: Handler) -> Handler:
    def checked(computation: ComputationAPI, args: Args) -> bytes:
        _refuse_value(computation)
        return handler(computation, args)

    return checked


def proposal_values(record: Proposal | None) -> tuple[object, ...]:
    """proposal()'s outputs for `record` (None: no such proposal, all zero). `kind` is Travis's
    type name ("transfer_fund"), `detail` the canonical JSON of the proposing data object."""
    if record is None:
        return (False, 0, "", "0x" + bytes(20).hex(), 0, 0, 0, "")
    return (
        True, record.seq, record.type_name, "0x" + record.proposer.hex(), record.block_height,
        record.expire_block_height, record.expire_timestamp, _detail(record),
    )  # fmt: skip


def _detail(record: Proposal) -> str:
    return json.dumps(message_data(record.msg), sort_keys=True, separators=(",", ":"))


def outcome_values(record: Proposal | None) -> tuple[object, ...]:
    """proposalOutcome()'s outputs (None: no such proposal, all zero, as an open one)."""
    if record is None:
        return (0, 0, "", False)
    return (
        RESULT_CODES[record.result], record.result_block_height, record.result_msg,
        record.executed,
    )  # fmt: skip


def _proposal(computation: ComputationAPI, args: Args) -> bytes:
    (proposal_id,) = args
    record = keeper.proposal(computation.state, bytes(proposal_id))
    return abi_encode(PROPOSAL_OUTPUT, proposal_values(record))


def _outcome(computation: ComputationAPI, args: Args) -> bytes:
    (proposal_id,) = args
    record = keeper.proposal(computation.state, bytes(proposal_id))
    return abi_encode(OUTCOME_OUTPUT, outcome_values(record))


def _count(state: Any) -> int:
    # keeper's creation counter: the next proposal's number, from 1 (0 before the first).
    return max(int(keeper.NEXT_SEQ.get(state)) - 1, 0)


def _proposal_count(computation: ComputationAPI, _args: Args) -> bytes:
    return abi_encode(["uint256"], [_count(computation.state)])


def _proposal_id(computation: ComputationAPI, args: Args) -> bytes:
    (seq,) = args
    state = computation.state
    found = bytes(keeper.PROPOSAL_SEQS.get(state, seq)) if 1 <= seq <= _count(state) else b""
    return found.rjust(32, b"\x00")


def _vote_of(computation: ComputationAPI, args: Args) -> bytes:
    proposal_id, voter = args
    votes = keeper.votes(computation.state, bytes(proposal_id))
    answer = votes.get(bytes.fromhex(cast(str, voter)[2:]))
    return abi_encode(["bool", "bool"], [answer is not None, bool(answer)])


# -- the precompile -------------------------------------------------------------------------------
_PROPOSALS: tuple[tuple[str, tuple[str, ...], str, Callable[[Args], dict[str, object]]], ...] = (
    (
        "proposeTransferFund(address,address,uint256,string,uint256,uint256)",
        ("address", "address", "uint256", "string", "uint256", "uint256"),
        ProposeTransferFund.KIND,
        _transfer_fund,
    ),
    (
        "proposeChangeParam(string,string,string,uint256,uint256)",
        ("string", "string", "string", "uint256", "uint256"),
        ProposeChangeParam.KIND,
        _change_param,
    ),
    (
        "proposeDeployLibEni(string,string,string,string,string,uint256,uint256)",
        ("string", "string", "string", "string", "string", "uint256", "uint256"),
        ProposeDeployLibEni.KIND,
        _deploy_libeni,
    ),
    (
        "proposeRetireProgram(string,string,uint256)",
        ("string", "string", "uint256"),
        ProposeRetireProgram.KIND,
        _retire_program,
    ),
    (
        "proposeUpgradeProgram(string,string,string,string,string,uint256)",
        ("string", "string", "string", "string", "string", "uint256"),
        ProposeUpgradeProgram.KIND,
        _upgrade_program,
    ),
)


@cache
def governance_precompiles(electorate: Electorate) -> Mapping[bytes, Precompile]:
    """What the composition root plugs into the EVM profile (`EvmProfile.with_precompiles`)
    for the electorate it gives the module. One mapping per electorate, so building the profile
    twice reuses one class (evm/profiles.py caches on the mapping's items)."""
    proposals = [
        AbiFunction(
            signature,
            types,
            GAS_PROPOSE,
            _proposer(electorate, kind, data_of),
            gas_per_word=GAS_PROPOSE_PER_WORD,
        )
        for signature, types, kind, data_of in _PROPOSALS
    ]
    precompile = abi_precompile(
        *proposals,
        AbiFunction("vote(bytes32,bool)", ("bytes32", "bool"), GAS_VOTE, _voter(electorate)),
        AbiFunction("proposal(bytes32)", ("bytes32",), GAS_VIEW, _view(_proposal)),
        AbiFunction("proposalOutcome(bytes32)", ("bytes32",), GAS_VIEW, _view(_outcome)),
        AbiFunction("proposalCount()", (), GAS_VIEW, _view(_proposal_count)),
        AbiFunction("proposalId(uint256)", ("uint256",), GAS_VIEW, _view(_proposal_id)),
        AbiFunction("voteOf(bytes32,address)", ("bytes32", "address"), GAS_VIEW, _view(_vote_of)),
    )
    return {GOVERNANCE_ADDRESS: precompile}
