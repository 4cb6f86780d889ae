"""The `Cluster` process harness: a real multi-validator devnet on 127.0.0.1.

A `Cluster` runs `cybermiles devnet --validators N` (the supervisor) as a subprocess on ports
picked free for the whole cluster, reads the devnet.json the supervisor writes once every node
answers /health, and then drives the nodes the way an operator would: JSON-RPC, the status
endpoint, /metrics and signals. `kill(i)` kills one node process by its pid; `restart(i)` starts
that node again with `cybermiles node start` as a process the Cluster owns (the supervisor leaves
killed nodes down). `join(home)` adds a node from outside the devnet the way an operator
would (`cybermiles init --genesis`, the devnet's nodes as persistent peers, `cybermiles node
start`); it gets the next index and kill/restart/rpc work on it as on any node. `stop()` stops
the supervisor (which stops its nodes), every restarted or joined node, and kills whatever is
left of the cluster's node processes, so nothing outlives a test.

As in `Devnet`, every wait is a condition polled against a deadline, and failing tests get the
log tails of the supervisor and of each node (`log_tail`).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import tomli_w
from web3 import HTTPProvider, Web3

from cybermiles_node.operator.config import HomeLayout
from cybermiles_node.operator.devnet import MANIFEST_NAME, spawn_logged
from cybermiles_node.operator.keys import read_key
from tests.conformance import OpenRpcValidator, check_raw_response, install_conformance_check
from tests.e2e.harness import (
    CHAIN_ID,
    LOG_TAIL_LINES,
    REPO_ROOT,
    RPC_TIMEOUT_S,
    STOP_TIMEOUT_S,
    cybermiles_executable,
    free_port,
    wait_for,
)

__all__ = ["Cluster", "ClusterNode", "ClusterPorts", "active_clusters", "pick_ports", "pid_alive"]

START_TIMEOUT_S = 180.0  # N nodes importing the node stack at once on a small machine
NODE_START_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 5.0
PORT_STRIDE = 10  # as `cybermiles devnet`: node i uses p2p/status/metrics base + 10 i
# Below Linux's ephemeral range (32768+), where single-node `Devnet`s take their ports.
PORT_RANGE = (20000, 32000)
START_ATTEMPTS = 5

_ACTIVE: list[Cluster] = []


def active_clusters() -> list[Cluster]:
    """Clusters currently running in this process (for failure reports)."""
    return list(_ACTIVE)


@dataclass(frozen=True)
class ClusterPorts:
    """The base ports given to `cybermiles devnet` (node 0's)."""

    rpc: int
    p2p: int
    status: int
    metrics: int

    def all_ports(self, validators: int) -> list[int]:
        strided = [
            base + PORT_STRIDE * i
            for base in (self.p2p, self.status, self.metrics)
            for i in range(validators)
        ]
        return [self.rpc + i for i in range(validators)] + strided


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(validators: int, rng: random.Random | None = None) -> ClusterPorts:
    """Base ports whose whole cluster (RPC base + i, the others base + 10 i) is free now.

    One block of ports: p2p, status and metrics at offsets 0, 1, 2 of each stride of 10 (so
    they never overlap), the consecutive RPC ports after the last stride.
    """
    rng = rng or random.Random()
    span = PORT_STRIDE * validators + validators
    for _ in range(200):
        base = rng.randrange(PORT_RANGE[0], PORT_RANGE[1] - span, PORT_STRIDE)
        ports = ClusterPorts(
            rpc=base + PORT_STRIDE * validators, p2p=base, status=base + 1, metrics=base + 2
        )
        if all(_bindable(port) for port in ports.all_ports(validators)):
            return ports
    raise AssertionError(f"no free block of {span} ports in {PORT_RANGE}")


@dataclass(frozen=True)
class ClusterNode:
    """One node as devnet.json describes it (`pid` is the supervisor's child)."""

    name: str
    home: Path
    pid: int
    rpc_url: str
    ws_url: str
    status_url: str
    metrics_url: str
    p2p_address: str
    validator_address: str

    @property
    def node_id(self) -> str:
        return self.p2p_address.split("@", 1)[0]

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> ClusterNode:
        return cls(
            name=entry["name"],
            home=Path(entry["home"]),
            pid=int(entry["pid"]),
            rpc_url=entry["rpc_url"],
            ws_url=entry["ws_url"],
            status_url=entry["status_url"],
            metrics_url=entry["metrics_url"],
            p2p_address=entry["p2p_address"],
            validator_address=entry["validator_address"],
        )


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed child its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _runs_home(pid: int, home: Path) -> bool:
    """The process is a node of `home` (checked before a cleanup kill: pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(home).encode() in cmdline


def _log_tail(path: Path, lines: int) -> str:
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f"--- {path}: no log ({exc}) ---"
    return f"--- last {len(tail)} lines of {path} ---\n" + "\n".join(tail)


class Cluster:
    """`cybermiles devnet --validators N` in `base/devnet`, the supervisor's output in
    `base/supervisor.log`. Node indexes are 0-based, as in the devnet (node0 …).

    `params` are chain parameters of the cluster's genesis (`--param NAME=VALUE` each), e.g.
    {"unstake_waiting_period": 5}.
    """

    def __init__(
        self,
        base: Path,
        *,
        validators: int = 4,
        validator: OpenRpcValidator | None = None,
        chain_id: int = CHAIN_ID,
        extra_args: Sequence[str] = (),
        wrapper: Sequence[str] = (),
        params: Mapping[str, object] | None = None,
    ) -> None:
        self.base = base
        self.wrapper = list(wrapper)  # a command the devnet runs under, e.g. prlimit
        self.home = base / "devnet"
        self.log_path = base / "supervisor.log"
        self.validators = validators
        self.validator = validator
        self.chain_id = chain_id
        self.extra_args = list(extra_args)
        self.node_args: list[str] = []  # added to `cybermiles node start` of restarts
        self.params = dict(params or {})
        self.ports: ClusterPorts | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.nodes: list[ClusterNode] = []
        self.pids: list[int] = []  # the live pid of each node: the supervisor's or a restart's
        self._restarted: dict[int, subprocess.Popen[bytes]] = {}
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy between the tests and 127.0.0.1

    # ------------------------------------------------------------------ the supervisor

    @property
    def manifest_path(self) -> Path:
        return self.home / MANIFEST_NAME

    def command(self, ports: ClusterPorts) -> list[str]:
        return [
            *self.wrapper,
            str(cybermiles_executable()),
            "devnet",
            "--validators",
            str(self.validators),
            "--home",
            str(self.home),
            "--chain-id",
            str(self.chain_id),
            "--rpc-port",
            str(ports.rpc),
            "--p2p-port",
            str(ports.p2p),
            "--status-port",
            str(ports.status),
            "--metrics-port",
            str(ports.metrics),
            *(arg for name, value in self.params.items() for arg in ("--param", f"{name}={value}")),
            *self.extra_args,
        ]

    def start(self) -> Cluster:
        """Start the supervisor and wait for devnet.json; new ports if some were taken."""
        assert self.proc is None, "cluster already started"
        self.base.mkdir(parents=True, exist_ok=True)
        _ACTIVE.append(self)
        attempt = 0
        while True:
            attempt += 1
            self.ports = pick_ports(self.validators)
            self._launch(self.command(self.ports), attempt)
            try:
                self._wait_manifest(START_TIMEOUT_S)
                return self
            except AssertionError:
                lost_race = attempt < START_ATTEMPTS and self._lost_port_race()
                self._stop_supervisor()
                if not lost_race:
                    raise

    def _launch(self, command: list[str], attempt: int) -> None:
        self.manifest_path.unlink(missing_ok=True)  # only this run's devnet.json counts
        self.proc = spawn_logged(command, self.log_path, f"start #{attempt}", cwd=REPO_ROOT)

    def _wait_manifest(self, timeout: float) -> None:
        def written() -> bool:
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(
                    f"devnet exited with {code} during start-up\n{self.log_tail()}"
                )
            return self.manifest_path.exists()

        try:
            wait_for(written, timeout=timeout, what="devnet.json", interval=0.2)
        except AssertionError as exc:
            if "timed out" in str(exc):
                raise AssertionError(f"{exc}\n{self.log_tail()}") from None
            raise
        manifest = json.loads(self.manifest_path.read_text())
        self.nodes = [ClusterNode.from_manifest(entry) for entry in manifest["nodes"]]
        self.pids = [node.pid for node in self.nodes]

    def _lost_port_race(self) -> bool:
        """Did a node fail because another process took its port meanwhile?"""
        return "address already in use" in self.log_tail().lower()

    def _stop_supervisor(self) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.proc = None
        return int(proc.returncode)

    def stop(self) -> int | None:
        """Stop everything of this cluster; returns the supervisor's exit code (0 when it
        stopped its nodes cleanly on SIGTERM), None if it was not running."""
        code = self._stop_supervisor()
        for index in list(self._restarted):
            self._stop_restarted(index)
        # A supervisor killed hard leaves its nodes behind: never let them outlive the test.
        for node, pid in zip(self.nodes, self.pids, strict=True):
            if pid_alive(pid) and _runs_home(pid, node.home):
                os.kill(pid, signal.SIGKILL)
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        return code

    # ------------------------------------------------------------------ node processes

    def alive(self, i: int) -> bool:
        return bool(self.pids) and pid_alive(self.pids[i])

    def kill(self, i: int, sig: int = signal.SIGKILL, timeout: float = STOP_TIMEOUT_S) -> None:
        """Send `sig` to node i and wait until its process is gone."""
        restarted = self._restarted.get(i)
        os.kill(self.pids[i], sig)
        if restarted is not None:
            restarted.wait(timeout=timeout)
            del self._restarted[i]
            return
        wait_for(
            lambda: not pid_alive(self.pids[i]),
            timeout=timeout,
            what=f"{self.nodes[i].name} (pid {self.pids[i]}) to exit on signal {sig}",
        )

    def node_command(self, i: int) -> list[str]:
        home = str(self.nodes[i].home)
        return [str(cybermiles_executable()), "node", "start", "--home", home, *self.node_args]

    def restart(
        self,
        i: int,
        timeout: float = NODE_START_TIMEOUT_S,
        *,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> subprocess.Popen[bytes]:
        """Start node i again (`cybermiles node start --home …`) with `env` added to its
        environment, and (unless `wait` is False) wait for its /health."""
        node = self.nodes[i]
        assert not self.alive(i), f"{node.name} is still running (pid {self.pids[i]})"
        return self._spawn(i, "cluster restart", timeout, env=env, wait=wait)

    def _spawn(
        self,
        i: int,
        header: str,
        timeout: float,
        *,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> subprocess.Popen[bytes]:
        node = self.nodes[i]
        proc = spawn_logged(
            self.node_command(i), node.log_path, header, cwd=REPO_ROOT, extra_env=env
        )
        self._restarted[i] = proc
        self.pids[i] = proc.pid
        if not wait:
            return proc

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{node.name} exited with {proc.returncode} on start\n"
                    f"{_log_tail(node.log_path, LOG_TAIL_LINES)}"
                )
            return self.health(i)

        wait_for(healthy, timeout=timeout, what=f"{node.name} /health after start", interval=0.2)
        return proc

    def join(self, home: Path, timeout: float = NODE_START_TIMEOUT_S) -> int:
        """A new node joins the running devnet and is started; returns its index.

        As an operator does it: `cybermiles init --home HOME --genesis <the devnet's genesis>`
        (new node and validator keys), config.toml with free ports of its own and every devnet
        node as a persistent peer, then `cybermiles node start --home HOME`. Its validator key
        is not in the genesis: it follows the chain until staking elects it.
        """
        assert self.nodes, "the cluster is not started"
        genesis = self.nodes[0].home / "config" / "genesis.json"
        init = subprocess.run(
            [str(cybermiles_executable()), "init", "--home", str(home), "--genesis", str(genesis)],
            capture_output=True, text=True, check=False, cwd=REPO_ROOT,
        )  # fmt: skip
        assert init.returncode == 0, init.stderr
        layout = HomeLayout(home)
        config = tomllib.loads(layout.config_file.read_text())
        rpc, p2p, status, metrics = (free_port() for _ in range(4))
        config["rpc"]["port"] = rpc
        config["p2p"]["listen_port"] = p2p
        config["p2p"]["persistent_peers"] = [node.p2p_address for node in self.nodes]
        config["status"]["port"] = status
        config["metrics"]["port"] = metrics
        layout.config_file.write_text(tomli_w.dumps(config))
        node = ClusterNode(
            name=f"joined{len(self.nodes)}",
            home=home,
            pid=0,  # never the supervisor's child: the live pid is in `pids`
            rpc_url=f"http://127.0.0.1:{rpc}",
            ws_url=f"ws://127.0.0.1:{rpc}",
            status_url=f"http://127.0.0.1:{status}",
            metrics_url=f"http://127.0.0.1:{metrics}/metrics",
            p2p_address=f"{read_key(layout.node_key_file).node_id}@127.0.0.1:{p2p}",
            validator_address=read_key(layout.validator_key_file).node_id,
        )
        index = len(self.nodes)
        self.nodes.append(node)
        self.pids.append(0)
        self._spawn(index, "cluster join", timeout)
        return index

    def _stop_restarted(self, i: int) -> None:
        proc = self._restarted.pop(i)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ------------------------------------------------------------------ clients

    def _get(self, url: str) -> requests.Response:
        return self._session.get(url, timeout=HTTP_TIMEOUT_S)

    def health(self, i: int) -> bool:
        try:
            return self._get(f"{self.nodes[i].status_url}/health").status_code == 200
        except requests.RequestException:
            return False

    def status(self, i: int) -> dict[str, Any]:
        """The `result` of GET /status (node_info, sync_info, validator_info)."""
        return self.status_get(i, "/status")

    def status_get(self, i: int, path: str) -> dict[str, Any]:
        """The `result` of GET `path` (e.g. "/commit?height=5") on node i's status endpoint."""
        answer = self._get(f"{self.nodes[i].status_url}{path}").json()
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    def metrics(self, i: int) -> str:
        response = self._get(self.nodes[i].metrics_url)
        assert response.status_code == 200, response.text
        return response.text

    def web3(self, i: int) -> Web3:
        w3 = Web3(HTTPProvider(self.nodes[i].rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
        if self.validator is not None:
            install_conformance_check(w3, self.validator)
        return w3

    def rpc(
        self, i: int, method: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """One raw JSON-RPC call to node i; the whole response (spec-checked when the cluster
        has a validator)."""
        payload: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": method,
            "params": params or [],
        }
        response = self._session.post(self.nodes[i].rpc_url, json=payload, timeout=RPC_TIMEOUT_S)
        answer: dict[str, Any] = response.json()
        if self.validator is not None:
            check_raw_response(method, answer, self.validator)
        return answer

    def height(self, i: int) -> int:
        """Node i's head block number (eth_blockNumber)."""
        answer = self.rpc(i, "eth_blockNumber")
        assert "result" in answer, answer
        return int(answer["result"], 16)

    def wait_height(self, i: int, height: int, timeout: float = 60.0) -> int:
        """Until node i's head is at least `height` (connection errors are retried); returns it."""

        def reached() -> tuple[int] | None:
            try:
                current = self.height(i)
            except (requests.RequestException, ValueError):
                return None
            # A tuple: wait_for wants something truthy, and height 0 is a valid answer.
            return (current,) if current >= height else None

        what = f"node{i} at height {height}"
        return wait_for(reached, timeout=timeout, what=what, interval=0.1)[0]

    # ------------------------------------------------------------------ reports

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The tails of the supervisor's log and of every node's log."""
        paths = (
            [self.log_path]
            + [self.home / f"node{i}" / "node.log" for i in range(self.validators)]
            + [node.log_path for node in self.nodes[self.validators :]]
        )
        return "\n".join(_log_tail(path, lines) for path in paths)
