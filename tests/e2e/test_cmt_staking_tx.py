"""The cmt_* staking transaction methods on a real one-node devnet, as web3-cmt.js calls them.

The devnet's mnemonic accounts are unlocked, each funded with 1M CMT (account 0 owns the devnet's
validator). A candidate is declared, delegated to, has its delegator's comp rate set, sees a
withdrawal, is deactivated and activated again and hands its candidacy to another account; each
step is checked through cmt_queryValidator / cmt_queryDelegator. Refusals at admission are
results at height 0 with Travis's check_tx code, not JSON-RPC errors.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from consensus.keys import Ed25519Key
from tests.e2e.harness import Devnet, dev_keys

pytestmark = pytest.mark.e2e

CMT = 10**18
FOUNDATION = "0x7eff122b94897ea5b0e2a9abf47b86337fafebdc"  # SPEC §3's default; not unlocked here
GAS_PRICE = 2_000_000_000
DECLARE_GAS = 1_000_000


def pub_key(seed: int) -> str:
    return base64.b64encode(Ed25519Key.from_seed(bytes([seed]) * 32).public_key).decode()


def addr(account: LocalAccount) -> str:
    return account.address.lower()


def staking(devnet: Devnet, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One staking transaction method: the result object (it must not be a JSON-RPC error)."""
    response = devnet.rpc(method, [params], check=False)
    assert "error" not in response, (method, params, response)
    result: dict[str, Any] = response["result"]
    return result


def committed(devnet: Devnet, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A staking transaction that must commit: Travis's shape, checked, at the block it names."""
    result = staking(devnet, method, params)
    assert result["check_tx"] == {"code": 0, "log": ""}, result
    assert result["height"] > 0 and result["deliver_tx"]["code"] == 0, result
    receipt = devnet.result("eth_getTransactionReceipt", [result["hash"]], check=False)
    assert int(receipt["blockNumber"], 16) == result["height"] and receipt["status"] == "0x1"
    assert result["deliver_tx"]["gasUsed"] == str(int(receipt["gasUsed"], 16))
    return result


def refused(devnet: Devnet, method: str, params: dict[str, Any], code: int) -> str:
    """A staking transaction refused at admission with `code`: nothing pending, nonce kept."""
    sender = params["from"]
    nonce = devnet.result("eth_getTransactionCount", [sender, "pending"])
    result = staking(devnet, method, params)
    assert result["height"] == 0 and result["deliver_tx"] == {}, result
    assert result["check_tx"]["code"] == code, result
    assert devnet.result("eth_getTransactionCount", [sender, "pending"]) == nonce
    log: str = result["check_tx"]["log"]
    return log


def validator(devnet: Devnet, owner: str) -> dict[str, Any]:
    record: dict[str, Any] = devnet.result("cmt_queryValidator", [owner], check=False)["data"]
    return record


def delegation(devnet: Devnet, delegator: str, candidate: str) -> dict[str, Any]:
    records = devnet.result("cmt_queryDelegator", [delegator], check=False)["data"] or []
    (found,) = [r for r in records if r["validator_address"] == candidate]
    return dict(found)


def test_a_candidate_lifecycle_through_node_signed_staking_methods(devnet: Devnet) -> None:
    accounts = dev_keys(10)
    owner, delegator, successor = addr(accounts[6]), addr(accounts[7]), addr(accounts[8])
    balance_before = int(devnet.result("eth_getBalance", [owner, "latest"]), 16)

    started = time.monotonic()
    declared = committed(
        devnet,
        "cmt_declareCandidacy",
        {
            "from": accounts[6].address,  # EIP-55, as web3 sends it
            "pubKey": pub_key(61),
            "maxAmount": hex(10_000 * CMT),
            "compRate": "0.2",
            "description": {"name": "lifecycle", "website": "https://example.com"},
        },
    )
    elapsed = time.monotonic() - started
    fee = DECLARE_GAS * GAS_PRICE
    assert declared["deliver_tx"]["fee"] == {"key": "R2FzRmVl", "value": str(fee)}
    assert declared["deliver_tx"]["gasUsed"] == str(DECLARE_GAS)
    assert elapsed < 10, f"declare took {elapsed:.1f} s"
    balance = int(devnet.result("eth_getBalance", [owner, "latest"]), 16)
    assert balance == balance_before - fee - 1_000 * CMT  # self-stake: max × 1/10
    record = validator(devnet, owner)
    assert record["owner_address"] == owner and record["comp_rate"] == "1/5"
    assert record["max_shares"] == str(10_000 * CMT) and record["shares"] == str(1_000 * CMT)
    assert record["description"]["name"] == "lifecycle" and record["active"] == "Y"

    delegated = committed(
        devnet,
        "cmt_delegate",
        {"from": delegator, "validatorAddress": owner, "amount": hex(500 * CMT)},
    )
    assert delegated["deliver_tx"]["fee"] == {} and delegated["deliver_tx"]["gasUsed"] == "0"
    assert '"stake/staked"' in delegated["deliver_tx"]["log"]
    held = delegation(devnet, delegator, owner)
    assert held["delegate_amount"] == str(500 * CMT) and held["source"] == "cmt_wallet"
    assert held["comp_rate"] == "1/5"
    # the stakes, and the awards the candidate's self-delegation has had settled since
    assert int(validator(devnet, owner)["shares"]) >= 1_500 * CMT

    committed(
        devnet,
        "cmt_setCompRate",
        {"from": owner, "delegatorAddress": delegator, "compRate": "0.1"},
    )
    assert delegation(devnet, delegator, owner)["comp_rate"] == "1/10"

    committed(
        devnet,
        "cmt_withdraw",
        {"from": delegator, "validatorAddress": owner, "amount": hex(200 * CMT)},
    )
    assert delegation(devnet, delegator, owner)["pending_withdraw_amount"] == str(200 * CMT)

    committed(devnet, "cmt_deactivateCandidacy", {"from": owner})
    assert validator(devnet, owner)["active"] == "N"
    committed(devnet, "cmt_activateCandidacy", {"from": owner})
    assert validator(devnet, owner)["active"] == "Y"

    requested = committed(
        devnet, "cmt_updateCandidacyAccount", {"from": owner, "newCandidateAccount": successor}
    )
    request_id = int(base64.b64decode(requested["deliver_tx"]["data"]).decode())
    assert request_id >= 1
    accepted = committed(
        devnet,
        "cmt_acceptCandidacyAccountUpdate",
        {"from": successor, "accountUpdateRequestId": request_id},
    )
    assert accepted["deliver_tx"]["data"] == ""
    handed = validator(devnet, successor)
    assert handed["owner_address"] == successor and handed["pub_key"]["value"] == pub_key(61)


def test_admission_refusals_answer_height_zero_with_travis_codes(devnet: Devnet) -> None:
    accounts = dev_keys(10)
    candidate, poor = addr(accounts[9]), addr(accounts[4])
    declare = {"from": candidate, "pubKey": pub_key(91), "maxAmount": hex(1_000 * CMT)}
    committed(devnet, "cmt_declareCandidacy", {**declare, "compRate": "0.5"})
    log = refused(devnet, "cmt_declareCandidacy", {**declare, "compRate": "0.5"}, 21)
    assert "candidate" in log
    unknown = {"from": poor, "validatorAddress": "0x" + "42" * 20, "amount": hex(CMT)}
    assert "candidate" in refused(devnet, "cmt_delegate", unknown, 5)
    balance = int(devnet.result("eth_getBalance", [poor, "latest"]), 16)
    too_much = {"from": poor, "validatorAddress": candidate, "amount": hex(balance + 1)}
    refused(devnet, "cmt_delegate", too_much, 20)
    bad_rate = {**declare, "from": poor, "pubKey": pub_key(92), "compRate": "1.5"}
    assert "comp_rate" in refused(devnet, "cmt_declareCandidacy", bad_rate, 1)
    spent = devnet.result("eth_getTransactionCount", [candidate, "latest"])
    assert spent != "0x0"
    stale = {"from": candidate, "nonce": "0x0"}
    refused(devnet, "cmt_deactivateCandidacy", stale, 6)


def test_verify_candidacy_is_the_foundation_s_and_its_key_is_not_on_the_devnet(
    devnet: Devnet,
) -> None:
    accounts = dev_keys(10)
    params = devnet.result("cmt_queryParams", [], check=False)["data"]
    assert params["foundation_address"] == FOUNDATION
    owner = addr(accounts[0])  # the devnet validator's owner, a candidate since genesis
    error = devnet.rpc(
        "cmt_verifyCandidacy",
        [{"from": FOUNDATION, "candidateAddress": owner, "verified": True}],
        check=False,
    )["error"]
    assert error["code"] == -32000 and "unknown account" in error["message"]
    not_foundation = {"from": addr(accounts[3]), "candidateAddress": owner, "verified": True}
    assert "foundation" in refused(devnet, "cmt_verifyCandidacy", not_foundation, 21)
    assert validator(devnet, owner)["verified"] == "N"


def test_malformed_requests_are_invalid_params_naming_the_field(devnet: Devnet) -> None:
    sender = addr(dev_keys(3)[2])
    cases: list[tuple[str, list[Any], str]] = [
        ("cmt_withdrawCandidacy", [{}], "missing from"),
        ("cmt_delegate", [{"from": sender, "validatorAddress": sender}], "missing amount"),
        (
            "cmt_delegate",
            [{"from": sender, "validatorAddress": sender, "amount": "1000"}],
            "invalid amount",
        ),
        ("cmt_withdraw", [sender], "invalid params"),
        ("cmt_activateCandidacy", [{"from": sender, "form": sender}], "unknown field 'form'"),
    ]
    for method, params, named in cases:
        error = devnet.rpc(method, params, check=False)["error"]
        assert error["code"] == -32602 and named in error["message"], (method, error)
    devnet.assert_alive()
