"""Wrong errors (issue #8, part 5) against a real devnet process over HTTP.

- A batch of eth_sendRawTransaction with raw txs whose type byte is 0x00 or 0x7f between valid
  ones: each entry is answered on its own, the valid ones are admitted and mined.
- A value above the balance in eth_call, eth_estimateGas and eth_sendTransaction: -32000
  "insufficient funds for transfer", and no traceback in the node's log.
- Storage slot "0x-1" and a non-array storageKeys: -32602 naming the field.
- A few hundred seeded hostile requests and batches (tests/rpc_fuzzing.py): never -32603, the
  node stays alive, and the head, the funded balances and the pool do not move.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.harness import Devnet, fresh_account, sign_transfer, wait_receipt
from tests.rpc_fuzzing import Known, chain_snapshot, check_answer, mixed_batches, requests_for
from tests.unit.test_rpc_fuzz import METHODS

pytestmark = pytest.mark.e2e

HTTP_FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def raw_hex(signed: Any) -> str:
    return "0x" + bytes(signed.raw_transaction).hex()


def post(net: Devnet, payload: Any) -> bytes:
    response = net.post_raw(json.dumps(payload).encode())
    assert response.status_code == 200, response.text[:300]
    return response.content


def log_size(net: Devnet) -> int:
    return net.log_path.stat().st_size


def log_since(net: Devnet, offset: int) -> str:
    with net.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


# ---------------------------------------------------------------------- regressions


def test_bad_type_bytes_in_a_raw_tx_batch_fail_only_their_own_entries(
    devnet: Devnet, accounts: list[LocalAccount]
) -> None:
    sender = accounts[1]
    w3 = devnet.w3()
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    valid = [sign_transfer(sender, nonce + i, fresh_account(810).address, 1) for i in range(2)]
    bad = [
        "0x00" + raw_hex(valid[0])[2:],  # a legacy-looking body behind type byte 0x00
        "0x7f" + raw_hex(valid[1])[2:],
        "0x00",
        "0x7f",
    ]
    params = [raw_hex(valid[0]), bad[0], bad[1], raw_hex(valid[1]), bad[2], bad[3]]
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [p]}
        for i, p in enumerate(params)
    ]
    answers = {a["id"]: a for a in json.loads(post(devnet, batch))}
    assert answers[0]["result"] == "0x" + bytes(valid[0].hash).hex()
    assert answers[3]["result"] == "0x" + bytes(valid[1].hash).hex()
    for i in (1, 2, 4, 5):
        error = answers[i]["error"]
        assert error["code"] == -32000, error  # the project's InvalidTransaction code
        assert "unsupported transaction type" in error["message"], error
    for signed in valid:
        assert wait_receipt(w3, signed.hash)["status"] == 1
    devnet.assert_alive()


def test_value_above_the_balance_is_insufficient_funds_for_transfer(
    devnet: Devnet, accounts: list[LocalAccount]
) -> None:
    poor = accounts[2].address  # funded, unlocked, but not with this much
    too_much = hex(10**30)
    call = {"from": poor, "to": fresh_account(811).address, "value": too_much}
    offset = log_size(devnet)
    for method, params in [
        ("eth_call", [call, "latest"]),
        ("eth_estimateGas", [call]),
        ("eth_sendTransaction", [call]),
    ]:
        error = devnet.rpc(method, params, check=False)["error"]
        assert error == {"code": -32000, "message": "insufficient funds for transfer"}, method
    devnet.assert_alive()
    assert "Traceback" not in log_since(devnet, offset)


def test_malformed_storage_slots_are_invalid_params_naming_the_field(
    devnet: Devnet, accounts: list[LocalAccount]
) -> None:
    account = accounts[0].address
    cases = [
        ("eth_getStorageAt", [account, "0x-1", "latest"], "invalid slot: "),
        ("eth_getProof", [account, ["0x0", "0x-1"], "latest"], "invalid storageKeys[1]: "),
        ("eth_getProof", [account, "0x0", "latest"], "invalid storageKeys: "),
        (
            "eth_call",
            [{"to": account, "accessList": [{"address": account, "storageKeys": "0x0"}]}],
            "invalid accessList[0].storageKeys: ",
        ),
        (
            "eth_estimateGas",
            [{"to": account, "accessList": [{"address": account, "storageKeys": ["0x-1"]}]}],
            "invalid accessList[0].storageKeys[0]: ",
        ),
    ]
    for method, params, prefix in cases:
        error = devnet.rpc(method, params, check=False)["error"]
        assert error["code"] == -32602 and error["message"].startswith(prefix), (method, error)
    devnet.assert_alive()


# ---------------------------------------------------------------------- fuzz


@pytest.fixture(scope="module")
def known(devnet: Devnet, accounts: list[LocalAccount]) -> Known:
    """A mined transfer whose sender (unlocked) has spent nonce 0: fuzzed eth_sendTransaction
    calls reuse that nonce, so none of them can be admitted."""
    sender = accounts[5]
    w3 = devnet.w3()
    assert w3.eth.get_transaction_count(sender.address) == 0
    signed = sign_transfer(sender, 0, fresh_account(812).address, 1)
    receipt = wait_receipt(w3, w3.eth.send_raw_transaction(signed.raw_transaction))
    return Known(
        funded=sender.address.lower(),
        other=fresh_account(813).address.lower(),
        block_hash="0x" + bytes(receipt["blockHash"]).hex(),
        tx_hash="0x" + bytes(signed.hash).hex(),
    )


def snapshot(devnet: Devnet, known: Known, accounts: list[LocalAccount]) -> Any:
    def call(method: str, params: list[Any]) -> Any:
        return devnet.result(method, params, check=False)

    return chain_snapshot(call, [known.funded, known.other] + [a.address for a in accounts])


def test_hostile_requests_over_http(
    devnet: Devnet, known: Known, accounts: list[LocalAccount]
) -> None:
    before = snapshot(devnet, known, accounts)

    @settings(HTTP_FUZZ, max_examples=250)
    @given(st.data())
    def single(data: Any) -> None:
        sent = data.draw(requests_for(METHODS, known))
        check_answer(sent, post(devnet, sent))

    @settings(HTTP_FUZZ, max_examples=60)
    @given(st.data())
    def batches(data: Any) -> None:
        sent = data.draw(mixed_batches(METHODS, known))
        check_answer(sent, post(devnet, sent))

    single()
    batches()
    devnet.assert_alive()
    assert snapshot(devnet, known, accounts) == before
