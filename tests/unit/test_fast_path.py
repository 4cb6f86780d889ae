"""Differential tests: our executor (fast path and StateDB) against stock py-evm.

Stock py-evm here means `PragueState` with py-evm's own `AccountDB`, transactions applied the
way `VM.apply_transaction` does (lock_changes, apply_transaction, finalize_gas_used), invalid
transactions rejected with ValidationError. The same random transactions go through our
`BlockExecutor`; state roots, receipts, gas and the set of rejected transactions must match.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from eth._utils.address import generate_contract_address
from eth.db.atomic import AtomicDB
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.state import PragueState
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import ValidationError, to_checksum_address
from eth_utils import function_signature_to_4byte_selector as selector

from evm.db import MemoryDB
from evm.executor import BlockEnv, BlockExecutor, TransactionInvalid, execution_context
from evm.profiles import CVM
from evm.state import StateDB
from evm.transactions import SignedTx, decode_transaction

CHAIN_ID = 1234
GAS_LIMIT = 30_000_000
TOKEN = json.loads(
    (Path(__file__).resolve().parents[2] / "contracts/build/TestToken.json").read_text()
)


class StockState(PragueState):
    """py-evm's Prague state exactly, minus Ethereum's system contracts (as our profile)."""

    def set_system_contracts(self) -> None:
        pass


def make_env(coinbase: bytes) -> BlockEnv:
    return BlockEnv(
        number=1,
        timestamp=1_700_000_000,
        coinbase=coinbase,
        gas_limit=GAS_LIMIT,
        mix_hash=b"\x11" * 32,
        chain_id=CHAIN_ID,
        prev_hashes=(b"\x22" * 32,),
    )


def genesis_states(alloc: dict[bytes, int]) -> tuple[StateDB, bytes, AtomicDB, bytes]:
    ours_db = MemoryDB()
    ours = StateDB(ours_db)
    stock_db = AtomicDB()
    stock = StockState(
        stock_db, execution_context(make_env(b"\x00" * 20)), StateDB(MemoryDB()).state_root
    )
    for address, balance in sorted(alloc.items()):
        ours.set_balance(address, balance)
        stock.set_balance(address, balance)
    ours.persist()
    stock.persist()
    assert ours.state_root == stock.state_root
    return ours, ours.state_root, stock_db, stock.state_root


def run_stock(db: AtomicDB, root: bytes, env: BlockEnv, txs: list[SignedTx]):
    state = StockState(db, execution_context(env), root)
    results = []
    cumulative = 0
    for tx in txs:
        # Fresh py-evm objects: nothing cached from our side (sender recovered by py-evm).
        stock_tx = CVM.transaction_builder.decode(tx.raw)
        state.lock_changes()
        try:
            computation = state.apply_transaction(stock_tx)
        except ValidationError:
            results.append(None)
            continue
        gas = PragueVM.finalize_gas_used(stock_tx, computation)
        cumulative += gas
        status = b"" if computation.is_error else b"\x01"
        results.append(stock_tx.make_receipt(status, cumulative, computation.get_log_entries()))
    return state.make_state_root(), results


def run_ours(db: MemoryDB, root: bytes, env: BlockEnv, txs: list[SignedTx], fast: bool):
    executor = BlockExecutor(CVM, db, root, env, fast_path=fast)
    results = []
    for tx in txs:
        try:
            results.append(executor.apply(tx))
        except TransactionInvalid:
            results.append(None)
    return executor.finish(), results


def sign(key: bytes, fields: dict) -> SignedTx:
    fields = {"chainId": CHAIN_ID, **fields}
    raw = bytes(Account.sign_transaction(fields, key).raw_transaction)
    return decode_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=GAS_LIMIT)


def random_transfer(rng: random.Random, key: bytes, nonce: int, to: bytes, balance: int) -> dict:
    kind = rng.choice(["legacy", "2930", "1559", "1559"])
    price = rng.choice([0, 1, 2 * 10**9, 7 * 10**9])
    value = rng.choice([0, 1, rng.randrange(10**18), balance // 2, balance])
    gas = rng.choice([21000, 21000, 30000, 100_000])
    fields: dict = {"to": to_checksum_address(to), "value": value, "gas": gas, "nonce": nonce}
    if kind == "legacy":
        fields["gasPrice"] = price
    else:
        if kind == "2930":
            fields["gasPrice"] = price
            fields["type"] = 1
        else:
            fields["maxFeePerGas"] = price + rng.choice([0, 10**9])
            fields["maxPriorityFeePerGas"] = price
        if rng.random() < 0.3:
            fields["accessList"] = [
                {"address": to_checksum_address(to), "storageKeys": ["0x" + "00" * 31 + "01"]}
            ]
            fields["gas"] = max(gas, 30000)
    return fields


@pytest.mark.parametrize("seed", range(12))
def test_fast_path_matches_stock_pyevm_on_random_transfers(seed: int) -> None:
    rng = random.Random(seed)
    keys = [bytes([i + 1]) * 32 for i in range(6)]
    addresses = [bytes.fromhex(Account.from_key(k).address[2:]) for k in keys]
    strangers = [rng.randbytes(20) for _ in range(4)]
    alloc = {a: rng.choice([0, 21000 * 2 * 10**9, 10**18, 10**21]) for a in addresses}
    alloc[strangers[0]] = 5  # an existing non-sender account
    _, root, stock_db, _ = genesis_states(alloc)
    ours_fast_db = MemoryDB()
    ours_slow_db = MemoryDB()
    for target in (ours_fast_db, ours_slow_db):
        state = StateDB(target)
        for address, balance in sorted(alloc.items()):
            state.set_balance(address, balance)
        state.persist()
    coinbase = rng.choice([addresses[0], strangers[1], b"\x00" * 20])
    nonces = [0] * len(keys)
    txs = []
    for _ in range(60):
        i = rng.randrange(len(keys))
        nonce = nonces[i]
        roll = rng.random()
        if roll < 0.1:
            nonce += rng.choice([1, 5])  # gap: invalid
        elif roll < 0.15 and nonce > 0:
            nonce -= 1  # replay: invalid
        else:
            nonces[i] += 1
        to = rng.choice(addresses + strangers)
        txs.append(sign(keys[i], random_transfer(rng, keys[i], nonce, to, alloc[addresses[i]])))
    env = make_env(coinbase)
    stock_root, stock_receipts = run_stock(stock_db, root, env, txs)
    fast, fast_receipts = run_ours(ours_fast_db, root, env, txs, fast=True)
    slow, slow_receipts = run_ours(ours_slow_db, root, env, txs, fast=False)
    rejected = [r is None for r in stock_receipts]
    assert [r is None for r in fast_receipts] == rejected
    assert [r is None for r in slow_receipts] == rejected
    assert 0 < rejected.count(False)
    for ours_receipts in (fast_receipts, slow_receipts):
        assert [r.encode() if r else None for r in ours_receipts] == [
            r.encode() if r else None for r in stock_receipts
        ]
    assert fast.state_root == stock_root
    assert slow.state_root == stock_root


@pytest.mark.parametrize("seed", range(6))
def test_fast_path_matches_the_cvm_state_with_a_base_fee(seed: int) -> None:
    """With a base fee (DECISIONS "Fees for default clients") stock py-evm is no reference (it
    burns the base fee and refuses fee caps below it): the fast path must equal our own EVM
    path, whose CvmState pays min(fee cap, base + tip) to the coinbase and refuses nothing for
    a low fee cap."""
    rng = random.Random(1000 + seed)
    keys = [bytes([i + 1]) * 32 for i in range(6)]
    addresses = [bytes.fromhex(Account.from_key(k).address[2:]) for k in keys]
    alloc = {a: rng.choice([0, 21000 * 2 * 10**9, 10**18, 10**21]) for a in addresses}
    dbs = (MemoryDB(), MemoryDB())
    for target in dbs:
        state = StateDB(target)
        for address, balance in sorted(alloc.items()):
            state.set_balance(address, balance)
        state.persist()
        root = state.state_root
    nonces = [0] * len(keys)
    txs = []
    for _ in range(40):
        i = rng.randrange(len(keys))
        nonce = nonces[i]
        nonces[i] += 1
        to = rng.choice(addresses + [b"\x33" * 20])
        txs.append(sign(keys[i], random_transfer(rng, keys[i], nonce, to, alloc[addresses[i]])))
    env = replace(make_env(b"\x44" * 20), base_fee=2 * 10**9)
    fast, fast_receipts = run_ours(dbs[0], root, env, txs, fast=True)
    slow, slow_receipts = run_ours(dbs[1], root, env, txs, fast=False)
    assert [r.encode() if r else None for r in fast_receipts] == [
        r.encode() if r else None for r in slow_receipts
    ]
    assert any(r is not None for r in fast_receipts)
    assert fast.state_root == slow.state_root
    state = StateDB(dbs[0], fast.state_root)
    paid, cumulative = 0, 0
    for tx, receipt in zip(txs, fast_receipts, strict=True):
        if receipt is not None:
            paid += tx.price(env.base_fee) * (receipt.gas_used - cumulative)
            cumulative = receipt.gas_used
    assert state.get_balance(b"\x44" * 20) == paid


def test_contracts_on_statedb_match_stock_pyevm() -> None:
    """Deploy and use the ERC-20 (storage writes, logs, reverts, refunds) on both states."""
    key = b"\x07" * 32
    owner = bytes.fromhex(Account.from_key(key).address[2:])
    other = b"\x42" * 20
    alloc = {owner: 10**22}
    _, root, stock_db, _ = genesis_states(alloc)
    ours_db = MemoryDB()
    state = StateDB(ours_db)
    state.set_balance(owner, 10**22)
    state.persist()
    deploy = TOKEN["bytecode"] + abi_encode(["uint256"], [10**24]).hex()
    token = generate_contract_address(owner, 0)
    calls = [
        {"data": deploy, "to": b""},
        {
            "data": selector("transfer(address,uint256)")
            + abi_encode(["address", "uint256"], [other, 5])
        },
        {
            "data": selector("transfer(address,uint256)")
            + abi_encode(["address", "uint256"], [other, 10**30])
        },
        {
            "data": selector("storeAt(uint256,uint256)")
            + abi_encode(["uint256", "uint256"], [99, 7])
        },
        {
            "data": selector("storeAt(uint256,uint256)")
            + abi_encode(["uint256", "uint256"], [99, 0])
        },
        {"data": selector("failWith(string)") + abi_encode(["string"], ["boom"])},
        {"data": selector("burn(uint256)") + abi_encode(["uint256"], [1])},
    ]
    txs = []
    for nonce, call in enumerate(calls):
        fields = {
            "nonce": nonce,
            "gas": 2_000_000,
            "maxFeePerGas": 10**9,
            "maxPriorityFeePerGas": 10**9,
            "data": call["data"] if isinstance(call["data"], str) else "0x" + call["data"].hex(),
        }
        if call.get("to", None) != b"":
            fields["to"] = to_checksum_address(token)
        txs.append(sign(key, fields))
    env = make_env(b"\x00" * 20)
    stock_root, stock_receipts = run_stock(stock_db, root, env, txs)
    ours, our_receipts = run_ours(ours_db, root, env, txs, fast=True)
    assert [r.encode() for r in our_receipts] == [r.encode() for r in stock_receipts]
    assert [r.state_root for r in our_receipts] == [
        b"\x01",
        b"\x01",
        b"",
        b"\x01",
        b"\x01",
        b"",
        b"\x01",
    ]
    assert ours.state_root == stock_root


@pytest.mark.parametrize("seed", range(6))
def test_a_fee_recipient_gets_exactly_what_stock_pyevm_pays_the_coinbase(seed: int) -> None:
    """With `fee_recipient` R and a proposer coinbase C that holds nothing, both of our paths
    end in the state stock py-evm reaches with coinbase R: R gains Σ gasUsed × tip and C is
    never left behind as an empty account."""
    rng = random.Random(1000 + seed)
    keys = [bytes([i + 1]) * 32 for i in range(4)]
    addresses = [bytes.fromhex(Account.from_key(k).address[2:]) for k in keys]
    pool = b"\xff" * 20
    alloc = {a: rng.choice([21000 * 2 * 10**9, 10**18, 10**21]) for a in addresses}
    alloc[pool] = 1  # Hold always holds something
    _, root, stock_db, _ = genesis_states(alloc)
    proposer = rng.randbytes(20)
    nonces = [0] * len(keys)
    txs = []
    for _ in range(30):
        i = rng.randrange(len(keys))
        txs.append(sign(keys[i], random_transfer(rng, keys[i], nonces[i], rng.choice(addresses),
                                                 alloc[addresses[i]])))  # fmt: skip
        nonces[i] += 1
    stock_root, stock_receipts = run_stock(stock_db, root, make_env(pool), txs)
    redirected = replace(make_env(proposer), fee_recipient=pool)
    included = [(tx, r) for tx, r in zip(txs, stock_receipts, strict=True) if r is not None]
    cumulative = [0] + [r.gas_used for _, r in included]  # receipts count gas cumulatively
    fees = sum(tx.tip * (cumulative[i + 1] - cumulative[i]) for i, (tx, _) in enumerate(included))
    for fast in (True, False):
        db = MemoryDB()
        state = StateDB(db)
        for address, balance in sorted(alloc.items()):
            state.set_balance(address, balance)
        state.persist()
        result, receipts = run_ours(db, root, redirected, txs, fast=fast)
        assert [r.encode() if r else None for r in receipts] == [
            r.encode() if r else None for r in stock_receipts
        ]
        assert result.state_root == stock_root
        after = StateDB(db, result.state_root)
        assert after.get_balance(pool) - 1 == fees > 0
        assert not after.account_exists(proposer)
