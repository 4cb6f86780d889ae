"""The exceptions of the system package: one base class, one subclass per kind of failure.

`SystemStateError` is what callers catch. A `LedgerError` is a refused movement of CMT (a rule
violation by the caller's input: negative amount, insufficient balance); a `StorageError` is a
value that cannot be stored (out of range for its codec) or stored words that no codec of ours
could have written (state written by something else, i.e. corruption).
"""

from __future__ import annotations


class SystemStateError(Exception):
    """Base of every error raised by `cybermiles_node.system` and the state-kept parameters."""


class LedgerError(SystemStateError):
    """A transfer, mint or burn is refused; nothing was changed."""


class StorageError(SystemStateError):
    """A value does not fit its codec, a layout is declared twice, or stored words are corrupt."""
