"""The one place that knows how the node's data is laid out in LevelDB.

| key                                   | value                                            |
|---------------------------------------|--------------------------------------------------|
| keccak(node) (32 bytes, no prefix)    | state/storage trie node RLP (as py-evm stores it) |
| keccak(code) (32 bytes, no prefix)    | contract code                                    |
| b"h" + be64(number)                   | canonical header RLP                             |
| b"n" + hash32                         | be64(number) of a canonical block                |
| b"b" + be64(number)                   | body: msgpack [[raw_tx, sender], ...]            |
| b"r" + be64(number)                   | receipts: msgpack [[receipt, contract or b""]]   |
| b"t" + tx_hash32                      | be64(number) + be32(index)                       |
| b"c" + be64(number)                   | msgpack [commit, block metadata] of a BFT block   |
| b"v" + be64(number)                   | the validator set that decided the block          |
| b"x" + be64(number)                   | misbehaviour evidenced in the block (msgpack)     |
| b"e" + evidence_hash32                | be64(number) of the block that included it        |
| b"m:consensus"                        | consensus state for the next height (msgpack)     |
| b"m:head"                             | be64(number) of the last committed block         |
| b"m:genesis"                          | genesis block hash + sha256(genesis document)    |
| b"m:version"                          | schema version (be32)                            |

Every prefixed key is 6 to 33 bytes long and never exactly 32, so it cannot collide with a
32-byte node or code hash. Everything one block writes goes into a single write batch, the
head pointer included, so the database always holds whole blocks.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

HEAD_KEY = b"m:head"
CONSENSUS_STATE_KEY = b"m:consensus"
GENESIS_KEY = b"m:genesis"
VERSION_KEY = b"m:version"


def be64(number: int) -> bytes:
    return number.to_bytes(8, "big")


def header_key(number: int) -> bytes:
    return b"h" + be64(number)


def number_by_hash_key(block_hash: bytes) -> bytes:
    return b"n" + block_hash


def body_key(number: int) -> bytes:
    return b"b" + be64(number)


def receipts_key(number: int) -> bytes:
    return b"r" + be64(number)


def tx_location_key(tx_hash: bytes) -> bytes:
    return b"t" + tx_hash


def commit_key(number: int) -> bytes:
    return b"c" + be64(number)


def validators_key(number: int) -> bytes:
    return b"v" + be64(number)


def misbehaviour_key(number: int) -> bytes:
    return b"x" + be64(number)


def evidence_key(evidence_hash: bytes) -> bytes:
    return b"e" + evidence_hash


def encode_tx_location(number: int, index: int) -> bytes:
    return be64(number) + index.to_bytes(4, "big")


def decode_tx_location(value: bytes) -> tuple[int, int]:
    return int.from_bytes(value[:8], "big"), int.from_bytes(value[8:12], "big")
