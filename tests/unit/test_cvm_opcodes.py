"""CVM opcodes (SPEC.md §9) on both profiles: results, exact gas, errors, context plumbing.

Every case runs a small bytecode program through a real computation of the profile
(`run_code`: a message applied by the profile's computation class on a fresh `CvmState`), so
the opcode table, gas charging and error handling are what a transaction would see. Programs
push their operands with PUSH32 (3 gas each), run the opcode and return the top word
(`RETURN_TOP`, 15 gas), so the gas used is exactly `3 * operands + opcode gas + 15`.
"""

from __future__ import annotations

import pytest
from eth.exceptions import InsufficientStack
from eth.vm.message import Message
from eth_account import Account
from eth_hash.auto import keccak
from eth_typing import Address
from eth_utils import to_checksum_address

from evm.cvm import CvmArithmeticError, euclidean_div, rand_word, uvarint
from evm.db import MemoryDB
from evm.executor import BlockEnv, BlockExecutor, execution_context
from evm.profiles import CVM, LITY, EvmProfile
from evm.state import StateDB
from evm.transactions import SignedTx, decode_transaction

U = 2**256
UINT_MAX = U - 1
MAX = 2**255 - 1
MIN = -(2**255)
ORIGIN = Address(b"\x0a" * 20)
TARGET = Address(b"\x0c" * 20)
CALLEE = Address(b"\x0d" * 20)
OWNER = b"\x77" * 20
CHAIN_ID = 1234
PROFILES = pytest.mark.parametrize("profile", [CVM, LITY], ids=["cvm", "lity"])
RETURN_TOP = bytes.fromhex("600052" + "60206000f3")  # MSTORE at 0, RETURN 32 bytes
RETURN_TOP_GAS = 3 + 3 + 3 + 3 + 3  # PUSH1, MSTORE (+3 for the first memory word), PUSH1 x2

OP = {
    "SADD": 0x0C,
    "SSUB": 0x0D,
    "SMUL": 0x0E,
    "FMUL": 0x2A,
    "SFMUL": 0x2B,
    "FDIV": 0x2C,
    "SFDIV": 0x2D,
    "ISVALIDATOR": 0xF6,
    "SCHEDULE": 0xF7,
    "FREEGAS": 0xF8,
    "RAND": 0xF9,
}
GAS = {"SADD": 3, "SSUB": 3, "SMUL": 3, "FMUL": 8, "SFMUL": 8, "FDIV": 8, "SFDIV": 8}


def make_env(**changes: object) -> BlockEnv:
    fields: dict = {
        "number": 5,
        "timestamp": 1_700_000_000,
        "coinbase": b"\x00" * 20,
        "gas_limit": 30_000_000,
        "mix_hash": b"\x11" * 32,
        "chain_id": CHAIN_ID,
        "validator_owners": frozenset({OWNER}),
    }
    fields.update(changes)
    return BlockEnv(**fields)


def new_state(profile: EvmProfile, env: BlockEnv | None = None):
    empty_root = StateDB(MemoryDB()).state_root
    return profile.state_class(MemoryDB(), execution_context(env or make_env()), empty_root)


def push(value: int) -> bytes:
    return b"\x7f" + (value % U).to_bytes(32, "big")


def program(op: int, *operands: int) -> bytes:
    """Pushes operands so that the first one ends on top, runs `op`, returns the top word."""
    return b"".join(push(v) for v in reversed(operands)) + bytes([op]) + RETURN_TOP


def run_code(
    profile: EvmProfile,
    code: bytes,
    *,
    gas: int = 100_000,
    static: bool = False,
    state=None,
    env: BlockEnv | None = None,
):
    """Apply a message running `code` at TARGET, as the first frame of a transaction."""
    state = state if state is not None else new_state(profile, env)
    state.set_code(TARGET, code)
    message = Message(
        gas=gas, to=TARGET, sender=ORIGIN, value=0, data=b"", code=code, is_static=static
    )
    context = state.get_transaction_context_class()(gas_price=0, origin=ORIGIN)
    return state.computation_class.apply_message(state, message, context)


def gas_used(computation) -> int:
    return computation.msg.gas - computation.get_gas_remaining()


def result_int(computation, signed: bool) -> int:
    value = int.from_bytes(computation.output, "big")
    return value - U if signed and value >> 255 else value


ERR = "error"
# (name, operands top first, expected result or ERR). Signed ops take and return signed values.
CASES = [
    ("SADD", (1, 2), 3),
    ("SADD", (-1, -1), -2),
    ("SADD", (MAX, 0), MAX),
    ("SADD", (MIN, MAX), -1),
    ("SADD", (MAX, 1), ERR),
    ("SADD", (MIN, -1), ERR),
    ("SSUB", (5, 7), -2),  # top - second
    ("SSUB", (-1, MAX), MIN),
    ("SSUB", (MAX, -1), ERR),
    ("SSUB", (MIN, 1), ERR),
    ("SSUB", (0, MIN), ERR),
    ("SSUB", (-1, MIN), MAX),
    ("SMUL", (-1, -1), 1),
    ("SMUL", (MIN, 1), MIN),
    ("SMUL", (-(2**127), 2**128), MIN),
    ("SMUL", (2**127, 2**128), ERR),
    ("SMUL", (MIN, -1), ERR),
    ("SMUL", (-1, MIN), ERR),
    ("SMUL", (MAX, 2), ERR),
    ("FMUL", (15 * 10**17, 2 * 10**18, 18), 3 * 10**18),
    ("FMUL", (7, 3, 1), 2),  # 21 / 10 floors
    ("FMUL", (7, 3, 0), 21),
    ("FMUL", (UINT_MAX, 1, 0), UINT_MAX),
    ("FMUL", (UINT_MAX, 10, 1), UINT_MAX),  # the product is exact, only the result must fit
    ("FMUL", (UINT_MAX, 2, 0), ERR),
    ("FMUL", (5, 5, 77), 0),
    ("FMUL", (5, 5, 78), ERR),
    ("FMUL", (1, 1, UINT_MAX), ERR),
    ("SFMUL", (-7, 3, 1), -3),  # -21 = 10 * -3 + 9
    ("SFMUL", (7, -3, 1), -3),
    ("SFMUL", (-7, -3, 1), 2),
    ("SFMUL", (-1, -1, 0), 1),
    ("SFMUL", (MIN, 1, 0), MIN),
    ("SFMUL", (MAX, 10, 1), MAX),
    ("SFMUL", (MIN, -1, 0), ERR),
    ("SFMUL", (MAX, 2, 0), ERR),
    ("SFMUL", (3, 3, 78), ERR),
    ("FDIV", (1, 3, 18), 333333333333333333),
    ("FDIV", (7, 2, 0), 3),
    ("FDIV", (UINT_MAX, 1, 0), UINT_MAX),
    ("FDIV", (UINT_MAX, 1, 1), ERR),
    ("FDIV", (UINT_MAX, 10, 1), UINT_MAX),
    ("FDIV", (10, 0, 0), ERR),
    ("FDIV", (0, 0, 0), ERR),
    ("FDIV", (1, 1, 77), 10**77),
    ("FDIV", (1, 1, 78), ERR),
    ("SFDIV", (-7, 2, 0), -4),  # Euclidean: -7 = 2 * -4 + 1 (truncation would give -3)
    ("SFDIV", (-7, -2, 0), 4),  # -7 = -2 * 4 + 1
    ("SFDIV", (7, -2, 0), -3),  # 7 = -2 * -3 + 1
    ("SFDIV", (7, 2, 0), 3),
    ("SFDIV", (-1, 3, 1), -4),  # -10 = 3 * -4 + 2
    ("SFDIV", (1, -3, 1), -3),  # 10 = -3 * -3 + 1
    ("SFDIV", (MIN, 1, 0), MIN),
    ("SFDIV", (MIN, -1, 0), ERR),
    ("SFDIV", (-5, 0, 0), ERR),
    ("SFDIV", (1, 1, 78), ERR),
]


def case_id(case: tuple) -> str:
    name, operands, _ = case
    return f"{name}{operands}"


@PROFILES
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_arithmetic_table(profile: EvmProfile, case: tuple) -> None:
    name, operands, expected = case
    computation = run_code(profile, program(OP[name], *operands))
    if expected == ERR:
        assert computation.is_error
        assert isinstance(computation.error, CvmArithmeticError)
        assert computation.get_gas_remaining() == 0  # all gas consumed
        return
    assert computation.is_success, computation.error
    assert result_int(computation, signed=name.startswith("S")) == expected
    assert gas_used(computation) == 3 * len(operands) + GAS[name] + RETURN_TOP_GAS


@pytest.mark.parametrize(
    ("a", "b"), [(7, 2), (-7, 2), (7, -2), (-7, -2), (0, -3), (MIN, 3), (-1, MAX)]
)
def test_euclidean_division_identity(a: int, b: int) -> None:
    q = euclidean_div(a, b)
    r = a - b * q
    assert 0 <= r < abs(b)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (2**64 - 1, "ff" * 9 + "01")],
)
def test_uvarint_is_go_putuvarint(value: int, encoded: str) -> None:
    assert uvarint(value).hex() == encoded


@PROFILES
@pytest.mark.parametrize(
    ("word", "expected"),
    [
        (int.from_bytes(OWNER, "big"), 1),
        ((0xDEAD << 160) | int.from_bytes(OWNER, "big"), 1),  # only the low 20 bytes count
        (int.from_bytes(b"\x78" * 20, "big"), 0),
        (0, 0),
    ],
)
def test_isvalidator(profile: EvmProfile, word: int, expected: int) -> None:
    computation = run_code(profile, program(OP["ISVALIDATOR"], word))
    assert computation.is_success
    assert result_int(computation, signed=False) == expected
    assert gas_used(computation) == 3 + 3 + RETURN_TOP_GAS


@PROFILES
def test_isvalidator_without_owners_is_false(profile: EvmProfile) -> None:
    env = make_env(validator_owners=frozenset())
    computation = run_code(profile, program(OP["ISVALIDATOR"], int.from_bytes(OWNER)), env=env)
    assert result_int(computation, signed=False) == 0


@PROFILES
def test_schedule_pops_three_and_does_nothing(profile: EvmProfile) -> None:
    code = push(1) + push(2) + push(3) + bytes([OP["SCHEDULE"], 0x00])
    computation = run_code(profile, code)
    assert computation.is_success
    assert gas_used(computation) == 9 + 3
    underflow = run_code(profile, code[:-1] + b"\x50")  # POP after SCHEDULE: stack is empty
    assert isinstance(underflow.error, InsufficientStack)


@PROFILES
def test_freegas_marks_the_transaction(profile: EvmProfile) -> None:
    state = new_state(profile)
    state.begin_transaction()
    computation = run_code(profile, bytes([OP["FREEGAS"], 0x00]), state=state)
    assert computation.is_success
    assert gas_used(computation) == 3
    assert state.freegas_marked is True
    state.begin_transaction()
    assert state.freegas_marked is False
    run_code(profile, b"\x00", state=state)
    assert state.freegas_marked is False


def expected_rand(state, env: BlockEnv, counter: int) -> bytes:
    return rand_word(env.mix_hash, state.get_nonce(ORIGIN), state.get_code_hash(TARGET), counter)


@PROFILES
def test_rand_value_gas_and_counter(profile: EvmProfile) -> None:
    env = make_env()
    state = new_state(profile, env)
    state.set_nonce(ORIGIN, 300)  # a two-byte uvarint
    code = bytes([OP["RAND"], OP["RAND"]]) + bytes.fromhex("600052602052" + "60406000f3")
    computation = run_code(profile, code, state=state)
    assert computation.is_success
    assert gas_used(computation) == 5 + 5 + (3 + 6) + (3 + 3 + 3) + 6  # 2 words of memory
    first, second = computation.output[32:], computation.output[:32]  # second RAND at offset 0
    assert first == expected_rand(state, env, 1)
    assert second == expected_rand(state, env, 2)
    code_hash = keccak(code)
    manual = keccak(env.mix_hash + bytes.fromhex("ac02") + code_hash + b"\x01")
    assert first == manual


@PROFILES
def test_rand_is_deterministic_and_depends_on_seed_nonce_and_counter(profile: EvmProfile) -> None:
    code = bytes([OP["RAND"]]) + RETURN_TOP

    def draw(env: BlockEnv, nonce: int = 0, state=None) -> bytes:
        state = state if state is not None else new_state(profile, env)
        state.set_nonce(ORIGIN, nonce)
        return run_code(profile, code, state=state).output

    env = make_env()
    assert draw(env) == draw(env)
    assert draw(env) != draw(make_env(mix_hash=b"\x12" * 32))
    assert draw(env) != draw(env, nonce=1)
    state = new_state(profile, env)
    state.begin_transaction()
    once = draw(env, state=state)
    twice = draw(env, state=state)  # same transaction: the counter moved on
    assert once != twice
    state.begin_transaction()  # next transaction: the counter restarts at 1
    assert draw(env, state=state) == once


STATIC_PROGRAMS = {
    "SADD": program(OP["SADD"], 1, 2),
    "SSUB": program(OP["SSUB"], 1, 2),
    "SMUL": program(OP["SMUL"], 1, 2),
    "FMUL": program(OP["FMUL"], 1, 2, 0),
    "SFMUL": program(OP["SFMUL"], 1, 2, 0),
    "FDIV": program(OP["FDIV"], 1, 2, 0),
    "SFDIV": program(OP["SFDIV"], 1, 2, 0),
    "ISVALIDATOR": program(OP["ISVALIDATOR"], 1),
    "SCHEDULE": push(1) + push(2) + push(3) + bytes([OP["SCHEDULE"], 0x00]),
    "FREEGAS": bytes([OP["FREEGAS"], 0x00]),
    "RAND": bytes([OP["RAND"]]) + RETURN_TOP,
}


@PROFILES
@pytest.mark.parametrize("name", sorted(STATIC_PROGRAMS))
def test_allowed_in_static_frames(profile: EvmProfile, name: str) -> None:
    computation = run_code(profile, STATIC_PROGRAMS[name], static=True)
    assert computation.is_success, computation.error


def staticcall_to(callee: bytes) -> bytes:
    """STATICCALL(gas, callee, 0, 0, 0, 32) and return the success flag."""
    return (
        bytes.fromhex("6020600060006000")  # retSize 32, retOffset 0, argsSize 0, argsOffset 0
        + b"\x73"
        + callee
        + bytes.fromhex("620f4240")  # gas 1_000_000
        + b"\xfa"
        + RETURN_TOP
    )


@PROFILES
def test_freegas_and_rand_through_a_real_staticcall(profile: EvmProfile) -> None:
    state = new_state(profile)
    state.begin_transaction()
    state.set_code(CALLEE, bytes([OP["RAND"], 0x50, OP["FREEGAS"], 0x00]))
    computation = run_code(profile, staticcall_to(CALLEE), gas=2_000_000, state=state)
    assert computation.is_success
    assert result_int(computation, signed=False) == 1  # the static call succeeded
    assert state.freegas_marked is True
    assert state.rand_counter == 2
    # Control: a state-changing opcode under the same STATICCALL fails.
    state.set_code(CALLEE, bytes.fromhex("6001600055"))  # SSTORE
    computation = run_code(profile, staticcall_to(CALLEE), gas=2_000_000, state=state)
    assert result_int(computation, signed=False) == 0


# --- through BlockExecutor: the plumbing a block uses ------------------------------------


def sign(key: bytes, fields: dict) -> SignedTx:
    fields = {"chainId": CHAIN_ID, "gas": 200_000, "gasPrice": 0, **fields}
    raw = bytes(Account.sign_transaction(fields, key).raw_transaction)
    return decode_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=30_000_000)


@PROFILES
def test_block_executor_resets_freegas_per_transaction(profile: EvmProfile) -> None:
    key = b"\x05" * 32
    sender = bytes.fromhex(Account.from_key(key).address[2:])
    db = MemoryDB()
    genesis = StateDB(db)
    genesis.set_balance(sender, 10**18)
    genesis.set_code(CALLEE, bytes([OP["FREEGAS"], 0x00]))
    genesis.persist()
    executor = BlockExecutor(profile, db, genesis.state_root, make_env())
    executor.apply(sign(key, {"nonce": 0, "to": to_checksum_address(CALLEE)}))
    assert executor.state.freegas_marked is True
    # A plain transfer takes the fast path: the mark must not leak into it.
    executor.apply(sign(key, {"nonce": 1, "to": to_checksum_address(b"\x99" * 20), "value": 1}))
    assert executor.state.freegas_marked is False


@PROFILES
def test_isvalidator_sees_block_env_owners_in_transactions(profile: EvmProfile) -> None:
    key = b"\x06" * 32
    sender = bytes.fromhex(Account.from_key(key).address[2:])
    db = MemoryDB()
    genesis = StateDB(db)
    genesis.set_balance(sender, 10**18)
    # SSTORE(0, ISVALIDATOR(CALLER)): the result lands in state for the assertion.
    genesis.set_code(CALLEE, bytes([0x33, OP["ISVALIDATOR"], 0x60, 0x00, 0x55, 0x00]))
    genesis.persist()
    env = make_env(validator_owners=frozenset({sender}))
    executor = BlockExecutor(profile, db, genesis.state_root, env)
    receipt = executor.apply(sign(key, {"nonce": 0, "to": to_checksum_address(CALLEE)}))
    assert receipt.state_root == b"\x01"
    assert executor.account_db.get_storage(CALLEE, 0) == 1
