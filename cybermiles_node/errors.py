"""The node's exception tree.

Everything the chain application raises for bad input derives from `CyberMilesError`.
Transaction rejections carry the Ethereum execution-apis error code, so the RPC layer
can turn them into `{code, message, data}` without knowing where they came from.
A broken internal invariant is *not* one of these: it raises `InvariantViolation`,
which stops the node.
"""

from __future__ import annotations


class CyberMilesError(Exception):
    """Base of every error the node reports for bad input or an impossible request."""


class DevnetError(CyberMilesError):
    """A devnet cannot be created, reused, reset or started."""


class InvariantViolation(Exception):
    """Internal state is inconsistent: the node must stop rather than go on."""


class TxRejected(CyberMilesError):
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
