"""Awards, absence slashing and double-sign slashing on 4 real validators, through JSON-RPC and
the status endpoint only (SPEC §6).

One cluster (max_slash_blocks 6, slash_enabled), in order:

1. awards: for a block without transactions, `cmt_queryAwardInfos` lists the four validators
   and their amounts sum to the block award exactly; nothing went to the coinbase.
2. absence: node 3 is killed; once it has missed 6 commits in a row its candidacy is inactive,
   its self-delegation lost floor(shares × 12/1000), it leaves the set, and the three others
   go on producing blocks.
3. double sign: node 2 restarts with the `equivocate` failpoint; the evidence is committed, and
   its stake is slashed (slashing forced) and it is deactivated. Nodes 0 and 1 carry on.
4. supply: Σ of every balance (eth_getBalance) = genesis supply + minted − burned, the counters
   read with eth_getStorageAt from the ledger's slots; the burned counter includes both slashes.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from cybermiles_node.operator.failpoints import ENV as FAILPOINT_ENV
from cybermiles_node.staking.awards import block_award
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS, SUPPLY_ADDRESS
from genesis import load_genesis
from tests.e2e.cluster import Cluster
from tests.e2e.harness import dev_keys, wait_for

pytestmark = pytest.mark.e2e

TIMEOUT_S = 90.0
MAX_SLASH_BLOCKS = 6


def query(cluster: Cluster, method: str, *params: object) -> Any:
    answer = cluster.rpc(0, method, list(params))
    assert "result" in answer, f"{method}{params}: {answer}"
    return answer["result"]["data"]


def candidate(cluster: Cluster, owner: str) -> dict[str, Any]:
    found: dict[str, Any] = query(cluster, "cmt_queryValidator", owner.lower())
    return found


def own_delegation(cluster: Cluster, owner: str) -> dict[str, Any]:
    found = query(cluster, "cmt_queryDelegator", owner.lower())
    (mine,) = [d for d in found if d["validator_address"] == owner.lower()]
    return dict(mine)


def counter(w3: Web3, item: Any, height: int) -> int:
    word = w3.eth.get_storage_at(Web3.to_checksum_address(SUPPLY_ADDRESS), item.slot, height)
    return int.from_bytes(bytes(word), "big")


def wait_inactive(cluster: Cluster, owner: str, what: str) -> dict[str, Any]:
    def inactive() -> dict[str, Any] | None:
        record = candidate(cluster, owner)
        return record if record["active"] == "N" else None

    return wait_for(inactive, timeout=TIMEOUT_S, what=what, interval=0.3)


def check_awards(cluster: Cluster, award: int) -> None:
    w3 = cluster.web3(0)
    height = cluster.wait_height(0, 3, timeout=TIMEOUT_S)
    while w3.eth.get_block(height)["transactions"]:
        height -= 1
    infos = query(cluster, "cmt_queryAwardInfos", height)
    assert len(infos) == 4 and {i["state"] for i in infos} == {"Validator"}
    assert sum(int(i["amount"]) for i in infos) == award


def check_absence_slash(cluster: Cluster, owner: str) -> int:
    before = int(own_delegation(cluster, owner)["shares"])
    cluster.kill(3, signal.SIGKILL)
    record = wait_inactive(cluster, owner, "node 3 deactivated for absence")
    mine = own_delegation(cluster, owner)
    slashed = int(mine["slash_amount"])
    assert slashed > 0
    # floor(shares × 12/1000) of the shares it had then (awards may have grown them a little)
    assert before * 12 // 1000 <= slashed <= (before + 10**21) * 12 // 1000
    assert int(record["shares"]) >= int(mine["shares"])
    top = cluster.height(0)
    cluster.wait_height(0, top + 3, timeout=TIMEOUT_S)  # the chain goes on without it
    return slashed


def check_double_sign_slash(cluster: Cluster, owner: str) -> int:
    cluster.kill(2, signal.SIGKILL)  # 2 of the 3 left: the chain waits for it
    from_height = cluster.height(0) + 1
    cluster.restart(2, env={FAILPOINT_ENV: f"equivocate:{from_height}"})
    wait_inactive(cluster, owner, "node 2 deactivated for double signing")
    slashed = int(own_delegation(cluster, owner)["slash_amount"])
    assert slashed > 0
    top = cluster.height(0)
    cluster.wait_height(0, top + 3, timeout=TIMEOUT_S)  # nodes 0 and 1 carry the chain
    return slashed


def check_supply(cluster: Cluster, genesis_path: Path, slashed: int) -> None:
    w3 = cluster.web3(0)
    height = cluster.height(0)
    genesis = load_genesis(genesis_path)
    accounts = {address for address, _ in genesis.alloc} | {HOLD_ADDRESS}
    total = sum(
        int(w3.eth.get_balance(Web3.to_checksum_address(a), height)) for a in sorted(accounts)
    )
    minted, burned = counter(w3, ledger.MINTED, height), counter(w3, ledger.BURNED, height)
    assert total == genesis.total_supply + minted - burned
    assert burned >= slashed > 0
    assert minted > 0


def test_awards_absence_and_double_sign_on_four_validators(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(
        validators=4, params={"max_slash_blocks": MAX_SLASH_BLOCKS, "slash_enabled": "true"}
    )
    genesis_path = Path(cluster.nodes[0].home) / "config" / "genesis.json"
    award = block_award(load_genesis(genesis_path).params)
    owners = [account.address for account in dev_keys(4)]  # dev account i owns validator i
    check_awards(cluster, award)
    slashed = check_absence_slash(cluster, owners[3])
    slashed += check_double_sign_slash(cluster, owners[2])
    check_supply(cluster, genesis_path, slashed)
    assert json.dumps(candidate(cluster, owners[0]))  # node 0's validator is untouched
    assert candidate(cluster, owners[0])["active"] == "Y"
