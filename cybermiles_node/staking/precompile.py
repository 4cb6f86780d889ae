"""The staking precompile at 0x…c0de05: contracts delegate, withdraw and read staking records.

Bird's-eye view
---------------
An ABI precompile (`evm.precompiles.abi_precompile`: selector, fixed gas, strict decoding)
whose interface is `contracts/IStaking.sol` (docs/PRECOMPILES.md, "Staking"):

=====================================================  ======  ==================================
function                                               gas     does
=====================================================  ======  ==================================
delegate(address candidate, uint256 amount)            50,000  stake/delegate, source cmt_wallet
withdraw(address candidate, uint256 amount, bool)      50,000  stake/withdraw (bool: completely)
candidate(address owner) returns (...)                 5,000   the candidate record
delegation(address candidate, address delegator)       5,000   the delegation record
candidates() returns (address[])                       2,000   every candidate's owner, ascending
                                                       + 2,000 per candidate
=====================================================  ======  ==================================

The writes run the staking module's own rules, `rules.apply(msg, ctx, computation.state)`,
on the EVM's state (py-evm's state offers what `SystemStorage` asks: storage words and
balances). That is DESIGN.md §7's point: the same guard and effect as a `stake/*` system
transaction, and since py-evm snapshots the state around every message, a caller that reverts
(or a transaction that fails) undoes the delegation with everything else it did.

Who stakes: the address whose code made the call — the caller under CALL, the calling
contract's own address under DELEGATECALL/CALLCODE (as `random()` decides whose stream to use,
`evm.precompiles.calling_address`). Taking `msg.sender` under DELEGATECALL would let any
contract an account calls stake that account's balance by delegatecalling here.

The rest of the rules' `TxContext`: the block being executed (`state.block_number`,
`state.timestamp`), the parameters in force (`read_params(state)`), nonce 0 and the calling
transaction's hash (the state's transaction scope, evm/cvm.py; zero under eth_call). No rule a
precompile call can reach reads either: the nonce only enters a Cube signature, which this
interface does not take (delegations from contracts are "cmt_wallet"), and tx_hash is read by
no staking rule.

Outcomes:
- a rule refusal (`StakingRejected`) reverts with `Error(string)` data carrying the module's
  message; the gas left is returned, so `require` bubbling and `try/catch Error` see it;
- a call with value reverts the same way (the stake comes from the caller's balance; value sent
  here would be stranded in the staking account);
- a write under STATICCALL is py-evm's `WriteProtection` (like SSTORE there: all gas of the
  call consumed); the views work anywhere;
- malformed calldata or an unknown selector is `PrecompileInputError` (all gas consumed), like
  every CVM precompile.

Each event of a write becomes a log of the staking address exactly as in a system
transaction's receipt (`module.event_log`: topic keccak("stake/<kind>"), JSON data), and goes
away with the call if it reverts.

Gas (fixed per function, charged before decoding; pinned in tests/unit/test_staking_precompile.py).
Measured on py-evm: a delegate through the precompile takes ~0.74 ms (it reads ~100 storage
words, 73 of them the parameters, and a first delegation writes ~14 new words and two
balances); py-evm runs an SLOAD/KECCAK loop at ~7 Mgas/s, so the CPU alone is worth ~5,000 gas.
A write costs 50,000: ten times its CPU, for the storage a first delegation adds. As system
transactions delegate and withdraw are free kinds (SPEC §5), so contracts pay more than
accounts for the same effect, never twice. A view takes ~0.16 ms (~1,100 gas): 5,000.
`candidates()` reads one record per candidate: 2,000 + 2,000 per candidate, charged by the
handler once it knows the count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from eth.abc import ComputationAPI
from eth.exceptions import WriteProtection
from eth_abi import encode as abi_encode
from eth_typing import Address

from cybermiles_node.params import read_params
from cybermiles_node.staking import keeper, rules
from cybermiles_node.staking.errors import StakingRejected
from cybermiles_node.staking.module import event_log
from cybermiles_node.staking.msgs import Delegate, StakingMsg, Withdraw
from cybermiles_node.staking.records import Candidate, CandidateState, Delegation
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import STAKING_ADDRESS
from evm.cvm import transaction_scope
from evm.precompiles import (
    AbiFunction,
    Precompile,
    abi_precompile,
    calling_address,
    revert_with_reason,
)

__all__ = [
    "CANDIDATE_OUTPUT",
    "DELEGATION_OUTPUT",
    "GAS_CANDIDATES",
    "GAS_CANDIDATES_PER_CANDIDATE",
    "GAS_VIEW",
    "GAS_WRITE",
    "STAKING_PRECOMPILE",
    "STAKING_PRECOMPILES",
    "STATE_CODES",
]

GAS_WRITE = 50_000
GAS_VIEW = 5_000
GAS_CANDIDATES = 2_000
GAS_CANDIDATES_PER_CANDIDATE = 2_000

# The `state` of candidate(): IStaking's 0/1/2.
STATE_CODES: dict[CandidateState, int] = {
    CandidateState.CANDIDATE: 0,
    CandidateState.VALIDATOR: 1,
    CandidateState.BACKUP: 2,
}
# (exists, pubKey, shares, maxShares, compRateNumerator, compRateDenominator, active, state,
#  votingPower, withdrawn)
CANDIDATE_OUTPUT = (
    "bool", "bytes32", "uint256", "uint256", "uint256", "uint256", "bool", "uint8", "uint256",
    "bool",
)  # fmt: skip
# (exists, delegateAmount, awardAmount, withdrawAmount, pendingWithdrawAmount, slashAmount,
#  shares, votingPower, completelyWithdraw)
DELEGATION_OUTPUT = (
    "bool", "uint256", "uint256", "uint256", "uint256", "uint256", "uint256", "uint256", "bool",
)  # fmt: skip

Args = tuple[Any, ...]  # as `evm.precompiles.Handler` hands them over; unpacked and typed below


def _address(value: object) -> bytes:
    """An ABI `address` argument (eth_abi gives a checksummed hex string) as 20 bytes."""
    return bytes.fromhex(cast(str, value)[2:])


# -- writes --------------------------------------------------------------------------------------
def _context(computation: ComputationAPI) -> rules.TxContext:
    state = computation.state
    return rules.TxContext(
        sender=calling_address(computation),
        nonce=0,
        tx_hash=transaction_scope(state).tx_hash,
        height=int(state.block_number),
        time=int(state.timestamp),
        params=read_params(state),
    )


def _refuse_value(computation: ComputationAPI) -> None:
    msg = computation.msg
    if msg.should_transfer_value and msg.value:
        revert_with_reason(
            computation,
            f"staking: send no value (got {msg.value} wei); the stake comes from the caller's "
            f"balance",
        )


def _apply(computation: ComputationAPI, msg: StakingMsg) -> bytes:
    """Run `msg`'s rules on the EVM state as the calling address; log its events."""
    _refuse_value(computation)
    if computation.msg.is_static:
        raise WriteProtection(f"staking: {msg.KIND} writes state, refused in a static call")
    ctx = _context(computation)
    try:
        events = rules.apply(msg, ctx, computation.state)
    except StakingRejected as exc:
        revert_with_reason(computation, str(exc))
    # The fee went into Hold inside this call: count it in the block's award pool.
    ledger.add_pool_fee(computation.state, rules.fee_of(msg, ctx.params))
    for event in events:
        address, topics, data = event_log(event)
        computation.add_log_entry(Address(address), topics, data)
    return b""


def _delegate(computation: ComputationAPI, args: Args) -> bytes:
    candidate, amount = args
    return _apply(computation, Delegate(_address(candidate), int(amount)))


def _withdraw(computation: ComputationAPI, args: Args) -> bytes:
    candidate, amount, completely = args
    return _apply(computation, Withdraw(_address(candidate), int(amount), bool(completely)))


# -- views ---------------------------------------------------------------------------------------
def _view(
    handler: Callable[[ComputationAPI, Args], bytes],
) -> Callable[[ComputationAPI, Args], bytes]:
    def checked(computation: ComputationAPI, args: Args) -> bytes:
        _refuse_value(computation)
        return handler(computation, args)

    return checked


def candidate_values(record: Candidate | None) -> tuple[object, ...]:
    """candidate()'s outputs for `record` (None: no such candidate, all zero)."""
    if record is None:
        return (False, bytes(32), 0, 0, 0, 0, False, 0, 0, False)
    rate = record.comp_rate
    return (
        True, record.pub_key, record.shares, record.max_shares, rate.numerator, rate.denominator,
        record.active, STATE_CODES[record.state], record.voting_power, record.withdrawn,
    )  # fmt: skip


def delegation_values(record: Delegation | None) -> tuple[object, ...]:
    """delegation()'s outputs for `record` (None: no such delegation, all zero)."""
    if record is None:
        return (False, 0, 0, 0, 0, 0, 0, 0, False)
    return (
        True, record.delegate_amount, record.award_amount, record.withdraw_amount,
        record.pending_withdraw_amount, record.slash_amount, record.shares, record.voting_power,
        record.completely_withdraw,
    )  # fmt: skip


def _candidate(computation: ComputationAPI, args: Args) -> bytes:
    (owner,) = args
    record = keeper.candidate(computation.state, _address(owner))
    return abi_encode(CANDIDATE_OUTPUT, candidate_values(record))


def _delegation(computation: ComputationAPI, args: Args) -> bytes:
    candidate, delegator = args
    record = keeper.delegation(computation.state, _address(candidate), _address(delegator))
    return abi_encode(DELEGATION_OUTPUT, delegation_values(record))


def _candidates(computation: ComputationAPI, _args: Args) -> bytes:
    records = keeper.candidates(computation.state)
    computation.consume_gas(
        GAS_CANDIDATES_PER_CANDIDATE * len(records), reason="staking: candidates()"
    )
    owners = sorted(record.owner for record in records)
    return abi_encode(["address[]"], [owners])


STAKING_PRECOMPILE: Precompile = abi_precompile(
    AbiFunction("delegate(address,uint256)", ("address", "uint256"), GAS_WRITE, _delegate),
    AbiFunction(
        "withdraw(address,uint256,bool)", ("address", "uint256", "bool"), GAS_WRITE, _withdraw
    ),
    AbiFunction("candidate(address)", ("address",), GAS_VIEW, _view(_candidate)),
    AbiFunction(
        "delegation(address,address)", ("address", "address"), GAS_VIEW, _view(_delegation)
    ),
    AbiFunction("candidates()", (), GAS_CANDIDATES, _view(_candidates)),
)

# What the composition root plugs into the EVM profile (`EvmProfile.with_precompiles`): one
# mapping object, so building the profile twice reuses one class (evm/profiles.py caches on it).
STAKING_PRECOMPILES: Mapping[bytes, Precompile] = {STAKING_ADDRESS: STAKING_PRECOMPILE}
