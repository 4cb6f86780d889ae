"""Differential test: the fast interpreter loop (evm/interpreter.py) vs py-evm's stock loop.

Both sides are the same profile (cvm or lity) on our StateDB, with the same opcode table; the
only difference is the loop: ours is `CVM.state_class` / `LITY.state_class` (FastInterpreter),
the reference a subclass whose computations run `BaseComputation.apply_computation`. A seeded
corpus aims at what the fast loop re-implements: hot opcodes (PUSHn, DUPn, SWAPn, JUMP/JUMPI,
MLOAD/MSTORE, CALLDATALOAD, arithmetic and comparisons) on short and empty stacks, jumps to
JUMPDESTs, into PUSH data, past the end and nowhere, memory expansion at the edges (offsets
near 2**256, exactly at word boundaries), reverts, nested calls and creates, and every
transaction run again at gas limits that run out at each point of its execution. Success,
error kind, output, gas used, logs and the state root must match after every transaction.

(tests/unit/test_cvm_differential.py separately checks cvm, fast loop included, against stock
py-evm Prague on py-evm's own state.)
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from eth._utils.address import generate_contract_address
from eth.constants import SECPK1_N
from eth.vm.computation import BaseComputation
from eth.vm.forks.prague import PragueVM
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import ValidationError, to_checksum_address
from eth_utils import function_signature_to_4byte_selector as selector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evm.call import _call_state_class
from evm.db import MemoryDB
from evm.executor import BlockEnv, execution_context
from evm.interpreter import CodeAnalysis
from evm.profiles import CVM, LITY, EvmProfile
from evm.state import StateDB
from evm.transactions import SignedTx, data_floor_gas, decode_transaction

CHAIN_ID = 1234
GAS_LIMIT = 30_000_000
KEY = b"\x32" * 32
SENDER = bytes.fromhex(Account.from_key(KEY).address[2:])
REPO = Path(__file__).resolve().parents[2]
PUSH1, PUSH2, PUSH32 = 0x60, 0x61, 0x7F
JUMP, JUMPI, JUMPDEST = 0x56, 0x57, 0x5B
pytestmark = pytest.mark.filterwarnings("ignore:SELFDESTRUCT opcode present")

# Weighted toward what the fast loop implements itself; the rest of the table still appears.
HOT = [0x01, 0x03, 0x10, 0x11, 0x14, 0x15, 0x16, 0x17, 0x1B, 0x1C, 0x20, 0x33, 0x34, 0x35, 0x36,
       0x50, 0x51, 0x52, 0x5B]  # fmt: skip
HOT += [0x80 + i for i in range(16)] + [0x90 + i for i in range(16)]  # DUPn, SWAPn
CALLS = [0xF0, 0xF1, 0xF2, 0xF4, 0xFA, 0xFD, 0xF3, 0x20, 0x54, 0x55, 0xA0, 0xA3, 0x5A, 0x58]
EDGE_WORDS = [0, 1, 31, 32, 33, 0x3FF, 0xFFFF, 2**32, 2**64, 2**255, 2**256 - 1, 2**256 - 32]


def _stock_state_class(state_class: Any) -> Any:
    """The same state and computation, but computations run py-evm's stock loop."""
    fast = state_class.computation_class

    class StockLoop(fast):  # type: ignore[misc,valid-type]
        @classmethod
        def apply_computation(cls, state, message, transaction_context, parent_computation=None):
            return BaseComputation.apply_computation.__func__(  # type: ignore[attr-defined]
                cls, state, message, transaction_context, parent_computation
            )

    return type("StockLoopState", (state_class,), {"computation_class": StockLoop})


def make_env() -> BlockEnv:
    return BlockEnv(
        number=9,
        timestamp=1_700_000_000,
        coinbase=b"\xc0" * 20,
        gas_limit=GAS_LIMIT,
        mix_hash=b"\x12" * 32,
        chain_id=CHAIN_ID,
        prev_hashes=(b"\x22" * 32,),
        validator_owners=frozenset({SENDER}),
    )


# --- the corpus ----------------------------------------------------------------------------


def _operand(rng: random.Random, addresses: list[bytes], push0: bool = True) -> bytes:
    roll = rng.random()
    if roll < 0.55:
        return bytes([PUSH1, rng.randrange(0, 0x48)])
    if roll < 0.65:
        return bytes([0x73]) + rng.choice(addresses)
    if roll < 0.72:
        return bytes([PUSH2, JUMPDEST, JUMPDEST])  # JUMPDEST bytes inside PUSH data
    if roll < 0.8 and push0:
        return bytes([0x5F])  # PUSH0
    word = rng.choice(EDGE_WORDS + [rng.getrandbits(256)])
    return bytes([PUSH32]) + word.to_bytes(32, "big")


def random_program(rng: random.Random, addresses: list[bytes], table: list[int]) -> bytes:
    """Chunks of operands + an opcode; jump targets patched in afterwards (they need the
    final layout): real JUMPDESTs, JUMPDEST bytes in PUSH data, other bytes, past the end."""
    # A base of stack items so DUP16/SWAP16 and CALL mostly find theirs (sometimes not).
    code = bytearray()
    for _ in range(rng.choice([0, 8, 17, 17])):
        code += bytes([PUSH1, rng.randrange(0, 0x40)])
    targets: list[int] = []  # where a PUSH2 jump target goes
    for _ in range(rng.randrange(3, 40)):
        roll = rng.random()
        if roll < 0.12:
            code.append(JUMPDEST)
            continue
        for _ in range(rng.randrange(1, 6)):
            code += _operand(rng, addresses, 0x5F in table)
        if roll < 0.3:
            if rng.random() < 0.5:
                code += bytes([PUSH1, rng.randrange(0, 2)])  # JUMPI condition
                op = JUMPI
            else:
                op = JUMP
            code.append(PUSH2)
            targets.append(len(code))
            code += b"\x00\x00"
            code.append(op)
            continue
        op = rng.choice(HOT) if roll < 0.75 else rng.choice(CALLS if roll < 0.85 else table)
        code.append(op)
        if PUSH1 <= op <= PUSH32:
            code += rng.randbytes(rng.randrange(0, op - PUSH1 + 2))  # sometimes truncated
    if rng.random() < 0.4:
        code += bytes([PUSH1, rng.randrange(0, 0x60), PUSH1, rng.randrange(0, 0x40)])
        code.append(rng.choice([0xF3, 0xFD]))  # RETURN or REVERT some memory
    elif rng.random() < 0.3:
        code = code[: rng.randrange(0, len(code) + 1)]  # truncated: PUSH data runs off the end
    hashes = [i for i, byte in enumerate(code) if byte == JUMPDEST]
    for at in targets:
        if at + 2 > len(code):
            continue
        choice = rng.random()
        if hashes and choice < 0.85:
            target = rng.choice(hashes)
        elif choice < 0.93:
            target = rng.randrange(0, len(code) + 3)
        else:
            target = rng.choice([len(code), 0xFFFF])
        code[at : at + 2] = target.to_bytes(2, "big")
    return bytes(code)


def sign(fields: dict[str, Any]) -> SignedTx:
    fields = {"chainId": CHAIN_ID, "gasPrice": 10**9, **fields}
    raw = bytes(Account.sign_transaction(fields, KEY).raw_transaction)
    return decode_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=GAS_LIMIT)


# --- running both ----------------------------------------------------------------------------


def _outcome(state: Any, tx: Any) -> tuple[Any, ...]:
    state.lock_changes()
    computation = state.apply_transaction(tx)
    error = type(computation.error).__name__ if computation.is_error else None
    return (
        error,
        bytes(computation.output),
        PragueVM.finalize_gas_used(tx, computation),
        tuple(computation.get_log_entries()),
        state.make_state_root(),
    )


def _genesis(profile: EvmProfile, code: dict[bytes, bytes]) -> tuple[MemoryDB, bytes]:
    db = MemoryDB()
    state = StateDB(db)
    state.set_balance(SENDER, 10**24)
    for address, program in sorted(code.items()):
        state.set_code(address, program)
        state.set_balance(address, 1000)
        state.set_storage(address, 1, 5)
    state.persist()
    return db, state.state_root


def assert_same(
    profile: EvmProfile, code: dict[bytes, bytes], txs: list[SignedTx], *, metered: bool = False
) -> list:
    """`metered`: the fast side runs eth_call's state class, whose gas meter (the deadline's)
    is charged through consume_gas, the loop's other way of charging."""
    db, root = _genesis(profile, code)
    stock_db, stock_root = _genesis(profile, code)
    assert root == stock_root
    fast_class = _call_state_class(profile.state_class) if metered else profile.state_class
    fast = fast_class(db, execution_context(make_env()), root)
    stock_class = _stock_state_class(profile.state_class)
    stock = stock_class(stock_db, execution_context(make_env()), root)
    results = []
    for i, tx in enumerate(txs):
        expected = _outcome(stock, profile.transaction_builder.decode(tx.raw))
        got = _outcome(fast, tx.tx)
        assert got == expected, f"{profile.name}: transaction {i} differs"
        results.append(got)
    return results


def _table(profile: EvmProfile) -> list[int]:
    return sorted(profile.state_class.computation_class.opcodes)


@pytest.mark.parametrize("profile", [CVM, LITY], ids=lambda p: p.name)
@pytest.mark.parametrize("seed", range(4))
def test_random_programs_match_the_stock_loop(profile: EvmProfile, seed: int) -> None:
    rng = random.Random(seed * 7919 + len(profile.name))
    targets = [(0x2000 + i).to_bytes(20, "big") for i in range(60)]
    addresses = [*targets, SENDER, b"\x00" * 19 + b"\x04"]
    programs = {t: random_program(rng, addresses, _table(profile)) for t in targets}
    txs = []
    for nonce, target in enumerate(targets):
        data = rng.randbytes(rng.randrange(0, 100))
        gas = rng.choice([30_000, 100_000, 400_000])
        txs.append(sign({"nonce": nonce, "to": to_checksum_address(target), "gas": gas,
                         "value": rng.choice([0, 3]), "data": data}))  # fmt: skip
    results = assert_same(profile, programs, txs, metered=seed == 3)
    kinds = {r[0] for r in results}
    # The corpus must reach successes and several kinds of failure, not only one early error.
    assert None in kinds and len(kinds) >= 4, kinds


@pytest.mark.parametrize("profile", [CVM, LITY], ids=lambda p: p.name)
def test_out_of_gas_at_every_point_of_an_erc20_transfer(profile: EvmProfile) -> None:
    artifact = "TestToken.json" if profile is CVM else "TestToken.lity.json"
    token_json = json.loads((REPO / "contracts/build" / artifact).read_text())
    deploy = bytes.fromhex(token_json["bytecode"].removeprefix("0x")) + abi_encode(
        ["uint256"], [10**24]
    )
    token = generate_contract_address(SENDER, 0)
    transfer = selector("transfer(address,uint256)") + abi_encode(
        ["address", "uint256"], [b"\x42" * 20, 5]
    )
    txs = [sign({"nonce": 0, "gas": 3_000_000, "data": deploy})]
    # From the calldata floor to above what the transfer needs (~52k with a new slot).
    for nonce, gas in enumerate(range(22_430, 60_000, 53), start=1):
        txs.append(sign({"nonce": nonce, "gas": gas, "to": to_checksum_address(token),
                         "data": transfer}))  # fmt: skip
    results = assert_same(profile, {}, txs)
    assert results[0][0] is None
    errors = {r[0] for r in results[1:]}
    assert {None, "OutOfGas"} <= errors


def test_out_of_gas_at_every_opcode_of_a_loop() -> None:
    # for i in 10..1: mem[i*33] = mem[i*33 - 1] + calldata[i]; then return mem[0:64]. Memory
    # grows on odd offsets; every gas limit from intrinsic to done runs out somewhere new.
    loop = bytes(
        [0x60, 0x0A, JUMPDEST]  # i = 10; loop:
        + [0x80, 0x60, 0x21, 0x02, 0x80, 0x60, 0x01, 0x90, 0x03, 0x51]  # i*33, mload(i*33-1)
        + [0x82, 0x35, 0x01, 0x90, 0x52]  # + calldataload(i); mstore(i*33, ...)
        + [0x60, 0x01, 0x90, 0x03, 0x80, 0x60, 0x02, 0x57]  # i -= 1; jumpi(loop, i)
        + [0x60, 0x40, 0x60, 0x00, 0xF3]  # return mem[0:64]
    )
    address = b"\x78" * 20
    data = bytes(range(1, 12)).ljust(40, b"\x00")  # mostly zeros: a low calldata floor
    floor = data_floor_gas(data)
    txs = [
        sign({"nonce": n, "to": to_checksum_address(address), "gas": gas, "data": data})
        for n, gas in enumerate(range(floor, floor + 1_200))
    ]
    for profile in (CVM, LITY):
        results = assert_same(profile, {address: loop}, txs)
        assert results[0][0] == "OutOfGas" and results[-1][0] is None


def test_nested_calls_creates_and_reverts_match() -> None:
    # A factory: CREATE a child from init code in memory, CALL it, revert or not on calldata.
    child_runtime = bytes([0x60, 0x2A, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xF3])
    init = (
        bytes([0x69]) + child_runtime + bytes([0x60, 0x00, 0x52])  # PUSH10 runtime, MSTORE
        + bytes([0x60, 0x0A, 0x60, 0x16, 0xF3])  # RETURN mem[22:32]
    )  # fmt: skip
    factory = (
        bytes([0x7F]) + init.ljust(32, b"\x00") + bytes([0x60, 0x00, 0x52])  # init in memory
        + bytes([0x60, len(init), 0x60, 0x00, 0x60, 0x00, 0xF0])  # CREATE
        + bytes([0x60, 0x20, 0x60, 0x40, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x85, 0x5A, 0xF1])
        + bytes([0x60, 0x00, 0x35, 0x60, 0x4F, 0x57])  # JUMPI to the revert if calldata[0]
        + bytes([0x60, 0x20, 0x60, 0x40, 0xF3])  # return the child's answer
        + bytes([JUMPDEST, 0x60, 0x20, 0x60, 0x40, 0xFD])  # revert with it
    )  # fmt: skip
    address = b"\x77" * 20
    txs = [
        sign({"nonce": n, "to": to_checksum_address(address), "gas": gas, "data": data})
        for n, (gas, data) in enumerate(
            [(200_000, b""), (200_000, b"\x01" * 32), (60_000, b""), (54_000, b"")]
        )
    ]
    for profile in (CVM, LITY):
        results = assert_same(profile, {address: factory}, txs)
        assert results[0][0] is None


@settings(max_examples=150, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120))
def test_code_analysis_agrees_with_codestream(code: bytes) -> None:
    from eth.vm.code_stream import CodeStream

    analysis = CodeAnalysis(code)
    stream = CodeStream(code)
    for position in range(len(code) + 2):
        valid = stream.is_valid_opcode(position) and code[position] == JUMPDEST
        assert (position in analysis.jumpdests) == valid


def test_checked_transactions_skip_only_the_stateless_revalidation() -> None:
    """`apply_checked_transaction` (block execution) equals `apply_transaction`, and the
    state's own checks still refuse a wrong nonce, a short balance and a high s."""
    token_json = json.loads((REPO / "contracts/build/TestToken.json").read_text())
    deploy = bytes.fromhex(token_json["bytecode"].removeprefix("0x")) + abi_encode(
        ["uint256"], [10**24]
    )
    token = to_checksum_address(generate_contract_address(SENDER, 0))
    transfer = selector("transfer(address,uint256)") + abi_encode(
        ["address", "uint256"], [b"\x42" * 20, 5]
    )
    txs = [sign({"nonce": 0, "gas": 3_000_000, "data": deploy})]
    txs += [sign({"nonce": n, "gas": 90_000, "to": token, "data": transfer}) for n in (1, 2)]
    db, root = _genesis(CVM, {})
    checked_db, _ = _genesis(CVM, {})
    plain = CVM.state_class(db, execution_context(make_env()), root)
    checked = CVM.state_class(checked_db, execution_context(make_env()), root)
    for tx in txs:
        plain.lock_changes()
        checked.lock_changes()
        a = plain.apply_transaction(CVM.transaction_builder.decode(tx.raw))
        b = checked.apply_checked_transaction(tx.tx, tx.hash)
        assert (a.is_success, a.output, a.get_gas_used(), a.get_log_entries()) == (
            b.is_success,
            b.output,
            b.get_gas_used(),
            b.get_log_entries(),
        )
        assert plain.make_state_root() == checked.make_state_root()
    assert checked.transaction_prechecked is False
    replayed = txs[1]
    poor = sign({"nonce": 3, "gas": 90_000, "to": token, "data": transfer, "gasPrice": 10**30})
    high_s = replayed.tx.copy(s=SECPK1_N - replayed.tx.s)
    for tx, tx_hash, words in [
        (replayed.tx, replayed.hash, "nonce"),
        (poor.tx, poor.hash, "balance"),
        (high_s, replayed.hash, "S value"),
    ]:
        with pytest.raises(ValidationError, match=words):
            checked.apply_checked_transaction(tx, tx_hash)
