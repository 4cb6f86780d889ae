"""A modern Solidity contract (contracts/src/CvmFeatures.sol, compiled in the repo with solc
0.8.30) uses the CyberMiles VM features on a `cvm` devnet through the precompiles: native
libraries (ENI), the randomness beacon, the validator set and freegas — deployed and called
through JSON-RPC with web3.py like any other contract.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from web3 import Web3

from tests.e2e.harness import (
    CHAIN_ID,
    MIN_GAS_PRICE,
    REPO_ROOT,
    Devnet,
    dev_keys,
    fresh_account,
    send_signed,
    wait_receipt,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def features(devnet: Devnet) -> Any:
    artifact = json.loads((REPO_ROOT / "contracts" / "build" / "CvmFeatures.json").read_text())
    w3 = devnet.w3()
    owner = dev_keys(10)[7]
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor().build_transaction({
        "from": owner.address, "nonce": w3.eth.get_transaction_count(owner.address, "pending"),
        "chainId": CHAIN_ID, "gasPrice": MIN_GAS_PRICE,
    })  # fmt: skip
    receipt = wait_receipt(w3, send_signed(w3, owner.sign_transaction(tx)))
    assert receipt["status"] == 1
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])


def test_native_libraries(features: Any) -> None:
    call = features.functions.native
    assert call("reverse", '["abc"]').call() == "cba"
    assert call("upper", '["cybermiles"]').call() == "CYBERMILES"
    assert call("json_get", '["{\\"a\\": {\\"b\\": [1, 2, 3]}}", "a.b[2]"]').call() == "3"


def test_randomness_beacon(devnet: Devnet, features: Any) -> None:
    w3 = devnet.w3()
    sender = dev_keys(10)[8]
    drawn = []
    for _ in range(2):
        tx = features.functions.draw().build_transaction({
            "from": sender.address, "chainId": CHAIN_ID, "gasPrice": MIN_GAS_PRICE,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        })  # fmt: skip
        receipt = wait_receipt(w3, send_signed(w3, sender.sign_transaction(tx)))
        (event,) = features.events.Drawn().process_receipt(receipt)
        drawn.append(event["args"]["value"])
    assert drawn[0] != drawn[1] and all(0 < v < 2**256 for v in drawn)

    head = w3.eth.get_block("latest")
    parent = w3.eth.get_block(head["number"] - 1)
    assert features.functions.beaconAt(parent["number"]).call() == int.from_bytes(
        parent["mixHash"], "big"
    )
    future = head["number"] + 10
    reply = devnet.rpc("eth_call", [{
        "to": features.address,
        "data": features.encode_abi("beaconAt", args=[future]),
    }, "latest"])  # fmt: skip
    assert reply["error"]["code"] == 3 and "future" in reply["error"]["message"]


def test_validator_set(features: Any) -> None:
    validator_owner = dev_keys(1)[0].address  # the devnet's genesis validator is owned by it
    assert features.functions.isValidator(validator_owner).call() is True
    assert features.functions.isValidator(fresh_account(77).address).call() is False


def test_the_contract_pays_for_its_freegas_function(devnet: Devnet, features: Any) -> None:
    w3 = devnet.w3()
    funder = dev_keys(10)[9]
    fund = funder.sign_transaction({
        "to": features.address, "value": 10**18, "gas": 100_000, "gasPrice": MIN_GAS_PRICE,
        "nonce": w3.eth.get_transaction_count(funder.address, "pending"), "chainId": CHAIN_ID,
    })  # fmt: skip
    wait_receipt(w3, send_signed(w3, fund))
    funded = w3.eth.get_balance(features.address)
    user = fresh_account(78)  # holds nothing at all
    assert w3.eth.get_balance(user.address) == 0

    def free_call(function: str, nonce: int) -> Any:
        tx = user.sign_transaction({
            "to": features.address, "data": features.encode_abi(function, args=[]),
            "gas": 600_000, "gasPrice": 0, "nonce": nonce, "chainId": CHAIN_ID,
        })  # fmt: skip
        return wait_receipt(w3, send_signed(w3, tx))

    counter = features.functions.counter().call()
    unmarked = free_call("incrementPaid", 0)
    assert unmarked["status"] == 0 and unmarked["gasUsed"] == 0
    assert features.functions.counter().call() == counter  # undone
    assert w3.eth.get_balance(features.address) == funded

    marked = free_call("incrementFree", 1)
    assert marked["status"] == 1
    assert features.functions.counter().call() == counter + 1
    assert w3.eth.get_balance(features.address) == funded - marked["gasUsed"] * MIN_GAS_PRICE
    assert w3.eth.get_balance(user.address) == 0
    assert Web3.to_checksum_address(marked["to"]) == features.address
