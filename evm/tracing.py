"""Execution tracers (debug_trace*, trace_transaction): py-evm hooks in, plain data out.

Bird's-eye view
---------------
A tracer watches one execution and answers frozen records: `CallFrame`s (geth's callTracer:
one per message, nested as the calls were) and, for the struct logger, one `StructStep` per
opcode (geth's default tracer: pc, op, gas, cost, depth, stack, and optionally memory, storage
and return data). The RPC layer (rpc/debug.py) turns them into geth's JSON.

How it hooks in without slowing blocks down. Nothing in the block pipeline changes: `attached`
sets, on one state *instance*, a `computation_class` that is a subclass of the state's own
(`_traced_class`), and the tracer beside it; py-evm reads `state.computation_class` for every
message of a transaction, so every frame of the traced transaction runs through the subclass,
and removing the instance attribute restores the shared class. The subclass

- wraps `apply_message` / `apply_create_message` to open and close a frame (the call type is
  the opcode the parent is executing: CALL, STATICCALL, ..., CREATE2; precompile calls are
  frames like any other, as geth shows them);
- counts the gas each frame's meter is charged, so a step's cost is what the opcode was
  charged, as geth's `cost` (a CALL's includes the gas it passes on, never the gas returned);
- when the tracer wants opcodes (the struct logger), has an opcode table whose 256 entries
  each record a step and then run the profile's own opcode (or py-evm's invalid opcode), so
  the CVM opcodes (SADD, RAND, ENI, ...) appear under the names of the profile's table.

Budget: a trace can be far larger than its transaction (a step per opcode, memory copies), so
every tracer charges a lower bound of each record's JSON size to a `charge` callback while it
runs; the caller's callback raises to stop the execution before a giant answer is built. The
exception is not a `VMError`, so py-evm does not swallow it: it leaves the execution.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from eth.abc import ComputationAPI, MessageAPI, OpcodeAPI
from eth.exceptions import (
    ContractCreationCollision,
    FullStack,
    Halt,
    InsufficientFunds,
    InsufficientStack,
    InvalidInstruction,
    InvalidJumpDestination,
    OutOfBoundsRead,
    OutOfGas,
    ReservedBytesInCode,
    Revert,
    StackDepthLimit,
    VMError,
    WriteProtection,
)
from eth.vm.logic.invalid import InvalidOpcode
from eth_typing import Address

__all__ = [
    "CallFrame",
    "CallTracer",
    "StructLogConfig",
    "StructLogger",
    "StructStep",
    "Tracer",
    "attached",
    "opcode_name",
    "vm_error_text",
]

# Names that differ between py-evm's mnemonics and geth's (what debuggers expect).
_GETH_NAMES = {"SHA3": "KECCAK256"}
# Lower bounds of JSON sizes, in bytes (the keys and the shortest values every record has).
_STEP_FIXED = 50  # {"pc":0,"op":"STOP","gas":0,"gasCost":0,"depth":1}
_STACK_ITEM = 6  # "0x0",
_MEMORY_WORD = 67  # 64 hex digits, quotes, comma
_STORAGE_ENTRY = 134  # two 64-hex-digit strings, quotes, colon, comma
_FRAME_FIXED = 150  # type, from, gas, gasUsed, input
_STATIC_TYPES = ("STATICCALL", "DELEGATECALL")  # frames without a value of their own


def opcode_name(mnemonic: str) -> str:
    return _GETH_NAMES.get(mnemonic, mnemonic)


def _undefined_name(byte: int) -> str:
    return "INVALID" if byte == 0xFE else f"opcode 0x{byte:x} not defined"


_INVALID_BYTE = re.compile(r"opcode 0x([0-9a-f]+)")


def vm_error_text(error: BaseException) -> str:
    """geth's words for an execution error (what debuggers and explorers match on); the CVM's
    own errors keep their messages."""
    text = str(error)
    if isinstance(error, Revert):
        return "execution reverted"
    if isinstance(error, OutOfGas):
        if "EIP170" in text:
            return "max code size exceeded"
        if "initcode" in text.lower():
            return "max initcode size exceeded"
        return "out of gas"
    if isinstance(error, InvalidInstruction):
        found = _INVALID_BYTE.search(text)
        return "invalid opcode: " + (_undefined_name(int(found.group(1), 16)) if found else text)
    for kind, words in _ERROR_WORDS:
        if isinstance(error, kind):
            return words
    return text or type(error).__name__


_ERROR_WORDS: tuple[tuple[type[VMError], str], ...] = (
    (InsufficientStack, "stack underflow"),
    (FullStack, "stack limit reached 1024"),
    (InvalidJumpDestination, "invalid jump destination"),
    (WriteProtection, "write protection"),
    (StackDepthLimit, "max call depth exceeded"),
    (OutOfBoundsRead, "return data out of bounds"),
    (ContractCreationCollision, "contract address collision"),
    (InsufficientFunds, "insufficient balance for transfer"),
    (ReservedBytesInCode, "invalid code: must not begin with 0xef"),
)


# --- records out -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StructStep:
    """One opcode about to run: the state before it, and what it was charged."""

    pc: int
    op: str
    gas: int  # gas left before the opcode
    gas_cost: int
    depth: int  # 1 for the transaction's own frame
    refund: int  # the transaction's refund counter before the opcode
    stack: tuple[int, ...] | None  # bottom first; None when disabled
    memory: bytes | None  # None unless enabled
    storage: tuple[tuple[int, int], ...] | None  # the contract's slots seen so far (SLOAD/SSTORE)
    return_data: bytes | None  # the last call's return data, when enabled
    error: str | None  # why the frame failed here (any error but a revert)


@dataclass(frozen=True, slots=True)
class CallFrame:
    """One message (geth's callTracer frame); `calls` are the messages it sent, in order."""

    type: str  # CALL, STATICCALL, DELEGATECALL, CALLCODE, CREATE, CREATE2
    sender: bytes
    to: bytes | None  # None for a failed creation
    value: int | None  # None for STATICCALL and DELEGATECALL
    gas: int
    gas_used: int
    input: bytes
    output: bytes
    error: str | None
    revert_reason: str | None
    calls: tuple[CallFrame, ...]


@dataclass(frozen=True)
class StructLogConfig:
    """geth's struct logger options."""

    disable_stack: bool = False
    disable_storage: bool = False
    enable_memory: bool = False
    enable_return_data: bool = False
    limit: int = 0  # most steps recorded; 0: no limit (the budget still applies)


# --- tracers -----------------------------------------------------------------------------------


@dataclass
class _Frame:
    """A frame while it runs (mutable); `frozen()` makes the record."""

    type: str
    sender: bytes
    to: bytes
    value: int | None
    gas: int
    input: bytes
    is_create: bool
    computation: ComputationAPI | None = None
    settled_refund: int = 0  # refunds of the children that returned successfully
    gas_used: int = 0
    output: bytes = b""
    error: BaseException | None = None
    calls: list[_Frame] = field(default_factory=list)

    def frozen(self, decode_reason: Callable[[bytes], str | None]) -> CallFrame:
        failed = self.error is not None
        reverted = isinstance(self.error, Revert)
        return CallFrame(
            type=self.type,
            sender=self.sender,
            to=None if failed and self.is_create else self.to,
            value=None if self.type in _STATIC_TYPES else self.value,
            gas=self.gas,
            gas_used=self.gas_used,
            input=self.input,
            output=self.output if not failed or reverted else b"",
            error=None if self.error is None else vm_error_text(self.error),
            revert_reason=decode_reason(self.output) if reverted and self.output else None,
            calls=tuple(call.frozen(decode_reason) for call in self.calls),
        )


def _no_budget(_size: int) -> None:
    return None


class CallTracer:
    """Records the frames of one execution (geth's callTracer)."""

    wants_opcodes = False

    def __init__(
        self, *, only_top_call: bool = False, charge: Callable[[int], None] = _no_budget
    ) -> None:
        self.only_top_call = only_top_call
        self.charge = charge
        self.root: _Frame | None = None
        self._stack: list[_Frame] = []
        self._create_pending: MessageAPI | None = None

    # -- hooks (called by the traced computation class) ------------------------------------
    def enter(self, message: MessageAPI, parent: ComputationAPI | None) -> None:
        frame = _Frame(
            type=_call_type(message, parent),
            sender=bytes(message.sender),
            to=bytes(message.storage_address),
            value=message.value,
            gas=message.gas,
            # A creation's input is its init code (the message runs it; its data is empty).
            input=bytes(message.code if message.is_create else message.data_as_bytes),
            is_create=message.is_create,
        )
        if self._stack:
            if not self.only_top_call:
                self._stack[-1].calls.append(frame)
        else:
            self.root = frame
        self._stack.append(frame)
        self.charge(_FRAME_FIXED + 2 * len(frame.input))

    def started(self, computation: ComputationAPI) -> None:
        if self._stack and self._stack[-1].computation is None:
            self._stack[-1].computation = computation

    def exit(self, computation: ComputationAPI) -> None:
        frame = self._stack.pop()
        frame.gas_used = computation.get_gas_used()
        frame.error = computation.error if computation.is_error else None
        frame.output = bytes(computation.output)
        if frame.error is None and self._stack:
            self._stack[-1].settled_refund += computation.get_gas_refund()
        self.charge(2 * len(frame.output))

    def expect_create(self, message: MessageAPI) -> None:
        self._create_pending = message

    def is_inner_of_create(self, message: MessageAPI) -> bool:
        """apply_create_message runs apply_message on the same message: one frame, not two."""
        if self._create_pending is message:
            self._create_pending = None
            return True
        return False

    def run_opcode(
        self, computation: ComputationAPI, byte: int, name: str, opcode: OpcodeAPI
    ) -> None:
        opcode(computation=computation)

    # -- results -----------------------------------------------------------------------------
    def frames(self, decode_reason: Callable[[bytes], str | None]) -> CallFrame | None:
        """The transaction's frame with its calls, or None when no message ran."""
        return None if self.root is None else self.root.frozen(decode_reason)

    def refund(self) -> int:
        """The transaction's refund counter now: what the running frames earned so far, with
        the refunds of their children that returned (a failed child's are dropped, as geth's
        journal drops them)."""
        total = 0
        for frame in self._stack:
            meter = frame.computation.get_gas_meter() if frame.computation is not None else None
            total += frame.settled_refund + (meter.gas_refunded if meter is not None else 0)
        return total


class StructLogger(CallTracer):
    """Records every opcode as a `StructStep` (geth's default tracer), frames too."""

    wants_opcodes = True

    def __init__(
        self,
        config: StructLogConfig = StructLogConfig(),
        *,
        charge: Callable[[int], None] = _no_budget,
    ) -> None:
        super().__init__(charge=charge)
        self.config = config
        self._steps: list[StructStep | None] = []
        self._storage: dict[bytes, dict[int, int]] = {}

    def run_opcode(
        self, computation: ComputationAPI, byte: int, name: str, opcode: OpcodeAPI
    ) -> None:
        limit = self.config.limit
        code = computation.code
        if (limit and len(self._steps) >= limit) or not len(code):
            # geth runs no interpreter for an account without code: no step for py-evm's STOP.
            opcode(computation=computation)
            return
        # The state before the opcode; the step is placed now so the steps of the calls it
        # makes come after it, and completed when its cost is known.
        gas = computation.get_gas_meter().gas_remaining
        charged_before = _charged(computation)
        index = len(self._steps)
        self._steps.append(None)
        before = self._before(computation, byte)
        try:
            opcode(computation=computation)
        except (VMError, Halt) as exc:
            # A REVERT is how its frame ends, not an error of its step (geth).
            failed = isinstance(exc, VMError) and not isinstance(exc, Revert)
            error = vm_error_text(exc) if failed else None
            self._complete(index, computation, name, gas, charged_before, before, error)
            raise
        computation._trace_pc = code.program_counter  # type: ignore[attr-defined]
        self._complete(index, computation, name, gas, charged_before, before, None)

    def _complete(
        self,
        index: int,
        computation: ComputationAPI,
        name: str,
        gas: int,
        charged_before: int,
        before: _Before,
        error: str | None,
    ) -> None:
        step = StructStep(
            pc=before.pc,
            op=name,
            gas=gas,
            gas_cost=_charged(computation) - charged_before,
            depth=computation.msg.depth + 1,
            refund=before.refund,
            stack=before.stack,
            memory=before.memory,
            storage=before.storage,
            return_data=before.return_data,
            error=error,
        )
        self._steps[index] = step
        self.charge(_step_json_bytes(step))

    def _before(self, computation: ComputationAPI, byte: int) -> _Before:
        config = self.config
        values = computation._stack.values  # type: ignore[attr-defined]
        stack = tuple(v if isinstance(v, int) else int.from_bytes(v, "big") for v in values)
        storage = None
        if not config.disable_storage and byte in (_SLOAD, _SSTORE):
            storage = self._storage_seen(computation, byte, stack)
        counter = computation.code.program_counter
        # The stream yields the opcode at `counter - 1` after moving past it, except the STOP
        # it yields at the end of the code without moving (geth's STOP at pc = code length).
        implicit_stop = counter == getattr(computation, "_trace_pc", None)
        return _Before(
            pc=counter if implicit_stop else counter - 1,
            refund=self.refund(),
            stack=None if config.disable_stack else stack,
            memory=bytes(computation._memory._bytes) if config.enable_memory else None,  # type: ignore[attr-defined]
            storage=storage,
            return_data=bytes(computation.return_data) if config.enable_return_data else None,
        )

    def _storage_seen(
        self, computation: ComputationAPI, byte: int, stack: tuple[int, ...]
    ) -> tuple[tuple[int, int], ...] | None:
        """geth's per-contract map of the slots SLOAD read and SSTORE wrote so far."""
        address = bytes(computation.msg.storage_address)
        seen = self._storage.setdefault(address, {})
        if byte == _SLOAD and len(stack) >= 1:
            seen[stack[-1]] = computation.state.get_storage(Address(address), stack[-1])
        elif byte == _SSTORE and len(stack) >= 2:
            seen[stack[-1]] = stack[-2]
        else:
            return None
        return tuple(sorted(seen.items()))

    @property
    def steps(self) -> tuple[StructStep, ...]:
        return tuple(step for step in self._steps if step is not None)


@dataclass(frozen=True, slots=True)
class _Before:
    pc: int
    refund: int
    stack: tuple[int, ...] | None
    memory: bytes | None
    storage: tuple[tuple[int, int], ...] | None
    return_data: bytes | None


_SLOAD = 0x54
_SSTORE = 0x55


def _step_json_bytes(step: StructStep) -> int:
    size = _STEP_FIXED
    if step.stack is not None:
        size += _STACK_ITEM * len(step.stack)
    if step.memory is not None:
        size += _MEMORY_WORD * (len(step.memory) // 32)
    if step.storage is not None:
        size += _STORAGE_ENTRY * len(step.storage)
    if step.return_data:
        size += 2 * len(step.return_data)
    return size


def _charged(computation: ComputationAPI) -> int:
    return int(getattr(computation, "_trace_charged", 0))


def _call_type(message: MessageAPI, parent: ComputationAPI | None) -> str:
    """The opcode that sent `message`: the parent's current opcode, or the transaction's."""
    if parent is None:
        return "CREATE" if message.is_create else "CALL"
    code = parent.code
    byte = code[code.program_counter - 1]
    fn = parent.opcodes.get(byte)
    mnemonic = getattr(fn, "mnemonic", None) if fn is not None else None
    return opcode_name(mnemonic) if mnemonic else ("CREATE" if message.is_create else "CALL")


class Tracer(Protocol):
    """What the traced computation class calls (CallTracer and StructLogger)."""

    wants_opcodes: bool

    def enter(self, message: MessageAPI, parent: ComputationAPI | None) -> None: ...
    def started(self, computation: ComputationAPI) -> None: ...
    def exit(self, computation: ComputationAPI) -> None: ...
    def expect_create(self, message: MessageAPI) -> None: ...
    def is_inner_of_create(self, message: MessageAPI) -> bool: ...
    def run_opcode(
        self, computation: ComputationAPI, byte: int, name: str, opcode: OpcodeAPI
    ) -> None: ...


# --- the hook: a computation subclass on one state instance ----------------------------------


@contextmanager
def attached(state: Any, tracer: Tracer) -> Iterator[None]:
    """Trace every message `state` runs inside the block with `tracer`."""
    had_own = "computation_class" in vars(state)
    previous = state.computation_class
    state.computation_class = _traced_class(previous, tracer.wants_opcodes)
    state.tracer = tracer
    try:
        yield
    finally:
        if had_own:
            state.computation_class = previous
        else:
            del state.computation_class
        del state.tracer


class _TracedOpcode:
    """One entry of a traced opcode table: the step goes to the tracer, which runs `opcode`."""

    __slots__ = ("byte", "mnemonic", "name", "opcode")

    def __init__(self, byte: int, opcode: OpcodeAPI, name: str) -> None:
        self.byte = byte
        self.opcode = opcode
        self.name = name
        self.mnemonic = getattr(opcode, "mnemonic", name)

    def __call__(self, computation: ComputationAPI) -> None:
        tracer: Tracer = computation.state.tracer  # type: ignore[attr-defined]
        tracer.run_opcode(computation, self.byte, self.name, self.opcode)


def _traced_table(opcodes: dict[int, OpcodeAPI]) -> dict[int, OpcodeAPI]:
    table: dict[int, OpcodeAPI] = {}
    for byte in range(256):
        opcode = opcodes.get(byte)
        if opcode is None:
            table[byte] = _TracedOpcode(byte, InvalidOpcode(byte), _undefined_name(byte))  # type: ignore[assignment]
        else:
            mnemonic = getattr(opcode, "mnemonic", None) or opcode.__wrapped__.mnemonic  # type: ignore[attr-defined]
            table[byte] = _TracedOpcode(byte, opcode, opcode_name(mnemonic))  # type: ignore[assignment]
    return table


@cache
def _traced_class(base: Any, with_opcodes: bool) -> Any:
    class Traced(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._trace_charged = 0
            meter = self._gas_meter
            consume = meter.consume_gas

            def counting(amount: int, reason: str) -> None:
                # Counted before the meter checks, as geth's cost: an out-of-gas step shows
                # the charge it could not pay.
                self._trace_charged += amount
                consume(amount, reason)

            meter.consume_gas = counting
            self.state.tracer.started(self)

        @classmethod
        def apply_message(
            cls,
            state: Any,
            message: MessageAPI,
            transaction_context: Any,
            parent_computation: ComputationAPI | None = None,
        ) -> ComputationAPI:
            tracer: Tracer = state.tracer
            if tracer.is_inner_of_create(message):
                return super().apply_message(  # type: ignore[no-any-return]
                    state, message, transaction_context, parent_computation=parent_computation
                )
            tracer.enter(message, parent_computation)
            computation = super().apply_message(
                state, message, transaction_context, parent_computation=parent_computation
            )
            tracer.exit(computation)
            return computation  # type: ignore[no-any-return]

        @classmethod
        def apply_create_message(
            cls,
            state: Any,
            message: MessageAPI,
            transaction_context: Any,
            parent_computation: ComputationAPI | None = None,
        ) -> ComputationAPI:
            tracer: Tracer = state.tracer
            tracer.enter(message, parent_computation)
            tracer.expect_create(message)
            computation = super().apply_create_message(
                state, message, transaction_context, parent_computation=parent_computation
            )
            tracer.exit(computation)
            return computation  # type: ignore[no-any-return]

    if with_opcodes:
        Traced.opcodes = _traced_table(dict(base.opcodes))
    Traced.__name__ = Traced.__qualname__ = f"Traced{base.__name__}"
    return Traced
