"""`cybermiles devnet --preset travis --validators 1`: what an unchanged Travis-era client sees
through plain JSON-RPC and the status endpoint (one devnet for the module).

eth_accounts in Travis's order with their roles, chain id 1234, the lity profile, empty blocks
at the block time, keystore accounts unlocked from the start, personal_unlockAccount with
`1234`, /validators on node 0. The cmt_* sequences, ERC-20 and ethers.js suite is a later,
bigger test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cybermiles_node.operator.travis_preset import FOUNDATION, FOUNDATION_BALANCE, account_plan
from genesis import CMT, load_genesis
from genesis.presets import DEVNET_VALIDATOR_SHARES
from tests.conformance import OpenRpcValidator
from tests.e2e.cluster import Cluster
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.e2e

BLOCK_TIME_S = 0.5
KEYSTORE_ACCOUNTS = 9  # 0x7eff…, a user, owners of validators 2-4, four more users


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, validator: OpenRpcValidator
) -> Iterator[Cluster]:
    net = Cluster(
        tmp_path_factory.mktemp("travis"),
        validators=1,
        validator=validator,
        extra_args=["--preset", "travis", "--block-time", str(BLOCK_TIME_S)],
    ).start()
    try:
        yield net
    finally:
        assert net.stop() == 0, net.log_tail()


def result(cluster: Cluster, method: str, params: list[Any] | None = None) -> Any:
    answer = cluster.rpc(0, method, params or [])
    assert "result" in answer, answer
    return answer["result"]


def accounts(cluster: Cluster) -> list[str]:
    listed: list[str] = result(cluster, "eth_accounts")
    return listed


def candidates(cluster: Cluster) -> dict[str, dict[str, Any]]:
    data = result(cluster, "cmt_queryValidators", [0])["data"]
    return {entry["owner_address"].lower(): entry for entry in data}


def balance(cluster: Cluster, account: str, block: str = "latest") -> int:
    return int(result(cluster, "eth_getBalance", [account, block]), 16)


def test_chain_id_and_profile_are_travis(cluster: Cluster) -> None:
    assert result(cluster, "eth_chainId") == hex(1234)
    assert result(cluster, "net_version") == "1234"
    assert "/lity/" in result(cluster, "web3_clientVersion")
    genesis = load_genesis(cluster.nodes[0].home / "config" / "genesis.json")
    assert genesis.evm_profile == "lity"
    assert genesis.timeouts.commit_ms == BLOCK_TIME_S * 1000  # --block-time is the BFT pace


def test_blocks_keep_coming_without_transactions(cluster: Cluster) -> None:
    start = cluster.height(0)
    cluster.wait_height(0, start + 4, timeout=30)
    for number in range(start + 1, start + 5):
        block = result(cluster, "eth_getBlockByNumber", [hex(number), False])
        assert block["transactions"] == [], block


def test_eth_accounts_are_in_travis_order_with_their_roles(cluster: Cluster) -> None:
    listed = accounts(cluster)
    plan = account_plan(1)
    assert listed[:KEYSTORE_ACCOUNTS] == [f"0x{account.address.hex()}" for account in plan]
    # [0]: the foundation (the foundation_address parameter) and the only genesis validator's
    # owner; with one validator the owners of "validators 2-4" ([2]-[4]) own no candidate.
    assert listed[0] == "0x" + FOUNDATION.hex()
    params = result(cluster, "cmt_queryParams", [0])["data"]
    assert params["foundation_address"].lower() == listed[0]
    assert set(candidates(cluster)) == {listed[0]}
    # Funded with 1e16 CMT in genesis, less the 10,000 CMT its validator self-stakes.
    assert balance(cluster, listed[0], "0x0") + DEVNET_VALIDATOR_SHARES * CMT == 10**16 * CMT
    assert FOUNDATION_BALANCE == 10**16 * CMT
    for account in listed[1:]:
        assert balance(cluster, account, "0x0") > 0, account


def test_the_last_account_is_funded_and_owns_no_candidate(cluster: Cluster) -> None:
    last = accounts(cluster)[-1]
    assert balance(cluster, last) > 0
    assert last not in candidates(cluster)
    never = cluster.rpc(0, "cmt_queryValidator", [last, 0])
    assert "error" in never, never  # "a JSON-RPC error if it never was a candidate" (SPEC §8)


def test_personal_unlock_account_with_1234_answers_true(cluster: Cluster) -> None:
    first = accounts(cluster)[0]
    assert result(cluster, "personal_unlockAccount", [first, "1234", 60]) is True
    wrong = cluster.rpc(0, "personal_unlockAccount", [first, "4321", 60])
    assert "wrong passphrase" in wrong["error"]["message"], wrong


def test_send_transaction_from_account_1_needs_no_unlock(cluster: Cluster) -> None:
    listed = accounts(cluster)
    sender, receiver = listed[1], listed[5]
    before = balance(cluster, receiver)
    tx_hash = result(
        cluster, "eth_sendTransaction", [{"from": sender, "to": receiver, "value": hex(12345)}]
    )

    def receipt() -> dict[str, Any] | None:
        found: dict[str, Any] | None = result(cluster, "eth_getTransactionReceipt", [tx_hash])
        return found

    mined = wait_for(receipt, timeout=30, what="the transaction's receipt", interval=0.2)
    assert mined["status"] == "0x1", mined
    assert balance(cluster, receiver) == before + 12345


def test_the_validators_endpoint_answers_on_node_0(cluster: Cluster) -> None:
    listed = cluster.status_get(0, "/validators")
    validators = listed["validators"]
    assert len(validators) == 1
    entry = validators[0]
    assert entry["address"] == cluster.nodes[0].validator_address.upper()
    assert int(entry["voting_power"]) > 0
    owner = candidates(cluster)["0x" + FOUNDATION.hex()]
    assert entry["pub_key"] == {
        "type": "tendermint/PubKeyEd25519",
        "value": owner["pub_key"]["value"],
    }
