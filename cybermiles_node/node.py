"""The composition root: the one place where concrete pieces are wired into a running node.

`run_node` first reads and checks the home (cybermiles_node.operator.startup: every refusal to start
happens there, before a port is bound or a line logged), raises the open-files limit, opens the
LevelDB store, builds the chain, refuses a chain that no longer accepts the declared program
version (`check_program_version`), builds the application, registers the JSON-RPC methods,
starts the HTTP/WebSocket server, waits for the genesis time if it is still ahead (RPC already
answers), then starts the block producer or BFT consensus, and feeds committed blocks and new
pending transactions to filters and subscriptions. It runs until cancelled (SIGINT/SIGTERM in
the CLI) or until a committed block halts the chain (`ChainHalted`, application/app.py), and
always closes the database and the WAL on the way out.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from cybermiles_node.accounts.backend import NodeAccounts
from cybermiles_node.accounts.keystore import Keystore, keystore_dir
from cybermiles_node.accounts.unlock import Unlocker
from cybermiles_node.application.app import AppConfig, ChainApp, ChainHalted
from cybermiles_node.application.chain import Chain, PendingBlock
from cybermiles_node.application.consensus_app import ConsensusRecords, consensus_chain_id
from cybermiles_node.application.dev_chain import DevChain
from cybermiles_node.application.dev_state import DevState
from cybermiles_node.application.producer import DevnetProducer
from cybermiles_node.application.queries import CmtQueries
from cybermiles_node.application.randomness import VrfBeacon
from cybermiles_node.application.staking_txs import CmtTransactions
from cybermiles_node.errors import InvariantViolation
from cybermiles_node.governance.module import GovernanceModule
from cybermiles_node.governance.precompile import governance_precompiles
from cybermiles_node.governance.versions import PROGRAM_NAME
from cybermiles_node.modules import ModuleSet
from cybermiles_node.operator.activity import log_block
from cybermiles_node.operator.collector import collect_periodically, managed_collector
from cybermiles_node.operator.config import (
    HomeLayout,
    NodeConfig,
    debug_api_enabled,
    explorer_enabled,
    node_accounts_enabled,
    unlock_allowed,
)
from cybermiles_node.operator.failpoints import failpoint_modules
from cybermiles_node.operator.native_memory import (
    MALLOC_TRIM_INTERVAL_S,
    limit_malloc_arenas,
    trim_malloc,
)
from cybermiles_node.operator.startup import (
    ConsensusFiles,
    NodeFiles,
    OpenFilesLimit,
    check_program_version,
    open_node_files,
    raise_open_files_limit,
    seconds_until,
    unlock_configured_accounts,
)
from cybermiles_node.operator.status import stored_decision
from cybermiles_node.staking.module import StakingModule
from cybermiles_node.staking.precompile import STAKING_PRECOMPILES
from cybermiles_node.staking.query import members_voting_power
from cybermiles_node.txpool.mempool import MempoolConfig
from evm.db import LevelDB
from evm.profiles import EvmProfile, get_profile
from evm.transactions import SignedTx
from genesis import Genesis, dev_accounts
from genesis.schema import format_genesis_time
from rpc import Dispatcher, FilterRegistry, SubscriptionHub, serve
from rpc.budget import BatchBudget
from rpc.cmt import CmtApi
from rpc.cmt_chain import CmtChainApi
from rpc.cmt_tx import CmtTxApi, CommitSignal
from rpc.debug import DebugApi
from rpc.dev_chain import compat_client_version, install_dev_chain
from rpc.dev_state import DevStateApi
from rpc.eth import EthApi, client_version
from rpc.execution import EvmWorker
from rpc.node_signing import SendTransactionApi, TransactionSigner
from rpc.params import hex_data
from rpc.personal import PersonalApi
from rpc.server import ServerLimits
from rpc.static import explorer_site

if TYPE_CHECKING:  # the BFT stack, imported by `assemble_bft` (a devnet node never needs it)
    from consensus.blocksync import BlocksyncReactor
    from consensus.host import ConsensusHost
    from cybermiles_node.application.consensus_app import ChainConsensus
    from cybermiles_node.operator.metrics import Counter, NodeMetrics
    from cybermiles_node.operator.status import NodeStatus
    from p2p import Switch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeInfo:
    rpc_port: int
    chain_id: int
    head: int
    program_version: str  # what the node declares to the chain's program requirement


def open_chain(layout: HomeLayout, config: NodeConfig, genesis: Genesis) -> tuple[LevelDB, Chain]:
    db = LevelDB(layout.chain_db)
    try:
        return db, Chain(
            db,
            genesis,
            modules=chain_modules(),
            profile=chain_profile(genesis),
            sync_writes=config.sync_writes,
            record_preimages=config.devnet.enabled,  # state dumps (application/dev_state.py)
            rewindable=dev_chain_enabled(config),
        )
    except BaseException:
        db.close()
        raise


def dev_chain_enabled(config: NodeConfig) -> bool:
    """Whether the dev chain methods (evm_revert & co.) drive this node: a one-node devnet."""
    return config.devnet.enabled and config.consensus.engine == "automine"


def chain_modules() -> ModuleSet:
    """The modules every node runs, in their fixed order (DESIGN.md §7), and those a test's
    failpoint adds (operator/failpoints.py; none without the variable)."""
    return ModuleSet(
        [StakingModule(), GovernanceModule(members_voting_power), *failpoint_modules()]
    )


def chain_profile(genesis: Genesis) -> EvmProfile:
    """The genesis's EVM profile with the modules' precompiles (DESIGN.md §7): blocks,
    admission and eth_call/eth_estimateGas all execute through `Chain.profile`."""
    precompiles = {**STAKING_PRECOMPILES, **governance_precompiles(members_voting_power)}
    return get_profile(genesis.evm_profile).with_precompiles(precompiles)


def app_config(config: NodeConfig, program_version: str | None = None) -> AppConfig:
    m = config.mempool
    settings = AppConfig(
        mempool=MempoolConfig(
            max_txs=m.max_txs,
            max_bytes=m.max_bytes,
            max_per_sender=m.max_per_sender,
            max_nonce_gap=m.max_nonce_gap,
        ),
        recovery_workers=config.recovery_workers,
    )
    if program_version is None:  # the package's own (AppConfig's default)
        return settings
    return replace(settings, program_version=program_version)


GIL_SWITCH_INTERVAL_S = 0.001
# How long a BFT node that halted stays on the network for peers still getting the halting
# block (`_linger`): a few blocksync status intervals and a block's round trip.
HALT_LINGER_S = 10.0
LINGER_POLL_S = 0.1


async def run_node(
    home: Any,
    config: NodeConfig,
    *,
    program_version: str | None = None,
    on_ready: Callable[[NodeInfo], None] = lambda info: None,
) -> None:
    """Run the node of `home`; `program_version` ("vX.Y.Z") is the version it declares to the
    chain's program requirement (None: the package's own, DEFAULT_PROGRAM_VERSION)."""
    layout = HomeLayout(home)
    files = open_node_files(layout, bft=config.consensus.engine == "bft")
    # RPC execution and devnet block building run in worker threads that hold the GIL while
    # the EVM spins; a thread waiting for the GIL gets it after at most this interval
    # (Python's default: 5 ms), and the event loop waits for it again after every socket
    # operation. 1 ms keeps consensus, p2p and RPC responsive while they run: with blocks of
    # 2,000 transfers executing back to back, p99 of eth_blockNumber/eth_getBalance was
    # 18-28 ms at 1 ms, 59-74 ms at 5 ms, 32-40 ms at 0.5 ms, throughput within the noise
    # (DECISIONS "Blocks off the event loop").
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    limit_malloc_arenas()  # before the node's threads (operator/native_memory.py)
    try:
        limit = raise_open_files_limit()  # before LevelDB opens its files
        db, chain = open_chain(layout, config, files.genesis)
        try:
            settings = app_config(config, program_version)
            # The last refusal, still before the first log line (operator/startup.py).
            check_program_version(chain, settings.program_version)
            _log_open_files_limit(limit)
            log.info("program: %s %s", PROGRAM_NAME, settings.program_version)
            app = ChainApp(chain, settings)
            app.recovery.start()  # forked before the node has threads of its own
            try:
                with managed_collector():  # operator/collector.py
                    await _serve(app, files, config, layout, on_ready)
            finally:
                app.close()
        finally:
            db.close()
    finally:
        files.close()


def _log_open_files_limit(limit: OpenFilesLimit) -> None:
    if limit.after > limit.before:
        log.info("open files limit raised from %d to %d", limit.before, limit.after)
    else:
        log.info("open files limit: %d", limit.after)


async def wait_for_genesis(genesis_time: int) -> None:
    """Sleep until `genesis_time` (unix seconds) when it is ahead, as Tendermint does: nothing
    may be decided before the chain's start. Re-checked after waking, against the wall clock
    (trio sleeps on the monotonic clock)."""
    delay = seconds_until(genesis_time, time.time())
    if delay > 0:
        log.info(
            "waiting for genesis time %s (in %d s)",
            format_genesis_time(genesis_time),
            math.ceil(delay),
        )
    while delay > 0:
        await trio.sleep(delay)
        delay = seconds_until(genesis_time, time.time())


async def _serve(
    app: ChainApp,
    files: NodeFiles,
    config: NodeConfig,
    layout: HomeLayout,
    on_ready: Callable[[NodeInfo], None],
) -> None:
    genesis = files.genesis
    rpc = config.rpc
    dispatcher = Dispatcher(
        max_batch=rpc.max_batch,
        max_response_bytes=rpc.max_response_bytes,
        fatal=(InvariantViolation,),
        batch_budget=BatchBudget(max_cost=rpc.batch_max_cost, max_seconds=rpc.batch_time_budget),
    )
    filters = FilterRegistry(
        clock=trio.current_time,
        max_filters=rpc.max_filters,
        max_per_owner=rpc.max_filters_per_client,
    )
    hub = SubscriptionHub(
        max_per_session=rpc.max_subscriptions_per_connection, max_total=rpc.max_subscriptions
    )
    accounts = node_accounts(config, layout) if node_accounts_enabled(config) else None
    unlocker = accounts.unlocker if accounts is not None else None
    if unlocked_at_start := unlock_configured_accounts(unlocker, config, layout.home):
        log.info("unlocked %d keystore accounts ([accounts] unlock)", unlocked_at_start)
    api = EthApi(
        app,
        filters=filters,
        hub=hub,
        client_version=compat_client_version(
            config.devnet.client_version_compat, client_version(genesis.evm_profile)
        ),
        evm=EvmWorker(timeout=config.rpc.evm_timeout),
        gas_cap=config.rpc.gas_cap,
        accounts=accounts.addresses if accounts is not None else list,
        max_response_bytes=rpc.max_response_bytes,
        pending_nonce_compat=rpc.pending_nonce_compat,
    )
    api.install(dispatcher)
    CmtApi(CmtQueries(app.chain)).install(dispatcher)
    cmt_transactions = CmtTransactions(app)
    CmtChainApi(
        api,
        cmt_transactions,
        chain_name=consensus_chain_id(genesis, bytes(app.chain.genesis_header.hash)),
        decision=partial(stored_decision, ConsensusRecords(app.chain.db)),
    ).install(dispatcher)
    producer = devnet_producer(app, files, config) if files.consensus is None else None
    # Dev state methods (rpc/dev_state.py): a one-node automine devnet only edits its state,
    # between the producer's blocks (its block lock).
    dev_state = DevStateApi(
        dev_state_backend(app, files, producer.lock) if producer is not None else None
    )
    dev_state.install(dispatcher, enabled=config.devnet.enabled)
    signer = None
    if accounts is not None:  # node-side signing (SPEC §8): devnets, or enabled in config
        PersonalApi(accounts, unlock_allowed=unlock_allowed(rpc)).install(dispatcher)
        signer = TransactionSigner(accounts)
        impersonator = dev_state if config.devnet.enabled else None
        SendTransactionApi(api, signer, impersonator).install(dispatcher)
    if config.log.activity:  # devnets: a line per block and transaction (operator/activity.py)
        app.on_commit.append(log_block)
    commits = CommitSignal()
    app.on_commit.append(lambda _block: commits.notify())
    CmtTxApi(cmt_transactions, signer, commits).install(dispatcher)
    DebugApi(api, app.chain, max_response_bytes=rpc.max_response_bytes).install(
        dispatcher, enabled=debug_api_enabled(config)
    )
    dev_chain = DevChain(app, producer) if producer is not None else None
    if dev_chain is not None:
        dev_chain.on_rewind.append(lambda hashes: filters.rewind(hex_data(h) for h in hashes))
    install_dev_chain(dispatcher, dev_chain, enabled=config.devnet.enabled)
    async with trio.open_nursery() as nursery:
        send, receive = trio.open_memory_channel[Any](10_000)
        app.on_commit.append(lambda block: _queue(send, ("block", block)))
        app.on_pending.append(lambda txs: _queue(send, ("pending", txs)))
        nursery.start_soon(_publish, api, hub, receive)
        nursery.start_soon(_trim_malloc_periodically)
        nursery.start_soon(collect_periodically)
        port = await nursery.start(
            lambda task_status: serve(
                dispatcher,
                host=rpc.host,
                port=rpc.port,
                limits=server_limits(config),
                cors_origins=rpc.cors_origins,
                pages=explorer_site() if explorer_enabled(config) else None,
                task_status=task_status,
            )
        )
        await wait_for_genesis(genesis.genesis_time)
        if producer is not None:
            nursery.start_soon(producer.run)
        else:
            bft = await nursery.start(
                run_bft, app, files, files.consensus, config, dispatcher, layout
            )
            api.peer_count = lambda: len(bft.switch.peers())
            api.sync_target = lambda: (
                bft.blocksync.best_peer_height() if bft.blocksync.catching_up else None
            )
        on_ready(
            NodeInfo(
                rpc_port=port,
                chain_id=genesis.chain_id,
                head=app.chain.head_number,
                program_version=app.config.program_version,
            )
        )


async def _trim_malloc_periodically() -> None:
    """Hand freed heap pages back to the system now and then (operator/native_memory.py), in
    a worker thread: the event loop never waits for it."""
    while True:
        await trio.sleep(MALLOC_TRIM_INTERVAL_S)
        await trio.to_thread.run_sync(trim_malloc)


def devnet_coinbase(genesis: Genesis) -> bytes:
    """The coinbase of a one-node devnet's blocks: the first validator's owner."""
    return genesis.validators[0].owner if genesis.validators else b"\x00" * 20


def dev_state_backend(app: ChainApp, files: NodeFiles, lock: trio.Lock) -> DevState:
    """Edit blocks made like the producer's: its coinbase, its VRF randomness, under its lock."""
    beacon, key = VrfBeacon(), files.validator_key
    return DevState(
        app,
        coinbase=devnet_coinbase(files.genesis),
        randomness=lambda parent_mix: beacon.produce(key, parent_mix)[0],
        lock=lock,
    )


def devnet_producer(app: ChainApp, files: NodeFiles, config: NodeConfig) -> DevnetProducer:
    """The one-node devnet's block producer (started once RPC is up and genesis time came)."""
    genesis = files.genesis
    return DevnetProducer(
        app,
        coinbase=devnet_coinbase(genesis),
        key=files.validator_key,
        beacon=VrfBeacon(),
        block_time=config.devnet.block_time,
        batch_window=config.devnet.batch_window_ms / 1000,
    )


def node_accounts(config: NodeConfig, layout: HomeLayout) -> NodeAccounts:
    """The keystore of the home, unlocked for a while on request, plus a devnet's mnemonic
    accounts (always unlocked)."""
    dev_keys = dev_accounts(config.devnet.accounts) if config.devnet.enabled else []
    keystore = Keystore(keystore_dir(layout.home))
    return NodeAccounts(
        keystore, Unlocker(keystore, time.monotonic), {a.address: a.private_key for a in dev_keys}
    )


def server_limits(config: NodeConfig) -> ServerLimits:
    rpc = config.rpc
    return ServerLimits(
        max_body_bytes=rpc.max_body_bytes,
        max_connections=rpc.max_connections,
        read_timeout_s=rpc.read_timeout,
        idle_timeout_s=rpc.idle_timeout,
        ws_queue_bytes=rpc.ws_queue_bytes,
    )


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
            canonical = api.chain.header_by_number(block.number)
            if canonical is None or bytes(canonical.hash) != block.hash:
                continue  # deleted by a devnet's evm_revert before its turn came
            head_json, logs = api.block_notifications(block.header)
            await hub.publish_new_head(head_json)
            if logs:
                await hub.publish_logs(logs)
        else:
            txs: list[SignedTx] = payload
            hashes = api.pending_notifications(txs)
            await hub.publish_pending(hashes)


# -- BFT ------------------------------------------------------------------------------------
@dataclass
class BftNode:
    """The BFT pieces of a running node, wired together."""

    consensus: ChainConsensus
    host: ConsensusHost
    switch: Switch
    blocksync: BlocksyncReactor
    status: NodeStatus
    metrics: NodeMetrics


def assemble_bft(
    app: ChainApp, files: NodeFiles, opened: ConsensusFiles, config: NodeConfig, layout: HomeLayout
) -> BftNode:
    from consensus.blocksync import BlocksyncReactor
    from consensus.driver import ConsensusDriver
    from consensus.evidence import EvidencePool
    from consensus.host import ConsensusHost, EarlyStart
    from consensus.reactor import ConsensusReactor
    from cybermiles_node.application.consensus_app import ChainConsensus
    from cybermiles_node.operator.failpoints import gossip_with_failpoints, with_failpoints
    from cybermiles_node.operator.metrics import NodeMetrics
    from cybermiles_node.operator.status import NodeStatus
    from p2p import MempoolReactor, Switch

    genesis, node_key, validator_key = files.genesis, files.node_key, files.validator_key
    consensus = ChainConsensus(
        app,
        genesis=genesis,
        key=validator_key,
        beacon=VrfBeacon(),
        max_clock_drift_s=config.consensus.max_clock_drift_ms / 1000,
    )
    signer = with_failpoints(opened.signer)
    evidence = consensus.evidence_pool = EvidencePool()
    driver = ConsensusDriver(
        chain_id=consensus.chain_id,
        state=consensus.state,
        source=consensus,
        staged=consensus,  # blocks built, validated and written in the host's worker thread
        wal=opened.wal,
        signer=signer,
        timeouts=genesis.timeouts,
        evidence=evidence,
        skip_timeout_commit=config.consensus.skip_timeout_commit,
    )
    early_start = EarlyStart(
        work_waiting=lambda: app.pending_count > 0,
        grace_s=config.consensus.early_start_grace_ms / 1000,
    )
    host = ConsensusHost(
        driver, early_start=early_start if config.consensus.early_height_start else None
    )
    app.on_pending.append(lambda _txs: host.poke())
    consensus_reactor = ConsensusReactor(host)
    host.gossip = gossip_with_failpoints(consensus_reactor, validator_key, consensus.chain_id)
    blocksync = BlocksyncReactor(host, consensus)
    reactors: list[Any] = [consensus_reactor, blocksync, MempoolReactor(app)]
    switch = Switch(
        node_key,
        consensus.chain_id,
        config.p2p,
        reactors,
        moniker=config.moniker,
        address_book_path=layout.address_book_file,
    )
    consensus_reactor.punish = switch.punish
    status = NodeStatus(
        consensus=consensus,
        node_key=node_key,
        validator_key=validator_key,
        moniker=config.moniker,
        net_info=switch.net_info,
        round_state=lambda: host.driver.state,
        listen_addr=lambda: switch.listen_addr,
        catching_up=lambda: blocksync.catching_up,
    )
    metrics = NodeMetrics()
    _wire_metrics(metrics, app, host)
    return BftNode(consensus, host, switch, blocksync, status, metrics)


def _wire_metrics(metrics: NodeMetrics, app: ChainApp, host: ConsensusHost) -> None:
    last_round = [-1, -1]
    last_commit: list[float] = []  # when this node committed the previous block

    def on_step() -> None:
        state = host.driver.state  # not driver.status: this runs after every consensus input
        metrics.consensus_round.set(state.round)
        if [state.height, state.round] != last_round:
            last_round[:] = [state.height, state.round]
            metrics.consensus_rounds_total.inc()

    def on_commit(block: PendingBlock) -> None:
        # Wall time between commits: header timestamps are whole seconds.
        now = time.monotonic()
        if last_commit:
            metrics.consensus_block_interval_seconds.observe(now - last_commit[0])
        last_commit[:] = [now]
        metrics.consensus_height.set(block.number)
        metrics.consensus_committed_txs_total.inc(len(block.result.transactions))

    host.on_step.append(on_step)
    app.on_commit.append(on_commit)
    metrics.consensus_height.set(app.chain.head_number)


async def run_bft(
    app: ChainApp,
    files: NodeFiles,
    opened: ConsensusFiles,
    config: NodeConfig,
    dispatcher: Dispatcher,
    layout: HomeLayout,
    *,
    task_status: trio.TaskStatus[BftNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run consensus, the p2p switch, the status endpoint and metrics until cancelled (the WAL
    in `opened` is closed by whoever opened it)."""
    from cybermiles_node.operator.metrics import MetricsApp
    from rpc.server import serve_asgi
    from rpc.tendermint import TendermintApp

    bft = assemble_bft(app, files, opened, config, layout)
    async with trio.open_nursery() as nursery:
        await nursery.start(bft.switch.run)
        await nursery.start(partial(_run_consensus, bft))
        if config.status.enabled:
            await nursery.start(
                partial(
                    serve_asgi,
                    TendermintApp(bft.status),
                    host=config.status.host,
                    port=config.status.port,
                    name="status endpoint",
                )
            )
        if config.metrics.enabled:
            await nursery.start(
                partial(
                    serve_asgi,
                    MetricsApp(bft.metrics.registry),
                    host=config.metrics.host,
                    port=config.metrics.port,
                    name="metrics",
                )
            )
        nursery.start_soon(_sample_gauges, bft, app, dispatcher)
        task_status.started(bft)


async def _run_consensus(
    bft: BftNode, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """The consensus host, until a committed block halts the chain: ChainHalted leaves the
    driver from inside the commit, so nothing of H+1 is decided or signed. The node then stays
    on the network a little longer (`_linger`) before the halt ends it: a peer still deciding
    the halting block may need our precommit, which the commit cut off before its broadcast
    (the reactor's gossip re-offers it), and a peer behind fetches the block by blocksync."""
    try:
        await bft.host.run(task_status=task_status)
    except* ChainHalted:
        await _linger(bft.blocksync, bft.consensus.committed_height())
        raise


async def _linger(blocksync: BlocksyncReactor, height: int) -> None:
    """Until every peer announced `height` (peers announce every few seconds), at most
    HALT_LINGER_S: a peer that is far behind or gone must not hold the halt."""
    log.info("halted at block %d: staying up to %g s for peers to reach it", height, HALT_LINGER_S)
    with trio.move_on_after(HALT_LINGER_S):
        while (lowest := blocksync.lowest_peer_height()) is not None and lowest < height:
            await trio.sleep(LINGER_POLL_S)


async def _sample_gauges(bft: BftNode, app: ChainApp, dispatcher: Dispatcher) -> None:
    """Gauges and the counters other components keep as plain integers, once a second."""
    m = bft.metrics
    while True:
        m.p2p_peers.set(len(bft.switch.peers()))
        m.mempool_size.set(len(app.mempool))
        m.consensus_validators.set(len(bft.consensus.state.validators))
        _catch_up(m.p2p_bans_total, bft.switch.bans_total)
        _catch_up(m.mempool_rejected_total, app.rejected_total)
        _catch_up(m.rpc_requests_total, dispatcher.requests_handled)
        await trio.sleep(1.0)


def _catch_up(counter: Counter, total: int) -> None:
    if total > counter.value():
        counter.inc(total - counter.value())
