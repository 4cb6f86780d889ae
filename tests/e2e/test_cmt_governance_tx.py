"""The cmt_* governance methods on a real 4-validator devnet, JSON-RPC only.

Dev account i owns genesis validator i (equal voting power: three "Y" of four approve, 3·yes ≥
2·total); every node holds the dev accounts' keys, so each validator's owner signs through its
own node. Account 0 proposes a fund transfer from account 6 to a fresh address through node 0;
the proposal id is its deliver_tx.data; the owners of validators 1 and 2 vote "Y" through nodes 1
and 2, which leaves it open (two of four); the owner of validator 3 votes through node 3 and
approves it: the escrowed amount is paid, and cmt_queryProposals on every node shows the same
record. A vote from an account that owns no validator, and one more vote on the decided
proposal, are refused at admission (height 0, check_tx code 21).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.harness import dev_keys

pytestmark = pytest.mark.e2e

CMT = 10**18
AMOUNT = 5 * CMT
PAYEE = "0x" + "5e" * 20  # a fresh address
PROPOSAL_GAS = 2_000_000  # transfer_fund_proposal_gas (SPEC §3 default)
GAS_PRICE = 2_000_000_000


def result(cluster: Cluster, node: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    answer = cluster.rpc(node, method, [params])
    assert "error" not in answer, (method, params, answer)
    found: dict[str, Any] = answer["result"]
    return found


def committed(cluster: Cluster, node: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    found = result(cluster, node, method, params)
    assert found["check_tx"] == {"code": 0, "log": ""} and found["height"] > 0, found
    assert found["deliver_tx"]["code"] == 0, found
    return found


def refused(cluster: Cluster, node: int, method: str, params: dict[str, Any], code: int) -> str:
    found = result(cluster, node, method, params)
    assert found["height"] == 0 and found["deliver_tx"] == {}, found
    assert found["check_tx"]["code"] == code, found
    log: str = found["check_tx"]["log"]
    return log


def proposals(cluster: Cluster, node: int) -> list[dict[str, Any]]:
    answer = cluster.rpc(node, "cmt_queryProposals", [])
    assert "error" not in answer, answer
    found: list[dict[str, Any]] = answer["result"]["data"]
    return found


def balance(cluster: Cluster, address: str) -> int:
    answer = cluster.rpc(0, "eth_getBalance", [address, "latest"])
    return int(answer["result"], 16)


def test_a_fund_transfer_is_proposed_voted_and_paid_through_cmt_methods(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(validators=4)
    owners = [a.address.lower() for a in dev_keys(7)]
    source, outsider = owners[6], owners[5]
    started = time.monotonic()
    source_before = balance(cluster, source)
    proposer_before = balance(cluster, owners[0])

    proposed = committed(
        cluster,
        0,
        "cmt_proposeTransferFund",
        {
            "from": owners[0],
            "transferFrom": source,
            "transferTo": PAYEE,
            "amount": hex(AMOUNT),
            "reason": "e2e",
        },
    )
    proposal_id = proposed["deliver_tx"]["data"]
    assert base64.b64decode(proposal_id) == bytes.fromhex(proposed["hash"][2:])
    fee = PROPOSAL_GAS * GAS_PRICE
    assert proposed["deliver_tx"]["fee"] == {"key": "R2FzRmVl", "value": str(fee)}
    assert balance(cluster, source) == source_before - AMOUNT
    assert balance(cluster, owners[0]) == proposer_before - fee

    for voter in (1, 2):
        vote = {"from": owners[voter], "proposalId": proposal_id, "answer": "Y"}
        committed(cluster, voter, "cmt_vote", vote)
    (record,) = proposals(cluster, 0)
    assert record["Id"] == proposal_id and record["Result"] == ""  # two of four
    assert record["Votes"] == {owners[1]: "Y", owners[2]: "Y"}
    assert "owns no current validator" in refused(
        cluster, 0, "cmt_vote", {"from": outsider, "proposalId": proposal_id, "answer": "N"}, 21
    )

    approving = committed(
        cluster, 3, "cmt_vote", {"from": owners[3], "proposalId": proposal_id, "answer": "Y"}
    )
    assert '"governance/paid"' in approving["deliver_tx"]["log"]
    assert balance(cluster, PAYEE) == AMOUNT
    assert balance(cluster, source) == source_before - AMOUNT
    for node in range(4):
        cluster.wait_height(node, approving["height"])
        (record,) = proposals(cluster, node)
        assert record["Result"] == "Approved", (node, record)
        assert record["ResultBlockHeight"] == approving["height"]
        assert record["Type"] == "transfer_fund" and record["Proposer"] == owners[0]
        assert record["BlockHeight"] == proposed["height"]
        assert record["Detail"] == {
            "transfer_from": source,
            "transfer_to": PAYEE,
            "amount": str(AMOUNT),
            "reason": "e2e",
        }
    log = refused(
        cluster, 0, "cmt_vote", {"from": owners[0], "proposalId": proposal_id, "answer": "N"}, 21
    )
    assert "decided (Approved)" in log
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"the governance steps took {elapsed:.1f} s"
