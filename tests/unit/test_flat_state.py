"""The flat state snapshot (evm/flat.py) against the tries it copies.

Every test runs on real LevelDB (plyvel, tmp_path) and on MemoryDB. Blocks are run the way the
chain runs them: a `StateDB` on an `OverlayDB(db, flat_snapshot=True)` at the parent's root,
persisted, and the overlay committed in one write batch. The checks:

- differential: seeded random blocks of every state change (zero values, wipes, deletions,
  journal discards, several state roots per block) run twice, with the snapshot and on a
  database that never had one; reads during the block and after it agree, the roots are equal,
  and the whole snapshot (every account, every live slot) equals what py-evm's reference
  HexaryTrie walks out of the tries at the marker's root;
- wipes: writes after a wipe in the same block and in later blocks, old slots reading 0 after
  `delete_storage`, `delete_account` and a SELFDESTRUCT on the lity profile;
- forks: two blocks built on one parent, only one committed;
- old databases (no marker) keep working through the tries and never get a marker;
- the chain with the staking module commits, reopens and reads the same.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils import to_checksum_address
from trie import HexaryTrie
from trie.iter import NodeIterator

from cybermiles_node.application import schema
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.node import chain_modules, chain_profile
from cybermiles_node.staking import keeper
from evm import flat
from evm.db import LevelDB, MemoryDB, OverlayDB
from evm.executor import BlockExecutor
from evm.profiles import LITY
from evm.state import StateDB, decode_account, encode_account
from genesis import dev_accounts, devnet_genesis
from tests.unit.test_cvm_opcodes import make_env, sign

ADDRESSES = [bytes([0xA0 + i]) * 20 for i in range(6)]
SLOTS = [0, 1, 2, 3, 2**255, 2**256 - 1]
VALUES = [0, 0, 1, 2, 255, 256, 2**128, 2**256 - 1]  # zeros often: deletions
CODES = [b"", b"\x60\x00", b"\x5b" * 40]

Ops = Callable[[StateDB], None]


# -- databases --------------------------------------------------------------------------------
@pytest.fixture(params=["leveldb", "memory"])
def make_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    opened: list[LevelDB] = []

    def make() -> Any:
        if request.param == "memory":
            return MemoryDB()
        db = LevelDB(tmp_path / f"db{len(opened)}")
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.close()


def run_block(db: Any, root: bytes, ops: Ops, *, snapshot: bool = True) -> bytes:
    """One block as the chain runs it: ops on the parent's state, persisted, one batch."""
    overlay = OverlayDB(db, flat_snapshot=snapshot)
    state = StateDB(overlay, root)  # type: ignore[arg-type]
    ops(state)
    state.persist()
    db.write_batch(overlay.writes, sync=False)
    return bytes(state.state_root)


def flat_reader(db: Any, root: bytes) -> StateDB:
    state = StateDB(OverlayDB(db, flat_snapshot=True), root)  # type: ignore[arg-type]
    assert state.reads_flat_snapshot
    return state


def trie_reader(db: Any, root: bytes) -> StateDB:
    state = StateDB(db, root)
    assert not state.reads_flat_snapshot
    return state


def view(state: StateDB, addresses: list[bytes], slots: list[int]) -> dict[bytes, Any]:
    """Everything a block can read of these accounts and slots."""
    return {
        a: (
            state.account_exists(a),
            state.get_nonce(a),
            state.get_balance(a),
            state.get_code_hash(a),
            state.get_code(a),
            state.storage_root(a),
            [state.get_storage(a, s) for s in slots],
        )
        for a in addresses
    }


def flat_keys(db: Any, prefix: bytes, length: int) -> dict[bytes, bytes]:
    """Entries of one snapshot family. A prefix scan also meets trie nodes and code whose
    32-byte hash starts with the same bytes: the length tells them apart."""
    return {k: v for k, v in db.iterate_prefix(prefix) if len(k) == length}


def snapshot_keys(db: Any) -> list[bytes]:
    lengths = {flat.MARKER_KEY: 6, flat.ACCOUNT_PREFIX: 22, flat.INCARNATION_PREFIX: 22,
               flat.STORAGE_PREFIX: 58}  # fmt: skip
    return [k for p, n in lengths.items() for k in flat_keys(db, p, n)]


def flat_entries(db: Any) -> tuple[dict[bytes, bytes], dict[bytes, dict[bytes, bytes]]]:
    """The live snapshot: accounts by address, and each account's slots under its current
    incarnation (keccak(slot) -> value)."""
    accounts = {key[2:]: value for key, value in flat_keys(db, flat.ACCOUNT_PREFIX, 22).items()}
    storage = {}
    for address in accounts:
        incarnation = flat.decode_incarnation(db.get(flat.incarnation_key(address)))
        prefix = flat.STORAGE_PREFIX + address + flat.encode_incarnation(incarnation)
        entries = flat_keys(db, prefix, 58)
        storage[address] = {key[len(prefix) :]: value for key, value in entries.items()}
    return accounts, storage


def assert_snapshot_is_the_trie(db: Any, root: bytes) -> None:
    """The marker names `root`, and the snapshot holds exactly the accounts and slots that the
    reference trie implementation walks out of the tries there."""
    assert db.get(flat.MARKER_KEY) == root
    accounts, storage = flat_entries(db)
    trie_accounts = dict(NodeIterator(HexaryTrie(db, root)).items())
    assert {keccak(a): v for a, v in accounts.items()} == trie_accounts
    for address, encoded in accounts.items():
        storage_root = decode_account(encoded)[2]
        expected = (
            {}
            if storage_root == BLANK_ROOT_HASH
            else dict(NodeIterator(HexaryTrie(db, storage_root)).items())
        )
        assert {k: rlp.encode(flat.decode_value(v)) for k, v in storage[address].items()} == (
            expected
        )
        assert all(v and v[0] != 0 for v in storage[address].values())  # minimal, never 0


# -- layout -----------------------------------------------------------------------------------
def test_no_key_family_of_the_database_is_a_prefix_of_another() -> None:
    prefixes = schema.KEY_PREFIXES
    assert len(set(prefixes)) == len(prefixes)
    for a in prefixes:
        for b in prefixes:
            assert a == b or not b.startswith(a), (a, b)


def test_no_key_is_32_bytes_long_like_a_node_or_code_hash() -> None:
    address, hash32 = b"\x01" * 20, b"\x02" * 32
    keys = [
        schema.header_key(1),
        schema.number_by_hash_key(hash32),
        schema.body_key(1),
        schema.receipts_key(1),
        schema.tx_location_key(hash32),
        schema.commit_key(1),
        schema.validators_key(1),
        schema.misbehaviour_key(1),
        schema.evidence_key(hash32),
        schema.dev_edits_key(hash32),
        schema.undo_key(1),
        schema.HEAD_KEY,
        schema.CONSENSUS_STATE_KEY,
        schema.GENESIS_KEY,
        schema.VERSION_KEY,
        flat.MARKER_KEY,
        flat.account_key(address),
        flat.incarnation_key(address),
        flat.storage_key(address, 7, hash32),
        flat.preimage_key(hash32),
    ]
    # Each builder above starts with one family of KEY_PREFIXES, and every family is covered.
    assert {next(p for p in schema.KEY_PREFIXES if k.startswith(p)) for k in keys} == set(
        schema.KEY_PREFIXES
    )
    assert [len(k) for k in keys if len(k) == 32] == []


def test_value_and_incarnation_encodings() -> None:
    assert flat.encode_value(1) == b"\x01"
    assert flat.encode_value(256) == b"\x01\x00"
    assert flat.encode_value(2**256 - 1) == b"\xff" * 32
    assert flat.decode_value(None) == 0 and flat.decode_value(b"\x01\x00") == 256
    assert flat.storage_key(b"\x01" * 20, 258, b"\x02" * 32) == (
        b"fs" + b"\x01" * 20 + b"\x00\x00\x01\x02" + b"\x02" * 32
    )
    assert flat.decode_incarnation(None) == 0
    with pytest.raises(ValueError):
        flat.encode_incarnation(2**32)


# -- differential -----------------------------------------------------------------------------
def random_change(rng: random.Random) -> tuple[Any, ...]:
    address = rng.choice(ADDRESSES)
    kind = rng.choices(
        ["balance", "nonce", "code", "storage", "delete_account", "delete_storage", "read"],
        weights=[4, 2, 1, 10, 1, 1, 4],
    )[0]
    if kind == "balance":
        return (kind, address, rng.choice(VALUES))
    if kind == "nonce":
        return (kind, address, rng.randrange(3))
    if kind == "code":
        return (kind, address, rng.choice(CODES))
    if kind in ("storage", "read"):
        return (kind, address, rng.choice(SLOTS), rng.choice(VALUES))
    return (kind, address)


def random_block(rng: random.Random) -> list[tuple[Any, ...]]:
    """Changes, journal checkpoints kept or discarded, and intermediate state roots."""
    block: list[tuple[Any, ...]] = []
    for _ in range(rng.randrange(1, 6)):
        roll = rng.random()
        if roll < 0.3:
            changes = [random_change(rng) for _ in range(rng.randrange(1, 6))]
            block.append(("checkpoint", changes, rng.random() < 0.5))
        elif roll < 0.45:
            block.append(("state_root",))
        else:
            block.extend(random_change(rng) for _ in range(rng.randrange(1, 6)))
    return block


def apply_change(state: StateDB, change: tuple[Any, ...]) -> Any:
    """Apply one change; what a read returns (the lockstep run compares it)."""
    kind, address = change[0], change[1]
    if kind == "balance":
        state.set_balance(address, change[2])
    elif kind == "nonce":
        state.set_nonce(address, change[2])
    elif kind == "code":
        state.set_code(address, change[2])
    elif kind == "storage":
        state.set_storage(address, change[2], change[3])
    elif kind == "delete_account":
        state.delete_account(address)
    elif kind == "delete_storage":
        state.delete_storage(address)
    else:
        return (state.get_storage(address, change[2]), state.get_balance(address))
    return None


def apply_step(state: StateDB, step: tuple[Any, ...]) -> list[Any]:
    if step[0] == "state_root":
        return [state.make_state_root()]
    if step[0] != "checkpoint":
        return [apply_change(state, step)]
    _, changes, keep = step
    checkpoint = state.record()
    seen = [apply_change(state, change) for change in changes]
    if keep:
        state.commit(checkpoint)
    else:
        state.discard(checkpoint)
    return seen


@pytest.mark.parametrize("seed", range(6))
def test_random_blocks_read_and_root_like_the_tries(make_db: Callable[[], Any], seed: int) -> None:
    rng = random.Random(seed)
    db, reference = make_db(), make_db()  # reference: never a snapshot
    root = ref_root = BLANK_ROOT_HASH
    for _ in range(25):
        steps = random_block(rng)
        ours, theirs = (
            StateDB(OverlayDB(db, flat_snapshot=True), root),  # type: ignore[arg-type]
            StateDB(OverlayDB(reference), ref_root),  # type: ignore[arg-type]
        )
        assert ours.reads_flat_snapshot and not theirs.reads_flat_snapshot
        for step in steps:
            assert apply_step(ours, step) == apply_step(theirs, step), step
        assert view(ours, ADDRESSES, SLOTS) == view(theirs, ADDRESSES, SLOTS)
        root = _commit(db, ours)
        ref_root = _commit(reference, theirs)
        assert root == ref_root
        assert view(flat_reader(db, root), ADDRESSES, SLOTS) == view(
            trie_reader(db, root), ADDRESSES, SLOTS
        )
        assert_snapshot_is_the_trie(db, root)
        assert reference.get(flat.MARKER_KEY) is None


def _commit(db: Any, state: StateDB) -> bytes:
    state.persist()
    overlay = state._db
    assert isinstance(overlay, OverlayDB)
    db.write_batch(overlay.writes, sync=False)
    return bytes(state.state_root)


# -- wipes ------------------------------------------------------------------------------------
A = ADDRESSES[0]


def genesis_with_storage(db: Any) -> bytes:
    def ops(state: StateDB) -> None:
        state.set_code(A, b"\x60\x00")
        for slot, value in ((1, 11), (2, 22), (3, 33)):
            state.set_storage(A, slot, value)

    return run_block(db, BLANK_ROOT_HASH, ops)


def incarnation(db: Any, address: bytes) -> int:
    return flat.decode_incarnation(db.get(flat.incarnation_key(address)))


def assert_reads(db: Any, root: bytes, expected: dict[int, int]) -> None:
    for reader in (flat_reader(db, root), trie_reader(db, root)):
        assert {slot: reader.get_storage(A, slot) for slot in expected} == expected
    assert_snapshot_is_the_trie(db, root)


def test_writes_after_a_wipe_in_the_same_block_and_later_ones(make_db: Callable[[], Any]) -> None:
    db = make_db()
    root = genesis_with_storage(db)
    assert incarnation(db, A) == 0

    def wipe_then_write(state: StateDB) -> None:
        state.delete_storage(A)
        assert state.get_storage(A, 1) == 0
        state.set_storage(A, 2, 5)
        state.make_state_root()
        # After an intermediate root the wipe is still pending in the snapshot.
        assert (state.get_storage(A, 1), state.get_storage(A, 2)) == (0, 5)
        state.set_storage(A, 4, 44)

    root = run_block(db, root, wipe_then_write)
    assert incarnation(db, A) == 1
    assert_reads(db, root, {1: 0, 2: 5, 3: 0, 4: 44})

    root = run_block(db, root, lambda s: s.set_storage(A, 1, 7))
    assert incarnation(db, A) == 1
    assert_reads(db, root, {1: 7, 2: 5, 3: 0, 4: 44})


def test_a_write_before_a_wipe_in_the_same_block_is_void(make_db: Callable[[], Any]) -> None:
    db = make_db()
    root = genesis_with_storage(db)

    def write_root_wipe(state: StateDB) -> None:
        state.set_storage(A, 5, 55)
        state.make_state_root()  # the write is now accumulated for the snapshot
        state.delete_storage(A)
        state.set_storage(A, 6, 66)

    root = run_block(db, root, write_root_wipe)
    assert_reads(db, root, {1: 0, 5: 0, 6: 66})


def test_a_deleted_account_recreated_later_sees_none_of_its_old_slots(
    make_db: Callable[[], Any],
) -> None:
    db = make_db()
    root = genesis_with_storage(db)
    root = run_block(db, root, lambda s: s.delete_account(A))
    assert incarnation(db, A) == 1
    assert db.get(flat.account_key(A)) is None
    assert_reads(db, root, {1: 0, 2: 0})

    def recreate(state: StateDB) -> None:
        state.set_balance(A, 1)
        assert state.get_storage(A, 2) == 0
        state.set_storage(A, 3, 3)

    root = run_block(db, root, recreate)
    assert_reads(db, root, {1: 0, 2: 0, 3: 3})
    # The old incarnation's entries are left behind, unreachable (evm/flat.py).
    old = flat.storage_key(A, 0, keccak((1).to_bytes(32, "big")))
    assert db.get(old) == b"\x0b"


def test_a_discarded_wipe_keeps_the_slots_and_the_incarnation(make_db: Callable[[], Any]) -> None:
    db = make_db()
    root = genesis_with_storage(db)

    def wipe_and_undo(state: StateDB) -> None:
        checkpoint = state.record()
        state.delete_account(A)
        state.discard(checkpoint)
        state.set_storage(A, 1, 12)

    root = run_block(db, root, wipe_and_undo)
    assert incarnation(db, A) == 0
    assert_reads(db, root, {1: 12, 2: 22, 3: 33})


def test_deleting_an_account_without_storage_writes_no_incarnation(
    make_db: Callable[[], Any],
) -> None:
    """EIP-161 deletes empty accounts (an empty coinbase, every block): nothing to hide."""
    db = make_db()
    empty = ADDRESSES[1]
    root = run_block(db, BLANK_ROOT_HASH, lambda s: s.touch_account(empty))
    root = run_block(db, root, lambda s: s.delete_account(empty))
    assert db.get(flat.incarnation_key(empty)) is None
    assert db.get(flat.account_key(empty)) is None
    assert_snapshot_is_the_trie(db, root)


SELFDESTRUCT_TO_CALLER = bytes([0x33, 0xFF])  # CALLER SELFDESTRUCT


def test_selfdestruct_on_lity_bumps_the_incarnation(make_db: Callable[[], Any]) -> None:
    db = make_db()
    key = b"\x05" * 32
    sender = bytes.fromhex(Account.from_key(key).address[2:])

    def genesis(state: StateDB) -> None:
        state.set_balance(sender, 10**18)
        state.set_code(A, SELFDESTRUCT_TO_CALLER)
        state.set_balance(A, 1_000)
        state.set_storage(A, 1, 11)

    root = run_block(db, BLANK_ROOT_HASH, genesis)
    overlay = OverlayDB(db, flat_snapshot=True)
    executor = BlockExecutor(LITY, overlay, root, make_env())
    assert executor.account_db.reads_flat_snapshot
    receipt = executor.apply(sign(key, {"to": to_checksum_address(A), "nonce": 0, "value": 0}))
    assert receipt.state_root == b"\x01"
    root = bytes(executor.finish().state_root)
    db.write_batch(overlay.writes, sync=False)

    assert incarnation(db, A) == 1
    for reader in (flat_reader(db, root), trie_reader(db, root)):
        assert not reader.account_exists(A)
        assert reader.get_balance(sender) == 10**18 + 1_000
    root = run_block(db, root, lambda s: s.set_code(A, b"\x00"))
    assert_reads(db, root, {1: 0})


# -- forks ------------------------------------------------------------------------------------
def test_two_blocks_on_one_parent_only_the_committed_one_is_seen(
    make_db: Callable[[], Any],
) -> None:
    db = make_db()
    b = ADDRESSES[1]
    root = genesis_with_storage(db)
    # Both built before either commits, as two rounds of one height are.
    first, second = (OverlayDB(db, flat_snapshot=True) for _ in range(2))
    one, two = StateDB(first, root), StateDB(second, root)  # type: ignore[arg-type]
    one.set_storage(A, 1, 100)
    one.set_balance(b, 5)
    one.delete_storage(A)
    one.persist()
    assert two.reads_flat_snapshot
    assert (two.get_storage(A, 1), two.get_storage(A, 2), two.get_balance(b)) == (11, 22, 0)
    two.set_storage(A, 2, 200)
    two.persist()
    # The first is dropped; the second commits.
    db.write_batch(second.writes, sync=False)
    root = bytes(two.state_root)
    assert incarnation(db, A) == 0
    assert_reads(db, root, {1: 11, 2: 200, 3: 33})
    for reader in (flat_reader(db, root), trie_reader(db, root)):
        assert not reader.account_exists(b)
    # The next block still reads the snapshot.
    root = run_block(db, root, lambda s: s.set_storage(A, 3, 0))
    assert_reads(db, root, {1: 11, 2: 200, 3: 0})


def test_a_state_other_than_the_snapshot_is_read_through_the_tries(
    make_db: Callable[[], Any],
) -> None:
    db = make_db()
    parent = genesis_with_storage(db)
    head = run_block(db, parent, lambda s: s.set_storage(A, 1, 0))
    old = StateDB(OverlayDB(db, flat_snapshot=True), parent)  # type: ignore[arg-type]
    assert not old.reads_flat_snapshot
    assert old.get_storage(A, 1) == 11
    assert flat_reader(db, head).get_storage(A, 1) == 0


# -- databases made before the snapshot -------------------------------------------------------
def test_a_database_without_marker_works_through_the_tries_and_gets_none(
    make_db: Callable[[], Any],
) -> None:
    db, reference = make_db(), make_db()
    root = ref_root = BLANK_ROOT_HASH
    rng = random.Random(7)
    for height in range(12):
        steps = random_block(rng)

        def ops(state: StateDB, steps: list[tuple[Any, ...]] = steps) -> None:
            for step in steps:
                apply_step(state, step)

        if height < 3:  # the blocks of the old version: no snapshot
            root = run_block(db, root, ops, snapshot=False)
        else:  # then this version, which opts in
            overlay = OverlayDB(db, flat_snapshot=True)
            state = StateDB(overlay, root)  # type: ignore[arg-type]
            assert not state.reads_flat_snapshot
            ops(state)
            root = _commit(db, state)
        ref_root = run_block(reference, ref_root, ops, snapshot=False)
        assert root == ref_root
        assert snapshot_keys(db) == []
    assert view(trie_reader(db, root), ADDRESSES, SLOTS) == view(
        trie_reader(reference, root), ADDRESSES, SLOTS
    )


# -- through the chain ------------------------------------------------------------------------
T0 = 1_700_000_000
CMT = 10**18
ACCOUNTS = dev_accounts(6)
KEYS = [bytes([i + 1]) * 32 for i in range(3)]
GENESIS = devnet_genesis(validator_pub_keys=KEYS, genesis_time=T0)
PROPOSER = b"\x05" * 20
STAKER, PAYER = ACCOUNTS[4], ACCOUNTS[5]


def open_app(path: Path) -> tuple[LevelDB, ChainApp]:
    db = LevelDB(path)
    chain = Chain(db, GENESIS, modules=chain_modules(), profile=chain_profile(GENESIS))
    return db, ChainApp(chain)


def signed(app: ChainApp, account: Any, fields: dict[str, Any]) -> bytes:
    nonce = app.mempool.pending_nonce(account.address)
    tx = {"chainId": GENESIS.chain_id, "nonce": nonce, **fields}
    return bytes(Account.sign_transaction(tx, account.private_key).raw_transaction)


def staking(app: ChainApp, kind: str, data: dict[str, Any]) -> bytes:
    body = json.dumps({"type": kind, "data": data}).encode()
    fields = {"to": b"", "value": 0, "gas": 0, "gasPrice": 0, "data": body}
    return signed(app, STAKER, fields)


def transfer(app: ChainApp, to: bytes, value: int) -> bytes:
    fields = {"to": to_checksum_address(to), "value": value, "gas": 21_000, "gasPrice": 2 * 10**9}
    return signed(app, PAYER, fields)


def next_block(app: ChainApp, txs: list[Callable[[], bytes]]) -> Any:
    """Admit each transaction (signed at its turn: nonces follow the mempool), build."""
    for tx in txs:
        app.check_tx(tx())
    ctx = app.next_context(
        time=app.head.timestamp + 1, coinbase=PROPOSER, randomness=bytes(32), extra_data=bytes(32)
    )
    block = app.build_block(ctx)
    assert len(block.result.transactions) == len(txs)
    return block


def staking_blocks(app: ChainApp) -> Iterator[list[Callable[[], bytes]]]:
    to_owner = {"validator_address": "0x" + GENESIS.validators[0].owner.hex()}
    yield [lambda: staking(app, "stake/delegate", {**to_owner, "amount": str(2_000 * CMT)})]
    yield [lambda: transfer(app, bytes([0x42]) * 20, 7), lambda: transfer(app, PROPOSER, 0)]
    yield [lambda: staking(app, "stake/withdraw", {**to_owner, "amount": str(500 * CMT)})]
    for n in range(3):
        yield [lambda n=n: transfer(app, bytes([0x43 + n]) * 20, n + 1)]  # type: ignore[misc]


def assert_chain_reads_agree(app: ChainApp) -> None:
    db, head = app.chain.db, app.head
    assert_snapshot_is_the_trie(db, bytes(head.state_root))
    flat_state, trie_state = flat_reader(db, head.state_root), app.chain.state_at()
    accounts, _ = flat_entries(db)
    addresses = sorted(accounts)
    assert view(flat_state, addresses, SLOTS) == view(trie_state, addresses, SLOTS)
    owner = GENESIS.validators[0].owner
    assert keeper.delegation(flat_state, owner, STAKER.address) == keeper.delegation(
        trie_state, owner, STAKER.address
    )
    assert keeper.candidate(flat_state, owner) == keeper.candidate(trie_state, owner)


def test_a_staking_chain_commits_reopens_and_reads_the_same(tmp_path: Path) -> None:
    db, app = open_app(tmp_path / "chain")
    assert_chain_reads_agree(app)  # genesis made the snapshot
    for raws in staking_blocks(app):
        app.commit(next_block(app, raws))
        assert_chain_reads_agree(app)
    owner = GENESIS.validators[0].owner
    delegation = keeper.delegation(app.chain.state_at(), owner, STAKER.address)
    assert delegation is not None and delegation.pending_withdraw_amount == 500 * CMT
    head = app.head
    db.close()

    db, app = open_app(tmp_path / "chain")
    assert app.head.hash == head.hash
    assert_chain_reads_agree(app)
    app.commit(next_block(app, [lambda: transfer(app, bytes([0x42]) * 20, 1)]))
    assert_chain_reads_agree(app)
    db.close()


def test_two_rounds_on_one_head_commit_only_the_chosen_block(tmp_path: Path) -> None:
    db, app = open_app(tmp_path / "chain")
    chain = app.chain
    dropped = chain.build_block(
        chain.next_context(time=T0 + 1, coinbase=PROPOSER),
        [app.decode(transfer(app, bytes([0x51]) * 20, 5))],
    )
    kept = chain.build_block(chain.next_context(time=T0 + 2, coinbase=PROPOSER), [])
    assert dropped.header.state_root != kept.header.state_root
    chain.commit(kept)
    assert_chain_reads_agree(app)
    assert not flat_reader(db, app.head.state_root).account_exists(bytes([0x51]) * 20)
    db.close()


def test_an_old_database_keeps_working_and_never_gets_a_snapshot(tmp_path: Path) -> None:
    db, app = open_app(tmp_path / "chain")
    app.commit(next_block(app, [lambda: transfer(app, bytes([0x42]) * 20, 7)]))
    # What a database written before the snapshot existed looks like: every other key.
    assert snapshot_keys(db)
    for key in snapshot_keys(db):
        del db[key]
    db.close()

    db, app = open_app(tmp_path / "chain")
    for raws in staking_blocks(app):
        app.commit(next_block(app, raws))
    assert snapshot_keys(db) == []
    state = app.chain.state_at()
    assert state.get_balance(bytes([0x42]) * 20) == 7 + 7
    assert state.get_code_hash(bytes([0x42]) * 20) == EMPTY_SHA3
    head = app.head
    db.close()
    db, app = open_app(tmp_path / "chain")
    assert app.head.hash == head.hash
    assert snapshot_keys(db) == []
    db.close()


def test_encode_account_is_what_the_snapshot_stores(make_db: Callable[[], Any]) -> None:
    db = make_db()
    root = run_block(db, BLANK_ROOT_HASH, lambda s: s.set_nonce(A, 3))
    assert db.get(flat.account_key(A)) == encode_account((3, 0, BLANK_ROOT_HASH, EMPTY_SHA3))
    assert_snapshot_is_the_trie(db, root)


def test_reads_of_the_snapshot_need_no_trie_node(make_db: Callable[[], Any]) -> None:
    db = make_db()
    root = genesis_with_storage(db)
    root = run_block(db, root, lambda s: s.set_balance(ADDRESSES[1], 9))
    only_snapshot = MemoryDB()
    only_snapshot.write_batch({k: db.get(k) for k in snapshot_keys(db)}, sync=False)
    state = flat_reader(only_snapshot, root)
    assert (state.get_storage(A, 1), state.get_storage(A, 9), state.get_balance(ADDRESSES[1])) == (
        11, 0, 9,
    )  # fmt: skip
    assert state.get_code_hash(A) == keccak(b"\x60\x00")
    with pytest.raises(KeyError):
        trie_reader(only_snapshot, root).get_balance(ADDRESSES[1])


def test_pending_changes_are_read_back_before_they_are_written() -> None:
    """`FlatSnapshot` alone: what a StateDB accumulated over several roots reads back."""
    db = MemoryDB()

    def genesis(state: StateDB) -> None:
        state.set_balance(A, 1)
        state.set_storage(A, 1, 1)

    run_block(db, BLANK_ROOT_HASH, genesis)
    snapshot = flat.FlatSnapshot(db)
    hashed = keccak((1).to_bytes(32, "big"))
    assert snapshot.storage(A, hashed) == 1
    snapshot.set_slot(A, hashed, 5)
    assert snapshot.storage(A, hashed) == 5
    snapshot.wipe(A)
    assert snapshot.storage(A, hashed) == 0
    snapshot.set_slot(A, hashed, 6)
    snapshot.set_account(A, None)
    assert (snapshot.storage(A, hashed), snapshot.account(A)) == (6, None)
    assert db.get(flat.account_key(A)) is not None  # nothing written yet
