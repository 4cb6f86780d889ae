"""The Tendermint consensus algorithm as a pure state machine.

`step(state, event) -> (state, outputs)` is the whole algorithm: no I/O, clock, randomness or
keys. Events are what happened (a proposal, block part or vote arrived, a timeout fired, the
application judged a block, our proposal block was built, a block was decided elsewhere, the
application committed); outputs are requests to the outside world (sign this vote, build a
block, validate that block, fire a timeout later, commit, record evidence). The driver
(`consensus.driver`) carries the outputs out and feeds the results back as events. `step` is
deterministic: the same events in the same order give the same outputs, which is what makes
WAL replay and the deterministic simulation possible. (The state object is mutable and owned
by its caller: `step` updates it in place and returns the state to continue with, a new object
when the height changes. Copy it first if an old state must be kept.)

The rules are those of "The latest gossip on BFT consensus" (Buchman, Kwon, Milosevic,
arXiv 1807.04938, Algorithm 1) with CometBFT's steps and round-skip rule; line numbers refer
to the paper:

- StartRound (L11): the proposer proposes its valid value if it has one (re-proposal with
  `pol_round` = valid round) or asks for a new block; everyone schedules the propose timeout.
- L22: a proposal without POL round: prevote it if the block is valid and we are not locked on
  another block, else prevote nil.
- L28 (the proof-of-lock unlock rule): a proposal with POL round vr < r that has +2/3 prevotes
  in vr: prevote it if valid and we are locked at a round <= vr or on this very block.
- L34: +2/3 prevotes of any kind in our round: schedule the prevote timeout (PREVOTE_WAIT).
- L36: +2/3 prevotes for a valid block we hold, first time in this round: while prevoting,
  lock on it and precommit it; in any case it becomes the valid value.
- L44: +2/3 prevotes for nil: precommit nil.
- L47: +2/3 precommits of any kind in our round: schedule the precommit timeout.
- L49: +2/3 precommits for a block in ANY round: decide it (step COMMIT), even if we are in a
  later round or the block has not arrived yet (it is then fetched by part set header).
- Round skip (CometBFT): +2/3 prevotes or +2/3 precommits of any kind in a higher round: jump
  to that round.
- Timeouts: propose -> prevote nil; prevote wait -> precommit nil; precommit wait -> next
  round. Timeout(step, round) = base + delta * round.

Validity of a block is the application's call: when all parts of a block arrived the core emits
`ValidateBlock`, and rules needing `valid(v)` wait for the `BlockValidated` verdict (an invalid
proposal gets a nil prevote at once). Our own proposal block is valid by construction.

Heights: the core emits `CommitBlock` once the decided block is complete; the driver commits it
in the application and answers `HeightCommitted(updates)`, upon which the core moves to H+1:
validators(H+1) = next_validators(H) and next_validators(H+1) = next_validators(H) with the
updates applied and one proposer increment (Tendermint's state transition), so updates decided
in block H take effect at H+2. Round r of height H is proposed by validators(H) incremented r
times (one increment per round, so the answer never depends on how a node reached r). Between
heights the core waits in NEW_HEIGHT for `commit_ms` (collecting late precommits of H into the
last commit) unless `skip_timeout_commit`; entering round 0 is itself a timeout event
(`TimeoutInfo(H, 0, NEW_HEIGHT)`), so it is recorded in the WAL like every other input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from consensus.errors import InvalidCommit, MalformedMessage
from consensus.parts import (
    DEFAULT_PART_SIZE,
    MAX_PARTS,
    BlockPart,
    PartSet,
    leaf_hash,
    root_from_proof,
)
from consensus.types import (
    MAX_HEIGHT,
    MAX_ROUND,
    BlockID,
    Commit,
    DuplicateVoteEvidence,
    Proposal,
    Validator,
    Vote,
    VoteType,
    _fields,
    _int,
)
from consensus.validators import ValidatorSet
from consensus.votes import FUTURE_ROUND_WINDOW, HeightVoteSet, VoteSet


class Step(IntEnum):
    """Where a node is within a height (Tendermint's RoundStepType, same order)."""

    NEW_HEIGHT = 1
    PROPOSE = 2
    PREVOTE = 3
    PREVOTE_WAIT = 4
    PRECOMMIT = 5
    PRECOMMIT_WAIT = 6
    COMMIT = 7


def _step(value: Any) -> Step:
    if type(value) is not int or value not in tuple(int(s) for s in Step):
        raise MalformedMessage(f"unknown consensus step {value!r:.20}")
    return Step(value)


@dataclass(frozen=True)
class TimeoutInfo:
    """A timeout the host must fire after `duration_ms` (and feed back as an input). `step` is
    the step the timeout ends: PROPOSE, PREVOTE_WAIT, PRECOMMIT_WAIT, or NEW_HEIGHT (the commit
    timeout, after which round 0 starts)."""

    height: int
    round: int
    step: Step
    duration_ms: int

    def to_wire(self) -> list[Any]:
        return [self.height, self.round, int(self.step), self.duration_ms]

    @classmethod
    def from_wire(cls, obj: Any) -> TimeoutInfo:
        height, rnd, step, duration = _fields(obj, 4)
        return cls(
            _int(height, 1, MAX_HEIGHT),
            _int(rnd, 0, MAX_ROUND),
            _step(step),
            _int(duration, 0, 2**40),
        )


@dataclass(frozen=True)
class RoundStep:
    """A node's position, gossiped so peers know what to send it."""

    height: int
    round: int
    step: Step

    def to_wire(self) -> list[Any]:
        return [self.height, self.round, int(self.step)]

    @classmethod
    def from_wire(cls, obj: Any) -> RoundStep:
        height, rnd, step = _fields(obj, 3)
        return cls(_int(height, 1, MAX_HEIGHT), _int(rnd, 0, MAX_ROUND), _step(step))


# -- configuration ------------------------------------------------------------------------------
class TimeoutsLike(Protocol):
    """Anything with the timeout fields, e.g. genesis.schema.ConsensusTimeouts."""

    @property
    def propose_ms(self) -> int: ...
    @property
    def propose_delta_ms(self) -> int: ...
    @property
    def prevote_ms(self) -> int: ...
    @property
    def prevote_delta_ms(self) -> int: ...
    @property
    def precommit_ms(self) -> int: ...
    @property
    def precommit_delta_ms(self) -> int: ...
    @property
    def commit_ms(self) -> int: ...


@dataclass(frozen=True)
class Timeouts:
    """Round timeouts in milliseconds; each step's timeout grows by its delta per round, so
    rounds eventually last long enough for any finite network delay (partial synchrony)."""

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500
    commit_ms: int = 1000

    @classmethod
    def of(cls, obj: TimeoutsLike) -> Timeouts:
        """A Timeouts from any object with the same fields (genesis ConsensusTimeouts)."""
        if isinstance(obj, Timeouts):
            return obj
        return cls(
            obj.propose_ms,
            obj.propose_delta_ms,
            obj.prevote_ms,
            obj.prevote_delta_ms,
            obj.precommit_ms,
            obj.precommit_delta_ms,
            obj.commit_ms,
        )

    def propose(self, round: int) -> int:
        return self.propose_ms + self.propose_delta_ms * round

    def prevote(self, round: int) -> int:
        return self.prevote_ms + self.prevote_delta_ms * round

    def precommit(self, round: int) -> int:
        return self.precommit_ms + self.precommit_delta_ms * round


@dataclass(frozen=True)
class CoreConfig:
    chain_id: str
    address: bytes | None  # our validator address; None for a full node (never signs)
    timeouts: Timeouts = Timeouts()
    skip_timeout_commit: bool = False
    part_size: int = DEFAULT_PART_SIZE
    future_round_window: int = FUTURE_ROUND_WINDOW


@dataclass(frozen=True)
class HeightState:
    """What consensus needs to know to run `height`: who votes now, who votes next, and the
    commit of the previous block (carried by the next proposal)."""

    height: int
    validators: ValidatorSet
    next_validators: ValidatorSet
    last_commit: Commit | None = None

    @classmethod
    def genesis(cls, validators: Sequence[Validator], initial_height: int = 1) -> HeightState:
        """Tendermint's genesis state: the set (one increment) and a copy incremented again."""
        vs = ValidatorSet(validators)
        return cls(initial_height, vs, vs.increment(1), None)

    def next(self, commit: Commit, updates: Sequence[Validator]) -> HeightState:
        """The state of height+1 after committing this height with validator `updates`."""
        return HeightState(
            self.height + 1,
            self.next_validators,
            self.next_validators.apply_updates(updates).increment(1),
            commit,
        )

    def to_wire(self) -> list[Any]:
        return [
            self.height,
            self.validators.to_wire(),
            self.next_validators.to_wire(),
            None if self.last_commit is None else self.last_commit.to_wire(),
        ]

    @classmethod
    def from_wire(cls, obj: Any) -> HeightState:
        height, validators, next_validators, last_commit = _fields(obj, 4)
        return cls(
            _int(height, 1, MAX_HEIGHT),
            ValidatorSet.from_wire(validators),
            ValidatorSet.from_wire(next_validators),
            None if last_commit is None else Commit.from_wire(last_commit),
        )


# -- events (inputs besides Proposal, BlockPart, Vote, TimeoutInfo) -----------------------------
@dataclass(frozen=True)
class BlockValidated:
    """The application's verdict on a block the core asked about with ValidateBlock."""

    height: int
    block_id: BlockID
    valid: bool


@dataclass(frozen=True)
class ProposalBlockBuilt:
    """The block the application built for our own proposal at (height, round)."""

    height: int
    round: int
    block_hash: bytes
    data: bytes


@dataclass(frozen=True)
class DecidedBlock:
    """A block decided elsewhere (blocksync / catch-up) with its commit. The driver verifies
    the commit's signatures before the core sees it."""

    height: int
    block_hash: bytes
    data: bytes
    commit: Commit


@dataclass(frozen=True)
class HeightCommitted:
    """The application committed the block of `height`; `updates` take effect at height+2."""

    height: int
    updates: tuple[Validator, ...] = ()


Event = (
    Proposal
    | BlockPart
    | Vote
    | TimeoutInfo
    | BlockValidated
    | ProposalBlockBuilt
    | DecidedBlock
    | HeightCommitted
)


# -- outputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignProposal:
    proposal: Proposal  # unsigned


@dataclass(frozen=True)
class SignVote:
    vote: Vote  # unsigned


@dataclass(frozen=True)
class BuildProposalBlock:
    height: int
    round: int
    last_commit: Commit | None


@dataclass(frozen=True)
class ValidateBlock:
    height: int
    block_id: BlockID
    data: bytes


@dataclass(frozen=True)
class ScheduleTimeout:
    timeout: TimeoutInfo


@dataclass(frozen=True)
class Broadcast:
    """Send a message to peers. The core itself never emits it (it holds no keys and all it
    sends is signed); the driver emits it for signed messages and evidence."""

    message: Any


@dataclass(frozen=True)
class CommitBlock:
    height: int
    block_id: BlockID
    data: bytes
    commit: Commit


@dataclass(frozen=True)
class RecordEvidence:
    evidence: DuplicateVoteEvidence


Output = (
    SignProposal
    | SignVote
    | BuildProposalBlock
    | ValidateBlock
    | ScheduleTimeout
    | CommitBlock
    | RecordEvidence
)


# -- state ---------------------------------------------------------------------------------------
@dataclass(eq=False)
class ConsensusState:
    """Everything the algorithm knows at one height (see the module docstring on ownership)."""

    config: CoreConfig
    hs: HeightState
    votes: HeightVoteSet
    round: int = 0
    step: Step = Step.NEW_HEIGHT
    proposals: dict[int, Proposal] = field(default_factory=dict)  # first valid one per round
    blocks: dict[BlockID, PartSet] = field(default_factory=dict)  # blocks being assembled/held
    verdicts: dict[BlockID, bool] = field(default_factory=dict)
    validating: set[BlockID] = field(default_factory=set)  # ValidateBlock emitted, no verdict
    locked_round: int = -1
    locked_block: BlockID | None = None
    valid_round: int = -1
    valid_block: BlockID | None = None
    polka_round: int = -1  # the last round whose polka rule (L36) fired
    prevote_wait_triggered: bool = False
    precommit_wait_triggered: bool = False
    decision: tuple[int, BlockID] | None = None  # (round, block) once +2/3 precommitted
    decided_commit: Commit | None = None  # given with a DecidedBlock
    emitted_commit: Commit | None = None  # set once CommitBlock was emitted
    last_precommits: VoteSet | None = None  # previous height's commit round, during NEW_HEIGHT
    proposer_sets: list[ValidatorSet] = field(default_factory=list)  # round -> rotated set

    @property
    def height(self) -> int:
        return self.hs.height

    @property
    def validators(self) -> ValidatorSet:
        return self.hs.validators


def new_state(
    config: CoreConfig, hs: HeightState, last_precommits: VoteSet | None = None
) -> ConsensusState:
    """The state at the start of `hs.height` (step NEW_HEIGHT, round 0)."""
    votes = HeightVoteSet(
        config.chain_id,
        hs.height,
        hs.validators,
        future_round_window=config.future_round_window,
    )
    return ConsensusState(
        config, hs, votes, last_precommits=last_precommits, proposer_sets=[hs.validators]
    )


def proposer_of(state: ConsensusState, round: int) -> bytes:
    """The address of the proposer of (state.height, round)."""
    if not 0 <= round <= state.round + state.config.future_round_window:
        raise ValueError(f"round {round} is outside the accepted window")
    sets = state.proposer_sets
    while len(sets) <= round:
        sets.append(sets[-1].increment(1))
    return sets[round].proposer_address


def _is_validator(s: ConsensusState) -> bool:
    return s.config.address is not None and s.validators.get(s.config.address) is not None


# -- the transition function ---------------------------------------------------------------------
def step(state: ConsensusState, event: Event) -> tuple[ConsensusState, list[Output]]:
    """Apply one event; return the state to continue with and the requests it produced."""
    outs: list[Output] = []
    if isinstance(event, Proposal):
        _on_proposal(state, event, outs)
    elif isinstance(event, BlockPart):
        _on_part(state, event, outs)
    elif isinstance(event, Vote):
        _on_vote(state, event, outs)
    elif isinstance(event, TimeoutInfo):
        _on_timeout(state, event, outs)
    elif isinstance(event, BlockValidated):
        _on_validated(state, event, outs)
    elif isinstance(event, ProposalBlockBuilt):
        _on_built(state, event, outs)
    elif isinstance(event, DecidedBlock):
        _on_decided(state, event, outs)
    elif isinstance(event, HeightCommitted):
        state = _on_height_committed(state, event, outs)
    else:
        raise TypeError(f"not a consensus event: {type(event).__name__}")
    return state, outs


# -- inputs from the network ---------------------------------------------------------------------
def _on_proposal(s: ConsensusState, p: Proposal, outs: list[Output]) -> None:
    if not proposal_is_new(s, p):
        return
    s.proposals[p.round] = p
    # Conflicting votes for the proposed block count from now on (see consensus.votes); they
    # may complete a commit of that round.
    s.votes.watch(p.round, p.block_id)
    if p.pol_round >= 0:
        s.votes.watch(p.pol_round, p.block_id)
    # Assemble the block only for the round we are in (a future round's parts arrive again by
    # gossip once we get there; collecting them now would let a byzantine proposer of many
    # future rounds make us buffer many blocks) or if it is the block we decided.
    if p.round == s.round or (s.decision is not None and s.decision[1] == p.block_id):
        _collect(s, p.block_id)
    if s.decision is None and _check_commit(s, p.round, outs):
        return
    _evaluate(s, outs)


def proposal_is_new(s: ConsensusState, p: Proposal) -> bool:
    return p.height == s.height and s.votes.accepts_round(p.round) and p.round not in s.proposals


def _collect(s: ConsensusState, block_id: BlockID) -> None:
    """Start assembling `block_id` from parts (a no-op if already held or being assembled)."""
    if block_id in s.blocks:
        return
    if block_id.parts_total > MAX_PARTS:
        s.verdicts[block_id] = False  # can never be assembled: larger than the maximum block
        return
    s.blocks[block_id] = PartSet.expecting(block_id.parts_total, block_id.parts_hash)


def locate_part(s: ConsensusState, part: BlockPart) -> BlockID | None:
    """The block a new part belongs to, or None if we do not need it (already held, or of a
    block we are not assembling). The Merkle proof alone binds a part to a block, so the round
    tag is only a hint: this is how a decided block is fetched when we never saw the proposal
    of its round. A part that proves into nothing we assemble is ignored, not punished: parts
    are unsigned, and an honest peer relays the other half of an equivocating proposer's
    proposals."""
    if part.height != s.height:
        return None
    proposal = s.proposals.get(part.round)
    if proposal is not None:
        ps = s.blocks.get(proposal.block_id)
        if ps is not None and not ps.has(part.index) and _proves_into(ps, part):
            return proposal.block_id  # the common case: one proof check
    for block_id in sorted(s.blocks, key=lambda b: (b.hash, b.parts_hash)):
        ps = s.blocks[block_id]
        if not ps.has(part.index) and _proves_into(ps, part):
            return block_id
    return None


def _proves_into(ps: PartSet, part: BlockPart) -> bool:
    if not 0 <= part.index < ps.total:
        return False
    root = root_from_proof(leaf_hash(part.data), part.index, ps.total, part.proof)
    return root == ps.root


def _on_part(s: ConsensusState, part: BlockPart, outs: list[Output]) -> None:
    block_id = locate_part(s, part)
    if block_id is None:
        return
    ps = s.blocks[block_id]
    ps.add(part)
    if ps.complete:
        _on_block_complete(s, block_id, outs)
    _evaluate(s, outs)


def _on_block_complete(s: ConsensusState, block_id: BlockID, outs: list[Output]) -> None:
    if s.decision is not None and s.decision[1] == block_id:
        return  # decided: committed without asking (+2/3 precommits include honest validators)
    if block_id in s.verdicts or block_id in s.validating:
        return
    s.validating.add(block_id)
    outs.append(ValidateBlock(s.height, block_id, s.blocks[block_id].data))


def vote_is_new(s: ConsensusState, v: Vote) -> bool:
    """Whether the vote could change anything (it is for this height and not yet known, or a
    late precommit of the previous height while we still collect them)."""
    if v.height == s.height:
        return s.votes.accepts_round(v.round) and not s.votes.has(v)
    last = _last_precommits_open(s)
    return (
        last is not None
        and v.height == last.height
        and v.type == VoteType.PRECOMMIT
        and v.round == last.round
        and not last.has(v)
    )


def vote_validator(s: ConsensusState, v: Vote) -> Validator | None:
    """The validator that must have signed `v` (of this height or the previous one)."""
    if v.height == s.height:
        found = s.validators.get(v.validator)
    elif s.last_precommits is not None and v.height == s.last_precommits.height:
        found = s.last_precommits.validator_set.get(v.validator)
    else:
        found = None
    return None if found is None else found[1]


def _last_precommits_open(s: ConsensusState) -> VoteSet | None:
    return s.last_precommits if s.step == Step.NEW_HEIGHT else None


def _on_vote(s: ConsensusState, v: Vote, outs: list[Output]) -> None:
    if v.height != s.height:
        last = _last_precommits_open(s)
        if last is not None and vote_is_new(s, v):
            result = last.add(v)
            if result.evidence is not None:
                outs.append(RecordEvidence(result.evidence))
        return
    result = s.votes.add(v)
    if result.evidence is not None:
        outs.append(RecordEvidence(result.evidence))
    if not result.added:
        return
    if v.type == VoteType.PRECOMMIT and _check_commit(s, v.round, outs):
        return
    if s.step == Step.COMMIT:
        return
    if v.round > s.round and _two_thirds_any(s, v.round):
        _start_round(s, v.round, outs)  # round skip
        return
    _evaluate(s, outs)


def _check_commit(s: ConsensusState, round: int, outs: list[Output]) -> bool:
    """L49, whatever our round: +2/3 precommits for a block in `round` decide it."""
    majority = s.votes.precommits(round).two_thirds_majority()
    if not isinstance(majority, BlockID):
        return False
    _enter_commit(s, round, majority, outs)
    return True


def _two_thirds_any(s: ConsensusState, round: int) -> bool:
    return (
        s.votes.prevotes(round).has_two_thirds_any()
        or s.votes.precommits(round).has_two_thirds_any()
    )


# -- timeouts -----------------------------------------------------------------------------------
def timeout_is_relevant(s: ConsensusState, t: TimeoutInfo) -> bool:
    """Whether firing `t` now would do anything (stale timeouts are dropped unrecorded)."""
    if t.height != s.height or t.round != s.round:
        return False
    if t.step == Step.NEW_HEIGHT:
        return s.step == Step.NEW_HEIGHT
    if t.step == Step.PROPOSE:
        return s.step == Step.PROPOSE
    if t.step == Step.PREVOTE_WAIT:
        return s.step in (Step.PREVOTE, Step.PREVOTE_WAIT)
    if t.step == Step.PRECOMMIT_WAIT:
        return s.step not in (Step.NEW_HEIGHT, Step.COMMIT)
    return False


def _on_timeout(s: ConsensusState, t: TimeoutInfo, outs: list[Output]) -> None:
    if not timeout_is_relevant(s, t):
        return
    if t.step == Step.NEW_HEIGHT:
        _enter_round0(s, outs)
    elif t.step == Step.PROPOSE:
        _prevote(s, None, outs)  # L57: no (valid) proposal in time
        _evaluate(s, outs)
    elif t.step == Step.PREVOTE_WAIT:
        _precommit(s, None, outs)  # L61
        _evaluate(s, outs)
    else:
        _start_round(s, s.round + 1, outs)  # L65


# -- answers from the application ------------------------------------------------------------
def _on_validated(s: ConsensusState, ev: BlockValidated, outs: list[Output]) -> None:
    if ev.height != s.height:
        return
    s.validating.discard(ev.block_id)
    s.verdicts[ev.block_id] = ev.valid
    _evaluate(s, outs)


def _on_built(s: ConsensusState, ev: ProposalBlockBuilt, outs: list[Output]) -> None:
    if (ev.height, ev.round) != (s.height, s.round) or s.step != Step.PROPOSE:
        return  # too late: the round moved on while the application was building
    if s.round in s.proposals or s.config.address is None:
        return
    ps = PartSet.from_data(ev.data, s.config.part_size, height=s.height, round=s.round)
    block_id = BlockID(ev.block_hash, ps.total, ps.root)
    s.blocks[block_id] = ps
    s.verdicts[block_id] = True  # the proposer executed it while building
    outs.append(SignProposal(Proposal(s.height, s.round, -1, block_id, s.config.address)))


def _on_decided(s: ConsensusState, ev: DecidedBlock, outs: list[Output]) -> None:
    if ev.height != s.height or s.emitted_commit is not None:
        return
    block_id = ev.commit.block_id
    if ev.commit.height != ev.height or block_id.hash != ev.block_hash:
        raise MalformedMessage("the decided block's commit is for another block or height")
    ps = PartSet.from_data(ev.data, s.config.part_size, height=s.height, round=ev.commit.round)
    if (ps.total, ps.root) != (block_id.parts_total, block_id.parts_hash):
        raise MalformedMessage("the decided block's data does not match its commit's parts")
    if s.decision is not None and s.decision[1] != block_id:
        raise InvalidCommit("a commit for another block than the one +2/3 precommitted here")
    s.blocks[block_id] = ps
    s.decided_commit = ev.commit
    if s.decision is None:
        s.decision = (ev.commit.round, block_id)
        s.step = Step.COMMIT
    _try_finalize(s, outs)


def _on_height_committed(
    s: ConsensusState, ev: HeightCommitted, outs: list[Output]
) -> ConsensusState:
    commit = s.emitted_commit
    if ev.height != s.height or commit is None:
        raise ValueError(f"HeightCommitted({ev.height}) without a commit at height {s.height}")
    # Keep collecting precommits of the commit round until round 0 of the next height starts:
    # they make the next block's last_commit more complete.
    late = s.votes.precommits(commit.round) if s.decided_commit is None else None
    nxt = new_state(s.config, s.hs.next(commit, ev.updates), late)
    duration = 0 if s.config.skip_timeout_commit else s.config.timeouts.commit_ms
    outs.append(ScheduleTimeout(TimeoutInfo(nxt.height, 0, Step.NEW_HEIGHT, duration)))
    return nxt


# -- the rules --------------------------------------------------------------------------------
def _enter_round0(s: ConsensusState, outs: list[Output]) -> None:
    if s.last_precommits is not None:
        s.hs = HeightState(
            s.hs.height,
            s.hs.validators,
            s.hs.next_validators,
            s.last_precommits.make_commit(),
        )
        s.last_precommits = None
    _start_round(s, 0, outs)


def _start_round(s: ConsensusState, round: int, outs: list[Output]) -> None:
    """StartRound (L11)."""
    s.round = round
    s.step = Step.PROPOSE
    s.prevote_wait_triggered = s.precommit_wait_triggered = False
    s.votes.set_round(round)
    _prune_blocks(s)
    proposal = s.proposals.get(round)
    if proposal is not None:
        _collect(s, proposal.block_id)
    outs.append(
        ScheduleTimeout(
            TimeoutInfo(s.height, round, Step.PROPOSE, s.config.timeouts.propose(round))
        )
    )
    me = s.config.address
    if me is not None and _proposes(s, round):
        if s.valid_block is not None:
            outs.append(SignProposal(Proposal(s.height, round, s.valid_round, s.valid_block, me)))
        else:
            outs.append(BuildProposalBlock(s.height, round, s.hs.last_commit))
    _evaluate(s, outs)


def _proposes(s: ConsensusState, round: int) -> bool:
    """Whether we must propose in `round` (and have not already: after a restart the WAL may
    have given us our own proposal back)."""
    return (
        s.config.address is not None
        and round not in s.proposals
        and proposer_of(s, round) == s.config.address
    )


def _prune_blocks(s: ConsensusState) -> None:
    """Drop the parts of blocks no rule can need any more (proposals of past rounds that are
    neither locked, valid nor decided): a height with many rounds must not hold many blocks."""
    keep = {s.locked_block, s.valid_block}
    if s.decision is not None:
        keep.add(s.decision[1])
    keep.update(p.block_id for r, p in s.proposals.items() if r >= s.round)
    for block_id in sorted(s.blocks, key=lambda b: (b.hash, b.parts_hash)):
        if block_id not in keep:
            del s.blocks[block_id]


def _evaluate(s: ConsensusState, outs: list[Output]) -> None:
    """Fire every rule of the current round whose condition holds, in step order."""
    if s.step == Step.COMMIT:
        _try_finalize(s, outs)
        return
    if s.step == Step.NEW_HEIGHT:
        return
    r = s.round
    if s.step == Step.PROPOSE:
        _maybe_prevote_proposal(s, outs)
    prevotes = s.votes.prevotes(r)
    polka = prevotes.two_thirds_majority()
    if isinstance(polka, BlockID):
        _collect(s, polka)  # fetch the polka block by its part set header if we lack it
    if s.step == Step.PREVOTE and prevotes.has_two_thirds_any() and not s.prevote_wait_triggered:
        s.prevote_wait_triggered = True  # L34
        s.step = Step.PREVOTE_WAIT
        _schedule(s, Step.PREVOTE_WAIT, s.config.timeouts.prevote(r), outs)
    if isinstance(polka, BlockID):
        if s.step >= Step.PREVOTE and s.polka_round < r and _verdict(s, polka) is True:
            s.polka_round = r  # L36
            if s.step in (Step.PREVOTE, Step.PREVOTE_WAIT):
                s.locked_round, s.locked_block = r, polka
                _precommit(s, polka, outs)
            s.valid_round, s.valid_block = r, polka
    elif polka is None and s.step in (Step.PREVOTE, Step.PREVOTE_WAIT):
        _precommit(s, None, outs)  # L44
    precommits = s.votes.precommits(r)
    if precommits.has_two_thirds_any() and not s.precommit_wait_triggered:
        s.precommit_wait_triggered = True  # L47
        if s.step == Step.PRECOMMIT:
            s.step = Step.PRECOMMIT_WAIT
        _schedule(s, Step.PRECOMMIT_WAIT, s.config.timeouts.precommit(r), outs)


def _maybe_prevote_proposal(s: ConsensusState, outs: list[Output]) -> None:
    """L22 and L28: prevote on the proposal of our round once its block is judged."""
    p = s.proposals.get(s.round)
    if p is None:
        return
    verdict = _verdict(s, p.block_id)
    if verdict is None:
        return  # block incomplete or being validated: wait (the propose timeout bounds this)
    if p.pol_round == -1:
        ok = verdict and (s.locked_round == -1 or s.locked_block == p.block_id)
    else:
        if s.votes.prevotes(p.pol_round).two_thirds_majority() != p.block_id:
            return  # the claimed POL is not (yet) visible to us
        ok = verdict and (s.locked_round <= p.pol_round or s.locked_block == p.block_id)
    _prevote(s, p.block_id if ok else None, outs)


def _verdict(s: ConsensusState, block_id: BlockID) -> bool | None:
    """valid(v): True/False once judged, None while the block is incomplete or being judged."""
    verdict = s.verdicts.get(block_id)
    if verdict is False:
        return False
    ps = s.blocks.get(block_id)
    if ps is None or not ps.complete:
        return None
    return verdict


def _prevote(s: ConsensusState, block_id: BlockID | None, outs: list[Output]) -> None:
    s.step = Step.PREVOTE
    _vote(s, VoteType.PREVOTE, block_id, outs)


def _precommit(s: ConsensusState, block_id: BlockID | None, outs: list[Output]) -> None:
    s.step = Step.PRECOMMIT
    _vote(s, VoteType.PRECOMMIT, block_id, outs)


def _vote(s: ConsensusState, type: VoteType, block_id: BlockID | None, outs: list[Output]) -> None:
    if _is_validator(s):
        assert s.config.address is not None
        outs.append(SignVote(Vote(type, s.height, s.round, block_id, s.config.address)))


def _schedule(s: ConsensusState, step: Step, duration: int, outs: list[Output]) -> None:
    outs.append(ScheduleTimeout(TimeoutInfo(s.height, s.round, step, duration)))


def _enter_commit(s: ConsensusState, round: int, block_id: BlockID, outs: list[Output]) -> None:
    """L49: +2/3 precommitted `block_id` in `round`."""
    if s.decision is not None:
        return
    s.decision = (round, block_id)
    s.step = Step.COMMIT
    _collect(s, block_id)
    _try_finalize(s, outs)


def _try_finalize(s: ConsensusState, outs: list[Output]) -> None:
    """Emit CommitBlock once the decided block is complete (at most once per height)."""
    if s.decision is None or s.emitted_commit is not None:
        return
    round, block_id = s.decision
    ps = s.blocks.get(block_id)
    if ps is None or not ps.complete:
        return
    commit = s.decided_commit or s.votes.precommits(round).make_commit()
    s.emitted_commit = commit
    outs.append(CommitBlock(s.height, block_id, ps.data, commit))


# -- views for the driver and gossip ---------------------------------------------------------------
def block_parts(s: ConsensusState, block_id: BlockID, round: int) -> list[BlockPart]:
    """The parts we hold of `block_id`, tagged with `round` (a re-proposed block travels under
    the round of its new proposal)."""
    ps = s.blocks.get(block_id)
    if ps is None:
        return []
    return [BlockPart(s.height, round, p.index, p.data, p.proof) for p in ps.parts()]


def known_messages(s: ConsensusState) -> list[Proposal | BlockPart | Vote]:
    """Everything we know at the current height, for re-gossip: proposals with the parts we
    hold of their blocks (by round), then every counted vote (by round, type, validator)."""
    out: list[Proposal | BlockPart | Vote] = []
    covered: set[BlockID] = set()
    for r in sorted(s.proposals):
        p = s.proposals[r]
        out.append(p)
        out.extend(block_parts(s, p.block_id, r))
        covered.add(p.block_id)
    if s.decision is not None and s.decision[1] not in covered:
        out.extend(block_parts(s, s.decision[1], s.decision[0]))
    out.extend(s.votes.all_votes())
    return out
