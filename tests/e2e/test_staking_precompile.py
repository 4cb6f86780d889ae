"""The staking precompile on a real devnet: StakingUser (contracts/src/StakingUser.sol) is
deployed and called with web3.py (gas from eth_estimateGas, through the precompile), delegates
its own CMT to the devnet's validator, and the delegation is read back with `cmt_queryDelegator`
(the contract as delegator), through the contract's view and with an eth_call straight to
0x…c0de05. A delegation undone by a revert and a refusal's reason are checked over JSON-RPC too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector as selector
from web3 import Web3
from web3.exceptions import ContractLogicError

from tests.e2e.harness import REPO_ROOT, Devnet, send_signed, sign_transfer, wait_receipt

pytestmark = pytest.mark.e2e

CMT = 10**18
STAKING = "0x0000000000000000000000000000000000c0de05"
CANDIDATE_OUTPUT = ["bool", "bytes32", "uint256", "uint256", "uint256", "uint256", "bool",
                    "uint8", "uint256", "bool"]  # fmt: skip


@dataclass
class Deployed:
    w3: Web3
    sender: LocalAccount
    contract: Any  # web3 Contract, transactions signed by `sender`
    owner: str  # the devnet validator's owner (dev account 0), lowercase hex

    def transact(self, name: str, *args: Any) -> Any:
        tx_hash = getattr(self.contract.functions, name)(*args).transact(
            {"from": self.sender.address}
        )
        return wait_receipt(self.w3, tx_hash)

    def delegations(self, devnet: Devnet) -> Any:
        query = devnet.rpc("cmt_queryDelegator", [self.contract.address], check=False)
        return query["result"]["data"]


@pytest.fixture(scope="module")
def deployed(devnet: Devnet, accounts: list[LocalAccount]) -> Deployed:
    sender = accounts[5]
    w3 = devnet.w3(signer=sender)
    with (REPO_ROOT / "contracts" / "build" / "StakingUser.json").open() as handle:
        built = json.load(handle)
    factory = w3.eth.contract(abi=built["abi"], bytecode=built["bytecode"])
    receipt = wait_receipt(w3, factory.constructor().transact({"from": sender.address}))
    assert receipt["status"] == 1, receipt
    contract = w3.eth.contract(address=receipt["contractAddress"], abi=built["abi"])
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    funding = sign_transfer(sender, nonce, contract.address, 1_000 * CMT, gas=60_000)
    assert wait_receipt(w3, send_signed(w3, funding))["status"] == 1
    return Deployed(w3, sender, contract, accounts[0].address.lower())


def test_a_contract_delegates_and_the_node_reports_it(devnet: Devnet, deployed: Deployed) -> None:
    assert deployed.delegations(devnet) is None
    receipt = deployed.transact("delegate", Web3.to_checksum_address(deployed.owner), 100 * CMT)
    assert receipt["status"] == 1
    assert [log["address"].lower() for log in receipt["logs"]] == [STAKING]
    (record,) = deployed.delegations(devnet)
    assert record["validator_address"] == deployed.owner
    assert record["delegator_address"] == deployed.contract.address.lower()
    assert record["delegate_amount"] == record["shares"] == str(100 * CMT)
    assert record["source"] == "cmt_wallet"
    assert deployed.w3.eth.get_balance(deployed.contract.address) == 900 * CMT
    # The contract's view, and eth_call of the precompile itself.
    owner = Web3.to_checksum_address(deployed.owner)
    assert deployed.contract.functions.myDelegation(owner).call() == [True, 100 * CMT, 0]
    data = selector("candidate(address)") + abi_encode(["address"], [deployed.owner])
    raw = devnet.result("eth_call", [{"to": STAKING, "data": "0x" + data.hex()}, "latest"])
    exists, _key, shares, *_ = abi_decode(CANDIDATE_OUTPUT, bytes.fromhex(raw[2:]))
    validator = devnet.rpc("cmt_queryValidator", [deployed.owner], check=False)["result"]["data"]
    assert exists and str(shares) == validator["shares"]


def test_a_reverted_delegation_leaves_nothing(devnet: Devnet, deployed: Deployed) -> None:
    before = deployed.delegations(devnet)
    balance = deployed.w3.eth.get_balance(deployed.contract.address)
    owner = Web3.to_checksum_address(deployed.owner)
    receipt = deployed.transact("delegateInRevertedCall", owner, 50 * CMT)
    assert receipt["status"] == 1 and receipt["logs"] == []
    assert deployed.contract.functions.attempts().call() == 1
    assert deployed.delegations(devnet) == before
    assert deployed.w3.eth.get_balance(deployed.contract.address) == balance


def test_a_refusal_reaches_the_client_with_the_modules_reason(deployed: Deployed) -> None:
    stranger = Web3.to_checksum_address("0x" + "42" * 20)
    expected = f"stake/delegate: no candidate owned by {stranger.lower()}"
    with pytest.raises(ContractLogicError, match=expected):
        deployed.contract.functions.delegate(stranger, CMT).call()
    with pytest.raises(ContractLogicError, match=expected):  # eth_estimateGas says the same
        deployed.contract.functions.delegate(stranger, CMT).estimate_gas(
            {"from": deployed.sender.address}
        )
    assert deployed.contract.functions.tryDelegate(stranger, CMT).call() == expected
