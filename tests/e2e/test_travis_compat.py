"""A CyberMiles test suite's view of `cybermiles devnet --preset travis` (4 validators), through
plain JSON-RPC only, as web3-cmt.js-era tools drive Travis.

One preset devnet for the module. In order:
- the hooks such a suite runs first: eth_accounts, personal_unlockAccount with `1234`,
  cmt_queryParams, an ERC-20 deployed with eth_sendTransaction (no gas, no price: the node's
  defaults), accounts funded with low-price transfers at 5 wei;
- declare, delegate, withdraw and a governance vote through the node-signed cmt_* methods, each
  balance checked to the wei;
- the same operations signed client-side (keys decrypted from the node's keystore files with
  eth_account, passphrase `1234`) and sent with cmt_sendRawTx;
- 20 malformed cmt_sendRawTx payloads, each answered at height 0 with nothing changed;
- ethers.js v6 signMessage and signTypedData through node 0's signer, verified client-side.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from consensus.keys import Ed25519Key
from tests.conformance import OpenRpcValidator
from tests.e2e.cluster import Cluster
from tests.e2e.harness import load_token_artifact, wait_for
from tests.e2e.js_clients import run_js

pytestmark = pytest.mark.e2e

CMT = 10**18
PASSPHRASE = "1234"
FOUNDATION = "0x7eff122b94897ea5b0e2a9abf47b86337fafebdc"
LOW_PRICE = 5
TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def travis(
    tmp_path_factory: pytest.TempPathFactory, validator: OpenRpcValidator
) -> Iterator[Cluster]:
    cluster = Cluster(
        tmp_path_factory.mktemp("travis"),
        validators=4,
        validator=validator,
        extra_args=["--preset", "travis"],
    ).start()
    try:
        yield cluster
    finally:
        cluster.stop()


# -- plain JSON-RPC --------------------------------------------------------------------------------
def call(net: Cluster, method: str, *params: Any, node: int = 0) -> Any:
    answer = net.rpc(node, method, list(params))
    assert "error" not in answer, (method, params, answer)
    return answer["result"]


def balance(net: Cluster, account: str) -> int:
    return int(call(net, "eth_getBalance", account, "latest"), 16)


def nonce(net: Cluster, account: str) -> int:
    return int(call(net, "eth_getTransactionCount", account, "pending"), 16)


def accounts(net: Cluster) -> list[str]:
    found: list[str] = call(net, "eth_accounts")
    return [a.lower() for a in found]


def params(net: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = call(net, "cmt_queryParams")["data"]
    return found


def receipt(net: Cluster, tx_hash: str) -> dict[str, Any]:
    def mined() -> dict[str, Any] | None:
        found: dict[str, Any] | None = call(net, "eth_getTransactionReceipt", tx_hash)
        return found

    found: dict[str, Any] = wait_for(mined, timeout=TIMEOUT_S, what=f"receipt of {tx_hash}")
    return found


def committed(net: Cluster, method: str, *params: Any) -> dict[str, Any]:
    """A cmt_* transaction that must commit: Travis's shape, its receipt at the height it names."""
    found: dict[str, Any] = call(net, method, *params)
    assert found["check_tx"] == {"code": 0, "log": ""} and found["height"] > 0, found
    assert found["deliver_tx"]["code"] == 0, found
    mined = receipt(net, found["hash"])
    assert int(mined["blockNumber"], 16) == found["height"] and mined["status"] == "0x1"
    return found


def fee_of(result: dict[str, Any]) -> int:
    fee = result["deliver_tx"]["fee"]
    return int(fee["value"]) if fee else 0


def pub_key(seed: int) -> str:
    return base64.b64encode(Ed25519Key.from_seed(bytes([seed]) * 32).public_key).decode()


def delegation(net: Cluster, delegator: str, candidate: str) -> dict[str, Any]:
    records = call(net, "cmt_queryDelegator", delegator)["data"] or []
    (found,) = [r for r in records if r["validator_address"] == candidate]
    return dict(found)


def candidates(net: Cluster) -> list[str]:
    return [v["owner_address"] for v in call(net, "cmt_queryValidators")["data"]]


def keystore_key(net: Cluster, account: str) -> bytes:
    """The private key of a keystore account, as a client holding the file and `1234` gets it."""
    folder = Path(net.nodes[0].home) / "keystore"
    (path,) = [p for p in folder.iterdir() if p.name.lower().endswith(account[2:])]
    return bytes(Account.decrypt(json.loads(path.read_text()), PASSPHRASE))


def signed_system_tx(net: Cluster, key: bytes, kind: str, data: dict[str, Any]) -> str:
    """A SPEC §5 staking/governance transaction signed client-side: legacy EIP-155, no
    recipient, value 0, price 0, gas 0, data = the JSON envelope."""
    sender = Account.from_key(key).address.lower()
    fields = {
        "nonce": nonce(net, sender),
        "gasPrice": 0,
        "gas": 0,
        "value": 0,
        "data": json.dumps({"type": kind, "data": data}).encode(),
        "chainId": int(call(net, "eth_chainId"), 16),
    }
    return "0x" + bytes(Account.sign_transaction(fields, key).raw_transaction).hex()


# -- the tests -------------------------------------------------------------------------------------
def test_the_hooks_a_cybermiles_suite_runs_first(travis: Cluster) -> None:
    owned = accounts(travis)
    assert owned[0] == FOUNDATION and len(owned) >= 8
    for account in owned:
        assert call(travis, "personal_unlockAccount", account, PASSPHRASE, None) is True
    settings = params(travis)
    assert settings["foundation_address"] == FOUNDATION and settings["gas_price"] > 0
    assert int(call(travis, "eth_chainId"), 16) == 1234

    # An ERC-20 deployed by eth_sendTransaction with the node's defaults for gas and price.
    artifact = load_token_artifact("lity")  # the preset runs the lity profile (byzantium)
    supply = 10**6 * CMT
    constructor_arg = supply.to_bytes(32, "big").hex()
    deployer = owned[1]
    before = balance(travis, deployer)
    tx_hash = call(
        travis,
        "eth_sendTransaction",
        {"from": deployer, "data": artifact["bytecode"] + constructor_arg},
    )
    deployed = receipt(travis, tx_hash)
    assert deployed["status"] == "0x1" and deployed["contractAddress"]
    sent = call(travis, "eth_getTransactionByHash", tx_hash)
    assert int(sent["gasPrice"], 16) == settings["gas_price"]
    gas_used = int(deployed["gasUsed"], 16)
    assert balance(travis, deployer) == before - gas_used * settings["gas_price"]
    balance_of = "0x70a08231" + "00" * 12 + deployer[2:]
    held = call(travis, "eth_call", {"to": deployed["contractAddress"], "data": balance_of})
    assert int(held, 16) == supply

    # Funding at 5 wei a gas: low-price transfers (one per sender and recipient per block).
    funder = owned[0]
    fresh = ["0x" + bytes([0xF0 + i]).hex() * 20 for i in range(3)]
    funder_before = balance(travis, funder)
    hashes = [
        call(travis, "eth_sendTransaction",
             {"from": funder, "to": to, "value": hex(7 * CMT), "gasPrice": hex(LOW_PRICE)})
        for to in fresh
    ]  # fmt: skip
    spent = 0
    for sent_hash, to in zip(hashes, fresh, strict=True):
        mined = receipt(travis, sent_hash)
        assert mined["status"] == "0x1" and int(mined["effectiveGasPrice"], 16) == LOW_PRICE
        spent += 7 * CMT + int(mined["gasUsed"], 16) * LOW_PRICE
        assert balance(travis, to) == 7 * CMT
    assert balance(travis, funder) == funder_before - spent


def test_declare_delegate_withdraw_and_vote_through_node_signed_methods(travis: Cluster) -> None:
    owned = accounts(travis)
    candidate, delegator = owned[-1], owned[1]
    assert candidate not in candidates(travis)
    settings = params(travis)

    before = balance(travis, candidate)
    declared = committed(
        travis,
        "cmt_declareCandidacy",
        {"from": candidate, "pubKey": pub_key(71), "maxAmount": hex(20_000 * CMT),
         "compRate": "0.2", "description": {"name": "travis-e2e"}},
    )  # fmt: skip
    assert fee_of(declared) == settings["declare_candidacy_gas"] * settings["gas_price"]
    self_stake = 2_000 * CMT  # max_amount × self_staking_ratio (1/10)
    assert balance(travis, candidate) == before - fee_of(declared) - self_stake
    assert candidate in candidates(travis)

    before = balance(travis, delegator)
    delegated = committed(
        travis,
        "cmt_delegate",
        {"from": delegator, "validatorAddress": candidate, "amount": hex(1_500 * CMT)},
    )
    assert balance(travis, delegator) == before - 1_500 * CMT - fee_of(delegated)
    assert delegation(travis, delegator, candidate)["delegate_amount"] == str(1_500 * CMT)

    before = balance(travis, delegator)
    withdrawn = committed(
        travis,
        "cmt_withdraw",
        {"from": delegator, "validatorAddress": candidate, "amount": hex(500 * CMT)},
    )
    held = delegation(travis, delegator, candidate)
    assert held["pending_withdraw_amount"] == str(500 * CMT)
    # paid at maturity (unstake_waiting_period blocks later), not now
    assert balance(travis, delegator) == before - fee_of(withdrawn)

    vote_on_a_fund_transfer(travis, owned, via_raw=False)


def vote_on_a_fund_transfer(net: Cluster, owned: list[str], *, via_raw: bool) -> None:
    """The foundation (owner of validator #1) proposes moving 3 CMT from accounts[-2] to a
    fresh address; the owners of three of the four validators vote yes, which approves it
    (equal validators: 3·yes ≥ 2·total) and pays it."""
    source, payee = owned[-2], "0x" + ("5a" if via_raw else "5b") * 20
    amount = 3 * CMT
    source_before, proposer_before = balance(net, source), balance(net, owned[0])
    proposal = {"transferFrom": source, "transferTo": payee, "amount": hex(amount),
                "reason": "travis e2e"}  # fmt: skip
    proposed = send(net, owned[0], "cmt_proposeTransferFund", "governance/propose/transfer_fund",
                    proposal, via_raw=via_raw)  # fmt: skip
    proposal_id = proposed["deliver_tx"]["data"]
    assert balance(net, source) == source_before - amount  # escrowed
    assert balance(net, owned[0]) == proposer_before - fee_of(proposed)
    voters = validator_owners(net)
    assert len(voters) == 4 and set(voters) <= set(owned), voters
    record: dict[str, Any] = {}
    for voter in voters:  # the largest first: yes votes until two thirds of the power
        before = balance(net, voter)
        voted = send(net, voter, "cmt_vote", "governance/vote",
                     {"proposalId": proposal_id, "answer": "Y"}, via_raw=via_raw)  # fmt: skip
        assert balance(net, voter) == before - fee_of(voted)
        (record,) = [p for p in call(net, "cmt_queryProposals")["data"] if p["Id"] == proposal_id]
        if record["Result"]:
            break
    assert record["Result"] == "Approved", record
    assert balance(net, payee) == amount


def validator_owners(net: Cluster) -> list[str]:
    """The owners of the current validators, the largest voting power first."""
    records = [v for v in call(net, "cmt_queryValidators")["data"] if v["state"] == "Validator"]
    ranked = sorted(records, key=lambda v: (-int(v["voting_power"]), v["owner_address"]))
    return [v["owner_address"] for v in ranked]


SNAKE = {"proposalId": "proposal_id", "transferFrom": "transfer_from",
         "transferTo": "transfer_to", "validatorAddress": "validator_address",
         "maxAmount": "max_amount", "pubKey": "pub_key", "compRate": "comp_rate"}  # fmt: skip


def send(
    net: Cluster, sender: str, method: str, kind: str, fields: dict[str, Any], *, via_raw: bool
) -> dict[str, Any]:
    """One staking/governance operation, node-signed (cmt_<method>) or client-signed
    (cmt_sendRawTx with the SPEC §5 envelope); either way the committed Travis result."""
    if not via_raw:
        return committed(net, method, {"from": sender, **fields})
    data = {SNAKE.get(k, k): _wire(v) for k, v in fields.items()}
    if "proposal_id" in data:  # the envelope carries the id as 0x hex (SPEC §7)
        data["proposal_id"] = "0x" + base64.b64decode(data["proposal_id"]).hex()
    raw = signed_system_tx(net, keystore_key(net, sender), kind, data)
    return committed(net, "cmt_sendRawTx", raw)


def _wire(value: Any) -> Any:
    """Amounts travel as hex quantities in requests and as decimal wei on the wire."""
    if isinstance(value, str) and value.startswith("0x") and len(value) < 40:
        return str(int(value, 16))
    return value


def test_the_same_operations_signed_client_side_through_send_raw_tx(travis: Cluster) -> None:
    owned = accounts(travis)
    candidate, delegator = owned[7], owned[6]  # keystore accounts: the test decrypts them
    settings = params(travis)
    before = balance(travis, candidate)
    declared = send(travis, candidate, "", "stake/declareCandidacy",
                    {"pubKey": pub_key(72), "maxAmount": hex(10_000 * CMT), "compRate": "1/4",
                     "description": {"name": "raw"}}, via_raw=True)  # fmt: skip
    assert fee_of(declared) == settings["declare_candidacy_gas"] * settings["gas_price"]
    assert balance(travis, candidate) == before - fee_of(declared) - 1_000 * CMT

    before = balance(travis, delegator)
    send(travis, delegator, "", "stake/delegate",
         {"validatorAddress": candidate, "amount": hex(1_200 * CMT)}, via_raw=True)  # fmt: skip
    assert balance(travis, delegator) == before - 1_200 * CMT
    send(travis, delegator, "", "stake/withdraw",
         {"validatorAddress": candidate, "amount": hex(200 * CMT)}, via_raw=True)  # fmt: skip
    held = delegation(travis, delegator, candidate)
    assert held["delegate_amount"] == str(1_200 * CMT)
    assert held["pending_withdraw_amount"] == str(200 * CMT)
    assert balance(travis, delegator) == before - 1_200 * CMT

    vote_on_a_fund_transfer(travis, owned, via_raw=True)

    # A plain transfer through cmt_sendRawTx answers its hash at once.
    key = keystore_key(travis, owned[1])
    fields = {"nonce": nonce(travis, owned[1]), "gasPrice": settings["gas_price"], "gas": 21_000,
              "to": "0x" + "77" * 20, "value": 9, "chainId": 1234}  # fmt: skip
    raw = Account.sign_transaction(fields, key).raw_transaction
    tx_hash = call(travis, "cmt_sendRawTx", "0x" + bytes(raw).hex())
    assert isinstance(tx_hash, str) and receipt(travis, tx_hash)["status"] == "0x1"


MALFORMED: list[bytes | dict[str, Any]] = [
    b"{",
    b"not json at all",
    b"[]",
    b'"stake/delegate"',
    b"\xff\xfe",
    {"type": "stake/noSuchKind", "data": {}},
    {"type": "governance/propose/no_such_thing", "data": {}},
    {"type": "stake", "data": {}},
    {"data": {}},
    {"type": "stake/delegate"},
    {"type": "stake/delegate", "data": {}},
    {"type": "stake/delegate", "data": {"validator_address": FOUNDATION}},
    {"type": "stake/delegate", "data": {"validator_address": FOUNDATION, "amount": "-5"}},
    {"type": "stake/delegate", "data": {"validator_address": FOUNDATION, "amount": "lots"}},
    {"type": "stake/delegate", "data": {"validator_address": FOUNDATION, "amount": 5}},
    {"type": "stake/delegate", "data": {"validator_address": "0x12", "amount": "5"}},
    {"type": "stake/withdraw", "data": {"validator_address": FOUNDATION, "amount": "-1"}},
    {
        "type": "stake/declareCandidacy",
        "data": {"pub_key": "AAAA", "max_amount": "x", "comp_rate": "0.2"},
    },  # fmt: skip
    {"type": "governance/vote", "data": {"proposal_id": "0x00", "answer": "maybe"}},
    {
        "type": "governance/propose/transfer_fund",
        "data": {"transfer_from": FOUNDATION, "amount": "-3"},
    },  # fmt: skip
]


def test_malformed_send_raw_tx_payloads_are_height_zero_and_change_nothing(
    travis: Cluster,
) -> None:
    assert len(MALFORMED) == 20
    owned = accounts(travis)
    sender = owned[1]
    key = keystore_key(travis, sender)
    chain_id = int(call(travis, "eth_chainId"), 16)
    watched = [sender, FOUNDATION]
    before = {a: (balance(travis, a), nonce(travis, a)) for a in watched}
    validators_before = call(travis, "cmt_queryValidators")["data"]
    for payload in MALFORMED:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        fields = {"nonce": nonce(travis, sender), "gasPrice": 0, "gas": 0, "value": 0,
                  "data": body, "chainId": chain_id}  # fmt: skip
        raw = "0x" + bytes(Account.sign_transaction(fields, key).raw_transaction).hex()
        answer = call(travis, "cmt_sendRawTx", raw)
        assert answer["height"] == 0 and answer["deliver_tx"] == {}, (payload, answer)
        assert answer["check_tx"]["code"] != 0 and answer["check_tx"]["log"], (payload, answer)
    assert {a: (balance(travis, a), nonce(travis, a)) for a in watched} == before
    assert call(travis, "txpool_status")["pending"] == "0x0"
    after = call(travis, "cmt_queryValidators")["data"]
    assert [v["owner_address"] for v in after] == [v["owner_address"] for v in validators_before]


def test_ethers_signs_through_the_node_signer(travis: Cluster) -> None:
    out = run_js("node_signer.mjs", travis.nodes[0].rpc_url, FOUNDATION)
    assert out["chainId"] == "1234"
    assert out["signer"].lower() == FOUNDATION
    assert out["messageSigner"].lower() == FOUNDATION and out["typedSigner"].lower() == FOUNDATION
