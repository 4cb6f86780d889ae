"""Vote sets and commit verification: tallies, the three kinds of majority, double signs,
signature checks through the verification cache, the future-round window."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import verify as verify_module
from consensus.errors import InvalidCommit, InvalidSignature
from consensus.types import BlockID, Commit, CommitSig, Validator, Vote, VoteType
from consensus.validators import ValidatorSet
from consensus.verify import VERIFIED, verify_commit, verify_vote_signature
from consensus.votes import NO_MAJORITY, HeightVoteSet, VoteSet
from tests.sim.harness import KEYS

CHAIN = "votes-test"
PREVOTE, PRECOMMIT = VoteType.PREVOTE, VoteType.PRECOMMIT


def _block(tag: str) -> BlockID:
    h = hashlib.sha256(tag.encode()).digest()
    return BlockID(h, 1, h)


A, B = _block("a"), _block("b")


def _valset(powers: list[int]) -> ValidatorSet:
    return ValidatorSet([Validator(KEYS[i].public_key, p) for i, p in enumerate(powers)])


def _addr(i: int) -> bytes:
    return Validator(KEYS[i].public_key, 1).address


def _vote(
    i: int,
    block: BlockID | None,
    *,
    type: VoteType = PREVOTE,
    height: int = 1,
    round: int = 0,
    chain: str = CHAIN,
) -> Vote:
    v = Vote(type, height, round, block, _addr(i))
    return replace(v, signature=KEYS[i].sign(v.sign_bytes(chain)))


def test_majority_for_a_block() -> None:
    vs = VoteSet(CHAIN, 1, 0, PREVOTE, _valset([10, 10, 10, 10]))
    assert vs.add(_vote(0, A)).added
    assert vs.add(_vote(1, A)).added
    assert vs.two_thirds_majority() is NO_MAJORITY and not vs.has_two_thirds_any()
    assert vs.add(_vote(2, None)).added
    assert vs.has_two_thirds_any() and vs.two_thirds_majority() is NO_MAJORITY
    assert vs.add(_vote(3, A)).added
    assert vs.two_thirds_majority() == A
    assert vs.power_for(A) == 30 and vs.power_for(None) == 10 and vs.power == 40
    assert vs.has_all()


def test_majority_for_nil_is_not_no_majority() -> None:
    vs = VoteSet(CHAIN, 1, 0, PREVOTE, _valset([10, 10, 10, 10]))
    for i in range(3):
        vs.add(_vote(i, None))
    assert vs.two_thirds_majority() is None


def test_weighted_power() -> None:
    vs = VoteSet(CHAIN, 1, 0, PRECOMMIT, _valset([70, 10, 10, 10]))
    vs.add(_vote(0, B, type=PRECOMMIT))
    assert vs.two_thirds_majority() == B  # 70 of 100 > 2/3


def test_the_same_vote_twice_is_not_news() -> None:
    vs = VoteSet(CHAIN, 1, 0, PREVOTE, _valset([10, 10, 10]))
    v = _vote(0, A)
    assert vs.add(v).added
    assert vs.has(v)
    again = vs.add(v)
    assert not again.added and again.evidence is None
    assert vs.power == 10


def test_unknown_validator_and_bad_signature_are_refused() -> None:
    vs = VoteSet(CHAIN, 1, 0, PREVOTE, _valset([10, 10, 10]))
    with pytest.raises(InvalidSignature):
        vs.add(_vote(5, A))
    with pytest.raises(InvalidSignature):
        vs.add(_vote(0, A, chain="another-chain"))
    with pytest.raises(InvalidSignature):
        vs.add(replace(_vote(0, A), signature=b"\x00" * 64))
    assert vs.power == 0
    with pytest.raises(ValueError):
        vs.add(_vote(0, A, round=1))


def test_conflicting_vote_gives_evidence_and_counts_once_towards_any() -> None:
    vs = VoteSet(CHAIN, 1, 0, PREVOTE, _valset([10, 10, 10, 10]))
    first, second = _vote(0, A), _vote(0, B)
    assert vs.add(first).added
    result = vs.add(second)
    assert result.evidence is not None
    assert {result.evidence.vote_a, result.evidence.vote_b} == {first, second}
    assert not result.added  # B is not watched: the conflicting vote is dropped
    assert vs.power == 10 and vs.power_for(B) == 0
    assert vs.get(_addr(0)) == first
    # Reported once; a re-delivery is not news (no new evidence, nothing appended anywhere).
    assert vs.has(second) and vs.add(second).evidence is None


def test_conflicting_vote_counts_for_a_watched_block() -> None:
    """An equivocator's second vote still counts for its own block (the paper counts distinct
    senders per value); otherwise an honest node could never see a polka the others saw."""
    vs = VoteSet(CHAIN, 1, 0, PREVOTE, _valset([10, 10, 10, 10]))
    vs.watch(A)
    vs.add(_vote(0, None))  # the equivocator showed us nil first
    result = vs.add(_vote(0, A))  # ... and A to the others
    assert result.added and result.evidence is not None
    vs.add(_vote(1, A))
    vs.add(_vote(2, A))
    assert vs.two_thirds_majority() == A
    assert vs.power == 30  # "+2/3 of any" counts each validator once
    assert len(vs.votes()) == 4  # both of the equivocator's votes are relayed


def test_make_commit_is_sorted_and_only_for_the_block() -> None:
    vs = VoteSet(CHAIN, 4, 2, PRECOMMIT, _valset([10, 10, 10, 10]))
    for i in (3, 1, 0):
        vs.add(_vote(i, A, type=PRECOMMIT, height=4, round=2))
    vs.add(_vote(2, None, type=PRECOMMIT, height=4, round=2))
    commit = vs.make_commit()
    assert commit.height == 4 and commit.round == 2 and commit.block_id == A
    assert [s.validator for s in commit.signatures] == sorted(_addr(i) for i in (0, 1, 3))
    verify_commit(CHAIN, vs.validator_set, commit, block_hash=A.hash, height=4)
    prevotes = VoteSet(CHAIN, 4, 2, PREVOTE, vs.validator_set)
    with pytest.raises(ValueError):
        prevotes.make_commit()


def test_height_vote_set_window() -> None:
    hvs = HeightVoteSet(CHAIN, 1, _valset([10, 10, 10]), future_round_window=5)
    assert hvs.add(_vote(0, A, round=5)).added
    assert not hvs.add(_vote(0, A, round=6)).added  # beyond round 0 + 5: ignored
    hvs.set_round(3)
    assert hvs.add(_vote(0, A, round=8)).added
    assert hvs.add(_vote(1, A, round=0)).added  # past rounds are always accepted
    assert hvs.rounds() == [0, 5, 8]
    assert [v.round for v in hvs.all_votes()] == [0, 5, 8]
    with pytest.raises(ValueError):
        hvs.add(_vote(0, A, height=2))


def test_verification_is_cached() -> None:
    valset = _valset([10])
    v = _vote(0, A)
    VERIFIED.clear()
    calls = 0
    real = verify_module._public_key

    def counting(pub_key: bytes):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return real(pub_key)

    verify_module._public_key = counting  # type: ignore[assignment]
    try:
        for _ in range(5):
            assert verify_vote_signature(CHAIN, v, valset.validators[0].pub_key)
            VoteSet(CHAIN, 1, 0, PREVOTE, valset).add(v)
        assert not verify_vote_signature(CHAIN, replace(v, round=1), valset.validators[0].pub_key)
    finally:
        verify_module._public_key = real  # type: ignore[assignment]
    assert calls == 2  # once for the good triple, once for the bad one (failures not cached)
    assert VERIFIED.hits >= 9


# -- verify_commit -------------------------------------------------------------------------------
def _commit(signers: list[int], block: BlockID = A, height: int = 1, round: int = 0) -> Commit:
    sigs = [
        CommitSig(_addr(i), _vote(i, block, type=PRECOMMIT, height=height, round=round).signature)
        for i in signers
    ]
    return Commit(height, round, block, tuple(sorted(sigs, key=lambda s: s.validator)))


def test_verify_commit_accepts_two_thirds() -> None:
    verify_commit(CHAIN, _valset([10, 10, 10, 10]), _commit([0, 1, 2]))
    verify_commit(CHAIN, _valset([70, 10, 10, 10]), _commit([0]))


@pytest.mark.parametrize(
    ("commit", "kwargs", "message"),
    [
        (lambda: _commit([0, 1]), {}, "needs"),
        (lambda: _commit([0, 1, 5]), {}, "not a validator"),
        (
            lambda: replace(
                _commit([0, 1, 2]),
                signatures=_commit([0, 1, 2]).signatures[:2] + _commit([0]).signatures,
            ),
            {},
            "twice",
        ),
        (
            lambda: replace(_commit([0, 1, 2]), round=1),  # signatures were over round 0
            {},
            "bad precommit signature",
        ),
        (lambda: _commit([0, 1, 2]), {"block_hash": B.hash}, "another block"),
        (lambda: _commit([0, 1, 2]), {"height": 2}, "height"),
    ],
)
def test_verify_commit_rejects(commit, kwargs, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidCommit, match=message):
        verify_commit(CHAIN, _valset([10, 10, 10, 10]), commit(), **kwargs)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(1, 50), min_size=1, max_size=6),
    st.lists(st.sampled_from(["a", "b", None]), min_size=6, max_size=6),
    st.permutations(range(6)),
)
def test_majority_matches_the_tally(
    powers: list[int], choices: list[str | None], order: list[int]
) -> None:
    valset = _valset(powers)
    vs = VoteSet(CHAIN, 1, 0, PREVOTE, valset)
    blocks = {"a": A, "b": B, None: None}
    tally: dict[BlockID | None, int] = {}
    for i in order:
        if i >= len(powers):
            continue
        block = blocks[choices[i]]
        vs.add(_vote(i, block))
        tally[block] = tally.get(block, 0) + powers[i]
    winners = [b for b, p in tally.items() if p >= valset.quorum]
    assert vs.two_thirds_majority() == (winners[0] if winners else NO_MAJORITY)
    assert vs.has_two_thirds_any() == (sum(tally.values()) >= valset.quorum)
