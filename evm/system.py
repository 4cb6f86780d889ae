"""System transactions (SPEC §5): recognised once, at decoding; delivered by a handler.

A legacy EIP-155 transaction with no recipient, value 0, gas price 0 and gas 0 is a staking or
governance transaction whose data is the JSON `{"type": "<kind>", "data": {...}}`. No EVM
transaction can look like that (gas 0 is below any intrinsic gas), so the four header fields
decide: `SignedTx.is_system`. Decoding then skips the intrinsic-gas checks, the fee rules leave
it alone, and the block executor hands it to a `SystemTxHandler` instead of the EVM: the
handler applies it to the block's state and answers what the receipt says (status, the gas
charged, logs). evm never knows the kinds: the node's modules implement the handler
(cybermiles_node/modules.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from evm.state import StateDB
from evm.transactions import SignedTx

__all__ = ["Log", "SystemTxHandler", "SystemTxResult"]

Log = tuple[bytes, tuple[int, ...], bytes]  # (address, topics, data), as py-evm's log entries


@dataclass(frozen=True)
class SystemTxResult:
    """What one delivered system transaction's receipt says."""

    success: bool
    gas_used: int  # the gas charged for it (its fee / gas price), shown as the receipt's gasUsed
    logs: Sequence[Log] = ()
    fee: int = 0  # wei the handler moved from the sender to the block's fee recipient


class SystemTxHandler(Protocol):
    def gas_of(self, tx: SignedTx, state: StateDB) -> int:
        """The gas the transaction will be charged: it must fit in the block before delivery
        (raises TransactionInvalid when no handler knows the kind)."""
        ...

    def deliver(
        self, tx: SignedTx, state: StateDB, block_number: int, block_time: int
    ) -> SystemTxResult:
        """Apply the transaction to `state` (the sender's nonce is the executor's business);
        raise TransactionInvalid to leave it out of the block, leaving `state` to be undone."""
        ...
