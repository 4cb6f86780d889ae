"""The sans-I/O shell around the consensus core, shared by the live trio host and the simulation.

`ConsensusDriver` owns one `ConsensusState` and turns the core's requests into calls on its
collaborators, all synchronous and all passed in:

- `BlockSource` (the application adapter) builds, validates and commits blocks;
- `Wal` records every input before the core sees it, and our own signatures before anyone else
  sees them (`sync=True`);
- `PrivValidator` signs (None for a full node, which follows and commits but never votes);
- `EvidencePool` keeps double-sign evidence until a proposer includes it.

What the host must do (timers, network) comes back as effects: `Broadcast(message)` — send to
peers; `ScheduleTimeout(TimeoutInfo)` — call `handle(timeout)` after `duration_ms`;
`Committed(height, block_hash, commit)` — the application committed that block;
`RunJob(work, commit, light)` — block work to run off the event loop (below).

Block work off the loop (issue #13): given a `StagedBlockSource` (`staged=`), the driver does
not build, validate or commit blocks inside `handle`. It asks the source to stage the work (on
the caller's thread: what must be read there, such as the mempool, is read then) and returns a
`RunJob`; the host runs `work()` in its worker thread, one job at a time and in order, then calls
what `work` returned back on the loop, which finishes the job (the application's after-commit
part) and feeds the answer to the core: `BlockValidated`, `ProposalBlockBuilt` (both dropped by
the core when the height or round has moved on meanwhile) or `HeightCommitted`. A commit job is
marked `commit=True`: the host hands the driver no input until it is finished, so the core never
sees a message of H+1 while H is being written. A job on a block the source calls light
(`is_light`: no transactions) is marked `light=True` and the host runs its work on the loop:
handing a block to a thread and back cost more than an empty block's work, and a catching-up
node's two threads fought over the GIL for every block. Without `staged` (the simulation,
unit tests) and during WAL replay, the same work runs inline, as before.

Inputs to `handle`: Proposal, BlockPart, Vote, DuplicateVoteEvidence (from peers), TimeoutInfo
(from the host's timers) and DecidedBlock (from blocksync). Peer messages are checked here:
a proposal must be signed by the proposer of its (height, round), a vote by a validator of its
height; a bad one raises InvalidSignature or MalformedMessage (the host punishes the sender).
Messages of other heights are ignored without error (evidence excepted), and so are messages
already known: gossip delivers everything many times, and only news reaches the WAL.

Ordering guarantees (crash safety, with the WAL and the private validator's own record):
1. an input is appended to the WAL before the core sees it;
2. our own proposal/vote is signed (the signer persists its last-signed state), appended with
   sync=True, and only then broadcast and fed to the core;
3. a block is committed in the application, then `wal.end_height(H)` is written, then the core
   moves to H+1. The marker is fsync'd only for a height decided here by votes; for one decided
   by blocksync (a `DecidedBlock`) it is written without fsync, since a catching-up node commits
   hundreds of blocks a second (see "Blocksync" in docs/DECISIONS.md): losing it in a power cut
   is the missing-marker case that `start` heals, and the block can be fetched again.

Restart (`start`): the host rebuilds the driver from the last committed height's HeightState;
`start` replays `wal.replay(H - 1)` (this height's inputs, including our own signed messages)
through the core without signing or broadcasting anything. Requests the core makes during
replay are matched against our own records that follow in the log; those left unmatched (we
crashed between signing and logging) are carried out live afterwards — the signer returns the
identical signature for identical sign bytes and refuses anything conflicting, so a restarted
node can never double-sign. Timeouts still meaningful after replay are returned for scheduling,
and a node still in NEW_HEIGHT enters round 0 at once. If the log has nothing for this height,
`start` writes the EndHeight(H - 1) marker (it is missing after a crash between the
application's commit and `end_height`), so a second crash within this height still replays.

Not logged, by design: block verdicts (validation is deterministic and redone on replay), our
built block (its signed proposal and parts are logged instead) and DecidedBlock (blocksync
brings it again). With `skip_timeout_commit` the next height's round 0 is a zero-duration
`ScheduleTimeout` like any other (never run inline, so one call never runs away through many
heights).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from consensus import core
from consensus.core import (
    Broadcast,
    BuildProposalBlock,
    CommitBlock,
    ConsensusState,
    CoreConfig,
    DecidedBlock,
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
    TimeoutsLike,
    ValidateBlock,
)
from consensus.errors import ConsensusError, DoubleSignRefused, InvalidSignature
from consensus.evidence import EvidencePool, verify_evidence
from consensus.parts import DEFAULT_PART_SIZE, BlockPart
from consensus.privval import PrivValidator
from consensus.types import Commit, DuplicateVoteEvidence, Proposal, Validator, Vote
from consensus.validators import ValidatorSet
from consensus.verify import verify_commit, verify_signature, verify_vote_signature
from consensus.votes import FUTURE_ROUND_WINDOW
from consensus.wal import Wal, WalRecord

log = logging.getLogger(__name__)

MAX_EVIDENCE_PER_BLOCK = 50
SEEN_EVIDENCE_LIMIT = 4096

__all__ = [
    "BlockSource",
    "Broadcast",
    "Committed",
    "ConsensusDriver",
    "DecidedBlock",
    "DriverStatus",
    "Effect",
    "Finish",
    "HeightState",
    "Input",
    "RunJob",
    "ScheduleTimeout",
    "StagedBlockSource",
    "TimeoutInfo",
    "Timeouts",
]


class BlockSource(Protocol):
    """The application, as consensus sees it."""

    def propose_block(
        self,
        height: int,
        round: int,
        proposer: bytes,
        last_commit: Commit | None,
        evidence: Sequence[DuplicateVoteEvidence],
    ) -> tuple[bytes, bytes]:
        """Build (and execute) our block: (block_hash, wire_data)."""
        ...

    def validate_block(self, height: int, block_hash: bytes, data: bytes) -> bool:
        """Whether a proposed block is valid; never raises for a bad block."""
        ...

    def commit_block(
        self, height: int, block_hash: bytes, data: bytes, commit: Commit
    ) -> Sequence[Validator]:
        """Persist a decided block; returns validator updates (effective at height + 2)."""
        ...


T = TypeVar("T")
# Block work in two halves: `Work` runs off the event loop (a worker thread) and returns the
# `Finish` to call back on the loop, which returns the answer.
Finish = Callable[[], T]
Work = Callable[[], Finish[T]]


class StagedBlockSource(Protocol):
    """The `BlockSource` calls in halves. Each `stage_*` runs on the caller's thread (the event
    loop) and returns the work; the work touches nothing the loop changes meanwhile (the host
    runs block jobs one at a time, so the head stays still until a commit's finish)."""

    def stage_proposal(
        self,
        height: int,
        round: int,
        proposer: bytes,
        last_commit: Commit | None,
        evidence: Sequence[DuplicateVoteEvidence],
    ) -> Work[tuple[bytes, bytes]]: ...

    def stage_validation(self, height: int, block_hash: bytes, data: bytes) -> Work[bool]: ...

    def stage_commit(
        self, height: int, block_hash: bytes, data: bytes, commit: Commit
    ) -> Work[Sequence[Validator]]: ...

    def is_light(self, data: bytes) -> bool:
        """Whether validating or committing this block costs so little (a block without
        transactions: a few milliseconds of the modules' block hooks) that a thread would cost
        more than the work: its job then runs on the event loop."""
        ...


@dataclass(frozen=True)
class Committed:
    """Effect: the application committed `block_hash` at `height` with `commit`."""

    height: int
    block_hash: bytes
    commit: Commit


@dataclass(frozen=True, eq=False)
class RunJob:
    """Effect: call `work()` off the event loop (after the jobs before it), then call what it
    returned on the loop and carry out the effects that returns. `commit`: hand the driver no
    input until then. `light`: the work may run on the loop as well."""

    work: Callable[[], Callable[[], list[Effect]]]
    commit: bool = False
    light: bool = False  # run `work` on the loop too (`StagedBlockSource.is_light`)


Effect = Broadcast | ScheduleTimeout | Committed | RunJob
Input = Proposal | BlockPart | Vote | DuplicateVoteEvidence | TimeoutInfo | DecidedBlock


@dataclass(frozen=True)
class DriverStatus:
    height: int
    round: int
    step: Step
    proposer: bytes  # address of the proposer of (height, round)
    validators: ValidatorSet
    next_validators: ValidatorSet
    last_commit_round: int  # round of the previous block's commit, -1 if none
    locked_round: int
    valid_round: int


# Keys of requests made during replay, matched against our own records in the log.
_PendingKey = tuple[str, int, int, int]


class ConsensusDriver:
    def __init__(
        self,
        *,
        chain_id: str,
        state: HeightState,
        source: BlockSource,
        wal: Wal,
        signer: PrivValidator | None,
        timeouts: TimeoutsLike,
        evidence: EvidencePool,
        skip_timeout_commit: bool = False,
        part_size: int = DEFAULT_PART_SIZE,
        future_round_window: int = FUTURE_ROUND_WINDOW,
        staged: StagedBlockSource | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.source = source
        self.staged = staged  # when given, block work leaves `handle` as RunJob effects
        self.wal = wal
        self.signer = signer
        self.evidence = evidence
        config = CoreConfig(
            chain_id=chain_id,
            address=None if signer is None else signer.address,
            timeouts=Timeouts.of(timeouts),
            skip_timeout_commit=skip_timeout_commit,
            part_size=part_size,
            future_round_window=future_round_window,
        )
        self._state: ConsensusState = core.new_state(config, state)
        self._replaying = False
        self._pending: dict[_PendingKey, Output] = {}
        self._replay_timeouts: list[TimeoutInfo] = []
        self._seen_evidence: OrderedDict[bytes, None] = OrderedDict()

    # -- public API ---------------------------------------------------------------------------
    @property
    def state(self) -> ConsensusState:
        """The core state (read only: for status pages and tests)."""
        return self._state

    @property
    def height(self) -> int:
        return self._state.height

    @property
    def status(self) -> DriverStatus:
        s = self._state
        last_commit = s.hs.last_commit
        return DriverStatus(
            height=s.height,
            round=s.round,
            step=s.step,
            proposer=core.proposer_of(s, s.round),
            validators=s.validators,
            next_validators=s.hs.next_validators,
            last_commit_round=-1 if last_commit is None else last_commit.round,
            locked_round=s.locked_round,
            valid_round=s.valid_round,
        )

    def start(self) -> list[Effect]:
        """Replay this height's WAL records, then enter round 0 (or resume where we were)."""
        effects: list[Effect] = []
        records = self.wal.replay(after_height=self.height - 1)
        if not records:
            # The previous height's marker may be missing (a crash between the application's
            # commit and end_height): write it now, or a later restart within this height
            # would not find this height's records. A duplicate marker is harmless.
            self.wal.end_height(self.height - 1)
        self._replaying = True
        try:
            for record in records:
                try:
                    self._input(record, effects)
                except ConsensusError as exc:  # a record that was refused live too
                    log.debug("replay: skipping %s: %s", type(record).__name__, exc)
        finally:
            self._replaying = False
        pending, self._pending = list(self._pending.values()), {}
        for out in pending:
            if self._still_wanted(out):
                self._run([out], effects)
        timeouts, self._replay_timeouts = self._replay_timeouts, []
        for t in dict.fromkeys(timeouts):  # ordered dedupe
            if core.timeout_is_relevant(self._state, t):
                effects.append(ScheduleTimeout(t))
        if self._state.step == Step.NEW_HEIGHT:
            self._input(TimeoutInfo(self.height, 0, Step.NEW_HEIGHT, 0), effects)
        return effects

    def handle(self, message: Input) -> list[Effect]:
        """Process one input; raises InvalidSignature / MalformedMessage / InvalidCommit for
        a message a peer should be punished for (nothing changed then)."""
        effects: list[Effect] = []
        if isinstance(message, DuplicateVoteEvidence):
            self._on_evidence(message, effects)
        elif isinstance(message, DecidedBlock):
            self._on_decided(message, effects)
        else:
            self._input(message, effects)
        return effects

    def known_messages(self) -> list[Proposal | BlockPart | Vote]:
        """Everything we know at the current height, for periodic re-gossip."""
        return core.known_messages(self._state)

    # -- inputs ---------------------------------------------------------------------------------
    def _input(self, msg: WalRecord, effects: list[Effect]) -> None:
        """Check a WAL-able input, record it, feed it to the core."""
        if isinstance(msg, DuplicateVoteEvidence):
            self._on_evidence(msg, effects)
            return
        if not self._is_news(msg):
            return
        if not self._replaying:
            self.wal.append(msg)
        else:
            self._match_pending(msg)
        self._run(self._feed(msg), effects)

    def _is_news(self, msg: Proposal | BlockPart | Vote | TimeoutInfo) -> bool:
        s = self._state
        if isinstance(msg, Proposal):
            if not core.proposal_is_new(s, msg):
                return False
            self._check_proposal(msg)
            return True
        if isinstance(msg, Vote):
            if not core.vote_is_new(s, msg):
                return False
            self._check_vote(msg)
            return True
        if isinstance(msg, BlockPart):
            return core.locate_part(s, msg) is not None
        if isinstance(msg, TimeoutInfo):
            return core.timeout_is_relevant(s, msg)
        raise TypeError(f"not a consensus input: {type(msg).__name__}")

    def _check_proposal(self, p: Proposal) -> None:
        s = self._state
        expected = core.proposer_of(s, p.round)
        if p.proposer != expected:
            raise InvalidSignature(
                f"proposal for ({p.height}, {p.round}) by {p.proposer.hex()}, "
                f"expected proposer {expected.hex()}"
            )
        found = s.validators.get(expected)
        assert found is not None
        if not verify_signature(found[1].pub_key, p.sign_bytes(self.chain_id), p.signature):
            raise InvalidSignature(f"bad proposal signature for ({p.height}, {p.round})")

    def _check_vote(self, v: Vote) -> None:
        validator = core.vote_validator(self._state, v)
        if validator is None:
            raise InvalidSignature(f"{v.validator.hex()} is not a validator at {v.height}")
        if not verify_vote_signature(self.chain_id, v, validator.pub_key):
            raise InvalidSignature(f"bad vote signature of {v.validator.hex()}")

    def _on_evidence(self, ev: DuplicateVoteEvidence, effects: list[Effect]) -> None:
        # We only hold the validator sets of this height and the previous one; evidence
        # against a validator no longer in the current set cannot be checked here and is
        # dropped (the application's block validation has the full history).
        key = ev.hash()
        if key in self._seen_evidence:
            return  # gossip brings the same evidence from every peer: verify it once
        found = self._state.validators.get(ev.validator)
        if found is None:
            return
        verify_evidence(self.chain_id, ev, found[1].pub_key)
        self._seen_evidence[key] = None
        if len(self._seen_evidence) > SEEN_EVIDENCE_LIMIT:
            self._seen_evidence.popitem(last=False)
        if not self.evidence.add(ev):
            return
        if not self._replaying:
            self.wal.append(ev)
            effects.append(Broadcast(ev))

    def _on_decided(self, decided: DecidedBlock, effects: list[Effect]) -> None:
        s = self._state
        if decided.height != s.height or s.emitted_commit is not None:
            return
        verify_commit(
            self.chain_id,
            s.validators,
            decided.commit,
            block_hash=decided.block_hash,
            height=decided.height,
        )
        # Not written to the WAL: if we crash before the commit is stored, blocksync brings
        # the block again.
        self._run(self._feed(decided), effects)

    # -- running the core ------------------------------------------------------------------------
    def _feed(self, event: core.Event) -> list[Output]:
        self._state, outs = core.step(self._state, event)
        return outs

    def _run(self, outputs: Sequence[Output], effects: list[Effect]) -> None:
        """Carry out the core's requests breadth-first, in the order they were made."""
        queue = deque(outputs)
        while queue:
            queue.extend(self._execute(queue.popleft(), effects))

    def _execute(self, out: Output, effects: list[Effect]) -> list[Output]:
        if isinstance(out, ScheduleTimeout):
            return self._schedule(out, effects)
        if isinstance(out, ValidateBlock):
            return self._validate(out, effects)
        if isinstance(out, CommitBlock):
            return self._commit(out, effects)
        if isinstance(out, RecordEvidence):
            self._record_evidence(out.evidence, effects)
            return []
        if self._replaying:
            self._pending[_pending_key(out)] = out
            return []
        if not self._still_wanted(out):
            return []
        if isinstance(out, BuildProposalBlock):
            return self._build(out, effects)
        if isinstance(out, SignProposal):
            return self._sign_proposal(out.proposal, effects)
        return self._sign_vote(out.vote, effects)

    def _still_wanted(self, out: Output) -> bool:
        """Requests for a round or height the core has left are dropped (the application
        must not build a block for a height that is already committed)."""
        s = self._state
        if isinstance(out, BuildProposalBlock):
            return (out.height, out.round) == (s.height, s.round) and s.step == Step.PROPOSE
        if isinstance(out, SignProposal):
            return (out.proposal.height, out.proposal.round) == (s.height, s.round)
        if isinstance(out, SignVote):
            return (out.vote.height, out.vote.round) == (s.height, s.round)
        return True

    def _schedule(self, out: ScheduleTimeout, effects: list[Effect]) -> list[Output]:
        t = out.timeout
        if self._replaying:
            self._replay_timeouts.append(t)
            return []
        effects.append(out)
        return []

    def _offloaded(self) -> StagedBlockSource | None:
        """The staged source when block work leaves `handle` (never during replay: `start`
        runs once, before the host serves anything, and replay must see every verdict)."""
        return None if self._replaying else self.staged

    def _job(
        self,
        work: Work[T],
        then: Callable[[T, list[Effect]], list[Output]],
        effects: list[Effect],
        *,
        commit: bool = False,
        light: bool = False,
    ) -> None:
        """Emit `work` as a RunJob whose finish feeds `then(answer)`'s requests to the core."""

        def run() -> Callable[[], list[Effect]]:
            finish = work()

            def done() -> list[Effect]:
                out: list[Effect] = []
                self._run(then(finish(), out), out)
                return out

            return done

        effects.append(RunJob(run, commit, light))

    def _validate(self, out: ValidateBlock, effects: list[Effect]) -> list[Output]:
        staged = self._offloaded()
        if staged is None:
            return self._verdict(
                out,
                _valid_or_false(
                    out, lambda: self.source.validate_block(out.height, out.block_id.hash, out.data)
                ),
            )
        work = staged.stage_validation(out.height, out.block_id.hash, out.data)

        def safe() -> Finish[bool]:
            verdict = _valid_or_false(out, lambda: work()())  # the finish only answers
            return lambda: verdict

        light = staged.is_light(out.data)
        self._job(safe, lambda valid, _: self._verdict(out, valid), effects, light=light)
        return []

    def _verdict(self, out: ValidateBlock, valid: bool) -> list[Output]:
        return self._feed(core.BlockValidated(out.height, out.block_id, valid))

    def _build(self, out: BuildProposalBlock, effects: list[Effect]) -> list[Output]:
        assert self.signer is not None
        evidence = self.evidence.pending(MAX_EVIDENCE_PER_BLOCK, below=out.height)
        args = (out.height, out.round, self.signer.address, out.last_commit, evidence)
        staged = self._offloaded()
        if staged is None:
            return self._built(out, self.source.propose_block(*args))
        self._job(staged.stage_proposal(*args), lambda built, _: self._built(out, built), effects)
        return []

    def _built(self, out: BuildProposalBlock, built: tuple[bytes, bytes]) -> list[Output]:
        block_hash, data = built
        try:
            return self._feed(ProposalBlockBuilt(out.height, out.round, block_hash, data))
        except ConsensusError as exc:  # e.g. a block above the maximum size
            log.error("cannot propose the block built for (%d, %d): %s", out.height, out.round, exc)
            return []

    def _sign_proposal(self, proposal: Proposal, effects: list[Effect]) -> list[Output]:
        assert self.signer is not None
        try:
            signed = self.signer.sign_proposal(self.chain_id, proposal)
        except DoubleSignRefused as exc:
            log.warning("not proposing: %s", exc)
            return []
        parts = core.block_parts(self._state, proposal.block_id, proposal.round)
        # Proposal and parts are durable before anyone sees them: after a crash we must be
        # able to re-send exactly this block.
        self.wal.append(signed, sync=not parts)
        for i, part in enumerate(parts):
            self.wal.append(part, sync=i == len(parts) - 1)
        effects.append(Broadcast(signed))
        effects.extend(Broadcast(part) for part in parts)
        return self._feed(signed)

    def _sign_vote(self, vote: Vote, effects: list[Effect]) -> list[Output]:
        assert self.signer is not None
        try:
            signed = self.signer.sign_vote(self.chain_id, vote)
        except DoubleSignRefused as exc:
            log.warning("not voting: %s", exc)
            return []
        self.wal.append(signed, sync=True)
        effects.append(Broadcast(signed))
        return self._feed(signed)

    def _record_evidence(self, ev: DuplicateVoteEvidence, effects: list[Effect]) -> None:
        if self.evidence.add(ev) and not self._replaying:
            log.warning("double sign by %s at height %d", ev.validator.hex(), ev.height)
            effects.append(Broadcast(ev))

    def _commit(self, out: CommitBlock, effects: list[Effect]) -> list[Output]:
        by_blocksync = self._state.decided_commit is not None
        args = (out.height, out.block_id.hash, out.data, out.commit)
        staged = self._offloaded()
        if staged is None:
            updates = self.source.commit_block(*args)
            return self._committed(out, updates, by_blocksync, effects)

        def then(updates: Sequence[Validator], done: list[Effect]) -> list[Output]:
            return self._committed(out, updates, by_blocksync, done)

        light = staged.is_light(out.data)
        self._job(staged.stage_commit(*args), then, effects, commit=True, light=light)
        return []

    def _committed(
        self,
        out: CommitBlock,
        updates: Sequence[Validator],
        by_blocksync: bool,
        effects: list[Effect],
    ) -> list[Output]:
        self.wal.end_height(out.height, sync=not by_blocksync)
        self.evidence.prune(out.height + 1)
        effects.append(Committed(out.height, out.block_id.hash, out.commit))
        return self._feed(HeightCommitted(out.height, tuple(updates)))

    # -- replay bookkeeping ------------------------------------------------------------------------
    def _match_pending(self, record: WalRecord) -> None:
        """Our own signed record in the log answers the request the core made before it."""
        me = self._state.config.address
        if me is None:
            return
        if isinstance(record, Vote) and record.validator == me:
            self._pending.pop(("vote", record.height, record.round, int(record.type)), None)
        elif isinstance(record, Proposal) and record.proposer == me:
            self._pending.pop(("proposal", record.height, record.round, 0), None)
            self._pending.pop(("build", record.height, record.round, 0), None)


def _valid_or_false(out: ValidateBlock, validate: Callable[[], bool]) -> bool:
    """The source's contract says validation never raises; a crashing one must not stall us."""
    try:
        return bool(validate())
    except Exception:
        log.exception("validate_block raised for block %s", out.block_id.hash.hex())
        return False


def _pending_key(out: Output) -> _PendingKey:
    if isinstance(out, SignVote):
        return ("vote", out.vote.height, out.vote.round, int(out.vote.type))
    if isinstance(out, SignProposal):
        return ("proposal", out.proposal.height, out.proposal.round, 0)
    if isinstance(out, BuildProposalBlock):
        return ("build", out.height, out.round, 0)
    raise TypeError(f"{type(out).__name__} is not a signing request")
