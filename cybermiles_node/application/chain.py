"""The chain: genesis, executing and committing blocks, and reading them back.

`Chain` owns the LevelDB store. Blocks are built (`build_block`) or checked (`execute_block`)
into a `PendingBlock` whose state writes sit in an in-memory overlay; `commit` writes the state
nodes, header, body, receipts, transaction index and the head pointer in ONE atomic write batch.
A crash before that write leaves the previous block as head; after it, the whole block is there.
The block pipeline and genesis read and move the flat state snapshot (evm/flat.py) in that same
batch; `state_at` (RPC, other threads) reads through the tries. On open, the stored genesis
hash must match the genesis file, so a node never runs a database against the wrong chain.

Devnets roll back (`rollback`, for evm_revert and anvil_reset): a chain opened `rewindable`
stores with each block, in its batch, the flat snapshot entries the block changes and their
values before it (schema "u"), so deleting the blocks above a height can put the snapshot back
exactly; trie nodes and code stay (content-addressed: the older roots still find theirs).

The block layout follows DESIGN.md §4: a py-evm Prague header with difficulty 0, nonce 0,
`mix_hash` the block's randomness, `extra_data` a 32-byte commitment to consensus metadata (zero
for blocks made by the devnet automine, which has none; a devnet block carrying state edits
commits to them there instead, application/dev_state.py). The base fee (`base_fee_for`): under
a profile with one (cvm), every header, genesis included, carries the `gas_price` parameter in
force at the block's start; it is paid into the award pool with the rest of the fee, never
burned; under lity it is 0 (DECISIONS "Fees for default clients"). Validation refuses a header
whose base fee is not that value.

Devnet state edits (anvil_setBalance & co.) ride in a block: `build_block`/`execute_block` take
them, the pipeline applies them after the modules' begin_block, and `commit` stores them beside
the block (`dev_edits` reads them back). A devnet's chain also records slot preimages
(`record_preimages`, evm/flat.py) so that its state can be dumped by slot.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

import msgpack
import rlp
from eth.abc import BlockHeaderAPI, ReceiptAPI
from eth.constants import BLANK_ROOT_HASH, EMPTY_UNCLE_HASH, ZERO_HASH32
from eth.vm.forks.prague.blocks import PragueBlockHeader
from eth_typing import Address, BlockNumber, Hash32

from cybermiles_node.application import schema
from cybermiles_node.application.dev_state import (
    NO_EDITS,
    StateEdit,
    apply_edits,
    decode_edits,
    edits_commitment,
    encode_edits,
    write_accounts,
)
from cybermiles_node.application.fees import FeeRules, LowPriceRejected, LowPriceSlots
from cybermiles_node.errors import CyberMilesError, InvariantViolation, TxRejected
from cybermiles_node.governance.versions import enabled_eni_versions
from cybermiles_node.modules import NO_MODULES, BlockOutcome, ModuleSet
from cybermiles_node.params import read_state_params, write_params
from cybermiles_node.staking import keeper as staking_keeper
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import (
    GOVERNANCE_ADDRESS,
    STAKING_ADDRESS,
    SYSTEM_STORAGE_ACCOUNTS,
)
from cybermiles_node.system.context import BlockContext, Misbehaviour
from evm import flat
from evm.db import OverlayDB
from evm.eni import UnknownEniVersion
from evm.executor import (
    BlockEnv,
    BlockExecutor,
    ExecutionResult,
    TransactionCrashed,
    TransactionInvalid,
)
from evm.header_codec import decode_header
from evm.precompiles import PRECOMPILE_GENESIS_CODE, genesis_code_stubs
from evm.profiles import EvmProfile, get_profile
from evm.receipt_decoding import TxSummary, decode_receipt, summarize_transaction
from evm.state import StateDB
from evm.tracing import Tracer, attached
from evm.transactions import SignedTx, load_stored_transaction
from genesis import Genesis, Params, dumps_genesis

EMPTY_REQUESTS_HASH = Hash32(
    bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
)
NO_CONSENSUS_METADATA = ZERO_HASH32

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")
# Bodies and receipts stay cached (each entry decoded on first use) for the recent blocks, bounded
# by their transactions rather than their count: 64 blocks of 1,000 transactions (the bound
# before), or up to 1,024 small ones (a devnet mines a block per transaction; clients then
# read the receipts back).
RECENT_BLOCK_ENTRIES = 65_536
RECENT_BLOCKS_DECODED = 1024
RECENT_HEADERS = 1024  # headers kept decoded (~600 bytes each)
RECENT_HASHES = 1024  # canonical hashes kept by number (BLOCKHASH, hashes_before)
RECENT_RULE_INPUTS = 16  # blocks whose parameters, owners and fee rules stay cached


EMPTY: Mapping[bytes, bytes] = MappingProxyType({})
# Where a module's system transactions go, for traces: its precompile and storage account.
SYSTEM_MODULE_ADDRESSES: Mapping[str, bytes] = MappingProxyType(
    {"governance": GOVERNANCE_ADDRESS, "staking": STAKING_ADDRESS}
)


class GenesisMismatch(CyberMilesError):
    """The database was created from another genesis file."""


class BlockRejected(CyberMilesError):
    """A block received for validation does not match its execution."""


@dataclass(frozen=True)
class StoredReceipt:
    receipt: ReceiptAPI
    contract_address: bytes | None


@dataclass(frozen=True)
class LocatedReceipt:
    """One committed transaction with its receipt and what its receipt JSON needs from the
    transactions before it (schema.TxRecord), read without decoding the rest of its block."""

    header: BlockHeaderAPI
    index: int
    tx: SignedTx | TxSummary  # the decoded transaction when cached, else what receipts need
    stored: StoredReceipt
    gas_used: int
    first_log_index: int


class _RecentBlocks(Generic[V]):
    """Recent blocks' decoded entries by number, oldest dropped first beyond
    RECENT_BLOCK_ENTRIES entries or RECENT_BLOCKS_DECODED blocks (the newest always stays).
    Keeps a running count of the entries: every commit remembers two blocks, and re-counting
    up to a thousand cached blocks each time was a measurable share of a catching-up node's
    work. The chain's cache lock guards every change."""

    __slots__ = ("_blocks", "_entries")

    def __init__(self) -> None:
        self._blocks: OrderedDict[int, _Decoded[V]] = OrderedDict()
        self._entries = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, number: int) -> _Decoded[V] | None:
        return self._blocks.get(number)

    def remember(self, number: int, entries: _Decoded[V]) -> None:
        blocks = self._blocks
        replaced = blocks.pop(number, None)
        if replaced is not None:
            self._entries -= len(replaced)
        blocks[number] = entries
        self._entries += len(entries)
        while len(blocks) > 1 and (
            self._entries > RECENT_BLOCK_ENTRIES or len(blocks) > RECENT_BLOCKS_DECODED
        ):
            _, dropped = blocks.popitem(last=False)
            self._entries -= len(dropped)

    def forget_above(self, number: int) -> None:
        for above in [n for n in self._blocks if n > number]:
            self._entries -= len(self._blocks.pop(above))


class _Decoded(Generic[V]):
    """A block's stored entries (its transactions or its receipts), each decoded on first
    use: looking up one transaction decodes one entry, not the block. Two threads decoding
    the same entry at once both store an equal value: harmless."""

    __slots__ = ("_raw", "_decode", "_items", "_all")

    def __init__(self, raw: Sequence[Any], decode: Callable[[Any], V]) -> None:
        self._raw = raw
        self._decode = decode
        self._items: list[V | None] = [None] * len(raw)
        self._all: list[V] | None = None

    @classmethod
    def of(cls, items: list[V]) -> _Decoded[V]:
        """Entries already decoded (a block just committed)."""
        decoded: _Decoded[V] = cls((), _no_decoder)
        decoded._items = list(items)
        decoded._all = items
        return decoded

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> V:
        item = self._items[index]
        if item is None:
            item = self._items[index] = self._decode(self._raw[index])
        return item

    def peek(self, index: int) -> V | None:
        """Entry `index` if it is decoded already, else None."""
        return self._items[index]

    def raw(self, index: int) -> Any:
        """Entry `index` as stored (only for entries that came from the store)."""
        return self._raw[index]

    def all(self) -> list[V]:
        if self._all is None:
            self._all = [self[i] for i in range(len(self._items))]
        return self._all


def _no_decoder(raw: Any) -> Any:
    raise AssertionError("every entry was given decoded")


def _decode_tx(entry: Sequence[bytes]) -> SignedTx:
    return load_stored_transaction(entry[0], entry[1])


def _decode_receipt(entry: Sequence[bytes]) -> StoredReceipt:
    return StoredReceipt(decode_receipt(entry[0]), entry[1] or None)


def _receipt_tx(body: _Decoded[SignedTx], index: int) -> SignedTx | TxSummary:
    """Transaction `index` as a receipt needs it: decoded if it is, else only summarized
    (a full decode through py-evm costs several times the summary)."""
    tx = body.peek(index)
    if tx is not None:
        return tx
    raw, sender = body.raw(index)
    return summarize_transaction(raw, sender)


def tx_records(number: int, receipts: Iterable[StoredReceipt]) -> list[schema.TxRecord]:
    """The "t" records of block `number`'s transactions, from its receipts in order."""
    records = []
    previous_cumulative = 0
    log_index = 0
    for index, stored in enumerate(receipts):
        cumulative = stored.receipt.gas_used
        records.append(schema.TxRecord(number, index, cumulative - previous_cumulative, log_index))
        previous_cumulative = cumulative
        log_index += len(stored.receipt.logs)
    return records


@dataclass
class PendingBlock:
    """An executed block whose state writes are held in memory until commit."""

    header: BlockHeaderAPI
    result: ExecutionResult
    overlay: OverlayDB
    outcome: BlockOutcome = BlockOutcome()  # validator updates, halt: what the modules decided
    edits: tuple[StateEdit, ...] = NO_EDITS  # devnet state edits the block carries
    # Candidates a builder left out, with the reason; those whose execution failed in a way
    # no rule expects are in `crashed` (the caller evicts them).
    skipped: list[tuple[SignedTx, str]] = field(default_factory=list)
    crashed: list[tuple[SignedTx, str]] = field(default_factory=list)

    @property
    def hash(self) -> bytes:
        return bytes(self.header.hash)

    @property
    def number(self) -> int:
        return int(self.header.block_number)


class _TxPolicy(Protocol):
    """What the block pipeline does with a transaction that cannot be in the block."""

    skipped: list[tuple[SignedTx, str]]
    crashed_txs: list[tuple[SignedTx, str]]

    def skips(self, tx: SignedTx) -> bool: ...
    def refused(self, tx: SignedTx, exc: Exception) -> None: ...
    def crashed(self, tx: SignedTx, exc: TransactionCrashed) -> None: ...


class _Building:
    """A builder leaves a failing transaction out, and every later one of its sender."""

    def __init__(self) -> None:
        self.skipped: list[tuple[SignedTx, str]] = []
        self.crashed_txs: list[tuple[SignedTx, str]] = []
        self._failed_senders: set[bytes] = set()

    def skips(self, tx: SignedTx) -> bool:
        if tx.sender not in self._failed_senders:
            return False
        self.skipped.append((tx, "an earlier transaction of the sender was skipped"))
        return True

    def refused(self, tx: SignedTx, exc: Exception) -> None:
        self._failed_senders.add(tx.sender)
        self.skipped.append((tx, str(exc)))

    def crashed(self, tx: SignedTx, exc: TransactionCrashed) -> None:
        log.error("transaction 0x%s crashed block building", tx.hash.hex(), exc_info=exc)
        self._failed_senders.add(tx.sender)
        self.crashed_txs.append((tx, str(exc)))


class _Validating:
    """A validator refuses the whole block for one transaction that cannot be in it."""

    def __init__(self) -> None:
        self.skipped: list[tuple[SignedTx, str]] = []  # stays empty: nothing is left out
        self.crashed_txs: list[tuple[SignedTx, str]] = []

    def skips(self, tx: SignedTx) -> bool:
        return False

    def refused(self, tx: SignedTx, exc: Exception) -> None:
        raise BlockRejected(f"invalid transaction 0x{tx.hash.hex()}: {exc}") from None

    def crashed(self, tx: SignedTx, exc: TransactionCrashed) -> None:
        log.warning("transaction 0x%s crashed validation", tx.hash.hex(), exc_info=exc)
        self.refused(tx, exc)


class _Replaying:
    """A replayed block ran before: a transaction it cannot take again means the replay went
    wrong (or a trace stopped it: its deadline or its size budget, raised as they are)."""

    def __init__(self) -> None:
        self.skipped: list[tuple[SignedTx, str]] = []  # both stay empty: nothing is left out
        self.crashed_txs: list[tuple[SignedTx, str]] = []

    def skips(self, tx: SignedTx) -> bool:
        return False

    def refused(self, tx: SignedTx, exc: Exception) -> None:
        raise ReplayDiverged(f"replayed transaction 0x{tx.hash.hex()} was refused: {exc}")

    def crashed(self, tx: SignedTx, exc: TransactionCrashed) -> None:
        raise exc.__cause__ or exc


class ReplayDiverged(CyberMilesError):
    """A committed block did not re-execute as it ran."""


class _BlockRun:
    """One block between its begin_block and end_block: the executor on the block's state
    and the fee rules in force for the next transaction."""

    def __init__(self, chain: Chain, executor: BlockExecutor, rules: FeeRules) -> None:
        self._chain = chain
        self.executor = executor
        self.rules = rules
        self.slots = LowPriceSlots(rules)

    def include(self, tx: SignedTx, policy: _TxPolicy) -> None:
        """The transaction in the block, or what `policy` does with one that cannot be."""
        if policy.skips(tx):
            return
        try:
            self.rules.check_shape(tx)
            self.slots.check(tx)
            self.executor.apply(tx)
            self.slots.hold(tx)
        except TransactionCrashed as exc:
            policy.crashed(tx, exc)
        except (TransactionInvalid, LowPriceRejected) as exc:
            policy.refused(tx, exc)
        if tx.is_system:  # an approved change_param is in force for the next transaction
            self.rules = self.slots.rules = self._chain._fee_rules_now(self.executor, self.rules)


class BlockReplay:
    """A committed block re-executed through the block pipeline (the modules' begin_block,
    then its transactions in order, each as the block ran it) on a throwaway overlay of its
    parent's state: nothing is written. debug_trace* (rpc/debug.py) replays up to the traced
    transaction and runs that one under a tracer."""

    def __init__(
        self,
        chain: Chain,
        ctx: BlockContext,
        env: BlockEnv,
        parent_root: bytes,
        transactions: list[SignedTx],
    ) -> None:
        self._chain = chain
        self._ctx = ctx
        self._env = env
        self._parent_root = parent_root
        self.transactions = transactions
        self._run: _BlockRun | None = None

    def start(self) -> BlockExecutor:
        """Open the parent's state and run begin_block; the executor, for the caller to set
        up (a deadline) before the transactions."""
        # Tries, not the flat snapshot: it describes the head, not this block's parent.
        overlay = OverlayDB(self._chain.db)
        self._run = self._chain._begin_block(self._ctx, self._env, self._parent_root, overlay)
        return self._run.executor

    def apply(self, tx: SignedTx, tracer: Tracer | None = None) -> ReceiptAPI:
        """The block's next transaction. With a `tracer` it runs under it, through py-evm
        even when it is a plain transfer (the fast path makes no frames to show)."""
        run = self._run
        if run is None:
            raise RuntimeError("BlockReplay.apply before start")
        if tracer is None:
            run.include(tx, _Replaying())
            return run.executor.receipts[-1]
        executor = run.executor
        executor.fast_path = False
        try:
            with attached(executor.state, tracer):
                run.include(tx, _Replaying())
        finally:
            executor.fast_path = True
        return executor.receipts[-1]

    def system_target(self, tx: SignedTx) -> bytes | None:
        """The address of the module a staking/governance transaction goes to."""
        try:
            owner = self._chain.modules.owner_name(tx)
        except TxRejected:
            return None
        return SYSTEM_MODULE_ADDRESSES.get(owner)


class Chain:
    """Genesis, block execution and the block store over one database."""

    def __init__(
        self,
        db: Any,
        genesis: Genesis,
        *,
        modules: ModuleSet = NO_MODULES,
        profile: EvmProfile | None = None,
        sync_writes: bool = False,
        record_preimages: bool = False,
        rewindable: bool = False,
    ) -> None:
        self.db = db
        self.record_preimages = record_preimages  # devnets: slot preimages, for state dumps
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.gas_limit = genesis.gas_limit
        self.modules = modules
        # The genesis's profile, or one derived from it (extra precompiles of the modules).
        self.profile: EvmProfile = profile or get_profile(genesis.evm_profile)
        self.sync_writes = sync_writes
        self.rewindable = rewindable  # keep what `rollback` needs with every block (devnets)
        # The caches below are filled by the event loop, the block builder's worker thread and
        # RPC worker threads: every change to one goes through `_cache_lock` (reads are single
        # dict lookups, atomic under the GIL).
        self._cache_lock = threading.Lock()
        self._body_cache: _RecentBlocks[SignedTx] = _RecentBlocks()
        self._receipt_cache: _RecentBlocks[StoredReceipt] = _RecentBlocks()
        self._headers: OrderedDict[int, BlockHeaderAPI] = OrderedDict()
        self._hashes: dict[int, bytes] = {}  # canonical number -> hash, recent blocks
        self._hash_window: tuple[int, tuple[bytes, ...]] = (-1, ())  # hashes_before's last
        # Rule inputs by block hash, for the recent blocks (`_per_block`).
        self._fee_rules: OrderedDict[bytes, FeeRules] = OrderedDict()
        self._params: OrderedDict[bytes, Params] = OrderedDict()
        self._owners: OrderedDict[bytes, frozenset[bytes]] = OrderedDict()
        self._eni_versions: OrderedDict[bytes, Mapping[str, str]] = OrderedDict()
        self.genesis_header = self._genesis_header()
        self._open()

    # -- genesis -------------------------------------------------------------------------
    def _genesis_state(self) -> tuple[bytes, OverlayDB]:
        # On a new database the flat snapshot (evm/flat.py) starts here, with the genesis
        # state; on an existing one this overlay is only for the root and is dropped.
        overlay = self._overlay()
        state = StateDB(overlay, BLANK_ROOT_HASH)  # type: ignore[arg-type]
        if self.genesis.from_state_dump:  # the alloc is the whole state (genesis/schema.py)
            write_accounts(state, self.genesis.alloc)
            state.persist()
            return state.state_root, overlay
        for address, account in self.genesis.alloc:
            if account.balance:
                state.set_balance(address, account.balance)
            if account.nonce:
                state.set_nonce(address, account.nonce)
            if account.code:
                state.set_code(address, account.code)
            for slot, value in account.storage:
                state.set_storage(address, slot, value)
        # Precompiles get a tiny code stub (never run: the EVM dispatches on the address first),
        # because Solidity checks extcodesize before high-level calls to them; the system's
        # storage accounts get it so that EIP-161 never deletes them as empty accounts.
        stubs = {
            **PRECOMPILE_GENESIS_CODE,
            **genesis_code_stubs(SYSTEM_STORAGE_ACCOUNTS),
            **genesis_code_stubs(self.profile.injected_precompile_addresses),
        }
        for address, code in sorted(stubs.items()):
            if not state.get_code(address):
                state.set_code(address, code)
        write_params(state, self.genesis.params)
        staking_keeper.init_genesis(state, self.genesis)
        state.persist()
        return state.state_root, overlay

    def _overlay(self) -> OverlayDB:
        """A block's (or genesis's) write overlay, moving the flat snapshot."""
        return OverlayDB(self.db, flat_snapshot=True, slot_preimages=self.record_preimages)

    def _genesis_header(self) -> BlockHeaderAPI:
        state_root, self._genesis_overlay = self._genesis_state()
        return PragueBlockHeader(
            difficulty=0,
            block_number=BlockNumber(0),
            gas_limit=self.genesis.gas_limit,
            timestamp=self.genesis.genesis_time,
            state_root=Hash32(state_root),
            extra_data=NO_CONSENSUS_METADATA,
            nonce=b"\x00" * 8,
            base_fee_per_gas=self.base_fee_for(self.genesis.params),
            requests_hash=EMPTY_REQUESTS_HASH,
        )

    def _open(self) -> None:
        stored = self.db.get(schema.GENESIS_KEY)
        # The block hash alone misses fields outside the genesis block (chain id, params,
        # timeouts), so the digest of the whole genesis document is kept beside it.
        identity = (
            bytes(self.genesis_header.hash)
            + hashlib.sha256(dumps_genesis(self.genesis).encode()).digest()
        )
        if stored is None:
            writes = dict(self._genesis_overlay.writes)
            writes.update(self._block_writes(self.genesis_header, [], []))
            writes[schema.GENESIS_KEY] = identity
            writes[schema.VERSION_KEY] = schema.SCHEMA_VERSION.to_bytes(4, "big")
            self.db.write_batch(writes, sync=True)
        elif stored != identity:
            what = "genesis block" if stored[:32] != identity[:32] else "genesis file"
            raise GenesisMismatch(
                f"this database was created from a different {what} (stored genesis block "
                f"0x{stored[:32].hex()}, file gives 0x{identity[:32].hex()}); the genesis file "
                "was changed: restore it, or use another home (devnet: --reset)"
            )
        del self._genesis_overlay
        head_number = int.from_bytes(self.db[schema.HEAD_KEY], "big")
        header = self._read_header(head_number)
        if header is None or not StateDB(self.db).has_root(header.state_root):
            raise InvariantViolation(f"head block {head_number} or its state is missing")
        self.head: BlockHeaderAPI = header

    # -- building and validating -----------------------------------------------------------
    def params_at(self, header: BlockHeaderAPI) -> Params:
        """The chain parameters in force after block `header`, i.e. for the block after it.
        Rule inputs are read per block, never kept from start-up: governance changes them."""
        return self._per_block(self._params, header, lambda h: read_state_params(self.state_at(h)))

    def validator_owners_at(self, header: BlockHeaderAPI) -> frozenset[bytes]:
        """Owners of the validators and backups after block `header`: what ISVALIDATOR and
        isValidator answer in the block after it (read from the staking state)."""
        return self._per_block(
            self._owners, header, lambda h: staking_keeper.consensus_set_owners(self.state_at(h))
        )

    def eni_versions_at(self, header: BlockHeaderAPI) -> Mapping[str, str]:
        """The ENI library versions governance enabled by block `header`: what the ENI opcode
        and precompile run in the block after it (the others run their defaults)."""
        return self._per_block(
            self._eni_versions,
            header,
            lambda h: MappingProxyType(dict(enabled_eni_versions(self.state_at(h)))),
        )

    def params_at_head(self) -> Params:
        """The chain parameters in force for the next block."""
        return self.params_at(self.head)

    def base_fee_for(self, params: Params) -> int:
        """The base fee of a block that starts with `params` in force: their gas_price under a
        profile whose blocks carry one (cvm), 0 under lity."""
        return params.gas_price if self.profile.has_base_fee else 0

    def next_base_fee(self) -> int:
        """The base fee of the next block (eth_feeHistory's last entry, admission's rules)."""
        return self.base_fee_for(self.params_at_head())

    def low_price_threshold(self, header: BlockHeaderAPI) -> int:
        """The gas_price block `header` started with, below which a transaction in it was
        low-price: its base fee where blocks carry one, else read from its parent's state."""
        if self.profile.has_base_fee:
            return int(header.base_fee_per_gas or 0)
        number = int(header.block_number)
        parent = self.header_by_number(number - 1) if number else None
        return (self.genesis.params if parent is None else self.params_at(parent)).gas_price

    def fee_rules_at_head(self) -> FeeRules:
        """The fee rules (SPEC §4) admission applies: those of the next block."""
        return self._per_block(
            self._fee_rules,
            self.head,
            lambda h: FeeRules.of(self.params_at(h), self.base_fee_for(self.params_at(h))),
        )

    def _per_block(
        self,
        cache: OrderedDict[bytes, V],
        header: BlockHeaderAPI,
        read: Callable[[BlockHeaderAPI], V],
    ) -> V:
        """`read(header)`, computed once per block and kept for the recent blocks (admission
        asks for the head's on every transaction)."""
        key = bytes(header.hash)
        value = cache.get(key)
        if value is None:
            value = read(header)
            self._remember_one(cache, key, value, RECENT_RULE_INPUTS)
        return value

    def next_context(
        self,
        *,
        time: int,
        coinbase: bytes,
        randomness: bytes = ZERO_HASH32,
        extra_data: bytes = NO_CONSENSUS_METADATA,
        proposer: bytes = b"",
        last_commit_signers: tuple[bytes, ...] = (),
        last_commit_validators: tuple[bytes, ...] = (),
        misbehaviour: tuple[Misbehaviour, ...] = (),
    ) -> BlockContext:
        """The context of a block to build on the head, from what its header will carry."""
        return BlockContext(
            height=self.head_number + 1,
            time=time,
            coinbase=coinbase,
            randomness=randomness,
            extra_data=extra_data,
            params=self.params_at_head(),
            proposer=proposer,
            last_commit_signers=last_commit_signers,
            last_commit_validators=last_commit_validators,
            misbehaviour=misbehaviour,
        )

    def context_of(
        self,
        header: BlockHeaderAPI,
        *,
        proposer: bytes = b"",
        last_commit_signers: tuple[bytes, ...] = (),
        last_commit_validators: tuple[bytes, ...] = (),
        misbehaviour: tuple[Misbehaviour, ...] = (),
    ) -> BlockContext:
        """The context of a received block on the head, read back from its header."""
        return self.next_context(
            time=header.timestamp,
            coinbase=header.coinbase,
            randomness=header.mix_hash,
            extra_data=header.extra_data,
            proposer=proposer,
            last_commit_signers=last_commit_signers,
            last_commit_validators=last_commit_validators,
            misbehaviour=misbehaviour,
        )

    def block_env(self, ctx: BlockContext) -> BlockEnv:
        """What the EVM sees while executing the block of `ctx` on the head."""
        return self._env(
            ctx.height,
            ctx.time,
            ctx.coinbase,
            self.gas_limit,
            ctx.randomness,
            self.base_fee_for(ctx.params),
            self.head,
        )

    def env_of(self, header: BlockHeaderAPI) -> BlockEnv:
        """What the EVM sees executing on the state after `header` (eth_call, estimates)."""
        return self._env(
            header.block_number,
            header.timestamp,
            header.coinbase,
            header.gas_limit,
            header.mix_hash,
            header.base_fee_per_gas or 0,
            header,
        )

    def _env(
        self,
        number: int,
        timestamp: int,
        coinbase: bytes,
        gas_limit: int,
        mix_hash: bytes,
        base_fee: int,
        rules_after: BlockHeaderAPI,
    ) -> BlockEnv:
        """A block environment whose rule inputs (validator owners, freegas terms, ENI
        library versions) are those in force after block `rules_after`. A library version in
        state that this node does not ship is a broken invariant: governance only enables
        versions it has (or a newer release wrote this database)."""
        eni_versions = self.eni_versions_at(rules_after)
        try:
            return BlockEnv(
                number=number,
                timestamp=timestamp,
                coinbase=coinbase,
                gas_limit=gas_limit,
                mix_hash=mix_hash,
                chain_id=self.chain_id,
                prev_hashes=self.hashes_before(number),
                validator_owners=self.validator_owners_at(rules_after),
                past_randomness=self._randomness_before(number),
                freegas=FeeRules.of(self.params_at(rules_after)).freegas,
                fee_recipient=self.modules.fee_recipient,
                base_fee=base_fee,
                eni_versions=eni_versions,
            )
        except UnknownEniVersion as exc:
            raise InvariantViolation(
                f"the state after block {rules_after.block_number} enables an ENI library "
                f"version this node lacks: {exc}"
            ) from None

    def _randomness_before(self, number: int) -> Callable[[int], bytes | None]:
        """mix_hash of blocks below `number` (the block being executed sees only the past)."""

        def randomness(height: int) -> bytes | None:
            header = self.header_by_number(height) if 0 <= height < number else None
            return None if header is None else bytes(header.mix_hash)

        return randomness

    def recent_hashes(self) -> tuple[bytes, ...]:
        """Hashes of the last 256 blocks up to the head, newest first (BLOCKHASH's window)."""
        return self.hashes_before(self.head_number + 1)

    def hashes_before(self, number: int) -> tuple[bytes, ...]:
        """Hashes of the (up to) 256 blocks before `number`, newest first. The last answer is
        kept: the next block's window is the parent's hash in front of it (every block asks)."""
        last_number, last = self._hash_window
        if last_number == number:
            return last
        parent_hash = self._hashes.get(number - 1)
        if last_number == number - 1 and parent_hash is not None:
            hashes = (parent_hash, *last)[:256]
        else:
            hashes = self._read_hashes_before(number)
        self._hash_window = (number, hashes)
        return hashes

    def _read_hashes_before(self, number: int) -> tuple[bytes, ...]:
        hashes = []
        for n in range(number - 1, max(-1, number - 257), -1):
            block_hash = self._hashes.get(n)
            if block_hash is None:
                header = self.header_by_number(n)
                if header is None:
                    break
                block_hash = bytes(header.hash)
                self._remember_hash(n, block_hash)
            hashes.append(block_hash)
        return tuple(hashes)

    def _remember_hash(self, number: int, block_hash: bytes) -> None:
        with self._cache_lock:
            self._hashes[number] = block_hash
            if len(self._hashes) > 2 * RECENT_HASHES:  # pruned in batches: no scan per block
                newest = sorted(self._hashes)[-RECENT_HASHES:]
                self._hashes = {n: self._hashes[n] for n in newest}

    def build_block(
        self,
        ctx: BlockContext,
        candidates: Iterable[SignedTx],
        edits: tuple[StateEdit, ...] = NO_EDITS,
    ) -> PendingBlock:
        """Execute candidates in order, skipping those that cannot be included.

        Robust by construction: whatever one candidate does, it is either in the block or
        left out with the state as before it, so no transaction can stop a proposer. One that
        fails in a way no rule expects is reported in `crashed`, for the caller to evict.
        `edits`: devnet state edits the block carries (ctx.extra_data must commit to them)."""
        return self._run_block(ctx, candidates, _Building(), edits)

    def execute_block(
        self,
        ctx: BlockContext,
        header: BlockHeaderAPI,
        txs: list[SignedTx],
        edits: tuple[StateEdit, ...] = NO_EDITS,
    ) -> PendingBlock:
        """Re-execute a block made elsewhere and check every root against its header
        (`edits`: the block's devnet state edits, `dev_edits` of the stored block)."""
        if header.parent_hash != self.head.hash:
            raise BlockRejected("block does not extend the head")
        base_fee = self.base_fee_for(ctx.params)
        if header.base_fee_per_gas != base_fee:
            raise BlockRejected(
                f"block base fee {header.base_fee_per_gas} is not the gas_price in force, "
                f"{base_fee} (DECISIONS: Fees for default clients)"
            )
        block = self._run_block(ctx, txs, _Validating(), edits)
        if block.hash != header.hash:
            raise BlockRejected(
                f"block 0x{bytes(header.hash).hex()} does not match its execution "
                f"(state root 0x{block.header.state_root.hex()})"
            )
        return block

    def _run_block(
        self,
        ctx: BlockContext,
        txs: Iterable[SignedTx],
        policy: _TxPolicy,
        edits: tuple[StateEdit, ...] = NO_EDITS,
    ) -> PendingBlock:
        """The one block pipeline of building and validating: the modules' begin_block, the
        devnet state edits if any, the transactions (what a failing one does is the
        `policy`'s call), the modules' end_block, the seal."""
        if ctx.height != self.head_number + 1:
            raise BlockRejected(f"block {ctx.height} is not the next after {self.head_number}")
        if edits and ctx.extra_data != edits_commitment(edits):
            raise BlockRejected("the block's extra_data does not commit to its state edits")
        env = self.block_env(ctx)
        # Blocks read the head through the flat snapshot (evm/flat.py) and move it in their
        # overlay; blocks built on the same head each have their own, only one commits.
        overlay = self._overlay()
        run = self._begin_block(ctx, env, self.head.state_root, overlay, edits)
        for tx in txs:
            run.include(tx, policy)
        executor = run.executor
        # What freegas contracts paid is destroyed (SPEC §4): count it in the supply.
        ledger.record_burned(executor.account_db, executor.burned)
        outcome = self.modules.end_block(ctx, executor.account_db, executor.fees)
        block = self._seal(executor, overlay, env, ctx.extra_data, outcome)
        block.edits = edits
        block.skipped.extend(policy.skipped)
        block.crashed.extend(policy.crashed_txs)
        return block

    def _begin_block(
        self,
        ctx: BlockContext,
        env: BlockEnv,
        parent_root: bytes,
        overlay: OverlayDB,
        edits: tuple[StateEdit, ...] = NO_EDITS,
    ) -> _BlockRun:
        """A block's executor on its parent's state, after the modules' begin_block and the
        block's devnet state edits (edit blocks carry no transactions)."""
        executor = BlockExecutor(self.profile, overlay, parent_root, env, system=self.modules)
        self.modules.begin_block(ctx, executor.account_db)
        apply_edits(executor.account_db, edits)
        # After begin_block: a proposal decided there may have changed a parameter (the
        # block's base fee stays the one it started with).
        rules = self._fee_rules_now(executor, FeeRules.of(ctx.params, env.base_fee))
        return _BlockRun(self, executor, rules)

    def replay(self, header: BlockHeaderAPI) -> BlockReplay:
        """Committed block `header` (not genesis), to re-execute from its parent's state for a
        trace. Reads the rule inputs now (the caller's thread owns the chain's caches); the
        execution (`BlockReplay.start`, `apply`) may run in another thread."""
        number = int(header.block_number)
        parent = self.header_by_number(number - 1) if number > 0 else None
        if parent is None or parent.hash != header.parent_hash:
            raise ValueError(f"block {number} has no stored parent to replay it from")
        ctx = BlockContext(
            height=number,
            time=header.timestamp,
            coinbase=header.coinbase,
            randomness=header.mix_hash,
            extra_data=header.extra_data,
            params=self.params_at(parent),
        )
        env = self._env(
            number,
            header.timestamp,
            header.coinbase,
            header.gas_limit,
            header.mix_hash,
            header.base_fee_per_gas or 0,
            parent,
        )
        return BlockReplay(self, ctx, env, parent.state_root, self.transactions(number))

    def _fee_rules_now(self, executor: BlockExecutor, current: FeeRules) -> FeeRules:
        """The fee rules of the parameters in the block's state now (at the block's base fee),
        the executor's freegas terms moved with them; `current` (the same object) when nothing
        changed."""
        now = replace(self.fee_rules_in(executor.account_db), base_fee=current.base_fee)
        if now == current:
            return current
        executor.use_freegas_terms(now.freegas)
        return now

    def fee_rules_in(self, state: StateDB) -> FeeRules:
        """The SPEC §4 fee rules of the parameters `state` holds."""
        return FeeRules.of(read_state_params(state))

    def _seal(
        self,
        executor: BlockExecutor,
        overlay: OverlayDB,
        env: BlockEnv,
        extra_data: bytes,
        outcome: BlockOutcome,
    ) -> PendingBlock:
        result = executor.finish()
        header = PragueBlockHeader(
            parent_hash=self.head.hash,
            uncles_hash=EMPTY_UNCLE_HASH,
            coinbase=Address(env.coinbase),
            state_root=Hash32(result.state_root),
            transaction_root=Hash32(result.transaction_root),
            receipt_root=Hash32(result.receipt_root),
            bloom=result.bloom,
            difficulty=0,
            block_number=BlockNumber(env.number),
            gas_limit=env.gas_limit,
            gas_used=result.gas_used,
            timestamp=env.timestamp,
            extra_data=extra_data,
            mix_hash=Hash32(env.mix_hash),
            nonce=b"\x00" * 8,
            base_fee_per_gas=env.base_fee,
            withdrawals_root=BLANK_ROOT_HASH,
            blob_gas_used=0,
            excess_blob_gas=0,
            parent_beacon_block_root=ZERO_HASH32,
            requests_hash=EMPTY_REQUESTS_HASH,
        )
        return PendingBlock(header=header, result=result, overlay=overlay, outcome=outcome)

    # -- commit ---------------------------------------------------------------------------
    def commit(self, block: PendingBlock, extra_writes: Mapping[bytes, bytes] = EMPTY) -> None:
        """Persist the block and make it the head, atomically; `extra_writes` (the block's
        consensus records) go into the same batch."""
        self.write_block(block, extra_writes)
        self.advance(block)

    def write_block(self, block: PendingBlock, extra_writes: Mapping[bytes, bytes] = EMPTY) -> None:
        """The first half of `commit`: persist the block in one batch, the head pointer in it.
        Touches no in-memory state, so it may run in a worker thread while readers keep the
        old head; `advance` then switches them over. A crash between the two restarts on the
        new block: it is whole on disk."""
        if block.header.parent_hash != self.head.hash:
            raise InvariantViolation("committing a block that does not extend the head")
        writes = block.overlay.writes
        result = block.result
        receipts = self._stored_receipts(block)
        writes.update(self._block_writes(block.header, result.transactions, receipts))
        if block.edits:
            writes[schema.dev_edits_key(block.hash)] = encode_edits(block.edits)
        writes.update(extra_writes)
        if self.rewindable:
            writes[schema.undo_key(block.number)] = self._snapshot_undo(writes)
        self.db.write_batch(writes, sync=self.sync_writes)

    def advance(self, block: PendingBlock) -> None:
        """The second half of `commit`: the written `block` becomes the head, in one step."""
        if block.header.parent_hash != self.head.hash:
            raise InvariantViolation("advancing to a block that does not extend the head")
        self.head = block.header
        self._remember_hash(block.number, block.hash)
        self._remember(block.number, block.result.transactions, self._stored_receipts(block))

    @staticmethod
    def _stored_receipts(block: PendingBlock) -> list[StoredReceipt]:
        result = block.result
        return [
            StoredReceipt(r, a)
            for r, a in zip(result.receipts, result.contract_addresses, strict=True)
        ]

    def _block_writes(
        self, header: BlockHeaderAPI, txs: list[SignedTx], receipts: list[StoredReceipt]
    ) -> dict[bytes, bytes | None]:
        number = int(header.block_number)
        block_hash = bytes(header.hash)
        writes: dict[bytes, bytes | None] = {
            schema.header_key(number): rlp.encode(header),
            schema.number_by_hash_key(block_hash): schema.be64(number),
            schema.body_key(number): msgpack.packb([[tx.raw, tx.sender] for tx in txs]),
            schema.receipts_key(number): msgpack.packb(
                [[r.receipt.encode(), r.contract_address or b""] for r in receipts]
            ),
            schema.HEAD_KEY: schema.be64(number),
        }
        for tx, record in zip(txs, tx_records(number, receipts), strict=True):
            writes[schema.tx_location_key(tx.hash)] = schema.encode_tx_record(record)
        return writes

    def _snapshot_undo(self, writes: Mapping[bytes, bytes | None]) -> bytes:
        """The flat snapshot entries among `writes` with their values before them."""
        return msgpack.packb(
            [[key, self.db.get(key)] for key in sorted(writes) if flat.is_snapshot_key(key)]
        )

    # -- rollback (devnets) -----------------------------------------------------------------
    def rollback(self, height: int) -> list[bytes]:
        """Delete the blocks above `height` and make block `height` the head again, in one
        write batch; returns the hashes of the deleted blocks, newest first.

        Deleted: headers, hash index, bodies, receipts, the transaction locations that point
        into them, their undo records. The flat snapshot goes back to the state of `height`
        through the undo records; a block committed without one (not `rewindable`, e.g. by an
        earlier release) leaves the snapshot unknown, so its marker is dropped and blocks read
        through the tries from then on (slower, never wrong). Refused: a height outside
        [0, head], and a BFT chain (its commits and consensus state would name deleted blocks).
        """
        if not 0 <= height <= self.head_number:
            raise InvariantViolation(
                f"cannot roll back to block {height}: the chain holds blocks 0 to "
                f"{self.head_number}"
            )
        if self.db.get(schema.commit_key(self.head_number)) is not None:
            raise InvariantViolation("a chain decided by BFT consensus cannot be rolled back")
        writes: dict[bytes, bytes | None] = {}
        removed: list[bytes] = []
        snapshot_known = True
        for number in range(self.head_number, height, -1):
            removed.append(self._block_deletions(number, writes))
            undo = self.db.get(schema.undo_key(number))
            if undo is None:
                snapshot_known = False
                continue
            # Newest first: the value before the oldest deleted block is written last and wins.
            for key, before in msgpack.unpackb(undo):
                writes[key] = before
        if not snapshot_known:
            log.warning("no undo record for some rolled-back blocks: flat state snapshot dropped")
            writes[flat.MARKER_KEY] = None
        writes[schema.HEAD_KEY] = schema.be64(height)
        self.db.write_batch(writes, sync=True)
        header = self._read_header(height)
        if header is None:
            raise InvariantViolation(f"block {height} is missing from the store")
        self.head = header
        with self._cache_lock:
            self._hash_window = (-1, ())
            for cache in (self._hashes, self._headers):
                for number in [n for n in cache if n > height]:
                    del cache[number]
            self._body_cache.forget_above(height)
            self._receipt_cache.forget_above(height)
        return removed

    def _block_deletions(self, number: int, writes: dict[bytes, bytes | None]) -> bytes:
        """Add the deletion of block `number`'s own keys to `writes`; returns its hash."""
        header = self._read_header(number)
        if header is None:
            raise InvariantViolation(f"block {number} is missing from the store")
        block_hash = bytes(header.hash)
        for tx in self.transactions(number):
            location = self.tx_location(tx.hash)
            # The same transaction may sit in a kept block (a devnet can reset a nonce).
            if location is not None and location[0] == number:
                writes[schema.tx_location_key(tx.hash)] = None
        for key in (
            schema.header_key(number),
            schema.body_key(number),
            schema.receipts_key(number),
            schema.undo_key(number),
            schema.number_by_hash_key(block_hash),
        ):
            writes[key] = None
        return block_hash

    def _remember(self, number: int, txs: list[SignedTx], receipts: list[StoredReceipt]) -> None:
        self._remember_block(self._body_cache, number, _Decoded.of(txs))
        self._remember_block(self._receipt_cache, number, _Decoded.of(receipts))
        self._remember_one(self._headers, number, self.head, RECENT_HEADERS)

    # -- reads ----------------------------------------------------------------------------
    @property
    def head_number(self) -> int:
        return int(self.head.block_number)

    def header_by_number(self, number: int) -> BlockHeaderAPI | None:
        """The committed header at `number`; None beyond the head (or below 0)."""
        if not 0 <= number <= self.head_number:
            return None
        return self._read_header(number)

    def _read_header(self, number: int) -> BlockHeaderAPI | None:
        cached = self._headers.get(number)
        if cached is not None:
            return cached
        encoded = self.db.get(schema.header_key(number))
        if encoded is None:
            return None
        header = decode_header(encoded)
        self._remember_one(self._headers, number, header, RECENT_HEADERS)
        return header

    def number_by_hash(self, block_hash: bytes) -> int | None:
        value = self.db.get(schema.number_by_hash_key(block_hash))
        return None if value is None else int.from_bytes(value, "big")

    def header_by_hash(self, block_hash: bytes) -> BlockHeaderAPI | None:
        number = self.number_by_hash(block_hash)
        return None if number is None else self.header_by_number(number)

    def transactions(self, number: int) -> list[SignedTx]:
        return self._body(number).all()

    def receipts(self, number: int) -> list[StoredReceipt]:
        return self._receipts(number).all()

    def transaction(self, number: int, index: int) -> SignedTx | None:
        """Transaction `index` of block `number`, decoding only it; None when there is none."""
        body = self._body(number)
        return body[index] if 0 <= index < len(body) else None

    def receipt(self, number: int, index: int) -> StoredReceipt | None:
        """Receipt `index` of block `number`, decoding only it; None when there is none."""
        receipts = self._receipts(number)
        return receipts[index] if 0 <= index < len(receipts) else None

    def receipt_transactions(self, number: int) -> list[SignedTx | TxSummary]:
        """Block `number`'s transactions as receipts and fees need them (`_receipt_tx`):
        the decoded ones when cached, else summaries, several times cheaper to make."""
        body = self._body(number)
        return [_receipt_tx(body, i) for i in range(len(body))]

    def receipt_transaction(self, number: int, index: int) -> SignedTx | TxSummary | None:
        """Transaction `index` of block `number` as its receipt needs it; None if none."""
        body = self._body(number)
        return _receipt_tx(body, index) if 0 <= index < len(body) else None

    def _body(self, number: int) -> _Decoded[SignedTx]:
        return self._entries(self._body_cache, schema.body_key(number), number, _decode_tx)

    def _receipts(self, number: int) -> _Decoded[StoredReceipt]:
        key = schema.receipts_key(number)
        return self._entries(self._receipt_cache, key, number, _decode_receipt)

    def _entries(
        self,
        cache: _RecentBlocks[V],
        key: bytes,
        number: int,
        decode: Callable[[Any], V],
    ) -> _Decoded[V]:
        cached = cache.get(number)
        if cached is not None:
            return cached
        encoded = self.db.get(key)
        entries: _Decoded[V] = _Decoded(() if encoded is None else msgpack.unpackb(encoded), decode)
        if encoded is not None:
            self._remember_block(cache, number, entries)
        return entries

    def located_receipt(self, tx_hash: bytes) -> LocatedReceipt | None:
        """A committed transaction's receipt and what its receipt JSON needs, in time
        independent of its block's size (its "t" record says its gas and first log index; a
        record without them, from an older release, has them counted from the block)."""
        value = self.db.get(schema.tx_location_key(tx_hash))
        if value is None:
            return None
        record = schema.decode_tx_record(value)
        header = self.header_by_number(record.number)
        receipts = self._receipts(record.number)
        body = self._body(record.number)
        if header is None or not record.index < min(len(body), len(receipts)):
            return None  # indexed before its block is readable: not there yet
        tx = _receipt_tx(body, record.index)
        stored = receipts[record.index]
        gas_used, first_log_index = record.gas_used, record.first_log_index
        if gas_used is None or first_log_index is None:
            before = [receipts[i].receipt for i in range(record.index)]
            gas_used = stored.receipt.gas_used - (before[-1].gas_used if before else 0)
            first_log_index = sum(len(r.logs) for r in before)
        return LocatedReceipt(header, record.index, tx, stored, gas_used, first_log_index)

    def _remember_block(self, cache: _RecentBlocks[V], number: int, entries: _Decoded[V]) -> None:
        with self._cache_lock:
            cache.remember(number, entries)

    def _remember_one(self, cache: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
        with self._cache_lock:
            cache[key] = value
            while len(cache) > limit:
                cache.popitem(last=False)

    def dev_edits(self, header: BlockHeaderAPI) -> tuple[StateEdit, ...]:
        """The devnet state edits block `header` carried (none for almost every block)."""
        if header.extra_data == NO_CONSENSUS_METADATA:
            return NO_EDITS
        stored = self.db.get(schema.dev_edits_key(bytes(header.hash)))
        return NO_EDITS if stored is None else decode_edits(stored)

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        value = self.db.get(schema.tx_location_key(tx_hash))
        return None if value is None else schema.decode_tx_record(value).location

    def state_at(self, header: BlockHeaderAPI | None = None) -> StateDB:
        """A read view of the state after `header` (the head by default), through the tries:
        never the flat snapshot, which the next commit moves under a reader in another
        thread."""
        return StateDB(self.db, (header or self.head).state_root)
