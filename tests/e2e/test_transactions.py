"""Value transfers of every transaction type, through a real devnet and only JSON-RPC.

Each mined transfer is cross-checked through balances (historical, at the block and the one before),
eth_getTransactionByHash, the receipt, the block with full transactions, eth_getBlockReceipts, the
count/index getters and the block's transactionsRoot / receiptsRoot recomputed from the raw bytes.
"""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from trie import HexaryTrie

from tests.conformance import OpenRpcValidator
from tests.e2e.harness import (
    CHAIN_ID,
    GWEI,
    MIN_GAS_PRICE,
    Devnet,
    Json,
    deploy_token,
    fresh_account,
    q,
    send_signed,
    sign_transfer,
    token_contract,
    wait_receipt,
)

pytestmark = pytest.mark.e2e


def receipt_encoding(receipt: Json) -> bytes:
    """The consensus encoding of a receipt (EIP-2718 envelope for typed transactions)."""
    logs = [
        [
            bytes.fromhex(log["address"][2:]),
            [bytes.fromhex(t[2:]) for t in log["topics"]],
            bytes.fromhex(log["data"][2:]),
        ]
        for log in receipt["logs"]
    ]
    payload = rlp.encode(
        [
            q(receipt["status"]),
            q(receipt["cumulativeGasUsed"]),
            bytes.fromhex(receipt["logsBloom"][2:]),
            logs,
        ]
    )
    tx_type = q(receipt["type"])
    return payload if tx_type == 0 else bytes([tx_type]) + payload


def trie_root(items: list[bytes]) -> bytes:
    trie = HexaryTrie(db={})
    for index, item in enumerate(items):
        trie[rlp.encode(index)] = item
    return bytes(trie.root_hash)


def check_mined_transfer(
    net: Devnet,
    sender: LocalAccount,
    signed: Any,
    *,
    to: str,
    value: int,
    tx_type: int,
    price: int,
    gas_used: int = 21_000,
) -> tuple[Json, Json]:
    """Send `signed` and check everything the node reports about it; returns (tx, receipt)."""
    w3 = net.w3()
    nonce_before = w3.eth.get_transaction_count(sender.address, "latest")
    tx_hash = send_signed(w3, signed)
    wait_receipt(w3, tx_hash)
    h = "0x" + bytes(tx_hash).hex()

    receipt: Json = net.result("eth_getTransactionReceipt", [h])
    assert receipt["status"] == "0x1", receipt
    assert receipt["transactionHash"] == h
    assert q(receipt["type"]) == tx_type
    assert receipt["from"] == sender.address.lower()
    assert receipt["to"] == to.lower()
    assert receipt["contractAddress"] is None
    assert q(receipt["gasUsed"]) == gas_used
    assert q(receipt["cumulativeGasUsed"]) >= gas_used
    assert q(receipt["effectiveGasPrice"]) == price
    number, block_hash, index = (
        q(receipt["blockNumber"]),
        receipt["blockHash"],
        q(receipt["transactionIndex"]),
    )

    tx: Json = net.result("eth_getTransactionByHash", [h])
    assert tx["hash"] == h
    assert q(tx["type"]) == tx_type
    assert tx["from"] == sender.address.lower()
    assert tx["to"] == to.lower()
    assert q(tx["value"]) == value
    assert q(tx["nonce"]) == nonce_before
    assert q(tx["blockNumber"]) == number and tx["blockHash"] == block_hash
    assert q(tx["transactionIndex"]) == index
    assert q(tx["gasPrice"]) == price  # mined: the effective price
    if tx_type == 0:
        assert q(tx["v"]) in (CHAIN_ID * 2 + 35, CHAIN_ID * 2 + 36)
    else:
        assert q(tx["chainId"]) == CHAIN_ID
        assert q(tx["yParity"]) in (0, 1) and q(tx["v"]) == q(tx["yParity"])
    # the signature the node reports is the one we made
    raw = bytes(signed.raw_transaction)
    assert Account.recover_transaction(raw) == sender.address

    # balances, read historically around the block
    fee = gas_used * price
    before = q(net.result("eth_getBalance", [sender.address, hex(number - 1)]))
    after = q(net.result("eth_getBalance", [sender.address, hex(number)]))
    assert before - after == value + fee
    assert q(net.result("eth_getBalance", [to, hex(number - 1)])) == 0
    assert q(net.result("eth_getBalance", [to, hex(number)])) == value
    assert q(net.result("eth_getBalance", [to, "latest"])) == value

    # nonces: mined, nothing pending
    assert q(net.result("eth_getTransactionCount", [sender.address, "latest"])) == nonce_before + 1
    assert q(net.result("eth_getTransactionCount", [sender.address, "pending"])) == nonce_before + 1
    assert q(net.result("eth_getTransactionCount", [sender.address, hex(number - 1)])) == (
        nonce_before
    )

    # the block, by number and by hash, with full transactions and with hashes
    block: Json = net.result("eth_getBlockByNumber", [hex(number), True])
    assert block["hash"] == block_hash and q(block["number"]) == number
    assert block["transactions"][index] == tx
    assert net.result("eth_getBlockByHash", [block_hash, True]) == block
    hashes_only: Json = net.result("eth_getBlockByHash", [block_hash, False])
    assert hashes_only["transactions"] == [t["hash"] for t in block["transactions"]]
    count = len(block["transactions"])
    assert q(net.result("eth_getBlockTransactionCountByNumber", [hex(number)])) == count
    assert q(net.result("eth_getBlockTransactionCountByHash", [block_hash])) == count
    assert net.result("eth_getTransactionByBlockNumberAndIndex", [hex(number), hex(index)]) == tx
    assert net.result("eth_getTransactionByBlockHashAndIndex", [block_hash, hex(index)]) == tx
    assert net.result("eth_getTransactionByBlockNumberAndIndex", [hex(number), hex(count)]) is None
    if index == count - 1:
        assert q(block["gasUsed"]) == q(receipt["cumulativeGasUsed"])
    assert q(block["baseFeePerGas"]) == MIN_GAS_PRICE == q(net.result("eth_gasPrice", []))

    receipts: list[Json] = net.result("eth_getBlockReceipts", [hex(number)])
    assert len(receipts) == count and receipts[index] == receipt

    # the roots in the header are Ethereum's: recompute them when the block is ours alone
    if count == 1:
        assert block["transactionsRoot"] == "0x" + trie_root([raw]).hex()
        assert block["receiptsRoot"] == "0x" + trie_root([receipt_encoding(receipt)]).hex()
    # a block hash is a valid block tag too (EIP-1898)
    assert net.result("eth_getBlockReceipts", [block_hash]) == receipts
    return tx, receipt


# Account 0 is the devnet's coinbase (fees are credited to it), so exact fee accounting uses others.


def test_legacy_eip155_transfer(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    sender, to = accounts[8], fresh_account(100).address
    nonce = devnet.w3().eth.get_transaction_count(sender.address)
    signed = sign_transfer(sender, nonce, to, 10**18, tx_type=0, price=MIN_GAS_PRICE)
    tx, _ = check_mined_transfer(
        devnet, sender, signed, to=to, value=10**18, tx_type=0, price=MIN_GAS_PRICE
    )
    assert "accessList" not in tx or tx["accessList"] == []


def test_eip2930_transfer_with_access_list(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    sender, to = accounts[1], fresh_account(101).address
    access_list: list[dict[str, Any]] = [
        {
            "address": to_checksum_address("0x" + "ab" * 20),
            "storageKeys": ["0x" + "00" * 31 + "01", "0x" + "00" * 31 + "02"],
        }
    ]
    # intrinsic: 21000 + 2400 per address + 1900 per storage key
    gas = 21_000 + 2_400 + 2 * 1_900
    nonce = devnet.w3().eth.get_transaction_count(sender.address)
    price = 3 * GWEI
    signed = sign_transfer(
        sender, nonce, to, 12345, tx_type=1, price=price, gas=gas, accessList=access_list
    )
    tx, _ = check_mined_transfer(
        devnet, sender, signed, to=to, value=12345, tx_type=1, price=price, gas_used=gas
    )
    assert tx["accessList"] == [
        {"address": e["address"].lower(), "storageKeys": e["storageKeys"]} for e in access_list
    ]


def test_eip1559_transfer_pays_the_base_fee_plus_its_tip_up_to_its_fee_cap(
    devnet: Devnet, accounts: list[LocalAccount]
) -> None:
    """The base fee is the gas_price parameter (DECISIONS "Fees for default clients")."""
    sender, to = accounts[2], fresh_account(102).address
    nonce = devnet.w3().eth.get_transaction_count(sender.address)
    tip, fee_cap = GWEI, 5 * GWEI
    paid = min(fee_cap, MIN_GAS_PRICE + tip)
    signed = sign_transfer(sender, nonce, to, 777, tx_type=2, price=tip, maxFeePerGas=fee_cap)
    tx, receipt = check_mined_transfer(
        devnet, sender, signed, to=to, value=777, tx_type=2, price=paid
    )
    assert q(tx["maxFeePerGas"]) == fee_cap and q(tx["maxPriorityFeePerGas"]) == tip
    assert q(receipt["effectiveGasPrice"]) == paid == 3 * GWEI


def test_eip7702_set_code_delegation(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    w3 = devnet.w3()
    sender = accounts[3]
    token, _ = deploy_token(w3, sender, 1000)
    authority = fresh_account(103)  # unfunded EOA, nonce 0: the sponsor pays
    auth = Account.sign_authorization(
        {"chainId": CHAIN_ID, "address": token, "nonce": 0}, authority.key
    )
    call = token_contract(w3, token).encode_abi("storeAt", args=[7, 42])
    nonce = w3.eth.get_transaction_count(sender.address)
    signed = sender.sign_transaction(
        {
            "type": 4,
            "chainId": CHAIN_ID,
            "nonce": nonce,
            "to": authority.address,
            "value": 0,
            "gas": 200_000,
            "maxFeePerGas": 3 * GWEI,
            "maxPriorityFeePerGas": MIN_GAS_PRICE,
            "data": call,
            "accessList": [],
            "authorizationList": [auth],
        }
    )
    receipt = wait_receipt(w3, send_signed(w3, signed))
    assert receipt["status"] == 1, receipt
    h = "0x" + bytes(signed.hash).hex()

    designator = "0xef0100" + token[2:].lower()
    assert devnet.result("eth_getCode", [authority.address, "latest"]) == designator
    before = hex(receipt["blockNumber"] - 1)
    assert devnet.result("eth_getCode", [authority.address, before]) == "0x"
    assert q(devnet.result("eth_getTransactionCount", [authority.address, "latest"])) == 1

    # the delegated code ran in the authority's own storage, in the same transaction
    assert q(devnet.result("eth_getStorageAt", [authority.address, "0x7", "latest"])) == 42
    assert q(devnet.result("eth_getStorageAt", [token, "0x7", "latest"])) == 0
    (log,) = receipt["logs"]
    assert log["address"] == authority.address
    assert token_contract(w3, authority.address).functions.loadAt(7).call() == 42

    tx: Json = devnet.result("eth_getTransactionByHash", [h])
    assert tx["type"] == "0x4"
    (entry,) = tx["authorizationList"]
    assert entry["address"] == token.lower()
    assert q(entry["chainId"]) == CHAIN_ID and q(entry["nonce"]) == 0
    assert q(entry["yParity"]) == auth.y_parity
    assert q(entry["r"]) == auth.r and q(entry["s"]) == auth.s
    rcpt: Json = devnet.result("eth_getTransactionReceipt", [h])
    assert rcpt["type"] == "0x4"
    block: Json = devnet.result("eth_getBlockByNumber", [rcpt["blockNumber"], True])
    assert block["transactions"][q(rcpt["transactionIndex"])] == tx
    assert (
        devnet.result("eth_getBlockReceipts", [rcpt["blockNumber"]])[q(rcpt["transactionIndex"])]
        == rcpt
    )

    # delegating to the zero address clears the code again
    clear = Account.sign_authorization(
        {"chainId": CHAIN_ID, "address": "0x" + "00" * 20, "nonce": 1}, authority.key
    )
    signed = sender.sign_transaction(
        {
            "type": 4,
            "chainId": CHAIN_ID,
            "nonce": nonce + 1,
            "to": fresh_account(104).address,
            "value": 1,
            "gas": 100_000,
            "maxFeePerGas": 3 * GWEI,
            "maxPriorityFeePerGas": MIN_GAS_PRICE,
            "data": b"",
            "accessList": [],
            "authorizationList": [clear],
        }
    )
    assert wait_receipt(w3, send_signed(w3, signed))["status"] == 1
    assert devnet.result("eth_getCode", [authority.address, "latest"]) == "0x"
    assert q(devnet.result("eth_getTransactionCount", [authority.address, "latest"])) == 2


def test_blob_transaction_is_refused(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    sender = accounts[4]
    nonce = devnet.w3().eth.get_transaction_count(sender.address)
    fields = [
        CHAIN_ID,
        nonce,
        MIN_GAS_PRICE,
        3 * GWEI,
        21_000,
        bytes.fromhex("11" * 20),
        1,
        b"",
        [],
        10**9,
        [b"\x01" + keccak(b"blob")[1:]],
        1,
        int.from_bytes(keccak(b"r"), "big") >> 8,
        int.from_bytes(keccak(b"s"), "big") >> 8,
    ]
    raw = b"\x03" + rlp.encode(fields)
    response = devnet.rpc("eth_sendRawTransaction", ["0x" + raw.hex()])
    error = response.get("error")
    assert error is not None, response
    assert error["code"] == -32000, error
    message = error["message"].lower()
    assert "blob" in message or "type" in message, error
    assert devnet.result("eth_getTransactionByHash", ["0x" + keccak(raw).hex()]) is None
    devnet.assert_alive()


def test_nonce_gap_waits_in_queue_until_filled(
    devnet: Devnet, accounts: list[LocalAccount]
) -> None:
    w3 = devnet.w3()
    sender, other = accounts[5], accounts[6]
    to = fresh_account(105).address
    n = w3.eth.get_transaction_count(sender.address)
    later = sign_transfer(sender, n + 1, to, 2, tx_type=2)
    first = sign_transfer(sender, n, to, 1, tx_type=0)
    later_hash = send_signed(w3, later)

    # a block is built after the gapped transaction arrived: it must not be in it
    probe = sign_transfer(other, w3.eth.get_transaction_count(other.address), to, 5, tx_type=2)
    probe_receipt = wait_receipt(w3, send_signed(w3, probe))
    assert probe_receipt["status"] == 1
    assert devnet.result("eth_getTransactionReceipt", ["0x" + bytes(later_hash).hex()]) is None
    assert w3.eth.get_transaction_count(sender.address, "latest") == n
    assert w3.eth.get_transaction_count(sender.address, "pending") == n

    # resubmitting the queued transaction: already known
    again = devnet.rpc("eth_sendRawTransaction", ["0x" + bytes(later.raw_transaction).hex()])
    assert again.get("error", {}).get("code") == 1000, again
    assert "already known" in again["error"]["message"].lower(), again

    # filling the gap mines both, in nonce order
    r_first = wait_receipt(w3, send_signed(w3, first))
    r_later = wait_receipt(w3, later_hash)
    assert r_first["status"] == 1 and r_later["status"] == 1
    assert (r_first["blockNumber"], r_first["transactionIndex"]) < (
        r_later["blockNumber"],
        r_later["transactionIndex"],
    )
    assert w3.eth.get_transaction_count(sender.address, "latest") == n + 2
    assert w3.eth.get_balance(to) == 1 + 2 + 5


def test_wallet_flow_web3_fills_gas_and_fees(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    """web3's own defaults (eth_estimateGas, eth_maxPriorityFeePerGas, base fee) must work,
    and pay at least gas_price even right after a block whose only transaction was free."""
    sender = accounts[7]
    w3 = devnet.w3(signer=sender)
    to = fresh_account(106).address
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    free = wait_receipt(w3, send_signed(w3, sign_transfer(sender, nonce, to, 1, price=0)))
    assert free["effectiveGasPrice"] == 0 and w3.eth.block_number == free["blockNumber"]
    params: Any = {"from": sender.address, "to": to, "value": 5}
    assert w3.eth.estimate_gas(params) == 21_000
    tx_hash = w3.eth.send_transaction(params)
    receipt = wait_receipt(w3, tx_hash)
    assert receipt["status"] == 1 and receipt["gasUsed"] == 21_000
    assert receipt["effectiveGasPrice"] >= MIN_GAS_PRICE
    assert w3.eth.get_balance(to) == 6
    block = w3.eth.get_block(receipt["blockNumber"])
    assert block["baseFeePerGas"] == w3.eth.gas_price == MIN_GAS_PRICE


def test_interval_mining_shows_pending_state(
    devnet_factory: Any, accounts: list[LocalAccount]
) -> None:
    """With --block-time the transaction waits in the pool: pending and latest differ."""
    net = devnet_factory("interval", block_time=2)
    w3 = net.w3()
    sender, to = accounts[9], fresh_account(107).address
    for attempt in range(3):
        head = w3.eth.block_number
        n = w3.eth.get_transaction_count(sender.address, "latest")
        signed = sign_transfer(sender, n, to, 1 + attempt, tx_type=2)
        h = "0x" + bytes(send_signed(w3, signed)).hex()
        pending_count = q(net.result("eth_getTransactionCount", [sender.address, "pending"]))
        latest_count = q(net.result("eth_getTransactionCount", [sender.address, "latest"]))
        # the spec has no shape for a pending transaction (null block fields): unchecked
        pending_tx = net.result("eth_getTransactionByHash", [h], check=False)
        receipt = net.result("eth_getTransactionReceipt", [h])
        if w3.eth.block_number != head:
            wait_receipt(w3, HexBytes(h))  # a block was sealed meanwhile: try again
            continue
        assert (latest_count, pending_count) == (n, n + 1)
        assert receipt is None
        assert pending_tx is not None and pending_tx["hash"] == h
        assert pending_tx["blockNumber"] is None and pending_tx["blockHash"] is None
        assert pending_tx["transactionIndex"] is None
        mined = wait_receipt(w3, HexBytes(h))
        assert mined["status"] == 1 and mined["blockNumber"] > head
        assert w3.eth.get_transaction_count(sender.address, "latest") == n + 1
        break
    else:
        pytest.fail("every attempt raced with a block boundary")


def test_conformance_coverage(validator: OpenRpcValidator) -> None:
    """Last of the module: the spec validator saw a good spread of methods."""
    assert not validator.violations
    assert len(validator.checked) >= 18, sorted(validator.checked)
