"""Node-side signing for the devnet's unlocked accounts (eth_accounts, eth_sendTransaction)."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Devnet, load_token_artifact, wait_receipt

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
