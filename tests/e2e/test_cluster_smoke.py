"""A four-validator devnet comes up: processes, devnet.json, /health, /status and /metrics.

The smoke test asks nothing of consensus; `test_bft.py` has the behaviour under faults.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.e2e.cluster import Cluster, pid_alive
from tests.e2e.harness import CHAIN_ID

pytestmark = pytest.mark.e2e

MANIFEST_NODE_KEYS = {
    "name",
    "home",
    "pid",
    "rpc_url",
    "ws_url",
    "p2p_address",
    "status_url",
    "metrics_url",
    "validator_address",
}


def test_four_validators_start_and_answer(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory(validators=4)
    manifest = json.loads(cluster.manifest_path.read_text())
    assert manifest["chain_id"] == CHAIN_ID and manifest["validators"] == 4
    assert [entry["name"] for entry in manifest["nodes"]] == ["node0", "node1", "node2", "node3"]
    for entry in manifest["nodes"]:
        assert set(entry) == MANIFEST_NODE_KEYS
        assert all(entry[key] for key in MANIFEST_NODE_KEYS), entry
    assert len({node.pid for node in cluster.nodes}) == 4
    assert all(pid_alive(node.pid) for node in cluster.nodes)

    networks = set()
    for i, node in enumerate(cluster.nodes):
        assert cluster.health(i), f"{node.name} /health"
        status = cluster.status(i)
        assert status["node_info"]["id"] == node.node_id
        networks.add(status["node_info"]["network"])
        assert "cybermiles_consensus_height" in cluster.metrics(i)
    assert len(networks) == 1

    assert cluster.stop() == 0, cluster.log_tail()
    assert not any(pid_alive(node.pid) for node in cluster.nodes)
