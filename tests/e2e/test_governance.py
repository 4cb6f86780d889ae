"""Governance end to end on a 4-validator devnet, through JSON-RPC only (issue #10).

Proposals and votes are raw signed SPEC §5 envelopes sent with eth_sendRawTransaction (the
cmt_* methods are tested in their own file); the four validators have equal voting power, so
three "Y" (3·3 ≥ 2·4) approve and three "N" reject. One cluster lives through every step:

1. refusals: a proposal and a vote from an account that owns no validator, a vote on an
   unknown proposal: each refused at admission with its stable code, nothing changes;
2. fund recovery: one transfer approved, one rejected, one expired by height and one by
   timestamp, with exact balances of the accounts involved;
3. a parameter change visible to the very next transaction: gas_price raised, a transfer at the
   old price is now a low-price transaction (its 600,000 gas limit refused with code 102);
4. deploy_libeni: `reverse` v2.0.0 (code points, not bytes) enabled at its deploy height; a
   contract calling the ENI precompile gets the old behaviour before it, the new one from it on.

A second cluster approves an upgrade_program: all four nodes halt at its height.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from web3 import Web3

from cybermiles_node.operator.config import HomeLayout
from tests.e2e.cluster import Cluster
from tests.e2e.harness import (
    CHAIN_ID,
    MIN_GAS_PRICE,
    REPO_ROOT,
    dev_keys,
    fresh_account,
    send_signed,
    sign_transfer,
    staking_raw,
    wait_for,
)

pytestmark = pytest.mark.e2e

CMT = 10**18
TIMEOUT_S = 90.0
RELEASE = {"file_url": '{"linux": "https://example.invalid/eni"}', "md5": '{"linux": "0"}'}


class Governance:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.w3: Web3 = cluster.web3(0)
        keys = dev_keys(10)
        self.validators = keys[:4]  # dev account i owns genesis validator i
        self.outsider, self.funder = keys[5], keys[9]

    # -- sending -----------------------------------------------------------------------------
    def raw(self, account: LocalAccount, kind: str, data: Mapping[str, object]) -> dict[str, Any]:
        nonce = self.w3.eth.get_transaction_count(account.address, "pending")
        answer: dict[str, Any] = self.cluster.rpc(
            0, "eth_sendRawTransaction", [staking_raw(account, nonce, kind, data)]
        )
        return answer

    def send(self, account: LocalAccount, kind: str, data: Mapping[str, object]) -> bytes:
        """A governance transaction mined with status 1; its hash (a proposal's id)."""
        answer = self.raw(account, kind, data)
        assert "result" in answer, f"{kind} refused: {answer}"
        receipt = self.w3.eth.wait_for_transaction_receipt(
            answer["result"], timeout=TIMEOUT_S, poll_latency=0.1
        )
        assert receipt["status"] == 1, f"{kind} failed: {receipt}"
        return bytes(receipt["transactionHash"])

    def refused(self, account: LocalAccount, kind: str, data: Mapping[str, object]) -> int:
        answer = self.raw(account, kind, data)
        assert "error" in answer, f"{kind} accepted: {answer}"
        return int(answer["error"]["code"])

    def propose(self, kind: str, data: Mapping[str, object]) -> bytes:
        return self.send(self.validators[0], f"governance/propose/{kind}", data)

    def vote_all(self, proposal_id: bytes, answer: str, voters: int = 3) -> None:
        for validator in self.validators[:voters]:
            self.send(validator, "governance/vote", vote(proposal_id, answer))

    def transfer(self, to: str, amount: int) -> None:
        nonce = self.w3.eth.get_transaction_count(self.funder.address, "pending")
        tx_hash = send_signed(self.w3, sign_transfer(self.funder, nonce, to, amount))
        assert self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=TIMEOUT_S)["status"]

    # -- reading -----------------------------------------------------------------------------
    def height(self) -> int:
        return int(self.w3.eth.block_number)

    def balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def proposal(self, proposal_id: bytes) -> dict[str, Any]:
        answer = self.cluster.rpc(0, "cmt_queryProposals", [])
        assert "result" in answer, answer
        wanted = base64.b64encode(proposal_id).decode()
        found = [p for p in _proposals(answer["result"]) if p["Id"] == wanted]
        assert len(found) == 1, f"proposal {wanted} not listed once: {answer['result']}"
        return found[0]

    def wait_result(self, proposal_id: bytes, result: str) -> dict[str, Any]:
        def decided() -> dict[str, Any] | None:
            record = self.proposal(proposal_id)
            return record if record["Result"] == result else None

        found: dict[str, Any] = wait_for(decided, timeout=TIMEOUT_S, what=f"proposal {result}")
        return found


def _proposals(result: Any) -> list[dict[str, Any]]:
    """cmt_queryProposals' list (bare, or under "data" as the other cmt queries answer)."""
    listed = result["data"] if isinstance(result, dict) and "data" in result else result
    assert isinstance(listed, list), result
    return listed


def vote(proposal_id: bytes, answer: str) -> dict[str, object]:
    return {"proposal_id": base64.b64encode(proposal_id).decode(), "answer": answer}


def test_governance_on_four_validators(cluster_factory: Callable[..., Cluster]) -> None:
    gov = Governance(cluster_factory(validators=4))
    check_refusals(gov)
    check_fund_transfers(gov)
    check_param_change(gov)
    check_library_deploy(gov)


# -- 1. refusals ----------------------------------------------------------------------------------
def check_refusals(gov: Governance) -> None:
    data = {"transfer_from": gov.funder.address, "transfer_to": gov.outsider.address, "amount": "1"}
    before = gov.balance(gov.funder.address)
    assert gov.refused(gov.outsider, "governance/propose/transfer_fund", data) == 3022
    assert gov.refused(gov.outsider, "governance/vote", vote(b"\x01" * 32, "Y")) == 3022
    assert gov.refused(gov.validators[1], "governance/vote", vote(b"\x01" * 32, "Y")) == 3005
    assert gov.balance(gov.funder.address) == before


# -- 2. fund recovery -----------------------------------------------------------------------------
def check_fund_transfers(gov: Governance) -> None:
    source, target = fresh_account("gov-source"), fresh_account("gov-target")
    gov.transfer(source.address, 1_000 * CMT)
    far = gov.height() + 200

    def propose(amount: int, **expiry: int) -> bytes:
        data = {
            "transfer_from": source.address.lower(), "transfer_to": target.address.lower(),
            "amount": str(amount * CMT), "reason": "recovery", **expiry,
        }  # fmt: skip
        return gov.propose("transfer_fund", data)

    approved = propose(100, expire_block_height=far)
    assert gov.balance(source.address) == 900 * CMT  # escrowed at once, no consent
    gov.vote_all(approved, "Y")
    gov.wait_result(approved, "Approved")
    assert gov.balance(target.address) == 100 * CMT

    rejected = propose(50, expire_block_height=far)
    assert gov.balance(source.address) == 850 * CMT
    gov.vote_all(rejected, "N")
    gov.wait_result(rejected, "Rejected")
    assert gov.balance(source.address) == 900 * CMT

    by_height = propose(30, expire_block_height=gov.height() + 8)
    gov.send(gov.validators[0], "governance/vote", vote(by_height, "Y"))  # one of four
    record = gov.wait_result(by_height, "Expired")
    assert record["ResultBlockHeight"] >= record["ExpireBlockHeight"]

    time_now = int(gov.w3.eth.get_block("latest")["timestamp"])
    by_time = propose(20, expire_timestamp=time_now + 8)
    assert gov.balance(source.address) == 880 * CMT
    gov.wait_result(by_time, "Expired")
    assert gov.balance(source.address) == 900 * CMT
    assert gov.balance(target.address) == 100 * CMT


# -- 3. a parameter change ------------------------------------------------------------------------
def check_param_change(gov: Governance) -> None:
    sender = fresh_account("gov-sender")
    gov.transfer(sender.address, 10 * CMT)

    def big_transfer(nonce: int) -> dict[str, Any]:
        tx = {
            "to": gov.funder.address, "value": 1, "gas": 600_000, "gasPrice": MIN_GAS_PRICE,
            "nonce": nonce, "chainId": CHAIN_ID,
        }  # fmt: skip
        raw = "0x" + bytes(sender.sign_transaction(tx).raw_transaction).hex()
        answer: dict[str, Any] = gov.cluster.rpc(0, "eth_sendRawTransaction", [raw])
        return answer

    accepted = big_transfer(0)
    assert "result" in accepted, accepted  # at the minimum price: not a low-price tx
    gov.w3.eth.wait_for_transaction_receipt(accepted["result"], timeout=TIMEOUT_S)
    data = {"name": "gas_price", "value": str(MIN_GAS_PRICE + 1), "reason": "raise"}
    pid = gov.propose("change_param", data)
    gov.vote_all(pid, "Y")
    gov.wait_result(pid, "Approved")
    params = gov.cluster.rpc(0, "cmt_queryParams", [])["result"]
    shown = params["data"] if "data" in params else params
    assert int(shown["gas_price"]) == MIN_GAS_PRICE + 1
    refused = big_transfer(1)
    assert "error" in refused and "102" in refused["error"]["message"], refused


# -- 4. deploy_libeni -----------------------------------------------------------------------------
def check_library_deploy(gov: Governance) -> None:
    artifact = REPO_ROOT / "contracts" / "build" / "CvmFeatures.json"
    compiled = json.loads(artifact.read_text())
    factory = gov.w3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"])
    owner = gov.funder
    tx = factory.constructor().build_transaction({
        "from": owner.address, "nonce": gov.w3.eth.get_transaction_count(owner.address, "pending"),
        "chainId": CHAIN_ID, "gasPrice": MIN_GAS_PRICE + 1,
    })  # fmt: skip
    receipt = gov.w3.eth.wait_for_transaction_receipt(
        send_signed(gov.w3, owner.sign_transaction(tx)), timeout=TIMEOUT_S
    )
    contract = gov.w3.eth.contract(address=receipt["contractAddress"], abi=compiled["abi"])
    call = contract.functions.native("reverse", '["héllo"]')._encode_transaction_data()

    def reversed_at(block: int) -> bytes:
        raw = gov.w3.eth.call({"to": contract.address, "data": call}, block)
        (value,) = abi_decode(["bytes"], bytes(raw))
        return bytes(value)

    deploy_at = gov.height() + 10
    data = {"name": "reverse", "version": "v2.0.0", "deploy_block_height": deploy_at, **RELEASE}
    pid = gov.propose("deploy_libeni", data)
    gov.vote_all(pid, "Y")
    gov.wait_result(pid, "Approved")
    wait_for(lambda: gov.height() >= deploy_at, timeout=TIMEOUT_S, what=f"height {deploy_at}")
    # eth_call at block N runs a transaction after N, as block N + 1 would: on N's state and
    # the library versions in force for N + 1.
    assert reversed_at(deploy_at - 2) == "héllo".encode()[::-1]  # v1.3.7: bytes
    assert reversed_at(deploy_at - 1) == "olléh".encode()  # v2.0.0 from block deploy_at on
    assert reversed_at(deploy_at) == "olléh".encode()


# -- 5. upgrade_program ---------------------------------------------------------------------------
EXIT_HALTED = 3  # operator/cli.py: the chain halted for an upgrade


def test_an_approved_upgrade_halts_every_node_at_its_height(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """Four validators approve an upgrade to v9.0.0 at height H: every node commits H, exits
    with status 3 naming the version, and none signed anything above H (no fork: one block H).
    Restarted with the same version a node refuses; declared v9.0.0, the four go on."""
    cluster = cluster_factory(validators=4)
    gov = Governance(cluster)
    halt_at = gov.height() + 12
    data = {"name": "cybermiles", "version": "v9.0.0", "upgrade_block_height": halt_at, **RELEASE}
    pid = gov.propose("upgrade_program", data)
    gov.vote_all(pid, "Y")
    gov.wait_result(pid, "Approved")
    wait_for(
        lambda: not any(cluster.alive(i) for i in range(4)),
        timeout=TIMEOUT_S,
        what="the four validators to halt",
    )
    line = f"halted at block {halt_at}: upgrade needed: cybermiles v9.0.0"
    for node in cluster.nodes[:4]:
        assert line in node.log_path.read_text().splitlines(), cluster.log_tail()
        signed = json.loads(HomeLayout(node.home).validator_state_file.read_text())
        assert signed["height"] == halt_at, f"{node.name} signed {signed}"

    refused = cluster.restart(0, wait=False)  # the same program version
    assert refused.wait(timeout=TIMEOUT_S) == EXIT_HALTED, cluster.log_tail()

    cluster.node_args = ["--program-version", "v9.0.0"]
    for i in range(4):
        cluster.restart(i)
    for i in range(4):
        cluster.wait_height(i, halt_at + 2)
    halting = {
        cluster.rpc(i, "eth_getBlockByNumber", [hex(halt_at), False])["result"]["hash"]
        for i in range(4)
    }
    assert len(halting) == 1
