"""Blocks travel as parts: fixed-size chunks of the block's wire data with Merkle proofs.

A proposer splits the block's wire bytes into parts of `part_size` bytes (the last one shorter),
builds an RFC-6962-style SHA-256 Merkle tree over them (leaf = sha256(0x00 || data), inner =
sha256(0x01 || left || right), the split point is the largest power of two below the leaf count)
and announces `(parts_total, root)` in the `BlockID` of its proposal. Receivers assemble the block
with `PartSet.expecting(total, root)`: every part carries the audit path from its leaf to the root,
so a part is checked on arrival and one bad peer cannot poison a block with garbage.

A block is at most 16 MiB, i.e. at most 256 parts of 64 KiB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from consensus.errors import MalformedMessage
from consensus.types import HASH_SIZE, MAX_HEIGHT, MAX_ROUND, _bytes, _fields, _int

DEFAULT_PART_SIZE = 65536
MAX_BLOCK_BYTES = 16 * 1024 * 1024
MAX_PARTS = 256
# The deepest audit path of a tree of MAX_PARTS leaves: ceil(log2(256)) = 8.
MAX_PROOF_LEN = 8

_LEAF = b"\x00"
_INNER = b"\x01"


@dataclass(frozen=True)
class BlockPart:
    """Part `index` of the proposal block of (height, round), with its Merkle audit path
    (sibling hashes from the leaf upward)."""

    height: int
    round: int
    index: int
    data: bytes
    proof: tuple[bytes, ...]

    def to_wire(self) -> list[Any]:
        return [self.height, self.round, self.index, self.data, list(self.proof)]

    @classmethod
    def from_wire(cls, obj: Any) -> BlockPart:
        height, rnd, index, data, proof = _fields(obj, 5)
        if not isinstance(data, bytes) or len(data) > MAX_BLOCK_BYTES:
            raise MalformedMessage("block part data must be bytes of at most 16 MiB")
        if not isinstance(proof, list | tuple) or len(proof) > MAX_PROOF_LEN:
            raise MalformedMessage(f"block part proof must be a list of at most {MAX_PROOF_LEN}")
        return cls(
            _int(height, 1, MAX_HEIGHT),
            _int(rnd, 0, MAX_ROUND),
            _int(index, 0, MAX_PARTS - 1),
            data,
            tuple(_bytes(h, HASH_SIZE) for h in proof),
        )


# -- Merkle tree (RFC 6962) ---------------------------------------------------------------------
def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def inner_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_INNER + left + right).digest()


def _split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: list[bytes]) -> bytes:
    """Root over already-hashed leaves; the empty tree hashes to sha256(b"")."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split_point(len(leaves))
    return inner_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def merkle_proof(leaves: list[bytes], index: int) -> tuple[bytes, ...]:
    """Audit path of leaf `index`: sibling subtree roots from the bottom of the tree up."""
    if len(leaves) <= 1:
        return ()
    k = _split_point(len(leaves))
    if index < k:
        return merkle_proof(leaves[:k], index) + (merkle_root(leaves[k:]),)
    return merkle_proof(leaves[k:], index - k) + (merkle_root(leaves[:k]),)


def root_from_proof(leaf: bytes, index: int, total: int, proof: tuple[bytes, ...]) -> bytes | None:
    """Recompute the root from a leaf and its audit path; None if the path has the wrong shape
    for a tree of `total` leaves (so a proof can never be 'stretched' to another position)."""
    if total == 1:
        return leaf if not proof else None
    if not proof:
        return None
    k = _split_point(total)
    rest, sibling = proof[:-1], proof[-1]
    if index < k:
        sub = root_from_proof(leaf, index, k, rest)
        return None if sub is None else inner_hash(sub, sibling)
    sub = root_from_proof(leaf, index - k, total - k, rest)
    return None if sub is None else inner_hash(sibling, sub)


# -- part sets ----------------------------------------------------------------------------------
class PartSet:
    """The parts of one block: complete (built by the proposer) or being assembled."""

    def __init__(self, total: int, root: bytes) -> None:
        if not 1 <= total <= MAX_PARTS:
            raise MalformedMessage(f"a block has between 1 and {MAX_PARTS} parts, not {total}")
        if len(root) != HASH_SIZE:
            raise MalformedMessage("part set root must be 32 bytes")
        self.total = total
        self.root = root
        self._parts: list[BlockPart | None] = [None] * total
        self._count = 0
        self._size = 0

    @classmethod
    def from_data(
        cls, data: bytes, part_size: int = DEFAULT_PART_SIZE, *, height: int = 1, round: int = 0
    ) -> PartSet:
        """Split `data` into parts (an empty block is one empty part)."""
        if len(data) > MAX_BLOCK_BYTES:
            raise MalformedMessage(f"block of {len(data)} bytes exceeds {MAX_BLOCK_BYTES}")
        if part_size <= 0:
            raise ValueError("part_size must be positive")
        chunks = [data[i : i + part_size] for i in range(0, len(data), part_size)] or [b""]
        if len(chunks) > MAX_PARTS:
            raise MalformedMessage(f"block splits into {len(chunks)} parts (> {MAX_PARTS})")
        leaves = [leaf_hash(c) for c in chunks]
        ps = cls(len(chunks), merkle_root(leaves))
        for i, chunk in enumerate(chunks):
            ps._store(BlockPart(height, round, i, chunk, merkle_proof(leaves, i)))
        return ps

    @classmethod
    def expecting(cls, total: int, root: bytes) -> PartSet:
        return cls(total, root)

    def _store(self, part: BlockPart) -> None:
        self._parts[part.index] = part
        self._count += 1
        self._size += len(part.data)

    def add(self, part: BlockPart) -> bool:
        """Add a received part; False if already held, MalformedMessage if it does not belong."""
        if not 0 <= part.index < self.total:
            raise MalformedMessage(f"part index {part.index} out of range (total {self.total})")
        if self._parts[part.index] is not None:
            return False
        if root_from_proof(leaf_hash(part.data), part.index, self.total, part.proof) != self.root:
            raise MalformedMessage(f"part {part.index} does not prove into the part set root")
        if self._size + len(part.data) > MAX_BLOCK_BYTES:
            raise MalformedMessage("block parts exceed the maximum block size")
        self._store(part)
        return True

    def has(self, index: int) -> bool:
        return 0 <= index < self.total and self._parts[index] is not None

    @property
    def count(self) -> int:
        return self._count

    @property
    def complete(self) -> bool:
        return self._count == self.total

    @property
    def data(self) -> bytes:
        if not self.complete:
            raise ValueError("part set is not complete")
        return b"".join(p.data for p in self._parts if p is not None)

    def parts(self) -> list[BlockPart]:
        """The parts held, by index."""
        return [p for p in self._parts if p is not None]

    def get(self, index: int) -> BlockPart | None:
        return self._parts[index] if 0 <= index < self.total else None
