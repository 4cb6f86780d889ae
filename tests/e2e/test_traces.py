"""Traces on a real one-node devnet through web3.py's provider: a TestToken transfer traced with
the struct logger and the callTracer, a failing transfer's revert reason, debug_traceCall next
to eth_call, and the block's trace.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3 import Web3

from tests.e2e.harness import (
    CHAIN_ID,
    MIN_GAS_PRICE,
    Devnet,
    deploy_token,
    send_signed,
    token_contract,
    wait_receipt,
)

pytestmark = pytest.mark.e2e

SUPPLY = 10**24
TRUE_WORD = "0x" + "00" * 31 + "01"


def ask(w3: Web3, method: str, *params: Any) -> Any:
    """One request through web3.py's provider, as a developer's script sends it."""
    response = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


def send_transfer(w3: Web3, owner: LocalAccount, token: str, to: str, amount: int) -> Any:
    tx = (
        token_contract(w3, token)
        .functions.transfer(to, amount)
        .build_transaction(
            {
                "from": owner.address,
                "nonce": w3.eth.get_transaction_count(owner.address, "pending"),
                "chainId": CHAIN_ID,
                "gas": 100_000,
                "maxFeePerGas": MIN_GAS_PRICE,
                "maxPriorityFeePerGas": MIN_GAS_PRICE,
            }
        )
    )
    return wait_receipt(w3, send_signed(w3, owner.sign_transaction(tx)))


def test_a_token_transfer_traced_both_ways(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    w3 = devnet.w3()
    owner, other = accounts[0], accounts[1]
    token, _ = deploy_token(w3, owner, SUPPLY)
    receipt = send_transfer(w3, owner, token, other.address, 5)
    assert receipt["status"] == 1
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()

    struct = ask(w3, "debug_traceTransaction", tx_hash)
    assert struct["gas"] == receipt["gasUsed"] and struct["failed"] is False
    assert struct["returnValue"] == TRUE_WORD
    logs = struct["structLogs"]
    ops = [step["op"] for step in logs]
    assert ops[:2] == ["PUSH1", "PUSH1"] and ops[-1] == "RETURN"
    assert ops.count("SSTORE") == 2 and ops.count("LOG3") == 1  # two balances, one Transfer
    assert all(step["depth"] == 1 for step in logs)
    for step, following in zip(logs, logs[1:], strict=False):
        assert following["gas"] == step["gas"] - step["gasCost"]  # no calls: gas only falls

    frame = ask(w3, "debug_traceTransaction", tx_hash, {"tracer": "callTracer"})
    transaction = w3.eth.get_transaction(receipt["transactionHash"])
    assert frame["type"] == "CALL"
    assert (frame["from"], frame["to"]) == (owner.address.lower(), token.lower())
    assert frame["input"] == "0x" + bytes(transaction["input"]).hex()
    assert (frame["gas"], frame["gasUsed"]) == (hex(100_000), hex(receipt["gasUsed"]))
    assert frame["output"] == TRUE_WORD and "calls" not in frame and "error" not in frame

    block = ask(
        w3, "debug_traceBlockByNumber", hex(receipt["blockNumber"]), {"tracer": "callTracer"}
    )
    assert {"txHash": tx_hash, "result": frame} in block


def test_a_failing_transfer_and_trace_call(devnet: Devnet, accounts: list[LocalAccount]) -> None:
    w3 = devnet.w3()
    owner, other = accounts[2], accounts[3]
    token, _ = deploy_token(w3, owner, SUPPLY)
    receipt = send_transfer(w3, owner, token, other.address, SUPPLY + 1)
    assert receipt["status"] == 0
    tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
    frame = ask(w3, "debug_traceTransaction", tx_hash, {"tracer": "callTracer"})
    assert frame["error"] == "execution reverted"
    assert frame["revertReason"] == "ERC20: transfer amount exceeds balance"
    struct = ask(w3, "debug_traceTransaction", tx_hash)
    assert struct["failed"] is True and struct["structLogs"][-1]["op"] == "REVERT"
    assert struct["returnValue"] == frame["output"]

    selector = Web3.keccak(text="balanceOf(address)")[:4]
    call = {"to": token, "data": "0x" + (selector + abi_encode(["address"], [owner.address])).hex()}
    traced = ask(w3, "debug_traceCall", call, "latest")
    assert traced["returnValue"] == ask(w3, "eth_call", call, "latest")
    assert int(traced["returnValue"], 16) == SUPPLY and traced["failed"] is False
