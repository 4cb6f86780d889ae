"""The cmt_* governance methods (rpc/cmt_tx.py's governance table) and cmt_queryProposals, called
through the dispatcher of an in-process node (tests/cmt_node.py: a real ChainApp with the node's
own modules, blocks made on demand).

Three genesis validators owned by dev accounts 0-2 with equal voting power: one "Y" leaves a
proposal open, two approve it (3·yes ≥ 2·total). Dev account 5 owns no validator. Refusals are
results at height 0 with governance's check_tx code and a log saying why, and change nothing:
no block, nothing pending, the proposals and balances as they were.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from genesis import dev_accounts, devnet_genesis
from tests.cmt_node import CmtNode

ACCOUNTS = dev_accounts(8)
V0, V1, V2 = ACCOUNTS[:3]  # owners of the genesis validators
OUTSIDER, FROM, TO = ACCOUNTS[5], ACCOUNTS[6], ACCOUNTS[7]
T0 = 1_700_000_000
GENESIS = devnet_genesis(
    validator_pub_keys=[bytes([i + 1]) * 32 for i in range(3)], genesis_time=T0
)
PARAMS = GENESIS.params
BALANCE = dict(GENESIS.alloc)[FROM.address].balance
CMT = 10**18
PROPOSAL_FEE = PARAMS.transfer_fund_proposal_gas * PARAMS.gas_price
RELEASE = {
    "fileUrl": '{"linux": ["https://example.invalid/libreverse.so"]}',
    "md5": '{"linux": "d41d8cd98f00b204e9800998ecf8427e"}',
}


def hex_of(address: bytes) -> str:
    return "0x" + address.hex()


def new_node() -> CmtNode:
    return CmtNode(GENESIS, ACCOUNTS)


def committed(node: CmtNode, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A method that must commit: Travis's shape, at the block just made."""
    answer = node.call(method, params)
    assert "error" not in answer, answer
    result: dict[str, Any] = answer["result"]
    assert result["check_tx"] == {"code": 0, "log": ""}, result
    assert result["height"] == node.app.head.block_number, result
    assert result["deliver_tx"]["code"] == 0, result
    return result


def refused(node: CmtNode, method: str, params: dict[str, Any], code: int) -> str:
    """A method refused at admission with `code`: answered at once, nothing changed."""
    head = node.app.head.block_number
    before = proposals(node)
    answer = node.call(method, params)
    result = answer["result"]
    assert result["height"] == 0 and result["deliver_tx"] == {}, result
    assert result["check_tx"]["code"] == code, result
    assert node.app.head.block_number == head and node.app.pending_count == 0
    assert proposals(node) == before
    log: str = result["check_tx"]["log"]
    assert log
    return log


def proposals(node: CmtNode) -> list[dict[str, Any]]:
    answer = node.query("cmt_queryProposals")["result"]
    assert answer["height"] == node.app.head.block_number
    found: list[dict[str, Any]] = answer["data"]
    return found


def balance(node: CmtNode, account: bytes) -> int:
    return node.app.chain.state_at().get_balance(account)


def transfer(amount: int = 100 * CMT, **extra: object) -> dict[str, Any]:
    return {
        "from": hex_of(V0.address),
        "transferFrom": hex_of(FROM.address),
        "transferTo": hex_of(TO.address),
        "amount": hex(amount),
        **extra,
    }


def vote(voter: bytes, proposal_id: str, answer: str = "Y") -> dict[str, Any]:
    return {"from": hex_of(voter), "proposalId": proposal_id, "answer": answer}


# -- happy paths ----------------------------------------------------------------------------------
def test_a_transfer_proposal_answers_its_id_and_two_votes_pay_it_exactly() -> None:
    node = new_node()
    proposer_before, voter_before = balance(node, V0.address), balance(node, V1.address)
    proposed = committed(node, "cmt_proposeTransferFund", transfer(reason="recovery"))
    deliver = proposed["deliver_tx"]
    # deliver_tx.data: the proposal id, i.e. base64 of the proposing transaction's hash
    assert base64.b64decode(deliver["data"]) == bytes.fromhex(proposed["hash"][2:])
    assert deliver["gasUsed"] == str(PARAMS.transfer_fund_proposal_gas)
    assert deliver["fee"] == {"key": "R2FzRmVl", "value": str(PROPOSAL_FEE)}
    assert '"governance/proposed"' in deliver["log"] and '"governance/escrowed"' in deliver["log"]
    proposal_id = deliver["data"]
    assert balance(node, FROM.address) == BALANCE - 100 * CMT  # escrowed at once
    assert balance(node, TO.address) == BALANCE
    assert balance(node, V0.address) == proposer_before - PROPOSAL_FEE

    (record,) = proposals(node)
    assert record == {
        "Id": proposal_id,
        "Type": "transfer_fund",
        "Proposer": hex_of(V0.address),
        "BlockHeight": 1,
        "ExpireTimestamp": 0,
        "ExpireBlockHeight": 1 + PARAMS.proposal_expire_period,
        "Result": "",
        "ResultMsg": "",
        "ResultBlockHeight": 0,
        "Detail": {
            "transfer_from": hex_of(FROM.address),
            "transfer_to": hex_of(TO.address),
            "amount": str(100 * CMT),
            "reason": "recovery",
        },
        "Votes": {},
    }

    first = committed(node, "cmt_vote", vote(V0.address, proposal_id))
    assert first["deliver_tx"]["data"] == "" and first["deliver_tx"]["fee"] == {}
    assert first["deliver_tx"]["gasUsed"] == "0"
    (record,) = proposals(node)
    assert record["Result"] == "" and record["Votes"] == {hex_of(V0.address): "Y"}

    second = committed(node, "cmt_vote", vote(V1.address, proposal_id))
    assert '"governance/paid"' in second["deliver_tx"]["log"]
    (record,) = proposals(node)
    assert record["Result"] == "Approved" and record["ResultBlockHeight"] == second["height"]
    assert record["Votes"] == {hex_of(V0.address): "Y", hex_of(V1.address): "Y"}
    assert balance(node, TO.address) == BALANCE + 100 * CMT
    assert balance(node, FROM.address) == BALANCE - 100 * CMT
    assert balance(node, V0.address) == proposer_before - PROPOSAL_FEE  # votes are free
    assert balance(node, V1.address) == voter_before


def test_an_approved_gas_price_change_shows_in_cmt_query_params() -> None:
    node = new_node()
    proposed = committed(
        node,
        "cmt_proposeChangeParam",
        {"from": hex_of(V1.address), "name": "gas_price", "value": "3000000000"},
    )
    proposal_id = proposed["deliver_tx"]["data"]
    committed(node, "cmt_vote", vote(V1.address, proposal_id))
    decided = committed(node, "cmt_vote", vote(V2.address, proposal_id))
    assert '"governance/param_changed"' in decided["deliver_tx"]["log"]
    latest = node.query("cmt_queryParams")["result"]
    assert latest["height"] == decided["height"] and latest["data"]["gas_price"] == 3_000_000_000
    before = node.query("cmt_queryParams", decided["height"] - 1)["result"]
    assert before["data"]["gas_price"] == PARAMS.gas_price
    (record,) = proposals(node)
    assert record["Type"] == "change_param" and record["Result"] == "Approved"
    assert record["Detail"] == {"name": "gas_price", "value": "3000000000", "reason": ""}


SCHEDULED = [
    (
        "cmt_proposeDeployLibEni",
        {"name": "reverse", "version": "v2.0.0", **RELEASE, "deployBlockHeight": 50},
        "deploy_libeni",
        {"name": "reverse", "version": "v2.0.0", "deploy_block_height": 50},
    ),
    (
        "cmt_proposeRetireProgram",
        {"preservedValidators": "", "reason": "end", "retiredBlockHeight": 60},
        "retire_program",
        {"preserved_validators": "", "reason": "end", "retired_block_height": 60},
    ),
    (
        "cmt_proposeUpgradeProgram",
        {"name": "cybermiles", "version": "v2.0.0", **RELEASE, "upgradeBlockHeight": 70},
        "upgrade_program",
        {"name": "cybermiles", "version": "v2.0.0", "upgrade_block_height": 70},
    ),
]


@pytest.mark.parametrize(("method", "params", "kind", "detail"), SCHEDULED)
def test_scheduled_proposals_expire_at_their_effect_point(
    method: str, params: dict[str, Any], kind: str, detail: dict[str, Any]
) -> None:
    node = new_node()
    proposed = committed(node, method, {"from": hex_of(V2.address), **params})
    gas = {
        "deploy_libeni": PARAMS.deploy_libeni_proposal_gas,
        "retire_program": PARAMS.retire_program_proposal_gas,
        "upgrade_program": PARAMS.upgrade_program_proposal_gas,
    }[kind]
    assert proposed["deliver_tx"]["gasUsed"] == str(gas)
    (record,) = proposals(node)
    assert record["Id"] == proposed["deliver_tx"]["data"] and record["Type"] == kind
    assert record["Proposer"] == hex_of(V2.address) and record["Result"] == ""
    assert record["ExpireBlockHeight"] == next(v for k, v in detail.items() if "height" in k)
    assert {k: record["Detail"][k] for k in detail} == detail
    if "fileUrl" in params:  # canonical JSON text of the object sent
        assert record["Detail"]["file_url"] == (
            '{"linux":["https://example.invalid/libreverse.so"]}'
        )


def test_proposals_are_listed_in_creation_order_with_their_results() -> None:
    node = new_node()
    ids = []
    for amount in (1, 2, 3):
        proposed = committed(node, "cmt_proposeTransferFund", transfer(amount * CMT))
        ids.append(proposed["deliver_tx"]["data"])
    for voter in (V0, V1):
        committed(node, "cmt_vote", vote(voter.address, ids[1], "N"))
    listed = proposals(node)
    assert [p["Id"] for p in listed] == ids
    assert [p["BlockHeight"] for p in listed] == [1, 2, 3]
    assert [p["Detail"]["amount"] for p in listed] == [str(n * CMT) for n in (1, 2, 3)]
    assert [p["Result"] for p in listed] == ["", "Rejected", ""]
    assert balance(node, FROM.address) == BALANCE - 4 * CMT  # the rejected 2 CMT refunded
    earlier = node.query("cmt_queryProposals", 2)["result"]
    assert earlier["height"] == 2 and [p["Id"] for p in earlier["data"]] == ids[:2]
    assert node.query("cmt_queryProposals", 99)["error"]["code"] == -32000
    assert node.query("cmt_queryProposals", "latest")["error"]["code"] == -32602


def test_an_undecided_proposal_expires_and_is_refunded() -> None:
    node = new_node()
    proposed = committed(node, "cmt_proposeTransferFund", transfer(expireBlockHeight=5))
    committed(node, "cmt_vote", vote(V0.address, proposed["deliver_tx"]["data"]))  # block 2
    log = refused(node, "cmt_vote", vote(V1.address, proposed["deliver_tx"]["data"]), 21)
    assert "closed at height 3" in log  # the next block is 3 = expiry - 2
    node.produce()
    node.produce()
    assert proposals(node)[0]["Result"] == ""
    node.produce()  # block 5: tallied once more, one "Y" of three
    (record,) = proposals(node)
    assert record["Result"] == "Expired" and record["ResultBlockHeight"] == 5
    assert record["ExpireBlockHeight"] == 5 and record["Detail"]["expire_block_height"] == 5
    assert balance(node, FROM.address) == BALANCE


def test_a_chain_without_proposals_lists_none() -> None:
    node = new_node()
    assert node.query("cmt_queryProposals")["result"] == {"height": 0, "data": []}


# -- refusals at admission ------------------------------------------------------------------------
def test_owners_of_no_validator_may_neither_propose_nor_vote() -> None:
    node = new_node()
    outsider = hex_of(OUTSIDER.address)
    log = refused(node, "cmt_proposeTransferFund", {**transfer(), "from": outsider}, 21)
    assert outsider in log and "owns no current validator" in log
    proposal_id = committed(node, "cmt_proposeTransferFund", transfer())["deliver_tx"]["data"]
    log = refused(node, "cmt_vote", vote(OUTSIDER.address, proposal_id), 21)
    assert "owns no current validator" in log
    assert balance(node, OUTSIDER.address) == BALANCE


REFUSALS = [
    ("cmt_proposeTransferFund", transfer(expireBlockHeight=1), 21, "not after this block"),
    ("cmt_proposeTransferFund", transfer(expireTimestamp=T0), 21, "not after the block time"),
    (
        "cmt_proposeTransferFund",
        transfer(expireTimestamp=T0 + 1_000, expireBlockHeight=100),
        21,
        "not both",
    ),
    ("cmt_proposeTransferFund", transfer(BALANCE + 1), 20, "needs"),
    (
        "cmt_proposeTransferFund",
        {**transfer(), "transferTo": hex_of(FROM.address)},
        21,
        "the same",
    ),
    ("cmt_proposeTransferFund", transfer(expireBlockHeight=-1), 1, "data.expire_block_height"),
    (
        "cmt_proposeChangeParam",
        {"from": hex_of(V0.address), "name": "no_such_param", "value": "1"},
        21,
        "no_such_param",
    ),
    (
        "cmt_proposeChangeParam",
        {"from": hex_of(V0.address), "name": "gas_price", "value": "cheap"},
        21,
        "gas_price",
    ),
    (
        "cmt_proposeChangeParam",
        {"from": hex_of(V0.address), "name": "foundation_address", "value": "0x" + "11" * 20},
        21,
        "cannot be changed by governance",
    ),
    (
        "cmt_proposeDeployLibEni",
        {"from": hex_of(V0.address), "name": "reverse", "version": "2.0", **RELEASE},
        1,
        "data.version",
    ),
    (
        "cmt_proposeDeployLibEni",
        {"from": hex_of(V0.address), "name": "reverse", "version": "v9.9.9", **RELEASE},
        21,
        "v9.9.9",
    ),
    (
        "cmt_proposeDeployLibEni",
        {
            "from": hex_of(V0.address),
            "name": "reverse",
            "version": "v2.0.0",
            **RELEASE,
            "fileUrl": "not json",
        },
        1,
        "data.file_url",
    ),
    (
        "cmt_proposeUpgradeProgram",
        {"from": hex_of(V0.address), "name": "travis", "version": "v2.0.0", **RELEASE},
        21,
        "travis",
    ),
    (
        "cmt_proposeRetireProgram",
        {"from": hex_of(V0.address), "retiredBlockHeight": 1},
        21,
        "not after this block",
    ),
    ("cmt_vote", vote(V0.address, "AAAA"), 1, "data.proposal_id"),
    ("cmt_vote", vote(V0.address, base64.b64encode(b"\x07" * 32).decode()), 5, "no proposal"),
]


@pytest.mark.parametrize(("method", "params", "code", "says"), REFUSALS)
def test_bad_proposals_and_votes_are_refused_with_stable_codes(
    method: str, params: dict[str, Any], code: int, says: str
) -> None:
    node = new_node()
    before = {a.address: balance(node, a.address) for a in ACCOUNTS}
    assert says in refused(node, method, params, code)
    assert {a.address: balance(node, a.address) for a in ACCOUNTS} == before


def test_votes_on_decided_proposals_are_refused() -> None:
    node = new_node()
    proposal_id = committed(node, "cmt_proposeTransferFund", transfer())["deliver_tx"]["data"]
    committed(node, "cmt_vote", vote(V0.address, proposal_id, "N"))
    committed(node, "cmt_vote", vote(V1.address, proposal_id, "N"))
    log = refused(node, "cmt_vote", vote(V2.address, proposal_id), 21)
    assert "is decided (Rejected)" in log
    # the hex form of the id names the same proposal
    hex_id = "0x" + base64.b64decode(proposal_id).hex()
    assert "is decided" in refused(node, "cmt_vote", vote(V2.address, hex_id), 21)


MALFORMED = [
    ("cmt_proposeTransferFund", {**transfer(), "amount": "100"}, "invalid amount"),
    ("cmt_proposeTransferFund", transfer(expireBlockHeight="10"), "invalid expireBlockHeight"),
    ("cmt_proposeTransferFund", transfer(expireTimestamp=1.5), "invalid expireTimestamp"),
    ("cmt_proposeTransferFund", {**transfer(), "transferTo": "0x12"}, "invalid transferTo"),
    (
        "cmt_proposeTransferFund",
        {k: v for k, v in transfer().items() if k != "transferFrom"},
        "missing transferFrom",
    ),
    ("cmt_proposeTransferFund", transfer(expire=5), "unknown field 'expire'"),
    (
        "cmt_proposeChangeParam",
        {"from": hex_of(V0.address), "name": "gas_price", "value": 3},
        "invalid value",
    ),
    (
        "cmt_proposeDeployLibEni",
        {
            "from": hex_of(V0.address),
            "name": "reverse",
            "version": "v2.0.0",
            **RELEASE,
            "md5": {"linux": "00"},
        },
        "invalid md5",
    ),
    ("cmt_vote", {**vote(V0.address, "AAAA"), "answer": True}, "invalid answer"),
    ("cmt_vote", {"from": hex_of(V0.address), "answer": "Y"}, "missing proposalId"),
]


@pytest.mark.parametrize(("method", "params", "named"), MALFORMED)
def test_malformed_requests_are_invalid_params_naming_the_field(
    method: str, params: dict[str, Any], named: str
) -> None:
    node = new_node()
    error = node.call(method, params)["error"]
    assert error["code"] == -32602 and named in error["message"], error
    assert node.app.head.block_number == 0 and node.app.pending_count == 0
