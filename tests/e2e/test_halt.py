"""Real devnets whose chain halts at a height for an upgrade (issue #10, the node side).

Governance cannot approve an upgrade_program yet, so the `halt` failpoint
(cybermiles_node/operator/failpoints.py) plugs into the chain a module that decides, at the end
of block H, what such a proposal decides: the program requirement "cybermiles v9.0.0" in state,
and a halt. Everything after is the node's own path: it commits block H, prints the message,
exits with status 3; restarted with the same version it refuses with the same line and status;
restarted with `--program-version v9.0.0` it continues the chain from H. Once for the automine
devnet, once for two BFT validators (each signed nothing above H).
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from cybermiles_node.operator.config import HomeLayout
from cybermiles_node.operator.failpoints import ENV as FAILPOINT_ENV
from tests.e2e.cluster import Cluster
from tests.e2e.harness import (
    REPO_ROOT,
    Devnet,
    fresh_account,
    send_signed,
    sign_transfer,
    wait_for,
    wait_receipt,
)

pytestmark = pytest.mark.e2e

HALT_AT = 5
REQUIRED = "v9.0.0"
HALT_LINE = f"halted at block {HALT_AT}: upgrade needed: cybermiles {REQUIRED}"
# Late enough for the cluster to be up (devnet.json) before its chain halts.
BFT_HALT_AT = 10
BFT_HALT_LINE = f"halted at block {BFT_HALT_AT}: upgrade needed: cybermiles {REQUIRED}"
EXIT_HALTED = 3
RUN_TIMEOUT_S = 120


def run_to_exit(net: Devnet, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the devnet's command until the process exits by itself (its output in the log)."""
    net.port = 0  # nothing talks to it: any free port
    command = net.command()
    result = subprocess.run(
        command,
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    with net.log_path.open("a") as log:
        log.write(f"\n===== {' '.join(command)}\n{result.stdout}{result.stderr}")
    return result


def test_the_chain_halts_at_the_height_and_goes_on_with_the_required_version(
    devnet_factory: Any, accounts: list[LocalAccount]
) -> None:
    # A block every 0.2 s, so the chain reaches the halt on its own.
    net: Devnet = devnet_factory("halt", start=False, block_time=0.2)
    halting = run_to_exit(net, {FAILPOINT_ENV: f"halt:{HALT_AT}:{REQUIRED}"})
    assert halting.returncode == EXIT_HALTED, net.log_tail()
    assert HALT_LINE in halting.stderr.splitlines()
    assert "CyberMiles devnet" in halting.stdout  # it ran, then halted

    again = run_to_exit(net, {})  # the same program version (the package's own)
    assert again.returncode == EXIT_HALTED, net.log_tail()
    assert again.stderr.splitlines() == [HALT_LINE]  # refused in one line, before serving
    assert again.stdout == ""

    # Upgraded: the node starts, its head is the halting block, and the chain goes on.
    net.block_time = None  # automine: blocks only for transactions, so the head stays put
    net.extra_args = ["--program-version", REQUIRED]
    net.start()
    w3 = net.w3()
    assert net.block_number() == HALT_AT
    sender = accounts[3]
    tx_hash = send_signed(w3, sign_transfer(sender, 0, fresh_account(900).address, 1))
    receipt = wait_receipt(w3, tx_hash)
    assert receipt["status"] == 1 and receipt["blockNumber"] == HALT_AT + 1
    assert net.stop() == 0


def test_bft_validators_commit_the_halting_block_and_sign_nothing_after_it(
    cluster_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every node runs the failpoint (it changes the state): the supervisor's children inherit it.
    monkeypatch.setenv(FAILPOINT_ENV, f"halt:{BFT_HALT_AT}:{REQUIRED}")
    cluster: Cluster = cluster_factory(validators=2)
    wait_for(
        lambda: not any(cluster.alive(i) for i in range(2)),
        timeout=90,
        what="both validators to halt",
    )
    for i, node in enumerate(cluster.nodes):
        assert BFT_HALT_LINE in node.log_path.read_text().splitlines(), cluster.log_tail()
        signed = json.loads(HomeLayout(node.home).validator_state_file.read_text())
        assert signed["height"] == BFT_HALT_AT, f"{node.name} signed {signed}"
        said = f"node{i} exited with {EXIT_HALTED} ({BFT_HALT_LINE})"
        wait_for(
            lambda said=said: said in cluster.log_path.read_text(),  # type: ignore[misc]
            timeout=10,
            what=f"the supervisor's report of node{i}",
        )

    monkeypatch.delenv(FAILPOINT_ENV)
    refused = cluster.restart(0, wait=False)  # the same program version
    assert refused.wait(timeout=RUN_TIMEOUT_S) == EXIT_HALTED, cluster.log_tail()

    cluster.node_args = ["--program-version", REQUIRED]
    for i in range(2):
        cluster.restart(i)
    for i in range(2):
        cluster.wait_height(i, BFT_HALT_AT + 2)
    halting = [
        cluster.rpc(i, "eth_getBlockByNumber", [hex(BFT_HALT_AT), False])["result"]["hash"]
        for i in range(2)
    ]
    assert halting[0] == halting[1]
