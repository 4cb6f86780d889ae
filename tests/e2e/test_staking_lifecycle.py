"""The staking lifecycle end to end: 4 genesis validators and a fifth node elected by stake.

Real node processes; JSON-RPC (staking transactions are raw signed SPEC §5 envelopes sent with
eth_sendRawTransaction) and the status endpoint only. One cluster (unstake_waiting_period 5,
max_vals 4, backup_vals 1) lives through every step, in order:

1. declare: a fifth node joins as an operator would (`cybermiles init --genesis`); dev account 4
   declares a candidacy with that node's validator key and dev account 5 delegates to it. The
   election makes it a Backup Validator, so the consensus set has 5 members: node 0's
   /validators lists its key with power 10, and its signature is in the commits after that.
2. withdraw: part of the delegation; paid at exactly request height + 5 (the balance one block
   earlier is unchanged) and cmt_queryDelegator shows the withdraw_amount.
3. deactivate: active "N" and out of the set. The fifth node is no longer needed: with it
   stopped AND node 3 killed, 3 of the 4 genesis validators carry the chain (had it stayed in a
   set of 5, 30 of 50 would halt it). Activate: back in the set, and signing again.
4. account transfer: updateCandidacyAccount to a fresh funded account, accepted from it: the
   candidate, its key and its delegations now belong to the new address, which paid the
   self-stake, and the old owner got the self-stake back.
5. withdrawCandidacy of genesis validator 3: it leaves the set and the fifth becomes a Validator;
   with nodes 2 and 3 killed, nodes 0, 1 and the fifth (30 of 40) carry the chain, so the fifth
   node really signs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from cybermiles_node.operator.config import HomeLayout
from cybermiles_node.operator.keys import read_key
from tests.e2e.cluster import Cluster
from tests.e2e.harness import (
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
WAITING_PERIOD = 5  # blocks between an unstake request and its payment
MAX_AMOUNT = 100_000 * CMT  # the fifth candidate's max: its self-stake is a tenth of it
SELF_STAKE = MAX_AMOUNT // 10
DELEGATED = 20_000 * CMT
WITHDRAWN = 5_000 * CMT
VALIDATOR_POWER = "10"  # every member of the consensus set (SPEC §6)


class Lifecycle:
    """The cluster, the fifth node and the accounts of the test, with the few things every
    step does: send a staking transaction, read the staking records and the consensus set."""

    def __init__(self, cluster: Cluster, fifth: int) -> None:
        self.cluster = cluster
        self.fifth = fifth
        self.w3: Web3 = cluster.web3(0)
        key = read_key(HomeLayout(cluster.nodes[fifth].home).validator_key_file).public_key
        self.fifth_key = base64.b64encode(key).decode()
        self.fifth_address = hashlib.sha256(key).digest()[:20].hex().upper()
        accounts = dev_keys(8)
        self.genesis_owners = accounts[:4]  # dev account i owns genesis validator i
        self.owner, self.delegator, self.funder = accounts[4], accounts[5], accounts[6]

    # -- transactions ---------------------------------------------------------------------------
    def send(self, account: LocalAccount, kind: str, data: Mapping[str, object]) -> TxReceipt:
        """A staking transaction from `account` via node 0, mined with status 1."""
        nonce = self.w3.eth.get_transaction_count(account.address, "pending")
        raw = staking_raw(account, nonce, kind, data)
        answer = self.cluster.rpc(0, "eth_sendRawTransaction", [raw])
        assert "result" in answer, f"{kind} refused: {answer}"
        receipt = self.w3.eth.wait_for_transaction_receipt(
            answer["result"], timeout=TIMEOUT_S, poll_latency=0.1
        )
        assert receipt["status"] == 1, f"{kind} failed: {receipt}"
        return receipt

    def fund(self, to: str, amount: int) -> None:
        nonce = self.w3.eth.get_transaction_count(self.funder.address, "pending")
        tx_hash = send_signed(self.w3, sign_transfer(self.funder, nonce, to, amount))
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=TIMEOUT_S)
        assert receipt["status"] == 1

    def balance(self, account: LocalAccount | str, height: int) -> int:
        address = account if isinstance(account, str) else account.address
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address), height))

    # -- staking queries ------------------------------------------------------------------------
    def query(self, method: str, *params: object) -> Any:
        answer = self.cluster.rpc(0, method, list(params))
        assert "result" in answer, f"{method}{params}: {answer}"
        return answer["result"]["data"]

    def candidate(self, owner: LocalAccount | str) -> dict[str, Any]:
        address = owner if isinstance(owner, str) else owner.address
        record: dict[str, Any] = self.query("cmt_queryValidator", address.lower())
        return record

    def delegations(self, delegator: LocalAccount | str, height: int | None = None) -> Any:
        address = delegator if isinstance(delegator, str) else delegator.address
        params = [address.lower()] + ([] if height is None else [height])
        return self.query("cmt_queryDelegator", *params)

    def active_owners(self) -> set[str]:
        return {c["owner_address"] for c in self.query("cmt_queryValidators")}

    # -- consensus ------------------------------------------------------------------------------
    def consensus_set(self) -> dict[str, str]:
        """Node 0's validators of the next height: {base64 key: voting power}."""
        result = self.cluster.status_get(0, "/validators")
        return {v["pub_key"]["value"]: v["voting_power"] for v in result["validators"]}

    def genesis_key(self, i: int) -> str:
        key = read_key(HomeLayout(self.cluster.nodes[i].home).validator_key_file).public_key
        return base64.b64encode(key).decode()

    def wait_set(self, what: str, test: Callable[[dict[str, str]], bool]) -> dict[str, str]:
        def matches() -> dict[str, str] | None:
            current = self.consensus_set()
            return current if test(current) else None

        return wait_for(matches, timeout=TIMEOUT_S, what=what, interval=0.2)

    def signers(self, height: int) -> set[str]:
        """Validator addresses in node 0's commit of `height` and in the next block's
        last_commit (each holds the precommits its collector had gathered)."""
        commit = self.cluster.status_get(0, f"/commit?height={height}")
        found = {s["validator_address"] for s in commit["signed_header"]["commit"]["signatures"]}
        if self.cluster.height(0) > height:
            block = self.cluster.status_get(0, f"/block?height={height + 1}")["block"]
            last = block["last_commit"] or {"signatures": []}
            found |= {s["validator_address"] for s in last["signatures"]}
        return found

    def wait_fifth_signs(self, after: int, what: str) -> int:
        """The first height above `after` whose commit the fifth validator signed."""
        checked = [after]

        def signed() -> tuple[int] | None:
            while checked[0] < self.cluster.height(0):
                checked[0] += 1
                if self.fifth_address in self.signers(checked[0]):
                    return (checked[0],)
            return None

        return wait_for(signed, timeout=TIMEOUT_S, what=what, interval=0.2)[0]

    def wait_blocks(self, count: int) -> int:
        """Until node 0 has `count` more blocks; returns its head."""
        return self.cluster.wait_height(0, self.cluster.height(0) + count, timeout=TIMEOUT_S)


def events(receipt: TxReceipt) -> list[dict[str, Any]]:
    """The staking events of a receipt (each log's data is the event as JSON)."""
    return [json.loads(bytes(log["data"])) for log in receipt["logs"]]


def event(receipt: TxReceipt, name: str) -> dict[str, Any]:
    (found,) = [e for e in events(receipt) if e["event"] == f"stake/{name}"]
    return found


def amount(value: int | str) -> int:
    return int(value)  # large amounts are JSON strings in events


# -- the steps ---------------------------------------------------------------------------------


def declare_and_elect(life: Lifecycle) -> None:
    owner = life.owner.address.lower()
    declared = life.send(
        life.owner,
        "stake/declareCandidacy",
        {
            "pub_key": life.fifth_key,
            "max_amount": str(MAX_AMOUNT),
            "comp_rate": "1/2",
            "description": {"name": "fifth", "website": "https://example.org"},
        },
    )
    assert amount(event(declared, "candidate_declared")["amount"]) == SELF_STAKE
    life.send(
        life.delegator, "stake/delegate", {"validator_address": owner, "amount": str(DELEGATED)}
    )
    record = life.candidate(life.owner)
    assert record["pub_key"]["value"] == life.fifth_key and record["active"] == "Y"
    assert record["shares"] == str(SELF_STAKE + DELEGATED) and record["num_of_delegators"] == 2
    # max_vals 4 are the genesis validators (more voting power); backup_vals 1 is the fifth.
    assert record["state"] == "Backup Validator", record
    assert owner in life.active_owners()

    elected = life.wait_set("the fifth key in node 0's /validators", lambda s: life.fifth_key in s)
    assert len(elected) == 5 and set(elected.values()) == {VALIDATOR_POWER}
    wait_for(
        lambda: (
            life.cluster.status(life.fifth)["validator_info"]["voting_power"] == VALIDATOR_POWER
        ),
        timeout=TIMEOUT_S,
        what="the fifth node's /status to show it as a validator",
        interval=0.2,
    )
    life.wait_fifth_signs(declared["blockNumber"] + 2, "a commit signed by the fifth validator")


def withdraw_part(life: Lifecycle) -> None:
    owner = life.owner.address.lower()
    receipt = life.send(
        life.delegator,
        "stake/withdraw",
        {"validator_address": owner, "amount": str(WITHDRAWN)},
    )
    requested_at = receipt["blockNumber"]
    request = event(receipt, "unstake_requested")
    matures_at = requested_at + WAITING_PERIOD
    assert request["matures_at"] == matures_at and amount(request["amount"]) == WITHDRAWN
    (pending,) = life.delegations(life.delegator, requested_at)
    assert pending["pending_withdraw_amount"] == str(WITHDRAWN)

    life.cluster.wait_height(0, matures_at, timeout=TIMEOUT_S)
    before = life.balance(life.delegator, requested_at)
    assert life.balance(life.delegator, matures_at - 1) == before  # still waiting
    assert life.balance(life.delegator, matures_at) == before + WITHDRAWN
    (paid,) = life.delegations(life.delegator)
    assert paid["withdraw_amount"] == str(WITHDRAWN) and paid["pending_withdraw_amount"] == "0"
    assert paid["delegate_amount"] == str(DELEGATED)
    # what is left, plus the awards it has earned (shown as if settled now)
    assert int(paid["shares"]) == DELEGATED - WITHDRAWN + int(paid["award_amount"])
    assert int(paid["award_amount"]) > 0


def deactivate_and_activate(life: Lifecycle) -> None:
    cluster, owner = life.cluster, life.owner.address.lower()
    life.send(life.owner, "stake/deactivateCandidacy", {})
    assert life.candidate(life.owner)["active"] == "N"
    assert owner not in life.active_owners()
    life.wait_set("the fifth key out of /validators", lambda s: life.fifth_key not in s)
    assert life.candidate(life.owner)["state"] == "Candidate"

    # Not needed any more: without it and without node 3, 30 of 40 carry on.
    cluster.kill(life.fifth, signal.SIGTERM)
    cluster.kill(3)
    life.wait_blocks(3)  # by nodes 0-2 alone
    cluster.restart(3)
    cluster.restart(life.fifth)

    back = life.send(life.owner, "stake/activateCandidacy", {})
    assert life.candidate(life.owner)["active"] == "Y"
    assert owner in life.active_owners()
    life.wait_set("the fifth key back in /validators", lambda s: life.fifth_key in s)
    assert life.candidate(life.owner)["state"] == "Backup Validator"
    life.wait_fifth_signs(back["blockNumber"] + 2, "the fifth validator signing again")


def transfer_account(life: Lifecycle) -> None:
    old, new = life.owner, fresh_account(9401)
    life.fund(new.address, 2 * SELF_STAKE)  # the self-stake, its awards and the fee
    requested = life.send(
        old, "stake/updateCandidacyAccount", {"new_candidate_account": new.address.lower()}
    )
    request_id = event(requested, "account_update_requested")["request_id"]
    accepted = life.send(
        new, "stake/acceptCandidacyAccountUpdate", {"account_update_request_id": request_id}
    )
    height = accepted["blockNumber"]
    fee = amount(event(accepted, "fee_paid")["amount"])
    # the old owner's self-stake with the awards settled into it
    returned = amount(event(accepted, "stake_returned")["amount"])
    assert returned >= SELF_STAKE
    assert life.balance(old, height) == life.balance(old, height - 1) + returned
    assert life.balance(new, height) == life.balance(new, height - 1) - returned - fee

    record = life.candidate(new)
    assert record["owner_address"] == new.address.lower()
    assert record["pub_key"]["value"] == life.fifth_key
    assert int(record["shares"]) >= returned + DELEGATED - WITHDRAWN
    owners = life.active_owners()
    assert new.address.lower() in owners and old.address.lower() not in owners
    (own,) = life.delegations(new)
    assert own["validator_address"] == new.address.lower()
    assert own["delegate_amount"] == str(returned)
    assert life.delegations(old) is None
    (delegated,) = life.delegations(life.delegator)
    assert delegated["validator_address"] == new.address.lower()
    assert life.consensus_set().get(life.fifth_key) == VALIDATOR_POWER  # same key, still in
    life.owner = new


def withdraw_genesis_candidacy(life: Lifecycle) -> None:
    cluster, leaving = life.cluster, life.genesis_owners[3]
    receipt = life.send(leaving, "stake/withdrawCandidacy", {})
    height = receipt["blockNumber"]
    unstake = event(receipt, "unstake_requested")
    assert unstake["completely_withdraw"] is True and amount(unstake["amount"]) > 0
    record = life.candidate(leaving)
    assert record["active"] == "N" and record["shares"] == "0"
    node3_key = life.genesis_key(3)
    remaining = life.wait_set("node 3's key out of /validators", lambda s: node3_key not in s)
    assert set(remaining) == {life.genesis_key(i) for i in range(3)} | {life.fifth_key}
    assert life.candidate(life.owner)["state"] == "Validator"

    # A complete withdrawal pays the stake (and any awards accrued meanwhile) at maturity.
    life.cluster.wait_height(0, height + WAITING_PERIOD, timeout=TIMEOUT_S)
    paid = life.balance(leaving, height + WAITING_PERIOD) - life.balance(leaving, height)
    assert paid >= amount(unstake["amount"])

    # Nodes 0, 1 and the fifth are 30 of 40: the chain goes on only if the fifth signs.
    cluster.kill(3)
    cluster.kill(2)
    start = cluster.height(0)
    signed = life.wait_fifth_signs(start, "a commit of nodes 0, 1 and the fifth")
    later = life.wait_blocks(3)
    assert later > signed
    assert life.fifth_address in life.signers(later - 1)
    # The fifth node holds the same chain.
    cluster.wait_height(life.fifth, later, timeout=TIMEOUT_S)
    fifth_w3 = cluster.web3(life.fifth)
    assert fifth_w3.eth.get_block(later)["hash"] == life.w3.eth.get_block(later)["hash"]


# -- the test ----------------------------------------------------------------------------------


def test_staking_lifecycle_with_a_fifth_validator(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_factory(validators=4, params={"unstake_waiting_period": WAITING_PERIOD})
    cluster.wait_height(0, 2, timeout=TIMEOUT_S)
    fifth = cluster.join(tmp_path / "fifth")
    life = Lifecycle(cluster, fifth)
    params = life.query("cmt_queryParams")
    assert params["unstake_waiting_period"] == WAITING_PERIOD
    assert (params["max_vals"], params["backup_vals"]) == (4, 1)

    declare_and_elect(life)
    withdraw_part(life)
    deactivate_and_activate(life)
    transfer_account(life)
    withdraw_genesis_candidacy(life)
