"""Blocks built off the event loop (application/producer.py, issue #13): what RPC sees while a
block executes in the producer's worker thread, transactions that arrive meanwhile, dev methods
serialised with the block in flight, and a shutdown in the middle of a block.

A real chain (staking + governance, plus `Hold`, a module that stops the block pipeline at its
end_block until the test lets it go) on LevelDB (whose write batch is atomic, as in the node),
the application, the devnet producer with its worker thread, and the eth/dev methods through a
Dispatcher as a client calls them. A `Gate` holds the builder thread at one of two points: in
the middle of execution (end_block) or after the block's write batch, before the loop switches
the head. No sleeps: the test waits on the gate's events and on commit events.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from consensus.keys import Ed25519Key
from cybermiles_node.application import schema
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain, PendingBlock
from cybermiles_node.application.dev_chain import DevChain
from cybermiles_node.application.dev_state import DevState
from cybermiles_node.application.producer import DevnetProducer
from cybermiles_node.application.randomness import HashChainBeacon
from cybermiles_node.governance.module import GovernanceModule
from cybermiles_node.modules import BlockOutcome, ModuleSet, SystemTxMessage
from cybermiles_node.node import chain_profile
from cybermiles_node.staking.module import StakingModule
from cybermiles_node.staking.query import members_voting_power
from cybermiles_node.system.context import BlockContext
from evm.db import LevelDB
from evm.state import StateDB
from evm.system import SystemTxResult
from genesis import dev_accounts, devnet_genesis
from rpc import Dispatcher
from rpc.dev_chain import install_dev_chain
from rpc.dev_state import DevStateApi
from tests.eth_api import eth_api

KEY = Ed25519Key.from_seed(b"\x07" * 32)
GENESIS = devnet_genesis(validator_pub_keys=[KEY.public_key], genesis_time=1_700_000_000)
NOW = 1_700_000_100
ALICE, BOB = dev_accounts(3)[1:]
CAROL = bytes([0x0C]) * 20
PRICE = 2 * 10**9
GATE_TIMEOUT_S = 60.0  # a broken test fails instead of hanging the suite


def signed(account: Any, nonce: int, value: int) -> bytes:
    fields = {
        "to": to_checksum_address(CAROL),
        "value": value,
        "gas": 21_000,
        "gasPrice": PRICE,
        "nonce": nonce,
        "chainId": GENESIS.chain_id,
    }
    return bytes(Account.sign_transaction(fields, account.private_key).raw_transaction)


class Gate:
    """Holds the builder thread once at `hold`, until `release`."""

    def __init__(self) -> None:
        self.armed = False
        self.reached = threading.Event()
        self.released = threading.Event()

    def hold(self) -> None:
        if not self.armed:
            return
        self.armed = False
        self.reached.set()
        if not self.released.wait(GATE_TIMEOUT_S):
            raise TimeoutError("the test never released the gate")

    async def wait_reached(self) -> None:
        with trio.fail_after(GATE_TIMEOUT_S):
            await trio.to_thread.run_sync(self.reached.wait, abandon_on_cancel=True)


class Hold:
    """A module whose end_block waits at the gate: the block is mid-execution (transactions
    applied, nothing sealed or written)."""

    name = "hold"
    kinds: frozenset[str] = frozenset()
    fee_recipient: bytes | None = None

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        pass

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        self.gate.hold()
        return BlockOutcome()

    def check_tx(self, msg: SystemTxMessage, storage: StateDB, height: int, time: int) -> None:
        raise AssertionError("owns no transaction kind")

    def gas_of(self, msg: SystemTxMessage, storage: StateDB) -> int:
        raise AssertionError("owns no transaction kind")

    def deliver_tx(
        self, msg: SystemTxMessage, storage: StateDB, height: int, time: int
    ) -> SystemTxResult:
        raise AssertionError("owns no transaction kind")


class HeldWriteDB(LevelDB):
    """LevelDB whose block write batches (those moving the head pointer) wait at the gate once
    written: the block is whole on disk, the loop has not switched the head yet."""

    gate: Gate | None = None

    def write_batch(self, writes: dict[bytes, bytes | None], *, sync: bool) -> None:
        super().write_batch(writes, sync=sync)
        if self.gate is not None and schema.HEAD_KEY in writes:
            self.gate.hold()


class Node:
    def __init__(self, path: Path, where: str = "executing") -> None:
        self.path = path
        self.gate = Gate()
        self.db = HeldWriteDB(path)
        if where == "written":
            self.db.gate = self.gate
        hold = Hold(self.gate if where == "executing" else Gate())
        self.chain = open_chain(self.db, hold)
        self.app = ChainApp(self.chain)
        self.producer = DevnetProducer(
            self.app, coinbase=b"\x01" * 20, key=KEY, beacon=HashChainBeacon(),
            wall_clock=lambda: NOW,
        )  # fmt: skip
        self.dispatcher = Dispatcher()
        eth_api(self.app).install(self.dispatcher)
        self.dev = DevChain(self.app, self.producer)
        install_dev_chain(self.dispatcher, self.dev, enabled=True)
        backend = DevState(
            self.app, coinbase=b"\x01" * 20, randomness=keccak, lock=self.producer.lock
        )
        DevStateApi(backend).install(self.dispatcher, enabled=True)
        self.commits: list[trio.Event] = []
        self.app.on_commit.append(self._committed)

    def _committed(self, block: PendingBlock) -> None:
        for event in self.commits:
            event.set()
        self.commits.clear()

    def next_commit(self) -> trio.Event:
        event = trio.Event()
        self.commits.append(event)
        return event

    async def call(self, method: str, *params: Any) -> Any:
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        body = await self.dispatcher.handle(payload, None)
        assert body is not None
        answer = json.loads(body)
        assert "error" not in answer, answer
        return answer["result"]

    async def balance(self, address: bytes) -> int:
        return int(await self.call("eth_getBalance", "0x" + address.hex(), "latest"), 16)

    def close(self) -> None:
        self.app.close()
        self.db.close()


def open_chain(db: LevelDB, hold: Hold) -> Chain:
    modules = ModuleSet([StakingModule(), GovernanceModule(members_voting_power), hold])
    return Chain(db, GENESIS, modules=modules, profile=chain_profile(GENESIS), rewindable=True)


def run_with_producer(node: Node, scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.producer.run)
            with trio.fail_after(GATE_TIMEOUT_S):
                await scenario()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        node.close()


@pytest.mark.parametrize("where", ["executing", "written"])
def test_reads_see_the_old_head_until_the_commit_switches_it(tmp_path: Path, where: str) -> None:
    node = Node(tmp_path / "db", where)
    genesis_hash = "0x" + bytes(node.chain.head.hash).hex()

    async def scenario() -> None:
        node.gate.armed = True
        tx = node.app.check_tx(signed(ALICE, 0, 5))  # automine wakes
        tx_hash = "0x" + tx.hash.hex()
        await node.gate.wait_reached()
        # Block 1 is executing (or written, not yet the head): every read is block 0's.
        for _ in range(2):  # and stays so, whatever runs on the loop meanwhile
            assert await node.call("eth_blockNumber") == "0x0"
            latest = await node.call("eth_getBlockByNumber", "latest", False)
            assert latest["hash"] == genesis_hash
            assert await node.call("eth_getBlockByNumber", "0x1", False) is None
            assert await node.balance(CAROL) == 0
            assert await node.call("eth_getTransactionReceipt", tx_hash) is None
            assert int(await node.call("eth_getTransactionCount", "0x" + ALICE.address.hex(),
                                       "latest"), 16) == 0  # fmt: skip
            await trio.testing.wait_all_tasks_blocked()
        committed = node.next_commit()
        node.gate.released.set()
        await committed.wait()
        assert await node.call("eth_blockNumber") == "0x1"
        assert await node.balance(CAROL) == 5
        receipt = await node.call("eth_getTransactionReceipt", tx_hash)
        assert receipt["blockNumber"] == "0x1" and receipt["status"] == "0x1"
        latest = await node.call("eth_getBlockByNumber", "latest", False)
        assert latest["transactions"] == [tx_hash]

    run_with_producer(node, scenario)


def test_transactions_sent_while_a_block_executes_go_into_the_next(tmp_path: Path) -> None:
    node = Node(tmp_path / "db")

    async def scenario() -> None:
        node.gate.armed = True
        first = node.app.check_tx(signed(ALICE, 0, 1))
        await node.gate.wait_reached()
        # The builder has its candidates; these arrive during execution.
        later = [node.app.check_tx(signed(ALICE, 1, 2)), node.app.check_tx(signed(BOB, 0, 3))]
        assert node.app.pending_count == 3
        second = node.next_commit()
        node.gate.released.set()
        await second.wait()
        assert [tx.hash for tx in node.chain.transactions(1)] == [first.hash]
        while node.chain.head_number < 2:
            await node.next_commit().wait()
        assert {tx.hash for tx in node.chain.transactions(2)} == {tx.hash for tx in later}
        assert node.app.pending_count == 0 and len(node.app.mempool) == 0
        assert await node.balance(CAROL) == 6

    run_with_producer(node, scenario)


def test_dev_methods_wait_for_the_block_in_flight(tmp_path: Path) -> None:
    node = Node(tmp_path / "db")
    done: list[str] = []

    async def dev_calls() -> None:
        snapshot = await node.call("evm_snapshot")
        done.append("evm_snapshot")
        await node.call("anvil_setBalance", "0x" + CAROL.hex(), "0x64")
        done.append("anvil_setBalance")
        assert await node.call("evm_revert", snapshot) is True
        done.append("evm_revert")

    async def scenario() -> None:
        node.gate.armed = True
        node.app.check_tx(signed(ALICE, 0, 5))
        await node.gate.wait_reached()
        async with trio.open_nursery() as calls:
            calls.start_soon(dev_calls)
            await trio.testing.wait_all_tasks_blocked()
            assert done == [] and node.chain.head_number == 0  # all queued behind block 1
            node.gate.released.set()
        # The snapshot was taken after block 1, the edit made block 2, the revert undid it.
        assert done == ["evm_snapshot", "anvil_setBalance", "evm_revert"]
        assert node.chain.head_number == 1
        assert await node.balance(CAROL) == 5

    run_with_producer(node, scenario)


def test_evm_mine_waits_for_the_automined_block_and_builds_on_it(tmp_path: Path) -> None:
    node = Node(tmp_path / "db")

    async def scenario() -> None:
        node.gate.armed = True
        node.app.check_tx(signed(ALICE, 0, 5))
        await node.gate.wait_reached()
        async with trio.open_nursery() as calls:
            calls.start_soon(node.call, "evm_mine")
            calls.start_soon(node.call, "evm_setAutomine", False)
            await trio.testing.wait_all_tasks_blocked()
            assert node.chain.head_number == 0
            node.gate.released.set()
        assert node.chain.head_number == 2  # the automined block, then evm_mine's
        assert node.chain.header_by_number(2).parent_hash == node.chain.header_by_number(1).hash  # type: ignore[union-attr]
        node.app.check_tx(signed(BOB, 0, 1))
        await trio.testing.wait_all_tasks_blocked()
        assert node.chain.head_number == 2 and node.app.pending_count == 1  # automine is off

    run_with_producer(node, scenario)


@pytest.mark.parametrize("where", ["executing", "written"])
def test_a_shutdown_during_a_block_leaves_it_whole_on_disk(tmp_path: Path, where: str) -> None:
    node = Node(tmp_path / "db", where)
    sent = node.app.check_tx(signed(ALICE, 0, 5))

    async def main() -> None:
        node.gate.armed = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(node.producer.run)
            await node.gate.wait_reached()
            nursery.cancel_scope.cancel()  # SIGTERM: the node's nursery is cancelled
            node.gate.released.set()
        # The producer waited for its thread and finished the block before the cancellation
        # took effect (at its next checkpoint): committed whole, in memory as on disk.
        assert node.chain.head_number == 1

    try:
        trio.run(main)
    finally:
        node.close()
    db = LevelDB(tmp_path / "db")
    try:
        reopened = open_chain(db, Hold(Gate()))
        assert reopened.head_number == 1
        assert [tx.hash for tx in reopened.transactions(1)] == [sent.hash]
        assert reopened.tx_location(sent.hash) == (1, 0)
        assert len(reopened.receipts(1)) == 1
        assert reopened.state_at().get_balance(CAROL) == 5
    finally:
        db.close()
