"""Duplicate-vote evidence: checking it, and pooling it until a block commits it.

`verify_evidence` decides whether a `DuplicateVoteEvidence` really proves a double sign: two
votes of one validator at the same (height, round, type) for different blocks, both correctly
signed by that validator's key. The caller looks the key up in the validator set of the
evidence's height (this module knows nothing of validator sets or of the chain's state).

`EvidencePool` holds verified evidence until a proposer includes it in a block. It dedupes by
the evidence hash (the votes are canonically ordered, so one double sign has one hash), drops
evidence older than `max_age_heights`, and remembers what was committed so that evidence
gossiped again by slow peers is not re-added and committed twice. Only evidence the caller has
verified belongs in the pool; `add` does not verify.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consensus.errors import InvalidSignature, MalformedMessage
from consensus.types import PUBKEY_SIZE, DuplicateVoteEvidence, Vote, validator_address


def verify_evidence(chain_id: str, ev: DuplicateVoteEvidence, pub_key: bytes) -> None:
    """Raise MalformedMessage if `ev` does not describe a double sign, InvalidSignature if the
    votes are not both signed by `pub_key`; return None if the evidence is valid."""
    a, b = ev.vote_a, ev.vote_b
    if (a.height, a.round, a.type) != (b.height, b.round, b.type):
        raise MalformedMessage("evidence votes differ in height, round or type")
    if a.validator != b.validator:
        raise MalformedMessage("evidence votes are from different validators")
    if a.block_id == b.block_id:
        raise MalformedMessage("evidence votes are for the same block: not a double sign")
    if ev != DuplicateVoteEvidence.of(a, b):
        # Non-canonical order would give one double sign two hashes and defeat deduplication.
        raise MalformedMessage("evidence votes are not in canonical order")
    if len(pub_key) != PUBKEY_SIZE or validator_address(pub_key) != a.validator:
        raise InvalidSignature("the public key is not the accused validator's key")
    for vote in (a, b):
        _verify_vote_signature(chain_id, vote, pub_key)


def _verify_vote_signature(chain_id: str, vote: Vote, pub_key: bytes) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(pub_key).verify(
            vote.signature, vote.sign_bytes(chain_id)
        )
    except (_CryptoInvalidSignature, ValueError):
        raise InvalidSignature(
            f"evidence vote at height {vote.height} round {vote.round} has a bad signature"
        ) from None


class EvidencePool:
    """Verified evidence waiting for a block; see the module docstring."""

    def __init__(self, max_age_heights: int = 100) -> None:
        if max_age_heights < 0:
            raise ValueError("max_age_heights must be >= 0")
        self.max_age_heights = max_age_heights
        self._height = 0  # the latest height seen through prune/mark_committed
        self._pending: dict[bytes, DuplicateVoteEvidence] = {}
        # hash -> evidence height; kept only while such evidence could still be valid, so this
        # stays bounded by the evidence of the last `max_age_heights` heights.
        self._committed: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ev: DuplicateVoteEvidence) -> bool:
        """True if `ev` is new; False if pending, already committed, or too old to matter."""
        h = ev.hash()
        if h in self._pending or h in self._committed or self._expired(ev.height):
            return False
        self._pending[h] = ev
        return True

    def pending(self, limit: int, *, below: int | None = None) -> list[DuplicateVoteEvidence]:
        """Up to `limit` uncommitted pieces of evidence, oldest height first (ties by hash, so
        every node proposes the same list from the same pool). `below`: only evidence of lower
        heights, what a block at that height may carry (a double sign caught in an earlier
        round of the height being decided is valid only in a later block)."""
        ordered = sorted(self._pending.items(), key=lambda item: (item[1].height, item[0]))
        listed = [ev for _, ev in ordered if below is None or ev.height < below]
        return listed[: max(limit, 0)]

    def mark_committed(self, evs: Sequence[DuplicateVoteEvidence], height: int) -> None:
        """`evs` were committed in block `height`: drop them and never accept them again."""
        for ev in evs:
            h = ev.hash()
            self._pending.pop(h, None)
            self._committed[h] = ev.height
        self._advance(height)

    def prune(self, current_height: int) -> None:
        """Forget evidence (pending or committed) older than `max_age_heights`."""
        self._advance(current_height)
        self._pending = {h: ev for h, ev in self._pending.items() if not self._expired(ev.height)}
        self._committed = {h: at for h, at in self._committed.items() if not self._expired(at)}

    def _advance(self, height: int) -> None:
        self._height = max(self._height, height)

    def _expired(self, evidence_height: int) -> bool:
        return self._height - evidence_height > self.max_age_heights
