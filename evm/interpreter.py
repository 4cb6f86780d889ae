"""A cheaper interpreter loop for py-evm computations, with the stock loop's exact semantics.

Bird's-eye view
---------------
py-evm runs a frame as: a CodeStream generator yields each byte, the byte is looked up in the
class's opcode table, the opcode object charges its gas through `computation.consume_gas` ->
`GasMeter.consume_gas`, then its logic pops and pushes through validating `Stack` methods. A
JUMP re-derives, by looking back up to 32 bytes recursively, whether its target lies inside
PUSH data. All of that is per opcode, in Python.

`FastInterpreter` (a mixin for a computation class, evm/profiles.py) replaces only the loop of
`apply_computation`; everything around it (message handling, child calls, precompiles, errors,
gas refunds, the computation's attributes) is py-evm's own:

- `CodeAnalysis` (cached per code bytes): the valid jump destinations (one forward scan) and
  every PUSH's immediate decoded to an int once;
- `_plan(cls)` (cached per computation class): the 256 table entries as steps (kind, function,
  constant gas).
  An entry whose logic is a stock py-evm function we have a faster equal for (PUSHn, DUPn,
  SWAPn, POP, JUMP/JUMPI/JUMPDEST, ADD, SUB, LT, GT, EQ, AND, OR, SHL, SHR inline in the
  loop; ISZERO, MLOAD, MSTORE, KECCAK256, CALLDATALOAD, CALLDATASIZE, CALLVALUE, CALLER as
  functions) gets that; another plain opcode keeps its logic with its gas charged by the
  loop; anything else (CALL/CREATE-style opcode objects with dynamic gas, the invalid
  opcode) is called as the stock loop calls it;
- the loop charges a constant gas cost inline (the same OutOfGas, same message, at the same
  point: before the opcode's logic; through `consume_gas` when the meter is not a plain
  GasMeter: eth_call's deadline meter ticks on every charge) and the fast opcodes work on
  the stack's list directly with the stack's own bounds checks (InsufficientStack,
  FullStack) but without re-validating the type of every value they push (ints they
  computed from 256-bit words, masked).

Equality with the stock loop is what tests/unit/test_fast_interpreter.py checks, on random
bytecode and on the contracts of the suite (gas, output, logs, state root, error kind).

Tracers: a traced state (evm/tracing.py `attached`) wraps the opcode table and the gas meter
of its computations; such a frame runs the stock loop, untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth.abc import ComputationAPI, MessageAPI, StateAPI, TransactionContextAPI
from eth.constants import GAS_SHA3WORD
from eth.exceptions import (
    FullStack,
    Halt,
    InsufficientStack,
    InvalidInstruction,
    InvalidJumpDestination,
    OutOfGas,
)
from eth.vm import opcode as opcode_module
from eth.vm.computation import NO_RESULT, BaseComputation, memory_gas_cost
from eth.vm.gas_meter import GasMeter
from eth.vm.logic import (
    arithmetic,
    comparison,
    context,
    duplication,
    flow,
    memory,
    sha3,
    stack,
    swap,
)
from eth.vm.logic.invalid import InvalidOpcode
from eth_hash.auto import keccak

UINT_256_MAX = 2**256 - 1
JUMPDEST = 0x5B
PUSH1, PUSH32 = 0x60, 0x7F
STACK_LIMIT = 1024
CODE_CACHE_SIZE = 4096

Logic = Callable[[Any], None]


# --- code analysis -----------------------------------------------------------------------------


class CodeAnalysis:
    """What a frame needs to know about its code before running it, computed once per code."""

    __slots__ = ("jumpdests", "immediates")

    def __init__(self, code: bytes) -> None:
        jumpdests = set()
        # immediates[i]: the int a PUSH whose data starts at i pushes (zero-padded past the end,
        # as py-evm's push_XX pads); None where no PUSH data starts.
        immediates: list[int | None] = [None] * (len(code) + 1)
        position, length = 0, len(code)
        while position < length:
            byte = code[position]
            if byte == JUMPDEST:
                jumpdests.add(position)
            elif PUSH1 <= byte <= PUSH32:
                size = byte - PUSH1 + 1
                data = code[position + 1 : position + 1 + size]
                immediates[position + 1] = int.from_bytes(data, "big") << (8 * (size - len(data)))
                position += size
            position += 1
        self.jumpdests = frozenset(jumpdests)
        self.immediates = immediates


_analyses: dict[bytes, CodeAnalysis] = {}


def analysis_of(code: bytes) -> CodeAnalysis:
    """The cached analysis of `code` (bytes hash their value once, so a hit is a dict lookup)."""
    found = _analyses.get(code)
    if found is None:
        if len(_analyses) >= CODE_CACHE_SIZE:
            _analyses.clear()  # rare (many distinct contracts): start over, stay bounded
        found = _analyses[code] = CodeAnalysis(code)
    return found


# --- stack helpers -----------------------------------------------------------------------------


def _underflow(wanted: int, values: list[Any]) -> InsufficientStack:
    if wanted == 1 and not values:
        return InsufficientStack("Wanted 1 stack item, had none")
    return InsufficientStack(f"Wanted {wanted} stack items, only had {len(values)}")


def _int(value: Any) -> int:
    return value if value.__class__ is int else int.from_bytes(value, "big")


def _pop2(values: list[Any]) -> tuple[int, int]:
    """(top, second) as ints, or InsufficientStack before popping anything (pop_ints(2))."""
    if len(values) < 2:
        raise _underflow(2, values)
    top = values.pop()
    second = values.pop()
    if top.__class__ is not int:
        top = int.from_bytes(top, "big")
    if second.__class__ is not int:
        second = int.from_bytes(second, "big")
    return top, second


def _pop1(values: list[Any]) -> int:
    if not values:
        raise _underflow(1, values)
    top = values.pop()
    return top if top.__class__ is int else int.from_bytes(top, "big")


# --- fast opcodes (same results and errors as the stock logic they stand for) --------------------


def _add(a: int, b: int) -> int:
    return (a + b) & UINT_256_MAX


def _sub(a: int, b: int) -> int:
    return (a - b) & UINT_256_MAX


def _lt(a: int, b: int) -> int:
    return 1 if a < b else 0


def _gt(a: int, b: int) -> int:
    return 1 if a > b else 0


def _eq(a: int, b: int) -> int:
    return 1 if a == b else 0


def _and(a: int, b: int) -> int:
    return a & b


def _or(a: int, b: int) -> int:
    return a | b


def _shl(shift: int, value: int) -> int:
    return 0 if shift >= 256 else (value << shift) & UINT_256_MAX


def _shr(shift: int, value: int) -> int:
    return 0 if shift >= 256 else value >> shift


def _iszero(c: Any) -> None:
    values = c._stack.values
    values.append(1 if _pop1(values) == 0 else 0)


def _callvalue(c: Any) -> None:
    _push_value(c, c.msg.value)


def _calldataload(c: Any) -> None:
    values = c._stack.values
    start = _pop1(values)
    data = c._calldata
    if data is None:
        data = c._calldata = c.msg.data_as_bytes
    values.append(int.from_bytes(data[start : start + 32].ljust(32, b"\x00"), "big"))


def _expand(c: Any, start: int, size: int) -> None:
    """BaseComputation.extend_memory for size > 0: same gas, same OutOfGas, same growth."""
    mem = c._memory
    before = (len(mem._bytes) + 31) // 32 * 32
    after = (start + size + 31) // 32 * 32
    if after > before:
        fee = memory_gas_cost(after) - memory_gas_cost(before)
        meter = c._gas_meter
        if fee > meter.gas_remaining:
            raise OutOfGas(
                f"Out of gas: Needed {fee} - Remaining {meter.gas_remaining} - Reason: "
                f"Expanding memory {before} -> {after}"
            )
        meter.gas_remaining -= fee
        mem.extend(start, size)


def _mstore(c: Any) -> None:
    values = c._stack.values
    start, value = _pop2(values)
    _expand(c, start, 32)
    c._memory._bytes[start : start + 32] = value.to_bytes(32, "big")


def _mload(c: Any) -> None:
    values = c._stack.values
    start = _pop1(values)
    _expand(c, start, 32)
    values.append(int.from_bytes(c._memory._bytes[start : start + 32], "big"))


def _sha3(c: Any) -> None:
    values = c._stack.values
    start, size = _pop2(values)
    if size:
        _expand(c, start, size)
        cost = GAS_SHA3WORD * ((size + 31) // 32)
        meter = c._gas_meter
        if cost > meter.gas_remaining:
            raise OutOfGas(
                f"Out of gas: Needed {cost} - Remaining {meter.gas_remaining} - Reason: "
                "SHA3: word gas cost"
            )
        meter.gas_remaining -= cost
        data = bytes(c._memory._bytes[start : start + size])
    else:
        data = b""
    values.append(int.from_bytes(keccak(data), "big"))


def _push_value(c: Any, value: Any) -> None:
    values = c._stack.values
    if len(values) >= STACK_LIMIT:
        raise FullStack("Stack limit reached")
    values.append(value)


def _calldatasize(c: Any) -> None:
    _push_value(c, len(c.msg.data))


def _caller(c: Any) -> None:
    _push_value(c, c.msg.sender)


FAST_LOGIC: dict[Logic, Logic] = {
    comparison.iszero: _iszero,
    context.callvalue: _callvalue,
    context.calldatasize: _calldatasize,
    context.caller: _caller,
    sha3.sha3: _sha3,
    context.calldataload: _calldataload,
    memory.mstore: _mstore,
    memory.mload: _mload,
}

# How the loop runs a byte: call an opcode object as the stock loop does (it charges its own
# gas), call a logic function after charging the constant gas, or one of the inlined kinds.
OBJECT, LOGIC, BINARY, PUSH, DUP, SWAP, NOP, JUMP, JUMPI, POP = range(10)

# Stock 2 -> 1 logic functions the loop runs inline: f(top, second) on ints.
BINARY_LOGIC: dict[Logic, Callable[[int, int], int]] = {
    arithmetic.add: _add,
    arithmetic.sub: _sub,
    arithmetic.shl: _shl,
    arithmetic.shr: _shr,
    comparison.lt: _lt,
    comparison.gt: _gt,
    comparison.eq: _eq,
    comparison.and_op: _and,
    comparison.or_op: _or,
}

# Stock logic functions the loop runs inline: kind and argument (PUSH size, DUP/SWAP depth).
INLINE: dict[Logic, tuple[int, int]] = {
    **{getattr(stack, f"push{n}"): (PUSH, n) for n in range(0, 33)},
    **{getattr(duplication, f"dup{n}"): (DUP, n) for n in range(1, 17)},
    **{getattr(swap, f"swap{n}"): (SWAP, n) for n in range(1, 17)},
    flow.jumpdest: (NOP, 0),
    flow.jump: (JUMP, 0),
    flow.jumpi: (JUMPI, 0),
    stack.pop: (POP, 0),
}

# (kind, function or opcode object, constant gas, argument, mnemonic)
Step = tuple[int, Callable[..., None], int, int, str]

_plans: dict[type, tuple[Step, ...]] = {}


def _plan(cls: type) -> tuple[Step, ...]:
    """The 256 steps of a computation class's opcode table (cached per class)."""
    found = _plans.get(cls)
    if found is None:
        found = _plans[cls] = _build_plan(cls)
    return found


def _build_plan(cls: type) -> tuple[Step, ...]:
    steps: list[Step] = []
    table = cls.opcodes  # type: ignore[attr-defined]
    for byte in range(256):
        opcode = table.get(byte)
        if opcode is None:
            steps.append((OBJECT, InvalidOpcode(byte), 0, 0, "INVALID"))
        elif type(opcode) is opcode_module._FastOpcode:
            logic = opcode.logic_fn
            kind, argument = INLINE.get(logic, (LOGIC, 0))
            fn: Callable[..., Any] = FAST_LOGIC.get(logic, logic)
            if logic in BINARY_LOGIC:
                kind, fn = BINARY, BINARY_LOGIC[logic]
            steps.append((kind, fn, opcode.gas_cost, argument, opcode.mnemonic))
        else:
            steps.append((OBJECT, opcode, 0, 0, getattr(opcode, "mnemonic", "")))
    return tuple(steps)


def _bad_jump(code: Any, destination: int) -> Exception:
    """py-evm's error for a jump to a position that is not a valid JUMPDEST."""
    code.program_counter = destination
    if code.peek() != JUMPDEST:
        return InvalidJumpDestination("Invalid Jump Destination")
    return InvalidInstruction("Jump resulted in invalid instruction")


def run_frame(computation: Any) -> None:
    """The stock loop of `apply_computation` (after its precompile check), cheaper.

    The program counter lives in a local and is written to `code.program_counter` around every
    call out (opcodes read and move it: PC, CODECOPY's callers, the tracer's call types)."""
    steps = _plan(type(computation))
    code = computation.code
    raw = code._raw_code_bytes
    length = len(raw)
    meter = computation._gas_meter
    # A gas meter of another class (eth_call's deadline meter, evm/call.py) is charged through
    # its consume_gas for every opcode, as the stock loop does; a plain one inline.
    metered = type(meter) is not GasMeter or "consume_gas" in vars(meter)
    analysis = computation._analysis = analysis_of(raw)
    immediates = analysis.immediates
    jumpdests = analysis.jumpdests
    values = computation._stack.values
    computation._calldata = None
    pc = code.program_counter
    try:
        while True:
            if pc < length:
                kind, fn, gas, argument, mnemonic = steps[raw[pc]]
                pc += 1
            else:  # past the end: the stream's implicit STOP (the pc does not move)
                kind, fn, gas, argument, mnemonic = steps[0]
            if kind == OBJECT:
                code.program_counter = pc
                fn(computation=computation)
                pc = code.program_counter
                continue
            if metered:
                meter.consume_gas(gas, mnemonic)
            elif gas:
                remaining = meter.gas_remaining
                if gas > remaining:
                    raise OutOfGas(
                        f"Out of gas: Needed {gas} - Remaining {remaining} - Reason: {mnemonic}"
                    )
                meter.gas_remaining = remaining - gas
            if kind == PUSH:
                if len(values) >= STACK_LIMIT:
                    raise FullStack("Stack limit reached")
                if argument:
                    values.append(immediates[pc])
                    pc += argument
                else:
                    values.append(0)
            elif kind == LOGIC:
                code.program_counter = pc
                fn(computation)
                pc = code.program_counter
            elif kind == BINARY:
                if len(values) < 2:
                    raise _underflow(2, values)
                top = values.pop()
                second = values.pop()
                if top.__class__ is not int:
                    top = int.from_bytes(top, "big")
                if second.__class__ is not int:
                    second = int.from_bytes(second, "big")
                values.append(fn(top, second))
            elif kind == DUP:
                if len(values) >= STACK_LIMIT:
                    raise FullStack("Stack limit reached")
                if len(values) < argument:
                    raise InsufficientStack(f"Insufficient stack items for DUP{argument}")
                values.append(values[-argument])
            elif kind == SWAP:
                if len(values) <= argument:
                    raise InsufficientStack(f"Insufficient stack items for SWAP{argument}")
                index = -argument - 1
                values[-1], values[index] = values[index], values[-1]
            elif kind == NOP:
                pass
            elif kind == JUMPI:
                destination, condition = _pop2(values)
                if condition:
                    if destination not in jumpdests:
                        raise _bad_jump(code, destination)
                    pc = destination
            elif kind == JUMP:
                destination = _pop1(values)
                if destination not in jumpdests:
                    raise _bad_jump(code, destination)
                pc = destination
            else:  # POP
                if not values:
                    raise _underflow(1, values)
                values.pop()
    except Halt:
        pass


class FastInterpreter:
    """Mixin for a py-evm computation class: `apply_computation` with `run_frame` as its loop.

    The rest is BaseComputation.apply_computation verbatim (contracts_created bookkeeping,
    initcode gas, precompiles), so messages and child calls behave as py-evm's."""

    @classmethod
    def apply_computation(
        cls,
        state: StateAPI,
        message: MessageAPI,
        transaction_context: TransactionContextAPI,
        parent_computation: ComputationAPI | None = None,
    ) -> ComputationAPI:
        if getattr(state, "tracer", None) is not None or BaseComputation.logger.show_debug2:
            # Traced (evm/tracing.py) or py-evm debug logging: the stock loop, untouched.
            return super().apply_computation(  # type: ignore[misc,no-any-return]
                state, message, transaction_context, parent_computation
            )
        base: Any = cls
        with base(state, message, transaction_context) as computation:
            if computation.is_origin_computation:
                computation.contracts_created = []
                if message.is_create:
                    base.consume_initcode_gas_cost(computation)
            if parent_computation is not None:
                computation.contracts_created = parent_computation.contracts_created
            if message.is_create:
                computation.contracts_created.append(message.storage_address)
            precompile = computation.precompiles.get(message.code_address, NO_RESULT)
            if precompile is not NO_RESULT:
                if not message.is_delegation:
                    precompile(computation)
                return computation  # type: ignore[no-any-return]
            run_frame(computation)
        return computation  # type: ignore[no-any-return]


__all__ = ["CodeAnalysis", "FastInterpreter", "analysis_of", "run_frame"]
