"""Validator sets and Tendermint's weighted round-robin proposer selection.

A `ValidatorSet` is immutable: every operation returns a new set. Validators are kept sorted by
address; each carries a *proposer priority*. Selecting the next proposer (Tendermint's
`IncrementProposerPriority`, reproduced exactly, including its int64 clipping and Go's
truncating division) is:

1. rescale: if the spread max-min of the priorities exceeds 2 * total power, divide every
   priority by ceil(spread / (2 * total)) so that no validator can build up an unbounded lead;
2. center: subtract the (floor) average priority from every priority;
3. `times` times: add each validator's power to its priority, pick the validator with the highest
   priority (ties: the lowest address) and subtract the total power from its priority.

Over time each validator proposes in proportion to its power, and equal powers rotate
round-robin in address order. `ValidatorSet(validators)` mirrors Tendermint's `NewValidatorSet`
(priorities start centred, then one increment), and `apply_updates` its
`UpdateWithChangeSet` (a new validator starts at -1.125 * total power, so unbonding and
rebonding cannot reset a negative priority).

`hash()` commits to (pub_key, power) only, the part every node agrees on without history; the
wire form carries the priorities and the proposer as well, because the host persists the exact
set of every height (priorities are history-dependent and cannot be recomputed cheaply).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from consensus.errors import MalformedMessage
from consensus.types import ADDRESS_SIZE, Validator, _bytes, _fields, _int, canonical

MAX_INT64 = 2**63 - 1
MIN_INT64 = -(2**63)
# Tendermint: MaxTotalVotingPower = MaxInt64 / 8, so priorities can never overflow int64
# arithmetic in the algorithm's intermediate steps.
MAX_TOTAL_VOTING_POWER = MAX_INT64 // 8
PRIORITY_WINDOW_SIZE_FACTOR = 2
MAX_VALIDATORS = 10_000


def _clip(value: int) -> int:
    """Go's safeAddClip/safeSubClip: saturate at the int64 bounds."""
    return max(MIN_INT64, min(MAX_INT64, value))


def _go_div(a: int, b: int) -> int:
    """Go's integer division truncates toward zero (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


class ValidatorSet:
    """An immutable validator set with proposer priorities; see the module docstring."""

    __slots__ = ("validators", "addresses", "priorities", "total_power", "_index", "_proposer")

    validators: tuple[Validator, ...]
    addresses: tuple[bytes, ...]
    priorities: tuple[int, ...]
    total_power: int

    def __init__(
        self,
        validators: Sequence[Validator],
        priorities: Sequence[int] | None = None,
        proposer: bytes | None = None,
    ) -> None:
        """With `priorities` None: Tendermint's NewValidatorSet (centred priorities, one
        increment). Otherwise the exact given state (validators and priorities in the same
        order, any order; `proposer` defaults to the highest priority)."""
        if not validators:
            raise ValueError("a validator set needs at least one validator")
        if len(validators) > MAX_VALIDATORS:
            raise ValueError(f"more than {MAX_VALIDATORS} validators")
        prios = list(priorities) if priorities is not None else [0] * len(validators)
        if len(prios) != len(validators):
            raise ValueError("one priority per validator")
        rows = sorted(zip(validators, prios, strict=True), key=lambda row: row[0].address)
        self._init(tuple(v for v, _ in rows), tuple(p for _, p in rows), None)
        if priorities is None:
            self._copy_from(self.increment(1))
        else:
            self._set_proposer(proposer)

    # -- construction helpers (the public constructor validates; these trust their input) ------
    def _init(
        self, validators: tuple[Validator, ...], priorities: tuple[int, ...], proposer: int | None
    ) -> None:
        addresses = tuple(v.address for v in validators)
        if len(set(addresses)) != len(addresses):
            raise ValueError("duplicate validator")
        for v in validators:
            if v.power <= 0:
                raise ValueError("validator power must be positive")
        total = sum(v.power for v in validators)
        if total > MAX_TOTAL_VOTING_POWER:
            raise ValueError(f"total voting power {total} exceeds {MAX_TOTAL_VOTING_POWER}")
        self.validators = validators
        self.addresses = addresses
        self.priorities = priorities
        self.total_power = total
        self._index = {a: i for i, a in enumerate(addresses)}
        self._proposer = proposer if proposer is not None else self._most_priority(priorities)

    def _copy_from(self, other: ValidatorSet) -> None:
        self.priorities = other.priorities
        self._proposer = other._proposer

    def _set_proposer(self, proposer: bytes | None) -> None:
        if proposer is not None:
            index = self._index.get(proposer)
            if index is None:
                raise ValueError("the proposer is not in the validator set")
            self._proposer = index

    @classmethod
    def _make(
        cls, validators: tuple[Validator, ...], priorities: tuple[int, ...], proposer: int | None
    ) -> ValidatorSet:
        vs = cls.__new__(cls)
        vs._init(validators, priorities, proposer)
        return vs

    # -- queries -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.validators)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ValidatorSet)
            and self.validators == other.validators
            and self.priorities == other.priorities
            and self._proposer == other._proposer
        )

    def __hash__(self) -> int:
        return hash((self.validators, self.priorities, self._proposer))

    def __repr__(self) -> str:
        rows = ", ".join(
            f"{a.hex()[:8]}:{v.power}@{p}"
            for a, v, p in zip(self.addresses, self.validators, self.priorities, strict=True)
        )
        return f"ValidatorSet([{rows}], proposer={self.proposer_address.hex()[:8]})"

    @property
    def proposer(self) -> Validator:
        return self.validators[self._proposer]

    @property
    def proposer_address(self) -> bytes:
        return self.addresses[self._proposer]

    @property
    def quorum(self) -> int:
        """The smallest voting power strictly greater than 2/3 of the total."""
        return self.total_power * 2 // 3 + 1

    @property
    def one_third_plus(self) -> int:
        """The smallest voting power strictly greater than 1/3 of the total."""
        return self.total_power // 3 + 1

    def get(self, address: bytes) -> tuple[int, Validator] | None:
        index = self._index.get(address)
        return None if index is None else (index, self.validators[index])

    def priority_of(self, address: bytes) -> int:
        return self.priorities[self._index[address]]

    def hash(self) -> bytes:
        """Commitment to the membership and powers (priorities excluded)."""
        return hashlib.sha256(canonical([v.to_wire() for v in self.validators])).digest()

    # -- proposer rotation -----------------------------------------------------------------
    def increment(self, times: int) -> ValidatorSet:
        """Tendermint's IncrementProposerPriority(times) on a copy."""
        if times <= 0:
            raise ValueError("times must be positive")
        total = self.total_power
        prios = _rescaled(list(self.priorities), PRIORITY_WINDOW_SIZE_FACTOR * total)
        prios = _centered(prios)
        proposer = 0
        for _ in range(times):
            prios = [_clip(p + v.power) for p, v in zip(prios, self.validators, strict=True)]
            proposer = self._most_priority(prios)
            prios[proposer] = _clip(prios[proposer] - total)
        return self._make(self.validators, tuple(prios), proposer)

    def _most_priority(self, prios: Sequence[int]) -> int:
        # Highest priority; ties go to the lowest address, i.e. the lowest index.
        best = 0
        for i in range(1, len(prios)):
            if prios[i] > prios[best]:
                best = i
        return best

    # -- validator updates -------------------------------------------------------------------
    def apply_updates(self, updates: Sequence[Validator]) -> ValidatorSet:
        """Tendermint's UpdateWithChangeSet: power 0 removes, a known key changes power and keeps
        its priority, a new key joins at priority -1.125 * (new total). ValueError for an
        invalid change set (duplicates, negative power, removing an unknown validator, empty
        result, total power too large)."""
        if not updates:
            return self
        changes = _checked_changes(updates)
        current = dict(
            zip(self.addresses, zip(self.validators, self.priorities, strict=True), strict=True)
        )
        removed = [a for a, v in changes if v.power == 0]
        for address in removed:
            if address not in current:
                raise ValueError(f"cannot remove unknown validator {address.hex()}")
        new_total = self.total_power
        for address, v in changes:
            old = current.get(address)
            new_total += v.power - (old[0].power if old is not None else 0)
        if new_total > MAX_TOTAL_VOTING_POWER:
            raise ValueError(f"total voting power {new_total} exceeds {MAX_TOTAL_VOTING_POWER}")
        if new_total <= 0:
            raise ValueError("the update would remove every validator")
        joining_priority = -(new_total + (new_total >> 3))
        for address, v in changes:
            old = current.get(address)
            if v.power == 0:
                del current[address]
            else:
                current[address] = (v, old[1] if old is not None else joining_priority)
        rows = [current[a] for a in sorted(current)]
        prios = _rescaled([p for _, p in rows], PRIORITY_WINDOW_SIZE_FACTOR * new_total)
        return self._make(tuple(v for v, _ in rows), tuple(_centered(prios)), None)

    # -- wire ----------------------------------------------------------------------------------
    def to_wire(self) -> list[Any]:
        return [
            [
                [v.pub_key, v.power, p]
                for v, p in zip(self.validators, self.priorities, strict=True)
            ],
            self.proposer_address,
        ]

    @classmethod
    def from_wire(cls, obj: Any) -> ValidatorSet:
        rows, proposer = _fields(obj, 2)
        if not isinstance(rows, list | tuple) or not 1 <= len(rows) <= MAX_VALIDATORS:
            raise MalformedMessage(f"a validator set has 1 to {MAX_VALIDATORS} validators")
        validators: list[Validator] = []
        priorities: list[int] = []
        for row in rows:
            pub_key, power, priority = _fields(row, 3)
            validators.append(Validator.from_wire([pub_key, power]))
            priorities.append(_int(priority, MIN_INT64, MAX_INT64))
        try:
            return cls(validators, priorities, _bytes(proposer, ADDRESS_SIZE))
        except ValueError as exc:
            raise MalformedMessage(f"invalid validator set: {exc}") from None


def _rescaled(prios: list[int], diff_max: int) -> list[int]:
    """Tendermint's RescalePriorities: shrink the spread to at most `diff_max`."""
    if diff_max <= 0:
        return prios
    diff = max(prios) - min(prios)
    if diff <= diff_max:
        return prios
    ratio = (diff + diff_max - 1) // diff_max  # both positive: floor == Go truncation here
    return [_go_div(p, ratio) for p in prios]


def _centered(prios: list[int]) -> list[int]:
    """Tendermint's shiftByAvgProposerPriority; the average uses big.Int.Div (floor for a
    positive divisor), matching Python's //."""
    avg = sum(prios) // len(prios)
    return [_clip(p - avg) for p in prios]


def _checked_changes(updates: Sequence[Validator]) -> list[tuple[bytes, Validator]]:
    changes = sorted(((v.address, v) for v in updates), key=lambda c: c[0])
    for i, (address, v) in enumerate(changes):
        if v.power < 0:
            raise ValueError(f"negative voting power for {address.hex()}")
        if i and changes[i - 1][0] == address:
            raise ValueError(f"duplicate update for {address.hex()}")
    return changes
