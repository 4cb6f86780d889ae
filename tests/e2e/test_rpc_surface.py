"""The JSON-RPC surface of a real devnet: simple methods, batches, and every bad input a client can
send (each followed by a proof that the node still serves).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import rlp
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hexbytes import HexBytes

from tests.conformance import OpenRpcValidator, check_raw_response
from tests.e2e.harness import (
    CHAIN_ID,
    GWEI,
    MIN_GAS_PRICE,
    Devnet,
    Json,
    fresh_account,
    q,
    send_signed,
    sign_transfer,
    wait_receipt,
)

pytestmark = pytest.mark.e2e

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def raw_hex(signed: Any) -> str:
    return "0x" + bytes(signed.raw_transaction).hex()


def expect_error(net: Devnet, method: str, params: list[Any], code: int) -> Json:
    """Call `method`, require a JSON-RPC error with `code`, then prove the node still serves."""
    answer = net.rpc(method, params)
    error = answer.get("error")
    assert error is not None and "result" not in answer, answer
    assert error["code"] == code, (method, error)
    assert isinstance(error["message"], str) and error["message"], error
    net.assert_alive()
    return dict(error)


def mine_one(net: Devnet, sender: LocalAccount, value: int = 1) -> Any:
    w3 = net.w3()
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    return wait_receipt(
        w3, send_signed(w3, sign_transfer(sender, nonce, fresh_account(300).address, value))
    )


# ---------------------------------------------------------------------- simple methods


def test_identity_methods(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    assert devnet.result("eth_chainId") == "0x4d2"
    assert devnet.result("net_version") == str(CHAIN_ID)
    assert devnet.result("net_listening") is True
    assert q(devnet.result("net_peerCount")) >= 0
    assert "cybermiles" in devnet.result("web3_clientVersion").lower()
    assert devnet.result("web3_sha3", ["0x68656c6c6f20776f726c64"]) == (
        "0x" + keccak(b"hello world").hex()
    )
    assert devnet.result("web3_sha3", ["0x"]) == "0x" + keccak(b"").hex()
    assert devnet.result("eth_syncing") is False
    listed = devnet.result("eth_accounts")
    assert isinstance(listed, list)
    assert all(isinstance(a, str) and len(a) == 42 for a in listed)

    w3 = devnet.w3()
    assert w3.eth.chain_id == CHAIN_ID
    assert w3.is_connected()


def test_fee_methods(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    assert q(devnet.result("eth_gasPrice")) == MIN_GAS_PRICE
    assert q(devnet.result("eth_maxPriorityFeePerGas")) == 0  # the base fee meets the minimum
    for _ in range(3):
        mine_one(devnet, accounts[1])
    head = devnet.block_number()
    history = devnet.result("eth_feeHistory", ["0x4", "latest", [25, 75]])
    oldest = q(history["oldestBlock"])
    n = head - oldest + 1
    assert n == min(4, head + 1)
    assert len(history["baseFeePerGas"]) == n + 1
    assert all(q(fee) == MIN_GAS_PRICE for fee in history["baseFeePerGas"])
    assert len(history["gasUsedRatio"]) == n
    assert all(0 <= ratio <= 1 for ratio in history["gasUsedRatio"])
    assert len(history["reward"]) == n and all(len(r) == 2 for r in history["reward"])
    # the latest block holds one transfer at exactly the minimum: no reward above the base fee
    assert [q(r) for r in history["reward"][-1]] == [0, 0]

    w3 = devnet.w3()
    fh = w3.eth.fee_history(2, "latest", [50])
    assert len(fh["gasUsedRatio"]) == 2 and fh["oldestBlock"] == head - 1
    assert w3.eth.gas_price >= MIN_GAS_PRICE
    assert w3.eth.max_priority_fee >= 0


def test_block_number_grows(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    before = devnet.block_number()
    receipt = mine_one(devnet, accounts[2])
    after = devnet.block_number()
    assert after >= receipt["blockNumber"] > before
    latest = devnet.result("eth_getBlockByNumber", ["latest", False])
    assert q(latest["number"]) >= receipt["blockNumber"]
    parent = devnet.result("eth_getBlockByNumber", [hex(receipt["blockNumber"] - 1), False])
    block = devnet.result("eth_getBlockByNumber", [hex(receipt["blockNumber"]), False])
    assert block["parentHash"] == parent["hash"]
    assert q(block["timestamp"]) >= q(parent["timestamp"])
    assert devnet.result("eth_getBlockByNumber", [hex(after + 1000), False]) is None
    assert devnet.result("eth_getBlockByHash", ["0x" + "ab" * 32, False]) is None
    assert devnet.result("eth_getTransactionByHash", ["0x" + "ab" * 32]) is None
    assert devnet.result("eth_getTransactionReceipt", ["0x" + "ab" * 32]) is None
    genesis = devnet.result("eth_getBlockByNumber", ["earliest", False])
    assert q(genesis["number"]) == 0 and genesis["transactions"] == []


def test_coinbase_is_the_miner_of_blocks(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    """eth_coinbase names the address this node's blocks credit (the header's miner field)."""
    receipt = mine_one(devnet, accounts[2])
    block = devnet.result("eth_getBlockByNumber", [hex(receipt["blockNumber"]), False])
    assert devnet.result("eth_coinbase") == block["miner"]


# ---------------------------------------------------------------------- batches


def test_batch_mixed_valid_and_invalid_keeps_order(devnet: Devnet) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "no_such_method", "params": []},
        {"jsonrpc": "2.0", "method": "eth_chainId", "params": []},  # notification: no answer
        {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber", "params": []},
        {"jsonrpc": "2.0", "id": 4, "method": "eth_getBalance", "params": [123, "latest"]},
        1,
        {"jsonrpc": "2.0", "id": 5, "method": "net_version"},
    ]
    answer = devnet.post_raw(json.dumps(batch).encode())
    assert answer.status_code == 200
    responses = answer.json()
    assert isinstance(responses, list)
    assert [r.get("id") for r in responses] == ["a", 2, 3, 4, None, 5]
    assert responses[0]["result"] == "0x4d2"
    check_raw_response("eth_chainId", responses[0], devnet.validator)
    assert responses[1]["error"]["code"] == -32601
    check_raw_response("eth_blockNumber", responses[2], devnet.validator)
    assert q(responses[2]["result"]) >= 0
    assert responses[3]["error"]["code"] == -32602
    assert responses[4]["error"]["code"] == -32600
    assert responses[5]["result"] == str(CHAIN_ID)
    devnet.assert_alive()


def test_batch_limits(devnet: Devnet) -> None:
    full = devnet.batch([("eth_chainId", [])] * 1000)
    assert len(full) == 1000 and all(r["result"] == "0x4d2" for r in full)

    too_many = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"} for i in range(1001)]
    answer = devnet.post_raw(json.dumps(too_many).encode()).json()
    assert isinstance(answer, dict) and "error" in answer, str(answer)[:300]

    empty = devnet.post_raw(b"[]").json()
    assert isinstance(empty, dict) and empty["error"]["code"] == -32600
    devnet.assert_alive()


def test_notification_only_gets_no_answer(devnet: Devnet) -> None:
    answer = devnet.post_raw(b'{"jsonrpc":"2.0","method":"eth_chainId","params":[]}')
    assert answer.status_code in (200, 204)
    assert answer.content.strip() == b""
    devnet.assert_alive()


# ---------------------------------------------------------------------- transport-level garbage


@pytest.mark.parametrize(
    "body",
    [b"{garbage", b"", b"\xff\xfe\x00", b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"'],
    ids=["not-json", "empty", "binary", "truncated"],
)
def test_garbage_json_is_a_parse_error(devnet: Devnet, body: bytes) -> None:
    answer = devnet.post_raw(body)
    assert answer.status_code == 200
    data = answer.json()
    assert data["error"]["code"] == -32700 and data["id"] is None
    devnet.assert_alive()


def test_invalid_request_objects(devnet: Devnet) -> None:
    for request in (
        {"jsonrpc": "2.0", "id": 1},  # no method
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": "x"},
        "just a string",
    ):
        data = devnet.post_raw(json.dumps(request).encode()).json()
        assert data["error"]["code"] in (-32600, -32602), (request, data)
    devnet.assert_alive()


def test_body_over_5_mib_gets_413(devnet: Devnet) -> None:
    def padded(size: int) -> bytes:
        request = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [], "p": ""}
        request["p"] = "x" * size
        return json.dumps(request).encode()

    body = padded(10 * 2**20)
    answer = devnet.post_raw(body, timeout=60)
    assert answer.status_code == 413
    data = answer.json()
    assert data["jsonrpc"] == "2.0" and isinstance(data["error"]["code"], int)
    devnet.assert_alive()

    # the same without a Content-Length (chunked): refused once the stream passes the limit
    def chunks() -> Any:
        for _ in range(160):
            yield b"x" * 65536

    answer = devnet._session.post(devnet.url, data=chunks(), timeout=60)
    assert answer.status_code == 413
    devnet.assert_alive()

    # just under the limit is served
    assert devnet.post_raw(padded(4 * 2**20)).json()["result"] == "0x4d2"


def test_unknown_method(devnet: Devnet) -> None:
    expect_error(devnet, "eth_noSuchMethod", [], -32601)
    expect_error(devnet, "foo", [1, 2], -32601)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("eth_getBalance", [123, "latest"]),
        ("eth_getBalance", ["0x1234", "latest"]),
        ("eth_getBalance", ["0x" + "11" * 20, "newest"]),
        ("eth_getBlockByNumber", ["0x1", "yes"]),
        ("eth_getBlockByNumber", []),
        ("eth_getTransactionByHash", ["0x1234"]),
        ("eth_getTransactionReceipt", [None]),
        ("eth_call", []),
        ("eth_getLogs", [{"fromBlock": "zzz"}]),
        ("eth_getStorageAt", ["0x" + "11" * 20, "not-a-slot", "latest"]),
        ("eth_sendRawTransaction", ["0xzz"]),
        ("eth_sendRawTransaction", [12]),
        ("eth_chainId", ["extra"]),
        ("eth_feeHistory", ["0x1", "latest", "no"]),
    ],
)
def test_wrong_param_types(devnet: Devnet, method: str, params: list[Any]) -> None:
    expect_error(devnet, method, params, -32602)


# ---------------------------------------------------------------------- bad transactions


def test_malformed_rlp(devnet: Devnet) -> None:
    for raw in ("0xdeadbeef", "0xf8", "0x02c0", "0x", "0x" + "c0" * 10):
        error = expect_error(devnet, "eth_sendRawTransaction", [raw], -32000)
        assert error["message"]


def test_wrong_chain_id(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    sender = accounts[3]
    nonce = devnet.w3().eth.get_transaction_count(sender.address)
    for tx_type in (0, 2):
        signed = sign_transfer(
            sender, nonce, fresh_account(301).address, 1, tx_type=tx_type, chain_id=1
        )
        error = expect_error(devnet, "eth_sendRawTransaction", [raw_hex(signed)], -32000)
        assert "chain" in error["message"].lower(), error
    assert devnet.w3().eth.get_transaction_count(sender.address, "pending") == nonce


def test_bad_signature(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    sender = accounts[3]
    nonce = devnet.w3().eth.get_transaction_count(sender.address)
    signed = sign_transfer(sender, nonce, fresh_account(302).address, 1, tx_type=2)
    raw = bytes(signed.raw_transaction)
    fields = rlp.decode(raw[1:])
    s = int.from_bytes(fields[-1], "big")
    assert s <= SECP256K1_N // 2
    # set the top bit of s: still < n, but above n/2, which EIP-2 forbids
    fields[-1] = (s | (1 << 255)).to_bytes(32, "big")
    bad = b"\x02" + rlp.encode(fields)
    error = expect_error(devnet, "eth_sendRawTransaction", ["0x" + bad.hex()], 1001)
    assert error["message"]
    # r = 0 is no signature at all
    fields[-1] = s.to_bytes(32, "big")
    fields[-2] = b""
    zero_r = b"\x02" + rlp.encode(fields)
    expect_error(devnet, "eth_sendRawTransaction", ["0x" + zero_r.hex()], 1001)


def test_nonce_too_low_and_already_known(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    sender = accounts[4]
    w3 = devnet.w3()
    nonce = w3.eth.get_transaction_count(sender.address)
    to = fresh_account(303).address
    signed = sign_transfer(sender, nonce, to, 1)
    assert wait_receipt(w3, send_signed(w3, signed))["status"] == 1
    replay = sign_transfer(sender, nonce, to, 2)
    error = expect_error(devnet, "eth_sendRawTransaction", [raw_hex(replay)], 1)
    assert "nonce too low" in error["message"].lower()
    # the mined transaction itself, sent again: also refused
    again = devnet.rpc("eth_sendRawTransaction", [raw_hex(signed)])
    assert again.get("error", {}).get("code") in (1, 1000), again
    # a queued (gapped) one sent twice: already known
    gapped = sign_transfer(sender, nonce + 5, to, 3)
    assert (
        devnet.result("eth_sendRawTransaction", [raw_hex(gapped)])
        == "0x" + bytes(gapped.hash).hex()
    )
    error = expect_error(devnet, "eth_sendRawTransaction", [raw_hex(gapped)], 1000)
    assert "already known" in error["message"].lower()


def test_insufficient_funds(devnet: Devnet) -> None:
    poor = fresh_account(304)
    signed = sign_transfer(poor, 0, fresh_account(305).address, 1)
    error = expect_error(devnet, "eth_sendRawTransaction", [raw_hex(signed)], 809)
    assert "insufficient funds" in error["message"].lower()


def test_intrinsic_gas_too_low(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    sender = accounts[5]
    nonce = devnet.w3().eth.get_transaction_count(sender.address)
    signed = sign_transfer(sender, nonce, fresh_account(306).address, 1, gas=20_000)
    error = expect_error(devnet, "eth_sendRawTransaction", [raw_hex(signed)], 800)
    assert "intrinsic gas" in error["message"].lower()
    # data costs gas too: 21000 is not enough with a non-zero byte payload
    signed = sign_transfer(sender, nonce, fresh_account(306).address, 1, data=b"\x01" * 10)
    expect_error(devnet, "eth_sendRawTransaction", [raw_hex(signed)], 800)


def test_low_price_transactions(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    """SPEC §4: below `gas_price` a transaction is low-price: a high gas limit is refused with
    Travis code 102; within the limit it is accepted, and at price 0 it runs free."""
    sender = accounts[5]
    w3 = devnet.w3()
    nonce = w3.eth.get_transaction_count(sender.address)
    to = fresh_account(307).address
    for tx_type, price in ((0, MIN_GAS_PRICE - 1), (0, GWEI), (2, MIN_GAS_PRICE - 1), (1, 0)):
        signed = sign_transfer(sender, nonce, to, 1, tx_type=tx_type, price=price, gas=600_000)
        error = expect_error(devnet, "eth_sendRawTransaction", [raw_hex(signed)], 102)
        assert "The gas limit is too high for low price transaction (102)" in error["message"]
    before = w3.eth.get_balance(sender.address)
    signed = sign_transfer(sender, nonce, to, 5, tx_type=0, price=0)
    receipt = wait_receipt(w3, send_signed(w3, signed))
    assert receipt["status"] == 1 and receipt["effectiveGasPrice"] == 0
    assert w3.eth.get_balance(sender.address) == before - 5
    # exactly the minimum is a normal transaction
    signed = sign_transfer(sender, nonce + 1, to, 1, tx_type=0, price=MIN_GAS_PRICE)
    assert wait_receipt(w3, send_signed(w3, signed))["status"] == 1


def test_oversized_transaction(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    sender = accounts[6]
    nonce = devnet.w3().eth.get_transaction_count(sender.address)
    data = b"\x00" * (129 * 1024)
    signed = sign_transfer(sender, nonce, fresh_account(308).address, 0, data=data, gas=3_000_000)
    error = expect_error(devnet, "eth_sendRawTransaction", [raw_hex(signed)], -32000)
    message = error["message"].lower()
    assert "size" in message or "large" in message or "oversized" in message, error
    # not in the pool, nonce untouched
    assert devnet.result("eth_getTransactionByHash", ["0x" + bytes(signed.hash).hex()]) is None
    assert devnet.w3().eth.get_transaction_count(sender.address, "pending") == nonce


def test_tip_above_fee_cap(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    sender = accounts[6]
    nonce = devnet.w3().eth.get_transaction_count(sender.address)
    signed = sign_transfer(
        sender, nonce, fresh_account(309).address, 1, price=3 * GWEI, maxFeePerGas=2 * GWEI
    )
    answer = devnet.rpc("eth_sendRawTransaction", [raw_hex(signed)])
    assert "error" in answer, answer
    devnet.assert_alive()


def test_node_still_accepts_good_transactions(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    """After all the abuse above, the node serves a normal transfer."""
    receipt = mine_one(devnet, accounts[7], value=10)
    assert receipt["status"] == 1
    assert devnet.w3().eth.get_balance(fresh_account(300).address) >= 10
    assert (
        HexBytes(devnet.w3().eth.get_block(receipt["blockNumber"])["hash"]) == receipt["blockHash"]
    )


def test_conformance_coverage(validator: OpenRpcValidator) -> None:
    assert not validator.violations
    assert len(validator.checked) >= 12, sorted(validator.checked)


def test_low_price_pair_and_block_capacity(devnet: Devnet) -> None:
    """One JSON-RPC batch is admitted at once, before any block can interleave: in it, a second
    low-price transaction of one (sender, recipient) pair gets 101, and the low-price transaction
    beyond the block's 100 slots gets 103. Price-0, value-0 transfers need no balance at all."""
    recipient = fresh_account(900).address
    senders = [fresh_account(1000 + i) for i in range(101)]
    first = sign_transfer(senders[0], 0, recipient, 0, tx_type=0, price=0)
    second = sign_transfer(senders[0], 1, recipient, 0, tx_type=0, price=0)
    others = [sign_transfer(s, 0, recipient, 0, tx_type=0, price=0) for s in senders[1:]]
    calls = [("eth_sendRawTransaction", [raw_hex(tx)]) for tx in [first, second, *others]]
    answers = devnet.batch(calls)
    assert "result" in answers[0]
    assert answers[1]["error"]["code"] == 101, answers[1]
    assert "The gas price is too low for transaction (101)" in answers[1]["error"]["message"]
    accepted = [a for a in answers[2:] if "result" in a]
    assert len(accepted) == 99  # 100 slots: `first` holds one
    assert answers[-1]["error"]["code"] == 103
    w3 = devnet.w3()
    receipt = wait_receipt(w3, bytes.fromhex(answers[0]["result"][2:]))
    block = w3.eth.get_block(receipt["blockNumber"])
    assert len(block["transactions"]) == 100
