"""Dev chain control (rpc/dev_chain.py over application/dev_chain.py): snapshots and reverts,
resets, mining, time, mining modes, the block gas limit, dropping transactions, bad input.

A real chain (staking + governance modules) on a MemoryDB, its application and devnet producer
on a clock the test moves; methods are called through a Dispatcher as a client calls them.
Reverted chains are checked against a reference chain that never saw the reverted blocks (same
blocks from the same inputs: identical hashes and state roots), and the flat state snapshot
against the tries.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
import rlp
import trio
import trio.testing
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.keys import Ed25519Key
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.dev_chain import DevChain
from cybermiles_node.application.producer import BlockRunner, DevnetProducer, on_the_loop
from cybermiles_node.application.randomness import HashChainBeacon
from cybermiles_node.errors import InvariantViolation
from cybermiles_node.node import chain_modules, chain_profile
from evm import flat
from evm.db import MemoryDB, OverlayDB
from evm.state import StateDB
from evm.transactions import SignedTx
from genesis import Genesis, dev_accounts, devnet_genesis
from rpc import Dispatcher, FilterRegistry
from rpc.dev_chain import (
    CLIENT_VERSION_PREFIXES,
    MAX_MINED_BLOCKS,
    DevChainApi,
    compat_client_version,
    install_dev_chain,
)
from rpc.filters import LogFilter
from rpc.params import hex_data
from tests.dispatch_calls import DispatcherCalls

KEY = Ed25519Key.from_seed(b"\x07" * 32)
T0 = 1_700_000_000
NOW = T0 + 100
GENESIS = devnet_genesis(validator_pub_keys=[KEY.public_key], genesis_time=T0)
LITY = devnet_genesis(validator_pub_keys=[KEY.public_key], genesis_time=T0, evm_profile="lity")
ALICE, BOB = dev_accounts(3)[1:]
CAROL = bytes([0x0C]) * 20
PRICE = 2 * 10**9

# Runtime: with calldata x, slot 0 := slot 0 + x and slot 1 := the same; without, SELFDESTRUCT
# to the caller (the lity profile wipes the storage: the flat snapshot bumps an incarnation).
RUNTIME = bytes.fromhex("36600757" + "33ff00" + "5b600054600035018060005560015500")
INIT = bytes.fromhex(f"60{len(RUNTIME):02x}600c60003960{len(RUNTIME):02x}6000f3") + RUNTIME


def signed(account: Any, nonce: int, to: bytes | None, *, value: int = 0, data: bytes = b"",
           gas: int = 21_000, chain_id: int = GENESIS.chain_id) -> bytes:  # fmt: skip
    fields: dict[str, Any] = {
        "value": value,
        "gas": gas,
        "gasPrice": PRICE,
        "nonce": nonce,
        "chainId": chain_id,
        "data": data,
    }
    if to is not None:
        fields["to"] = to_checksum_address(to)
    return bytes(Account.sign_transaction(fields, account.private_key).raw_transaction)


def contract_address(sender: bytes, nonce: int) -> bytes:
    return keccak(rlp.encode([sender, nonce]))[12:]


class Stack(DispatcherCalls):
    """Chain, application, producer, DevChain and its RPC methods, on a movable clock."""

    def __init__(self, genesis: Genesis = GENESIS, db: MemoryDB | None = None,
                 rewindable: bool = True, runner: BlockRunner | None = None) -> None:  # fmt: skip
        self.genesis = genesis
        self.db = db if db is not None else MemoryDB()
        self.chain = Chain(
            self.db,
            genesis,
            modules=chain_modules(),
            profile=chain_profile(genesis),
            rewindable=rewindable,
        )
        self.app = ChainApp(self.chain)
        self.now = float(NOW)
        self.producer = DevnetProducer(
            self.app,
            coinbase=b"\x01" * 20,
            key=KEY,
            beacon=HashChainBeacon(),
            wall_clock=lambda: self.now,
            runner=runner,
        )
        self.dev = DevChain(self.app, self.producer)
        self.filters = FilterRegistry(clock=lambda: 0.0)
        self.dev.on_rewind.append(lambda hashes: self.filters.rewind(hex_data(h) for h in hashes))
        self.dispatcher = Dispatcher()
        install_dev_chain(self.dispatcher, self.dev, enabled=True)

    def send(self, raw: bytes) -> SignedTx:
        return self.app.check_tx(raw)

    def mine(self, count: int = 1) -> None:
        trio.run(partial(self.dev.mine, count))

    @property
    def head(self) -> int:
        return self.chain.head_number

    def state(self) -> StateDB:
        return self.chain.state_at()

    def pool(self) -> list[bytes]:
        return [tx.hash for tx in self.app.mempool.snapshot()]

    def close(self) -> None:
        self.app.close()


@pytest.fixture
def stack() -> Any:
    made = Stack()
    yield made
    made.close()


def flat_view(chain: Chain) -> StateDB:
    """The head state read through the flat snapshot (the way blocks read it)."""
    state = StateDB(OverlayDB(chain.db, flat_snapshot=True), chain.head.state_root)
    assert state.reads_flat_snapshot, "the flat snapshot no longer describes the head"
    return state


def assert_flat_matches_tries(chain: Chain, addresses: list[bytes], slots: int = 2) -> None:
    through_flat, through_tries = flat_view(chain), chain.state_at()
    for address in addresses:
        for read in ("get_balance", "get_nonce", "get_code"):
            assert getattr(through_flat, read)(address) == getattr(through_tries, read)(address)
        for slot in range(slots):
            assert through_flat.get_storage(address, slot) == through_tries.get_storage(
                address, slot
            )


# ------------------------------------------------------------------------------- snapshots


def test_snapshot_ids_count_up_and_an_unknown_or_used_id_reverts_nothing(stack: Stack) -> None:
    assert stack.result("evm_snapshot") == "0x1"
    assert stack.result("evm_snapshot") == "0x2"
    stack.send(signed(ALICE, 0, CAROL, value=5))
    stack.mine()
    assert stack.result("evm_revert", "0x9") is False
    assert stack.result("evm_revert", 9) is False
    assert stack.head == 1  # nothing moved
    assert stack.result("evm_revert", "0x1") is True
    assert stack.head == 0
    # Reverting used up snapshot 1 and every later one (2), as Hardhat does.
    assert stack.result("evm_revert", "0x1") is False
    assert stack.result("evm_revert", "0x2") is False
    assert stack.result("evm_snapshot") == "0x3"  # ids are never reused


def test_revert_deletes_the_blocks_state_and_indexes_above_the_snapshot(stack: Stack) -> None:
    stack.send(signed(ALICE, 0, CAROL, value=5))
    stack.mine()
    before_root, before_hash = stack.chain.head.state_root, stack.chain.head.hash
    snap = stack.result("evm_snapshot")
    txs = [stack.send(signed(ALICE, 1, CAROL, value=7)), stack.send(signed(BOB, 0, CAROL, value=9))]
    stack.mine(3)
    assert stack.head == 4 and stack.state().get_balance(CAROL) == 21
    reverted = [stack.chain.header_by_number(n) for n in (2, 3, 4)]

    assert stack.result("evm_revert", snap) is True
    assert stack.head == 1
    assert stack.chain.head.hash == before_hash and stack.chain.head.state_root == before_root
    assert stack.state().get_balance(CAROL) == 5
    assert stack.state().get_nonce(ALICE.address) == 1
    assert stack.state().get_nonce(BOB.address) == 0
    for header in reverted:
        assert header is not None
        assert stack.chain.header_by_number(header.block_number) is None
        assert stack.chain.header_by_hash(header.hash) is None
        assert stack.db.get(b"u" + header.block_number.to_bytes(8, "big")) is None
    for tx in txs:
        assert stack.chain.tx_location(tx.hash) is None
    assert stack.chain.transactions(2) == [] and stack.chain.receipts(2) == []
    assert stack.pool() == []  # the pool was empty at the snapshot
    assert_flat_matches_tries(stack.chain, [ALICE.address, BOB.address, CAROL, b"\x01" * 20])


def test_nested_snapshots_revert_one_level_at_a_time(stack: Stack) -> None:
    outer = stack.result("evm_snapshot")
    stack.send(signed(ALICE, 0, CAROL, value=1))
    stack.mine()
    inner = stack.result("evm_snapshot")
    stack.send(signed(ALICE, 1, CAROL, value=2))
    stack.mine()
    assert stack.result("evm_revert", inner) is True
    assert (stack.head, stack.state().get_balance(CAROL)) == (1, 1)
    stack.send(signed(ALICE, 1, CAROL, value=4))  # the reverted nonce is free again
    stack.mine()
    assert stack.state().get_balance(CAROL) == 5
    assert stack.result("evm_revert", outer) is True
    assert (stack.head, stack.state().get_balance(CAROL)) == (0, 0)
    assert stack.state().state_root == stack.chain.genesis_header.state_root


def test_revert_restores_the_pool_of_the_snapshot(stack: Stack) -> None:
    pending = stack.send(signed(ALICE, 0, CAROL, value=1))
    queued = stack.send(signed(ALICE, 2, CAROL, value=3))  # behind a nonce gap
    snap = stack.result("evm_snapshot")
    stack.send(signed(BOB, 0, CAROL, value=2))
    stack.mine()  # takes `pending` and Bob's; `queued` waits
    assert stack.pool() == [queued.hash]
    assert stack.result("evm_revert", snap) is True
    assert stack.head == 0
    assert stack.pool() == [pending.hash, queued.hash]
    assert stack.app.mempool.pending_count == 1
    assert stack.chain.tx_location(pending.hash) is None
    stack.mine()  # the restored pool mines again, on the restored state
    assert stack.state().get_balance(CAROL) == 1


def test_revert_after_pending_transactions_only_empties_the_pool(stack: Stack) -> None:
    snap = stack.result("evm_snapshot")
    stack.send(signed(ALICE, 0, CAROL, value=1))
    stack.send(signed(BOB, 0, CAROL, value=1))
    assert stack.result("evm_revert", snap) is True
    assert stack.pool() == [] and stack.head == 0
    stack.send(signed(ALICE, 0, CAROL, value=1))  # admitted again: nonce 0 was never used


def test_revert_forgets_filter_items_of_the_deleted_blocks(stack: Stack) -> None:
    blocks = stack.filters.install_block_filter()
    logs = stack.filters.install_log_filter(LogFilter())
    pending = stack.filters.install_pending_filter()
    stack.mine()
    kept = hex_data(stack.chain.head.hash)
    stack.filters.push_block(kept, [{"blockHash": kept, "address": "0x" + "00" * 20}])
    snap = stack.result("evm_snapshot")
    stack.mine()
    gone = hex_data(stack.chain.head.hash)
    stack.filters.push_block(gone, [{"blockHash": gone, "address": "0x" + "00" * 20}])
    stack.filters.push_pending(["0x" + "ab" * 32])
    assert stack.result("evm_revert", snap) is True
    assert stack.filters.changes(blocks) == [kept]
    assert [log["blockHash"] for log in stack.filters.changes(logs)] == [kept]
    assert stack.filters.changes(pending) == ["0x" + "ab" * 32]


# ------------------------------------------------------------------- the flat state snapshot


def run_contract_scenario(stack: Stack, *, revert: bool) -> bytes:
    """Deploy the counter, add 5; [snapshot, add 7, self-destruct, add 3, revert]; add 11."""
    stack.send(signed(ALICE, 0, None, data=INIT, gas=200_000, chain_id=stack.genesis.chain_id))
    stack.mine()
    counter = contract_address(ALICE.address, 0)
    stack.send(signed(BOB, 0, counter, data=(5).to_bytes(32, "big"), gas=100_000,
                      chain_id=stack.genesis.chain_id))  # fmt: skip
    stack.mine()
    if revert:
        snap = stack.result("evm_snapshot")
        for nonce, data in enumerate([(7).to_bytes(32, "big"), b"", (3).to_bytes(32, "big")]):
            stack.send(signed(BOB, 1 + nonce, counter, data=data, gas=100_000,
                              chain_id=stack.genesis.chain_id))  # fmt: skip
            stack.mine()
        # lity's SELFDESTRUCT wiped the storage: a new incarnation of the contract's entries.
        wiped = stack.db.get(flat.incarnation_key(counter)) is not None
        assert wiped == (stack.genesis.evm_profile == "lity")
        assert stack.result("evm_revert", snap) is True
        assert stack.db.get(flat.incarnation_key(counter)) is None
    stack.send(signed(BOB, 1, counter, data=(11).to_bytes(32, "big"), gas=100_000,
                      chain_id=stack.genesis.chain_id))  # fmt: skip
    stack.mine()
    return counter


@pytest.mark.parametrize("genesis", [GENESIS, LITY], ids=["cvm", "lity"])
def test_after_a_revert_blocks_read_the_state_of_the_snapshot(genesis: Genesis) -> None:
    """The reverted blocks changed storage, wiped it (lity's SELFDESTRUCT: a new flat
    incarnation) and wrote it again; blocks after the revert read slot 0 through the flat
    snapshot, so any stale entry would change the next state root."""
    reverted, reference = Stack(genesis), Stack(genesis)
    try:
        counter = run_contract_scenario(reverted, revert=True)
        run_contract_scenario(reference, revert=False)
        assert reverted.chain.head.hash == reference.chain.head.hash
        assert reverted.state().get_storage(counter, 0) == 16
        assert_flat_matches_tries(reverted.chain, [counter, ALICE.address, BOB.address])
    finally:
        reverted.close()
        reference.close()


def test_blocks_without_undo_records_drop_the_flat_snapshot_and_stay_correct() -> None:
    """A devnet made before undo records (not rewindable) can still be reset: the state reads
    go through the tries from then on."""
    db = MemoryDB()
    old = Stack(db=db, rewindable=False)
    old.send(signed(ALICE, 0, CAROL, value=5))
    old.mine()
    old.close()
    reopened, reference = Stack(db=db), Stack()
    try:
        reopened.result("anvil_reset")
        assert reopened.head == 0 and db.get(flat.MARKER_KEY) is None
        for stack in (reopened, reference):
            stack.send(signed(ALICE, 0, CAROL, value=8))
            stack.mine()
        assert reopened.chain.head.hash == reference.chain.head.hash
        assert reopened.state().get_balance(CAROL) == 8
    finally:
        reopened.close()
        reference.close()


def test_rollback_guards(stack: Stack) -> None:
    stack.mine(2)
    with pytest.raises(InvariantViolation, match="blocks 0 to 2"):
        stack.chain.rollback(3)
    with pytest.raises(InvariantViolation, match="blocks 0 to 2"):
        stack.chain.rollback(-1)
    assert stack.chain.rollback(2) == []  # the head itself: nothing to delete
    stack.db[b"c" + (2).to_bytes(8, "big")] = b"commit"  # as a BFT chain stores its commits
    with pytest.raises(InvariantViolation, match="BFT"):
        stack.chain.rollback(0)
    assert stack.head == 2


# ------------------------------------------------------------------------------ reset


def test_reset_goes_back_to_genesis_and_start_up_settings(stack: Stack) -> None:
    stack.send(signed(ALICE, 0, CAROL, value=5))
    stack.mine(3)
    snap = stack.result("evm_snapshot")
    stack.result("evm_setBlockGasLimit", hex(50_000))
    stack.result("evm_increaseTime", 1000)
    stack.result("evm_setAutomine", False)
    stack.result("evm_setIntervalMining", 5000)
    stack.send(signed(ALICE, 1, CAROL, value=5))
    assert stack.result("hardhat_reset") is True
    assert stack.head == 0
    assert stack.state().state_root == stack.chain.genesis_header.state_root
    assert stack.pool() == []
    assert stack.result("evm_revert", snap) is False
    assert stack.chain.gas_limit == GENESIS.gas_limit
    assert (stack.producer.automine, stack.producer.interval) == (True, 0)
    assert stack.producer.clock.offset == 0
    assert stack.result("anvil_reset", {}) is None
    stack.send(signed(ALICE, 0, CAROL, value=5))  # nonce 0 again
    stack.mine()
    assert_flat_matches_tries(stack.chain, [ALICE.address, CAROL])


def test_reset_with_forking_is_refused_and_changes_nothing(stack: Stack) -> None:
    stack.mine()
    fork = {"forking": {"jsonRpcUrl": "http://example.invalid", "blockNumber": 1}}
    for method in ("hardhat_reset", "anvil_reset"):
        error = stack.error(method, fork)
        assert error["code"] == -32602 and "options.forking" in error["message"]
        error = stack.error(method, {"chainId": 5})
        assert error["code"] == -32602 and "options.chainId" in error["message"]
    assert stack.head == 1


# ------------------------------------------------------------------------------- time


def test_a_timestamp_not_after_the_latest_block_is_refused(stack: Stack) -> None:
    stack.mine()
    latest = stack.chain.head.timestamp
    for method, params in [
        ("evm_setNextBlockTimestamp", [latest]),
        ("evm_setNextBlockTimestamp", [hex(latest - 1)]),
        ("evm_mine", [latest]),
        ("evm_mine", [{"timestamp": latest - 100}]),
    ]:
        error = stack.error(method, *params)
        assert error["code"] == -32602, (method, error)
        assert "timestamp" in error["message"] and f"timestamp {latest}" in error["message"]
    assert stack.head == 1 and stack.producer.clock.pinned is None


def test_next_block_timestamp_then_time_goes_on_from_it(stack: Stack) -> None:
    assert stack.result("evm_setNextBlockTimestamp", hex(NOW + 500)) is None
    stack.mine()
    assert stack.chain.head.timestamp == NOW + 500
    stack.now += 10
    stack.mine()
    assert stack.chain.head.timestamp == NOW + 510
    assert stack.result("evm_mine", NOW + 900) == "0x0"
    assert stack.chain.head.timestamp == NOW + 900


def test_increase_time_accumulates_and_shows_in_the_next_block(stack: Stack) -> None:
    assert stack.result("evm_increaseTime", 3600) == 3600
    assert stack.result("evm_increaseTime", "0xe10") == 7200
    stack.mine()
    assert stack.chain.head.timestamp == NOW + 7200
    assert stack.result("evm_increaseTime", 0) == 7200


def test_mine_many_blocks_with_an_interval(stack: Stack) -> None:
    assert stack.result("hardhat_mine", "0x5", "0xa") is True
    assert stack.head == 5
    stamps = [stack.chain.header_by_number(n).timestamp for n in range(1, 6)]  # type: ignore[union-attr]
    assert stamps == [NOW, NOW + 10, NOW + 20, NOW + 30, NOW + 40]
    stack.mine()  # the clock goes on from the last one
    assert stack.chain.head.timestamp == NOW + 40
    assert stack.result("anvil_mine") is None  # one block, interval 1
    assert stack.head == 7
    assert stack.result("evm_mine", {"blocks": 3}) == "0x0"
    assert stack.head == 10


def test_mine_takes_the_pending_transactions(stack: Stack) -> None:
    stack.result("evm_setAutomine", False)
    tx = stack.send(signed(ALICE, 0, CAROL, value=5))
    assert stack.result("evm_mine") == "0x0"
    assert stack.chain.tx_location(tx.hash) == (1, 0)


# -------------------------------------------------------------------------- mining modes


def test_automine_off_and_interval_mining() -> None:
    stack = Stack(runner=on_the_loop)  # blocks on the loop: the mock clock must not jump them

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stack.producer.run)
            await call(stack, "evm_setAutomine", False)
            assert await call(stack, "hardhat_getAutomine") is False
            stack.send(signed(ALICE, 0, CAROL, value=5))
            await trio.sleep(30)
            assert stack.head == 0  # waits for a block on request or an interval
            await call(stack, "evm_setIntervalMining", 5000)
            await trio.sleep(5.5)
            assert stack.head == 1 and stack.app.pending_count == 0
            await trio.sleep(5)
            assert stack.head == 2  # empty blocks too
            await call(stack, "anvil_setIntervalMining", 0)
            await trio.sleep(60)
            assert stack.head == 2
            await call(stack, "anvil_setAutomine", True)
            assert await call(stack, "anvil_getAutomine") is True
            stack.send(signed(ALICE, 1, CAROL, value=5))
            await trio.sleep(1)
            assert stack.head == 3 and stack.app.pending_count == 0
            nursery.cancel_scope.cancel()

    try:
        trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        stack.close()


async def call(stack: Stack, method: str, *params: Any) -> Any:
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    body = await stack.dispatcher.handle(payload, None)
    assert body is not None
    answer = json.loads(body)
    assert "error" not in answer, answer
    return answer["result"]


# --------------------------------------------------------------------------- gas limit


def test_block_gas_limit_applies_to_the_next_blocks(stack: Stack) -> None:
    assert stack.result("evm_setBlockGasLimit", hex(100_000)) is True
    stack.mine()
    assert stack.chain.head.gas_limit == 100_000
    assert stack.chain.genesis_header.gas_limit == GENESIS.gas_limit
    refused = stack.app.check_txs([signed(ALICE, 0, None, data=INIT, gas=150_000)])[0]
    assert not isinstance(refused, SignedTx)
    for value in (hex(20_999), hex(2**63), "0x", -1, "lots", None):
        error = stack.error("evm_setBlockGasLimit", value)
        assert error["code"] == -32602 and "gasLimit" in error["message"], (value, error)
    assert stack.chain.gas_limit == 100_000


# --------------------------------------------------------------------------- the pool


def test_drop_transaction_takes_the_later_nonces_of_its_sender_too(stack: Stack) -> None:
    first = stack.send(signed(ALICE, 0, CAROL, value=1))
    stack.send(signed(ALICE, 1, CAROL, value=1))
    other = stack.send(signed(BOB, 0, CAROL, value=1))
    assert stack.result("hardhat_dropTransaction", hex_data(first.hash)) is True
    assert stack.pool() == [other.hash]
    assert stack.result("hardhat_dropTransaction", hex_data(first.hash)) is False
    assert stack.result("anvil_dropTransaction", hex_data(other.hash)) == hex_data(other.hash)
    assert stack.result("anvil_dropTransaction", hex_data(other.hash)) is None
    error = stack.error("anvil_dropTransaction", "0x1234")
    assert error["code"] == -32602 and "transactionHash" in error["message"]


# ------------------------------------------------------------------------------ bad input


BAD_CALLS: list[tuple[str, list[Any], str]] = [
    ("evm_mine", ["soon"], "timestamp"),
    ("evm_mine", [-5], "timestamp"),
    ("evm_mine", [{"blocks": "0x01"}], "options.blocks"),
    ("evm_mine", [{"blocks": MAX_MINED_BLOCKS + 1}], "options.blocks"),
    ("evm_mine", [{"timestamp": "x"}], "options.timestamp"),
    ("evm_mine", [{"block": 2}], "options.block"),
    ("anvil_mine", ["0x2", "0xzz"], "interval"),
    ("hardhat_mine", [hex(MAX_MINED_BLOCKS + 1)], "count"),
    ("hardhat_mine", [True], "count"),
    ("hardhat_mine", ["0x1", hex(2**64)], "interval"),
    ("evm_revert", ["one"], "snapshotId"),
    ("evm_revert", [None], "snapshotId"),
    ("evm_increaseTime", [-1], "seconds"),
    ("evm_increaseTime", ["3600"], "seconds"),
    ("evm_increaseTime", [2**64], "seconds"),
    ("evm_setNextBlockTimestamp", [2**64], "timestamp"),
    ("evm_setAutomine", ["true"], "enabled"),
    ("anvil_setAutomine", [1], "enabled"),
    ("evm_setIntervalMining", [[1000, 2000]], "interval"),
    ("evm_setIntervalMining", [-1], "interval"),
    ("anvil_setIntervalMining", [10**12], "interval"),
    ("hardhat_dropTransaction", ["0x" + "00" * 31], "transactionHash"),
    ("hardhat_reset", ["fork"], "options"),
]


@pytest.mark.parametrize(("method", "params", "field"), BAD_CALLS)
def test_malformed_params_are_invalid_params_naming_the_field(
    stack: Stack, method: str, params: list[Any], field: str
) -> None:
    stack.send(signed(ALICE, 0, CAROL, value=1))
    before = (stack.chain.head.hash, stack.pool(), stack.producer.clock, stack.producer.automine)
    error = stack.error(method, *params)
    assert error["code"] == -32602, error
    assert f"invalid {field}" in error["message"], error
    after = (stack.chain.head.hash, stack.pool(), stack.producer.clock, stack.producer.automine)
    assert after == before


def test_wrong_arity_is_invalid_params(stack: Stack) -> None:
    for method in ("evm_revert", "evm_increaseTime", "evm_setNextBlockTimestamp"):
        assert stack.error(method)["code"] == -32602
    assert stack.error("evm_snapshot", "0x1")["code"] == -32602


# ------------------------------------------------------------------ where they are served


def test_not_a_devnet_every_method_is_not_available(stack: Stack) -> None:
    for backend in (stack.dev, None):
        dispatcher = Dispatcher()
        install_dev_chain(dispatcher, backend, enabled=False)
        node = DispatcherCallsOn(dispatcher)
        assert sorted(dispatcher.methods()) == sorted(DevChainApi.HANDLERS)
        for method in DevChainApi.HANDLERS:
            error = node.error(method)
            assert error == {
                "code": -32601,
                "message": f"method not available: {method} is served by devnets only",
            }
    assert stack.head == 0


def test_a_bft_devnet_refuses_saying_why() -> None:
    dispatcher = Dispatcher()
    install_dev_chain(dispatcher, None, enabled=True)
    node = DispatcherCallsOn(dispatcher)
    for method in DevChainApi.HANDLERS:
        error = node.error(method)
        assert error["code"] == -32004 and "BFT consensus" in error["message"], error


class DispatcherCallsOn(DispatcherCalls):
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher


# -------------------------------------------------------------- client version compatibility


def test_client_version_compat_prefixes_what_the_helpers_check() -> None:
    ours = "cybermiles/v0.1.0/cvm/python3.12"
    assert compat_client_version("off", ours) == ours
    anvil = compat_client_version("anvil", ours)
    hardhat = compat_client_version("hardhat", ours)
    # hardhat-network-helpers: version.toLowerCase().startsWith("hardhatnetwork" | "anvil").
    assert anvil.lower().startswith("anvil") and ours in anvil and "cybermiles devnet" in anvil
    assert hardhat.lower().startswith("hardhatnetwork") and ours in hardhat


def test_every_compat_setting_has_a_prefix() -> None:
    from cybermiles_node.operator.config import CLIENT_VERSION_COMPATS

    assert set(CLIENT_VERSION_COMPATS) == {"off", *CLIENT_VERSION_PREFIXES}


# ------------------------------------------------------------------------------------ fuzz

# Numbers stay small or absurd: a valid count of many blocks would only make the test slow.
_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.integers(2**64, 2**300),
        st.sampled_from(["", "0x", "0x0", "0x2", "0x01", "0xg", hex(2**70), "latest", "1e3"]),
        st.text(max_size=8),
        st.floats(allow_nan=False),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=9), inner),
    max_leaves=6,
)


@pytest.mark.parametrize("method", sorted(DevChainApi.HANDLERS))
def test_random_params_never_make_an_internal_error(stack: Stack, method: str) -> None:
    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    @given(
        params=st.lists(_JSON, max_size=3)
        | st.lists(
            st.sampled_from(["timestamp", "blocks", "forking"]).map(lambda k: {k: 2}), max_size=1
        )
    )
    def run(params: list[Any]) -> None:
        answer = stack.call(method, *params)
        if "error" in answer:
            assert answer["error"]["code"] == -32602, answer

    run()
    stack.app.mempool.check_invariants()


def test_a_revert_is_on_disk_for_the_next_start(stack: Stack) -> None:
    snap = stack.result("evm_snapshot")
    stack.send(signed(ALICE, 0, CAROL, value=5))
    stack.mine(2)
    assert stack.result("evm_revert", snap) is True
    reopened = Stack(db=stack.db)
    try:
        assert reopened.head == 0 and reopened.state().get_balance(CAROL) == 0
        reopened.send(signed(ALICE, 0, CAROL, value=3))
        reopened.mine()
        assert reopened.state().get_balance(CAROL) == 3
        assert_flat_matches_tries(reopened.chain, [ALICE.address, CAROL])
    finally:
        reopened.close()


def test_block_hash_windows_follow_mining_and_reverts(stack: Stack) -> None:
    """hashes_before keeps its last window and extends it by the parent's hash; a revert and
    different blocks at the same heights must not leave the old hashes in it."""

    def stored(number: int) -> tuple[bytes, ...]:
        headers = [stack.chain.header_by_number(n) for n in range(number - 1, -1, -1)]
        return tuple(bytes(h.hash) for h in headers if h is not None)[:256]

    stack.mine(3)
    snap = stack.result("evm_snapshot")
    for _ in range(4):
        stack.mine()
        assert stack.chain.hashes_before(stack.head + 1) == stored(stack.head + 1)
    assert stack.chain.hashes_before(3) == stored(3)  # an old window, then the head's again
    assert stack.chain.recent_hashes() == stored(stack.head + 1)
    assert stack.result("evm_revert", snap) is True
    stack.now += 5  # other timestamps: other blocks at heights 4..7
    stack.mine(4)
    assert stack.chain.hashes_before(stack.head + 1) == stored(stack.head + 1)
    assert len(stack.chain.hashes_before(stack.head + 1)) == 8
