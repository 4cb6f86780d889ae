"""Node-side signing for the devnet's unlocked accounts (eth_accounts, eth_sendTransaction)."""

from __future__ import annotations

import pytest
from web3 import Web3

from tests.e2e.harness import Devnet, load_token_artifact, wait_receipt
from tests.e2e.js_clients import run_js

pytestmark = pytest.mark.e2e


def test_send_transaction_from_unlocked_accounts(devnet: Devnet) -> None:
    w3 = devnet.w3()
    accounts = w3.eth.accounts
    assert accounts[0].lower() == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    assert len(accounts) == 10
    before = w3.eth.get_balance(accounts[2])
    tx_hash = w3.eth.send_transaction({"from": accounts[1], "to": accounts[2], "value": 12345})
    receipt = wait_receipt(w3, tx_hash)
    assert receipt["status"] == 1 and receipt["gasUsed"] == 21000
    assert w3.eth.get_balance(accounts[2]) == before + 12345

    artifact = load_token_artifact()
    token = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    deploy_hash = token.constructor(10**6).transact({"from": accounts[3]})
    deployed = wait_receipt(w3, deploy_hash)
    assert deployed["status"] == 1 and deployed["contractAddress"]
    contract = w3.eth.contract(address=deployed["contractAddress"], abi=artifact["abi"])
    assert contract.functions.balanceOf(accounts[3]).call() == 10**6


def test_send_transaction_refuses_unknown_accounts(devnet: Devnet) -> None:
    response = devnet.rpc(
        "eth_sendTransaction", [{"from": "0x" + "42" * 20, "to": "0x" + "43" * 20, "value": "0x1"}]
    )
    assert response["error"]["code"] == -32000
    assert "unknown account" in response["error"]["message"]


def test_keystore_account_signs_only_while_unlocked_with_travis_defaults(devnet: Devnet) -> None:
    """A keystore account (personal_newAccount) signs eth_sendTransaction and the cmt_* tx
    methods once unlocked, and is refused while locked; a transaction without gas or price
    fields goes out as Travis sent it: legacy, gas 90,000, price = the chain's gas_price."""
    w3 = devnet.w3()
    funded, other = w3.eth.accounts[0], w3.eth.accounts[5]  # devnet keys (before the new one)
    new_account = devnet.rpc("personal_newAccount", ["a passphrase"])["result"]
    created = Web3.to_checksum_address(new_account)
    assert created in w3.eth.accounts
    wait_receipt(w3, w3.eth.send_transaction({"from": funded, "to": created,
                                              "value": 10**18}))  # fmt: skip
    transfer = {"from": created, "to": other, "value": "0x7"}

    def refused_while_locked() -> None:
        for method, params in (
            ("eth_sendTransaction", [transfer]),
            ("eth_signTransaction", [transfer]),
            ("eth_sign", [created, "0x00"]),
            ("cmt_withdrawCandidacy", [{"from": created}]),
        ):
            error = devnet.rpc(method, params)["error"]
            assert error["code"] == -32000 and "account locked" in error["message"], method

    refused_while_locked()
    wrong = devnet.rpc("personal_unlockAccount", [created, "not it", None])["error"]
    assert "wrong passphrase" in wrong["message"]
    refused_while_locked()
    assert devnet.rpc("personal_unlockAccount", [created, "a passphrase", 0])["result"] is True

    tx_hash = devnet.rpc("eth_sendTransaction", [transfer])["result"]
    wait_receipt(w3, tx_hash)
    sent = w3.eth.get_transaction(tx_hash)
    assert sent["type"] == 0 and sent["gas"] == 90_000
    assert sent["gasPrice"] == w3.eth.gas_price
    withdraw = devnet.rpc("cmt_withdrawCandidacy", [{"from": created}])["result"]
    assert withdraw["height"] == 0 and withdraw["check_tx"]["code"] == 5  # not a candidate

    assert devnet.rpc("personal_lockAccount", [created])["result"] is True
    refused_while_locked()


def test_ethers_signs_through_the_node_and_verifies_client_side(devnet: Devnet) -> None:
    """ethers.js v6's JsonRpcSigner: signMessage (personal_sign with two arguments: an unlocked
    account's key) and signTypedData (eth_signTypedData_v4)."""
    account = devnet.w3().eth.accounts[1]
    out = run_js("node_signer.mjs", devnet.url, account)
    assert out["signer"] == account and out["chainId"] == str(devnet.w3().eth.chain_id)
    assert out["messageSigner"] == account and out["typedSigner"] == account


def test_sign_transaction_refuses_fields_no_node_would_run(devnet: Devnet) -> None:
    sender = devnet.w3().eth.accounts[1]
    base = {"from": sender, "to": "0x" + "43" * 20, "value": "0x1", "gasPrice": "0x77359400"}
    for extra in ({"nonce": hex(2**64 - 1), "gas": "0x5208"}, {"gas": hex(2**64)}):
        error = devnet.rpc("eth_signTransaction", [{**base, **extra}])["error"]
        assert error["code"] == -32602, (extra, error)
    signed = devnet.rpc("eth_signTransaction", [{**base, "nonce": hex(2**64 - 2), "gas": "0x5208"}])
    assert signed["result"]["raw"].startswith("0x")
    assert signed["result"]["tx"]["nonce"] == hex(2**64 - 2)
