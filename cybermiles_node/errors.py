"""The node's exception tree.

Everything the chain application raises for bad input derives from `CyberMilesError`.
Transaction rejections (`TxRejected` and its coded subclasses) are defined in `evm/errors.py`,
where the execution layer raises them, and re-exported here for the node's own rules.
A broken internal invariant is *not* one of these: it raises `InvariantViolation`,
which stops the node.
"""

from __future__ import annotations

from evm.errors import (  # noqa: F401  (re-exported: the node raises them too)
    AlreadyKnown,
    GasLimitExceedsBlock,
    GasOverflow,
    GasPriceTooLow,
    InsufficientFunds,
    IntrinsicGasTooLow,
    InvalidSender,
    InvalidTransaction,
    NonceTooHigh,
    NonceTooLow,
    PoolLimitReached,
    ReplacementUnderpriced,
    TipAboveFeeCap,
    TxRejected,
)


class CyberMilesError(Exception):
    """Base of every error the node reports for bad input or an impossible request."""


class DevnetError(CyberMilesError):
    """A devnet cannot be created, reused, reset or started."""


class InvariantViolation(Exception):
    """Internal state is inconsistent: the node must stop rather than go on."""
