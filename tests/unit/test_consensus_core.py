"""The pure consensus core, event by event: proposing, prevoting on valid/invalid/missing
blocks, locking and the proof-of-lock unlock rule, nil polkas, timeouts growing with the round,
round skips, commits in a later round and for blocks that arrive late, decided blocks, and the
validator-set change at H+2."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from consensus.core import (
    BuildProposalBlock,
    CommitBlock,
    ConsensusState,
    CoreConfig,
    DecidedBlock,
    Event,
    HeightCommitted,
    HeightState,
    Output,
    ProposalBlockBuilt,
    RecordEvidence,
    ScheduleTimeout,
    SignProposal,
    SignVote,
    Step,
    TimeoutInfo,
    Timeouts,
    ValidateBlock,
    known_messages,
    new_state,
    proposer_of,
    step,
)
from consensus.errors import MalformedMessage
from consensus.parts import PartSet
from consensus.types import BlockID, Commit, CommitSig, Proposal, Validator, Vote, VoteType
from genesis.schema import ConsensusTimeouts
from tests.sim.harness import KEYS

CHAIN = "core-test"
PREVOTE, PRECOMMIT = VoteType.PREVOTE, VoteType.PRECOMMIT
ADDR = [Validator(k.public_key, 1).address for k in KEYS]
INDEX = {a: i for i, a in enumerate(ADDR)}
DEFAULT_TIMEOUTS = Timeouts()


def _block(tag: str, height: int = 1) -> tuple[BlockID, bytes, PartSet]:
    data = f"block {tag} at {height}".encode()
    ps = PartSet.from_data(data)
    return BlockID(hashlib.sha256(data).digest(), ps.total, ps.root), data, ps


class Node:
    """A minimal driver for the pure core: signs our own requests with our key, answers
    validation from `verdicts`, and records every output."""

    def __init__(
        self,
        me: int | None,
        n: int = 4,
        *,
        powers: list[int] | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        skip_timeout_commit: bool = False,
    ) -> None:
        powers = powers or [10] * n
        hs = HeightState.genesis([Validator(KEYS[i].public_key, powers[i]) for i in range(n)])
        config = CoreConfig(CHAIN, None if me is None else ADDR[me], timeouts, skip_timeout_commit)
        self.me = me
        self.s: ConsensusState = new_state(config, hs)
        self.verdicts: dict[BlockID, bool] = {}
        self.outputs: list[Output] = []

    def feed(self, event: Event) -> list[Output]:
        self.s, outs = step(self.s, event)
        produced: list[Output] = []
        for out in outs:
            produced.append(out)
            if isinstance(out, SignVote) and self.me is not None:
                produced += self.feed(sign_vote(self.me, out.vote))
            elif isinstance(out, ValidateBlock):
                valid = self.verdicts.get(out.block_id, True)
                produced += self.feed(_validated(out, valid))
        self.outputs += outs
        return produced

    def start(self) -> list[Output]:
        return self.feed(TimeoutInfo(self.s.height, 0, Step.NEW_HEIGHT, 0))

    def propose(
        self, round: int, block: tuple[BlockID, bytes, PartSet], pol_round: int = -1
    ) -> list[Output]:
        block_id, _, ps = block
        p = Proposal(self.s.height, round, pol_round, block_id, proposer_of(self.s, round))
        outs = self.feed(p)
        for part in ps.parts():
            outs += self.feed(replace(part, height=self.s.height, round=round))
        return outs

    def votes(
        self, type: VoteType, round: int, block: BlockID | None, who: list[int]
    ) -> list[Output]:
        outs: list[Output] = []
        for i in who:
            outs += self.feed(sign_vote(i, Vote(type, self.s.height, round, block, ADDR[i])))
        return outs


def _validated(out: ValidateBlock, valid: bool) -> Event:
    from consensus.core import BlockValidated

    return BlockValidated(out.height, out.block_id, valid)


def sign_vote(i: int, vote: Vote) -> Vote:
    return replace(vote, signature=KEYS[i].sign(vote.sign_bytes(CHAIN)))


def _signed(outs: list[Output], type: VoteType) -> list[Vote]:
    return [o.vote for o in outs if isinstance(o, SignVote) and o.vote.type == type]


def _timeouts(outs: list[Output]) -> list[TimeoutInfo]:
    return [o.timeout for o in outs if isinstance(o, ScheduleTimeout)]


def _others(node: Node) -> list[int]:
    return [i for i in range(len(node.s.validators)) if i != node.me]


def _non_proposer(rounds: int = 1, n: int = 4) -> int:
    """A validator that proposes none of the first `rounds` rounds of height 1."""
    probe = Node(None, n)
    proposers = {INDEX[proposer_of(probe.s, r)] for r in range(rounds)}
    return next(i for i in range(n) if i not in proposers)


# -- timeouts ---------------------------------------------------------------------------------
def test_timeouts_grow_linearly_with_the_round() -> None:
    t = Timeouts()
    assert [t.propose(r) for r in range(3)] == [3000, 3500, 4000]
    assert [t.prevote(r) for r in range(3)] == [1000, 1500, 2000]
    assert [t.precommit(r) for r in range(3)] == [1000, 1500, 2000]
    assert t.commit_ms == 1000


def test_genesis_timeouts_are_accepted() -> None:
    assert Timeouts.of(ConsensusTimeouts()) == Timeouts()
    custom = ConsensusTimeouts(propose_ms=7, propose_delta_ms=1, commit_ms=3)
    assert Timeouts.of(custom).propose(2) == 9 and Timeouts.of(custom).commit_ms == 3


def test_round_timeouts_in_the_state_machine_grow() -> None:
    node = Node(_non_proposer(3))
    outs = node.start()
    assert _timeouts(outs) == [TimeoutInfo(1, 0, Step.PROPOSE, 3000)]
    for r in range(2):
        outs = node.feed(TimeoutInfo(1, r, Step.PROPOSE, 0))
        assert node.s.step == Step.PREVOTE and _signed(outs, PREVOTE)[0].block_id is None
        outs = node.votes(PREVOTE, r, None, _others(node)[:2])
        assert TimeoutInfo(1, r, Step.PREVOTE_WAIT, 1000 + 500 * r) in _timeouts(outs) or (
            node.s.step >= Step.PRECOMMIT
        )
        outs = node.votes(PRECOMMIT, r, None, _others(node)[:2])
        assert TimeoutInfo(1, r, Step.PRECOMMIT_WAIT, 1000 + 500 * r) in _timeouts(outs)
        outs = node.feed(TimeoutInfo(1, r, Step.PRECOMMIT_WAIT, 0))
        assert node.s.round == r + 1
        assert _timeouts(outs)[0] == TimeoutInfo(1, r + 1, Step.PROPOSE, 3000 + 500 * (r + 1))


def test_stale_timeouts_do_nothing() -> None:
    node = Node(_non_proposer())
    node.start()
    for t in (
        TimeoutInfo(1, 1, Step.PROPOSE, 0),  # other round
        TimeoutInfo(2, 0, Step.PROPOSE, 0),  # other height
        TimeoutInfo(1, 0, Step.PREVOTE_WAIT, 0),  # other step
        TimeoutInfo(1, 0, Step.NEW_HEIGHT, 0),  # already started
    ):
        assert node.feed(t) == []
    assert (node.s.round, node.s.step) == (0, Step.PROPOSE)


# -- proposing and prevoting ---------------------------------------------------------------------
def test_proposer_asks_for_a_block_and_signs_a_proposal() -> None:
    probe = Node(None)
    me = INDEX[proposer_of(probe.s, 0)]
    node = Node(me)
    outs = node.start()
    assert BuildProposalBlock(1, 0, None) in outs
    data = b"my block"
    outs = node.feed(ProposalBlockBuilt(1, 0, hashlib.sha256(data).digest(), data))
    (sign,) = [o for o in outs if isinstance(o, SignProposal)]
    assert sign.proposal.round == 0 and sign.proposal.pol_round == -1
    assert sign.proposal.proposer == ADDR[me]
    # Our own block is valid by construction: once the proposal comes back, we prevote it.
    outs = node.feed(sign.proposal)
    assert _signed(outs, PREVOTE)[0].block_id == sign.proposal.block_id


def test_late_built_block_is_dropped() -> None:
    probe = Node(None)
    node = Node(INDEX[proposer_of(probe.s, 0)])
    node.start()
    node.feed(TimeoutInfo(1, 0, Step.PROPOSE, 0))
    assert node.feed(ProposalBlockBuilt(1, 0, b"\x01" * 32, b"late")) == []


def test_valid_proposal_gets_a_prevote() -> None:
    node = Node(_non_proposer())
    node.start()
    a = _block("a")
    outs = node.propose(0, a)
    assert [o for o in outs if isinstance(o, ValidateBlock)][0].block_id == a[0]
    assert _signed(outs, PREVOTE)[0].block_id == a[0]
    assert node.s.step == Step.PREVOTE


def test_invalid_proposal_gets_a_nil_prevote_at_once() -> None:
    node = Node(_non_proposer())
    node.start()
    a = _block("bad")
    node.verdicts[a[0]] = False
    outs = node.propose(0, a)
    assert _signed(outs, PREVOTE)[0].block_id is None


def test_incomplete_block_waits_then_times_out_to_nil() -> None:
    node = Node(_non_proposer())
    node.start()
    a = _block("a")
    outs = node.feed(Proposal(1, 0, -1, a[0], proposer_of(node.s, 0)))
    assert _signed(outs, PREVOTE) == []
    outs = node.feed(TimeoutInfo(1, 0, Step.PROPOSE, 0))
    assert _signed(outs, PREVOTE)[0].block_id is None


def test_future_round_proposal_is_kept_for_that_round() -> None:
    me = _non_proposer(2)
    node = Node(me)
    node.start()
    b = _block("b")
    node.feed(Proposal(1, 1, -1, b[0], proposer_of(node.s, 1)))
    node.feed(TimeoutInfo(1, 0, Step.PROPOSE, 0))
    node.votes(PRECOMMIT, 0, None, _others(node))  # +2/3 precommits nil: wait, then round 1
    node.feed(TimeoutInfo(1, 0, Step.PRECOMMIT_WAIT, 0))
    assert node.s.round == 1
    outs: list[Output] = []
    for part in b[2].parts():
        outs += node.feed(replace(part, round=1))
    assert _signed(outs, PREVOTE)[0].block_id == b[0]


# -- precommits, locks and the unlock rule ---------------------------------------------------------
def test_polka_locks_and_precommits_the_block() -> None:
    node = Node(_non_proposer())
    node.start()
    a = _block("a")
    node.propose(0, a)
    outs = node.votes(PREVOTE, 0, a[0], _others(node)[:2])
    assert _signed(outs, PRECOMMIT)[0].block_id == a[0]
    assert (node.s.locked_round, node.s.locked_block) == (0, a[0])
    assert (node.s.valid_round, node.s.valid_block) == (0, a[0])


def test_nil_polka_precommits_nil() -> None:
    node = Node(_non_proposer())
    node.start()
    node.feed(TimeoutInfo(1, 0, Step.PROPOSE, 0))
    outs = node.votes(PREVOTE, 0, None, _others(node)[:2])
    assert _signed(outs, PRECOMMIT)[0].block_id is None
    assert node.s.locked_round == -1


def test_prevote_wait_timeout_precommits_nil_without_majority() -> None:
    node = Node(_non_proposer())
    node.start()
    a = _block("a")
    node.propose(0, a)  # we prevote a
    outs = node.votes(PREVOTE, 0, None, _others(node)[:2])  # 1 a + 2 nil: no majority
    assert node.s.step == Step.PREVOTE_WAIT
    assert _signed(outs, PRECOMMIT) == []
    outs = node.feed(TimeoutInfo(1, 0, Step.PREVOTE_WAIT, 0))
    assert _signed(outs, PRECOMMIT)[0].block_id is None


def _locked_on_a_at_round_0(me: int) -> tuple[Node, tuple[BlockID, bytes, PartSet]]:
    """Round 0: we prevote and precommit `a` (locked), nobody else precommits it; round 1."""
    node = Node(me)
    node.start()
    a = _block("a")
    node.propose(0, a)
    node.votes(PREVOTE, 0, a[0], _others(node)[:2])
    node.votes(PRECOMMIT, 0, None, _others(node)[:2])
    node.feed(TimeoutInfo(1, 0, Step.PRECOMMIT_WAIT, 0))
    assert node.s.round == 1 and node.s.locked_round == 0
    return node, a


def test_locked_validator_prevotes_nil_for_another_block() -> None:
    node, a = _locked_on_a_at_round_0(_non_proposer(2))
    b = _block("b")
    outs = node.propose(1, b)
    assert _signed(outs, PREVOTE)[0].block_id is None


def test_locked_validator_prevotes_its_locked_block_again() -> None:
    node, a = _locked_on_a_at_round_0(_non_proposer(2))
    outs = node.propose(1, a, pol_round=0)
    assert _signed(outs, PREVOTE)[0].block_id == a[0]


def test_newer_polka_moves_the_lock() -> None:
    """L36 in round 1: +2/3 prevotes for b while we prevoted: lock on b instead."""
    node, a = _locked_on_a_at_round_0(_non_proposer(2))
    b = _block("b")
    node.propose(1, b)  # we prevote nil (locked on a)
    outs = node.votes(PREVOTE, 1, b[0], _others(node))
    assert _signed(outs, PRECOMMIT)[0].block_id == b[0]
    assert (node.s.locked_round, node.s.locked_block) == (1, b[0])


def test_proof_of_lock_unlocks() -> None:
    """L28: locked on a at round 0, a proposal of b with POL round 1 (which we see has +2/3
    prevotes for b) makes us prevote b: a later polka overrides an older lock."""
    node, a = _locked_on_a_at_round_0(_non_proposer(3))
    others = _others(node)
    b = _block("b")
    # Round 1: no proposal reaches us; two prevotes for b and ours (nil): no majority.
    node.feed(TimeoutInfo(1, 1, Step.PROPOSE, 0))
    node.votes(PREVOTE, 1, b[0], others[:2])
    node.feed(TimeoutInfo(1, 1, Step.PREVOTE_WAIT, 0))
    node.votes(PRECOMMIT, 1, None, others[:2])
    node.feed(TimeoutInfo(1, 1, Step.PRECOMMIT_WAIT, 0))
    assert node.s.round == 2 and node.s.locked_block == a[0]
    # The third prevote for b in round 1 arrives late: the POL exists now.
    node.votes(PREVOTE, 1, b[0], others[2:])
    outs = node.propose(2, b, pol_round=1)
    assert _signed(outs, PREVOTE)[0].block_id == b[0]


def test_proposal_claiming_a_pol_we_do_not_see_waits() -> None:
    node, a = _locked_on_a_at_round_0(_non_proposer(3))
    b = _block("b")
    node.feed(TimeoutInfo(1, 1, Step.PROPOSE, 0))
    node.votes(PRECOMMIT, 1, None, _others(node))
    node.feed(TimeoutInfo(1, 1, Step.PRECOMMIT_WAIT, 0))
    outs = node.propose(2, b, pol_round=1)  # no +2/3 prevotes for b in round 1 known
    assert _signed(outs, PREVOTE) == []
    outs = node.feed(TimeoutInfo(1, 2, Step.PROPOSE, 0))
    assert _signed(outs, PREVOTE)[0].block_id is None


def test_proposer_reproposes_its_valid_block() -> None:
    probe = Node(None)
    me = INDEX[proposer_of(probe.s, 1)]
    node = Node(me)
    node.start()
    a = _block("a")
    node.propose(0, a)
    node.votes(PREVOTE, 0, a[0], [i for i in range(4) if i != me][:2])
    assert node.s.valid_block == a[0]
    node.votes(PRECOMMIT, 0, None, [i for i in range(4) if i != me][:2])
    outs = node.feed(TimeoutInfo(1, 0, Step.PRECOMMIT_WAIT, 0))
    (sign,) = [o for o in outs if isinstance(o, SignProposal)]
    assert sign.proposal.block_id == a[0] and sign.proposal.pol_round == 0


# -- rounds ----------------------------------------------------------------------------------
def test_precommit_timeout_moves_to_the_next_round() -> None:
    node = Node(_non_proposer())
    node.start()
    node.votes(PRECOMMIT, 0, None, _others(node))
    assert node.s.round == 0  # +2/3 precommits for nil: wait for the timeout
    node.feed(TimeoutInfo(1, 0, Step.PRECOMMIT_WAIT, 0))
    assert (node.s.round, node.s.step) == (1, Step.PROPOSE)


@pytest.mark.parametrize("type", [PREVOTE, PRECOMMIT])
def test_round_skip_on_two_thirds_of_any_votes_in_a_higher_round(type: VoteType) -> None:
    node = Node(_non_proposer())
    node.start()
    others = _others(node)
    outs = node.votes(type, 4, None, others[:2])
    assert node.s.round == 0  # 2 of 4: not +2/3
    outs = node.votes(type, 4, _block("x")[0], others[2:])
    assert node.s.round == 4
    assert TimeoutInfo(1, 4, Step.PROPOSE, 3000 + 4 * 500) in _timeouts(outs)


def test_proposer_rotates_by_round() -> None:
    node = Node(None, 5, powers=[1, 2, 3, 4, 5])
    vs = node.s.validators
    for r in range(12):
        assert proposer_of(node.s, r) == vs.proposer_address
        vs = vs.increment(1)


# -- commits ---------------------------------------------------------------------------------
def _commit_of(outs: list[Output]) -> CommitBlock:
    (commit,) = [o for o in outs if isinstance(o, CommitBlock)]
    return commit


def test_commit_for_a_block_of_an_earlier_round_that_arrives_later() -> None:
    node = Node(_non_proposer(3))
    node.start()
    for r in range(2):  # we time out through rounds 0 and 1 without hearing anything
        node.feed(TimeoutInfo(1, r, Step.PROPOSE, 0))
        node.feed(TimeoutInfo(1, r, Step.PREVOTE_WAIT, 0))
        node.feed(TimeoutInfo(1, r, Step.PRECOMMIT_WAIT, 0))
    assert node.s.round == 2
    a = _block("a")
    others = _others(node)
    node.votes(PRECOMMIT, 0, a[0], others)  # the others committed a in round 0
    assert node.s.step == Step.COMMIT and node.s.decision == (0, a[0])
    assert not [o for o in node.outputs if isinstance(o, CommitBlock)]
    outs = node.feed(replace(a[2].parts()[0], round=0))  # the block, by its part set header
    commit = _commit_of(outs)
    assert commit.block_id == a[0] and commit.data == a[1]
    assert commit.commit.round == 0
    assert [s.validator for s in commit.commit.signatures] == sorted(ADDR[i] for i in others)


def test_full_node_follows_without_signing() -> None:
    node = Node(None)
    node.start()
    a = _block("a")
    node.propose(0, a)
    node.votes(PREVOTE, 0, a[0], [0, 1, 2])
    outs = node.votes(PRECOMMIT, 0, a[0], [0, 1, 2])
    assert _commit_of(outs).block_id == a[0]
    assert not [o for o in node.outputs if isinstance(o, (SignVote, SignProposal))]


def _commit_height_1(node: Node, updates: tuple[Validator, ...] = ()) -> list[Output]:
    a = _block("a")
    node.propose(0, a)
    voters = [i for i in range(len(node.s.validators)) if i != node.me]
    node.votes(PREVOTE, 0, a[0], voters)
    outs = node.votes(PRECOMMIT, 0, a[0], voters)
    assert _commit_of(node.outputs).height == 1
    return outs + node.feed(HeightCommitted(1, updates))


@pytest.mark.parametrize(("skip", "duration"), [(False, 1000), (True, 0)])
def test_commit_timeout_or_skip(skip: bool, duration: int) -> None:
    node = Node(None, skip_timeout_commit=skip)
    node.start()
    outs = _commit_height_1(node)
    assert node.s.height == 2 and node.s.step == Step.NEW_HEIGHT
    assert TimeoutInfo(2, 0, Step.NEW_HEIGHT, duration) in _timeouts(outs)
    node.feed(TimeoutInfo(2, 0, Step.NEW_HEIGHT, duration))
    assert (node.s.round, node.s.step) == (0, Step.PROPOSE)


def test_late_precommits_complete_the_last_commit() -> None:
    node = Node(None)
    node.start()
    a = _block("a")
    node.propose(0, a)
    node.votes(PREVOTE, 0, a[0], [0, 1, 2])
    node.votes(PRECOMMIT, 0, a[0], [0, 1, 2])
    assert len(_commit_of(node.outputs).commit.signatures) == 3
    node.feed(HeightCommitted(1))
    late = sign_vote(3, Vote(PRECOMMIT, 1, 0, a[0], ADDR[3]))
    node.feed(late)
    node.feed(TimeoutInfo(2, 0, Step.NEW_HEIGHT, 0))
    last = node.s.hs.last_commit
    assert last is not None and len(last.signatures) == 4
    node.feed(sign_vote(3, Vote(PRECOMMIT, 1, 0, None, ADDR[3])))  # too late now: ignored
    assert len(node.s.hs.last_commit.signatures) == 4  # type: ignore[union-attr]


def test_validator_set_change_takes_effect_at_h_plus_2() -> None:
    node = Node(0, 1)
    newcomer = Validator(KEYS[1].public_key, 10)
    node.start()
    _commit_height_1(node, (newcomer,))
    hs2 = node.s.hs
    assert hs2.height == 2
    assert hs2.validators.get(newcomer.address) is None
    assert hs2.next_validators.get(newcomer.address) is not None
    # Height 2 still runs with the single validator, which commits alone.
    outs = node.feed(TimeoutInfo(2, 0, Step.NEW_HEIGHT, 0))
    (build,) = [o for o in outs if isinstance(o, BuildProposalBlock)]
    assert build.last_commit is not None and build.last_commit.height == 1
    outs = node.feed(ProposalBlockBuilt(2, 0, b"\x02" * 32, b"block 2"))
    node.feed([o for o in outs if isinstance(o, SignProposal)][0].proposal)
    assert [o.height for o in node.outputs if isinstance(o, CommitBlock)] == [1, 2]
    node.feed(HeightCommitted(2))
    hs3 = node.s.hs
    assert hs3.height == 3 and hs3.validators.get(newcomer.address) is not None
    assert hs3.validators == hs2.next_validators


def test_height_state_transition_is_tendermints() -> None:
    vals = [Validator(KEYS[i].public_key, 10 * (i + 1)) for i in range(3)]
    hs = HeightState.genesis(vals)
    assert hs.next_validators == hs.validators.increment(1)
    a = _block("a")
    commit = Commit(1, 0, a[0], ())
    update = Validator(KEYS[3].public_key, 5)
    nxt = hs.next(commit, [update])
    assert nxt.validators == hs.next_validators
    assert nxt.next_validators == hs.next_validators.apply_updates([update]).increment(1)
    assert nxt.last_commit == commit
    assert HeightState.from_wire(nxt.to_wire()) == nxt


def test_decided_block_commits_with_its_commit() -> None:
    node = Node(_non_proposer())
    node.start()
    a = _block("a")
    sigs = tuple(
        sorted(
            (
                CommitSig(ADDR[i], sign_vote(i, Vote(PRECOMMIT, 1, 3, a[0], ADDR[i])).signature)
                for i in range(3)
            ),
            key=lambda s: s.validator,
        )
    )
    commit = Commit(1, 3, a[0], sigs)
    with pytest.raises(MalformedMessage):
        node.feed(DecidedBlock(1, a[0].hash, b"other data", commit))
    with pytest.raises(MalformedMessage):
        node.feed(DecidedBlock(1, b"\x00" * 32, a[1], commit))
    outs = node.feed(DecidedBlock(1, a[0].hash, a[1], commit))
    assert _commit_of(outs) == CommitBlock(1, a[0], a[1], commit)
    assert node.feed(DecidedBlock(1, a[0].hash, a[1], commit)) == []  # once only


def test_equivocation_is_reported() -> None:
    node = Node(_non_proposer())
    node.start()
    a, b = _block("a"), _block("b")
    node.votes(PREVOTE, 0, a[0], [_others(node)[0]])
    outs = node.votes(PREVOTE, 0, b[0], [_others(node)[0]])
    (ev,) = [o for o in outs if isinstance(o, RecordEvidence)]
    assert ev.evidence.validator == ADDR[_others(node)[0]]


def test_known_messages_cover_the_height() -> None:
    node = Node(_non_proposer())
    node.start()
    a = _block("a")
    node.propose(0, a)
    node.votes(PREVOTE, 0, a[0], _others(node)[:1])
    msgs = known_messages(node.s)
    assert isinstance(msgs[0], Proposal)
    assert msgs[1].data == a[1]  # type: ignore[union-attr]
    assert {m.validator for m in msgs[2:]} == {ADDR[node.me], ADDR[_others(node)[0]]}  # type: ignore[union-attr,index]


def test_part_of_another_block_is_ignored() -> None:
    """Parts are unsigned: one proving into nothing we assemble is dropped, not punished (an
    honest peer may relay the other proposal of an equivocating proposer)."""
    node = Node(_non_proposer())
    node.start()
    a, b = _block("a"), _block("b")
    node.feed(Proposal(1, 0, -1, a[0], proposer_of(node.s, 0)))
    assert node.feed(b[2].parts()[0]) == []
    assert node.s.blocks[a[0]].count == 0
    assert node.feed(a[2].parts()[0])  # the right part completes the block and is judged
