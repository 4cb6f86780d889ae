"""The system layer under the params, staking and governance modules (DESIGN.md §7, item 4).

`storage` turns typed values into storage words of an account (items, maps, sorted indices over
keccak-derived slots), `addresses` names the fixed accounts, `ledger` moves, mints and burns CMT
with supply counters. Pure code: no I/O, clocks, consensus or RPC.
"""

from cybermiles_node.system.errors import LedgerError, StorageError, SystemStateError
from cybermiles_node.system.storage import (
    ADDRESS,
    ADDRESS_KEY,
    BOOL,
    BYTES,
    BYTES32,
    BYTES32_KEY,
    BYTES_KEY,
    RATIONAL,
    STRING,
    STRING_KEY,
    UINT,
    UINT_KEY,
    Codec,
    Item,
    KeyCodec,
    Layout,
    Map,
    MemoryStorage,
    SortedIndex,
    SystemStorage,
)

__all__ = [
    "ADDRESS",
    "ADDRESS_KEY",
    "BOOL",
    "BYTES",
    "BYTES32",
    "BYTES32_KEY",
    "BYTES_KEY",
    "RATIONAL",
    "STRING",
    "STRING_KEY",
    "UINT",
    "UINT_KEY",
    "Codec",
    "Item",
    "KeyCodec",
    "Layout",
    "LedgerError",
    "Map",
    "MemoryStorage",
    "SortedIndex",
    "StorageError",
    "SystemStateError",
    "SystemStorage",
]
