"""The exception tree of `evm/`: what the execution layer refuses, for callers to report.

`EvmError` is the base. `TxRejected` and its subclasses are transaction refusals (decoding,
stateless checks, and the pool and fee rules above, which reuse them); each carries the Ethereum
execution-apis error code, so the RPC layer turns them into `{code, message, data}` without
knowing where they came from. They live here, at the bottom of the layers, because evm raises
them and nothing in evm may import the node above it.
"""

from __future__ import annotations


class EvmError(Exception):
    """Base of every error the execution layer reports for bad input or an unusable store."""


class TxRejected(EvmError):
    """A transaction was refused (decoding, stateless checks or mempool admission)."""

    code: int = -32003  # execution-apis "Transaction rejected"

    def __init__(self, message: str, data: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class NonceTooLow(TxRejected):
    code = 1


class NonceTooHigh(TxRejected):
    code = 2


class IntrinsicGasTooLow(TxRejected):
    code = 800


class GasPriceTooLow(TxRejected):
    code = 802


class GasLimitExceedsBlock(TxRejected):
    code = 803


class TipAboveFeeCap(TxRejected):
    code = 804


class GasOverflow(TxRejected):
    code = 805


class InsufficientFunds(TxRejected):
    code = 809


class AlreadyKnown(TxRejected):
    code = 1000


class InvalidSender(TxRejected):
    code = 1001


class InvalidTransaction(TxRejected):
    """Malformed encoding, wrong chain id, unsupported type, oversized."""

    code = -32000  # "Invalid input"


class PoolLimitReached(TxRejected):
    """Pool full (and the transaction pays too little to evict anyone), or sender slots used up."""

    code = -32003


class ReplacementUnderpriced(TxRejected):
    code = -32003
