"""A full node joins a running validator network the way an operator sets one up:
`cybermiles init --home F --genesis <the network's genesis.json>`, its peers written in
config.toml, `cybermiles node start --home F`. It downloads the chain through blocksync, follows
consensus without voting, and relays transactions sent to it to the validators.
"""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import tomli_w
from web3 import HTTPProvider, Web3

from cybermiles_node.operator.devnet import spawn_logged
from tests.e2e.cluster import Cluster
from tests.e2e.harness import (
    REPO_ROOT,
    cybermiles_executable,
    dev_keys,
    free_port,
    fresh_account,
    send_signed,
    sign_transfer,
    wait_for,
)

pytestmark = pytest.mark.e2e

TIMEOUT_S = 90.0
SOMEONE = "0x" + "42" * 20
NODE_ACCOUNT_CALLS = [
    ("personal_listAccounts", []),
    ("personal_unlockAccount", [SOMEONE, "pw", None]),
    ("eth_sign", [SOMEONE, "0x00"]),
    ("eth_sendTransaction", [{"from": SOMEONE, "to": SOMEONE}]),
    ("cmt_withdrawCandidacy", [{"from": SOMEONE}]),
]


def test_full_node_syncs_follows_and_relays(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    full_node_home = tmp_path / "full"
    cluster = cluster_factory(validators=2)
    cluster.wait_height(0, 3, timeout=TIMEOUT_S)
    genesis = Path(cluster.nodes[0].home) / "config" / "genesis.json"
    init = subprocess.run(
        [str(cybermiles_executable()), "init", "--home", str(full_node_home), "--genesis",
         str(genesis)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr

    config_path = full_node_home / "config" / "config.toml"
    config = tomllib.loads(config_path.read_text())
    rpc_port, status_port = free_port(), free_port()
    config["rpc"]["port"] = rpc_port
    config["p2p"]["listen_port"] = free_port()
    config["p2p"]["persistent_peers"] = [cluster.nodes[0].p2p_address]
    config["status"]["port"] = status_port
    config["metrics"]["port"] = free_port()
    config_path.write_text(tomli_w.dumps(config))

    log = full_node_home / "node.log"
    proc = spawn_logged(
        [str(cybermiles_executable()), "node", "start", "--home", str(full_node_home)],
        log, "full node", cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        w3 = Web3(HTTPProvider(f"http://127.0.0.1:{rpc_port}"))

        def height() -> int | None:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return w3.eth.block_number
            except (requests.RequestException, ValueError):
                return None

        target = cluster.height(0)
        wait_for(lambda: (height() or 0) >= target, timeout=TIMEOUT_S, what="full node sync")
        for h in range(1, target + 1):
            assert w3.eth.get_block(h)["hash"] == cluster.web3(0).eth.get_block(h)["hash"]

        status = requests.get(f"http://127.0.0.1:{status_port}/status", timeout=5).json()
        assert status["result"]["validator_info"]["voting_power"] == "0"

        recipient = fresh_account(500).address
        tx = send_signed(w3, sign_transfer(dev_keys(1)[0], 0, recipient, 12345))
        receipt = cluster.web3(1).eth.wait_for_transaction_receipt(tx, timeout=TIMEOUT_S)
        assert receipt["status"] == 1
        wait_for(lambda: (height() or 0) >= receipt["blockNumber"], timeout=TIMEOUT_S,
                 what="full node to follow the block with our transaction")  # fmt: skip
        assert w3.eth.get_balance(recipient) == 12345

        # Not a devnet and node_accounts not set: no accounts, no node-side signing (SPEC §8).
        assert w3.eth.accounts == []
        for method, params in NODE_ACCOUNT_CALLS:
            answer = w3.provider.make_request(method, params)  # type: ignore[arg-type]
            assert answer["error"]["code"] == -32601, (method, answer)
        # Nor traces without rpc.debug_api: refused by name, naming the switch.
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        for method in ("debug_traceTransaction", "trace_transaction"):
            error = w3.provider.make_request(method, [tx_hash])["error"]  # type: ignore[arg-type]
            assert error["code"] == -32601 and "rpc.debug_api" in error["message"], error
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
