"""Signature and commit verification, with a cache of verified signatures.

Gossip delivers the same vote to a node many times (from every peer, and again on every gossip
round), and the same precommits come back inside commits. Ed25519 verification costs ~120 µs, so
every successful verification is remembered in a bounded LRU cache keyed by the exact
(public key, signed bytes, signature) triple: a cache hit proves the triple verified before, and
a different signature or message is a different key. Failures are not cached, so garbage cannot
evict good entries cheaply (each failure costs its sender a full verification, and the host
punishes the peer).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consensus.errors import InvalidCommit
from consensus.types import PUBKEY_SIZE, SIGNATURE_SIZE, Commit, Vote
from consensus.validators import ValidatorSet

CACHE_SIZE = 100_000


class _VerifiedCache:
    """A bounded LRU set of verified (pub_key, message, signature) triples."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __contains__(self, key: tuple[bytes, bytes, bytes]) -> bool:
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return True
        self.misses += 1
        return False

    def add(self, key: tuple[bytes, bytes, bytes]) -> None:
        self._entries[key] = None
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


VERIFIED = _VerifiedCache(CACHE_SIZE)


@lru_cache(maxsize=4096)
def _public_key(pub_key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(pub_key)


def verify_signature(pub_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is pub_key's ed25519 signature of `message` (cached on success)."""
    if len(pub_key) != PUBKEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    key = (pub_key, message, signature)
    if key in VERIFIED:
        return True
    try:
        _public_key(pub_key).verify(signature, message)
    except (_CryptoInvalidSignature, ValueError):
        return False
    VERIFIED.add(key)
    return True


def verify_vote_signature(chain_id: str, vote: Vote, pub_key: bytes) -> bool:
    return verify_signature(pub_key, vote.sign_bytes(chain_id), vote.signature)


def verify_commit(
    chain_id: str,
    validator_set: ValidatorSet,
    commit: Commit,
    *,
    block_hash: bytes | None = None,
    height: int | None = None,
) -> None:
    """Raise InvalidCommit unless `commit` carries precommits for its block, signed by distinct
    validators of `validator_set`, worth more than 2/3 of the set's power (and, if given, is
    for `block_hash` at `height`)."""
    if block_hash is not None and commit.block_id.hash != block_hash:
        raise InvalidCommit("the commit is for another block")
    if height is not None and commit.height != height:
        raise InvalidCommit(f"the commit is for height {commit.height}, not {height}")
    seen: set[bytes] = set()
    power = 0
    for sig in commit.signatures:
        if sig.validator in seen:
            raise InvalidCommit(f"validator {sig.validator.hex()} signed the commit twice")
        seen.add(sig.validator)
        found = validator_set.get(sig.validator)
        if found is None:
            raise InvalidCommit(f"{sig.validator.hex()} is not a validator of this height")
        if not verify_vote_signature(chain_id, commit.precommit(sig), found[1].pub_key):
            raise InvalidCommit(f"bad precommit signature of {sig.validator.hex()}")
        power += found[1].power
    if power < validator_set.quorum:
        raise InvalidCommit(
            f"the commit carries {power} of {validator_set.total_power} voting power, "
            f"needs {validator_set.quorum}"
        )
