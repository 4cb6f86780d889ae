"""TestToken on a real devnet: deployment, events and filters, WebSocket subscriptions, reverts,
gas estimation, historical state and Merkle proofs checked against the block's stateRoot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import rlp
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hexbytes import HexBytes
from trie import HexaryTrie
from web3 import Web3
from web3.exceptions import ContractLogicError
from websockets.sync.client import ClientConnection, connect

from tests.conformance import OpenRpcValidator, check_raw_response
from tests.e2e.harness import (
    CHAIN_ID,
    MIN_GAS_PRICE,
    Devnet,
    Json,
    fresh_account,
    load_token_artifact,
    q,
    send_signed,
    sign_transfer,
    token_contract,
    wait_receipt,
)

pytestmark = pytest.mark.e2e

SUPPLY = 10**24
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
STORED_TOPIC = "0x" + keccak(text="Stored(uint256,uint256)").hex()
EMPTY_ROOT = keccak(rlp.encode(b""))
REVERT_SELECTOR = "0x08c379a0"
WS_TIMEOUT_S = 15.0


def topic_of(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def error_data(reason: str) -> str:
    return REVERT_SELECTOR + abi_encode(["string"], [reason]).hex()


@dataclass
class Token:
    address: str
    owner: LocalAccount
    deploy_block: int
    contract: Any  # web3 Contract bound to a conformance-checked w3 with owner's local signer
    w3: Web3

    def transact(self, fn: Callable[..., Any], *args: Any, gas: int | None = None) -> Any:
        """Call a state-changing function from the owner through web3 (estimate, fees, sign)."""
        params: dict[str, Any] = {"from": self.owner.address}
        if gas is not None:
            params["gas"] = gas
        tx_hash = fn(*args).transact(params)
        return wait_receipt(self.w3, tx_hash)


@pytest.fixture(scope="module")
def token(devnet: Devnet, accounts: list[LocalAccount]) -> Token:
    owner = accounts[1]
    w3 = devnet.w3(signer=owner)
    factory = token_contract(w3)
    # web3 fills gas (eth_estimateGas), fees and nonce; the middleware signs and sends it raw
    tx_hash = factory.constructor(SUPPLY).transact({"from": owner.address})
    receipt = wait_receipt(w3, tx_hash)
    assert receipt["status"] == 1, receipt
    address = receipt["contractAddress"]
    contract = token_contract(w3, address)
    return Token(str(address), owner, receipt["blockNumber"], contract, w3)


def test_deploy_and_transfer(devnet: Devnet, token: Token) -> None:
    c = token.contract
    assert c.functions.totalSupply().call() == SUPPLY
    assert c.functions.balanceOf(token.owner.address).call() == SUPPLY
    assert c.functions.name().call() == "Test Token"

    runtime = load_token_artifact()["deployedBytecode"]
    runtime = runtime if runtime.startswith("0x") else "0x" + runtime
    assert devnet.result("eth_getCode", [token.address, "latest"]) == runtime.lower()
    assert devnet.result("eth_getCode", [token.address, hex(token.deploy_block)]) == runtime.lower()
    assert devnet.result("eth_getCode", [token.address, hex(token.deploy_block - 1)]) == "0x"

    deploy_receipt: Json = devnet.result("eth_getBlockReceipts", [hex(token.deploy_block)])[-1]
    assert deploy_receipt["contractAddress"] == token.address.lower()
    assert deploy_receipt["to"] is None
    (mint,) = deploy_receipt["logs"]
    assert mint["topics"] == [TRANSFER_TOPIC, "0x" + "00" * 32, topic_of(token.owner.address)]

    to = fresh_account(200).address
    receipt = token.transact(c.functions.transfer, to, 1234)
    assert receipt["status"] == 1
    (event,) = c.events.Transfer().process_receipt(receipt)
    assert event["args"] == {"from": token.owner.address, "to": to, "value": 1234}
    assert c.functions.balanceOf(to).call() == 1234
    assert c.functions.balanceOf(token.owner.address).call() == SUPPLY - 1234
    assert c.functions.balanceOf(to).call(block_identifier=receipt["blockNumber"] - 1) == 0


def test_get_logs_by_address_topic_range_and_hash(devnet: Devnet, token: Token) -> None:
    c = token.contract
    r1, r2 = fresh_account(201).address, fresh_account(202).address
    rc1 = token.transact(c.functions.transfer, r1, 11)
    rc2 = token.transact(c.functions.transfer, r2, 22)
    b1, b2 = rc1["blockNumber"], rc2["blockNumber"]
    assert b2 > b1

    def logs(flt: Json) -> list[Json]:
        result: list[Json] = devnet.result("eth_getLogs", [flt])
        return result

    both = logs({"address": token.address, "fromBlock": hex(b1), "toBlock": hex(b2)})
    assert [log["transactionHash"] for log in both] == [
        "0x" + bytes(rc1["transactionHash"]).hex(),
        "0x" + bytes(rc2["transactionHash"]).hex(),
    ]
    for log, recipient, amount, rc in ((both[0], r1, 11, rc1), (both[1], r2, 22, rc2)):
        assert log["address"] == token.address.lower()
        assert log["topics"] == [TRANSFER_TOPIC, topic_of(token.owner.address), topic_of(recipient)]
        assert q(log["data"]) == amount
        assert q(log["blockNumber"]) == rc["blockNumber"]
        assert log["blockHash"] == "0x" + bytes(rc["blockHash"]).hex()
        assert q(log["logIndex"]) == rc["logs"][0]["logIndex"]
        assert q(log["transactionIndex"]) == rc["transactionIndex"]
        assert log["removed"] is False

    # by topic, over the whole chain: recipients are fresh, so exactly one each
    assert logs({"fromBlock": "0x0", "topics": [TRANSFER_TOPIC, None, topic_of(r2)]}) == [both[1]]
    either = [topic_of(r1), topic_of(r2)]
    assert logs({"fromBlock": "earliest", "topics": [None, None, either]}) == both
    assert logs({"fromBlock": "0x0", "topics": [STORED_TOPIC, None, topic_of(r2)]}) == []
    # by block range: only the second block
    assert logs({"address": token.address, "fromBlock": hex(b2), "toBlock": hex(b2)}) == [both[1]]
    # by block hash
    block_hash = "0x" + bytes(rc1["blockHash"]).hex()
    assert logs({"blockHash": block_hash, "address": [token.address]}) == [both[0]]
    # another address: nothing
    assert logs({"address": fresh_account(203).address, "fromBlock": "0x0"}) == []
    # web3's own parsing agrees
    events = c.events.Transfer().get_logs(from_block=b1, to_block=b2)
    assert [e["args"]["value"] for e in events] == [11, 22]


def test_filters_return_only_new_items(devnet: Devnet, token: Token) -> None:
    c = token.contract
    head = devnet.block_number()
    log_filter = devnet.result("eth_newFilter", [{"address": token.address}])
    ranged = devnet.result(
        "eth_newFilter", [{"address": token.address, "fromBlock": hex(head + 1)}]
    )
    block_filter = devnet.result("eth_newBlockFilter")
    pending_filter = devnet.result("eth_newPendingTransactionFilter")

    rc1 = token.transact(c.functions.transfer, fresh_account(204).address, 1)
    h1 = "0x" + bytes(rc1["transactionHash"]).hex()
    first = devnet.result("eth_getFilterChanges", [log_filter])
    assert [log["transactionHash"] for log in first] == [h1]
    assert "0x" + bytes(rc1["blockHash"]).hex() in devnet.result(
        "eth_getFilterChanges", [block_filter]
    )
    assert h1 in devnet.result("eth_getFilterChanges", [pending_filter])

    # second poll, nothing happened: nothing new
    assert devnet.result("eth_getFilterChanges", [log_filter]) == []
    assert devnet.result("eth_getFilterChanges", [block_filter]) == []
    assert devnet.result("eth_getFilterChanges", [pending_filter]) == []

    rc2 = token.transact(c.functions.transfer, fresh_account(205).address, 2)
    h2 = "0x" + bytes(rc2["transactionHash"]).hex()
    second = devnet.result("eth_getFilterChanges", [log_filter])
    assert [log["transactionHash"] for log in second] == [h2]
    assert devnet.result("eth_getFilterChanges", [block_filter]) == [
        "0x" + bytes(rc2["blockHash"]).hex()
    ]
    assert devnet.result("eth_getFilterChanges", [pending_filter]) == [h2]
    # eth_getFilterLogs: everything matching the filter's range, whatever was polled
    all_logs = devnet.result("eth_getFilterLogs", [ranged])
    assert [log["transactionHash"] for log in all_logs] == [h1, h2]

    # web3's filter API on top of the same methods
    criteria: Any = {"address": token.address}
    w3_filter = token.w3.eth.filter(criteria)
    rc3 = token.transact(c.functions.transfer, fresh_account(206).address, 3)
    entries = w3_filter.get_new_entries()
    assert [e["transactionHash"] for e in entries] == [rc3["transactionHash"]]
    assert w3_filter.filter_id is not None
    assert token.w3.eth.uninstall_filter(w3_filter.filter_id) is True

    for fid in (log_filter, ranged, block_filter, pending_filter):
        assert devnet.result("eth_uninstallFilter", [fid]) is True
        assert devnet.result("eth_uninstallFilter", [fid]) is False
    gone = devnet.rpc("eth_getFilterChanges", [log_filter])
    assert "error" in gone and "result" not in gone, gone


# ---------------------------------------------------------------------- WebSocket


def ws_request(ws: ClientConnection, request_id: int, method: str, params: list[Any]) -> Json:
    """Send one request and read messages until its response (notifications are dropped)."""
    ws.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
    deadline = time.monotonic() + WS_TIMEOUT_S
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no WebSocket answer to {method}"
        message = json.loads(ws.recv(timeout=remaining))
        if message.get("id") == request_id:
            answer: Json = message
            return answer


def test_websocket_subscriptions(devnet: Devnet, token: Token) -> None:
    with connect(devnet.ws_url, open_timeout=10, max_size=2**24) as ws:
        chain_id = ws_request(ws, 1, "eth_chainId", [])
        check_raw_response("eth_chainId", chain_id, devnet.validator)
        assert chain_id["result"] == hex(CHAIN_ID)

        subs: dict[str, str] = {}
        kinds: list[list[Any]] = [
            ["newHeads"],
            ["logs", {"address": token.address}],
            ["newPendingTransactions"],
        ]
        for i, params in enumerate(kinds, start=2):
            answer = ws_request(ws, i, "eth_subscribe", params)
            assert isinstance(answer.get("result"), str), answer
            subs[answer["result"]] = str(params[0])
        assert len(subs) == 3

        # trigger over HTTP
        receipt = token.transact(token.contract.functions.transfer, fresh_account(207).address, 9)
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        block = devnet.result("eth_getBlockByNumber", [hex(receipt["blockNumber"]), False])

        seen: dict[str, Json] = {}
        deadline = time.monotonic() + WS_TIMEOUT_S
        while len(seen) < 3:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"missing notifications; got {sorted(seen)}"
            message = json.loads(ws.recv(timeout=remaining))
            assert message.get("method") == "eth_subscription", message
            kind = subs[message["params"]["subscription"]]
            result = message["params"]["result"]
            if kind == "newHeads" and result.get("hash") == block["hash"]:
                seen[kind] = result
            elif kind == "logs" and result.get("transactionHash") == tx_hash:
                seen[kind] = result
            elif kind == "newPendingTransactions" and result == tx_hash:
                seen[kind] = {"hash": result}

        head = seen["newHeads"]
        for field in ("number", "parentHash", "stateRoot", "transactionsRoot", "timestamp"):
            assert head[field] == block[field], field
        log = seen["logs"]
        assert log["address"] == token.address.lower()
        assert log["topics"][0] == TRANSFER_TOPIC and q(log["data"]) == 9
        assert log["removed"] is False

        for i, sub_id in enumerate(subs, start=10):
            assert ws_request(ws, i, "eth_unsubscribe", [sub_id])["result"] is True
        assert ws_request(ws, 20, "eth_unsubscribe", [next(iter(subs))])["result"] is False


def test_subscribe_over_http_is_refused(devnet: Devnet) -> None:
    answer = devnet.rpc("eth_subscribe", ["newHeads"])
    assert "error" in answer, answer
    devnet.assert_alive()


# ---------------------------------------------------------------------- reverts and gas


def test_eth_call_revert_reason(devnet: Devnet, token: Token) -> None:
    data = token.contract.encode_abi("failWith", args=["boom"])
    answer = devnet.rpc("eth_call", [{"to": token.address, "data": data}, "latest"])
    error = answer.get("error")
    assert error is not None, answer
    assert error["code"] == 3
    assert error["message"] == "execution reverted: boom"
    assert error["data"] == error_data("boom")
    assert abi_decode(["string"], bytes.fromhex(error["data"][10:])) == ("boom",)

    with pytest.raises(ContractLogicError) as info:
        token.contract.functions.failWith("boom").call()
    assert "execution reverted: boom" in str(info.value.message)
    assert info.value.data == error_data("boom")


def test_estimate_gas_of_reverting_call(devnet: Devnet, token: Token) -> None:
    poor = fresh_account(208).address  # holds no tokens (and no CMT)
    data = token.contract.encode_abi("transfer", args=[fresh_account(209).address, 1])
    answer = devnet.rpc("eth_estimateGas", [{"from": poor, "to": token.address, "data": data}])
    error = answer.get("error")
    assert error is not None, answer
    assert error["code"] == 3
    assert error["message"] == "execution reverted: ERC20: transfer amount exceeds balance"
    assert error["data"] == error_data("ERC20: transfer amount exceeds balance")


def test_sent_reverting_transaction_has_status_0(
    devnet: Devnet, token: Token, accounts: list[LocalAccount]
) -> None:
    w3 = devnet.w3()
    sender = accounts[2]  # has CMT, no tokens
    data = token.contract.encode_abi("transfer", args=[fresh_account(210).address, 5])
    nonce = w3.eth.get_transaction_count(sender.address)
    signed = sign_transfer(sender, nonce, token.address, 0, gas=100_000, data=bytes(HexBytes(data)))
    receipt = wait_receipt(w3, send_signed(w3, signed))
    assert receipt["status"] == 0
    assert receipt["logs"] == []
    assert 21_000 < receipt["gasUsed"] < 100_000
    assert w3.eth.get_transaction_count(sender.address) == nonce + 1
    before = w3.eth.get_balance(sender.address, receipt["blockNumber"] - 1)
    after = w3.eth.get_balance(sender.address, receipt["blockNumber"])
    assert before - after == receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert receipt["effectiveGasPrice"] == MIN_GAS_PRICE


def test_estimate_gas_is_enough_as_gas_limit(
    devnet: Devnet, token: Token, accounts: list[LocalAccount]
) -> None:
    w3 = devnet.w3()
    owner = token.owner
    cases = [
        token.contract.encode_abi("storeAt", args=[2**100 + 1, 7]),  # fresh slot: SSTORE 0 -> x
        token.contract.encode_abi("transfer", args=[fresh_account(211).address, 3]),
        token.contract.encode_abi("approve", args=[accounts[3].address, 10]),
    ]
    for data in cases:
        estimate = q(
            devnet.result(
                "eth_estimateGas", [{"from": owner.address, "to": token.address, "data": data}]
            )
        )
        assert 21_000 < estimate < 200_000
        nonce = w3.eth.get_transaction_count(owner.address, "pending")
        signed = sign_transfer(
            owner, nonce, token.address, 0, gas=estimate, data=bytes(HexBytes(data))
        )
        receipt = wait_receipt(w3, send_signed(w3, signed))
        assert receipt["status"] == 1, (data[:10], estimate, receipt)
        assert receipt["gasUsed"] <= estimate


# ---------------------------------------------------------------------- history and proofs


def test_historical_state_reads(devnet: Devnet, token: Token) -> None:
    c = token.contract
    slot = 2**200 + 5
    rc_a = token.transact(c.functions.storeAt, slot, 1)
    rc_b = token.transact(c.functions.storeAt, slot, 2)
    a, b = rc_a["blockNumber"], rc_b["blockNumber"]
    assert b > a
    # something after B, so that B is history too
    token.transact(c.functions.transfer, fresh_account(212).address, 1)
    assert devnet.block_number() > b

    def storage(tag: Any) -> int:
        return q(devnet.result("eth_getStorageAt", [token.address, hex(slot), tag]))

    tags = (hex(a - 1), hex(a), hex(b), "latest")
    assert [storage(tag) for tag in tags] == [0, 1, 2, 2]

    load = c.functions.loadAt(slot)
    assert [load.call(block_identifier=n) for n in (a - 1, a, b, "latest")] == [0, 1, 2, 2]
    (stored,) = c.events.Stored().process_receipt(rc_a)
    assert stored["args"] == {"slot": slot, "value": 1}

    owner = token.owner.address
    bal_a = q(devnet.result("eth_getBalance", [owner, hex(a)]))
    bal_b = q(devnet.result("eth_getBalance", [owner, hex(b)]))
    assert bal_a - bal_b == rc_b["gasUsed"] * rc_b["effectiveGasPrice"]
    latest = q(devnet.result("eth_getBalance", [owner, "latest"]))
    assert latest < bal_b
    assert q(devnet.result("eth_getTransactionCount", [owner, hex(a)])) + 1 == q(
        devnet.result("eth_getTransactionCount", [owner, hex(b)])
    )

    # eth_getProof at A (history) and at latest, both verified against the blocks' state roots
    for tag, expected in ((hex(a), 1), ("latest", 2)):
        block = devnet.result("eth_getBlockByNumber", [tag, False])
        proof = devnet.result("eth_getProof", [token.address, [hex(slot)], block["number"]])
        account = verify_account_proof(block["stateRoot"], token.address, proof)
        assert account[3] == keccak(HexBytes(devnet.result("eth_getCode", [token.address, tag])))
        (entry,) = proof["storageProof"]
        assert q(entry["key"]) == slot and q(entry["value"]) == expected
        value = HexaryTrie.get_from_proof(
            HexBytes(proof["storageHash"]),
            keccak(slot.to_bytes(32, "big")),
            [rlp.decode(HexBytes(node)) for node in entry["proof"]],
        )
        assert int.from_bytes(rlp.decode(value), "big") == expected


def test_block_hash_as_block_parameter(devnet: Devnet, token: Token) -> None:
    """A block hash (plain, or EIP-1898 {"blockHash": ...}) selects the state like a number."""
    slot = 2**201
    rc = token.transact(token.contract.functions.storeAt, slot, 3)
    token.transact(token.contract.functions.storeAt, slot, 4)
    number, block_hash = hex(rc["blockNumber"]), "0x" + bytes(rc["blockHash"]).hex()
    owner = token.owner.address
    for tag in ({"blockHash": block_hash}, block_hash):
        assert q(devnet.result("eth_getStorageAt", [token.address, hex(slot), tag])) == 3
        assert devnet.result("eth_getBalance", [owner, tag]) == devnet.result(
            "eth_getBalance", [owner, number]
        )
        assert devnet.result("eth_getCode", [token.address, tag]) != "0x"
        data = token.contract.encode_abi("loadAt", args=[slot])
        assert q(devnet.result("eth_call", [{"to": token.address, "data": data}, tag])) == 3
        assert devnet.result("eth_getTransactionCount", [owner, tag]) == devnet.result(
            "eth_getTransactionCount", [owner, number]
        )


def verify_account_proof(state_root: str, address: str, proof: Json) -> list[bytes]:
    """Check `proof` for `address` against `state_root`; returns the decoded account."""
    assert proof["address"].lower() == address.lower()
    encoded = HexaryTrie.get_from_proof(
        HexBytes(state_root),
        keccak(HexBytes(address)),
        [rlp.decode(HexBytes(node)) for node in proof["accountProof"]],
    )
    assert encoded, "proof shows the account is absent"
    account: list[bytes] = rlp.decode(encoded)
    nonce, balance, storage_root, code_hash = account
    assert int.from_bytes(nonce, "big") == q(proof["nonce"])
    assert int.from_bytes(balance, "big") == q(proof["balance"])
    assert storage_root == HexBytes(proof["storageHash"])
    assert code_hash == HexBytes(proof["codeHash"])
    return account


def test_proofs_of_eoa_and_absent_account(devnet: Devnet, token: Token) -> None:
    block = devnet.result("eth_getBlockByNumber", ["latest", False])
    owner = token.owner.address
    proof = devnet.result("eth_getProof", [owner, [], block["number"]])
    verify_account_proof(block["stateRoot"], owner, proof)
    assert HexBytes(proof["codeHash"]) == keccak(b"")
    assert HexBytes(proof["storageHash"]) == EMPTY_ROOT
    assert q(proof["balance"]) == q(devnet.result("eth_getBalance", [owner, block["number"]]))

    absent = fresh_account(213).address
    proof = devnet.result("eth_getProof", [absent, ["0x0"], block["number"]])
    assert q(proof["balance"]) == 0 and q(proof["nonce"]) == 0
    excluded = HexaryTrie.get_from_proof(
        HexBytes(block["stateRoot"]),
        keccak(HexBytes(absent)),
        [rlp.decode(HexBytes(node)) for node in proof["accountProof"]],
    )
    assert excluded == b""
    assert q(proof["storageProof"][0]["value"]) == 0


def test_conformance_coverage(validator: OpenRpcValidator) -> None:
    assert not validator.violations
    assert len(validator.checked) >= 20, sorted(validator.checked)
