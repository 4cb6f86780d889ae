"""The wire form of a block as consensus carries it, and its consensus metadata.

A block on the wire is msgpack `[version, header_rlp, [raw_tx, ...], metadata]`. Consensus
treats these bytes as opaque (it splits them into parts and votes on
`BlockID(keccak(header_rlp), parts)`); this module is the application's side of the format.

`BlockMeta` is what Tendermint keeps in its header and Ethereum has no field for: the proposer
that built the block, the validator-set hashes, the previous block's commit, the evidence of
misbehaviour the block includes and the randomness proof. The Ethereum header commits to it
through `extra_data = sha256(canonical(metadata))`, so the block hash covers it and every
Ethereum tool still verifies the hash. Commit signatures of block H live beside block H in the
store and travel as `last_commit` inside block H+1 (outside H's own hash, as QBFT chains do).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack
import rlp
from eth.abc import BlockHeaderAPI

from consensus.errors import MalformedMessage
from consensus.parts import MAX_BLOCK_BYTES
from consensus.types import (
    ADDRESS_SIZE,
    HASH_SIZE,
    Commit,
    DuplicateVoteEvidence,
    canonical,
)
from evm.header_codec import decode_header

WIRE_VERSION = 1
MAX_TXS = 100_000
MAX_EVIDENCE = 100
MAX_PROOF_BYTES = 1024


@dataclass(frozen=True)
class BlockMeta:
    proposer: bytes  # validator address of the block's builder
    validators_hash: bytes  # the set that decides this block
    next_validators_hash: bytes  # the set that decides the next block
    last_commit: Commit | None  # the previous block's commit (None for block 1)
    evidence: tuple[DuplicateVoteEvidence, ...]
    randomness_proof: bytes

    def commitment(self) -> bytes:
        """The 32 bytes the Ethereum header's extra_data carries."""
        return hashlib.sha256(canonical(self.to_wire())).digest()

    def to_wire(self) -> list[Any]:
        return [
            self.proposer,
            self.validators_hash,
            self.next_validators_hash,
            None if self.last_commit is None else self.last_commit.to_wire(),
            [ev.to_wire() for ev in self.evidence],
            self.randomness_proof,
        ]

    @classmethod
    def from_wire(cls, obj: Any) -> BlockMeta:
        if not isinstance(obj, list) or len(obj) != 6:
            raise MalformedMessage("block metadata must be a list of 6 fields")
        proposer, vhash, next_vhash, last_commit, evidence, proof = obj
        if not isinstance(evidence, list) or len(evidence) > MAX_EVIDENCE:
            raise MalformedMessage(f"block evidence must be a list of at most {MAX_EVIDENCE}")
        if not isinstance(proof, bytes) or len(proof) > MAX_PROOF_BYTES:
            raise MalformedMessage("randomness proof must be bytes")
        return cls(
            _sized(proposer, ADDRESS_SIZE, "proposer"),
            _sized(vhash, HASH_SIZE, "validators hash"),
            _sized(next_vhash, HASH_SIZE, "next validators hash"),
            None if last_commit is None else Commit.from_wire(last_commit),
            tuple(DuplicateVoteEvidence.from_wire(ev) for ev in evidence),
            proof,
        )


@dataclass(frozen=True)
class WireBlock:
    header: BlockHeaderAPI
    raw_txs: tuple[bytes, ...]
    meta: BlockMeta

    @property
    def hash(self) -> bytes:
        return bytes(self.header.hash)

    @property
    def number(self) -> int:
        return int(self.header.block_number)


def encode_block(block: WireBlock) -> bytes:
    return canonical(
        [WIRE_VERSION, rlp.encode(block.header), list(block.raw_txs), block.meta.to_wire()]
    )


# The last block decoded: a decided block is decoded on the event loop (the pool's copies of
# its transactions) and again where it executes. A pure function of the bytes, and WireBlock is
# immutable, so a hit is always right; one tuple, replaced whole, so threads never see it torn.
_last_decoded: tuple[bytes, WireBlock] | None = None


def decode_block(data: bytes) -> WireBlock:
    """Parse a block from a peer; anything malformed raises MalformedMessage."""
    global _last_decoded
    last = _last_decoded
    if last is not None and (last[0] is data or last[0] == data):
        return last[1]
    block = _decode_block(data)
    _last_decoded = (data, block)
    return block


def _decode_block(data: bytes) -> WireBlock:
    if len(data) > MAX_BLOCK_BYTES:
        raise MalformedMessage("block too large")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_array_len=MAX_TXS,
            max_map_len=0,
            max_str_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedMessage(f"block is not msgpack: {exc}") from None
    if not isinstance(obj, list) or len(obj) != 4 or obj[0] != WIRE_VERSION:
        raise MalformedMessage("block must be [1, header, txs, metadata]")
    _, header_rlp, txs, meta = obj
    if not isinstance(header_rlp, bytes) or not isinstance(txs, list):
        raise MalformedMessage("block header must be bytes and its transactions a list")
    if not all(isinstance(tx, bytes) and tx for tx in txs):
        raise MalformedMessage("block transactions must be non-empty byte strings")
    try:
        # Strict: only canonical RLP decodes (both the fast decoder and rlp's), so one header
        # has one encoding, and the hash is keccak of exactly these bytes (the RLP cache).
        header = decode_header(header_rlp)
    except Exception as exc:  # rlp raises a zoo of types for hostile input
        raise MalformedMessage(f"block header is not a Prague header: {exc}") from None
    return WireBlock(header, tuple(txs), BlockMeta.from_wire(meta))


def _sized(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise MalformedMessage(f"{what} must be {size} bytes")
    return value


__all__ = [
    "BlockMeta",
    "WireBlock",
    "decode_block",
    "encode_block",
]
