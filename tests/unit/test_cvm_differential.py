"""Differential test: the `cvm` profile is stock py-evm Prague on standard bytecode.

Stock means py-evm's `PragueState` on its own `AccountDB` (minus Ethereum's system contracts,
as in test_fast_path.py). Ours is `CVM.state_class` (CvmState: our StateDB, the CVM opcode table,
the per-transaction CVM values). The same signed transactions run on both: seeded random
programs made only of Prague opcodes (deployed in genesis, one call each) and the repo's ERC-20.
Success, output, gas, logs and the state root after every transaction must be equal. The CVM
bytes (0x0c-0x0e, 0x2a-0x2d, 0xf6-0xf9) are invalid in Prague, so the generator never emits them
as opcodes; it is the rest of the table that must be untouched.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from eth._utils.address import generate_contract_address
from eth.db.atomic import AtomicDB
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.opcodes import PRAGUE_OPCODES
from eth.vm.forks.prague.state import PragueState
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import to_checksum_address

from evm.cvm import CVM_OPCODES
from evm.db import MemoryDB
from evm.executor import BlockEnv, execution_context
from evm.profiles import CVM
from evm.state import StateDB
from evm.transactions import SignedTx, decode_transaction

CHAIN_ID = 1234
GAS_LIMIT = 30_000_000
KEY = b"\x31" * 32
SENDER = bytes.fromhex(Account.from_key(KEY).address[2:])
RICH = b"\x44" * 20  # an existing account with balance and storage, for BALANCE/CALL/SLOAD
TOKEN = json.loads(
    (Path(__file__).resolve().parents[2] / "contracts/build/TestToken.json").read_text()
)
PRAGUE_BYTES = sorted(PRAGUE_OPCODES)
# Random programs hit SELFDESTRUCT, whose py-evm deprecation warning is noise here.
pytestmark = pytest.mark.filterwarnings("ignore:SELFDESTRUCT opcode present")
PUSH1, PUSH32 = 0x60, 0x7F


class StockState(PragueState):
    def set_system_contracts(self) -> None:
        pass


def make_env() -> BlockEnv:
    return BlockEnv(
        number=7,
        timestamp=1_700_000_000,
        coinbase=b"\xc0" * 20,
        gas_limit=GAS_LIMIT,
        mix_hash=b"\x11" * 32,
        chain_id=CHAIN_ID,
        prev_hashes=(b"\x22" * 32, b"\x23" * 32),
        validator_owners=frozenset({SENDER}),
    )


def test_cvm_bytes_are_free_in_prague() -> None:
    assert not set(CVM_OPCODES) & set(PRAGUE_OPCODES)
    assert {b: CVM.state_class.computation_class.opcodes[b] for b in PRAGUE_OPCODES} == dict(
        PRAGUE_OPCODES
    )


# --- random programs -----------------------------------------------------------------------


def push_operand(rng: random.Random, addresses: list[bytes]) -> bytes:
    roll = rng.random()
    if roll < 0.6:  # small: offsets, sizes, slots, shift counts, jump targets
        return bytes([PUSH1, rng.randrange(0, 0x48)])
    if roll < 0.75:
        return bytes([0x73]) + rng.choice(addresses)  # PUSH20 address
    if roll < 0.85:
        return bytes([0x61]) + rng.randrange(0, 0x4000).to_bytes(2, "big")  # PUSH2 gas-ish
    edge = rng.choice([0, 1, 2**255, 2**255 - 1, 2**256 - 1, rng.getrandbits(256)])
    return bytes([PUSH32]) + edge.to_bytes(32, "big")


def random_program(rng: random.Random, addresses: list[bytes]) -> bytes:
    code = bytearray()
    for _ in range(rng.randrange(3, 30)):
        # Enough operands that most opcodes find their arguments (CALL pops 7, LOG4 6).
        for _ in range(rng.randrange(1, 8)):
            code += push_operand(rng, addresses)
        op = rng.choice(PRAGUE_BYTES)
        code.append(op)
        if PUSH1 <= op <= PUSH32:
            code += rng.randbytes(op - PUSH1 + 1)
    if rng.random() < 0.5:  # often end by returning some memory, so outputs get compared
        code += bytes([PUSH1, rng.randrange(0, 0x60), PUSH1, rng.randrange(0, 0x40), 0xF3])
    return bytes(code)


# --- the two executions --------------------------------------------------------------------


def genesis(alloc_code: dict[bytes, bytes]) -> tuple[MemoryDB, AtomicDB, bytes]:
    ours_db = MemoryDB()
    stock_db = AtomicDB()
    empty = StateDB(MemoryDB()).state_root
    ours = StateDB(ours_db)
    stock = StockState(stock_db, execution_context(make_env()), empty)
    for target in (ours, stock):
        target.set_balance(SENDER, 10**24)
        target.set_balance(RICH, 12345)
        target.set_storage(RICH, 1, 99)
        for address, code in sorted(alloc_code.items()):
            target.set_code(address, code)
            target.set_balance(address, 1000)
    ours.persist()
    stock.persist()
    assert ours.state_root == stock.state_root
    return ours_db, stock_db, ours.state_root


def sign(fields: dict) -> SignedTx:
    fields = {"chainId": CHAIN_ID, "maxFeePerGas": 10**9, "maxPriorityFeePerGas": 10**9, **fields}
    raw = bytes(Account.sign_transaction(fields, KEY).raw_transaction)
    return decode_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=GAS_LIMIT)


def outcome(state, vm_class, tx) -> tuple:
    state.lock_changes()
    computation = state.apply_transaction(tx)
    return (
        computation.is_success,
        bytes(computation.output),
        vm_class.finalize_gas_used(tx, computation),
        tuple(computation.get_log_entries()),
        state.make_state_root(),
    )


def assert_same_execution(alloc_code: dict[bytes, bytes], txs: list[SignedTx]) -> list[tuple]:
    ours_db, stock_db, root = genesis(alloc_code)
    env = make_env()
    ours = CVM.state_class(ours_db, execution_context(env), root)
    stock = StockState(stock_db, execution_context(env), root)
    results = []
    for i, tx in enumerate(txs):
        stock_tx = CVM.transaction_builder.decode(tx.raw)  # py-evm's own object, nothing shared
        expected = outcome(stock, PragueVM, stock_tx)
        got = outcome(ours, CVM.vm_class, tx.tx)
        assert got == expected, f"transaction {i} differs"
        results.append(got)
    return results


@pytest.mark.parametrize("seed", range(4))
def test_random_prague_programs_match_stock_pyevm(seed: int) -> None:
    rng = random.Random(seed)
    targets = [(0x1000 + i).to_bytes(20, "big") for i in range(100)]
    addresses = targets + [SENDER, RICH, b"\x00" * 19 + b"\x04", rng.randbytes(20)]
    programs = {target: random_program(rng, addresses) for target in targets}
    txs = []
    for nonce, target in enumerate(targets):
        fields = {
            "nonce": nonce,
            "to": to_checksum_address(target),
            "gas": rng.choice([60_000, 300_000]),
            "value": rng.choice([0, 0, 7]),
            "data": "0x" + rng.randbytes(rng.randrange(0, 70)).hex(),
        }
        txs.append(sign(fields))
    results = assert_same_execution(programs, txs)
    # The generator must exercise both outcomes, not only early failures.
    successes = sum(r[0] for r in results)
    assert 15 <= successes <= 85


def test_erc20_matches_stock_pyevm() -> None:
    deploy = TOKEN["bytecode"] + abi_encode(["uint256"], [10**24]).hex()
    token = generate_contract_address(SENDER, 0)
    other = b"\x42" * 20
    calls = [
        ("transfer(address,uint256)", ["address", "uint256"], [other, 5]),
        ("transfer(address,uint256)", ["address", "uint256"], [other, 10**30]),  # reverts
        ("balanceOf(address)", ["address"], [other]),
        ("storeAt(uint256,uint256)", ["uint256", "uint256"], [99, 7]),
        ("storeAt(uint256,uint256)", ["uint256", "uint256"], [99, 0]),  # refund
        ("failWith(string)", ["string"], ["boom"]),
        ("burn(uint256)", ["uint256"], [1]),
    ]
    txs = [sign({"nonce": 0, "gas": 3_000_000, "data": "0x" + deploy.removeprefix("0x")})]
    for nonce, (signature, types, values) in enumerate(calls, start=1):
        data = selector(signature) + abi_encode(types, values)
        txs.append(
            sign({"nonce": nonce, "gas": 500_000, "to": to_checksum_address(token), "data": data})
        )
    results = assert_same_execution({}, txs)
    assert [r[0] for r in results] == [True, True, False, True, True, True, False, True]
    assert int.from_bytes(results[3][1], "big") == 5  # balanceOf(other)
