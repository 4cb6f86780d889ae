"""The CyberMiles virtual machine (CVM): its opcodes as py-evm opcode tables (SPEC.md §9).

Bird's-eye view
---------------
py-evm runs bytecode by looking each byte up in the computation class's `opcodes` table. This
module holds the CVM opcode logic once and builds the two tables the profiles attach
(evm/profiles.py):

- `CVM_OPCODES`: the CVM opcodes at bytes that are free in Prague (0x0c-0x0e, 0x2a-0x2d,
  0xf6-0xf9). The `cvm` profile is `PRAGUE_OPCODES | CVM_OPCODES`.
- `LITY_OPCODES`: Travis's opcode set for existing Lity bytecode: Byzantium, plus SHL/SHR/SAR,
  with overflow-checked ADD/SUB/MUL, the CVM opcodes and ENI at 0xf5. Bytes Byzantium does not
  define (0x3f EXTCODEHASH, 0x5f PUSH0, 0xf5 CREATE2 before ENI takes it, ...) stay invalid.

Every CVM error (overflow, division by zero, decimals out of range, ENI failure) is a `VMError`
with `burns_gas`, so the frame fails consuming all its gas, like any invalid operation. None of
the new opcodes checks `msg.is_static`: SPEC.md allows all of them under STATICCALL (FREEGAS
only marks the transaction, RAND and ISVALIDATOR only read).

Where the opcodes find their context (the plumbing)
---------------------------------------------------
- `validator_owners`: `BlockEnv.validator_owners` (evm/executor.py) goes into the
  `CvmExecutionContext` that `execution_context(env)` builds; opcodes read it as
  `computation.state.execution_context.validator_owners` (`validator_owners(state)`). Both
  `BlockExecutor` and `evm.call.run_call` build their state from `execution_context(env)`, so
  eth_call sees the same set with no extra wiring. A plain py-evm `ExecutionContext` reads as
  the empty set.
- Per-transaction values live on the state (`CvmStateMixin`, mixed into `CvmState`):
  `rand_counter` (the counter the next RAND uses; 1 at the start of a transaction) and
  `freegas_marked` (set by FREEGAS). `begin_transaction()` resets them; `apply_transaction`
  calls it first and `BlockExecutor.apply` calls it for every transaction (fast path included),
  so after `executor.apply(tx)`, `executor.state.freegas_marked` is that transaction's mark.
  `run_call` builds a fresh state per call, so it starts from the reset values too. Like
  Travis's per-EVM `RandCallIndex`, neither value rolls back when a sub-call reverts.
  The module precompiles also find the transaction's hash there (`tx_hash`, set by
  `apply_transaction`; NO_TX_HASH in eth_call and on the transfer fast path, which runs no
  code) and a counter of the ids they derived from it (`next_derived_id`: governance proposal
  ids made by contracts).
- RAND's seed is the block's `mix_hash` (our randomness beacon), read from the execution context;
  tx.origin is `computation.transaction_context.origin`.
- ENI (0xf5) calls the `evm.eni` package (the libraries, the argument decoder and the result
  encoder); this module only moves words between the stack, memory and that API. The library
  versions are the block's: `BlockEnv.eni_versions` (from chain state) becomes the
  `eni_registry` of the `CvmExecutionContext`, read by `eni_registry(state)` here and by the ENI
  precompile; a plain py-evm `ExecutionContext` reads as the default versions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from eth._utils.address import force_bytes_to_address
from eth.abc import ComputationAPI, OpcodeAPI, SignedTransactionAPI, StateAPI
from eth.exceptions import OutOfGas, VMError
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.byzantium.opcodes import BYZANTIUM_OPCODES
from eth.vm.forks.constantinople.opcodes import CONSTANTINOPLE_OPCODES
from eth.vm.opcode import as_opcode
from eth_hash.auto import keccak
from eth_typing import Address

from evm import eni as eni_lib

UINT_256_MAX = 2**256 - 1
INT_256_MIN = -(2**255)
INT_256_MAX = 2**255 - 1
# FMUL/FDIV scale by 10**n. 10**77 < 2**256 < 10**78: n up to 77 keeps the scale itself a
# 256-bit word (as it would be in a word-sized implementation); larger n is an error rather than
# a silent 0, and it bounds the big-integer work an attacker can ask for.
MAX_DECIMALS = 77
# ENI argument reads are free and zero-filled past the end of memory; they are capped so a
# forged length word cannot make the node allocate gigabytes of zeros for free.
ENI_MAX_READ = 1 << 24

GAS_SIGNED_ARITH = 3
GAS_FIXED_POINT = 8
GAS_CVM_SYSTEM = 3  # ISVALIDATOR, SCHEDULE, FREEGAS
GAS_RAND = 5


class CvmArithmeticError(VMError):
    """Overflow, division by zero or decimals out of range: the frame fails, all gas consumed."""


class EniFailure(VMError):
    """ENI: unknown function, bad arguments or a library failure (all gas consumed)."""


# --- context -------------------------------------------------------------------------------


class CvmExecutionContext(ExecutionContext):
    """py-evm's block context plus what only CyberMiles opcodes read."""

    def __init__(
        self,
        *args: Any,
        validator_owners: frozenset[bytes] = frozenset(),
        past_randomness: Callable[[int], bytes | None] = lambda _number: None,
        eni_registry: eni_lib.Registry | None = None,
        **kw: Any,
    ):
        super().__init__(*args, **kw)
        self.validator_owners = validator_owners
        self.past_randomness = past_randomness
        self.eni_registry = eni_registry or eni_lib.Registry.default()


NO_TX_HASH = bytes(32)


class CvmTransactionScope(Protocol):
    """Per-transaction values the CVM opcodes and the module precompiles keep on the state."""

    rand_counter: int
    freegas_marked: bool
    tx_hash: bytes
    derived_ids: int


class CvmStateMixin:
    """Mixed into a py-evm state class: per-transaction CVM values, reset for each transaction."""

    rand_counter: int = 1
    freegas_marked: bool = False
    tx_hash: bytes = NO_TX_HASH
    derived_ids: int = 0

    def begin_transaction(self, tx_hash: bytes = NO_TX_HASH) -> None:
        self.rand_counter = 1
        self.freegas_marked = False
        self.tx_hash = tx_hash
        self.derived_ids = 0

    # True while `apply_checked_transaction` runs: the transaction executor (evm/profiles.py)
    # then skips py-evm's stateless re-validation of the transaction.
    transaction_prechecked: bool = False

    def apply_transaction(self, transaction: SignedTransactionAPI) -> ComputationAPI:
        self.begin_transaction(bytes(transaction.hash))
        return super().apply_transaction(transaction)  # type: ignore[misc,no-any-return]

    def apply_checked_transaction(
        self, transaction: SignedTransactionAPI, tx_hash: bytes
    ) -> ComputationAPI:
        """`apply_transaction` for a transaction evm.transactions.decode_transaction accepted
        (its hash given): py-evm's `transaction.validate()` (field ranges, intrinsic gas, the
        signature recovered twice more) is not repeated; the state checks (nonce, balance,
        low s) still run. DECISIONS.md "Block execution trusts decoded transactions"."""
        self.begin_transaction(tx_hash)
        self.transaction_prechecked = True
        try:
            return super().apply_transaction(transaction)  # type: ignore[misc,no-any-return]
        finally:
            self.transaction_prechecked = False


def transaction_scope(state: StateAPI) -> CvmTransactionScope:
    """The per-transaction values of `state` (a CVM profile's state class)."""
    return cast(CvmTransactionScope, state)


def next_derived_id(computation: ComputationAPI, caller: bytes) -> bytes:
    """A fresh 32-byte id for something a precompile creates on behalf of `caller`:
    keccak(tx_hash ‖ caller ‖ n), n = 0, 1, ... in the order the transaction asks.

    Unique: a chain never holds one transaction twice, and within a transaction n never repeats
    (like the RAND counter it does not roll back when a sub-call reverts, so an id given out in
    an undone call is not given again). Deterministic: every validator runs the same
    transaction the same way. Outside a transaction (eth_call) the hash is NO_TX_HASH.
    """
    scope = transaction_scope(computation.state)
    counter = scope.derived_ids
    scope.derived_ids = counter + 1
    return keccak(scope.tx_hash + bytes(caller) + counter.to_bytes(32, "big"))


def validator_owners(state: StateAPI) -> frozenset[bytes]:
    return cast(frozenset[bytes], getattr(state.execution_context, "validator_owners", frozenset()))


def eni_registry(state: StateAPI) -> eni_lib.Registry:
    """The ENI library versions of the block (or call) being executed."""
    registry = getattr(state.execution_context, "eni_registry", None)
    return registry if registry is not None else eni_lib.Registry.default()


def _scope(computation: ComputationAPI) -> CvmTransactionScope:
    return transaction_scope(computation.state)


# --- arithmetic ----------------------------------------------------------------------------


def to_signed(word: int) -> int:
    return word - 2**256 if word >> 255 else word


def _push_unsigned(computation: ComputationAPI, value: int) -> None:
    if not 0 <= value <= UINT_256_MAX:
        raise CvmArithmeticError("unsigned result out of 256 bits")
    computation.stack_push_int(value)


def _push_signed(computation: ComputationAPI, value: int) -> None:
    if not INT_256_MIN <= value <= INT_256_MAX:
        raise CvmArithmeticError("signed result out of [-2**255, 2**255-1]")
    computation.stack_push_int(value & UINT_256_MAX)


Logic = Callable[[ComputationAPI], None]


def _binary(fn: Callable[[int, int], int], *, signed: bool) -> Logic:
    """2->1 opcode computing `fn(top, second)` exactly, then range-checked."""

    def logic(computation: ComputationAPI) -> None:
        top, second = computation.stack_pop_ints(2)
        if signed:
            _push_signed(computation, fn(to_signed(top), to_signed(second)))
        else:
            _push_unsigned(computation, fn(top, second))

    return logic


def _add(a: int, b: int) -> int:
    return a + b


def _sub(a: int, b: int) -> int:
    return a - b


def _mul(a: int, b: int) -> int:
    return a * b


def euclidean_div(a: int, b: int) -> int:
    """q with a = b*q + r, 0 <= r < |b| (Go's big.Int.Div; differs from floor when b < 0)."""
    q = a // abs(b)
    return q if b > 0 else -q


def _decimal_scale(n: int) -> int:
    if n > MAX_DECIMALS:
        raise CvmArithmeticError(f"decimals {n} > {MAX_DECIMALS}")
    return 10**n


def _fmul_terms(x: int, y: int, scale: int) -> tuple[int, int]:
    return x * y, scale


def _fdiv_terms(x: int, y: int, scale: int) -> tuple[int, int]:
    if y == 0:
        raise CvmArithmeticError("division by zero")
    return x * scale, y


def _fixed_point(terms: Callable[[int, int, int], tuple[int, int]], *, signed: bool) -> Logic:
    """3->1 opcode: pops x, y, n; divides `terms(x, y, 10**n)` exactly, then range-checks.

    The product is exact (no intermediate 256-bit wrap): only the final result must fit.
    """

    def logic(computation: ComputationAPI) -> None:
        x, y, n = computation.stack_pop_ints(3)
        scale = _decimal_scale(n)
        if signed:
            numerator, denominator = terms(to_signed(x), to_signed(y), scale)
            _push_signed(computation, euclidean_div(numerator, denominator))
        else:
            numerator, denominator = terms(x, y, scale)
            _push_unsigned(computation, numerator // denominator)

    return logic


# --- chain opcodes -------------------------------------------------------------------------


def isvalidator(computation: ComputationAPI) -> None:
    address = force_bytes_to_address(computation.stack_pop1_bytes())
    computation.stack_push_int(int(address in validator_owners(computation.state)))


def schedule(computation: ComputationAPI) -> None:
    # Reserved for scheduled transactions; Travis pops receiver, unixtime, data and does nothing.
    computation.stack_pop_any(3)


def mark_freegas(computation: ComputationAPI) -> None:
    """Marks the transaction freegas (SPEC.md §4): opcode 0xf8 and the freegas precompile.

    A transaction-scoped flag on the state, not account state, so it is allowed under
    STATICCALL and survives a reverting sub-call (like Travis).
    """
    _scope(computation).freegas_marked = True


def uvarint(value: int) -> bytes:
    """Go's binary.PutUvarint: little-endian base-128, high bit set on all but the last byte."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def rand_word(seed: bytes, origin_nonce: int, code_hash: bytes, counter: int) -> bytes:
    return keccak(seed + uvarint(origin_nonce) + code_hash + uvarint(counter))


def draw_random(computation: ComputationAPI, executing_address: Address) -> bytes:
    """The next value of the transaction's random stream (RAND; the randomness precompile too)."""
    state = computation.state
    scope = _scope(computation)
    counter = scope.rand_counter
    scope.rand_counter = counter + 1
    return rand_word(
        state.execution_context.mix_hash,
        state.get_nonce(computation.transaction_context.origin),
        state.get_code_hash(executing_address),
        counter,
    )


def rand(computation: ComputationAPI) -> None:
    # The executing address is the storage context (the caller's, under DELEGATECALL), as
    # geth's contract.Address().
    computation.stack_push_bytes(draw_random(computation, computation.msg.storage_address))


# --- ENI -----------------------------------------------------------------------------------


def _free_reader(computation: ComputationAPI) -> Callable[[int, int], bytes]:
    """Reads memory without expanding it or charging gas; zeros past the end."""

    def read(offset: int, size: int) -> bytes:
        # evm.eni bounds every section size it asks for; this cap is the backstop against a
        # forged length word making the node allocate gigabytes of zeros for free.
        if size > ENI_MAX_READ:
            raise eni_lib.EniError(f"ENI read of {size} bytes exceeds {ENI_MAX_READ}")
        if offset > UINT_256_MAX:
            return bytes(size)
        return computation.memory_read_bytes(offset, size).ljust(size, b"\x00")

    return read


def _paid_write(computation: ComputationAPI, offset: int, data: bytes) -> None:
    if offset + len(data) > UINT_256_MAX:  # py-evm would raise a non-VM ValidationError
        raise OutOfGas("ENI result write beyond the address space")
    computation.extend_memory(offset, len(data))  # charges memory expansion
    computation.memory_write(offset, len(data), data)


def eni(computation: ComputationAPI) -> None:
    """0xf5 (lity): stack fn_word, type_offset, data_offset -> P + 32 (SPEC.md §9).

    The opcode's own gas is ENI_BASE_GAS; the library's gas and the memory expansion of the
    result write are charged here, after the library ran (a failure burns all gas anyway).
    """
    fn_word = computation.stack_pop1_bytes().rjust(32, b"\x00")
    type_offset, data_offset = computation.stack_pop_ints(2)
    read = _free_reader(computation)
    try:
        args_json = eni_lib.decode_call(read, type_offset, data_offset)
        name = eni_lib.function_name(fn_word)
        result, library_gas = eni_lib.run(name, args_json, eni_registry(computation.state))
        data_length = int.from_bytes(read(data_offset, 32), "big")
        position, blob, free_pointer = eni_lib.encode_result(data_offset, data_length, result)
    except eni_lib.EniError as exc:
        raise EniFailure(str(exc)) from None
    computation.consume_gas(library_gas, reason="ENI library")
    _paid_write(computation, position, blob)
    _paid_write(computation, 0x40, free_pointer.to_bytes(32, "big"))
    computation.stack_push_int(position + 32)


# --- tables --------------------------------------------------------------------------------


def _op(logic: Logic, mnemonic: str, gas: int) -> OpcodeAPI:
    return as_opcode(logic_fn=logic, mnemonic=mnemonic, gas_cost=gas)


CVM_OPCODES: Mapping[int, OpcodeAPI] = {
    0x0C: _op(_binary(_add, signed=True), "SADD", GAS_SIGNED_ARITH),
    0x0D: _op(_binary(_sub, signed=True), "SSUB", GAS_SIGNED_ARITH),
    0x0E: _op(_binary(_mul, signed=True), "SMUL", GAS_SIGNED_ARITH),
    0x2A: _op(_fixed_point(_fmul_terms, signed=False), "FMUL", GAS_FIXED_POINT),
    0x2B: _op(_fixed_point(_fmul_terms, signed=True), "SFMUL", GAS_FIXED_POINT),
    0x2C: _op(_fixed_point(_fdiv_terms, signed=False), "FDIV", GAS_FIXED_POINT),
    0x2D: _op(_fixed_point(_fdiv_terms, signed=True), "SFDIV", GAS_FIXED_POINT),
    0xF6: _op(isvalidator, "ISVALIDATOR", GAS_CVM_SYSTEM),
    0xF7: _op(schedule, "SCHEDULE", GAS_CVM_SYSTEM),
    0xF8: _op(mark_freegas, "FREEGAS", GAS_CVM_SYSTEM),
    0xF9: _op(rand, "RAND", GAS_RAND),
}

# Lity's ADD/MUL/SUB keep Byzantium's mnemonics and gas (3/5/3) and only add the overflow check.
LITY_CHECKED_ARITHMETIC: Mapping[int, OpcodeAPI] = {
    0x01: _op(_binary(_add, signed=False), "ADD", 3),
    0x02: _op(_binary(_mul, signed=False), "MUL", 5),
    0x03: _op(_binary(_sub, signed=False), "SUB", 3),
}

# SHL/SHR/SAR (EIP-145) are the only post-Byzantium opcodes Lity's compiler emits.
_SHIFTS = {byte: CONSTANTINOPLE_OPCODES[byte] for byte in (0x1B, 0x1C, 0x1D)}

LITY_OPCODES: Mapping[int, OpcodeAPI] = {
    **BYZANTIUM_OPCODES,
    **_SHIFTS,
    **LITY_CHECKED_ARITHMETIC,
    **CVM_OPCODES,
    0xF5: _op(eni, "ENI", eni_lib.ENI_BASE_GAS),
}

__all__ = [
    "CVM_OPCODES",
    "LITY_OPCODES",
    "CvmArithmeticError",
    "CvmExecutionContext",
    "CvmStateMixin",
    "CvmTransactionScope",
    "EniFailure",
    "NO_TX_HASH",
    "draw_random",
    "eni_registry",
    "euclidean_div",
    "mark_freegas",
    "next_derived_id",
    "rand_word",
    "transaction_scope",
    "uvarint",
    "validator_owners",
]
