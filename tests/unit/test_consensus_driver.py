"""The driver: input checks, WAL discipline (inputs logged before the core sees them, our own
signatures logged with sync before anyone sees them, EndHeight after the commit), restart by
WAL replay, double-sign refusal, full nodes, decided blocks and evidence."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from consensus import core
from consensus.core import HeightState, Step, TimeoutInfo, Timeouts
from consensus.driver import (
    Broadcast,
    Committed,
    ConsensusDriver,
    DecidedBlock,
    Effect,
    ScheduleTimeout,
)
from consensus.errors import InvalidCommit, InvalidSignature
from consensus.evidence import EvidencePool
from consensus.parts import BlockPart, PartSet
from consensus.privval import MemoryPrivValidator
from consensus.types import (
    BlockID,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Proposal,
    Validator,
    Vote,
    VoteType,
    canonical,
)
from consensus.wal import MemoryWal, WalRecord
from genesis.schema import ConsensusTimeouts
from tests.sim.harness import KEYS

CHAIN = "driver-test"
ADDR = [Validator(k.public_key, 1).address for k in KEYS]
INDEX = {a: i for i, a in enumerate(ADDR)}
PREVOTE, PRECOMMIT = VoteType.PREVOTE, VoteType.PRECOMMIT
DEFAULT_TIMEOUTS = Timeouts()


class Source:
    def __init__(self, log: list[Any] | None = None) -> None:
        self.committed: list[tuple[int, bytes]] = []
        self.log = log if log is not None else []
        self.invalid: set[bytes] = set()

    def propose_block(self, height, round, proposer, last_commit, evidence):  # type: ignore[no-untyped-def]
        data = canonical([height, round, proposer])
        return hashlib.sha256(data).digest(), data

    def validate_block(self, height: int, block_hash: bytes, data: bytes) -> bool:
        return block_hash not in self.invalid

    def commit_block(self, height, block_hash, data, commit):  # type: ignore[no-untyped-def]
        self.committed.append((height, block_hash))
        self.log.append(("commit", height))
        return []


class RecordingWal(MemoryWal):
    def __init__(self, storage: list[bytes] | None = None, log: list[Any] | None = None) -> None:
        super().__init__(storage)
        self.log = log if log is not None else []
        self.driver: ConsensusDriver | None = None
        self.fail_on: Any = None

    def append(self, record: WalRecord, *, sync: bool = False) -> None:
        if self.fail_on is not None and record == self.fail_on:
            raise RuntimeError("simulated crash before the write")
        if self.driver is not None and isinstance(record, Vote):
            # Inputs are logged before the core sees them.
            assert not self.driver.state.votes.has(record)
        self.log.append(("append", record, sync))
        super().append(record, sync=sync)

    def end_height(self, height: int, *, sync: bool = True) -> None:
        self.log.append(("end_height", height))
        super().end_height(height, sync=sync)


def make(
    me: int | None,
    n: int = 4,
    *,
    wal: RecordingWal | None = None,
    privval_state: dict[str, Any] | None = None,
    source: Source | None = None,
    skip: bool = False,
    timeouts: Any = DEFAULT_TIMEOUTS,
) -> ConsensusDriver:
    hs = HeightState.genesis([Validator(KEYS[i].public_key, 10) for i in range(n)])
    wal = wal if wal is not None else RecordingWal()
    signer = None if me is None else MemoryPrivValidator(KEYS[me], privval_state)
    driver = ConsensusDriver(
        chain_id=CHAIN,
        state=hs,
        source=source or Source(),
        wal=wal,
        signer=signer,
        timeouts=timeouts,
        evidence=EvidencePool(),
        skip_timeout_commit=skip,
    )
    wal.driver = driver
    return driver


def sign_vote(i: int, vote: Vote) -> Vote:
    return replace(vote, signature=KEYS[i].sign(vote.sign_bytes(CHAIN)))


def sign_proposal(p: Proposal) -> Proposal:
    return replace(p, signature=KEYS[INDEX[p.proposer]].sign(p.sign_bytes(CHAIN)))


def block(tag: str, height: int = 1) -> tuple[BlockID, bytes, list[BlockPart]]:
    data = f"{tag}@{height}".encode()
    ps = PartSet.from_data(data, height=height)
    return BlockID(hashlib.sha256(data).digest(), ps.total, ps.root), data, ps.parts()


def proposal_messages(d: ConsensusDriver, round: int, tag: str) -> list[Any]:
    block_id, _, parts = block(tag, d.height)
    p = Proposal(d.height, round, -1, block_id, core.proposer_of(d.state, round))
    return [sign_proposal(p)] + [replace(x, round=round) for x in parts]


def non_proposer(n: int = 4) -> int:
    probe = make(None, n)
    return next(i for i in range(n) if ADDR[i] != core.proposer_of(probe.state, 0))


def feed(d: ConsensusDriver, messages: list[Any]) -> list[Effect]:
    effects: list[Effect] = []
    for m in messages:
        effects += d.handle(m)
    return effects


def broadcast_votes(effects: list[Effect], type: VoteType | None = None) -> list[Vote]:
    return [
        e.message
        for e in effects
        if isinstance(e, Broadcast)
        and isinstance(e.message, Vote)
        and (type is None or e.message.type == type)
    ]


def run_timers(d: ConsensusDriver, effects: list[Effect], until_height: int) -> None:
    timers = [e.timeout for e in effects if isinstance(e, ScheduleTimeout)]
    for _ in range(10_000):
        if d.height >= until_height or not timers:
            break
        timers.sort(key=lambda t: t.duration_ms)
        effects = d.handle(timers.pop(0))
        timers += [e.timeout for e in effects if isinstance(e, ScheduleTimeout)]
    assert d.height >= until_height


# -- progress ------------------------------------------------------------------------------------
@pytest.mark.parametrize("skip", [False, True])
def test_single_validator_chain_progresses_alone(skip: bool) -> None:
    source = Source()
    d = make(0, 1, source=source, skip=skip)
    run_timers(d, d.start(), until_height=6)
    assert [h for h, _ in source.committed] == [1, 2, 3, 4, 5]


def test_genesis_consensus_timeouts_are_accepted() -> None:
    d = make(0, 1, timeouts=ConsensusTimeouts(propose_ms=42))
    effects = d.start()
    assert TimeoutInfo(1, 0, Step.PROPOSE, 42) in [
        e.timeout for e in effects if isinstance(e, ScheduleTimeout)
    ]


def test_wal_discipline_of_a_height() -> None:
    """Own votes logged with sync=True before being broadcast or counted; EndHeight after the
    application committed; the next height starts after the marker."""
    log: list[Any] = []
    source = Source(log)
    wal = RecordingWal(log=log)
    d = make(0, 1, wal=wal, source=source)
    effects = d.start()
    run_timers(d, effects, until_height=2)
    assert log.index(("commit", 1)) < log.index(("end_height", 1))
    own = [entry for entry in log if entry[0] == "append" and isinstance(entry[1], Vote)]
    assert own and all(sync for _, _, sync in own)
    proposals = [e for e in log if e[0] == "append" and isinstance(e[1], Proposal)]
    parts = [e for e in log if e[0] == "append" and isinstance(e[1], BlockPart)]
    assert proposals and parts[-1][2] is True  # the proposal and its parts are durable
    timeouts = [e[1] for e in log if e[0] == "append" and isinstance(e[1], TimeoutInfo)]
    assert TimeoutInfo(1, 0, Step.NEW_HEIGHT, 0) in timeouts


# -- checks on inputs -----------------------------------------------------------------------------
def test_proposal_must_come_from_the_round_proposer() -> None:
    d = make(non_proposer())
    d.start()
    good = proposal_messages(d, 0, "a")[0]
    wrong = next(a for a in ADDR[:4] if a != good.proposer)
    with pytest.raises(InvalidSignature):
        d.handle(sign_proposal(replace(good, proposer=wrong)))
    with pytest.raises(InvalidSignature):
        d.handle(replace(good, signature=b"\x01" * 64))
    assert not [e for e in d.wal.log if isinstance(e[1], Proposal)]  # type: ignore[attr-defined]
    d.handle(good)


def test_votes_must_be_signed_by_a_validator() -> None:
    d = make(non_proposer())
    d.start()
    v = Vote(PREVOTE, 1, 0, None, ADDR[5])
    with pytest.raises(InvalidSignature):
        d.handle(sign_vote(5, v))
    with pytest.raises(InvalidSignature):
        d.handle(replace(sign_vote(1, replace(v, validator=ADDR[1])), round=1))


def test_other_heights_and_duplicates_are_ignored_without_logging() -> None:
    me = non_proposer()
    d = make(me)
    d.start()
    wal = d.wal
    before = len(wal.log)  # type: ignore[attr-defined]
    other = next(i for i in range(4) if i != me)
    assert d.handle(sign_vote(other, Vote(PREVOTE, 7, 0, None, ADDR[other]))) == []
    assert d.handle(TimeoutInfo(1, 3, Step.PROPOSE, 10)) == []
    assert len(wal.log) == before  # type: ignore[attr-defined]
    vote = sign_vote(other, Vote(PREVOTE, 1, 0, None, ADDR[other]))
    d.handle(vote)
    d.handle(vote)
    assert len(wal.log) == before + 1  # type: ignore[attr-defined]


def test_parts_of_other_blocks_are_dropped_unlogged() -> None:
    d = make(non_proposer())
    d.start()
    msgs = proposal_messages(d, 0, "a")
    d.handle(msgs[0])
    before = len(d.wal.log)  # type: ignore[attr-defined]
    _, _, other_parts = block("b")
    assert d.handle(other_parts[0]) == []
    assert len(d.wal.log) == before  # type: ignore[attr-defined]


# -- restart --------------------------------------------------------------------------------------
def _prevoted_node() -> tuple[ConsensusDriver, list[bytes], dict[str, Any], Vote]:
    me = non_proposer()
    storage: list[bytes] = []
    privval: dict[str, Any] = {}
    d = make(me, wal=RecordingWal(storage), privval_state=privval)
    d.start()
    effects = feed(d, proposal_messages(d, 0, "a"))
    (prevote,) = broadcast_votes(effects, PREVOTE)
    return d, storage, privval, prevote


def test_restart_replays_the_height_without_signing_again() -> None:
    d, storage, privval, prevote = _prevoted_node()
    me = INDEX[prevote.validator]
    again = make(me, wal=RecordingWal(storage), privval_state=privval)
    effects = again.start()
    assert (again.status.round, again.status.step) == (0, Step.PREVOTE)
    assert again.state.votes.has(prevote)
    assert not broadcast_votes(effects)  # nothing re-signed or re-sent
    # ... and it carries on: a polka makes it precommit, a commit makes it commit.
    others = [i for i in range(4) if i != me]
    effects = feed(
        again, [sign_vote(i, replace(prevote, validator=ADDR[i], signature=b"")) for i in others]
    )
    (precommit,) = broadcast_votes(effects, PRECOMMIT)
    assert precommit.block_id == prevote.block_id
    effects = feed(
        again,
        [sign_vote(i, replace(precommit, validator=ADDR[i], signature=b"")) for i in others[:2]],
    )
    assert [e for e in effects if isinstance(e, Committed)][0].height == 1
    assert again.height == 2


def test_restart_after_signing_but_before_logging_resends_the_same_vote() -> None:
    me = non_proposer()
    storage: list[bytes] = []
    privval: dict[str, Any] = {}
    wal = RecordingWal(storage)
    d = make(me, wal=wal, privval_state=privval)
    d.start()
    msgs = proposal_messages(d, 0, "a")
    d.handle(msgs[0])
    expected_vote = Vote(PREVOTE, 1, 0, msgs[0].block_id, ADDR[me])
    wal.fail_on = sign_vote(me, expected_vote)
    with pytest.raises(RuntimeError):
        d.handle(msgs[1])  # the part completes the block: sign (persisted), then the WAL dies
    assert privval  # the signer recorded the signature
    again = make(me, wal=RecordingWal(storage), privval_state=privval)
    effects = again.start()
    assert broadcast_votes(effects) == [sign_vote(me, expected_vote)]


def test_double_sign_refusal_does_not_crash() -> None:
    """A signer that already signed further (e.g. a restored backup of the node) refuses; the
    node logs it and stays silent instead of crashing."""
    privval: dict[str, Any] = {}
    ahead = MemoryPrivValidator(KEYS[0], privval)
    ahead.sign_vote(CHAIN, Vote(PREVOTE, 5, 0, None, ADDR[0]))
    d = make(0, 1, privval_state=privval)
    effects = d.start()
    assert not [e for e in effects if isinstance(e, Broadcast)]


# -- following ------------------------------------------------------------------------------------
def test_full_node_follows_a_validator() -> None:
    validator = make(0, 1)
    follower_source = Source()
    follower = make(None, 1, source=follower_source)
    follower.start()
    timers: list[TimeoutInfo] = []
    effects = validator.start()
    for _ in range(200):
        for e in effects:
            if isinstance(e, Broadcast):
                follower.handle(e.message)
            elif isinstance(e, ScheduleTimeout):
                timers.append(e.timeout)
        if validator.height > 4 or not timers:
            break
        effects = validator.handle(timers.pop(0))
    assert [h for h, _ in follower_source.committed] == [1, 2, 3, 4]
    follower_log = follower.wal.log  # type: ignore[attr-defined]
    assert not [e for e in follower_log if e[0] == "append" and e[2]]  # never syncs a signature


def _commit_for(block_id: BlockID, signers: list[int], height: int = 1) -> Commit:
    sigs = [
        CommitSig(ADDR[i], sign_vote(i, Vote(PRECOMMIT, height, 0, block_id, ADDR[i])).signature)
        for i in signers
    ]
    return Commit(height, 0, block_id, tuple(sorted(sigs, key=lambda s: s.validator)))


def test_decided_block_is_verified_then_committed() -> None:
    source = Source()
    d = make(None, source=source)
    d.start()
    block_id, data, _ = block("decided")
    with pytest.raises(InvalidCommit):
        d.handle(DecidedBlock(1, block_id.hash, data, _commit_for(block_id, [0, 1])))
    with pytest.raises(InvalidCommit):
        d.handle(DecidedBlock(1, b"\x00" * 32, data, _commit_for(block_id, [0, 1, 2])))
    assert d.handle(DecidedBlock(5, block_id.hash, data, _commit_for(block_id, [0, 1]))) == []
    effects = d.handle(DecidedBlock(1, block_id.hash, data, _commit_for(block_id, [0, 1, 2])))
    assert Committed(1, block_id.hash, _commit_for(block_id, [0, 1, 2])) in effects
    assert source.committed == [(1, block_id.hash)] and d.height == 2


# -- evidence -------------------------------------------------------------------------------------
def test_double_sign_becomes_evidence_once() -> None:
    me = non_proposer()
    d = make(me)
    d.start()
    other = next(i for i in range(4) if i != me)
    a, b = block("a")[0], block("b")[0]
    v1 = sign_vote(other, Vote(PREVOTE, 1, 0, a, ADDR[other]))
    v2 = sign_vote(other, Vote(PREVOTE, 1, 0, b, ADDR[other]))
    d.handle(v1)
    effects = d.handle(v2)
    evidence = [
        e.message
        for e in effects
        if isinstance(e, Broadcast) and isinstance(e.message, DuplicateVoteEvidence)
    ]
    assert evidence == [DuplicateVoteEvidence.of(v1, v2)]
    assert d.evidence.pending(10) == evidence
    assert d.handle(evidence[0]) == []  # known: not broadcast again
    forged = DuplicateVoteEvidence.of(v1, replace(v2, signature=b"\x02" * 64))
    with pytest.raises(InvalidSignature):
        d.handle(forged)


def test_evidence_from_peers_is_verified_logged_and_relayed() -> None:
    d = make(non_proposer())
    d.start()
    a, b = block("a")[0], block("b")[0]
    ev = DuplicateVoteEvidence.of(
        sign_vote(3, Vote(PRECOMMIT, 1, 2, a, ADDR[3])),
        sign_vote(3, Vote(PRECOMMIT, 1, 2, b, ADDR[3])),
    )
    assert d.handle(ev) == [Broadcast(ev)]
    assert ("append", ev, False) in d.wal.log  # type: ignore[attr-defined]


# -- views ----------------------------------------------------------------------------------------
def test_status_and_known_messages() -> None:
    d = make(non_proposer())
    d.start()
    msgs = proposal_messages(d, 0, "a")
    feed(d, msgs)
    status = d.status
    assert (status.height, status.round, status.step) == (1, 0, Step.PREVOTE)
    assert status.proposer == msgs[0].proposer
    assert status.last_commit_round == -1 and status.locked_round == -1
    known = d.known_messages()
    assert known[:2] == msgs
    assert isinstance(known[2], Vote) and known[2].validator == ADDR[non_proposer()]
