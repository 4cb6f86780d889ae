"""The `lity` profile: Travis-exact bytecode rules (SPEC.md §9, DESIGN.md §4 "EVM profiles").

Checked ADD/SUB/MUL, the Byzantium opcode set and prices (+ SHL/SHR/SAR), ENI at 0xf5 instead
of CREATE2, no EXTCODEHASH/PUSH0/..., Byzantium precompiles; then the Lity fixture contracts
(compiled by Travis's Lity) deployed and called through `BlockExecutor` and `run_call`.
The CVM opcodes shared with `cvm` are covered on both profiles in test_cvm_opcodes.py.
"""

from __future__ import annotations

import json

import pytest
from eth._utils.address import generate_contract_address
from eth.exceptions import InvalidInstruction
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import to_checksum_address

from evm.call import CallRequest, run_call
from evm.cvm import CvmArithmeticError, EniFailure
from evm.db import MemoryDB
from evm.eni.convention import TYPE_STRING
from evm.executor import BlockExecutor
from evm.precompiles import CVM_PRECOMPILES
from evm.profiles import CVM, LITY, PROFILES, get_profile
from evm.state import StateDB
from tests.shared import FIXTURES as SHARED_FIXTURES
from tests.unit.test_cvm_opcodes import (
    RETURN_TOP_GAS,
    UINT_MAX,
    gas_used,
    make_env,
    program,
    push,
    result_int,
    run_code,
    sign,
)

ADD, MUL, SUB = 0x01, 0x02, 0x03
FIXTURES = SHARED_FIXTURES / "lity"


def test_lity_is_registered() -> None:
    assert get_profile("lity") is LITY is PROFILES["lity"]


ERR = "error"
CHECKED = [
    (ADD, (1, 2), 3),
    (ADD, (UINT_MAX, 0), UINT_MAX),
    (ADD, (UINT_MAX, 1), ERR),
    (ADD, (2**255, 2**255), ERR),
    (SUB, (5, 3), 2),  # top - second
    (SUB, (3, 3), 0),
    (SUB, (3, 5), ERR),
    (SUB, (0, 1), ERR),
    (SUB, (UINT_MAX, UINT_MAX), 0),
    (MUL, (2**128, 2**127), 2**255),
    (MUL, (2**128, 2**128), ERR),
    (MUL, (UINT_MAX, 1), UINT_MAX),
    (MUL, (UINT_MAX, 2), ERR),
    (MUL, (0, UINT_MAX), 0),
]
GAS = {ADD: 3, MUL: 5, SUB: 3}


@pytest.mark.parametrize("case", CHECKED, ids=[f"{c[0]:#04x}{c[1]}" for c in CHECKED])
def test_checked_arithmetic(case: tuple) -> None:
    op, operands, expected = case
    computation = run_code(LITY, program(op, *operands))
    if expected == ERR:
        assert isinstance(computation.error, CvmArithmeticError)
        assert computation.get_gas_remaining() == 0
        return
    assert computation.is_success
    assert result_int(computation, signed=False) == expected
    assert gas_used(computation) == 6 + GAS[op] + RETURN_TOP_GAS


@pytest.mark.parametrize(
    ("op", "operands", "wrapped"), [(ADD, (UINT_MAX, 1), 0), (SUB, (0, 1), UINT_MAX)]
)
def test_cvm_profile_keeps_wrapping_arithmetic(op: int, operands: tuple, wrapped: int) -> None:
    computation = run_code(CVM, program(op, *operands))
    assert result_int(computation, signed=False) == wrapped


@pytest.mark.parametrize(
    ("byte", "name"),
    [
        (0x3F, "EXTCODEHASH"),
        (0x5F, "PUSH0"),
        (0x5C, "TLOAD"),
        (0x5E, "MCOPY"),
        (0x47, "SELFBALANCE"),
        (0x48, "BASEFEE"),
        (0x46, "CHAINID"),
    ],
)
def test_post_byzantium_opcodes_are_invalid(byte: int, name: str) -> None:
    code = push(0) + push(0) + push(0) + bytes([byte, 0x00])
    assert run_code(CVM, code).is_success, name  # control: valid in Prague
    computation = run_code(LITY, code)
    assert isinstance(computation.error, InvalidInstruction), name
    assert computation.get_gas_remaining() == 0


CREATE2_EMPTY = (
    push(0)
    + push(0)
    + push(0)
    + push(0)
    + b"\xf5"
    + b"\x3b"
    + bytes.fromhex("600052" + "60206000f3")
)  # CREATE2(value 0, offset 0, size 0, salt 0), then EXTCODESIZE(result)


def test_0xf5_is_eni_not_create2() -> None:
    created = run_code(CVM, CREATE2_EMPTY)
    assert created.is_success  # Prague: CREATE2 of empty code, size 0 returned
    assert LITY.state_class.computation_class.opcodes[0xF5].mnemonic == "ENI"
    computation = run_code(LITY, CREATE2_EMPTY)
    assert isinstance(computation.error, EniFailure)  # ENI: the empty function name is unknown
    assert computation.get_gas_remaining() == 0


@pytest.mark.parametrize(
    ("op", "operands", "expected"),
    [
        (0x1B, (4, 1), 16),
        (0x1C, (4, 256), 16),
        (0x1D, (4, UINT_MAX), UINT_MAX),
        (0x1D, (1, 2**255), 3 << 254),
    ],
)
def test_shifts_exist(op: int, operands: tuple, expected: int) -> None:
    computation = run_code(LITY, program(op, *operands))
    assert result_int(computation, signed=False) == expected
    assert gas_used(computation) == 6 + 3 + RETURN_TOP_GAS


@pytest.mark.parametrize(
    ("code_hex", "lity_gas", "cvm_gas"),
    [
        ("600054", 3 + 200, 3 + 2100),  # SLOAD: Byzantium fixed price vs Berlin cold slot
        ("611234315000", 3 + 400 + 2, 3 + 2600 + 2),  # BALANCE of a cold account
    ],
)
def test_byzantium_prices(code_hex: str, lity_gas: int, cvm_gas: int) -> None:
    code = bytes.fromhex(code_hex)
    assert gas_used(run_code(LITY, code)) == lity_gas
    assert gas_used(run_code(CVM, code)) == cvm_gas


def test_byzantium_precompiles() -> None:
    # Byzantium's 0x01-0x08 plus the CVM precompiles (evm/precompiles.py) and nothing else.
    ethereum = LITY.precompile_addresses - set(CVM_PRECOMPILES)
    assert sorted(ethereum) == [i.to_bytes(20, "big") for i in range(1, 9)]
    assert set(CVM_PRECOMPILES) <= LITY.precompile_addresses


# --- ENI opcode ----------------------------------------------------------------------------


def mstore(offset: int, value: int) -> bytes:
    return push(value) + push(offset) + b"\x52"


def mstore8(offset: int, value: int) -> bytes:
    return push(value) + push(offset) + b"\x53"


def word_of(text: bytes) -> int:
    return int.from_bytes(text.ljust(32, b"\x00"), "big")


def eni_setup(function: bytes, argument: bytes) -> bytes:
    """Memory as Lity lays it out for `function(string) returns (string)`; stack ready for ENI.

    Types at 0x80 (count 1, [string]; at 0xc0 count 1, [string]); data at 0x100: L = 64, then
    the string (length word, bytes padded to 32).
    """
    assert len(argument) <= 32
    return (
        mstore(0x40, 0x80)
        + mstore(0x80, 1)
        + mstore8(0xA0, TYPE_STRING)
        + mstore(0xC0, 1)
        + mstore8(0xE0, TYPE_STRING)
        + mstore(0x100, 64)
        + mstore(0x120, len(argument))
        + mstore(0x140, word_of(argument))
        + push(0x100)  # data offset
        + push(0x80)  # type offset
        + push(word_of(function))  # function name, on top
    )


# Store the pushed P + 32 at 0 and return memory [0, 0x1c0): result at P = 0x160.
ENI_TAIL = push(0) + b"\x52" + push(0x1C0) + push(0) + b"\xf3"


def test_eni_reverse_writes_result_and_charges_exact_gas() -> None:
    setup = eni_setup(b"reverse", b"hello")
    computation = run_code(LITY, setup + b"\xf5" + ENI_TAIL)
    assert computation.is_success, computation.error
    out = computation.output
    assert int.from_bytes(out[0:32], "big") == 0x180  # pushed P + 32
    assert int.from_bytes(out[0x40:0x60], "big") == 0x1C0  # new free pointer
    encoded = (5).to_bytes(32, "big") + b"olleh".ljust(32, b"\x00")
    assert out[0x160:0x1C0] == (64).to_bytes(32, "big") + encoded
    # Control: the same program without ENI (POP x3, PUSH P + 32); RETURN then pays the
    # expansion from 11 to 14 words (42 - 33 = 9 gas) that ENI's result write paid.
    control = run_code(LITY, setup + b"\x50\x50\x50" + push(0x180) + ENI_TAIL)
    assert control.is_success
    expansion = 9
    library_gas = 10 * len("hello")
    eni_gas = 400 + library_gas + expansion
    assert gas_used(computation) == gas_used(control) - (3 * 2 + 3) - expansion + eni_gas


@pytest.mark.parametrize(
    ("function", "argument"),
    [(b"no_such_function", b"x"), (b"scrypt", b"not hex!")],
)
def test_eni_failures_consume_all_gas(function: bytes, argument: bytes) -> None:
    computation = run_code(LITY, eni_setup(function, argument) + b"\xf5" + ENI_TAIL)
    assert isinstance(computation.error, EniFailure)
    assert computation.get_gas_remaining() == 0


def test_eni_reads_are_free_and_zero_filled() -> None:
    # Type section far past the end of memory: zeros, so "return type is not one string";
    # the point is that a huge offset costs no memory expansion and fails cleanly.
    code = push(0) + push(2**255) + push(word_of(b"reverse")) + b"\xf5\x00"
    computation = run_code(LITY, code)
    assert isinstance(computation.error, EniFailure)


def test_eni_allowed_in_static_frames() -> None:
    computation = run_code(LITY, eni_setup(b"reverse", b"abc") + b"\xf5" + ENI_TAIL, static=True)
    assert computation.is_success


# --- the Lity fixture contracts ------------------------------------------------------------


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text().strip()


def deploy(bytecode_hex: str, key: bytes):
    """A lity-profile block executor (and its db) with the contract deployed by `key`."""
    sender = bytes.fromhex(Account.from_key(key).address[2:])
    db = MemoryDB()
    genesis = StateDB(db)
    genesis.set_balance(sender, 10**20)
    genesis.persist()
    executor = BlockExecutor(LITY, db, genesis.state_root, make_env())
    receipt = executor.apply(sign(key, {"nonce": 0, "data": "0x" + bytecode_hex, "gas": 3_000_000}))
    assert receipt.state_root == b"\x01"
    return executor, db, generate_contract_address(sender, 0)


def test_freegas_fixture_marks_only_the_freegas_function() -> None:
    key = b"\x08" * 32
    executor, _, contract = deploy(fixture("FreeGas.bin"), key)
    selectors = json.loads(fixture("selectors.json"))["FreeGas"]
    for nonce, (function, marked) in enumerate(
        [("testFreeGas(int256)", True), ("testNonFreeGas(int256)", False)], start=1
    ):
        data = selectors[function] + abi_encode(["int256"], [-5]).hex()
        receipt = executor.apply(
            sign(
                key,
                {
                    "nonce": nonce,
                    "to": to_checksum_address(contract),
                    "data": "0x" + data,
                    "gas": 1_000_000,
                },
            )
        )
        assert receipt.state_root == b"\x01", function
        assert executor.state.freegas_marked is marked, function


def test_reverse_fixture_via_eth_call() -> None:
    key = b"\x09" * 32
    executor, db, contract = deploy(fixture("Reverse.bin"), key)
    result = executor.finish()
    selector = json.loads(fixture("selectors.json"))["Reverse"]["reverse(string)"]
    request = CallRequest(
        sender=b"\x01" * 20,
        to=contract,
        data=bytes.fromhex(selector) + abi_encode(["string"], ["hello"]),
    )
    call = run_call(LITY, db, result.state_root, make_env(), request)
    assert call.success, call.error
    assert abi_decode(["string"], call.output) == ("olleh",)
