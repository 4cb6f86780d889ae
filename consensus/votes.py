"""Vote sets: the signed prevotes or precommits of one (height, round), tallied by block.

`VoteSet` keeps each validator's first vote: it counts once towards "+2/3 of any votes". A
second, different vote from the same validator for the same (height, round, type) is a double
sign: `add` returns the `DuplicateVoteEvidence` proving it. Signatures are checked on entry
(through the shared verification cache of `consensus.verify`, since gossip delivers the same vote
many times); votes of unknown validators or with bad signatures raise `InvalidSignature` so the
host can punish the peer that relayed them.

Conflicting votes still count for their own block, as in the paper's "2f+1 PREVOTE(h, r, id(v))"
(distinct senders per value): an equivocator that showed vote A to half the network and vote B
to the other half must not leave anyone unable to see a polka the others saw, or nodes locked on
a block stay stuck forever (Tendermint reaches the same end with peers' "+2/3 for B" claims).
This is safe: two values with +2/3 each would need > 1/3 equivocating power. To bound memory, a
conflicting vote is kept only if it is for nil or for a *watched* block — the block proposed in
that round, or re-proposed with that round as its POL round — the only blocks an honest
validator can vote for (the core watches blocks as proposals arrive; a conflicting vote dropped
before is gossiped again later). So a validator holds at most a few votes per set, whatever it
signs.

`two_thirds_majority()` distinguishes three answers, which the algorithm treats differently:
a `BlockID` (+2/3 for that block), `None` (+2/3 for nil) and `NO_MAJORITY`.

`HeightVoteSet` holds every round of one height. Flooding protection: votes must be signed by
a validator, so only validators can create vote sets, and a round is accepted only if it lies
within `future_round_window` rounds above the node's current round (a byzantine validator
cannot make us allocate vote sets for round 2**31). A node that fell behind in rounds still
catches up: peers gossip the votes of every round they went through, so the highest round
inside the window eventually gathers +2/3 and the node skips there, which moves the window.
(Tendermint instead tracks two "catch-up rounds" per peer; our driver sees messages, not peers,
and the window gives the same memory bound.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from consensus.errors import InvalidSignature
from consensus.types import (
    BlockID,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Validator,
    Vote,
    VoteType,
)
from consensus.validators import ValidatorSet
from consensus.verify import verify_vote_signature

FUTURE_ROUND_WINDOW = 100
MAX_REPORTED = 64


class _NoMajority(Enum):
    NO_MAJORITY = "no +2/3 majority"

    def __repr__(self) -> str:
        return "NO_MAJORITY"


NO_MAJORITY = _NoMajority.NO_MAJORITY
Majority = BlockID | None | _NoMajority


@dataclass(frozen=True)
class AddResult:
    """`added`: the vote is new and counted for its block (a conflicting vote is counted only
    for nil or a watched block, and never towards "+2/3 of any"). `evidence`: the vote conflicts
    with the validator's first vote."""

    added: bool
    evidence: DuplicateVoteEvidence | None = None


NOT_ADDED = AddResult(False)


class VoteSet:
    """The votes of one type at one (height, round); see the module docstring."""

    def __init__(
        self, chain_id: str, height: int, round: int, type: VoteType, validator_set: ValidatorSet
    ) -> None:
        self.chain_id = chain_id
        self.height = height
        self.round = round
        self.type = type
        self.validator_set = validator_set
        self._votes: dict[bytes, Vote] = {}  # first vote of each validator
        self._extra: dict[tuple[bytes, BlockID | None], Vote] = {}  # counted conflicting votes
        self._watched: set[BlockID] = set()
        self._reported: set[Vote] = set()  # dropped conflicting votes already reported
        self._power: dict[BlockID | None, int] = {}
        self._sum = 0
        self._maj23: Majority = NO_MAJORITY

    def __len__(self) -> int:
        return len(self._votes)

    def watch(self, block_id: BlockID) -> bool:
        """Count conflicting votes for `block_id` from now on (see the module docstring),
        including those already seen and reported; True if that changed the tally."""
        if block_id in self._watched:
            return False
        self._watched.add(block_id)
        promoted = sorted(
            (v for v in self._reported if v.block_id == block_id), key=lambda v: v.validator
        )
        for vote in promoted:
            self._reported.discard(vote)
            found = self.validator_set.get(vote.validator)
            if found is not None and (vote.validator, block_id) not in self._extra:
                self._extra[(vote.validator, block_id)] = vote
                self._count(block_id, found[1].power)
        return bool(promoted)

    def add(self, vote: Vote) -> AddResult:
        if (vote.height, vote.round, vote.type) != (self.height, self.round, self.type):
            raise ValueError(
                f"vote for ({vote.height}, {vote.round}, {vote.type.name}) added to the set of "
                f"({self.height}, {self.round}, {self.type.name})"
            )
        if self.has(vote):
            return NOT_ADDED  # the same vote again (gossip): nothing to check or count
        existing = self._votes.get(vote.validator)
        if existing is not None and existing.block_id == vote.block_id:
            return NOT_ADDED  # same content, other signature bytes: not news
        if (vote.validator, vote.block_id) in self._extra:
            return NOT_ADDED
        validator = self._check_signature(vote)
        if existing is None:
            self._votes[vote.validator] = vote
            self._sum += validator.power
            self._count(vote.block_id, validator.power)
            return AddResult(True)
        evidence = DuplicateVoteEvidence.of(existing, vote)
        if vote.block_id is None or vote.block_id in self._watched:
            self._extra[(vote.validator, vote.block_id)] = vote
            self._count(vote.block_id, validator.power)
            return AddResult(True, evidence)
        if len(self._reported) < MAX_REPORTED:
            self._reported.add(vote)
        return AddResult(False, evidence)

    def _check_signature(self, vote: Vote) -> Validator:
        found = self.validator_set.get(vote.validator)
        if found is None:
            raise InvalidSignature(f"{vote.validator.hex()} is not a validator at {self.height}")
        validator = found[1]
        if not verify_vote_signature(self.chain_id, vote, validator.pub_key):
            raise InvalidSignature(
                f"bad {vote.type.name.lower()} signature of {vote.validator.hex()}"
            )
        return validator

    def _count(self, block_id: BlockID | None, power: int) -> None:
        total = self._power.get(block_id, 0) + power
        self._power[block_id] = total
        # Below 1/3 byzantine power at most one value can ever pass 2/3: the first one wins
        # and stays.
        if self._maj23 is NO_MAJORITY and total >= self.validator_set.quorum:
            self._maj23 = block_id

    # -- queries -------------------------------------------------------------------------------
    def has(self, vote: Vote) -> bool:
        """Whether this exact vote is already known (counted, or reported as a conflict)."""
        return (
            self._votes.get(vote.validator) == vote
            or self._extra.get((vote.validator, vote.block_id)) == vote
            or vote in self._reported
        )

    def get(self, address: bytes) -> Vote | None:
        return self._votes.get(address)

    def two_thirds_majority(self) -> Majority:
        return self._maj23

    def has_two_thirds_any(self) -> bool:
        return self._sum >= self.validator_set.quorum

    def has_all(self) -> bool:
        return self._sum == self.validator_set.total_power

    @property
    def power(self) -> int:
        return self._sum

    def power_for(self, block_id: BlockID | None) -> int:
        return self._power.get(block_id, 0)

    def votes(self) -> list[Vote]:
        """Every counted vote (first votes, then counted conflicting ones), by validator
        address: what we relay to peers."""
        out = [self._votes[a] for a in sorted(self._votes)]
        out.extend(self._extra[k] for k in sorted(self._extra, key=_extra_key))
        return out

    def make_commit(self) -> Commit:
        """The Commit of a precommit set with +2/3 for a block: the precommits for that block,
        sorted by validator address."""
        block_id = self._maj23
        if self.type != VoteType.PRECOMMIT or not isinstance(block_id, BlockID):
            raise ValueError("only precommits with +2/3 for a block make a commit")
        votes = sorted(
            (v for v in self.votes() if v.block_id == block_id), key=lambda v: v.validator
        )
        sigs = tuple(CommitSig(v.validator, v.signature) for v in votes)
        return Commit(self.height, self.round, block_id, sigs)


def _extra_key(key: tuple[bytes, BlockID | None]) -> tuple[bytes, bytes]:
    address, block_id = key
    return address, b"" if block_id is None else block_id.hash + block_id.parts_hash


class HeightVoteSet:
    """Prevotes and precommits of every round of one height; see the module docstring."""

    def __init__(
        self,
        chain_id: str,
        height: int,
        validator_set: ValidatorSet,
        *,
        future_round_window: int = FUTURE_ROUND_WINDOW,
    ) -> None:
        self.chain_id = chain_id
        self.height = height
        self.validator_set = validator_set
        self.future_round_window = future_round_window
        self.round = 0
        self._rounds: dict[int, tuple[VoteSet, VoteSet]] = {}

    def set_round(self, round: int) -> None:
        self.round = round

    def accepts_round(self, round: int) -> bool:
        return 0 <= round <= self.round + self.future_round_window

    def _sets(self, round: int) -> tuple[VoteSet, VoteSet]:
        sets = self._rounds.get(round)
        if sets is None:
            sets = (
                VoteSet(self.chain_id, self.height, round, VoteType.PREVOTE, self.validator_set),
                VoteSet(self.chain_id, self.height, round, VoteType.PRECOMMIT, self.validator_set),
            )
            self._rounds[round] = sets
        return sets

    def vote_set(self, round: int, type: VoteType) -> VoteSet:
        prevotes, precommits = self._sets(round)
        return prevotes if type == VoteType.PREVOTE else precommits

    def prevotes(self, round: int) -> VoteSet:
        return self._sets(round)[0]

    def precommits(self, round: int) -> VoteSet:
        return self._sets(round)[1]

    def watch(self, round: int, block_id: BlockID) -> None:
        if self.accepts_round(round):
            prevotes, precommits = self._sets(round)
            prevotes.watch(block_id)
            precommits.watch(block_id)

    def add(self, vote: Vote) -> AddResult:
        """Add a vote of this height; a round outside the window is ignored (not added)."""
        if vote.height != self.height:
            raise ValueError(f"vote of height {vote.height} added to height {self.height}")
        if not self.accepts_round(vote.round):
            return NOT_ADDED
        return self.vote_set(vote.round, vote.type).add(vote)

    def has(self, vote: Vote) -> bool:
        sets = self._rounds.get(vote.round)
        if sets is None:
            return False
        return sets[0 if vote.type == VoteType.PREVOTE else 1].has(vote)

    def rounds(self) -> list[int]:
        return sorted(self._rounds)

    def all_votes(self) -> list[Vote]:
        """Every counted vote, by (round, type, validator address)."""
        out: list[Vote] = []
        for r in self.rounds():
            prevotes, precommits = self._rounds[r]
            out.extend(prevotes.votes())
            out.extend(precommits.votes())
        return out
