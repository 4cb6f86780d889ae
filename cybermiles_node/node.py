"""The composition root: the one place where concrete pieces are wired into a running node.

`run_node` opens the LevelDB store, builds the chain and the application, registers the
JSON-RPC methods, starts the HTTP/WebSocket server and the block producer, and feeds committed
blocks and new pending transactions to filters and subscriptions. It runs until cancelled
(SIGINT/SIGTERM in the CLI) and always closes the database on the way out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from cybermiles_node.app import AppConfig, ChainApp
from cybermiles_node.chain import Chain, PendingBlock
from cybermiles_node.config import HomeLayout, NodeConfig
from cybermiles_node.errors import InvariantViolation
from cybermiles_node.mempool import MempoolConfig
from cybermiles_node.producer import DevnetProducer
from evm.db import LevelDB
from evm.transactions import SignedTx
from genesis import Genesis, dev_accounts, load_genesis
from rpc import Dispatcher, FilterRegistry, SubscriptionHub, serve
from rpc.dev_accounts import DevAccountsApi
from rpc.eth import EthApi, client_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeInfo:
    rpc_port: int
    chain_id: int
    head: int


def open_chain(layout: HomeLayout, config: NodeConfig, genesis: Genesis) -> tuple[LevelDB, Chain]:
    db = LevelDB(layout.chain_db)
    try:
        return db, Chain(db, genesis, sync_writes=config.sync_writes)
    except BaseException:
        db.close()
        raise


def app_config(config: NodeConfig) -> AppConfig:
    m = config.mempool
    return AppConfig(
        mempool=MempoolConfig(
            max_txs=m.max_txs,
            max_bytes=m.max_bytes,
            max_per_sender=m.max_per_sender,
            max_nonce_gap=m.max_nonce_gap,
        ),
        recovery_workers=config.recovery_workers,
    )


async def run_node(
    home: Any,
    config: NodeConfig,
    *,
    on_ready: Callable[[NodeInfo], None] = lambda info: None,
) -> None:
    layout = HomeLayout(home)
    genesis = load_genesis(layout.genesis_file)
    db, chain = open_chain(layout, config, genesis)
    app = ChainApp(chain, app_config(config))
    try:
        await _serve(app, genesis, config, on_ready)
    finally:
        app.close()
        db.close()


async def _serve(
    app: ChainApp, genesis: Genesis, config: NodeConfig, on_ready: Callable[[NodeInfo], None]
) -> None:
    dispatcher = Dispatcher(max_batch=config.rpc.max_batch, fatal=(InvariantViolation,))
    filters = FilterRegistry(clock=trio.current_time)
    hub = SubscriptionHub()
    dev_keys = dev_accounts(config.devnet.accounts) if config.devnet.enabled else []
    api = EthApi(
        app,
        filters=filters,
        hub=hub,
        client_version=client_version(genesis.evm_profile),
        accounts=lambda: [a.address for a in dev_keys],
    )
    api.install(dispatcher)
    if config.devnet.enabled:
        DevAccountsApi(api, {a.address: a.private_key for a in dev_keys}).install(dispatcher)
    async with trio.open_nursery() as nursery:
        send, receive = trio.open_memory_channel[Any](10_000)
        app.on_commit.append(lambda block: _queue(send, ("block", block)))
        app.on_pending.append(lambda txs: _queue(send, ("pending", txs)))
        nursery.start_soon(_publish, api, hub, receive)
        port = await nursery.start(
            lambda task_status: serve(
                dispatcher,
                host=config.rpc.host,
                port=config.rpc.port,
                max_body_bytes=config.rpc.max_body_bytes,
                cors_origins=config.rpc.cors_origins,
                task_status=task_status,
            )
        )
        if config.devnet.enabled:
            coinbase = genesis.validators[0].owner if genesis.validators else b"\x00" * 20
            producer = DevnetProducer(
                app,
                coinbase=coinbase,
                block_time=config.devnet.block_time,
                batch_window=config.devnet.batch_window_ms / 1000,
            )
            nursery.start_soon(producer.run)
        on_ready(NodeInfo(rpc_port=port, chain_id=genesis.chain_id, head=app.chain.head_number))


def _queue(send: Any, item: tuple[str, Any]) -> None:
    try:
        send.send_nowait(item)
    except trio.WouldBlock:
        log.warning("notification queue full: subscribers miss an event")


async def _publish(api: EthApi, hub: SubscriptionHub, receive: Any) -> None:
    """Filters and subscriptions hear about blocks and pending transactions off the hot path."""
    async for kind, payload in receive:
        if kind == "block":
            block: PendingBlock = payload
            head_json, logs = api.block_notifications(block.header)
            await hub.publish_new_head(head_json)
            if logs:
                await hub.publish_logs(logs)
        else:
            txs: list[SignedTx] = payload
            hashes = api.pending_notifications(txs)
            await hub.publish_pending(hashes)
