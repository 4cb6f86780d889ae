"""One transaction or receipt read on its own (issue #13): the answers of eth_getTransactionReceipt,
eth_getTransactionByHash and cmt_getTransactionByHash, which read one entry of a block and the
transaction's "t" record (gas used, first log index), equal the whole-block answers
(eth_getBlockReceipts, eth_getBlockByNumber(n, true), eth_getLogs, cmt_getBlockByNumber(n, true)),
which count over the block; on blocks with many transactions and logs, a contract creation,
failed transactions and a system (staking) transaction; after a rollback, after reopening the
database, and on a database whose records predate the two new fields.

The chain (a LevelDB in tmp_path, the node's modules): block 1 has 40 transfers from two
senders (not ALICE); block 2 deploys TestToken (a creation with a log) and pays tokens out;
block 3 mixes token transfers (one log each), storeAt (a log), two reverting calls (failWith, a
transfer beyond the balance), plain transfers and a staking delegation (a log).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_hash.auto import keccak

from cybermiles_node.application import schema
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.staking_txs import CmtTransactions
from cybermiles_node.node import chain_modules
from evm.db import LevelDB
from genesis import dev_accounts, devnet_genesis
from rpc import Dispatcher
from rpc.cmt_chain import CmtChainApi
from tests.dispatch_calls import DispatcherCalls
from tests.eth_api import eth_api

REPO = Path(__file__).resolve().parents[2]
GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
OWNER, ALICE, BOB, CAROL = dev_accounts(4)  # OWNER owns the genesis validator
PRICE = 2_000_000_000
TOKEN_CODE = bytes.fromhex(
    json.loads((REPO / "contracts" / "build" / "TestToken.json").read_text())["bytecode"][2:]
)
TOKEN = keccak(rlp.encode([ALICE.address, 0]))[12:]  # ALICE's first transaction deploys it


def word(value: int | bytes) -> bytes:
    return value.to_bytes(32, "big") if isinstance(value, int) else value.rjust(32, b"\x00")


def call(name: str, *args: int | bytes) -> bytes:
    return keccak(name.encode())[:4] + b"".join(word(a) for a in args)


def fail_with(reason: bytes) -> bytes:
    padded = reason.ljust((len(reason) + 31) // 32 * 32, b"\x00")
    return keccak(b"failWith(string)")[:4] + word(32) + word(len(reason)) + padded


class Node(DispatcherCalls):
    def __init__(self, path: Path) -> None:
        self.db = LevelDB(path)
        chain = Chain(self.db, GENESIS, modules=chain_modules(), rewindable=True)
        self.app = ChainApp(chain)
        self.dispatcher = Dispatcher()
        api = eth_api(self.app)
        api.install(self.dispatcher)
        CmtChainApi(
            api, CmtTransactions(self.app), chain_name="t", decision=lambda _: None
        ).install(self.dispatcher)
        self.nonces: dict[bytes, int] = {}

    def send(
        self, account: Any, to: bytes, *, data: bytes = b"", value: int = 0, gas: int = 21_000
    ) -> None:
        nonce = self.nonces.get(account.address, 0)
        self.nonces[account.address] = nonce + 1
        fields = {
            "to": to,
            "value": value,
            "gas": gas,
            "gasPrice": PRICE,
            "nonce": nonce,
            "data": data,
            "chainId": GENESIS.chain_id,
        }
        self.app.check_tx(
            bytes(Account.sign_transaction(fields, account.private_key).raw_transaction)
        )

    def delegate(self, account: Any) -> None:
        body = {
            "type": "stake/delegate",
            "data": {"validator_address": "0x" + OWNER.address.hex(), "amount": str(10 * 10**18)},
        }
        nonce = self.nonces.get(account.address, 0)
        self.nonces[account.address] = nonce + 1
        fields = {
            "to": b"",
            "value": 0,
            "gas": 0,
            "gasPrice": 0,
            "nonce": nonce,
            "data": json.dumps(body).encode(),
            "chainId": GENESIS.chain_id,
        }
        self.app.check_tx(
            bytes(Account.sign_transaction(fields, account.private_key).raw_transaction)
        )

    def produce(self) -> int:
        ctx = self.app.next_context(
            time=int(self.app.head.timestamp) + 1,
            coinbase=OWNER.address,
            randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )
        self.app.commit(self.app.build_block(ctx))
        assert len(self.app.mempool) == 0
        return int(self.app.head.block_number)

    def close(self) -> None:
        self.db.close()


def fill(node: Node) -> None:
    for n in range(20):
        node.send(BOB, ALICE.address, value=n + 1)
        node.send(CAROL, bytes([n + 1]) * 20, value=1)
    node.produce()
    node.send(ALICE, b"", data=TOKEN_CODE + word(10**24), gas=2_000_000)
    node.send(
        ALICE, TOKEN, data=call("transfer(address,uint256)", CAROL.address, 10**20), gas=100_000
    )
    node.produce()
    for n in range(5):
        node.send(
            ALICE, TOKEN, data=call("transfer(address,uint256)", BOB.address, n + 1), gas=100_000
        )
        node.send(
            CAROL, TOKEN, data=call("transfer(address,uint256)", ALICE.address, 7), gas=100_000
        )
        node.send(BOB, OWNER.address, value=1)
    node.send(ALICE, TOKEN, data=call("storeAt(uint256,uint256)", 5, 9), gas=100_000)
    node.send(ALICE, TOKEN, data=fail_with(b"no"), gas=100_000)  # reverts
    node.send(
        CAROL, TOKEN, data=call("transfer(address,uint256)", BOB.address, 10**30), gas=100_000
    )
    node.delegate(BOB)
    node.send(ALICE, TOKEN, data=call("transfer(address,uint256)", BOB.address, 1), gas=100_000)
    node.produce()


@pytest.fixture
def node(tmp_path: Path) -> Any:
    made = Node(tmp_path / "db")
    fill(made)
    yield made
    made.close()


def tx_hashes(node: Node, number: int) -> list[str]:
    return node.result("eth_getBlockByNumber", hex(number), False)["transactions"]


def assert_lookups_match_whole_blocks(node: Node) -> None:
    """Every one-transaction answer equals its entry in the whole-block answers."""
    head = int(node.app.head.block_number)
    for number in range(1, head + 1):
        block = node.result("eth_getBlockByNumber", hex(number), True)
        receipts = node.result("eth_getBlockReceipts", hex(number))
        cmt_block = node.result("cmt_getBlockByNumber", number, True)
        logs = node.result("eth_getLogs", {"blockHash": block["hash"]})
        assert [log for r in receipts for log in r["logs"]] == logs
        assert len(receipts) == len(block["transactions"]) > 0
        for index, (tx, receipt) in enumerate(zip(block["transactions"], receipts, strict=True)):
            assert node.result("eth_getTransactionReceipt", tx["hash"]) == receipt
            assert node.result("eth_getTransactionByHash", tx["hash"]) == tx
            assert (
                node.result("eth_getTransactionByBlockNumberAndIndex", hex(number), hex(index))
                == tx
            )
            cmt_tx = node.result("cmt_getTransactionByHash", tx["hash"])
            assert json.loads(base64.b64decode(cmt_block["block"]["data"]["txs"][index])) == cmt_tx


def test_the_chain_has_what_the_lookups_must_get_right(node: Node) -> None:
    """Blocks of many transactions, a creation, failures, several logs per block, a system tx."""
    receipts = node.result("eth_getBlockReceipts", "0x3")
    statuses = [r["status"] for r in receipts]
    assert statuses.count("0x0") == 2 and len(receipts) == 20
    assert [int(log["logIndex"], 16) for r in receipts for log in r["logs"]] == list(range(13))
    assert any(r["to"] is None for r in receipts)  # the delegation's envelope has no recipient
    assert sum(int(r["gasUsed"], 16) for r in receipts) == int(
        node.result("eth_getBlockByNumber", "0x3", False)["gasUsed"], 16
    )
    creation = node.result("eth_getBlockReceipts", "0x2")[0]
    assert creation["contractAddress"] == "0x" + TOKEN.hex() and creation["logs"]
    assert len(node.result("eth_getBlockReceipts", "0x1")) == 40


def test_one_receipt_matches_its_block_and_its_record(node: Node) -> None:
    assert_lookups_match_whole_blocks(node)
    receipt = node.result("eth_getBlockReceipts", "0x3")[7]
    value = node.db.get(schema.tx_location_key(bytes.fromhex(receipt["transactionHash"][2:])))
    assert value is not None
    assert schema.decode_tx_record(value) == schema.TxRecord(
        3, 7, int(receipt["gasUsed"], 16), int(receipt["logs"][0]["logIndex"], 16)
    )


def test_after_a_rollback_the_lookups_answer_the_new_blocks(node: Node) -> None:
    gone = tx_hashes(node, 3)
    app = node.app
    app.chain.rollback(2)  # what evm_revert does (application/dev_chain.py `_rewind`)
    app.mempool.clear(app.chain.state_at())
    app.pending_system.rebuild()
    for tx_hash in gone:
        assert node.result("eth_getTransactionReceipt", tx_hash) is None
        assert node.result("eth_getTransactionByHash", tx_hash) is None
    node.nonces = {
        a.address: node.app.chain.state_at().get_nonce(a.address) for a in (ALICE, BOB, CAROL)
    }
    node.send(CAROL, TOKEN, data=call("transfer(address,uint256)", BOB.address, 3), gas=100_000)
    node.send(BOB, OWNER.address, value=5)
    node.send(ALICE, TOKEN, data=call("storeAt(uint256,uint256)", 1, 2), gas=100_000)
    assert node.produce() == 3
    assert_lookups_match_whole_blocks(node)
    assert len(node.result("eth_getBlockReceipts", "0x3")) == 3


def test_after_a_restart_the_lookups_read_the_stored_records(tmp_path: Path) -> None:
    first = Node(tmp_path / "db")
    fill(first)
    before = {
        h: first.result("eth_getTransactionReceipt", h)
        for n in (1, 2, 3)
        for h in tx_hashes(first, n)
    }
    first.close()
    again = Node(tmp_path / "db")
    try:
        assert {h: again.result("eth_getTransactionReceipt", h) for h in before} == before
        assert_lookups_match_whole_blocks(again)
    finally:
        again.close()


def test_a_database_without_the_new_fields_still_answers(tmp_path: Path) -> None:
    """A release before the gas/log-index fields wrote 12-byte "t" records: the lookups count
    over the block instead, with the same answers."""
    first = Node(tmp_path / "db")
    fill(first)
    hashes = [h for n in (1, 2, 3) for h in tx_hashes(first, n)]
    before = {h: first.result("eth_getTransactionReceipt", h) for h in hashes}
    old_records = {}
    for tx_hash in hashes:
        key = schema.tx_location_key(bytes.fromhex(tx_hash[2:]))
        value = first.db.get(key)
        assert value is not None and len(value) == 24
        record = schema.decode_tx_record(value)
        old_records[key] = schema.encode_tx_record(schema.TxRecord(record.number, record.index))
    first.db.write_batch(old_records, sync=True)
    first.close()
    again = Node(tmp_path / "db")
    try:
        for key in old_records:
            assert len(again.db.get(key) or b"") == 12
        assert {h: again.result("eth_getTransactionReceipt", h) for h in hashes} == before
        assert_lookups_match_whole_blocks(again)
    finally:
        again.close()


def test_tx_records_round_trip_and_old_records_have_no_receipt_fields() -> None:
    full = schema.TxRecord(2**40, 70_000, 29_999_999, 123_456)
    assert schema.decode_tx_record(schema.encode_tx_record(full)) == full
    old = schema.encode_tx_record(schema.TxRecord(9, 3))
    assert len(old) == 12
    assert schema.decode_tx_record(old) == schema.TxRecord(9, 3, None, None)
    assert schema.decode_tx_record(old).location == (9, 3)
