"""Node configuration: `HOME/config/config.toml` and the layout of a node's home directory.

```
HOME/config/config.toml               this file's settings
HOME/config/genesis.json              the chain's genesis (a node joins a network by taking it)
HOME/config/node_key.json             ed25519 node identity (p2p)
HOME/config/priv_validator_key.json   ed25519 consensus key
HOME/data/chain/                      LevelDB: blocks, state, indices
HOME/keystore/                        geth v3 key files of the node's accounts (accounts/)
```
Unknown keys in config.toml are errors, so a typo never silently falls back to a default, and
every value is range-checked at load against `CONFIG_RULES` (one line per setting), so a node
never starts with a size of -1 or an empty host that would bind every interface.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, Protocol

import tomli_w

from cybermiles_node.errors import CyberMilesError

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("text", "json")
CONSENSUS_ENGINES: Final = ("bft", "automine")
# What a devnet's web3_clientVersion may pose as, for tools that check it (rpc/dev_chain.py).
CLIENT_VERSION_COMPATS: Final = ("off", "anvil", "hardhat")


class ConfigError(CyberMilesError):
    """config.toml is unreadable or holds an unknown or mistyped setting."""


# Browser pages served from the developer's own machine, on any port (dev servers pick ports
# freely). Devnet homes allow these; any other home allows no cross-origin access by default.
DEVNET_CORS_ORIGINS: tuple[str, ...] = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
)


@dataclass(frozen=True)
class RpcConfig:
    """The JSON-RPC server. Every limit is documented in docs/LIMITS.md."""

    host: str = "127.0.0.1"
    port: int = 8545
    max_body_bytes: int = 5 * 2**20
    max_batch: int = 1000
    # Origins whose web pages may call the node (exact, "scheme://host:*" or "*"); none by default.
    cors_origins: tuple[str, ...] = ()
    max_connections: int = 512  # HTTP + WebSocket connections open at once (stops accepting)
    read_timeout: float = 30.0  # seconds for a request body to arrive after its headers
    idle_timeout: float = 30.0  # seconds a connection may sit without a request in progress
    max_response_bytes: int = 25 * 2**20  # refused (-32005) before building when estimated above
    batch_max_cost: int = 1000  # cost units of one batch (per-method weights, rpc/budget.py)
    batch_time_budget: float = 5.0  # seconds one batch may compute before its tail is refused
    ws_queue_bytes: int = 4 * 2**20  # bytes waiting for one slow WebSocket reader, then 1008
    max_subscriptions: int = 10_000  # eth_subscribe subscriptions of all connections
    max_subscriptions_per_connection: int = 1000
    max_filters: int = 1000  # eth_newFilter & co. of all clients
    max_filters_per_client: int = 100  # per WebSocket connection, or per HTTP client address
    gas_cap: int = 50_000_000  # most gas one eth_call / eth_estimateGas may use (geth's default)
    evm_timeout: float = 5.0  # seconds of wall-clock time one eth_call / eth_estimateGas may run
    # personal_unlockAccount is refused when `host` is not a loopback address, unless this is
    # true (geth's --allow-insecure-unlock): an unlocked key signs for anyone who can reach it.
    allow_insecure_unlock: bool = False
    # The node's accounts over RPC (SPEC §8): eth_accounts from the keystore, personal_*,
    # eth_sign*, eth_sendTransaction, eth_signTransaction and the cmt_* tx methods. Off unless
    # set; a devnet always has them (`node_accounts_enabled`).
    node_accounts: bool = False
    # Travis compatibility (SPEC §8): eth_getTransactionCount answers the pending nonce whatever
    # the block tag, as web3-cmt.js clients expect (they ask for "latest" and send at once).
    pending_nonce_compat: bool = False
    # The built-in explorer (web pages at /explorer/ on the RPC port, reading through this node's
    # JSON-RPC): off unless set; a devnet always serves it (`explorer_enabled`).
    explorer: bool = False
    # Traces (debug_traceTransaction & co., trace_transaction; rpc/debug.py): expensive, so off
    # unless set; a devnet always serves them (`debug_api_enabled`).
    debug_api: bool = False


def is_loopback_host(host: str) -> bool:
    """True for "localhost" and loopback IP addresses (127.0.0.0/8, ::1); False for anything
    else, names included (they may resolve anywhere)."""
    text = host.strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def node_accounts_enabled(config: NodeConfig) -> bool:
    """Does the RPC serve the node's accounts and node-side signing: when the operator enabled
    them, and always on a devnet (SPEC §8: "devnets enable them")."""
    return config.rpc.node_accounts or config.devnet.enabled


def explorer_enabled(config: NodeConfig) -> bool:
    """Does the RPC port serve the explorer's pages: always on a devnet, elsewhere when set."""
    return config.rpc.explorer or config.devnet.enabled


def debug_api_enabled(config: NodeConfig) -> bool:
    """Does the RPC serve traces (debug_trace*, trace_transaction): when the operator enabled
    them, and always on a devnet."""
    return config.rpc.debug_api or config.devnet.enabled


def unlock_allowed(rpc: RpcConfig) -> bool:
    """May personal_unlockAccount run: on a loopback-only server, or when the operator said so."""
    return rpc.allow_insecure_unlock or is_loopback_host(rpc.host)


@dataclass(frozen=True)
class AccountsConfig:
    """Keystore accounts unlocked when the node starts, until it stops (geth's `--unlock` and
    `--password`): every eth_sendTransaction, personal_sign or cmt_* call from them is signed
    without a personal_unlockAccount first.

    `unlock` lists addresses ("0x" + 40 hex) of key files in HOME/keystore. `password_file` is
    read as geth reads `--password`: line i is the passphrase of `unlock[i]`, or one line for
    all; a relative path is relative to HOME. The file must not be readable by other users (as
    key files). A node refuses to start, in one line naming the account, when an account is not
    in the keystore or its passphrase does not open it, and when `rpc.host` is not a loopback
    address without `rpc.allow_insecure_unlock` (the same rule as personal_unlockAccount).
    """

    unlock: tuple[str, ...] = ()
    password_file: str = ""


@dataclass(frozen=True)
class DevnetConfig:
    enabled: bool = False
    block_time: float = 0.0  # seconds between blocks; 0 = automine
    batch_window_ms: float = 5.0  # automine waits this long to batch arriving transactions
    accounts: int = 10  # mnemonic accounts whose keys the devnet prints
    # "anvil" / "hardhat": web3_clientVersion starts with "anvil" / "HardhatNetwork", so
    # hardhat-network-helpers accept the devnet (README "Dev chain control").
    client_version_compat: str = "off"


@dataclass(frozen=True)
class MempoolSettings:
    max_txs: int = 16384
    max_bytes: int = 64 * 2**20
    max_per_sender: int = 1024
    max_nonce_gap: int = 64


@dataclass(frozen=True)
class P2PConfig:
    """The peer-to-peer network (`p2p/`). Peers are written `node_id@host:port`."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 26656
    external_address: str = ""  # host:port advertised to peers; the listen address when empty
    persistent_peers: tuple[str, ...] = ()  # always kept connected, redialled with backoff
    seeds: tuple[str, ...] = ()  # asked for addresses at start, then dropped
    seed_mode: bool = False  # crawl and hand out addresses, no consensus traffic
    pex: bool = True  # peer exchange
    max_inbound: int = 40
    max_outbound: int = 10
    max_frame_bytes: int = 4 * 2**20
    send_queue_size: int = 1024  # messages per peer and channel before the oldest are refused
    ban_seconds: int = 600


@dataclass(frozen=True)
class ConsensusConfig:
    """How blocks are decided. `bft`: Tendermint rounds among the genesis validators (this node
    signs when its priv_validator key is in the set). `automine`: the devnet producer
    (a single node; blocks on arrival or every `devnet.block_time`)."""

    engine: str = "bft"  # bft | automine
    skip_timeout_commit: bool = False  # never wait timeout_commit (Tendermint's option)
    # End timeout_commit early when transactions are waiting: once every precommit is in, or
    # early_start_grace_ms after the commit (an idle chain still waits it out); false =
    # Tendermint's timing.
    early_height_start: bool = True
    early_start_grace_ms: int = 100
    max_clock_drift_ms: int = 10_000  # proposals stamped further in the future get nil prevotes


@dataclass(frozen=True)
class StatusConfig:
    """The read-only Tendermint-style endpoint (/status, /validators, /block, ...)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 26657


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics on their own port (GET /metrics)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 26660


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"  # debug | info | warning | error
    format: str = "text"  # text | json (one JSON object per line)
    # One line per committed block and per transaction in it (operator/activity.py), at info
    # whatever `level` says. Devnets write true (`--quiet` turns it off); nodes of real
    # networks default to false: a validator's consensus lines already say what it commits.
    activity: bool = False


@dataclass(frozen=True)
class NodeConfig:
    moniker: str = "cybermiles-node"
    sync_writes: bool = False  # fsync every block; kill -9 is safe either way
    # Processes recovering the senders of batch tails (0: all in the node's own process).
    # One: the node's process (event loop + block thread, one GIL) then spends ~18 % less CPU
    # per transaction (DECISIONS "Blocks off the event loop").
    recovery_workers: int = 1
    rpc: RpcConfig = field(default_factory=RpcConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    devnet: DevnetConfig = field(default_factory=DevnetConfig)
    mempool: MempoolSettings = field(default_factory=MempoolSettings)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log: LogConfig = field(default_factory=LogConfig)


@dataclass(frozen=True)
class HomeLayout:
    home: Path

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def genesis_file(self) -> Path:
        return self.config_dir / "genesis.json"

    @property
    def node_key_file(self) -> Path:
        return self.config_dir / "node_key.json"

    @property
    def validator_key_file(self) -> Path:
        return self.config_dir / "priv_validator_key.json"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def chain_db(self) -> Path:
        return self.data_dir / "chain"

    @property
    def wal_file(self) -> Path:
        """The consensus write-ahead log."""
        return self.data_dir / "cs.wal"

    @property
    def validator_state_file(self) -> Path:
        """The private validator's last signed height/round/step (double-sign protection)."""
        return self.data_dir / "priv_validator_state.json"

    @property
    def address_book_file(self) -> Path:
        return self.data_dir / "addrbook.json"


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}{key}: unknown setting")
        default = getattr(cls(), key)
        if hasattr(default, "__dataclass_fields__"):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{key}: expected a table")
            kwargs[key] = _build(type(default), value, f"{where}{key}.")
            continue
        if isinstance(default, tuple):
            if not isinstance(value, list):
                raise ConfigError(f"{where}{key}: expected an array")
            value = tuple(value)
        elif isinstance(default, bool) != isinstance(value, bool) or not isinstance(
            value, (type(default), int) if isinstance(default, float) else type(default)
        ):
            raise ConfigError(f"{where}{key}: expected {type(default).__name__}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


# ---------------------------------------------------------------------------- range checks


class Rule(Protocol):
    """What one setting's value must be; `problem` says how a value breaks it (None: it does
    not), as the rest of a sentence that starts with the setting's key."""

    def problem(self, value: object) -> str | None: ...


def _got(value: object) -> str:
    return f"got {value!r}"


def _number(value: object) -> float:
    # _build has already checked the type against the default's, so this is a mistake in the
    # rule table (a numeric rule on a string setting), not an operator's error.
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"numeric rule applied to {value!r}")
    return value


@dataclass(frozen=True)
class Above:
    """Strictly above `bound` (sizes, timeouts: 0 would mean "nothing fits" or "never")."""

    bound: float

    def problem(self, value: object) -> str | None:
        return None if _number(value) > self.bound else f"must be > {self.bound:g}, {_got(value)}"


@dataclass(frozen=True)
class AtLeast:
    bound: float

    def problem(self, value: object) -> str | None:
        return None if _number(value) >= self.bound else f"must be >= {self.bound:g}, {_got(value)}"


@dataclass(frozen=True)
class Between:
    """Within [low, high], both included."""

    low: int
    high: int

    def problem(self, value: object) -> str | None:
        if self.low <= _number(value) <= self.high:
            return None
        return f"must be in {self.low}..{self.high}, {_got(value)}"


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]
    ignore_case: bool = False

    def problem(self, value: object) -> str | None:
        text = str(value).lower() if self.ignore_case else str(value)
        if text in self.choices:
            return None
        return f"must be one of {' | '.join(self.choices)}, {_got(value)}"


@dataclass(frozen=True)
class BindHost:
    """An address to listen on. Empty is refused: servers take it as every interface, which an
    operator who left the value blank did not mean; 0.0.0.0 says it on purpose."""

    def problem(self, value: object) -> str | None:
        if str(value).strip():
            return None
        return (
            'must not be empty (an empty host binds every interface; write "0.0.0.0" for '
            f"that), {_got(value)}"
        )


@dataclass(frozen=True)
class Parses:
    """A string (or each string of an array) that `parse` accepts; `form` shows the syntax."""

    parse: Callable[[str], object]
    form: str
    optional: bool = False  # an empty string means "not set"

    def problem(self, value: object) -> str | None:
        items = value if isinstance(value, tuple) else (value,)
        for index, item in enumerate(items):
            if self.optional and item == "":
                continue
            try:
                self.parse(str(item))
            except ValueError:
                where = f" (entry {index})" if isinstance(value, tuple) else ""
                return f"must be {self.form}{where}, got {item!r}"
        return None


# The parsers below are imported when a value is checked: importing this module must stay cheap
# (the CLI reads it before `--help`), and the genesis and p2p packages load much more.
def _account_address(text: str) -> bytes:
    """An address in `accounts.unlock` (ValueError otherwise; GenesisError is one)."""
    from genesis import parse_address

    return parse_address(text, "address")


def _peer_address(text: str) -> object:
    from p2p.netaddr import parse_address

    return parse_address(text)


def _host_port(text: str) -> object:
    from p2p.netaddr import parse_host_port

    return parse_host_port(text)


POSITIVE: Final = Above(0)
NON_NEGATIVE: Final = AtLeast(0)
PORT: Final = Between(0, 65535)  # 0: the OS picks a free port (every server reports the real one)
HOST: Final = BindHost()
PEERS: Final = Parses(_peer_address, "node_id@host:port (node id: 40 lowercase hex characters)")

# One line per range-checked setting. A new numeric setting needs its line here:
# tests/unit/test_config_checks.py fails for an int or float setting that has none.
CONFIG_RULES: Final[Mapping[str, Rule]] = {
    "recovery_workers": NON_NEGATIVE,
    "rpc.host": HOST,
    "rpc.port": PORT,
    "rpc.max_body_bytes": POSITIVE,
    "rpc.max_batch": POSITIVE,
    "rpc.gas_cap": POSITIVE,
    "rpc.evm_timeout": POSITIVE,
    "rpc.max_connections": POSITIVE,
    "rpc.read_timeout": POSITIVE,
    "rpc.idle_timeout": POSITIVE,
    "rpc.max_response_bytes": POSITIVE,
    "rpc.batch_max_cost": POSITIVE,
    "rpc.batch_time_budget": POSITIVE,
    "rpc.ws_queue_bytes": POSITIVE,
    "rpc.max_subscriptions": POSITIVE,
    "rpc.max_subscriptions_per_connection": POSITIVE,
    "rpc.max_filters": POSITIVE,
    "rpc.max_filters_per_client": POSITIVE,
    "accounts.unlock": Parses(_account_address, '"0x" + 40 hex digits (EIP-55 if mixed case)'),
    "devnet.block_time": NON_NEGATIVE,  # 0 = automine
    "devnet.batch_window_ms": NON_NEGATIVE,
    "devnet.accounts": Between(1, 1000),  # what `cybermiles devnet --accounts` accepts
    "devnet.client_version_compat": OneOf(CLIENT_VERSION_COMPATS),
    "mempool.max_txs": POSITIVE,
    "mempool.max_bytes": POSITIVE,
    "mempool.max_per_sender": POSITIVE,
    "mempool.max_nonce_gap": NON_NEGATIVE,  # 0 = only the next nonce of each sender
    "p2p.listen_host": HOST,
    "p2p.listen_port": PORT,
    "p2p.external_address": Parses(_host_port, "host:port", optional=True),
    "p2p.persistent_peers": PEERS,
    "p2p.seeds": PEERS,
    "p2p.max_inbound": NON_NEGATIVE,  # 0 = dial out only
    "p2p.max_outbound": NON_NEGATIVE,  # 0 = accept only
    "p2p.max_frame_bytes": POSITIVE,
    "p2p.send_queue_size": POSITIVE,
    "p2p.ban_seconds": NON_NEGATIVE,
    "consensus.engine": OneOf(CONSENSUS_ENGINES),
    "consensus.max_clock_drift_ms": POSITIVE,
    "consensus.early_start_grace_ms": NON_NEGATIVE,
    "status.host": HOST,
    "status.port": PORT,
    "metrics.host": HOST,
    "metrics.port": PORT,
    "log.level": OneOf(LOG_LEVELS, ignore_case=True),
    "log.format": OneOf(LOG_FORMATS),
}


def password_file_path(accounts: AccountsConfig, home: Path) -> Path:
    """Where `accounts.password_file` is: as written when absolute, else under HOME."""
    return home / accounts.password_file


def setting(config: NodeConfig, key: str) -> object:
    """The value of a dotted key ("rpc.port") in `config`."""
    value: object = config
    for name in key.split("."):
        value = getattr(value, name)
    return value


def check_config(config: NodeConfig, rules: Mapping[str, Rule] = CONFIG_RULES) -> None:
    """ConfigError naming the first setting (in table order) whose value breaks its rule."""
    for key, rule in rules.items():
        problem = rule.problem(setting(config, key))
        if problem is not None:
            raise ConfigError(f"{key} {problem}")


def load_config(path: Path) -> NodeConfig:
    """Read, type-check and range-check config.toml; every error names the file and the key."""
    try:
        values = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        config: NodeConfig = _build(NodeConfig, values, "")
        check_config(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


def write_config(path: Path, config: NodeConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(_plain(asdict(config))))


__all__ = [
    "CLIENT_VERSION_COMPATS",
    "CONFIG_RULES",
    "CONSENSUS_ENGINES",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "DEVNET_CORS_ORIGINS",
    "AccountsConfig",
    "ConfigError",
    "Rule",
    "ConsensusConfig",
    "DevnetConfig",
    "LogConfig",
    "MetricsConfig",
    "P2PConfig",
    "StatusConfig",
    "HomeLayout",
    "MempoolSettings",
    "NodeConfig",
    "RpcConfig",
    "check_config",
    "explorer_enabled",
    "debug_api_enabled",
    "load_config",
    "node_accounts_enabled",
    "password_file_path",
    "replace",
    "setting",
    "write_config",
]
