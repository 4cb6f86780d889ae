"""The `cybermiles` command: init a node home, run a devnet, start a node, show node info."""

from __future__ import annotations

import base64
import logging
import shutil
import signal
import sys
import time
from pathlib import Path

import click
import trio

from cybermiles_node.config import (
    DevnetConfig,
    HomeLayout,
    NodeConfig,
    RpcConfig,
    load_config,
    write_config,
)
from cybermiles_node.errors import CyberMilesError
from cybermiles_node.keys import Ed25519Key, read_key, write_key
from cybermiles_node.node import NodeInfo, run_node
from genesis import (
    GenesisError,
    dev_accounts,
    devnet_genesis,
    dump_genesis,
    load_genesis,
)
from genesis.presets import TRAVIS_DEV_ADDRESSES

DEFAULT_DEVNET_HOME = Path.home() / ".cybermiles" / "devnet"
DEFAULT_HOME = Path.home() / ".cybermiles" / "node"


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group()
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def main(log_level: str) -> None:
    """CyberMiles node: DPoS BFT chain with Ethereum-compatible execution."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def init_home(
    home: Path,
    *,
    chain_id: int | None,
    genesis_file: Path | None,
    accounts: int,
    config: NodeConfig,
) -> HomeLayout:
    """Write keys, config and genesis into a new home (refuses to overwrite a genesis)."""
    layout = HomeLayout(home)
    if layout.genesis_file.exists():
        raise click.ClickException(f"{layout.genesis_file} exists; this home is initialised")
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
        )
    write_key(layout.node_key_file, node_key)
    write_key(layout.validator_key_file, validator_key)
    write_config(layout.config_file, config)
    dump_genesis(genesis, layout.genesis_file)
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    return layout


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
    """Create a node home: node key, validator key, config.toml and genesis.json."""
    try:
        layout = init_home(
            home, chain_id=chain_id, genesis_file=genesis_file, accounts=10, config=NodeConfig()
        )
    except GenesisError as exc:
        _fail(f"invalid genesis: {exc}")
        return
    node_id = read_key(layout.node_key_file).node_id
    click.echo(f"initialised {home}\nnode id: {node_id}\ngenesis: {layout.genesis_file}")


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
@click.option("--rpc-port", type=int, default=8545, show_default=True, help="JSON-RPC port.")
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
    "as transactions arrive).",
)
@click.option("--reset", is_flag=True, help="Delete the devnet's state and start from genesis.")
def devnet(
    home: Path,
    rpc_addr: str,
    rpc_port: int,
    chain_id: int,
    accounts: int,
    block_time: float,
    reset: bool,
) -> None:
    """Run a one-node development chain with funded accounts.

    The first run creates HOME (keys, genesis, config); later runs continue the same chain
    unless --reset is given. The RPC URL, chain id and funded accounts with their private keys
    are printed on start. Stop with Ctrl-C.
    """
    layout = HomeLayout(home)
    if reset and home.exists():
        shutil.rmtree(home)
    config = NodeConfig(
        rpc=RpcConfig(host=rpc_addr, port=rpc_port),
        devnet=DevnetConfig(enabled=True, block_time=block_time, accounts=accounts),
    )
    try:
        if not layout.genesis_file.exists():
            init_home(home, chain_id=chain_id, genesis_file=None, accounts=accounts, config=config)
        else:
            genesis = load_genesis(layout.genesis_file)
            if genesis.chain_id != chain_id and chain_id != 1234:
                _fail(f"{home} holds chain {genesis.chain_id}; use --reset for chain {chain_id}")
            write_config(layout.config_file, config)
    except (GenesisError, CyberMilesError) as exc:
        _fail(str(exc))
    _run(layout, config, banner=True)


@main.group()
def node() -> None:
    """Run and inspect a node."""


@node.command("start")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def node_start(home: Path) -> None:
    """Start the node of HOME (created by `cybermiles init` or `cybermiles devnet`)."""
    layout = HomeLayout(home)
    if not layout.config_file.exists():
        _fail(f"{home} is not a node home (run `cybermiles init --home {home}` first)")
    try:
        config = load_config(layout.config_file)
    except CyberMilesError as exc:
        _fail(str(exc))
        return
    _run(layout, config, banner=config.devnet.enabled)


@node.command("info")
@click.option("--home", type=click.Path(path_type=Path), default=DEFAULT_HOME, show_default=True)
def node_info(home: Path) -> None:
    """Print the node id, chain id, EVM profile and validator key of HOME."""
    layout = HomeLayout(home)
    try:
        genesis = load_genesis(layout.genesis_file)
        node_key = read_key(layout.node_key_file)
        validator_key = read_key(layout.validator_key_file)
    except (GenesisError, CyberMilesError) as exc:
        _fail(str(exc))
        return
    click.echo(f"node id:       {node_key.node_id}")
    click.echo(f"chain id:      {genesis.chain_id} ({genesis.network})")
    click.echo(f"evm profile:   {genesis.evm_profile}")
    click.echo(f"validator key: {base64.b64encode(validator_key.public_key).decode()}")


def _banner(layout: HomeLayout, config: NodeConfig, info: NodeInfo) -> None:
    url = f"http://{config.rpc.host}:{info.rpc_port}"
    mode = (
        f"a block every {config.devnet.block_time:g} s"
        if config.devnet.block_time > 0
        else "automine (a block as soon as transactions arrive)"
    )
    lines = [
        "CyberMiles devnet",
        f"  RPC URL:   {url}   (WebSocket ws://{config.rpc.host}:{info.rpc_port})",
        f"  Chain id:  {info.chain_id}",
        f"  Head:      block {info.head}",
        f"  Home:      {layout.home}",
        f"  Blocks:    {mode}",
        "",
        "Funded accounts (1,000,000 CMT each; mnemonic 'test test test test test test test test "
        "test test test junk'):",
    ]
    for i, account in enumerate(dev_accounts(config.devnet.accounts)):
        lines.append(f"  ({i}) 0x{account.address.hex()}  key 0x{account.private_key.hex()}")
    for address in TRAVIS_DEV_ADDRESSES:
        lines.append(f"      0x{bytes(address).hex()}  (Travis dev account)")
    click.echo("\n".join(lines), nl=True)
    sys.stdout.flush()


def _run(layout: HomeLayout, config: NodeConfig, *, banner: bool) -> None:
    def ready(info: NodeInfo) -> None:
        if banner:
            _banner(layout, config, info)
        else:
            click.echo(f"node running: RPC http://{config.rpc.host}:{info.rpc_port}")
            sys.stdout.flush()

    async def main_task() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: run_node(layout.home, config, on_ready=ready))
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main_task)
    except BaseExceptionGroup as group:
        _fail_with(_leaves(group))
    except (GenesisError, CyberMilesError, OSError) as exc:
        _fail_with([exc])
    click.echo("stopped")


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _fail_with(errors: list[BaseException]) -> None:
    """Report expected start-up failures in one line each; re-raise anything else (a bug)."""
    expected = (GenesisError, CyberMilesError, OSError)
    for error in errors:
        if not isinstance(error, expected):
            raise error
    _fail("; ".join(f"cannot start: {e}" if isinstance(e, OSError) else str(e) for e in errors))
