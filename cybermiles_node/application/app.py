"""The chain application behind an ABCI-like interface.

`ChainApp` is what a block producer drives, whatever it is (the devnet automine now, BFT
consensus next): `check_tx` admits transactions to the mempool, `build_block` executes the best
pending transactions on top of the head, `validate_block` re-executes a block proposed elsewhere,
`commit` persists a block and rechecks the mempool. The producer never looks inside
transactions; the application never learns how a block was decided.

Halts (issue #10: governance's upgrade_program / retire_program): a block whose modules decided
a halt (`BlockOutcome.halt`) is committed like any other, and then `commit` raises
`ChainHalted`, unless the program requirement that block wrote (governance/versions.py) is
satisfied by the version this node declares (`AppConfig.program_version`, by default the
package's own): an upgraded node goes on. Whoever drives the application (devnet producer,
consensus, blocksync through consensus) does nothing more: the exception ends the node, which
exits with its own status (operator/cli.py). `program_must_stop` is the one rule, shared by that
check and the start-up refusal of a node restarted with a version the chain no longer accepts.

Low-price slots (SPEC §4 rules 1 and 3 for the next block, `LowPriceSlots`): only an
executable pool transaction holds one. A low-price transaction executable on arrival takes its
slot or is refused (101/103, Travis's codes); one queued behind a nonce gap takes none, and
when it becomes executable (its gap filled, at admission or after a block) it takes its slot if
free, or waits in the pool until a block frees one (`_waiting`): never refused or dropped for it.

Listeners registered in `on_commit` and `on_pending` (RPC filters and subscriptions, gossip)
are told after the fact; they must not raise.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from eth.abc import BlockHeaderAPI
from eth_hash.auto import keccak

from cybermiles_node.application.chain import EMPTY, Chain, PendingBlock
from cybermiles_node.application.fees import LowPriceRejected, LowPriceSlots, PriceTooLow
from cybermiles_node.application.pending_system import PendingSystemState
from cybermiles_node.errors import CyberMilesError, TxRejected
from cybermiles_node.governance.versions import (
    PROGRAM_NAME,
    ProgramRequirement,
    program_requirement,
)
from cybermiles_node.system.context import BlockContext
from cybermiles_node.txpool.mempool import Mempool, MempoolConfig, PoolStateReader
from evm.state import StateDB
from evm.transactions import SenderRecoveryPool, SignedTx, decode_transaction

log = logging.getLogger(__name__)

CommitListener = Callable[[PendingBlock], None]
PendingListener = Callable[[Sequence[SignedTx]], None]

# The program version a node declares unless told otherwise (`--program-version`): the
# package's own version (pyproject.toml) as "vX.Y.Z", the form governance proposals name.
DEFAULT_PROGRAM_VERSION = "v" + importlib.metadata.version("cybermiles-node")


@dataclass(frozen=True)
class AppConfig:
    mempool: MempoolConfig = MempoolConfig()
    max_block_bytes: int = 8 * 2**20
    max_block_txs: int = 10_000
    recovery_workers: int = 0  # processes recovering senders of large batches; 0: in-process
    program_version: str = DEFAULT_PROGRAM_VERSION  # what this node runs, checked at halts


class ChainHalted(CyberMilesError):
    """The chain stops for this program after block `height` (committed): governance decided
    an upgrade this node's version does not satisfy, or retired the program."""

    def __init__(self, message: str, height: int) -> None:
        super().__init__(message)
        self.message = message
        self.height = height


def program_must_stop(requirement: ProgramRequirement, head: int, version: str) -> bool:
    """Whether a node running `version` of this program may not go past block `head`: the
    chain's requirement is in force from its height on and this version does not satisfy it."""
    return head >= requirement.height and not requirement.satisfied_by(PROGRAM_NAME, version)


class ChainApp:
    """check_tx / build_block / validate_block / commit over a `Chain` and its mempool."""

    def __init__(self, chain: Chain, config: AppConfig = AppConfig()) -> None:
        self.chain = chain
        self.config = config
        self.mempool: Mempool[SignedTx] = Mempool(config.mempool, chain.state_at())
        self.recovery = SenderRecoveryPool(config.recovery_workers)
        self.on_commit: list[CommitListener] = []
        self.low_price = LowPriceSlots(chain.fee_rules_at_head())  # the next block's slots
        # Executable low-price txs without a slot, in the order they became executable.
        self._waiting: dict[bytes, SignedTx] = {}
        # Replacements under way in this admission call: new hash -> the tx it replaces.
        self._replacing: dict[bytes, SignedTx] = {}
        self.mempool.on_pending.append(self._note_executable)
        self.mempool.on_pending.append(
            lambda txs: _notify(self.on_pending, txs, "pending-transaction")
        )
        self.on_pending: list[PendingListener] = []
        self.rejected_total = 0  # transactions refused at admission, for metrics
        self.pending_system = PendingSystemState(chain, lambda h: h in self.mempool)

    @property
    def head(self) -> BlockHeaderAPI:
        return self.chain.head

    @property
    def pending_count(self) -> int:
        return self.mempool.pending_count

    @property
    def min_gas_price(self) -> int:
        return self.chain.params_at_head().gas_price

    # -- admission ------------------------------------------------------------------------
    def decode(self, raw: bytes, sender: bytes | None = None) -> SignedTx:
        """Decode and check a transaction without state (raises a TxRejected)."""
        tx = decode_transaction(
            raw, chain_id=self.chain.chain_id, block_gas_limit=self.chain.gas_limit, sender=sender
        )
        self.chain.fee_rules_at_head().check_shape(tx)
        return tx

    # -- low-price slots (module docstring) ---------------------------------------------------
    def _release_stale_slots(self) -> None:
        """Slots of low-price txs no longer executable in the pool (committed, evicted, back
        behind a gap) are free again. Called once per admission call: within a batch, earlier
        txs are not in the pool yet."""
        if self.low_price.pairs:
            self.low_price.release_missing(self.mempool.is_pending)

    def _admit_low_price(self, tx: SignedTx, executable: bool, replaced: SignedTx | None) -> None:
        """The mempool's last admission rule: an executable low-price tx takes its slot now
        (raises LowPriceRejected); a queued one takes none until it becomes executable."""
        if replaced is not None:
            self._replacing[tx.hash] = replaced
        if executable and self.low_price.rules.is_low_price(tx):
            self.low_price.take(tx, None if replaced is None else replaced.hash)

    def _admission_failed(self, tx: SignedTx) -> None:
        """After the mempool refused `tx` (maybe after `_admit_low_price` gave it a slot)."""
        self.low_price.release(tx.hash)
        replaced = self._replacing.get(tx.hash)
        if replaced is not None:  # still pooled: it may have lost its slot to `tx`
            self._waiting[replaced.hash] = replaced

    def _note_executable(self, txs: Sequence[SignedTx]) -> None:
        """Transactions that just became executable: low-price ones without a slot wait for
        one (`_assign_waiting_slots` at the end of the admission call or commit)."""
        for tx in txs:
            if self.low_price.rules.is_low_price(tx) and not self.low_price.holds(tx.hash):
                self._waiting[tx.hash] = tx

    def _assign_waiting_slots(self) -> None:
        """Give free slots to the waiting transactions, oldest first; the others wait on."""
        self._replacing.clear()
        for tx_hash, tx in list(self._waiting.items()):
            if self.mempool.is_pending(tx_hash) and not self.low_price.holds(tx_hash):
                try:
                    self.low_price.take(tx)
                except LowPriceRejected:
                    continue
            del self._waiting[tx_hash]

    # -- admission ----------------------------------------------------------------------------
    def check_tx(self, raw: bytes, *, sender: bytes | None = None) -> SignedTx:
        """Admit one transaction. `sender`: only for a devnet's impersonated transactions
        (application/dev_state.py), whose sender is given, not recovered."""
        self._release_stale_slots()
        try:
            tx = self.decode(raw, sender)
            self._check_system_tx(tx)
            self._check_freegas(tx)
            try:
                self.mempool.add(tx, self._admit_low_price)
            except TxRejected:
                self._admission_failed(tx)
                if tx.is_system:
                    self.pending_system.refused()
                raise
            if tx.is_system:
                self.pending_system.admitted(tx)
        except TxRejected:
            self.rejected_total += 1
            raise
        finally:
            self._assign_waiting_slots()
        return tx

    def _check_system_tx(self, tx: SignedTx) -> None:
        """A staking/governance transaction's module checks it against the pending state
        (`pending_system.py`; raises TxRejected)."""
        if tx.is_system:
            self.pending_system.check(tx)

    def _check_freegas(self, tx: SignedTx) -> None:
        """A freegas contract's ability to prepay (raises PriceTooLow)."""
        if self.chain.fee_rules_at_head().is_freegas(tx):
            self._check_freegas_prepayment(tx)

    def ship_senders(self, raws: Sequence[bytes], piece: int) -> list[Future[list[bytes | None]]]:
        """Have the worker processes recover the senders of all of `raws`, in pieces of
        `piece`, in order: per piece a future, for a shell to wait for without blocking its
        event loop before it admits that piece with `check_txs(piece_raws, senders)`; [] when
        there are no workers or the batch is small (`check_txs` then recovers them itself)."""
        return self.recovery.ship(raws, piece)

    def check_txs(
        self, raws: Sequence[bytes], senders: Sequence[bytes | None] | None = None
    ) -> list[SignedTx | TxRejected]:
        """Admit a batch. `senders`: recovered already (`ship_senders`; None for a bad
        signature, which decoding names); otherwise worker processes recover the senders of
        the batch's tail meanwhile."""
        self._release_stale_slots()
        if senders is not None:
            shipped_from, wait_for_senders = 0, lambda: list(senders)
        else:
            shipped_from, wait_for_senders = self.recovery.submit(raws)
        shipped: list[bytes | None] = []
        outcomes: list[SignedTx | TxRejected] = []
        decoded: list[SignedTx] = []
        for i, raw in enumerate(raws):
            sender = None
            if i >= shipped_from:
                if not shipped:
                    shipped = wait_for_senders()
                # None when the worker found the signature invalid: decoding says why.
                sender = shipped[i - shipped_from]
            try:
                tx = self.decode(raw, sender)
                self._check_system_tx(tx)
                self._check_freegas(tx)
            except TxRejected as exc:
                outcomes.append(exc)
                continue
            outcomes.append(tx)
            decoded.append(tx)
        results = iter(self.mempool.add_batch(decoded, self._admit_low_price))
        for i, outcome in enumerate(outcomes):
            if isinstance(outcome, SignedTx):
                added = next(results)
                if isinstance(added, TxRejected):
                    outcomes[i] = added
                    self._admission_failed(outcome)
                    if outcome.is_system:
                        self.pending_system.refused()
                elif outcome.is_system:
                    self.pending_system.admitted(outcome)
        self._assign_waiting_slots()
        self.rejected_total += sum(isinstance(o, TxRejected) for o in outcomes)
        return outcomes

    def _check_freegas_prepayment(self, tx: SignedTx) -> None:
        need = self.chain.fee_rules_at_head().freegas.prepayment(tx)
        have = self.chain.state_at().get_balance(tx.to)
        if have < need:
            raise PriceTooLow(
                f"freegas transaction: the contract holds {have} wei, below gas x gas price "
                f"= {need} wei"
            )

    # -- blocks ---------------------------------------------------------------------------
    def next_context(
        self, *, time: int, coinbase: bytes, randomness: bytes, extra_data: bytes
    ) -> BlockContext:
        """The context of the next block without consensus facts (a devnet producer's); BFT
        builds its own with `chain.next_context`, which takes them too."""
        return self.chain.next_context(
            time=time, coinbase=coinbase, randomness=randomness, extra_data=extra_data
        )

    def build_block(self, ctx: BlockContext) -> PendingBlock:
        block = self.execute(ctx, self.reap())
        self.evict_crashed(block)
        return block

    def execute(self, ctx: BlockContext, candidates: Sequence[SignedTx]) -> PendingBlock:
        """Build a block of `candidates` (what `reap` gave) on the head. Safe in a worker
        thread while the event loop admits transactions and serves reads, as long as nothing
        moves the head meanwhile (the devnet producer's block lock)."""
        return self.chain.build_block(ctx, candidates)

    def reap(self) -> list[SignedTx]:
        """The best pending transactions for the next block, in order (the pool keeps them
        until a commit includes them)."""
        return self.mempool.reap(
            max_gas=self.chain.gas_limit,
            max_bytes=self.config.max_block_bytes,
            max_count=self.config.max_block_txs,
        )

    def evict_crashed(self, block: PendingBlock) -> None:
        """Drop from the pool what crashed `block`'s building (and its sender's later txs)."""
        for tx, reason in block.crashed:
            evicted = self.mempool.drop(tx.hash)
            log.warning(
                "evicted transaction 0x%s (and %d later of its sender): %s",
                tx.hash.hex(),
                max(0, len(evicted) - 1),
                reason,
            )

    def validate_block(
        self,
        ctx: BlockContext,
        header: BlockHeaderAPI,
        raws: Sequence[bytes],
        known: Sequence[SignedTx | None] | None = None,
    ) -> PendingBlock:
        """Execute a block proposed elsewhere; raises TxRejected or BlockRejected. `known`:
        `known_txs(raws)`, looked up beforehand on the event loop when this runs in a worker
        thread (the mempool is the loop's)."""
        if known is None:
            known = self.known_txs(raws)
        txs = [self.decode(raw) if tx is None else tx for raw, tx in zip(raws, known, strict=True)]
        return self.chain.execute_block(ctx, header, txs)

    def known_txs(self, raws: Sequence[bytes]) -> list[SignedTx | None]:
        """The pool's copies of `raws` (gossiped to us earlier: decoded, senders recovered),
        None for the others."""
        known: list[SignedTx | None] = []
        for raw in raws:
            tx = self.mempool.get(keccak(raw))
            known.append(tx if tx is not None and tx.raw == raw else None)
        return known

    def commit(self, block: PendingBlock, extra_writes: Mapping[bytes, bytes] = EMPTY) -> None:
        """Persist `block` (one batch), recheck the mempool, tell the listeners; then raise
        ChainHalted if the block halts the chain for this node (module docstring)."""
        self.write(block, extra_writes)
        self.finish_commit(block)

    def write(self, block: PendingBlock, extra_writes: Mapping[bytes, bytes] = EMPTY) -> None:
        """The first half of `commit`: `block` on disk, whole (safe in a worker thread: readers
        keep the old head until `finish_commit`)."""
        self.chain.write_block(block, extra_writes)

    def read_ahead(self, block: PendingBlock, senders: Sequence[bytes]) -> StateDB:
        """What `finish_commit` reads from the written `block`'s state, read beforehand (in the
        producer's worker thread: trie reads by root, off the event loop): the accounts of
        `senders` (the pool's, when the block was reaped) and the parameters in force after
        it. Returns that state, to hand to `finish_commit`."""
        state = self.chain.state_at(block.header)
        for sender in senders:
            state.get_nonce(sender)  # one account read: nonce and balance both
        self.chain.params_at(block.header)  # kept per block hash: the fee rules read it
        return state

    def pool_senders(self) -> list[bytes]:
        return self.mempool.senders()

    def finish_commit(self, block: PendingBlock, state: PoolStateReader | None = None) -> None:
        """The second half of `commit`, on the event loop: the written `block` becomes the
        head in one step; recheck the mempool (it may hold transactions that arrived while the
        block executed) against `state` (the block's, from `read_ahead`, else read now), tell
        the listeners; raise ChainHalted if the block halts the chain for this node."""
        self.chain.advance(block)
        self.low_price.rules = self.chain.fee_rules_at_head()  # the block may have changed them
        included = [tx.hash for tx in block.result.transactions]
        # The block's transactions free their slots before the pool promotes (and reports)
        # what they unblocked, so those find the slots free.
        done = set(included)
        self.low_price.release_missing(lambda h: h not in done and self.mempool.is_pending(h))
        self.mempool.update(self.chain.state_at() if state is None else state, included)
        self._release_stale_slots()
        self._assign_waiting_slots()
        for stale in self.pending_system.rebuild():
            evicted = self.mempool.drop(stale.hash)
            log.info(
                "evicted staking/governance transaction 0x%s (and %d later of its sender): it "
                "no longer passes its rules on the new head",
                stale.hash.hex(),
                max(0, len(evicted) - 1),
            )
        _notify(self.on_commit, block, "commit")
        halted = self._halt_after(block)
        if halted is not None:
            log.warning("chain halt after block %d: %s", halted.height, halted.message)
            raise halted

    def _halt_after(self, block: PendingBlock) -> ChainHalted | None:
        """The halt `block` decided, for this node. A halt with a program requirement of the
        block's height is lifted by a version satisfying it and repeats at every restart
        (start-up refusal); a halt without one stops this run only."""
        if block.outcome.halt is None:
            return None
        requirement = program_requirement(self.chain.state_at())
        if requirement is None or requirement.height != block.number:
            return ChainHalted(block.outcome.halt, block.number)
        if program_must_stop(requirement, block.number, self.config.program_version):
            return ChainHalted(requirement.message, block.number)
        log.info(
            "block %d requires %s %s: this node runs %s, going on",
            block.number,
            requirement.name,
            requirement.version,
            self.config.program_version,
        )
        return None

    def query(self, height: int | None = None) -> StateDB:
        """The state after block `height` (the head when None); LookupError if unknown."""
        header = self.chain.head if height is None else self.chain.header_by_number(height)
        if header is None:
            raise LookupError(f"no block {height}: the head is {self.chain.head_number}")
        return self.chain.state_at(header)

    def close(self) -> None:
        self.recovery.close()


def _notify(listeners: Sequence[Callable[[Any], None]], event: Any, kind: str) -> None:
    """Tell every listener; a listener's bug must not reject transactions or stop blocks."""
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            log.exception("%s listener failed", kind)
