"""The multi-validator devnet (cybermiles_node.operator.devnet) and its CLI surface.

Home creation and devnet.json are tested as functions. The supervisor is tested with fake nodes:
`node_command` is replaced by a tiny HTTP server answering /health on the node's status port
(or a process that fails), so start-up, crash reporting and shutdown run for real without the node
stack. CLI checks go through click's CliRunner and never get as far as starting processes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cybermiles_node.operator import devnet as devnet_module
from cybermiles_node.operator.cli import main
from cybermiles_node.operator.config import (
    HomeLayout,
    LogConfig,
    NodeConfig,
    StatusConfig,
    load_config,
)
from cybermiles_node.operator.devnet import (
    DevnetError,
    DevnetNode,
    DevnetOptions,
    Ports,
    devnet_manifest,
    node_home,
    prepare_devnet,
    run_devnet,
    write_manifest,
)
from cybermiles_node.operator.keys import read_key
from genesis import dev_accounts, load_genesis
from tests.e2e.harness import free_port

PORTS = Ports(rpc=9100, p2p=30000, status=30001, metrics=30004)


def options(validators: int = 4, **kwargs: Any) -> DevnetOptions:
    return DevnetOptions(validators=validators, ports=kwargs.pop("ports", PORTS), **kwargs)


# ------------------------------------------------------------------------ homes


def test_first_run_creates_one_full_home_per_validator(tmp_path: Path) -> None:
    nodes = prepare_devnet(tmp_path, options(4))
    assert [node.name for node in nodes] == ["node0", "node1", "node2", "node3"]
    node_ids = [
        read_key(HomeLayout(node_home(tmp_path, i)).node_key_file).node_id for i in range(4)
    ]
    assert len(set(node_ids)) == 4
    for i, node in enumerate(nodes):
        layout = HomeLayout(tmp_path / f"node{i}")
        config = load_config(layout.config_file)
        assert config == node.config
        assert (config.rpc.port, config.p2p.listen_port) == (9100 + i, 30000 + 10 * i)
        assert (config.status.port, config.metrics.port) == (30001 + 10 * i, 30004 + 10 * i)
        assert config.moniker == f"node{i}"
        assert config.consensus.engine == "bft"
        assert config.devnet.enabled and config.devnet.accounts == 10
        assert config.log == LogConfig(level="info", format="text")
        assert config.p2p.persistent_peers == tuple(
            f"{node_ids[j]}@127.0.0.1:{30000 + 10 * j}" for j in range(4) if j != i
        )
        assert node.node_id == node_ids[i]
        assert layout.data_dir.is_dir()


@pytest.mark.parametrize(
    ("validators", "cores", "workers"), [(1, 2, 1), (2, 2, 0), (4, 2, 0), (4, 8, 1), (4, 7, 0)]
)
def test_nodes_get_a_recovery_worker_only_when_each_has_a_core_to_spare(
    tmp_path: Path, validators: int, cores: int, workers: int
) -> None:
    nodes = prepare_devnet(tmp_path, options(validators, cores=cores))
    for i, node in enumerate(nodes):
        config = load_config(HomeLayout(tmp_path / f"node{i}").config_file)
        assert config.recovery_workers == node.config.recovery_workers == workers


def test_every_home_has_the_same_genesis_with_all_validators(tmp_path: Path) -> None:
    nodes = prepare_devnet(tmp_path, options(3, chain_id=777))
    genesis_bytes = {node.layout.genesis_file.read_bytes() for node in nodes}
    assert len(genesis_bytes) == 1
    genesis = load_genesis(nodes[0].layout.genesis_file)
    assert genesis.chain_id == 777
    owners = dev_accounts(3)
    for i, (node, validator) in enumerate(zip(nodes, genesis.validators, strict=True)):
        key = read_key(node.layout.validator_key_file)
        assert validator.pub_key == key.public_key
        assert validator.owner == owners[i].address
        assert node.validator_address == key.node_id  # sha256(pub key)[:20] hex


def test_more_validators_than_accounts_funds_an_owner_for_each(tmp_path: Path) -> None:
    nodes = prepare_devnet(tmp_path, options(5, accounts=2))
    assert nodes[0].config.devnet.accounts == 5
    assert len(load_genesis(nodes[0].layout.genesis_file).validators) == 5


def test_later_runs_keep_keys_and_chain_and_rewrite_ports(tmp_path: Path) -> None:
    first = prepare_devnet(tmp_path, options(2))
    genesis = first[0].layout.genesis_file.read_bytes()
    moved = Ports(rpc=9200, p2p=31000, status=31001, metrics=31004)
    second = prepare_devnet(tmp_path, options(2, ports=moved))
    assert [n.node_id for n in second] == [n.node_id for n in first]
    assert [n.validator_address for n in second] == [n.validator_address for n in first]
    assert second[0].layout.genesis_file.read_bytes() == genesis
    config = load_config(second[1].layout.config_file)
    assert (config.rpc.port, config.p2p.listen_port, config.status.port) == (9201, 31010, 31011)
    assert config.p2p.persistent_peers == (f"{first[0].node_id}@127.0.0.1:31000",)


def test_a_different_validator_count_needs_reset(tmp_path: Path) -> None:
    prepare_devnet(tmp_path, options(3))
    with pytest.raises(DevnetError, match="3-validator devnet; use --reset"):
        prepare_devnet(tmp_path, options(4))


def test_a_different_chain_id_needs_reset(tmp_path: Path) -> None:
    prepare_devnet(tmp_path, options(2, chain_id=777))
    prepare_devnet(tmp_path, options(2))  # the default id continues whatever chain is there
    with pytest.raises(DevnetError, match="holds chain 777; use --reset"):
        prepare_devnet(tmp_path, options(2, chain_id=778))


def test_a_single_node_devnet_home_is_not_taken_over(tmp_path: Path) -> None:
    HomeLayout(tmp_path).config_dir.mkdir(parents=True)
    HomeLayout(tmp_path).genesis_file.write_text("{}")
    with pytest.raises(DevnetError, match="single-node devnet"):
        prepare_devnet(tmp_path, options(2))


def test_validator_count_is_bounded(tmp_path: Path) -> None:
    for count in (0, 21):
        with pytest.raises(DevnetError, match="1..20"):
            prepare_devnet(tmp_path, options(count))


# ------------------------------------------------------------------------ devnet.json


def test_manifest_lists_every_node(tmp_path: Path) -> None:
    nodes = prepare_devnet(tmp_path / "net", options(2, rpc_host="0.0.0.0"))
    manifest = devnet_manifest(1234, nodes, [111, 222])
    path = tmp_path / "devnet.json"
    write_manifest(path, manifest)
    write_manifest(path, manifest)  # replacing works too
    assert json.loads(path.read_text()) == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["devnet.json", "net"]  # no temp file
    assert manifest["chain_id"] == 1234 and manifest["validators"] == 2
    second = manifest["nodes"][1]
    assert second == {
        "name": "node1",
        "home": str((tmp_path / "net" / "node1").resolve()),
        "pid": 222,
        "rpc_url": "http://127.0.0.1:9101",  # a wildcard bind is reached on 127.0.0.1
        "ws_url": "ws://127.0.0.1:9101",
        "p2p_address": f"{nodes[1].node_id}@127.0.0.1:30010",
        "status_url": "http://127.0.0.1:30011",
        "metrics_url": "http://127.0.0.1:30014/metrics",
        "validator_address": nodes[1].validator_address,
    }


# ------------------------------------------------------------------------ supervisor

FAKE_NODE = """
import http.server, sys
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
print("fake node up", flush=True)
server.serve_forever()
"""


def fake_nodes(base: Path, count: int) -> list[DevnetNode]:
    nodes = []
    for index in range(count):
        layout = HomeLayout(base / f"node{index}")
        layout.home.mkdir(parents=True)
        config = NodeConfig(status=StatusConfig(port=free_port()))
        nodes.append(DevnetNode(index, layout, config, f"id{index}", f"addr{index}"))
    return nodes


def use_command(
    monkeypatch: pytest.MonkeyPatch, command: Callable[[DevnetNode], list[str]]
) -> None:
    monkeypatch.setattr(devnet_module, "node_command", command)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_supervisor_starts_reports_a_crash_and_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "fake_node.py"
    script.write_text(FAKE_NODE)
    use_command(
        monkeypatch, lambda node: [sys.executable, str(script), str(node.config.status.port)]
    )
    nodes = fake_nodes(tmp_path, 3)
    said: list[str] = []
    manifests: list[dict[str, Any]] = []
    # A safety net: whatever happens, the supervisor is told to stop within 30 s.
    watchdog = threading.Timer(30, os.kill, (os.getpid(), signal.SIGTERM))

    def ready(manifest: dict[str, Any]) -> None:
        manifests.append(manifest)
        watchdog.start()
        os.kill(manifest["nodes"][1]["pid"], signal.SIGKILL)  # a developer kills node1

    def say(line: str) -> None:
        said.append(line)
        os.kill(os.getpid(), signal.SIGTERM)  # and then stops the devnet

    before = signal.getsignal(signal.SIGTERM)
    try:
        run_devnet(tmp_path, 1234, nodes, on_ready=ready, say=say, start_timeout=30)
    finally:
        watchdog.cancel()
    assert signal.getsignal(signal.SIGTERM) == before
    assert said == [
        f"node1 exited with -9; restart it with: cybermiles node start --home {tmp_path / 'node1'}"
    ]
    (manifest,) = manifests
    assert json.loads((tmp_path / "devnet.json").read_text()) == manifest
    pids = [entry["pid"] for entry in manifest["nodes"]]
    assert not any(pid_alive(pid) for pid in pids)
    for node in nodes:
        log = node.log_file.read_text()
        assert "===== cybermiles devnet:" in log and "fake node up" in log


def test_a_node_that_exits_during_start_up_fails_the_devnet_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "fake_node.py"
    script.write_text(FAKE_NODE)
    failing = [sys.executable, "-c", "print('boom: port taken'); raise SystemExit(3)"]
    use_command(
        monkeypatch,
        lambda node: (
            failing
            if node.index == 1
            else [sys.executable, str(script), str(node.config.status.port)]
        ),
    )
    nodes = fake_nodes(tmp_path, 2)
    with pytest.raises(DevnetError, match="node1 exited with 3 during start-up") as failure:
        run_devnet(tmp_path, 1234, nodes, on_ready=lambda m: None, say=print, start_timeout=30)
    assert "boom: port taken" in str(failure.value)
    assert not (tmp_path / "devnet.json").exists()


def test_a_node_that_never_gets_healthy_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_command(monkeypatch, lambda node: [sys.executable, "-c", "import time; time.sleep(60)"])
    nodes = fake_nodes(tmp_path, 1)
    with pytest.raises(DevnetError, match="did not answer /health within 1 s"):
        run_devnet(tmp_path, 1234, nodes, on_ready=lambda m: None, say=print, start_timeout=1)


# ------------------------------------------------------------------------ CLI


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_cli_refuses_a_different_count_without_reset(tmp_path: Path) -> None:
    prepare_devnet(tmp_path, options(2))
    result = invoke("devnet", "--home", str(tmp_path), "--validators", "3")
    assert result.exit_code == 1
    assert "2-validator devnet; use --reset" in result.output


def test_cli_checks_option_combinations(tmp_path: Path) -> None:
    home = str(tmp_path / "h")
    result = invoke("devnet", "--home", home, "--p2p-port", "4000")
    assert result.exit_code == 1 and "go with --validators" in result.output
    result = invoke("devnet", "--home", home, "--validators", "2", "--block-time", "1")
    assert result.exit_code == 1 and "--block-time" in result.output
    assert invoke("devnet", "--home", home, "--validators", "21").exit_code == 2
    assert not (tmp_path / "h").exists()


def test_every_node_declares_the_devnets_program_version(tmp_path: Path) -> None:
    default, declared = (
        prepare_devnet(tmp_path / name, options(2, program_version=version))
        for name, version in (("default", None), ("declared", "v2.0.0"))
    )
    assert "--program-version" not in devnet_module.node_command(default[0])
    for node in declared:
        assert devnet_module.node_command(node)[-2:] == ["--program-version", "v2.0.0"]
    result = invoke("devnet", "--home", str(tmp_path / "h"), "--program-version", "2.0.0")
    assert result.exit_code == 2 and "not of the form vX.Y.Z" in result.output
    assert not (tmp_path / "h").exists()


def test_single_node_devnet_refuses_a_multi_validator_home(tmp_path: Path) -> None:
    prepare_devnet(tmp_path, options(2))
    result = invoke("devnet", "--home", str(tmp_path))
    assert result.exit_code == 1
    assert "2-validator devnet; add --validators 2 or --reset" in result.output


def test_node_info_shows_addresses_and_engine(tmp_path: Path) -> None:
    nodes = prepare_devnet(tmp_path, options(2))
    result = invoke("node", "info", "--home", str(nodes[1].layout.home))
    assert result.exit_code == 0, result.output
    assert f"validator address: {nodes[1].validator_address}" in result.output
    assert f"p2p address:       {nodes[1].p2p_address}" in result.output
    assert "status url:        http://127.0.0.1:30011" in result.output
    assert "consensus engine:  bft" in result.output


def test_init_still_makes_a_home(tmp_path: Path) -> None:
    result = invoke("init", "--home", str(tmp_path / "n"))
    assert result.exit_code == 0, result.output
    assert "node id:" in result.output
    again = invoke("init", "--home", str(tmp_path / "n"))
    assert again.exit_code == 1 and "this home is initialised" in again.output
