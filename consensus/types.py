"""Consensus records: validators, block ids, proposals, votes, commits, evidence.

Every record is a frozen dataclass. `to_wire()` gives a msgpack-able list and `from_wire()`
parses one back with full type and size checks (peers are hostile: a malformed record raises
`MalformedMessage`, never anything else). Signatures cover `sign_bytes(chain_id)`, a canonical
msgpack encoding that names the record kind and the chain, so a vote can never be replayed as a
proposal or on another chain.

Addresses of validators are the first 20 bytes of SHA-256 of their ed25519 public key
(Tendermint's rule; also the node-id rule of `cybermiles_node.operator.keys`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from consensus.errors import MalformedMessage

ADDRESS_SIZE = 20
HASH_SIZE = 32
PUBKEY_SIZE = 32
SIGNATURE_SIZE = 64
MAX_ROUND = 2**31
MAX_HEIGHT = 2**63


def validator_address(pub_key: bytes) -> bytes:
    return hashlib.sha256(pub_key).digest()[:ADDRESS_SIZE]


def canonical(obj: Any) -> bytes:
    """The one canonical byte encoding used for hashing and signing."""
    return msgpack.packb(obj, use_bin_type=True)


class VoteType(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


class SignedStep(IntEnum):
    """The order of what a validator signs within a round (double-sign protection)."""

    PROPOSAL = 1
    PREVOTE = 2
    PRECOMMIT = 3


@dataclass(frozen=True)
class Validator:
    pub_key: bytes  # 32-byte ed25519 consensus key
    power: int  # voting power, > 0

    @property
    def address(self) -> bytes:
        return validator_address(self.pub_key)

    def to_wire(self) -> list[Any]:
        return [self.pub_key, self.power]

    @classmethod
    def from_wire(cls, obj: Any) -> Validator:
        pub_key, power = _fields(obj, 2)
        return cls(_bytes(pub_key, PUBKEY_SIZE), _int(power, 1, 2**62))


@dataclass(frozen=True)
class BlockID:
    """A block: keccak of its Ethereum header, plus the Merkle root of its wire parts."""

    hash: bytes  # 32 bytes
    parts_total: int
    parts_hash: bytes  # 32 bytes

    def to_wire(self) -> list[Any]:
        return [self.hash, self.parts_total, self.parts_hash]

    @classmethod
    def from_wire(cls, obj: Any) -> BlockID:
        h, total, parts_hash = _fields(obj, 3)
        return cls(_bytes(h, HASH_SIZE), _int(total, 1, 2**16), _bytes(parts_hash, HASH_SIZE))


def _block_id_wire(block_id: BlockID | None) -> list[Any] | None:
    return None if block_id is None else block_id.to_wire()


def _block_id_from_wire(obj: Any) -> BlockID | None:
    return None if obj is None else BlockID.from_wire(obj)


@dataclass(frozen=True)
class Vote:
    """A prevote or precommit; `block_id` None is a nil vote."""

    type: VoteType
    height: int
    round: int
    block_id: BlockID | None
    validator: bytes  # address
    signature: bytes = b""

    def sign_bytes(self, chain_id: str) -> bytes:
        block_id = _block_id_wire(self.block_id)
        return canonical(["vote", chain_id, int(self.type), self.height, self.round, block_id])

    @property
    def signed_step(self) -> SignedStep:
        return SignedStep.PREVOTE if self.type == VoteType.PREVOTE else SignedStep.PRECOMMIT

    def to_wire(self) -> list[Any]:
        return [
            int(self.type),
            self.height,
            self.round,
            _block_id_wire(self.block_id),
            self.validator,
            self.signature,
        ]

    @classmethod
    def from_wire(cls, obj: Any) -> Vote:
        t, height, rnd, block_id, validator, signature = _fields(obj, 6)
        if t not in (1, 2) or type(t) is not int:
            raise MalformedMessage(f"unknown vote type {t!r}")
        return cls(
            VoteType(t),
            _int(height, 1, MAX_HEIGHT),
            _int(rnd, 0, MAX_ROUND),
            _block_id_from_wire(block_id),
            _bytes(validator, ADDRESS_SIZE),
            _bytes(signature, SIGNATURE_SIZE),
        )


@dataclass(frozen=True)
class Proposal:
    """The proposer's signed claim that `block_id` is its block for (height, round);
    `pol_round` >= 0 says the block got +2/3 prevotes in that earlier round."""

    height: int
    round: int
    pol_round: int  # -1 when none
    block_id: BlockID
    proposer: bytes  # address
    signature: bytes = b""

    def sign_bytes(self, chain_id: str) -> bytes:
        return canonical(
            ["proposal", chain_id, self.height, self.round, self.pol_round, self.block_id.to_wire()]
        )

    def to_wire(self) -> list[Any]:
        return [
            self.height,
            self.round,
            self.pol_round,
            self.block_id.to_wire(),
            self.proposer,
            self.signature,
        ]

    @classmethod
    def from_wire(cls, obj: Any) -> Proposal:
        height, rnd, pol_round, block_id, proposer, signature = _fields(obj, 6)
        rnd = _int(rnd, 0, MAX_ROUND)
        pol_round = _int(pol_round, -1, MAX_ROUND)
        if pol_round >= rnd:
            raise MalformedMessage("proposal pol_round must be below its round")
        return cls(
            _int(height, 1, MAX_HEIGHT),
            rnd,
            pol_round,
            BlockID.from_wire(block_id),
            _bytes(proposer, ADDRESS_SIZE),
            _bytes(signature, SIGNATURE_SIZE),
        )


@dataclass(frozen=True)
class CommitSig:
    validator: bytes  # address
    signature: bytes  # over the precommit Vote(PRECOMMIT, height, round, block_id, validator)

    def to_wire(self) -> list[Any]:
        return [self.validator, self.signature]

    @classmethod
    def from_wire(cls, obj: Any) -> CommitSig:
        validator, signature = _fields(obj, 2)
        return cls(_bytes(validator, ADDRESS_SIZE), _bytes(signature, SIGNATURE_SIZE))


@dataclass(frozen=True)
class Commit:
    """+2/3 of the voting power precommitted `block_id` at (height, round). Only precommits
    for the block are kept, sorted by validator address."""

    height: int
    round: int
    block_id: BlockID
    signatures: tuple[CommitSig, ...]

    def precommit(self, sig: CommitSig) -> Vote:
        return Vote(
            VoteType.PRECOMMIT, self.height, self.round, self.block_id, sig.validator, sig.signature
        )

    def hash(self) -> bytes:
        return hashlib.sha256(canonical(self.to_wire())).digest()

    def to_wire(self) -> list[Any]:
        return [
            self.height,
            self.round,
            self.block_id.to_wire(),
            [s.to_wire() for s in self.signatures],
        ]

    @classmethod
    def from_wire(cls, obj: Any) -> Commit:
        height, rnd, block_id, sigs = _fields(obj, 4)
        if not isinstance(sigs, list) or len(sigs) > 10_000:
            raise MalformedMessage("commit signatures must be a list of at most 10000")
        return cls(
            _int(height, 1, MAX_HEIGHT),
            _int(rnd, 0, MAX_ROUND),
            BlockID.from_wire(block_id),
            tuple(CommitSig.from_wire(s) for s in sigs),
        )


@dataclass(frozen=True)
class DuplicateVoteEvidence:
    """Two votes by one validator for the same (height, round, type) and different blocks.
    `vote_a` sorts before `vote_b` by their wire encoding, so the evidence is canonical."""

    vote_a: Vote
    vote_b: Vote

    @classmethod
    def of(cls, one: Vote, other: Vote) -> DuplicateVoteEvidence:
        a, b = sorted((one, other), key=lambda v: canonical(v.to_wire()))
        return cls(a, b)

    @property
    def height(self) -> int:
        return self.vote_a.height

    @property
    def validator(self) -> bytes:
        return self.vote_a.validator

    def hash(self) -> bytes:
        return hashlib.sha256(canonical(self.to_wire())).digest()

    def to_wire(self) -> list[Any]:
        return [self.vote_a.to_wire(), self.vote_b.to_wire()]

    @classmethod
    def from_wire(cls, obj: Any) -> DuplicateVoteEvidence:
        a, b = _fields(obj, 2)
        return cls(Vote.from_wire(a), Vote.from_wire(b))


# -- strict field parsing ---------------------------------------------------------------------
def _fields(obj: Any, n: int) -> list[Any]:
    if not isinstance(obj, list | tuple) or len(obj) != n:
        raise MalformedMessage(f"expected a list of {n} fields")
    return list(obj)


def _int(value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise MalformedMessage(f"expected an integer in [{low}, {high}], got {value!r:.40}")
    return value


def _bytes(value: Any, size: int) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise MalformedMessage(f"expected {size} bytes")
    return value
