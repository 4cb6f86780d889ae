"""The one place that knows how the node's data is laid out in LevelDB.

| key                                   | value                                            |
|---------------------------------------|--------------------------------------------------|
| keccak(node) (32 bytes, no prefix)    | state/storage trie node RLP (as py-evm stores it) |
| keccak(code) (32 bytes, no prefix)    | contract code                                    |
| b"h" + be64(number)                   | canonical header RLP                             |
| b"n" + hash32                         | be64(number) of a canonical block                |
| b"b" + be64(number)                   | body: msgpack [[raw_tx, sender], ...]            |
| b"r" + be64(number)                   | receipts: msgpack [[receipt, contract or b""]]   |
| b"t" + tx_hash32                      | be64(number) + be32(index) [+ be64(gas used) +    |
|                                       | be32(first log index)]: where the transaction is, |
|                                       | and what its receipt needs from its predecessors  |
|                                       | (`TxRecord`; 12-byte records of older releases    |
|                                       | lack the two, readers then scan the block)        |
| b"c" + be64(number)                   | msgpack [commit, block metadata] of a BFT block   |
| b"v" + be64(number)                   | the validator set that decided the block          |
| b"x" + be64(number)                   | misbehaviour evidenced in the block (msgpack)     |
| b"e" + evidence_hash32                | be64(number) of the block that included it        |
| b"d" + block_hash32                   | devnet state edits the block carried (msgpack,    |
|                                       | application/dev_state.py); keyed by hash, so a    |
|                                       | block rolled back leaves only an unread record    |
| b"m:consensus"                        | consensus state for the next height (msgpack)     |
| b"m:head"                             | be64(number) of the last committed block         |
| b"m:genesis"                          | genesis block hash + sha256(genesis document)    |
| b"m:version"                          | schema version (be32)                            |
| b"f:root", b"fa", b"fi", b"fs" + ...  | the flat state snapshot of the head (evm/flat.py: |
|                                       | marker root, accounts, incarnations, storage)    |
| b"fp" + keccak(slot)                  | slot preimages (devnets only, evm/flat.py)       |
| b"u" + be64(number)                   | devnets: the flat snapshot entries the block     |
|                                       | changed, with their values before it (msgpack    |
|                                       | [[key, value or nil], ...]), for `rollback`      |

Every prefixed key is 6 to 58 bytes long and never exactly 32, so it cannot collide with a
32-byte node or code hash; no prefix (or whole key) in `KEY_PREFIXES` is a prefix of another,
so no two families share a key. Everything one block writes goes into a single write batch,
the head pointer and the flat snapshot included, so the database always holds whole blocks.
No schema version change for the snapshot: a database without it keeps working through the
tries (evm/flat.py, "Consistency").
"""

from __future__ import annotations

from dataclasses import dataclass

from evm import flat

SCHEMA_VERSION = 1

HEAD_KEY = b"m:head"
CONSENSUS_STATE_KEY = b"m:consensus"
GENESIS_KEY = b"m:genesis"
VERSION_KEY = b"m:version"

HEADER_PREFIX = b"h"
NUMBER_BY_HASH_PREFIX = b"n"
BODY_PREFIX = b"b"
RECEIPTS_PREFIX = b"r"
TX_LOCATION_PREFIX = b"t"
COMMIT_PREFIX = b"c"
VALIDATORS_PREFIX = b"v"
MISBEHAVIOUR_PREFIX = b"x"
EVIDENCE_PREFIX = b"e"
DEV_EDITS_PREFIX = b"d"
UNDO_PREFIX = b"u"

# Every key family of the database (prefixes, and whole keys of one-key families); trie nodes
# and code (32-byte hashes, no prefix) aside.
KEY_PREFIXES: tuple[bytes, ...] = (
    HEADER_PREFIX,
    NUMBER_BY_HASH_PREFIX,
    BODY_PREFIX,
    RECEIPTS_PREFIX,
    TX_LOCATION_PREFIX,
    COMMIT_PREFIX,
    VALIDATORS_PREFIX,
    MISBEHAVIOUR_PREFIX,
    EVIDENCE_PREFIX,
    DEV_EDITS_PREFIX,
    UNDO_PREFIX,
    HEAD_KEY,
    CONSENSUS_STATE_KEY,
    GENESIS_KEY,
    VERSION_KEY,
    *flat.KEY_PREFIXES,
)


def be64(number: int) -> bytes:
    return number.to_bytes(8, "big")


def header_key(number: int) -> bytes:
    return HEADER_PREFIX + be64(number)


def number_by_hash_key(block_hash: bytes) -> bytes:
    return NUMBER_BY_HASH_PREFIX + block_hash


def body_key(number: int) -> bytes:
    return BODY_PREFIX + be64(number)


def receipts_key(number: int) -> bytes:
    return RECEIPTS_PREFIX + be64(number)


def tx_location_key(tx_hash: bytes) -> bytes:
    return TX_LOCATION_PREFIX + tx_hash


def commit_key(number: int) -> bytes:
    return COMMIT_PREFIX + be64(number)


def validators_key(number: int) -> bytes:
    return VALIDATORS_PREFIX + be64(number)


def misbehaviour_key(number: int) -> bytes:
    return MISBEHAVIOUR_PREFIX + be64(number)


def evidence_key(evidence_hash: bytes) -> bytes:
    return EVIDENCE_PREFIX + evidence_hash


def dev_edits_key(block_hash: bytes) -> bytes:
    return DEV_EDITS_PREFIX + block_hash


def undo_key(number: int) -> bytes:
    return UNDO_PREFIX + be64(number)


@dataclass(frozen=True)
class TxRecord:
    """A committed transaction's "t" record: its block and index, and the two facts of its
    receipt JSON that depend on the transactions before it, so that one receipt is read
    without the rest of the block. `gas_used` and `first_log_index` are None in a record
    written before they existed (12 bytes)."""

    number: int
    index: int
    gas_used: int | None = None  # this transaction's gas (its cumulative minus the previous)
    first_log_index: int | None = None  # the block-wide index of its first log

    @property
    def location(self) -> tuple[int, int]:
        return self.number, self.index


def encode_tx_record(record: TxRecord) -> bytes:
    location = be64(record.number) + record.index.to_bytes(4, "big")
    if record.gas_used is None or record.first_log_index is None:
        return location
    return location + be64(record.gas_used) + record.first_log_index.to_bytes(4, "big")


def decode_tx_record(value: bytes) -> TxRecord:
    number, index = int.from_bytes(value[:8], "big"), int.from_bytes(value[8:12], "big")
    if len(value) < 24:
        return TxRecord(number, index)
    return TxRecord(
        number,
        index,
        gas_used=int.from_bytes(value[12:20], "big"),
        first_log_index=int.from_bytes(value[20:24], "big"),
    )
