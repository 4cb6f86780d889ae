"""Foundry's `cast` (the binary of the npm package @foundry-rs/cast-linux-amd64, installed by
`make test`) against one devnet, with nothing but its defaults: fees from the node (right after
cheap blocks), a deploy of the suite's ERC-20, calls and balances, a send signed by the node
(--unlocked), signatures, an access list and traces. Every output is parsed and checked here
against the node.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from tests.e2e.harness import Devnet, dev_keys, fresh_account, load_token_artifact
from tests.e2e.js_clients import cast, make_cheap_blocks

pytestmark = pytest.mark.e2e

SUPPLY = 1_000_000
OWNER = dev_keys(1)[0]


def gas_price(net: Devnet) -> int:
    return int(net.result("eth_gasPrice"), 16)


def cast_json(net: Devnet, command: str, *args: str) -> Any:
    """`cast <command>` against `net` (options before the arguments that may be variadic),
    its stdout parsed as JSON."""
    return json.loads(cast(command, "--rpc-url", net.url, *args).stdout)


def cast_send(net: Devnet, *args: str) -> dict[str, Any]:
    """`cast send ... --json` signed with OWNER's key: the receipt cast waited for."""
    receipt: dict[str, Any] = cast_json(
        net, "send", "--json", "--private-key", Web3.to_hex(OWNER.key), *args
    )
    return receipt


@pytest.fixture(scope="module")
def token(devnet: Devnet) -> dict[str, Any]:
    """TestToken deployed by `cast send --create` right after blocks of price-0 and 1-wei
    transactions (cast's fee estimate follows fee history): the receipt."""
    cheap = make_cheap_blocks(devnet, dev_keys(10)[9])
    bytecode = load_token_artifact()["bytecode"]
    receipt = cast_send(devnet, "--create", bytecode, "constructor(uint256)", str(SUPPLY))
    assert int(receipt["blockNumber"], 16) > cheap[-1]
    return receipt


def test_create_with_default_fees_after_cheap_blocks(devnet: Devnet, token: dict[str, Any]) -> None:
    assert token["status"] == "0x1", token
    assert int(token["effectiveGasPrice"], 16) >= gas_price(devnet), token
    address = token["contractAddress"]
    assert devnet.result("eth_getCode", [address, "latest"]) != "0x"
    node = devnet.w3().eth.get_transaction_receipt(token["transactionHash"])
    assert node["contractAddress"].lower() == address.lower() and node["status"] == 1


def test_call_balance_and_revert_reason(devnet: Devnet, token: dict[str, Any]) -> None:
    address = token["contractAddress"]
    balance = cast_json(
        devnet, "call", "--json", address, "balanceOf(address)(uint256)", OWNER.address
    )
    assert [int(value) for value in balance] == [SUPPLY]
    name = cast_json(devnet, "call", "--json", address, "name()(string)")
    assert name == ["Test Token"]

    refused = cast(
        "call", "--rpc-url", devnet.url, address, "failWith(string)", "no way", check=False
    )
    assert refused.returncode != 0 and "no way" in refused.stderr, refused

    wei = cast("balance", "--rpc-url", devnet.url, OWNER.address).stdout.strip()
    assert int(wei) == devnet.w3().eth.get_balance(OWNER.address)


def test_unlocked_send_and_signatures(devnet: Devnet) -> None:
    node_account = devnet.w3().eth.accounts[1]
    payee = fresh_account(31).address
    receipt = cast_json(
        devnet, "send", "--json", "--unlocked", "--from", node_account, payee, "--value", "12345"
    )
    assert receipt["status"] == "0x1" and receipt["from"].lower() == node_account.lower()
    assert int(receipt["effectiveGasPrice"], 16) >= gas_price(devnet), receipt
    assert int(cast("balance", "--rpc-url", devnet.url, payee).stdout) == 12345

    message = "CyberMiles devnet, signed by cast"
    signature = cast(
        "wallet", "sign", "--private-key", Web3.to_hex(OWNER.key), message
    ).stdout.strip()
    assert (
        Account.recover_message(encode_defunct(text=message), signature=signature) == OWNER.address
    )
    cast("wallet", "verify", "--address", OWNER.address, message, signature)

    by_node = cast_json(devnet, "rpc", "eth_sign", node_account, Web3.to_hex(text=message))
    recovered = Account.recover_message(encode_defunct(text=message), signature=by_node)
    assert recovered == node_account


def test_access_list(devnet: Devnet, token: dict[str, Any]) -> None:
    address = token["contractAddress"]
    out = cast_json(
        devnet, "access-list", "--json", "--from", OWNER.address, address,
        "storeAt(uint256,uint256)", "99", "7",
    )  # fmt: skip
    entries = {e["address"].lower(): e["storageKeys"] for e in out["accessList"]}
    assert entries[address.lower()] == ["0x" + f"{99:064x}"], out
    assert int(out["gasUsed"], 16) > 21_000


def test_traces(devnet: Devnet, token: dict[str, Any]) -> None:
    address = token["contractAddress"]
    payee = fresh_account(32).address
    sent = cast_send(devnet, address, "transfer(address,uint256)", payee, "10")
    assert sent["status"] == "0x1"
    tx_hash, gas_used = sent["transactionHash"], int(sent["gasUsed"], 16)

    struct = cast_json(devnet, "rpc", "debug_traceTransaction", tx_hash)
    assert struct["failed"] is False and struct["gas"] == gas_used
    assert int(struct["returnValue"], 16) == 1
    logs = struct["structLogs"]
    assert logs[0]["pc"] == 0 and logs[0]["depth"] == 1 and logs[0]["op"] == "PUSH1"
    assert {"SSTORE", "LOG3", "RETURN"} <= {log["op"] for log in logs}
    assert all(isinstance(log["gas"], int) and isinstance(log["gasCost"], int) for log in logs)

    calls = cast_json(devnet, "rpc", "debug_traceTransaction", tx_hash, '{"tracer":"callTracer"}')
    assert calls["type"] == "CALL" and calls["to"].lower() == address.lower()
    assert calls["from"].lower() == OWNER.address.lower() and calls["value"] == "0x0"
    assert calls["input"].startswith("0xa9059cbb") and int(calls["output"], 16) == 1
    assert int(calls["gasUsed"], 16) == gas_used

    call = {"from": OWNER.address, "to": address, "data": _calldata("failWith(string)", "nope")}
    params = json.dumps([call, "latest", {"tracer": "callTracer"}])
    refused = cast_json(devnet, "rpc", "--raw", "debug_traceCall", params)
    assert refused["error"] == "execution reverted" and refused["revertReason"] == "nope"


def _calldata(signature: str, *args: str) -> str:
    return cast("calldata", signature, *args).stdout.strip()
