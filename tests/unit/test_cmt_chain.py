"""The cmt_* chain helpers (rpc/cmt_chain.py) and the pending-nonce switch (rpc/eth.py), in
process over a real ChainApp (MemoryDB, the node's modules) with blocks made by the test.

The chain: block 1 holds an EVM transfer and a staking delegation (a SPEC §5 envelope), both
signed with eth_account; a second transfer then waits in the pool, and a third one with a nonce
gap waits as queued. Shapes are checked against Travis's (api/cmt.go via web3-cmt.js's docs).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.staking_txs import CmtTransactions
from cybermiles_node.node import chain_modules
from cybermiles_node.operator.config import RpcConfig, load_config
from evm.db import MemoryDB
from genesis import dev_accounts, devnet_genesis
from rpc import Dispatcher
from rpc.cmt_chain import CmtChainApi, Decision, cmt_hash
from tests.dispatch_calls import DispatcherCalls
from tests.eth_api import eth_api

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
OWNER, SENDER, LATE = dev_accounts(3)  # OWNER owns the genesis validator
RECIPIENT = "0x" + "09" * 20
CMT = 10**18
PRICE = 2_000_000_000
CHAIN_NAME = "cybermiles-test"
DECIDED = Decision(
    block_id={"hash": "0xb1", "parts": {"total": 1, "hash": "AB"}},
    proposer_address="AA",
    validators_hash="BB",
    next_validators_hash="CC",
    last_commit_hash="DD",
    last_commit={"height": "0", "round": 0, "block_id": {}, "signatures": []},
    evidence=[],
)


def transfer(account: Any, nonce: int, value: int = 1) -> bytes:
    fields = {
        "to": to_checksum_address(RECIPIENT),
        "value": value,
        "gas": 21_000,
        "gasPrice": PRICE,
        "nonce": nonce,
        "chainId": GENESIS.chain_id,
    }
    return bytes(Account.sign_transaction(fields, account.private_key).raw_transaction)


def delegation(account: Any, nonce: int) -> bytes:
    body = {
        "type": "stake/delegate",
        "data": {"validator_address": "0x" + OWNER.address.hex(), "amount": str(10 * CMT)},
    }
    fields = {
        "to": b"",
        "value": 0,
        "gas": 0,
        "gasPrice": 0,
        "nonce": nonce,
        "data": json.dumps(body).encode(),
        "chainId": GENESIS.chain_id,
    }
    return bytes(Account.sign_transaction(fields, account.private_key).raw_transaction)


@dataclass
class Node(DispatcherCalls):
    app: ChainApp
    dispatcher: Dispatcher
    decided: dict[int, Decision]

    def produce(self) -> None:
        ctx = self.app.next_context(
            time=int(self.app.head.timestamp) + 1,
            coinbase=OWNER.address,
            randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )
        self.app.commit(self.app.build_block(ctx))


def make_node(*, pending_nonce_compat: bool = False) -> Node:
    app = ChainApp(Chain(MemoryDB(), GENESIS, modules=chain_modules()))
    api = eth_api(app, pending_nonce_compat=pending_nonce_compat)
    dispatcher = Dispatcher()
    api.install(dispatcher)
    decided: dict[int, Decision] = {}
    CmtChainApi(api, CmtTransactions(app), chain_name=CHAIN_NAME, decision=decided.get).install(
        dispatcher
    )
    return Node(app, dispatcher, decided)


@pytest.fixture
def node() -> Node:
    """Block 1: a transfer (index 0) and a delegation (index 1) by SENDER; then SENDER's nonce-2
    transfer pending and LATE's nonce-1 transfer queued (a gap)."""
    net = make_node()
    net.app.check_tx(transfer(SENDER, 0))
    net.app.check_tx(delegation(SENDER, 1))
    net.produce()
    net.app.check_tx(transfer(SENDER, 2))
    net.app.check_tx(transfer(LATE, 1))
    return net


def hex_of(raw: bytes) -> str:
    return "0x" + raw.hex()


def _keccak_hex(raw: bytes) -> str:
    return hex_of(keccak(raw))


# -- cmt_syncing ------------------------------------------------------------------------------
def test_syncing_is_tendermint_sync_info_with_numbers_for_heights(node: Node) -> None:
    head = node.app.head
    assert node.result("cmt_syncing") == {
        "latest_block_hash": hex_of(head.hash),
        "latest_app_hash": hex_of(head.state_root),
        "latest_block_height": 1,
        "latest_block_time": "2023-11-14T22:13:21Z",
        "catching_up": False,
        "syncing": False,
    }
    assert head.timestamp == GENESIS.genesis_time + 1


# -- cmt_getBlockByNumber ---------------------------------------------------------------------
def test_block_by_number_is_a_tendermint_result_block_with_base64_raw_txs(node: Node) -> None:
    head = node.app.head
    block = node.result("cmt_getBlockByNumber", 1, False)
    header = block["block"]["header"]
    assert block["block_meta"]["header"] == header
    assert header == {
        "chain_id": CHAIN_NAME,
        "height": 1,
        "time": "2023-11-14T22:13:21Z",
        "num_txs": 2,
        "last_block_id": {
            "hash": hex_of(head.parent_hash),
            "parts": {"total": 0, "hash": ""},
        },
        "last_commit_hash": "",
        "data_hash": hex_of(head.transaction_root),
        "validators_hash": "",
        "next_validators_hash": "",
        "consensus_hash": "",
        "app_hash": hex_of(head.state_root),
        "last_results_hash": "",
        "evidence_hash": "",
        "proposer_address": "",
    }
    assert block["block_meta"]["block_id"] == {
        "hash": hex_of(head.hash),
        "parts": {"total": 0, "hash": ""},
    }
    raws = [base64.b64decode(t) for t in block["block"]["data"]["txs"]]
    assert raws == [transfer(SENDER, 0), delegation(SENDER, 1)]
    assert block["block"]["evidence"] == {"evidence": None}
    assert block["block"]["last_commit"] is None
    # web3-cmt.js sends getCmtBlock(78) as [78, false]; a hex height and a missing flag work too
    assert node.result("cmt_getBlockByNumber", "0x1") == block
    assert node.result("cmt_getBlockByNumber", 1, None) == block


def test_decode_tx_replaces_each_raw_tx_with_its_cmt_json_in_base64(node: Node) -> None:
    block = node.result("cmt_getBlockByNumber", 1, True)
    decoded = [json.loads(base64.b64decode(t)) for t in block["block"]["data"]["txs"]]
    assert decoded == [
        node.result("cmt_getTransactionFromBlock", 1, 0),
        node.result("cmt_getTransactionFromBlock", 1, 1),
    ]


def test_a_bft_decided_block_shows_its_commit_record(node: Node) -> None:
    node.decided[1] = DECIDED
    block = node.result("cmt_getBlockByNumber", 1, False)
    header = block["block"]["header"]
    assert block["block_meta"]["block_id"] == DECIDED.block_id
    assert (header["proposer_address"], header["validators_hash"]) == ("AA", "BB")
    assert (header["next_validators_hash"], header["last_commit_hash"]) == ("CC", "DD")
    assert block["block"]["last_commit"] == DECIDED.last_commit


def test_genesis_is_block_zero_and_a_height_above_the_head_is_an_error(node: Node) -> None:
    genesis = node.result("cmt_getBlockByNumber", 0, False)
    assert genesis["block"]["header"]["height"] == 0
    assert genesis["block"]["data"]["txs"] == []
    error = node.error("cmt_getBlockByNumber", 2, False)
    assert error["code"] == -32000
    assert error["message"] == (
        "height 2 must be less than or equal to the current blockchain height 1"
    )


# -- transactions ------------------------------------------------------------------------------
def test_an_evm_transaction_is_the_eth_object_plus_travis_cmt_fields(node: Node) -> None:
    raw = transfer(SENDER, 0)
    by_hash = node.result("cmt_getTransactionByHash", _keccak_hex(raw))
    eth = node.result("eth_getTransactionByHash", _keccak_hex(raw))
    assert {k: by_hash[k] for k in eth} == eth  # the eth fields, formatted by rpc/formatting.py
    assert by_hash["cmtHash"] == hashlib.sha256(raw).digest()[:20].hex().upper()
    assert by_hash["cmtHash"] == cmt_hash(raw) and len(by_hash["cmtHash"]) == 40
    assert by_hash["cmtInput"] is None
    assert by_hash["txResult"] == {
        "code": 0,
        "data": "",
        "gasUsed": "21000",
        "fee": {"key": "R2FzRmVl", "value": str(21_000 * PRICE)},
        "log": "",
    }
    assert (by_hash["blockNumber"], by_hash["transactionIndex"]) == ("0x1", "0x0")
    # without 0x and in upper case, as Travis's clients may send it
    assert node.result("cmt_getTransactionByHash", _keccak_hex(raw)[2:].upper()) == by_hash
    assert node.result("cmt_getTransactionFromBlock", 1, 0) == by_hash


def test_a_staking_transaction_shows_its_payload_and_its_deliver_tx(node: Node) -> None:
    raw = delegation(SENDER, 1)
    tx = node.result("cmt_getTransactionFromBlock", 1, 1)
    assert tx["hash"] == _keccak_hex(raw) and tx["to"] is None and tx["gas"] == "0x0"
    assert tx["cmtInput"] == {
        "type": "stake/delegate",
        "data": {"validator_address": "0x" + OWNER.address.hex(), "amount": str(10 * CMT)},
    }
    result = tx["txResult"]
    assert result["code"] == 0 and result["gasUsed"] == "0" and result["fee"] == {}
    assert '"stake/staked"' in result["log"]
    assert node.result("cmt_getTransactionByHash", tx["hash"]) == tx


def test_unknown_transactions_are_null_and_indices_beyond_the_block_are_errors(
    node: Node,
) -> None:
    assert node.result("cmt_getTransactionByHash", "0x" + "ab" * 32) is None
    error = node.error("cmt_getTransactionFromBlock", 1, 2)
    assert error["code"] == -32000 and error["message"] == "No transaction in block 1, index 2."
    assert node.error("cmt_getTransactionFromBlock", 5, 0)["code"] == -32000
    tendermint_hash = cmt_hash(transfer(SENDER, 0))
    error = node.error("cmt_getTransactionByHash", tendermint_hash)
    assert error["code"] == -32602 and "Ethereum hash" in error["message"]


# -- the pool ---------------------------------------------------------------------------------
def test_pending_count_and_transactions_cover_the_whole_pool(node: Node) -> None:
    assert node.result("cmt_pendingTransactionCount") == "0x2"
    pending = node.result("cmt_getPendingTransactions", 0)  # web3-cmt.js sends `val || 0`
    assert [t["hash"] for t in pending] == [
        _keccak_hex(transfer(SENDER, 2)),  # executable first
        _keccak_hex(transfer(LATE, 1)),  # then queued (nonce gap)
    ]
    first = pending[0]
    assert first["blockNumber"] is None and first["transactionIndex"] is None
    assert first["txResult"] == {} and first["cmtInput"] is None
    assert first["cmtHash"] == cmt_hash(transfer(SENDER, 2))
    assert node.result("cmt_getTransactionByHash", first["hash"]) == first
    assert node.result("cmt_getPendingTransactions", 1) == pending[:1]
    assert node.result("cmt_getPendingTransactions", None) == pending
    assert node.result("cmt_getPendingTransactions") == pending


def test_an_empty_pool_answers_null_as_travis_did() -> None:
    net = make_node()
    assert net.result("cmt_pendingTransactionCount") == "0x0"
    assert net.result("cmt_getPendingTransactions", 0) is None


def test_the_limit_defaults_to_30_and_caps_at_100() -> None:
    net = make_node()
    senders = dev_accounts(10)
    for account in senders:
        for nonce in range(12):
            net.app.check_tx(transfer(account, nonce))
    assert net.result("cmt_pendingTransactionCount") == hex(120)
    assert len(net.result("cmt_getPendingTransactions", 0)) == 30
    assert len(net.result("cmt_getPendingTransactions", -5)) == 30
    assert len(net.result("cmt_getPendingTransactions", 45)) == 45
    assert len(net.result("cmt_getPendingTransactions", 1000)) == 100
    assert len(net.result("cmt_getPendingTransactions", 2**80)) == 100


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("cmt_getBlockByNumber", [-1, False]),
        ("cmt_getBlockByNumber", [2**63, False]),
        ("cmt_getBlockByNumber", [1.5, False]),
        ("cmt_getBlockByNumber", ["1", False]),
        ("cmt_getBlockByNumber", ["0x01", False]),
        ("cmt_getBlockByNumber", [True, False]),
        ("cmt_getBlockByNumber", [None, False]),
        ("cmt_getBlockByNumber", [1, "yes"]),
        ("cmt_getBlockByNumber", [1, 1]),
        ("cmt_getBlockByNumber", [1, False, 0]),
        ("cmt_getBlockByNumber", []),
        ("cmt_getTransactionByHash", ["0x1234"]),
        ("cmt_getTransactionByHash", [None]),
        ("cmt_getTransactionByHash", [7]),
        ("cmt_getTransactionByHash", ["0x" + "zz" * 32]),
        ("cmt_getTransactionByHash", []),
        ("cmt_getTransactionFromBlock", [1]),
        ("cmt_getTransactionFromBlock", [1, -1]),
        ("cmt_getTransactionFromBlock", [1, "x"]),
        ("cmt_getTransactionFromBlock", [1, None]),
        ("cmt_getTransactionFromBlock", [{}, 0]),
        ("cmt_getPendingTransactions", ["10"]),
        ("cmt_getPendingTransactions", [1.5]),
        ("cmt_getPendingTransactions", [False]),
        ("cmt_getPendingTransactions", [[]]),
        ("cmt_pendingTransactionCount", [1]),
        ("cmt_syncing", [0]),
    ],
)
def test_bad_params_are_invalid_params_and_change_nothing(
    node: Node, method: str, params: list[Any]
) -> None:
    head, pool = node.app.head.hash, len(node.app.mempool)
    assert node.error(method, *params)["code"] == -32602
    assert (node.app.head.hash, len(node.app.mempool)) == (head, pool)


def test_web3_cmt_null_padding_is_tolerated(node: Node) -> None:
    """web3-cmt.js pads calls with nulls up to the arity it declares (rpc/dispatch.py)."""
    assert node.result("cmt_pendingTransactionCount", None) == "0x2"
    assert node.result("cmt_syncing", None, None)["latest_block_height"] == 1
    assert node.result("cmt_getBlockByNumber", 1, None, None)["block"]["header"]["height"] == 1


# -- the pending-nonce switch (SPEC §8) -------------------------------------------------------
def test_without_the_switch_only_pending_counts_the_pool(node: Node) -> None:
    sender = hex_of(SENDER.address)
    assert node.result("eth_getTransactionCount", sender, "latest") == "0x2"
    assert node.result("eth_getTransactionCount", sender, "0x1") == "0x2"
    assert node.result("eth_getTransactionCount", sender, "earliest") == "0x0"
    assert node.result("eth_getTransactionCount", sender, "pending") == "0x3"


def test_with_the_switch_every_block_tag_answers_the_pending_nonce() -> None:
    net = make_node(pending_nonce_compat=True)
    net.app.check_tx(transfer(SENDER, 0))
    net.produce()
    net.app.check_tx(transfer(SENDER, 1))
    net.app.check_tx(transfer(SENDER, 2))
    sender = hex_of(SENDER.address)
    for tag in ("latest", "earliest", "pending", "safe", "finalized", "0x0", "0x1"):
        assert net.result("eth_getTransactionCount", sender, tag) == "0x3", tag
    assert net.result("eth_getTransactionCount", sender) == "0x3"
    assert net.result("eth_getTransactionCount", hex_of(LATE.address), "latest") == "0x0"
    # the tag is still validated
    assert net.error("eth_getTransactionCount", sender, "newest")["code"] == -32602
    assert net.error("eth_getTransactionCount", sender, "0x01")["code"] == -32602


def test_the_switch_is_off_by_default_and_read_from_config_toml(tmp_path: Any) -> None:
    assert RpcConfig().pending_nonce_compat is False
    path = tmp_path / "config.toml"
    path.write_text("[rpc]\npending_nonce_compat = true\n")
    assert load_config(path).rpc.pending_nonce_compat is True
