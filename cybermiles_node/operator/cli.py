"""The `cybermiles` command: init a node home, run a devnet, start a node, show node info,
manage the node's keystore accounts (`cybermiles account`, cybermiles_node.accounts).

`cybermiles devnet` runs a one-node automine chain in this process; with `--validators N` it
creates N BFT validator homes and supervises one node process each
(cybermiles_node.operator.devnet).
Logging: `--log-level` and `--log-format` on the group override the `[log]` settings of the home
being run (cybermiles_node.operator.logs).

Exit statuses: 0 stopped by a signal, 1 refused to start or failed (one `error:` line; a bug's
traceback also exits with 1), 2 a usage error (click), EXIT_HALTED (3) the chain halted for this
program (governance's upgrade_program or retire_program, issue #10): the node committed the
halting block, or was restarted past it with a version the chain no longer accepts, and printed
one `halted at block H: <message>` line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.core import ParameterSource

from cybermiles_node.errors import CyberMilesError
from cybermiles_node.operator.choices import MAX_VALIDATORS, PRESETS
from cybermiles_node.operator.config import (
    CLIENT_VERSION_COMPATS,
    DEVNET_CORS_ORIGINS,
    ConsensusConfig,
    DevnetConfig,
    HomeLayout,
    LogConfig,
    NodeConfig,
    RpcConfig,
    check_config,
    load_config,
    write_config,
)
from cybermiles_node.operator.logs import FORMATS, LEVELS, configure_logging

# Everything else is imported where it is used: `cybermiles --help` and `--version` must not
# load py-evm, trio, eth-account or the node (tests/unit/test_cli_imports.py keeps it so).
if TYPE_CHECKING:
    from cybermiles_node.accounts.keystore import Entry, Keystore
    from cybermiles_node.node import NodeInfo
    from cybermiles_node.operator.devnet import DevnetNode, DevnetOptions, ParamOverrides
    from genesis import EvmProfile, Genesis, StateDump

DEFAULT_DEVNET_HOME = Path.home() / ".cybermiles" / "devnet"
DEFAULT_HOME = Path.home() / ".cybermiles" / "node"
PORT = click.IntRange(0, 65535)
# How many accounts of the test mnemonic `init` looks for in a genesis it writes or takes.
PUBLIC_ACCOUNTS_CHECKED = 10
EXIT_HALTED = 3  # the chain halted for this program (module docstring)
DISTRIBUTION = "cybermiles-node"  # pyproject.toml's project name, for --version


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@dataclass(frozen=True)
class LogOverrides:
    """--log-level / --log-format / --quiet (of the group, or of `devnet` and `node start`,
    which win); None leaves the home's config in charge."""

    level: str | None = None
    format: str | None = None
    quiet: bool | None = None  # True: no per-block/transaction lines (LogConfig.activity)

    def apply(self, config: LogConfig) -> LogConfig:
        return replace(
            config,
            level=self.level or config.level,
            format=self.format or config.format,
            activity=config.activity and not self.quiet,
        )


# Until a command knows its home, and for the single-node devnet: warnings only, so the
# devnet banner is not buried in start-up chatter.
QUIET_LOG = LogConfig(level="warning")
# Devnets also print a line per block and per transaction (LogConfig.activity; --quiet: none).
DEVNET_LOG = replace(QUIET_LOG, activity=True)


def _program_version(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        from cybermiles_node.governance.versions import parse_version

        try:
            parse_version(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


PROGRAM_VERSION_OPTION = click.option(
    "--program-version",
    default=None,
    callback=_program_version,
    metavar="vX.Y.Z",
    help="The program version this node declares against the chain's program requirement "
    "(governance's upgrade_program); default: this package's version.",
)


def _log_overrides(ctx: click.Context | None = None) -> LogOverrides:
    found = (ctx or click.get_current_context()).find_object(LogOverrides)
    return found if found is not None else LogOverrides()


def _override_log(ctx: click.Context, param: click.Parameter, value: str | bool | None) -> None:
    """A command's own log option replaces the group's (a flag left off changes nothing)."""
    if value is None or value is False:
        return
    overrides = _log_overrides(ctx)
    if param.name == "log_level":
        ctx.obj = replace(overrides, level=str(value).lower())
    elif param.name == "log_format":
        ctx.obj = replace(overrides, format=str(value))
    else:
        ctx.obj = replace(overrides, quiet=True)


def _log_options(f: Callable[..., None]) -> Callable[..., None]:
    """--log-level, --log-format and --quiet on a command that runs a node, so its --help
    lists them (the group's options still work: `cybermiles --log-level debug devnet`)."""
    options = [
        click.option(
            "--log-level",
            type=click.Choice(LEVELS, case_sensitive=False),
            expose_value=False,
            callback=_override_log,
            help="Log level (default: the home's [log] level; a one-node devnet: warning).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(FORMATS),
            expose_value=False,
            callback=_override_log,
            help="Log format: text lines or one JSON object a line (default: the home's).",
        ),
        click.option(
            "--quiet",
            is_flag=True,
            expose_value=False,
            callback=_override_log,
            help="No line per block and per transaction (devnets print them by default).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        number = "unknown (not installed)"
    click.echo(f"cybermiles {number}")
    ctx.exit()


def _configure_logs(config: LogConfig) -> LogConfig:
    """Logging as `config` says with the command line's overrides; returns what is in force."""
    effective = _log_overrides().apply(config)
    try:
        configure_logging(effective)
    except CyberMilesError as exc:
        _fail(str(exc))
    return effective


@click.group()
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Print the version of this program and exit.",
)
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(LEVELS, case_sensitive=False),
    help="Override the log level of the home's config (default: its [log] level).",
)
@click.option(
    "--log-format",
    default=None,
    type=click.Choice(FORMATS),
    help="Override the log format of the home's config: text lines or one JSON object a line.",
)
@click.pass_context
def main(ctx: click.Context, log_level: str | None, log_format: str | None) -> None:
    """CyberMiles node: DPoS BFT chain with Ethereum-compatible execution."""
    ctx.obj = LogOverrides(log_level.lower() if log_level else None, log_format)
    _configure_logs(QUIET_LOG)


def init_home(
    home: Path,
    *,
    chain_id: int | None,
    genesis_file: Path | None,
    accounts: int,
    config: NodeConfig,
    evm_profile: EvmProfile = "cvm",
    params: ParamOverrides = (),
    state: StateDump | None = None,
) -> HomeLayout:
    """Write keys, config and genesis into a new home (refuses to overwrite a genesis);
    `params` change chain parameters of a new devnet genesis (not of a --genesis file);
    `state` makes it a genesis from that state dump (application/dev_state.py)."""
    # Checked here too (write_home refuses as well) so that `init` fails before reading keys
    # or a genesis file, with click's usual error line.
    from cybermiles_node.operator.devnet import write_home
    from cybermiles_node.operator.keys import Ed25519Key
    from genesis import devnet_genesis, load_genesis

    genesis_path = HomeLayout(home).genesis_file
    if genesis_path.exists():
        raise click.ClickException(f"{genesis_path} exists; this home is initialised")
    node_key = Ed25519Key.generate()
    validator_key = Ed25519Key.generate()
    if genesis_file is not None:
        genesis = load_genesis(genesis_file)
        if chain_id is not None and chain_id != genesis.chain_id:
            raise click.ClickException(
                f"--chain-id {chain_id} contradicts the genesis file's chain_id {genesis.chain_id}"
            )
    else:
        genesis = devnet_genesis(
            validator_pub_keys=[validator_key.public_key],
            genesis_time=int(time.time()),
            chain_id=chain_id if chain_id is not None else 1234,
            accounts=accounts,
            evm_profile=evm_profile,
            params=dict(params),
        )
    if state is not None:
        from cybermiles_node.application.dev_state import genesis_from_dump  # the node stack

        genesis = genesis_from_dump(state, genesis)
    return write_home(
        home, node_key=node_key, validator_key=validator_key, genesis=genesis, config=config
    )


@main.command()
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Directory for keys, config, genesis and data.",
)
@click.option(
    "--chain-id",
    type=int,
    default=None,
    help="EIP-155 chain id of a new devnet genesis (default 1234).",
)
@click.option(
    "--genesis",
    "genesis_file",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Join the network of this genesis file instead of a new devnet.",
)
def init(home: Path, chain_id: int | None, genesis_file: Path | None) -> None:
    """Create a node home: node key, validator key, config.toml and genesis.json.

    Without --genesis the genesis is a new local test chain that funds accounts of the public
    test mnemonic; a warning on stderr says so whenever the genesis written funds them.
    """
    from cybermiles_node.operator.keys import read_key
    from genesis import GenesisError, load_genesis

    try:
        layout = init_home(
            home, chain_id=chain_id, genesis_file=genesis_file, accounts=10, config=NodeConfig()
        )
    except GenesisError as exc:
        _fail(f"invalid genesis: {exc}")
        return
    node_id = read_key(layout.node_key_file).node_id
    click.echo(f"initialised {home}\nnode id: {node_id}\ngenesis: {layout.genesis_file}")
    funded = public_mnemonic_accounts(load_genesis(layout.genesis_file))
    if funded:
        click.echo(public_mnemonic_warning(layout.genesis_file, len(funded)), err=True)


def public_mnemonic_accounts(genesis: Genesis) -> list[bytes]:
    """The accounts `genesis` funds whose private keys anyone can derive: the first
    PUBLIC_ACCOUNTS_CHECKED accounts of the public test mnemonic ("test test ... junk")."""
    from genesis import dev_accounts

    public = {account.address for account in dev_accounts(PUBLIC_ACCOUNTS_CHECKED)}
    return [address for address, account in genesis.alloc if address in public and account.balance]


def public_mnemonic_warning(genesis_file: Path, count: int) -> str:
    from genesis.presets import DEV_MNEMONIC

    return (
        f"WARNING: {genesis_file} funds {count} accounts of the public test mnemonic "
        f'"{DEV_MNEMONIC}". Their private keys are published (Hardhat and Foundry print '
        "them), so anyone can spend those accounts. This genesis is for local testing only; "
        "to join a real network, run `cybermiles init --genesis <the network's genesis.json>`."
    )


@main.command()
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=DEFAULT_DEVNET_HOME,
    show_default=True,
    help="Devnet directory; state is kept here across restarts.",
)
@click.option(
    "--rpc-addr",
    default="127.0.0.1",
    show_default=True,
    help="Address the JSON-RPC server (HTTP and WebSocket) binds.",
)
@click.option("--rpc-port", type=PORT, default=8545, show_default=True, help="JSON-RPC port.")
@click.option(
    "--chain-id",
    type=int,
    default=1234,
    show_default=True,
    help="EIP-155 chain id of a new devnet.",
)
@click.option(
    "--accounts",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Prefunded accounts of the 'test ... junk' mnemonic (1,000,000 CMT each).",
)
@click.option(
    "--block-time",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds between blocks, empty ones included; 0 = automine (a block as soon "
    "as transactions arrive). With --preset: the BFT block interval (default 1).",
)
@click.option(
    "--reset",
    is_flag=True,
    help="Delete the devnet's chain, keys and configs and start from genesis (only what the "
    "devnet wrote: other files in HOME stay).",
)
@click.option(
    "--evm-profile",
    type=click.Choice(["cvm", "lity"]),
    default="cvm",
    show_default=True,
    help="EVM rules of a new devnet: cvm (Prague + CVM opcodes and precompiles) or lity "
    "(Travis-exact, for existing Lity bytecode).",
)
@click.option(
    "--validators",
    type=click.IntRange(1, MAX_VALIDATORS),
    default=None,
    help="Run N BFT validator nodes, one process each, in HOME/node0 … HOME/node{N-1} "
    "(node i: RPC port + i, the other ports + 10 i). Without it: one automine node.",
)
@click.option(
    "--param",
    "param_assignments",
    multiple=True,
    metavar="NAME=VALUE",
    help="A chain parameter of a new devnet's genesis (SPEC names and values, e.g. "
    "unstake_waiting_period=5 or self_staking_ratio=1/10); repeatable. An existing devnet "
    "keeps its genesis: a different value is refused (use --reset).",
)
@click.option(
    "--p2p-port",
    type=PORT,
    default=None,
    show_default="26656",
    help="P2P port of node 0 (with --validators).",
)
@click.option(
    "--status-port",
    type=PORT,
    default=None,
    show_default="26657",
    help="Status endpoint port of node 0 (with --validators).",
)
@click.option(
    "--metrics-port",
    type=PORT,
    default=None,
    show_default="26660",
    help="Prometheus /metrics port of node 0 (with --validators).",
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    default=None,
    help="travis: the Travis-compatibility devnet (chain id 1234, lity, Travis's parameters, "
    "4 BFT validators making blocks continuously, a keystore unlocked with passphrase 1234 in "
    "Travis's account order; README 'Travis-compatibility preset'). With it, --validators "
    "defaults to 4 and --block-time (default 1) is the BFT block interval.",
)
@click.option(
    "--dump-state",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="When the devnet stops (Ctrl-C, SIGTERM), write its state to FILE: a versioned JSON "
    "document of every account (README 'State dumps'). One-node devnet only.",
)
@click.option(
    "--load-state",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Start a NEW devnet whose genesis state is the state in FILE (from --dump-state or "
    "anvil_dumpState): same accounts, code, storage and state root; chain id and EVM profile "
    "from FILE. HOME must be new (or use --reset). One-node devnet only.",
)
@click.option(
    "--client-version-compat",
    type=click.Choice(CLIENT_VERSION_COMPATS),
    default="off",
    show_default=True,
    help="anvil / hardhat: web3_clientVersion starts with 'anvil' / 'HardhatNetwork' (and says "
    "it is a cybermiles devnet), so tools that check it, like hardhat-network-helpers, accept "
    "the devnet; the dev methods they call are served either way. One-node devnet only.",
)
@PROGRAM_VERSION_OPTION
@_log_options
@click.pass_context
def devnet(
    ctx: click.Context,
    home: Path,
    rpc_addr: str,
    rpc_port: int,
    chain_id: int,
    accounts: int,
    block_time: float,
    reset: bool,
    evm_profile: EvmProfile,
    validators: int | None,
    param_assignments: tuple[str, ...],
    p2p_port: int | None,
    status_port: int | None,
    metrics_port: int | None,
    preset: str | None,
    dump_state: Path | None,
    load_state: Path | None,
    client_version_compat: str,
    program_version: str | None,
) -> None:
    """Run a development chain with funded accounts: one node, or N validators.

    The first run creates HOME (keys, genesis, config) and marks it as a devnet home
    (HOME/.cybermiles-devnet); later runs continue the same chain unless --reset is given.
    HOME must be new, empty or a devnet home: a node home made by `cybermiles init`, or any
    other non-empty directory, is refused. The RPC URL, chain id and funded accounts with their
    private keys are printed on start. Stop with Ctrl-C.

    With --validators N, HOME holds one node home per validator and HOME/devnet.json lists
    each node's pid and URLs once all are up; each node logs to HOME/node{i}/node.log. A node
    that is killed stays down (restart it with `cybermiles node start --home HOME/node{i}`).
    """
    from cybermiles_node.operator import travis_preset
    from cybermiles_node.operator.devnet import DevnetOptions, Ports
    from cybermiles_node.operator.devnet_home import claim_devnet_home, reset_devnet_home

    explicit = {
        name for name in ctx.params if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
    }
    preset_block_time: float | None = None
    if preset is not None:
        _check_preset_flags(preset, explicit, chain_id, evm_profile, block_time)
        validators = validators or travis_preset.DEFAULT_VALIDATORS
        chain_id, evm_profile = travis_preset.CHAIN_ID, travis_preset.EVM_PROFILE
        preset_block_time = block_time if "block_time" in explicit else None
    optional_ports = (p2p_port, status_port, metrics_port)
    if validators is None and any(port is not None for port in optional_ports):
        _fail("--p2p-port, --status-port and --metrics-port go with --validators")
    if validators is not None and block_time > 0 and preset is None:
        _fail("--block-time is for the one-node automine devnet; BFT validators keep their pace")
    if validators is not None and client_version_compat != "off":
        _fail("--client-version-compat is for the one-node devnet (dev methods drive its chain)")
    params = _param_overrides(param_assignments)  # before anything is written
    state_files = StateFiles(dump_state, load_state)
    if validators is not None and (dump_state or load_state):
        _fail("--dump-state and --load-state are for the one-node devnet (without --validators)")
    if load_state is not None:  # read and checked before anything is written
        state_files = replace(
            state_files, initial=_read_state_file(load_state, explicit, chain_id, evm_profile)
        )
    if dump_state is not None and not dump_state.resolve().parent.is_dir():
        _fail(f"--dump-state {dump_state}: {dump_state.parent} is not a directory")
    try:
        claim_devnet_home(home)
        if reset:
            reset_devnet_home(home)
    except CyberMilesError as exc:
        _fail(str(exc))
    if validators is None:
        _single_devnet(
            home,
            rpc_addr,
            rpc_port,
            chain_id,
            accounts,
            block_time,
            evm_profile,
            params,
            program_version,
            state_files,
            client_version_compat,
        )
        return
    defaults = Ports()
    ports = Ports(
        rpc=rpc_port,
        p2p=p2p_port if p2p_port is not None else defaults.p2p,
        status=status_port if status_port is not None else defaults.status,
        metrics=metrics_port if metrics_port is not None else defaults.metrics,
    )
    # The nodes log at info (the default LogConfig) unless the command line says otherwise.
    log = _log_overrides().apply(LogConfig(activity=True))
    _multi_devnet(
        home,
        DevnetOptions(
            validators,
            chain_id,
            accounts,
            rpc_addr,
            ports,
            log,
            evm_profile,
            params,
            program_version,
            preset,
            preset_block_time,
        ),
    )


def _check_preset_flags(
    preset: str, explicit: set[str], chain_id: int, evm_profile: str, block_time: float
) -> None:
    """Refuse, in one line, an explicit flag that contradicts the preset."""
    from cybermiles_node.operator import travis_preset

    if "chain_id" in explicit and chain_id != travis_preset.CHAIN_ID:
        _fail(
            f"--preset {preset} runs chain id {travis_preset.CHAIN_ID}; drop --chain-id {chain_id}"
        )
    if "evm_profile" in explicit and evm_profile != travis_preset.EVM_PROFILE:
        _fail(
            f"--preset {preset} runs the {travis_preset.EVM_PROFILE} profile; drop "
            f"--evm-profile {evm_profile}"
        )
    if "block_time" in explicit and block_time <= 0:
        _fail(
            f"--preset {preset} makes blocks continuously: --block-time must be > 0 "
            f"(default {travis_preset.DEFAULT_BLOCK_TIME_S:g} s)"
        )
    if "block_time" in explicit:
        try:
            travis_preset.commit_ms(block_time)
        except CyberMilesError as exc:
            _fail(str(exc))


def _param_overrides(assignments: tuple[str, ...]) -> ParamOverrides:
    """The --param options as typed values; a bad one ends the command in one line."""
    from genesis import GenesisError, parse_param_overrides

    try:
        return tuple(parse_param_overrides(assignments).items())
    except GenesisError as exc:
        _fail(f"--param {exc}")


@dataclass(frozen=True)
class StateFiles:
    """--dump-state and --load-state of the one-node devnet (`initial`: the loaded dump)."""

    dump: Path | None = None
    load: Path | None = None
    initial: StateDump | None = None


def _read_state_file(
    path: Path, explicit: set[str], chain_id: int, evm_profile: EvmProfile
) -> StateDump:
    """The dump --load-state names; a bad file, or a flag contradicting it, ends in one line."""
    from genesis import GenesisError, load_state_dump

    try:
        dump = load_state_dump(path)
    except GenesisError as exc:
        _fail(f"--load-state {path}: {exc}")
    if "chain_id" in explicit and chain_id != dump.chain_id:
        _fail(f"--load-state {path} holds chain {dump.chain_id}; drop --chain-id {chain_id}")
    if "evm_profile" in explicit and evm_profile != dump.evm_profile:
        _fail(
            f"--load-state {path} holds a {dump.evm_profile} state; "
            f"drop --evm-profile {evm_profile}"
        )
    return dump


def _single_devnet(
    home: Path,
    rpc_addr: str,
    rpc_port: int,
    chain_id: int,
    accounts: int,
    block_time: float,
    evm_profile: EvmProfile,
    params: ParamOverrides,
    program_version: str | None,
    state_files: StateFiles = StateFiles(),
    client_version_compat: str = "off",
) -> None:
    from cybermiles_node.operator.devnet import (
        check_chain_id,
        check_params,
        check_profile,
        existing_validators,
    )
    from genesis import GenesisError, load_genesis

    layout = HomeLayout(home)
    existing = existing_validators(home)
    if existing:
        _fail(f"{home} holds a {existing}-validator devnet; add --validators {existing} or --reset")
    if state_files.initial is not None and layout.genesis_file.exists():
        _fail(
            f"--load-state starts a new devnet, and {home} holds one; add --reset (or use another "
            "--home) to start from the file"
        )
    config = NodeConfig(
        rpc=RpcConfig(host=rpc_addr, port=rpc_port, cors_origins=DEVNET_CORS_ORIGINS),
        devnet=DevnetConfig(
            enabled=True,
            block_time=block_time,
            accounts=accounts,
            client_version_compat=client_version_compat,
        ),
        consensus=ConsensusConfig(engine="automine"),
        log=DEVNET_LOG,
    )
    try:
        check_config(config)
        if not layout.genesis_file.exists():
            init_home(
                home,
                chain_id=chain_id,
                genesis_file=None,
                accounts=accounts,
                config=config,
                evm_profile=evm_profile,
                params=params,
                state=state_files.initial,
            )
        else:
            existing_genesis = load_genesis(layout.genesis_file)
            check_chain_id(existing_genesis, chain_id, home)
            check_profile(existing_genesis, evm_profile, home)
            check_params(existing_genesis, params, home)
            write_config(layout.config_file, config)
    except (GenesisError, CyberMilesError) as exc:
        _fail(str(exc))
    _run(layout, config, banner=True, program_version=program_version)
    if state_files.dump is not None:
        _dump_state(layout, config, state_files.dump)


def _dump_state(layout: HomeLayout, config: NodeConfig, path: Path) -> None:
    """Write the stopped devnet's head state to `path` (--dump-state)."""
    # The node stack, as in `_run`: imported only when a devnet ran.
    from cybermiles_node.application.dev_state import dump_head_state
    from cybermiles_node.node import open_chain
    from genesis import load_genesis, write_state_dump

    try:
        db, chain = open_chain(layout, config, load_genesis(layout.genesis_file))
        try:
            dump = dump_head_state(chain)
        finally:
            db.close()
        write_state_dump(dump, path)
    except _start_up_errors() as exc:
        _fail(f"--dump-state {path}: {exc}")
    assert dump.block is not None
    _say(
        f"state written to {path} (block {dump.block.number}, {len(dump.accounts)} accounts, "
        f"state root 0x{dump.block.state_root.hex()})"
    )


def _multi_devnet(home: Path, options: DevnetOptions) -> None:
    from cybermiles_node.operator.devnet import prepare_devnet, run_devnet
    from genesis import GenesisError, load_genesis

    try:
        nodes = prepare_devnet(home, options)
        chain_id = load_genesis(nodes[0].layout.genesis_file).chain_id
        run_devnet(
            home,
            chain_id,
            nodes,
            on_ready=lambda manifest: _devnet_banner(home, chain_id, nodes, options),
            say=_say,
        )
    except (GenesisError, CyberMilesError, OSError) as exc:
        _fail(str(exc))
    click.echo("stopped")


def _say(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@main.group()
def node() -> None:
    """Run and inspect a node."""


@node.command("start")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
@PROGRAM_VERSION_OPTION
@_log_options
def node_start(home: Path, program_version: str | None) -> None:
    """Start the node of HOME (created by `cybermiles init` or `cybermiles devnet`)."""
    layout = HomeLayout(home)
    if not layout.config_file.exists():
        _fail(f"{home} is not a node home (run `cybermiles init --home {home}` first)")
    try:
        config = load_config(layout.config_file)
    except CyberMilesError as exc:
        _fail(str(exc))
        return
    _run(layout, config, banner=config.devnet.enabled, program_version=program_version)


@node.command("info")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def node_info(home: Path) -> None:
    """Print the identity, chain, keys, addresses and consensus engine of HOME."""
    import base64

    from cybermiles_node.operator.keys import read_key
    from genesis import GenesisError, load_genesis

    layout = HomeLayout(home)
    try:
        genesis = load_genesis(layout.genesis_file)
        node_key = read_key(layout.node_key_file)
        validator_key = read_key(layout.validator_key_file)
        config = load_config(layout.config_file)
    except (GenesisError, CyberMilesError) as exc:
        _fail(str(exc))
        return
    p2p = config.p2p
    advertised = p2p.external_address or f"{p2p.listen_host}:{p2p.listen_port}"
    status = config.status
    status_url = f"http://{status.host}:{status.port}" if status.enabled else "(disabled)"
    click.echo(f"node id:           {node_key.node_id}")
    click.echo(f"chain id:          {genesis.chain_id} ({genesis.network})")
    click.echo(f"evm profile:       {genesis.evm_profile}")
    click.echo(f"validator key:     {base64.b64encode(validator_key.public_key).decode()}")
    # Tendermint derives a validator address like a node id: sha256(public key)[:20].
    click.echo(f"validator address: {validator_key.node_id}")
    click.echo(f"p2p address:       {node_key.node_id}@{advertised}")
    click.echo(f"status url:        {status_url}")
    click.echo(f"consensus engine:  {config.consensus.engine}")


# ------------------------------------------------------------------------ export / import

# Without a terminal, progress is a plain line every this many seconds (and at the end).
PROGRESS_LINE_INTERVAL_S = 2.0


class _Progress:
    """Blocks done: click's bar when stderr is a terminal, else a plain line now and then."""

    def __init__(self, label: str) -> None:
        self.label, self.done = label, 0
        self.bar: Any = None
        self.last_line = time.monotonic()

    def __call__(self, number: int, total: int) -> None:
        if self.bar is None and self.done == 0 and sys.stderr.isatty():
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif time.monotonic() - self.last_line >= PROGRESS_LINE_INTERVAL_S:
            self.last_line = time.monotonic()
            click.echo(f"{self.label}: {self.done}/{total} (block {number})", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@main.command("export")
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_HOME,
    show_default=True,
    help="The node home whose blocks are written (its node must be stopped).",
)
@click.option("--from", "first", type=click.IntRange(min=1), default=None, help="First block [1].")
@click.option("--to", "last", type=click.IntRange(min=0), default=None, help="Last block [head].")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def export_command(home: Path, first: int | None, last: int | None, file: Path) -> None:
    """Write the blocks of HOME to FILE (versioned, length-prefixed records of the block wire
    format, with each BFT block's commit), for `cybermiles import`."""
    from cybermiles_node.operator import chain_io

    try:
        with file.open("wb") as out:
            progress = _Progress("exporting")
            try:
                info = chain_io.export_home(home, out, first, last, progress)
            finally:
                progress.close()
    except (CyberMilesError, OSError) as exc:
        file.unlink(missing_ok=True)  # no half-written file left behind
        _fail(str(exc))
    click.echo(f"exported blocks {info.first}..{info.last} of chain {info.chain_id} to {file}")


@main.command("import")
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_HOME,
    show_default=True,
    help="The node home that receives the blocks: fresh, or shorter than FILE, same genesis "
    "(its node must be stopped).",
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def import_command(home: Path, file: Path) -> None:
    """Validate and execute every block of FILE (from `cybermiles export`) into HOME, through
    the same pipeline as blocks from peers. A block that does not validate stops the import
    with one line; the blocks before it stay committed."""
    from cybermiles_node.operator import chain_io

    try:
        with file.open("rb") as source:
            progress = _Progress("importing")
            try:
                info, committed = chain_io.import_home(home, source, progress)
            finally:
                progress.close()
    except (CyberMilesError, OSError) as exc:
        _fail(str(exc))
    click.echo(
        f"imported blocks {info.first}..{info.last} of chain {info.chain_id} into {home} "
        f"({committed} new)"
    )


# ------------------------------------------------------------------------ accounts

HOME_OPTION = click.option(
    "--home",
    type=click.Path(path_type=Path),
    default=DEFAULT_HOME,
    show_default=True,
    help="Node home; key files live in HOME/keystore.",
)
PASSWORD_FILE_OPTION = click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Read the passphrase from the first line of FILE instead of a prompt.",
)


@main.group()
def account() -> None:
    """Manage the node's accounts: geth v3 key files in HOME/keystore.

    Passphrases come from a prompt or from --password-file, never from the command line
    (a command line is visible to other users and kept in shell history).
    """


def _keystore(home: Path) -> Keystore:
    from cybermiles_node.accounts.keystore import Keystore, keystore_dir

    return Keystore(keystore_dir(home))


def _first_line(path: Path, what: str) -> str:
    """The first line of a passphrase or key file, without its line ending."""
    from cybermiles_node.accounts.keyfile import KeystoreError
    from cybermiles_node.accounts.keystore import read_small_file

    try:
        text = read_small_file(path).decode()
    except UnicodeDecodeError:
        _fail(f"{path}: the {what} file is not UTF-8 text")
    except KeystoreError as exc:
        _fail(str(exc))
    lines = text.splitlines()
    return lines[0] if lines else ""


def _new_passphrase(password_file: Path | None) -> str:
    """A passphrase for a key being encrypted: from the file, or prompted twice."""
    if password_file is None:
        passphrase = click.prompt(
            "Passphrase for the new key", hide_input=True, confirmation_prompt=True, err=True
        )
    else:
        passphrase = _first_line(password_file, "password")
    if not passphrase:
        _fail("an empty passphrase would let anyone who reads the key file use the key")
    return str(passphrase)


def _passphrase_of(source: Path, password_file: Path | None) -> str:
    """The passphrase an existing key file was encrypted with."""
    if password_file is not None:
        return _first_line(password_file, "password")
    return str(click.prompt(f"Passphrase of {source}", hide_input=True, err=True))


def _checksummed(address: bytes) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address(address)


def _stored(entry: Entry) -> None:
    click.echo(f"address: {_checksummed(entry.address)}\nkey file: {entry.path}")


@account.command("new")
@HOME_OPTION
@PASSWORD_FILE_OPTION
def account_new(home: Path, password_file: Path | None) -> None:
    """Create a new account: a random key encrypted with a passphrase."""
    from cybermiles_node.accounts.keyfile import KeystoreError

    passphrase = _new_passphrase(password_file)
    try:
        _stored(_keystore(home).new_account(passphrase))
    except (KeystoreError, OSError) as exc:
        _fail(str(exc))


@account.command("list")
@HOME_OPTION
def account_list(home: Path) -> None:
    """Print index, address and file of every account; unreadable files are reported."""
    from cybermiles_node.accounts.keyfile import KeystoreError

    try:
        scan = _keystore(home).scan()
    except KeystoreError as exc:
        _fail(str(exc))
    for index, entry in enumerate(scan.entries):
        click.echo(f"#{index}  {_checksummed(entry.address)}  {entry.path}")
    for problem in scan.problems:
        click.echo(f"warning: not listed: {problem.reason}", err=True)


@account.command("import")
@click.argument("keyfile", type=click.Path(path_type=Path, dir_okay=False))
@HOME_OPTION
@PASSWORD_FILE_OPTION
def account_import(keyfile: Path, home: Path, password_file: Path | None) -> None:
    """Copy a geth v3 KEYFILE into the keystore once its passphrase opens it."""
    from cybermiles_node.accounts.keyfile import KeystoreError, parse_keyfile
    from cybermiles_node.accounts.keystore import read_small_file

    try:  # a malformed or unreadable file is refused before asking for its passphrase
        parse_keyfile(read_small_file(keyfile), str(keyfile))
    except KeystoreError as exc:
        _fail(str(exc))
    passphrase = _passphrase_of(keyfile, password_file)
    try:
        _stored(_keystore(home).import_keyfile(keyfile, passphrase))
    except (KeystoreError, OSError) as exc:
        _fail(str(exc))


@account.command("import-key")
@HOME_OPTION
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Read the hex private key from the first line of FILE instead of a prompt.",
)
@PASSWORD_FILE_OPTION
def account_import_key(home: Path, key_file: Path | None, password_file: Path | None) -> None:
    """Encrypt a raw hex private key into the keystore."""
    from cybermiles_node.accounts.keyfile import KeystoreError, address_of, parse_private_key_hex

    if key_file is None:
        text = str(click.prompt("Private key (hex)", hide_input=True, err=True))
    else:
        text = _first_line(key_file, "key")
    try:
        private_key = parse_private_key_hex(text)
    except KeystoreError as exc:
        _fail(f"{key_file or 'private key'}: {exc}")
    keystore = _keystore(home)
    try:  # before asking for a passphrase that would not be used
        keystore.check_absent(address_of(private_key))
    except KeystoreError as exc:
        _fail(str(exc))
    passphrase = _new_passphrase(password_file)
    try:
        _stored(keystore.import_key(private_key, passphrase))
    except (KeystoreError, OSError) as exc:
        _fail(str(exc))


def _block_mode(config: NodeConfig) -> str:
    if config.consensus.engine != "automine":
        return f"{config.consensus.engine} consensus among the validators staking elects"
    if config.devnet.block_time > 0:
        return f"a block every {config.devnet.block_time:g} s"
    return "automine (a block as soon as transactions arrive)"


def _banner(layout: HomeLayout, config: NodeConfig, info: NodeInfo) -> None:
    from cybermiles_node.governance.versions import PROGRAM_NAME

    url = f"http://{config.rpc.host}:{info.rpc_port}"
    lines = [
        "CyberMiles devnet",
        f"  RPC URL:   {url}   (WebSocket ws://{config.rpc.host}:{info.rpc_port})",
        f"  Explorer:  {url}/explorer/",
        f"  Chain id:  {info.chain_id}",
        f"  Head:      block {info.head}",
        f"  Program:   {PROGRAM_NAME} {info.program_version}",
        f"  Home:      {layout.home}",
        f"  Blocks:    {_block_mode(config)}",
        "",
        *_funded_accounts(config.devnet.accounts),
    ]
    _say("\n".join(lines))


def _funded_accounts(count: int, *, own_validators: bool = True) -> list[str]:
    from genesis import TRAVIS_DEV_ADDRESSES, dev_accounts
    from genesis.presets import DEVNET_VALIDATOR_SHARES

    stake = (
        f", validator owners less their {DEVNET_VALIDATOR_SHARES:,} CMT self-stake"
        if own_validators
        else ""
    )
    lines = [
        f"Funded accounts (1,000,000 CMT each{stake}; mnemonic 'test test test test test test "
        "test test test test test junk'):",
    ]
    for i, account in enumerate(dev_accounts(count)):
        lines.append(f"  ({i}) 0x{account.address.hex()}  key 0x{account.private_key.hex()}")
    for address in TRAVIS_DEV_ADDRESSES:
        lines.append(f"      0x{bytes(address).hex()}  (Travis dev account)")
    return lines


def _devnet_banner(
    home: Path, chain_id: int, nodes: list[DevnetNode], options: DevnetOptions
) -> None:
    from cybermiles_node.operator import travis_preset

    lines = [
        f"CyberMiles devnet: {len(nodes)} BFT validators",
        f"  Chain id:  {chain_id}",
        f"  Home:      {home}   (pids and URLs in {home / 'devnet.json'})",
        "",
    ]
    for node in nodes:
        lines += [
            f"  {node.name}  RPC {node.rpc_url}   status {node.status_url}",
            f"         log {node.log_file}",
        ]
    lines += [f"  Explorer:  {nodes[0].rpc_url}/explorer/   (on every node's RPC port)"]
    lines += ["  Stop with Ctrl-C (stops every node).", ""]
    if options.preset is not None:
        lines += [*travis_preset.banner_lines(options.validators), ""]
    lines += _funded_accounts(options.funded_accounts, own_validators=options.preset is None)
    _say("\n".join(lines))


def _import_node() -> Callable[..., Awaitable[None]]:
    """`run_node`, imported without the garbage collector: the import makes a few hundred
    thousand objects that all live as long as the process, so collections during it are
    wasted (~8 % of the import's time, which is most of the time to the first RPC answer).
    They are then frozen out of every later collection's way. py-evm's BLS12-381 tables are
    left for the first call of a BLS precompile (operator/lazy_bls.py)."""
    import gc

    from cybermiles_node.operator.lazy_bls import defer_bls12_381

    defer_bls12_381()
    gc.disable()
    try:
        from cybermiles_node.node import run_node
    finally:
        gc.freeze()
        gc.enable()
    return run_node


def _run(
    layout: HomeLayout, config: NodeConfig, *, banner: bool, program_version: str | None
) -> None:
    # Imported here: the node stack (py-evm, consensus, p2p) is heavy, and `init`, `node info`
    # and the multi-validator supervisor never need it.
    import signal

    run_node = _import_node()
    import trio

    config = replace(config, log=_configure_logs(config.log))

    def ready(info: NodeInfo) -> None:
        if banner:
            _banner(layout, config, info)
        else:
            click.echo(f"node running: RPC http://{config.rpc.host}:{info.rpc_port}")
            sys.stdout.flush()

    async def main_task() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    lambda: run_node(
                        layout.home, config, program_version=program_version, on_ready=ready
                    )
                )
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main_task)
    except BaseExceptionGroup as group:
        _exit_if_halted(_leaves(group))
        _fail_with(_leaves(group))
    except _start_up_errors() as exc:
        _exit_if_halted([exc])
        _fail_with([exc])
    click.echo("stopped")


def _start_up_errors() -> tuple[type[BaseException], ...]:
    """What a node may refuse to start with, reported in one line; anything else is a bug and
    keeps its traceback. OSError: ports in use, unreadable files. (Loaded with the node.)"""
    from consensus.errors import ConsensusError
    from evm.errors import EvmError
    from genesis import GenesisError
    from p2p.errors import P2PError

    return (GenesisError, CyberMilesError, EvmError, ConsensusError, P2PError, OSError)


def _exit_if_halted(errors: list[BaseException]) -> None:
    """A chain halt (application/app.py) ends the command with its own line and status."""
    from cybermiles_node.application.app import ChainHalted  # loaded with the node already

    for error in errors:
        if isinstance(error, ChainHalted):
            click.echo(f"halted at block {error.height}: {error.message}", err=True)
            sys.exit(EXIT_HALTED)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _fail_with(errors: list[BaseException]) -> None:
    """Report expected start-up failures in one line; re-raise anything else (a bug)."""
    for error in errors:
        if not isinstance(error, _start_up_errors()):
            raise error
    _fail("; ".join(f"cannot start: {e}" if isinstance(e, OSError) else str(e) for e in errors))
