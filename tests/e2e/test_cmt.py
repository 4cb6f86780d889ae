"""The CyberMiles `cmt_*` methods on a real devnet, as Travis clients call them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from tests.e2e.harness import (
    Devnet,
    dev_keys,
    fresh_account,
    send_signed,
    sign_transfer,
    staking_raw,
    wait_receipt,
)

pytestmark = pytest.mark.e2e

CMT = 10**18


def test_query_params_reads_the_parameters_in_force_at_a_height(devnet: Devnet) -> None:
    latest = devnet.rpc("cmt_queryParams", [], check=False)["result"]
    assert latest["height"] == devnet.block_number()
    params = latest["data"]
    assert params["gas_price"] == 2_000_000_000 and params["max_vals"] == 4
    assert params["self_staking_ratio"] == "1/10" and params["slash_enabled"] is False
    assert params["foundation_address"] == "0x7eff122b94897ea5b0e2a9abf47b86337fafebdc"
    assert devnet.rpc("cmt_queryParams", [0], check=False)["result"] == latest
    beyond = devnet.rpc("cmt_queryParams", [latest["height"] + 100], check=False)
    assert beyond["error"]["code"] == -32000


def test_a_staking_transaction_is_admitted_executed_and_has_a_receipt(devnet: Devnet) -> None:
    staker, owner = fresh_account(9200), dev_keys(1)[0]  # account 0 owns the devnet validator
    w3 = devnet.w3()
    funder = dev_keys(3)[2]
    nonce = w3.eth.get_transaction_count(funder.address, "pending")
    wait_receipt(w3, send_signed(w3, sign_transfer(funder, nonce, staker.address, 5_000 * CMT)))
    # A rule violation is refused at admission with its code, nothing changes.
    unknown = {"validator_address": "0x" + "42" * 20, "amount": str(CMT)}
    refused = devnet.rpc(
        "eth_sendRawTransaction", [staking_raw(staker, 0, "stake/delegate", unknown)]
    )
    assert refused["error"]["code"] == 2005 and "candidate" in refused["error"]["message"]
    # A delegation to the devnet's validator is mined with a receipt and logs.
    delegate = {"validator_address": owner.address.lower(), "amount": str(1_000 * CMT)}
    tx_hash = devnet.result(
        "eth_sendRawTransaction", [staking_raw(staker, 0, "stake/delegate", delegate)]
    )
    receipt = wait_receipt(w3, bytes.fromhex(tx_hash[2:]))
    assert receipt["status"] == 1 and receipt["gasUsed"] == 0 and receipt["contractAddress"] is None
    assert receipt["logs"] and receipt["logs"][0]["address"].lower() == "0x" + "00" * 17 + "c0de05"
    assert w3.eth.get_balance(staker.address) == 4_000 * CMT
    assert w3.eth.get_transaction_count(staker.address) == 1
    (held,) = devnet.rpc("cmt_queryDelegator", [staker.address], check=False)["result"]["data"]
    assert held["validator_address"] == owner.address.lower() and held["source"] == "cmt_wallet"
    assert held["delegate_amount"] == str(1_000 * CMT)
    validators = devnet.rpc("cmt_queryValidators", [], check=False)["result"]["data"]
    assert [v["owner_address"] for v in validators] == [owner.address.lower()]


def test_devnet_param_sets_a_genesis_parameter_that_later_runs_keep(
    devnet_factory: Callable[..., Devnet],
) -> None:
    net = devnet_factory(extra_args=["--param", "unstake_waiting_period=3"])
    params = net.rpc("cmt_queryParams", [], check=False)["result"]["data"]
    assert params["unstake_waiting_period"] == 3 and params["max_slash_blocks"] == 120
    assert net.stop() == 0
    # The genesis exists now: another value is refused in one line, before the node starts.
    net.extra_args = ["--param", "unstake_waiting_period=4"]
    again = subprocess.run(
        net.command(),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"error: {net.home} holds a chain with unstake_waiting_period=3; the genesis cannot "
        "change: use --reset for unstake_waiting_period=4"
    ]
