"""The cmt_* staking transaction methods (rpc/cmt_tx.py): parameters, envelopes, signing, and the
Travis result shape, in process over a real ChainApp (MemoryDB) and its commit notifications
(tests/cmt_node.py; the governance methods: test_cmt_governance_tx.py).

Blocks are produced by the test once the request is parked on the commit signal
(`wait_all_tasks_blocked`), so the waits are deterministic; the timeout runs on trio's MockClock.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import trio
import trio.testing
from eth_account import Account
from eth_hash.auto import keccak

from cybermiles_node.governance.msgs import parse_governance_msg
from cybermiles_node.staking.msgs import parse_staking_msg
from evm.transactions import decode_transaction
from genesis import DevAccount, dev_accounts, devnet_genesis
from rpc import InvalidParams
from rpc.budget import METHOD_COSTS
from rpc.cmt_tx import (
    GOVERNANCE_TX_METHODS,
    TX_METHODS,
    envelope,
    parse_call,
    unsigned_fields,
)
from rpc.node_signing import TransactionSigner
from tests.cmt_node import CmtNode
from tests.node_accounts import devnet_accounts
from tests.rpc_fuzzing import STAKING_PUB_KEY, Known, tx_method_params

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
OWNER, SENDER, OTHER = dev_accounts(3)  # OWNER owns the genesis validator
STRANGER = "0x" + "42" * 20
CMT = 10**18
KNOWN = Known(funded=STRANGER, other="0x" + "43" * 20, block_hash="0x" + "00" * 32, tx_hash="")


def hex_of(address: bytes) -> str:
    return "0x" + address.hex()


# -- parameters and envelopes --------------------------------------------------------------------
def test_declare_builds_the_spec_envelope_with_snake_case_fields_and_decimal_wei() -> None:
    call = parse_call(
        TX_METHODS["cmt_declareCandidacy"],
        {
            "from": hex_of(SENDER.address).upper().replace("0X", "0x"),
            "pubKey": STAKING_PUB_KEY,
            "maxAmount": "0xF4240",
            "compRate": "0.2",
            "description": {"name": "n", "website": "w"},
            "nonce": "0x7",
        },
    )
    assert call.sender == SENDER.address and call.nonce == 7
    assert json.loads(envelope(call)) == {
        "type": "stake/declareCandidacy",
        "data": {
            "pub_key": STAKING_PUB_KEY,
            "max_amount": "1000000",
            "comp_rate": "0.2",
            "description": {"name": "n", "website": "w"},
        },
    }


def test_optional_fields_are_left_out_or_take_travis_defaults() -> None:
    update = parse_call(
        TX_METHODS["cmt_updateCandidacy"], {"from": STRANGER, "compRate": "0.3", "pubKey": None}
    )
    assert update.data == {"comp_rate": "0.3"} and update.nonce is None
    verify = parse_call(
        TX_METHODS["cmt_verifyCandidacy"], {"from": STRANGER, "candidateAddress": STRANGER}
    )
    assert verify.data == {"candidate_address": STRANGER, "verified": False}
    withdraw = parse_call(TX_METHODS["cmt_withdrawCandidacy"], {"from": STRANGER})
    assert json.loads(envelope(withdraw)) == {"type": "stake/withdrawCandidacy", "data": {}}


@pytest.mark.parametrize("method", sorted(TX_METHODS))
def test_every_method_signs_a_system_transaction_its_module_decodes(method: str) -> None:
    """The envelope of each method's full request is what its module (staking or governance)
    parses (same field names), and the signed transaction is a SPEC §5 system transaction of
    the chain."""
    (params,) = tx_method_params(KNOWN)[method]
    call = parse_call(TX_METHODS[method], {**params, "from": hex_of(SENDER.address)})
    fields = unsigned_fields(call, 3, GENESIS.chain_id)
    raw = TransactionSigner(devnet_accounts([SENDER])).sign(SENDER.address, fields)
    tx = decode_transaction(raw, chain_id=GENESIS.chain_id, block_gas_limit=GENESIS.gas_limit)
    assert tx.is_system and tx.sender == SENDER.address and tx.nonce == 3
    body = json.loads(tx.data)
    assert body["type"] == TX_METHODS[method].kind
    parse = parse_governance_msg if method in GOVERNANCE_TX_METHODS else parse_staking_msg
    assert parse(body["type"], body["data"]).KIND == body["type"]


DELEGATE = {"from": STRANGER, "validatorAddress": STRANGER, "amount": "0x1"}
DECLARE = {"from": STRANGER, "pubKey": "k", "maxAmount": "0x1", "compRate": "0.2"}
WITHDRAW = {"from": STRANGER}
MALFORMED = [
    ("cmt_withdrawCandidacy", {}, "missing from"),
    ("cmt_withdrawCandidacy", {"from": "0x42"}, "invalid from"),
    ("cmt_withdrawCandidacy", {**WITHDRAW, "fee": "0x1"}, "unknown field 'fee'"),
    ("cmt_withdrawCandidacy", {**WITHDRAW, "nonce": 1}, "invalid nonce"),
    ("cmt_withdrawCandidacy", {**WITHDRAW, "nonce": hex(2**64)}, "invalid nonce"),
    ("cmt_delegate", {"from": STRANGER, "amount": "0x1"}, "missing validatorAddress"),
    ("cmt_delegate", {"from": STRANGER, "validatorAddress": STRANGER}, "missing amount"),
    ("cmt_delegate", {**DELEGATE, "amount": "100"}, "invalid amount"),
    ("cmt_delegate", {**DELEGATE, "amount": "0x01"}, "invalid amount"),
    ("cmt_delegate", {**DELEGATE, "amount": 5}, "invalid amount"),
    ("cmt_delegate", {**DELEGATE, "sig": 7}, "invalid sig"),
    ("cmt_declareCandidacy", {**DECLARE, "compRate": 0.2}, "invalid compRate"),
    ("cmt_declareCandidacy", {**DECLARE, "description": {"name": 1}}, "invalid description.name"),
    ("cmt_declareCandidacy", {**DECLARE, "description": "d"}, "invalid description"),
    (
        "cmt_verifyCandidacy",
        {"from": STRANGER, "candidateAddress": STRANGER, "verified": "true"},
        "invalid verified",
    ),
    ("cmt_withdraw", {**DELEGATE, "completelyWithdraw": 1}, "invalid completelyWithdraw"),
    (
        "cmt_acceptCandidacyAccountUpdate",
        {"from": STRANGER, "accountUpdateRequestId": "1"},
        "invalid accountUpdateRequestId",
    ),
    (
        "cmt_acceptCandidacyAccountUpdate",
        {"from": STRANGER, "accountUpdateRequestId": True},
        "invalid accountUpdateRequestId",
    ),
    (
        "cmt_setCompRate",
        {"from": STRANGER, "delegatorAddress": "0x" + "4A" * 19 + "4a", "compRate": "0.1"},
        "invalid delegatorAddress",  # mixed case without a valid EIP-55 checksum
    ),
]


@pytest.mark.parametrize(("method", "params", "named"), MALFORMED)
def test_malformed_requests_are_invalid_params_naming_the_field(
    method: str, params: dict[str, Any], named: str
) -> None:
    with pytest.raises(InvalidParams) as caught:
        parse_call(TX_METHODS[method], params)
    assert named in caught.value.message


def test_params_must_be_one_object() -> None:
    not_objects: list[object] = [[], "0x1", None, 1]
    for params in not_objects:
        with pytest.raises(InvalidParams):
            parse_call(TX_METHODS["cmt_withdrawCandidacy"], params)


# -- the methods over a real application ---------------------------------------------------------
def make_node(commit_timeout: float = 30.0) -> CmtNode:
    return CmtNode(GENESIS, (OWNER, SENDER, OTHER), commit_timeout=commit_timeout)


def test_delegate_answers_after_the_commit_in_travis_shape() -> None:
    node = make_node()
    answer = node.call(
        "cmt_delegate",
        {
            "from": hex_of(SENDER.address),
            "validatorAddress": hex_of(OWNER.address),
            "amount": hex(CMT),
        },
    )["result"]
    assert answer["height"] == 1 == node.app.head.block_number
    (tx,) = node.app.chain.transactions(1)
    assert answer["hash"] == "0x" + tx.hash.hex() and tx.nonce == 0
    assert answer["check_tx"] == {"code": 0, "log": ""}
    deliver = answer["deliver_tx"]
    assert deliver["code"] == 0 and deliver["data"] == "" and deliver["gasUsed"] == "0"
    assert deliver["fee"] == {}  # a free kind: Travis's empty fee
    (event,) = json.loads(deliver["log"])
    assert event["event"] == "stake/staked" and event["delegator"] == hex_of(SENDER.address)


def test_declare_then_account_update_report_fee_and_request_id() -> None:
    node = make_node()
    sender = hex_of(SENDER.address)
    declared = node.call(
        "cmt_declareCandidacy",
        {
            "from": sender,
            "pubKey": STAKING_PUB_KEY,
            "maxAmount": hex(1000 * CMT),
            "compRate": "0.2",
        },
    )["result"]
    params = GENESIS.params
    fee = params.declare_candidacy_gas * params.gas_price
    assert declared["deliver_tx"]["gasUsed"] == str(params.declare_candidacy_gas)
    assert declared["deliver_tx"]["fee"] == {"key": "R2FzRmVl", "value": str(fee)}
    state = node.app.chain.state_at()
    assert state.get_balance(SENDER.address) == GENESIS_BALANCE - fee - 100 * CMT
    update = node.call(
        "cmt_updateCandidacyAccount", {"from": sender, "newCandidateAccount": hex_of(OTHER.address)}
    )["result"]
    assert update["height"] == 2 and base64.b64decode(update["deliver_tx"]["data"]) == b"1"
    accepted = node.call(
        "cmt_acceptCandidacyAccountUpdate",
        {"from": hex_of(OTHER.address), "accountUpdateRequestId": 1},
    )["result"]
    assert accepted["height"] == 3 and accepted["deliver_tx"]["code"] == 0
    assert accepted["deliver_tx"]["data"] == ""


GENESIS_BALANCE = dict(GENESIS.alloc)[SENDER.address].balance


def test_admission_refusals_are_results_at_height_zero_with_travis_codes() -> None:
    node = make_node()
    sender = hex_of(SENDER.address)
    unknown = node.call(
        "cmt_delegate", {"from": sender, "validatorAddress": STRANGER, "amount": hex(CMT)}
    )["result"]
    assert unknown["height"] == 0 and unknown["check_tx"]["code"] == 5
    assert "candidate" in unknown["check_tx"]["log"] and unknown["deliver_tx"] == {}
    assert node.app.head.block_number == 0 and node.app.pending_count == 0  # answered at once
    rich = hex(GENESIS_BALANCE + 1)
    poor = node.call(
        "cmt_delegate", {"from": sender, "validatorAddress": hex_of(OWNER.address), "amount": rich}
    )["result"]
    assert poor["check_tx"]["code"] == 20
    rate = node.call(
        "cmt_declareCandidacy",
        {"from": sender, "pubKey": STAKING_PUB_KEY, "maxAmount": hex(CMT), "compRate": "2"},
    )["result"]
    assert rate["check_tx"]["code"] == 1 and "comp_rate" in rate["check_tx"]["log"]
    owner = hex_of(OWNER.address)
    twice = node.call(
        "cmt_declareCandidacy",
        {"from": owner, "pubKey": STAKING_PUB_KEY, "maxAmount": hex(CMT), "compRate": "0.5"},
    )["result"]
    assert twice["check_tx"]["code"] == 21


def test_bad_nonce_is_code_6() -> None:
    node = make_node()
    owner = hex_of(OWNER.address)
    assert node.call("cmt_deactivateCandidacy", {"from": owner})["result"]["height"] == 1
    again = node.call("cmt_activateCandidacy", {"from": owner, "nonce": "0x0"})["result"]
    assert again["height"] == 0 and again["check_tx"]["code"] == 6


def test_unknown_accounts_are_refused_before_signing() -> None:
    node = make_node()
    answer = node.call("cmt_withdrawCandidacy", {"from": STRANGER})
    assert answer["error"]["code"] == -32000 and "unknown account" in answer["error"]["message"]


def test_no_commit_in_time_is_an_error_carrying_the_hash() -> None:
    node = make_node(commit_timeout=30.0)
    answers: list[dict[str, Any]] = []

    async def scenario() -> None:
        answers.append(await node.ask("cmt_deactivateCandidacy", {"from": hex_of(OWNER.address)}))

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    (pending,) = node.app.mempool.pending_by_sender()[OWNER.address]
    error = answers[0]["error"]
    assert error == {
        "code": -32000,
        "message": "timed out waiting for commit",
        "data": "0x" + pending.hash.hex(),
    }


def test_a_transaction_that_leaves_the_pool_uncommitted_is_reported_at_the_next_block() -> None:
    node = make_node()

    def evict() -> None:
        (pending,) = node.app.mempool.pending_by_sender()[OWNER.address]
        node.app.mempool.drop(pending.hash)

    answer = node.call("cmt_deactivateCandidacy", {"from": hex_of(OWNER.address)}, evict)
    assert answer["error"]["code"] == -32000 and "dropped" in answer["error"]["message"]
    assert answer["error"]["data"].startswith("0x") and node.app.head.block_number == 1


def test_every_method_has_its_batch_cost() -> None:
    methods = [*TX_METHODS, "cmt_sendRawTx"]
    assert {name: METHOD_COSTS.get(name) for name in methods} == dict.fromkeys(methods, 2)


# -- cmt_sendRawTx: client-signed ------------------------------------------------------------------
def client_signed(sender: DevAccount, body: object, nonce: int = 0) -> str:
    """A system transaction (SPEC §5) whose data is `body` (JSON text unless bytes)."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    fields = {"nonce": nonce, "gasPrice": 0, "gas": 0, "value": 0, "data": payload,
              "chainId": GENESIS.chain_id}  # fmt: skip
    return "0x" + bytes(Account.sign_transaction(fields, sender.private_key).raw_transaction).hex()


def test_send_raw_tx_of_a_staking_kind_answers_after_the_commit() -> None:
    node = make_node()
    body = {"type": "stake/delegate",
            "data": {"validator_address": hex_of(OWNER.address), "amount": str(CMT)}}  # fmt: skip
    answer = node.call_list("cmt_sendRawTx", [client_signed(SENDER, body)])["result"]
    (tx,) = node.app.chain.transactions(1)
    assert answer["height"] == 1 and answer["hash"] == "0x" + tx.hash.hex()
    assert answer["check_tx"] == {"code": 0, "log": ""} and answer["deliver_tx"]["code"] == 0
    (event,) = json.loads(answer["deliver_tx"]["log"])
    assert event["event"] == "stake/staked"


def test_send_raw_tx_of_a_plain_transaction_answers_its_hash_at_admission() -> None:
    node = make_node()
    fields = {"nonce": 0, "gasPrice": GENESIS.params.gas_price, "gas": 21_000, "value": 5,
              "to": OTHER.address, "chainId": GENESIS.chain_id}  # fmt: skip
    raw = bytes(Account.sign_transaction(fields, SENDER.private_key).raw_transaction)
    answer = node.query("cmt_sendRawTx", "0x" + raw.hex())
    assert answer["result"] == "0x" + keccak(raw).hex()
    assert node.app.pending_count == 1 and node.app.head.block_number == 0


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        {"type": "stake/nosuchkind", "data": {}},
        {
            "type": "stake/delegate",
            "data": {"validator_address": "0x" + "11" * 20, "amount": "-5"},
        },  # fmt: skip
        {"type": "stake/delegate", "data": {}},
    ],
)
def test_send_raw_tx_refusals_are_height_zero_and_change_nothing(payload: object) -> None:
    node = make_node()
    answer = node.query("cmt_sendRawTx", client_signed(SENDER, payload))["result"]
    assert answer["height"] == 0 and answer["check_tx"]["code"] != 0
    assert answer["check_tx"]["log"] and answer["deliver_tx"] == {}
    assert node.app.pending_count == 0 and node.app.mempool.pending_nonce(SENDER.address) == 0


def test_send_raw_tx_of_undecodable_bytes_is_a_malformed_height_zero_answer() -> None:
    node = make_node()
    answer = node.query("cmt_sendRawTx", "0xdeadbeef")["result"]
    assert answer["height"] == 0 and answer["check_tx"]["code"] == 1
    assert answer["hash"] == "0x" + keccak(bytes.fromhex("deadbeef")).hex()
    assert node.query("cmt_sendRawTx", "not hex")["error"]["code"] == -32602
