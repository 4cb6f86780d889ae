"""ethers.js v6 (tests/js, plain JsonRpcProvider) against one devnet with its defaults: `type: 2`
transactions without fee fields from a Wallet and from the node's JsonRpcSigner right after cheap
blocks, Wallet.signMessage, and traces asked for through provider.send. Each script's report is
checked here against the node.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from tests.e2e.harness import REPO_ROOT, Devnet, dev_keys, fresh_account
from tests.e2e.js_clients import make_cheap_blocks, run_js

pytestmark = pytest.mark.e2e

KEYS = dev_keys(10)


def gas_price(net: Devnet) -> int:
    return int(net.result("eth_gasPrice"), 16)


def test_type2_without_fee_fields_pays_at_least_the_gas_price(devnet: Devnet) -> None:
    cheap = make_cheap_blocks(devnet, KEYS[9])
    node_account = devnet.w3().eth.accounts[2]
    payee = fresh_account(41).address
    out = run_js("ethers_fees.mjs", devnet.url, Web3.to_hex(KEYS[4].key), node_account, payee)
    minimum = gas_price(devnet)
    assert int(out["feeData"]["gasPrice"]) == minimum
    w3 = devnet.w3()
    for sent, sender in ((out["wallet"], KEYS[4].address), (out["node"], node_account)):
        receipt = w3.eth.get_transaction_receipt(sent["hash"])
        assert receipt["status"] == 1 and receipt["blockNumber"] > cheap[-1], receipt
        assert receipt["type"] == 2 and receipt["from"] == sender
        assert receipt["effectiveGasPrice"] >= minimum, (sent, minimum)
        assert int(sent["gasPrice"]) == receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(payee) == 3


def test_wallet_sign_message() -> None:
    message = "CyberMiles devnet, signed by ethers"
    out = run_js("ethers_sign.mjs", Web3.to_hex(KEYS[5].key), message)
    assert out["signer"] == out["recovered"] == KEYS[5].address
    recovered = Account.recover_message(encode_defunct(text=message), signature=out["signature"])
    assert recovered == KEYS[5].address


def test_traces_through_provider_send(devnet: Devnet) -> None:
    artifact = REPO_ROOT / "contracts" / "build" / "TestToken.json"
    payee = fresh_account(42).address
    out = run_js("ethers_trace.mjs", devnet.url, Web3.to_hex(KEYS[6].key), str(artifact), payee)
    receipt = devnet.w3().eth.get_transaction_receipt(out["hash"])
    assert receipt["status"] == 1 and receipt["gasUsed"] == int(out["gasUsed"])

    struct = out["struct"]
    assert struct["failed"] is False and struct["gas"] == receipt["gasUsed"]
    assert int(struct["returnValue"], 16) == 1
    assert struct["first"]["pc"] == 0 and struct["first"]["depth"] == 1
    assert struct["first"]["op"] == "PUSH1" and struct["steps"] > 50
    assert {"CALLDATALOAD", "SLOAD", "SSTORE", "LOG3", "RETURN"} <= set(struct["ops"])

    calls = out["calls"]
    assert calls["type"] == "CALL" and calls["value"] == "0x0"
    assert calls["from"].lower() == out["from"].lower()
    assert calls["to"].lower() == out["token"].lower()
    assert calls["input"].startswith("0xa9059cbb") and int(calls["output"], 16) == 1
    assert int(calls["gasUsed"], 16) == receipt["gasUsed"] and "calls" not in calls
