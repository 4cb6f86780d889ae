"""A Hardhat 2 project (tests/js/hardhat: hardhat-ethers, hardhat-network-helpers, the npm solc)
driven against one devnet, as a developer runs it: `hardhat run` / `hardhat test --network
cybermiles`. Each scenario's report is parsed here and checked against the node.

The project is compiled once for the module into a temporary folder (no compiler download: the
config's GET_SOLC_BUILD subtask answers with the npm solcjs). The devnet runs with the anvil
compatibility setting, without which hardhat-network-helpers refuse any node that is not Hardhat
Network, anvil or zkSync (they look at web3_clientVersion).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from tests.conformance import OpenRpcValidator
from tests.e2e.harness import Devnet, dev_keys
from tests.e2e.js_clients import HardhatProject, make_cheap_blocks

pytestmark = pytest.mark.e2e

# The devnet setting that makes web3_clientVersion start with "anvil" (docs/DECISIONS.md).
ANVIL_COMPAT = ("--client-version-compat", "anvil")
ETHER = 10**18


@pytest.fixture(scope="module")
def hardhat_devnet(
    tmp_path_factory: pytest.TempPathFactory, validator: OpenRpcValidator
) -> Iterator[Devnet]:
    base = tmp_path_factory.mktemp("hardhat-devnet")
    net = Devnet(base / "home", validator=validator, extra_args=ANVIL_COMPAT).start()
    try:
        yield net
    finally:
        if net.running:
            code = net.stop()
            assert code == 0, f"devnet exit code {code} on SIGTERM\n{net.log_tail()}"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> HardhatProject:
    built = HardhatProject(tmp_path_factory.mktemp("hardhat-build"))
    built.compile()
    return built


def artifact(project: HardhatProject, name: str) -> dict[str, Any]:
    path = project.build / "artifacts" / "contracts" / f"{name}.sol" / f"{name}.json"
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def gas_price(net: Devnet) -> int:
    return int(net.result("eth_gasPrice"), 16)


# Signed by the node's accounts (eth_sendTransaction) or by Hardhat with the devnet mnemonic.
NETWORKS = ("cybermiles", "cybermilesKeys")


@pytest.mark.parametrize("network", NETWORKS)
def test_deploy_with_default_fees_after_cheap_blocks(
    hardhat_devnet: Devnet, project: HardhatProject, network: str
) -> None:
    cheap = make_cheap_blocks(hardhat_devnet, dev_keys(10)[9])
    out = project.run("deploy.js", hardhat_devnet.url, network)
    w3 = hardhat_devnet.w3()
    minimum = gas_price(hardhat_devnet)
    deploy = w3.eth.get_transaction_receipt(out["deployHash"])
    assert deploy["status"] == 1 and deploy["blockNumber"] > cheap[-1]
    assert deploy["effectiveGasPrice"] >= minimum, (deploy, minimum)
    assert out["deployType"] == 2 and int(out["deployMaxFeePerGas"]) >= minimum
    for tx_hash in (out["guardedHash"], out["transferHash"]):
        receipt = w3.eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == 1 and receipt["effectiveGasPrice"] >= minimum, receipt
    token = w3.eth.contract(address=out["token"], abi=artifact(project, "Token")["abi"])
    assert token.functions.balanceOf(out["other"]).call() == int(out["otherTokenBalance"]) == 1000
    assert token.functions.balanceOf(out["owner"]).call() == 10**24 - 1000
    assert out["revertReason"] == "Guarded: caller is not the owner"


@pytest.mark.parametrize("network", NETWORKS)
def test_sign_message_verifies(
    hardhat_devnet: Devnet, project: HardhatProject, network: str
) -> None:
    out = project.run("sign.js", hardhat_devnet.url, network)
    assert out["signer"] == out["recovered"] == dev_keys(1)[0].address
    signed = encode_defunct(text=out["message"])
    assert Account.recover_message(signed, signature=out["signature"]) == out["signer"]


def test_network_helpers_time_mine_balance_impersonation(
    hardhat_devnet: Devnet, project: HardhatProject
) -> None:
    out = project.run("helpers.js", hardhat_devnet.url)
    w3 = hardhat_devnet.w3()

    assert out["timeAfter"] >= out["timeBefore"] + 3600
    assert w3.eth.get_block(out["blockAfterTime"])["timestamp"] == out["timeAfter"]
    assert out["blockAfterMine"] == out["blockBeforeMine"] + 10
    assert w3.eth.get_block(out["blockAfterMine"])["timestamp"] >= out["timeAfter"]

    assert int(out["whaleBalanceSet"]) == 100 * ETHER
    tx = w3.eth.get_transaction(out["impersonatedHash"])
    receipt = w3.eth.get_transaction_receipt(out["impersonatedHash"])
    assert tx["from"] == out["impersonatedFrom"] == out["whale"]
    assert receipt["status"] == 1 and receipt["effectiveGasPrice"] >= gas_price(hardhat_devnet)
    assert w3.eth.get_balance(out["payee"]) == int(out["payeeBalance"]) == ETHER
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(out["whale"]) == 99 * ETHER - fee
    assert out["sendAfterStopError"], "a send from the address went through after the stop"
    assert w3.eth.get_transaction_count(Web3.to_checksum_address(out["whale"])) == 1


def test_load_fixture_and_revert_reason_in_mocha(
    hardhat_devnet: Devnet, project: HardhatProject, tmp_path: Path
) -> None:
    report = project.test(hardhat_devnet.url, tmp_path / "mocha.json")
    failed = {t["title"]: t["err"].get("message") for t in report["failures"]}
    assert not failed, failed
    assert [t["title"] for t in report["passes"]] == [
        "deploys the fixture once",
        "sees its own transfer",
        "starts again from the snapshot: state and blocks reverted",
        "gets the revert reason of a refused call",
    ]
