"""Read-only execution: `eth_call` and `eth_estimateGas` against any stored state.

A call runs a message through py-evm's transaction executor on a throwaway `StateDB` (its writes
never reach the database), skipping the signature and nonce checks a real transaction needs.
The sender pays gas only when a gas price is given (like geth), so plain calls need no balance.
`estimate_gas` finds the smallest gas limit that does not fail, by binary search above the gas
the call used at the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from eth.exceptions import InsufficientFunds, Revert
from eth.vm.spoof import SpoofTransaction
from eth_abi import decode as abi_decode
from eth_utils import ValidationError

from evm.executor import BlockEnv, execution_context
from evm.profiles import EvmProfile

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


class CallError(Exception):
    """The call cannot run at all (bad input, not enough balance for the given gas price)."""


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


def run_call(
    profile: EvmProfile, db: Any, state_root: bytes, env: BlockEnv, request: CallRequest
) -> CallResult:
    """Execute `request` on the state at `state_root`; nothing is written."""
    state = profile.state_class(db, execution_context(env), state_root)
    gas = request.gas if request.gas is not None else env.gas_limit
    nonce = state.get_nonce(request.sender)
    tx = SpoofTransaction(_unsigned(profile, request, nonce, gas), from_=request.sender)
    if tx.intrinsic_gas > gas:
        raise CallError(f"intrinsic gas too low: have {gas}, want {tx.intrinsic_gas}")
    if request.gas_price:
        cost = gas * request.gas_price + request.value
        balance = state.get_balance(request.sender)
        if balance < cost:
            raise CallError(
                f"insufficient funds for gas * price + value: have {balance} want {cost}"
            )
    executor = state.get_transaction_executor()
    try:
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
    cap: int | None = None,
) -> int:
    """Smallest gas limit at which the call succeeds; EstimateFailed when it never does."""
    hi = min(cap or env.gas_limit, env.gas_limit)
    if request.gas is not None:
        hi = min(hi, request.gas)
    if request.gas_price:
        state = profile.state_class(db, execution_context(env), state_root)
        balance = state.get_balance(request.sender)
        affordable = max(0, balance - request.value) // request.gas_price
        hi = min(hi, affordable)

    def attempt(gas: int) -> CallResult | None:
        try:
            return run_call(profile, db, state_root, env, replace(request, gas=gas))
        except CallError:
            return None

    at_cap = run_call(profile, db, state_root, env, replace(request, gas=hi))
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
