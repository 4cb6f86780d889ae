"""The state staking and governance transactions are admitted against (DESIGN.md §7).

A system transaction's rules read state that earlier pending system transactions change: a
declaration must see that the same pub_key was declared by a transaction still in the pool, a
delegation that the candidate it names was declared a moment ago, a second withdrawal that the
first took the shares. So admission does not check against the head's state alone but against
the PENDING state: the head's state with the pool's admitted system transactions applied, in
the order they were admitted, by the same module code a block runs (`check_tx`, then
`deliver`). The overlay is an unpersisted `StateDB` journal on the head's root.

When the head moves, the overlay is rebuilt from the new head: the admitted transactions still
in the pool are applied again in their order; one that no longer passes (its effect now
conflicts with the chain) is returned as stale, for the pool to evict, so no caller waits for a
transaction no block will take. EVM transactions are not overlaid: a staking transaction that
relies on a pending transfer is judged against the head's balances (documented in
docs/DECISIONS.md, "Pending state for staking admission").
"""

from __future__ import annotations

from collections.abc import Callable

from cybermiles_node.application.chain import Chain
from cybermiles_node.errors import InvalidTransaction, TxRejected
from evm.executor import TransactionInvalid
from evm.state import StateDB
from evm.transactions import SignedTx

__all__ = ["PendingSystemState"]


class PendingSystemState:
    def __init__(self, chain: Chain, in_pool: Callable[[bytes], bool]) -> None:
        self.chain = chain
        self.in_pool = in_pool
        self._admitted: list[SignedTx] = []  # in admission order
        self._state: StateDB | None = None
        self._head = b""

    def check(self, tx: SignedTx) -> None:
        """Judge `tx` against the pending state and, if it passes, apply it there
        (tentatively: `admitted` or `refused` settles it). Raises TxRejected."""
        state = self._current()[0]
        checkpoint = state.record()
        try:
            self._apply(tx, state)
        except BaseException:
            state.discard(checkpoint)
            raise
        state.commit(checkpoint)

    def admitted(self, tx: SignedTx) -> None:
        """`tx` passed `check` and the pool took it."""
        self._admitted.append(tx)

    def refused(self) -> None:
        """A transaction that passed `check` was refused by the pool after all: its effect is
        in the overlay, so rebuild it from the admitted ones."""
        self._state = None

    def rebuild(self) -> list[SignedTx]:
        """Rebuild on the current head now; the admitted transactions that no longer pass."""
        self._state = None
        return self._current()[1]

    def _current(self) -> tuple[StateDB, list[SignedTx]]:
        head = self.chain.head
        if self._state is not None and self._head == bytes(head.hash):
            return self._state, []
        state = self.chain.state_at(head)
        survivors, stale = [], []
        for tx in self._admitted:
            if not self.in_pool(tx.hash):
                continue  # committed, or evicted
            checkpoint = state.record()
            try:
                self._apply(tx, state)
            except TxRejected:
                state.discard(checkpoint)
                stale.append(tx)
                continue
            state.commit(checkpoint)
            survivors.append(tx)
        self._admitted, self._state, self._head = survivors, state, bytes(head.hash)
        return state, stale

    def _apply(self, tx: SignedTx, state: StateDB) -> None:
        head = self.chain.head
        height, time = head.block_number + 1, head.timestamp
        self.chain.modules.check_tx(tx, state, height, time)
        try:
            self.chain.modules.deliver(tx, state, height, time)
        except TransactionInvalid as exc:  # its check passed: a rule that reads past it
            raise InvalidTransaction(str(exc)) from None
