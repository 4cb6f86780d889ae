"""Read-only execution: `eth_call` and `eth_estimateGas` against any stored state.

A call runs a message through py-evm's transaction executor on a throwaway `StateDB` (its writes
never reach the database), skipping the signature and nonce checks a real transaction needs.
The sender pays gas only when a gas price is given (like geth), so plain calls need no balance;
a call without a price also runs with base fee 0 (geth's NoBaseFee: BASEFEE answers 0), one with
a price at the block's base fee.
`estimate_gas` finds the smallest gas limit that does not fail, by binary search above the gas
the call used at the cap.

Both are bounded, because anyone who reaches the RPC can ask for them: the gas is capped
(`gas_cap`), and a `Deadline` stops the execution after a wall-clock limit. The deadline is
checked from the gas meter, which every opcode goes through, so an infinite loop cannot escape
it; blocks never pay for the check (only the call state classes made here have it). These
functions are plain and synchronous: the RPC layer runs them in a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from eth._utils.address import generate_contract_address
from eth.constants import BLANK_ROOT_HASH
from eth.exceptions import InsufficientFunds, Revert
from eth.vm.gas_meter import GasMeter
from eth.vm.spoof import SpoofTransaction
from eth_abi import decode as abi_decode
from eth_typing import Address
from eth_utils import ValidationError

from evm.executor import BlockEnv, execution_context
from evm.profiles import EvmProfile
from evm.state import StateDB
from evm.tracing import Tracer, attached
from evm.transactions import gas_limit_shortfall

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


class CallError(Exception):
    """The call cannot run at all (bad input, not enough balance for the given gas price)."""


class ExecutionTimeout(Exception):
    """The call ran past its wall-clock limit and was stopped (not a CallError: an estimate
    must not take it for a gas limit that is too low)."""


class Deadline:
    """A wall-clock limit on one RPC execution, checked once every `every` gas charges.

    The first charge checks at once, so work that waited past its deadline for a worker stops
    before it starts; once expired, every charge raises again, so nothing that catches the
    exception on its way up can keep the execution going.
    """

    def __init__(
        self, seconds: float, *, every: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.expires = clock() + seconds
        self._clock = clock
        self._every = every
        self._countdown = 1

    def tick(self) -> None:
        self._countdown -= 1
        if self._countdown > 0:
            return
        if self._clock() >= self.expires:
            self._countdown = 1
            raise ExecutionTimeout(f"execution aborted (timeout = {self.seconds:g}s)")
        self._countdown = self._every


class _DeadlineGasMeter(GasMeter):
    def __init__(self, start_gas: int, deadline: Deadline | None) -> None:
        super().__init__(start_gas)
        self._deadline = deadline

    def consume_gas(self, amount: int, reason: str) -> None:
        if self._deadline is not None:
            self._deadline.tick()
        super().consume_gas(amount, reason)


@cache
def _deadline_computation_class(base: Any) -> Any:
    """`base` whose computations (children included) meter gas against the state's
    `deadline`."""

    def _configure_gas_meter(self: Any) -> GasMeter:
        return _DeadlineGasMeter(self.msg.gas, self.state.deadline)

    return type(f"Deadline{base.__name__}", (base,), {"_configure_gas_meter": _configure_gas_meter})


@cache
def _call_state_class(state_class: Any) -> Any:
    return type(
        f"Call{state_class.__name__}",
        (state_class,),
        {
            "computation_class": _deadline_computation_class(state_class.computation_class),
            "deadline": None,
        },
    )


def use_deadline(state: Any, deadline: Deadline) -> None:
    """Run the messages of this one state instance under `deadline` (a block replayed for a
    trace, rpc/debug.py); the shared state class, which blocks use, is left as it is."""
    state.computation_class = _deadline_computation_class(type(state).computation_class)
    state.deadline = deadline


class _RecordingStateDB(StateDB):
    """A StateDB that remembers every address and slot the EVM warmed (EIP-2929), also those
    a reverted frame warmed: the journal forgets them, an access list must not."""

    def __init__(self, db: Any, state_root: Any = BLANK_ROOT_HASH) -> None:
        super().__init__(db, state_root)
        self.touched_addresses: set[bytes] = set()
        self.touched_slots: set[tuple[bytes, int]] = set()

    def mark_address_warm(self, address: bytes) -> None:
        self.touched_addresses.add(address)
        super().mark_address_warm(address)

    def mark_storage_warm(self, address: bytes, slot: int) -> None:
        self.touched_slots.add((address, slot))
        super().mark_storage_warm(address, slot)


@cache
def _recording_state_class(state_class: Any) -> Any:
    return type(
        f"Recording{state_class.__name__}", (state_class,), {"account_db_class": _RecordingStateDB}
    )


def _call_state(
    profile: EvmProfile,
    db: Any,
    state_root: bytes,
    env: BlockEnv,
    deadline: Deadline | None,
    *,
    recording: bool = False,
) -> Any:
    state_class = _call_state_class(profile.state_class)
    if recording:
        state_class = _recording_state_class(state_class)
    state = state_class(db, execution_context(env), state_root)
    state.deadline = deadline
    return state


class EstimateFailed(Exception):
    """The call fails even with the highest gas allowed; `result` says how."""

    def __init__(self, result: CallResult) -> None:
        super().__init__(result.error)
        self.result = result


@dataclass(frozen=True)
class CallRequest:
    sender: bytes
    to: bytes  # b"" creates a contract
    data: bytes = b""
    value: int = 0
    gas: int | None = None
    gas_price: int = 0
    access_list: tuple[tuple[bytes, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class CallResult:
    success: bool
    output: bytes
    gas_used: int
    reverted: bool
    error: str  # "" on success

    @property
    def revert_reason(self) -> str | None:
        return decode_revert_reason(self.output) if self.reverted else None


def decode_revert_reason(data: bytes) -> str | None:
    """The message of `Error(string)` revert data, or a Panic description; None otherwise."""
    try:
        if data[:4] == ERROR_SELECTOR:
            return str(abi_decode(["string"], data[4:])[0])
        if data[:4] == PANIC_SELECTOR:
            return f"panic: 0x{abi_decode(['uint256'], data[4:])[0]:02x}"
    except Exception:  # undecodable revert data is reported raw
        return None
    return None


def _unsigned(profile: EvmProfile, request: CallRequest, nonce: int, gas: int) -> Any:
    builder = profile.transaction_builder
    if request.access_list:
        return builder.new_unsigned_access_list_transaction(
            chain_id=0,
            nonce=nonce,
            gas_price=request.gas_price,
            gas=gas,
            to=request.to,
            value=request.value,
            data=request.data,
            access_list=[(address, list(slots)) for address, slots in request.access_list],
        )
    return builder.create_unsigned_transaction(
        nonce=nonce,
        gas_price=request.gas_price,
        gas=gas,
        to=request.to,
        value=request.value,
        data=request.data,
    )


def call_gas_limit(request: CallRequest, env: BlockEnv, gas_cap: int | None) -> int:
    """The gas a call runs with: its own, or the block gas limit; never above `gas_cap`."""
    gas = request.gas if request.gas is not None else env.gas_limit
    return gas if gas_cap is None else min(gas, gas_cap)


def run_call(
    profile: EvmProfile,
    db: Any,
    state_root: bytes,
    env: BlockEnv,
    request: CallRequest,
    *,
    gas_cap: int | None = None,
    deadline: Deadline | None = None,
    tracer: Tracer | None = None,
) -> CallResult:
    """Execute `request` on the state at `state_root`; nothing is written.

    Gas defaults to the block gas limit and never exceeds `gas_cap` (like geth, a larger
    request is lowered to the cap, not refused). A `tracer` (evm/tracing.py) watches the
    execution (debug_traceCall)."""
    env = call_env(env, request)
    state = _call_state(profile, db, state_root, env, deadline)
    return _run(profile, state, env, request, gas_cap, tracer)


def call_env(env: BlockEnv, request: CallRequest) -> BlockEnv:
    """The block a call runs in: a call without a price runs at base fee 0 (geth's NoBaseFee:
    BASEFEE answers 0), one with a price at the block's base fee."""
    return env if request.gas_price else replace(env, base_fee=0)


def _run(
    profile: EvmProfile,
    state: Any,
    env: BlockEnv,
    request: CallRequest,
    gas_cap: int | None,
    tracer: Tracer | None = None,
) -> CallResult:
    gas = call_gas_limit(request, env, gas_cap)
    nonce = state.get_nonce(request.sender)
    tx = SpoofTransaction(_unsigned(profile, request, nonce, gas), from_=request.sender)
    shortfall = gas_limit_shortfall(gas, tx.intrinsic_gas, request.data)
    if shortfall is not None:
        raise CallError(shortfall)
    if request.gas_price:
        cost = gas * request.gas_price + request.value
        balance = state.get_balance(request.sender)
        if balance < cost:
            raise CallError(
                f"insufficient funds for gas * price + value: have {balance} want {cost}"
            )
    executor = state.get_transaction_executor()
    try:
        with attached(state, tracer) if tracer is not None else nullcontext():
            message = executor.build_evm_message(tx)
            computation = executor.build_computation(message, tx)
            computation = executor.finalize_computation(tx, computation)
    except ValidationError as exc:
        raise CallError(str(exc)) from None
    except InsufficientFunds:
        # py-evm checks the top-level value only when it transfers it; geth's words for it.
        raise CallError("insufficient funds for transfer") from None
    gas_used = profile.vm_class.finalize_gas_used(tx, computation)
    if computation.is_success:
        return CallResult(True, computation.output, gas_used, False, "")
    error = computation.error
    reverted = isinstance(error, Revert)
    output = computation.output if reverted else b""
    return CallResult(False, output, gas_used, reverted, _error_text(error, reverted))


AccessList = tuple[tuple[bytes, tuple[int, ...]], ...]
MAX_ACCESS_LIST_ROUNDS = 5  # geth stops when the list no longer changes; so do we, or here


def create_access_list(
    profile: EvmProfile,
    db: Any,
    state_root: bytes,
    env: BlockEnv,
    request: CallRequest,
    *,
    gas_cap: int | None = None,
    deadline: Deadline | None = None,
) -> tuple[AccessList, CallResult]:
    """eth_createAccessList: the addresses and slots `request` touches, as an EIP-2930 list,
    and the call's result when sent with that list (geth's access-list tracer).

    Left out, as geth leaves them out: the sender, the recipient (or the created contract) and
    the precompiles, which every transaction has warm anyway; also the coinbase, which Shanghai
    warms for every transaction (py-evm warms it before the first opcode, so a recorder cannot
    tell a use of it from the warming). Addresses are sorted, each with its sorted slots. The
    call runs again with the list it found until the list is stable (a list changes gas, so it
    may change the path)."""
    access_list = request.access_list
    result: CallResult | None = None
    env = call_env(env, request)
    for _ in range(MAX_ACCESS_LIST_ROUNDS):
        state = _call_state(profile, db, state_root, env, deadline, recording=True)
        with_list = replace(request, access_list=access_list)
        result = _run(profile, state, env, with_list, gas_cap)
        found = _touched(profile, state, env, request)
        if found == access_list:
            break
        access_list = found
    assert result is not None
    return access_list, result


def _touched(profile: EvmProfile, state: Any, env: BlockEnv, request: CallRequest) -> AccessList:
    account_db: _RecordingStateDB = state._account_db
    created = (
        b""
        if request.to
        else generate_contract_address(Address(request.sender), state.get_nonce(request.sender) - 1)
    )
    left_out = {request.sender, request.to, created, env.coinbase, *profile.precompile_addresses}
    slots: dict[bytes, set[int]] = {
        address: set() for address in account_db.touched_addresses if address not in left_out
    }
    for address, slot in account_db.touched_slots:
        slots.setdefault(address, set()).add(slot)
    return tuple((address, tuple(sorted(slots[address]))) for address in sorted(slots))


def _error_text(error: Exception, reverted: bool) -> str:
    if reverted:
        return "execution reverted"
    name = type(error).__name__
    words = "".join(" " + c.lower() if c.isupper() else c for c in name).strip()
    return words or "execution failed"


def estimate_gas(
    profile: EvmProfile,
    db: Any,
    state_root: bytes,
    env: BlockEnv,
    request: CallRequest,
    *,
    gas_cap: int | None = None,
    deadline: Deadline | None = None,
) -> int:
    """Smallest gas limit at which the call succeeds; EstimateFailed when it never does.
    Never above the block gas limit (a transaction must fit a block) nor `gas_cap`; the
    whole search shares one `deadline`."""
    hi = min(gas_cap or env.gas_limit, env.gas_limit)
    if request.gas is not None:
        hi = min(hi, request.gas)
    allowance: int | None = None  # the gas the sender's balance pays for, at a given price
    if request.gas_price:
        state = profile.state_class(db, execution_context(env), state_root)
        balance = state.get_balance(request.sender)
        if request.value > balance:
            raise CallError("insufficient funds for transfer")
        allowance = (balance - request.value) // request.gas_price
        hi = min(hi, allowance)

    def attempt(gas: int) -> CallResult | None:
        try:
            return run_call(
                profile, db, state_root, env, replace(request, gas=gas), deadline=deadline
            )
        except CallError:
            return None

    try:
        at_cap = run_call(profile, db, state_root, env, replace(request, gas=hi), deadline=deadline)
    except CallError:
        if hi == allowance:  # the balance, not the caller, set the limit (geth's words)
            raise CallError(f"gas required exceeds allowance ({hi})") from None
        raise
    if not at_cap.success:
        raise EstimateFailed(at_cap)
    lo = at_cap.gas_used - 1
    # Most calls succeed just above what they used (refunds, the 63/64 rule): probe there
    # first so the binary search usually runs over a small range.
    probe = min(hi, at_cap.gas_used * 64 // 63 + 2300)
    result = attempt(probe)
    if result is not None and result.success:
        hi = probe
    else:
        lo = probe
    while hi - lo > 1:
        mid = (lo + hi) // 2
        result = attempt(mid)
        if result is not None and result.success:
            hi = mid
        else:
            lo = mid
    return hi
