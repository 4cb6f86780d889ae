"""Duplicate-vote evidence: verification and the evidence pool."""

from __future__ import annotations

import dataclasses

import pytest

from consensus.errors import InvalidSignature, MalformedMessage
from consensus.evidence import EvidencePool, verify_evidence
from consensus.keys import Ed25519Key
from consensus.types import BlockID, DuplicateVoteEvidence, Vote, VoteType, validator_address

CHAIN = "test-chain"
KEY = Ed25519Key.from_seed(b"\x01" * 32)
OTHER = Ed25519Key.from_seed(b"\x02" * 32)


def block(tag: bytes) -> BlockID:
    return BlockID(tag * 32, 1, tag.upper() * 32)


def signed_vote(
    key: Ed25519Key,
    block_id: BlockID | None,
    height: int = 10,
    rnd: int = 0,
    kind: VoteType = VoteType.PRECOMMIT,
) -> Vote:
    unsigned = Vote(kind, height, rnd, block_id, validator_address(key.public_key))
    return dataclasses.replace(unsigned, signature=key.sign(unsigned.sign_bytes(CHAIN)))


def double_sign(
    key: Ed25519Key = KEY, height: int = 10, seed: bytes = b"a"
) -> DuplicateVoteEvidence:
    return DuplicateVoteEvidence.of(
        signed_vote(key, block(seed), height), signed_vote(key, block(b"z"), height)
    )


# -- verify_evidence ----------------------------------------------------------------------------
def test_valid_evidence_verifies() -> None:
    verify_evidence(CHAIN, double_sign(), KEY.public_key)
    # a nil vote against a block vote is a double sign too
    ev = DuplicateVoteEvidence.of(signed_vote(KEY, None), signed_vote(KEY, block(b"a")))
    verify_evidence(CHAIN, ev, KEY.public_key)


@pytest.mark.parametrize(
    "other",
    [
        signed_vote(KEY, block(b"z"), height=11),
        signed_vote(KEY, block(b"z"), rnd=1),
        signed_vote(KEY, block(b"z"), kind=VoteType.PREVOTE),
        signed_vote(OTHER, block(b"z")),
        signed_vote(KEY, block(b"a")),  # same block: not a double sign
    ],
)
def test_not_a_double_sign(other: Vote) -> None:
    ev = DuplicateVoteEvidence.of(signed_vote(KEY, block(b"a")), other)
    with pytest.raises(MalformedMessage):
        verify_evidence(CHAIN, ev, KEY.public_key)


def test_non_canonical_order_is_rejected() -> None:
    ev = double_sign()
    with pytest.raises(MalformedMessage, match="canonical"):
        verify_evidence(CHAIN, DuplicateVoteEvidence(ev.vote_b, ev.vote_a), KEY.public_key)


def test_bad_signatures() -> None:
    ev = double_sign()
    forged = dataclasses.replace(ev.vote_b, signature=bytes(64))
    with pytest.raises(InvalidSignature):
        verify_evidence(CHAIN, DuplicateVoteEvidence.of(ev.vote_a, forged), KEY.public_key)
    with pytest.raises(InvalidSignature):
        verify_evidence("other-chain", ev, KEY.public_key)  # signatures are chain-bound


def test_wrong_public_key() -> None:
    with pytest.raises(InvalidSignature):
        verify_evidence(CHAIN, double_sign(), OTHER.public_key)
    with pytest.raises(InvalidSignature):
        verify_evidence(CHAIN, double_sign(), b"\x00" * 31)


def test_votes_signed_by_another_key_under_the_accused_address() -> None:
    address = validator_address(KEY.public_key)
    votes = []
    for tag in (b"a", b"z"):  # claims to be KEY's votes, signed by OTHER
        unsigned = Vote(VoteType.PRECOMMIT, 10, 0, block(tag), address)
        votes.append(
            dataclasses.replace(unsigned, signature=OTHER.sign(unsigned.sign_bytes(CHAIN)))
        )
    with pytest.raises(InvalidSignature):
        verify_evidence(CHAIN, DuplicateVoteEvidence.of(*votes), KEY.public_key)


# -- EvidencePool -------------------------------------------------------------------------------
def test_add_dedupes() -> None:
    pool = EvidencePool()
    ev = double_sign()
    assert pool.add(ev) is True
    assert pool.add(ev) is False
    assert pool.add(DuplicateVoteEvidence.of(ev.vote_b, ev.vote_a)) is False  # same hash
    assert len(pool) == 1


def test_pending_order_and_limit() -> None:
    pool = EvidencePool()
    evs = [double_sign(height=h, seed=s) for h in (12, 10, 11) for s in (b"a", b"b")]
    for ev in evs:
        pool.add(ev)
    listed = pool.pending(10)
    assert [ev.height for ev in listed] == [10, 10, 11, 11, 12, 12]
    assert [(ev.height, ev.hash()) for ev in listed] == sorted((e.height, e.hash()) for e in evs)
    assert pool.pending(3) == listed[:3]
    assert pool.pending(0) == []
    # A block at height 11 may carry only evidence of earlier heights: a double sign in an
    # earlier round of height 11 must wait for block 12, or every proposal of 11 is refused.
    assert [ev.height for ev in pool.pending(10, below=11)] == [10, 10]
    assert pool.pending(1, below=12) == listed[:1]


def test_committed_evidence_is_never_re_added() -> None:
    pool = EvidencePool()
    a, b = double_sign(seed=b"a"), double_sign(seed=b"b")
    pool.add(a)
    pool.add(b)
    pool.mark_committed([a], height=20)
    assert pool.pending(10) == [b] and len(pool) == 1
    assert pool.add(a) is False  # re-gossiped by a slow peer
    pool.mark_committed([b], height=21)  # committed without ever being pending here also works
    assert len(pool) == 0 and pool.add(b) is False


def test_prune_drops_old_evidence() -> None:
    pool = EvidencePool(max_age_heights=5)
    old, fresh = double_sign(height=10), double_sign(height=14)
    pool.add(old)
    pool.add(fresh)
    pool.prune(15)  # 15 - 10 = 5: still within the age
    assert len(pool) == 2
    pool.prune(16)
    assert pool.pending(10) == [fresh]
    assert pool.add(old) is False  # too old to be accepted again


def test_prune_also_forgets_committed_hashes_but_keeps_refusing() -> None:
    pool = EvidencePool(max_age_heights=5)
    ev = double_sign(height=10)
    pool.mark_committed([ev], height=11)
    pool.prune(100)
    assert pool._committed == {}  # bounded memory
    assert pool.add(ev) is False  # still refused: it is expired


def test_negative_max_age_is_rejected() -> None:
    with pytest.raises(ValueError):
        EvidencePool(max_age_heights=-1)
