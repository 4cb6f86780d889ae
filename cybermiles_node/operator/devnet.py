"""Node homes and the multi-validator devnet (`cybermiles devnet --validators N`).

`write_home` writes one node home (keys, config, genesis); `cybermiles init` and both devnet
kinds make their homes with it.

A multi-validator devnet lives in one directory:

```
HOME/node0 … HOME/node{N-1}   full node homes: own node key and validator key, the SAME genesis
                               (validator i owned by dev account i), config.toml with BFT
                               consensus, the dev accounts unlocked, and every other node as a
                               persistent peer
HOME/node{i}/node.log         that node's stdout and stderr (appended across runs)
HOME/devnet.json              written once every node is healthy: chain id, and per node its pid,
                               URLs, P2P address and validator address
HOME/.cybermiles-devnet       marks HOME as a devnet home, HOME/node{i}/.cybermiles-devnet as a
                               node home of one (cybermiles_node.operator.devnet_home: what
                               `devnet` may take and `--reset` may delete)
```
Node i listens on RPC port `rpc + i` and on `p2p + 10 i`, `status + 10 i`, `metrics + 10 i`
(a stride of 10 leaves room between neighbours). `prepare_devnet` creates the homes on the first
run and rewrites their configs from the options on later runs (the chain and keys are kept).
Chain parameters given with `--param` (`DevnetOptions.params`) go into a new devnet's genesis; a
later run that names a parameter with another value than the genesis holds is refused
(`check_params`): the genesis is fixed once the chain exists.

`DevnetOptions.preset = "travis"` (`--preset travis`) makes the Travis-compatibility devnet of
cybermiles_node.operator.travis_preset: its genesis, a keystore in every node home
(HOME/node{i}/keystore, HOME/node{i}/config/password.txt) and `[accounts] unlock` in every
config. A devnet keeps what it was made as: a later run with or without the preset must say
the same (`check_preset`), and `block_time` (the preset's commit timeout, in genesis) must match.

`run_devnet` is the supervisor: it starts one `python -m cybermiles_node node start` process per
node, waits until each answers GET /health on its status port, writes devnet.json, and then keeps
watching. A node that dies is reported once, with the last line it logged when it exited on its
own (e.g. `halted at block H: upgrade needed: …` at a governance halt), and left down
(developers kill nodes on purpose to test faults; they restart them with `cybermiles node start
--home HOME/node{i}`, adding `--program-version` after a halt). `--program-version` of the
devnet is passed to every node. SIGINT or SIGTERM stops every node: SIGTERM, up to 15 s of
grace, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from cybermiles_node.errors import DevnetError
from cybermiles_node.operator import travis_preset
from cybermiles_node.operator.choices import MAX_VALIDATORS
from cybermiles_node.operator.config import (
    DEVNET_CORS_ORIGINS,
    AccountsConfig,
    ConfigError,
    ConsensusConfig,
    DevnetConfig,
    HomeLayout,
    LogConfig,
    MetricsConfig,
    NodeConfig,
    P2PConfig,
    RpcConfig,
    StatusConfig,
    check_config,
    write_config,
)
from cybermiles_node.operator.devnet_home import MANIFEST_NAME, mark, node_home
from cybermiles_node.operator.keys import Ed25519Key, read_key, write_key
from genesis import (
    EvmProfile,
    Genesis,
    ParamValue,
    devnet_genesis,
    dump_genesis,
    load_genesis,
    param_to_json,
)

__all__ = [
    "DEFAULT_CHAIN_ID",
    "MANIFEST_NAME",
    "MAX_VALIDATORS",
    "DevnetError",
    "DevnetNode",
    "DevnetOptions",
    "Ports",
    "ParamOverrides",
    "check_chain_id",
    "check_params",
    "check_preset",
    "check_profile",
    "devnet_manifest",
    "existing_validators",
    "node_home",
    "prepare_devnet",
    "run_devnet",
    "spawn_logged",
    "write_home",
    "write_manifest",
]

DEFAULT_CHAIN_ID: Final = 1234
PORT_STRIDE: Final = 10
LOCALHOST: Final = "127.0.0.1"
START_TIMEOUT_S: Final = 120.0  # 20 nodes importing py-evm at once on 2 cores take a while
STOP_GRACE_S: Final = 15.0
POLL_S: Final = 0.2
LOG_TAIL_LINES: Final = 30


# ---------------------------------------------------------------------------- node homes


def write_home(
    home: Path,
    *,
    node_key: Ed25519Key,
    validator_key: Ed25519Key,
    genesis: Genesis,
    config: NodeConfig,
) -> HomeLayout:
    """Write keys, config and genesis into a new home (refuses to overwrite a genesis)."""
    layout = HomeLayout(home)
    if layout.genesis_file.exists():
        raise DevnetError(f"{layout.genesis_file} exists; this home is initialised")
    write_key(layout.node_key_file, node_key)
    write_key(layout.validator_key_file, validator_key)
    write_config(layout.config_file, config)
    dump_genesis(genesis, layout.genesis_file)
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    return layout


def check_profile(genesis: Genesis, evm_profile: str, home: Path) -> None:
    """An existing devnet keeps its EVM profile (it is fixed in genesis)."""
    if genesis.evm_profile != evm_profile and evm_profile != "cvm":
        raise DevnetError(
            f"{home} holds a {genesis.evm_profile} chain; use --reset for --evm-profile "
            f"{evm_profile}"
        )


def check_chain_id(genesis: Genesis, chain_id: int, home: Path) -> None:
    """An existing devnet continues its chain; only an explicit other chain id is refused
    (the default id means "whatever the home holds")."""
    if genesis.chain_id != chain_id and chain_id != DEFAULT_CHAIN_ID:
        raise DevnetError(
            f"{home} holds chain {genesis.chain_id}; use --reset for chain {chain_id}"
        )


ParamOverrides = tuple[tuple[str, ParamValue], ...]  # (name, typed value), as given


def check_preset(genesis: Genesis, options: DevnetOptions, home: Path) -> None:
    """An existing devnet stays what it was made as: with the preset or without, and the
    preset's block time (genesis `timeouts.commit_ms`) when one is given."""
    made_with_preset = travis_preset.is_preset_genesis(genesis)
    if options.preset is None and made_with_preset:
        raise DevnetError(
            f"{home} holds a --preset {travis_preset.TRAVIS} devnet; add --preset "
            f"{travis_preset.TRAVIS} (or use --reset)"
        )
    if options.preset is not None and not made_with_preset:
        raise DevnetError(
            f"{home} holds a devnet made without --preset {options.preset}; use --reset (or "
            "another --home) for a preset devnet"
        )
    if options.block_time is not None:
        wanted = travis_preset.commit_ms(options.block_time)
        if genesis.timeouts.commit_ms != wanted:
            raise DevnetError(
                f"{home} holds a chain with a block time of "
                f"{genesis.timeouts.commit_ms / 1000:g} s; the genesis cannot change: use "
                f"--reset for --block-time {options.block_time:g}"
            )


def check_params(genesis: Genesis, overrides: ParamOverrides, home: Path) -> None:
    """An existing devnet keeps the parameters of its genesis: a parameter named with another
    value than the genesis holds is refused (only the named ones are compared)."""
    for name, value in overrides:
        held = genesis.params.get(name)
        if held != value:
            raise DevnetError(
                f"{home} holds a chain with {name}={param_to_json(name, held)}; the genesis "
                f"cannot change: use --reset for {name}={param_to_json(name, value)}"
            )


# ---------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Ports:
    """The ports of node 0; node i's are derived by `for_node`."""

    rpc: int = 8545
    p2p: int = 26656
    status: int = 26657
    metrics: int = 26660

    def for_node(self, index: int) -> Ports:
        # RPC ports are consecutive (what web3 users type); the others keep a stride of 10.
        return Ports(
            rpc=self.rpc + index,
            p2p=self.p2p + PORT_STRIDE * index,
            status=self.status + PORT_STRIDE * index,
            metrics=self.metrics + PORT_STRIDE * index,
        )


@dataclass(frozen=True)
class DevnetOptions:
    """What the command line says about a multi-validator devnet."""

    validators: int
    chain_id: int = DEFAULT_CHAIN_ID
    accounts: int = 10
    rpc_host: str = LOCALHOST
    ports: Ports = Ports()
    log: LogConfig = LogConfig()
    evm_profile: EvmProfile = "cvm"
    params: ParamOverrides = ()  # chain parameters of a new devnet's genesis
    program_version: str | None = None  # `--program-version` of every node (None: the default)
    preset: str | None = None  # "travis": travis_preset (module docstring)
    # The preset's block time in seconds (None: the preset's default for a new devnet, the
    # genesis's for an existing one).
    block_time: float | None = None
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)  # of this machine

    @property
    def recovery_workers(self) -> int:
        """Each node's sender-recovery processes: the node default when every node has a core
        to spare for it, else none. A worker only pays off on a core nothing else wants: 4
        validators on 2 cores, each with one, spent more CPU per transaction (shipping raws and
        senders between processes, a waiting thread per chunk) and committed less (DECISIONS
        "Sender recovery workers in multi-validator devnets")."""
        return NodeConfig.recovery_workers if 2 * self.validators <= self.cores else 0

    @property
    def funded_accounts(self) -> int:
        """The mnemonic accounts funded and printed. Without the preset dev account i owns
        validator i, so there are at least as many accounts as validators."""
        if self.preset is not None:
            return self.accounts
        return max(self.accounts, self.validators)


def _url_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    return LOCALHOST if host in ("0.0.0.0", "::", "") else host


@dataclass(frozen=True)
class DevnetNode:
    """One node of a devnet: where it lives and how to reach it."""

    index: int
    layout: HomeLayout
    config: NodeConfig
    node_id: str
    validator_address: str  # hex of sha256(validator public key)[:20], as Tendermint
    program_version: str | None = None  # what it declares (`node start --program-version`)

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def log_file(self) -> Path:
        return self.layout.home / "node.log"

    @property
    def rpc_url(self) -> str:
        return f"http://{_url_host(self.config.rpc.host)}:{self.config.rpc.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{_url_host(self.config.rpc.host)}:{self.config.rpc.port}"

    @property
    def status_url(self) -> str:
        return f"http://{_url_host(self.config.status.host)}:{self.config.status.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{_url_host(self.config.metrics.host)}:{self.config.metrics.port}/metrics"

    @property
    def p2p_address(self) -> str:
        return (
            f"{self.node_id}@{_url_host(self.config.p2p.listen_host)}:{self.config.p2p.listen_port}"
        )


def existing_validators(home: Path) -> int:
    """How many node homes (node0, node1, … without gaps) HOME holds."""
    count = 0
    while HomeLayout(node_home(home, count)).genesis_file.exists():
        count += 1
    return count


def node_config(index: int, node_ids: Sequence[str], options: DevnetOptions) -> NodeConfig:
    """The config.toml of node `index`: its ports, every other node as a persistent peer."""
    ports = options.ports.for_node(index)
    peers = tuple(
        f"{node_id}@{LOCALHOST}:{options.ports.for_node(other).p2p}"
        for other, node_id in enumerate(node_ids)
        if other != index
    )
    accounts = (
        travis_preset.accounts_config(options.validators)
        if options.preset is not None
        else AccountsConfig()
    )
    return NodeConfig(
        moniker=f"node{index}",
        rpc=RpcConfig(
            host=options.rpc_host,
            port=ports.rpc,
            cors_origins=DEVNET_CORS_ORIGINS,
            pending_nonce_compat=options.preset is not None,  # SPEC §8: on in the Travis preset
        ),
        accounts=accounts,
        devnet=DevnetConfig(enabled=True, accounts=options.funded_accounts),
        p2p=P2PConfig(listen_host=LOCALHOST, listen_port=ports.p2p, persistent_peers=peers),
        consensus=ConsensusConfig(engine="bft"),
        status=StatusConfig(host=LOCALHOST, port=ports.status),
        metrics=MetricsConfig(host=LOCALHOST, port=ports.metrics),
        # Block and transaction lines in node0's log only: the other logs would repeat them
        # line for line, and each validator paid ~7 % of its CPU for them under load.
        log=options.log if index == 0 else replace(options.log, activity=False),
        recovery_workers=options.recovery_workers,
    )


# ---------------------------------------------------------------------------- homes of a devnet


def prepare_devnet(home: Path, options: DevnetOptions) -> list[DevnetNode]:
    """Create the node homes of a new devnet, or reuse those of HOME with configs rewritten
    from `options`. Raises DevnetError when HOME holds something else."""
    keys, new = _devnet_keys(home, options)
    node_ids = [node_key.node_id for node_key, _ in keys]
    nodes = [
        # The validator address is derived like a node id: sha256(public key)[:20].
        DevnetNode(
            index,
            HomeLayout(node_home(home, index)),
            node_config(index, node_ids, options),
            node_key.node_id,
            validator_key.node_id,
            options.program_version,
        )
        for index, (node_key, validator_key) in enumerate(keys)
    ]
    for node in nodes:
        _check_node_config(node)
    if new:
        _write_new_homes(nodes, keys, options)
    else:
        genesis = load_genesis(nodes[0].layout.genesis_file)
        check_preset(genesis, options, home)
        check_profile(genesis, options.evm_profile, home)
        check_params(genesis, options.params, home)
        for node in nodes:
            write_config(node.layout.config_file, node.config)
    return nodes


def _check_node_config(node: DevnetNode) -> None:
    """Refuse before anything is written: e.g. ports derived as base + 10 i can leave 0..65535
    (a peer's port then shows in the persistent_peers of the node before it)."""
    try:
        check_config(node.config)
    except ConfigError as exc:
        raise DevnetError(
            f"{node.name}: {exc} (node i uses the base ports + 10 i, RPC + i); choose lower "
            "base ports or fewer validators"
        ) from None


def _devnet_keys(home: Path, options: DevnetOptions) -> tuple[list[KeyPair], bool]:
    """The keys of HOME's nodes (new ones for a new devnet) and whether they are new."""
    if not 1 <= options.validators <= MAX_VALIDATORS:
        raise DevnetError(f"--validators must be 1..{MAX_VALIDATORS}, got {options.validators}")
    if HomeLayout(home).genesis_file.exists():
        raise DevnetError(
            f"{home} holds a single-node devnet; use --reset or another --home for "
            f"{options.validators} validators"
        )
    existing = existing_validators(home)
    if existing == 0:
        count = options.validators
        return [(Ed25519Key.generate(), Ed25519Key.generate()) for _ in range(count)], True
    if existing != options.validators:
        raise DevnetError(
            f"{home} holds a {existing}-validator devnet; use --reset to make a "
            f"{options.validators}-validator one (or --validators {existing} to continue it)"
        )
    layouts = [HomeLayout(node_home(home, index)) for index in range(existing)]
    check_chain_id(load_genesis(layouts[0].genesis_file), options.chain_id, home)
    return [_read_keys(layout) for layout in layouts], False


KeyPair = tuple[Ed25519Key, Ed25519Key]  # (node key, validator key)


def _read_keys(layout: HomeLayout) -> KeyPair:
    return read_key(layout.node_key_file), read_key(layout.validator_key_file)


def _write_new_homes(
    nodes: Sequence[DevnetNode], keys: Sequence[KeyPair], options: DevnetOptions
) -> None:
    """One genesis, written into every home: validator i is node i's key, owned by account i
    (by preset account [i] with the preset, which also writes each home's keystore)."""
    genesis = _new_genesis([validator_key.public_key for _, validator_key in keys], options)
    for node, (node_key, validator_key) in zip(nodes, keys, strict=True):
        mark(node.layout.home, "devnet-node")
        write_home(
            node.layout.home,
            node_key=node_key,
            validator_key=validator_key,
            genesis=genesis,
            config=node.config,
        )
        if options.preset is not None:
            travis_preset.write_preset_keystore(
                node.layout.home, options.validators, travis_preset.genesis_datetime(genesis)
            )


def _new_genesis(pub_keys: list[bytes], options: DevnetOptions) -> Genesis:
    if options.preset is not None:
        block_time = options.block_time
        return travis_preset.preset_genesis(
            validator_pub_keys=pub_keys,
            genesis_time=int(time.time()),
            mnemonic_accounts=options.funded_accounts,
            block_time_s=travis_preset.DEFAULT_BLOCK_TIME_S if block_time is None else block_time,
            params=dict(options.params),
        )
    return devnet_genesis(
        validator_pub_keys=pub_keys,
        genesis_time=int(time.time()),
        chain_id=options.chain_id,
        accounts=options.funded_accounts,
        evm_profile=options.evm_profile,
        params=dict(options.params),
    )


# ---------------------------------------------------------------------------- devnet.json


def devnet_manifest(
    chain_id: int, nodes: Sequence[DevnetNode], pids: Sequence[int]
) -> dict[str, Any]:
    """The content of devnet.json: how tools find each node of a running devnet."""
    return {
        "chain_id": chain_id,
        "validators": len(nodes),
        "nodes": [
            {
                "name": node.name,
                "home": str(node.layout.home.resolve()),
                "pid": pid,
                "rpc_url": node.rpc_url,
                "ws_url": node.ws_url,
                "p2p_address": node.p2p_address,
                "status_url": node.status_url,
                "metrics_url": node.metrics_url,
                "validator_address": node.validator_address,
            }
            for node, pid in zip(nodes, pids, strict=True)
        ],
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write devnet.json atomically: a reader sees the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- supervisor


def node_command(node: DevnetNode) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "cybermiles_node",
        "node",
        "start",
        "--home",
        str(node.layout.home),
    ]
    if node.program_version is not None:
        command += ["--program-version", node.program_version]
    return command


def last_log_line(path: Path) -> str:
    """The last non-blank line of a log ("" if none): what a node said last before it exited
    (its `error:` or `halted at block …` line)."""
    lines = [line for line in log_tail(path, 5).splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def spawn_logged(
    command: Sequence[str],
    log_file: Path,
    header: str,
    *,
    cwd: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` with stdout and stderr appended to `log_file` after a `===== header`
    line, unbuffered (the log shows output as it happens), in its own process group: a Ctrl-C
    in the terminal reaches only the supervisor, which then stops the nodes in order instead
    of seeing them all "die on their own"."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))
    with log_file.open("ab") as log:
        log.write(f"\n===== {header}: {' '.join(command)}\n".encode())
        log.flush()
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            process_group=0,
        )


def _healthy(node: DevnetNode) -> bool:
    # No proxy: an http_proxy in the environment must not intercept 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{node.status_url}/health", timeout=1.0) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


class _Supervisor:
    """The node processes of one devnet run, and the flag the stop signals set."""

    def __init__(self, nodes: Sequence[DevnetNode], say: Callable[[str], None]) -> None:
        self.nodes = list(nodes)
        self.say = say
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = False

    def on_signal(self, signum: int, frame: object) -> None:
        # Only a flag: the loops poll it, so nothing runs inside the signal handler.
        self.stopping = True

    def start(self) -> None:
        for node in self.nodes:
            started = spawn_logged(node_command(node), node.log_file, "cybermiles devnet")
            self.procs.append(started)  # one by one: stop_all sees all started so far

    def wait_healthy(self, timeout: float) -> None:
        """Until every node answers /health; DevnetError if one exits or time runs out."""
        deadline = time.monotonic() + timeout
        waiting = list(range(len(self.nodes)))
        while waiting and not self.stopping:
            for index in list(waiting):
                code = self.procs[index].poll()
                if code is not None:
                    raise self._failure(index, f"exited with {code} during start-up")
                if _healthy(self.nodes[index]):
                    waiting.remove(index)
            if waiting and time.monotonic() >= deadline:
                raise self._failure(waiting[0], f"did not answer /health within {timeout:.0f} s")
            time.sleep(POLL_S)

    def _failure(self, index: int, what: str) -> DevnetError:
        node = self.nodes[index]
        return DevnetError(
            f"{node.name} {what}; last lines of {node.log_file}:\n{log_tail(node.log_file)}"
        )

    def watch(self) -> None:
        """Report each node that exits on its own, once, until a stop signal."""
        reported: set[int] = set()
        while not self.stopping:
            for index, proc in enumerate(self.procs):
                code = proc.poll()
                if code is not None and index not in reported:
                    reported.add(index)
                    node = self.nodes[index]
                    # An exit of its own (not a signal) ends with a line saying why.
                    said = last_log_line(node.log_file) if code > 0 else ""
                    self.say(
                        f"{node.name} exited with {code}{f' ({said})' if said else ''}; "
                        f"restart it with: cybermiles node start --home {node.layout.home}"
                    )
            time.sleep(POLL_S)

    def stop_all(self, grace: float) -> None:
        """SIGTERM every node still running, wait up to `grace` s, then SIGKILL the rest."""
        running = [proc for proc in self.procs if proc.poll() is None]
        for proc in running:
            proc.terminate()
        deadline = time.monotonic() + grace
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_devnet(
    home: Path,
    chain_id: int,
    nodes: Sequence[DevnetNode],
    *,
    on_ready: Callable[[dict[str, Any]], None],
    say: Callable[[str], None],
    start_timeout: float = START_TIMEOUT_S,
) -> None:
    """Start the nodes, write devnet.json once all are healthy, call `on_ready(manifest)`, and
    supervise until SIGINT/SIGTERM; every node is stopped on the way out, also on failure."""
    supervisor = _Supervisor(nodes, say)
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, supervisor.on_signal) for signum in stop_signals}
    try:
        supervisor.start()
        supervisor.wait_healthy(start_timeout)
        if supervisor.stopping:
            return
        manifest = devnet_manifest(chain_id, nodes, [proc.pid for proc in supervisor.procs])
        write_manifest(home / MANIFEST_NAME, manifest)
        on_ready(manifest)
        supervisor.watch()
    finally:
        supervisor.stop_all(STOP_GRACE_S)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
