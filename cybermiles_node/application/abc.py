"""The application interface a block producer depends on (ABCI-like).

Consensus (or the devnet producer) sees the chain application only through `Application`:
it admits transactions, asks for a block to propose, asks whether a proposed block is valid,
and commits decided blocks. It never looks inside transactions; the application never learns
how a decision was reached. `cybermiles_node.application.app.ChainApp` is the implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from eth.abc import BlockHeaderAPI

from cybermiles_node.application.chain import PendingBlock
from cybermiles_node.system.context import BlockContext
from evm.transactions import SignedTx


class StateView(Protocol):
    """Read access to the world state after some block."""

    def get_balance(self, address: bytes) -> int: ...
    def get_nonce(self, address: bytes) -> int: ...
    def get_code(self, address: bytes) -> bytes: ...
    def get_storage(self, address: bytes, slot: int, from_journal: bool = True) -> int: ...


class Application(Protocol):
    on_pending: list[Callable[[Sequence[SignedTx]], None]]
    """Called with transactions that just became executable (wakes producers, feeds gossip)."""

    @property
    def head(self) -> BlockHeaderAPI:
        """The last committed block's header."""
        ...

    @property
    def pending_count(self) -> int:
        """How many transactions are executable now."""
        ...

    def check_tx(self, raw: bytes) -> SignedTx:
        """Admit a transaction to the mempool; raises TxRejected with the reason."""
        ...

    def next_context(
        self, *, time: int, coinbase: bytes, randomness: bytes, extra_data: bytes
    ) -> BlockContext:
        """The context of the next block, from what its header will carry."""
        ...

    def build_block(self, ctx: BlockContext) -> PendingBlock:
        """Execute the best pending transactions on top of the head (not yet committed)."""
        ...

    def reap(self) -> list[SignedTx]:
        """The best pending transactions for the next block (the pool keeps them)."""
        ...

    def execute(self, ctx: BlockContext, candidates: Sequence[SignedTx]) -> PendingBlock:
        """`build_block` of given candidates; may run in a worker thread (application/app.py)."""
        ...

    def evict_crashed(self, block: PendingBlock) -> None:
        """Drop from the pool what crashed the building of `block`."""
        ...

    def validate_block(
        self, ctx: BlockContext, header: BlockHeaderAPI, raws: Sequence[bytes]
    ) -> PendingBlock:
        """Re-execute a block proposed elsewhere; raises if any root or tx is wrong."""
        ...

    def commit(self, block: PendingBlock, extra_writes: Mapping[bytes, bytes] = ...) -> None:
        """Persist a decided block atomically (with the consensus records in `extra_writes`)
        and recheck the mempool; then raise ChainHalted if the block halts the chain for
        this node (application/app.py): the caller must do nothing more."""
        ...

    def write(self, block: PendingBlock, extra_writes: Mapping[bytes, bytes] = ...) -> None:
        """`commit`'s first half: the block on disk (may run in a worker thread)."""
        ...

    def read_ahead(self, block: PendingBlock, senders: Sequence[bytes]) -> StateView:
        """The written block's state with what `finish_commit` reads of it already read (may
        run in a worker thread)."""
        ...

    def pool_senders(self) -> list[bytes]:
        """The senders with pooled transactions."""
        ...

    def finish_commit(self, block: PendingBlock, state: StateView | None = None) -> None:
        """`commit`'s second half, on the event loop: the head moves, the mempool (checked
        against `state`, `read_ahead`'s) and the listeners follow; may raise ChainHalted as
        `commit` does."""
        ...

    def query(self, height: int | None = None) -> StateView:
        """The state after block `height` (the head when None)."""
        ...
