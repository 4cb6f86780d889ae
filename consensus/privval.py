"""Double-sign protection: the private validator signs votes and proposals, never twice in conflict.

Tendermint's FilePV rule. The signer remembers the last (height, round, step) it signed with the
exact sign bytes and signature. A request

- below that position is refused (the node went back in time: a replayed WAL, a restored backup);
- at that position returns the stored signature if the sign bytes are identical (the node crashed
  after signing and is re-doing the same step), and is refused otherwise (that is a double sign);
- above it is signed, and the new position is made durable BEFORE the signature leaves this
  module, so a crash right after signing can never let a restarted node sign something else at
  that step.

The logic lives in `_GuardedSigner`; where the last-signed state lives is a small storage
strategy: a JSON file written atomically with fsync (`FilePrivValidator`), or a dict that models
the disk for simulations, where a "crash" is a new instance on the same dict
(`MemoryPrivValidator`). Both stores hold the same JSON shape and share its strict parser, so a
state that cannot be read with certainty stops the node instead of being taken as "fresh".
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from consensus.durable import atomic_write, ensure_dir
from consensus.errors import ConsensusError, DoubleSignRefused
from consensus.keys import Ed25519Key
from consensus.types import MAX_HEIGHT, MAX_ROUND, Proposal, SignedStep, Vote, validator_address

_STATE_KEYS = frozenset({"height", "round", "step", "sign_bytes", "signature"})


class PrivValidatorStateError(ConsensusError):
    """The last-signed state exists but cannot be trusted (corrupt, truncated, unreadable).
    The node must not start: treating it as fresh could sign a conflicting vote."""


class PrivValidator(Protocol):
    """What consensus needs from a signer; every implementation enforces the FilePV rule."""

    address: bytes  # 20-byte validator address
    pub_key: bytes  # 32-byte ed25519 public key

    def sign_vote(self, chain_id: str, vote: Vote) -> Vote: ...

    def sign_proposal(self, chain_id: str, proposal: Proposal) -> Proposal: ...


@dataclass(frozen=True)
class LastSigned:
    """The most recent thing signed: its position and exactly what was signed."""

    height: int
    round: int
    step: SignedStep
    sign_bytes: bytes
    signature: bytes

    @property
    def position(self) -> tuple[int, int, int]:
        return (self.height, self.round, int(self.step))

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "round": self.round,
            "step": int(self.step),
            "sign_bytes": self.sign_bytes.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, obj: Any, where: str) -> LastSigned:
        """Strict parse; anything unexpected raises PrivValidatorStateError naming `where`."""
        if not isinstance(obj, dict) or set(obj) != _STATE_KEYS:
            raise PrivValidatorStateError(f"{where}: expected keys {sorted(_STATE_KEYS)}")
        try:
            return cls(
                _state_int(obj["height"], 0, MAX_HEIGHT),
                _state_int(obj["round"], 0, MAX_ROUND),
                SignedStep(_state_int(obj["step"], 1, len(SignedStep))),
                bytes.fromhex(obj["sign_bytes"]),
                bytes.fromhex(obj["signature"]),
            )
        except (TypeError, ValueError) as exc:
            raise PrivValidatorStateError(f"{where}: malformed last-signed state ({exc})") from None


def _state_int(value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"expected an integer in [{low}, {high}], got {value!r:.40}")
    return value


# -- storage strategies -------------------------------------------------------------------------
class _StateStore(Protocol):
    def load(self) -> LastSigned | None: ...

    def save(self, state: LastSigned) -> None:
        """Must not return before the state would survive a crash."""
        ...


class _FileStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> LastSigned | None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None  # never signed with this state file: fresh
        except (OSError, UnicodeDecodeError) as exc:
            raise PrivValidatorStateError(f"{self.path}: cannot read ({exc})") from None
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise PrivValidatorStateError(f"{self.path}: not valid JSON ({exc})") from None
        return LastSigned.from_json(obj, str(self.path))

    def save(self, state: LastSigned) -> None:
        ensure_dir(self.path.parent)
        atomic_write(self.path, json.dumps(state.to_json(), indent=2).encode())


class _DictStore:
    """The dict is the 'disk': it survives the instance, as a file survives the process."""

    def __init__(self, disk: dict[str, Any]) -> None:
        self.disk = disk

    def load(self) -> LastSigned | None:
        return LastSigned.from_json(self.disk, "memory state") if self.disk else None

    def save(self, state: LastSigned) -> None:
        self.disk.clear()
        self.disk.update(state.to_json())


# -- the signer ---------------------------------------------------------------------------------
class _GuardedSigner:
    """The FilePV rule over any `_StateStore`."""

    def __init__(self, key: Ed25519Key, store: _StateStore) -> None:
        self._key = key
        self._store = store
        self._last = store.load()  # fails loudly on a corrupt state, before any signing
        self.pub_key = key.public_key
        self.address = validator_address(key.public_key)

    @property
    def last_signed(self) -> LastSigned | None:
        return self._last

    def sign_vote(self, chain_id: str, vote: Vote) -> Vote:
        self._check_signer(vote.validator, "vote.validator")
        signature = self._sign(vote.height, vote.round, vote.signed_step, vote.sign_bytes(chain_id))
        return dataclasses.replace(vote, signature=signature)

    def sign_proposal(self, chain_id: str, proposal: Proposal) -> Proposal:
        self._check_signer(proposal.proposer, "proposal.proposer")
        signature = self._sign(
            proposal.height, proposal.round, SignedStep.PROPOSAL, proposal.sign_bytes(chain_id)
        )
        return dataclasses.replace(proposal, signature=signature)

    def _check_signer(self, claimed: bytes, field: str) -> None:
        # Asking this key to sign for another validator is a bug in the caller, not a peer's fault.
        if claimed != self.address:
            raise ValueError(f"{field} {claimed.hex()} is not this signer ({self.address.hex()})")

    def _sign(self, height: int, rnd: int, step: SignedStep, sign_bytes: bytes) -> bytes:
        position = (height, rnd, int(step))
        last = self._last
        if last is not None:
            if position < last.position:
                raise DoubleSignRefused(
                    f"refusing to sign at {_fmt(position)}: already signed at {_fmt(last.position)}"
                )
            if position == last.position:
                if sign_bytes == last.sign_bytes:
                    return last.signature  # the same step re-done after a restart: idempotent
                raise DoubleSignRefused(
                    f"refusing a conflicting signature at {_fmt(position)}: "
                    "different sign bytes were already signed there"
                )
        signed = LastSigned(height, rnd, step, sign_bytes, self._key.sign(sign_bytes))
        self._store.save(signed)  # durable first: the signature must not outlive a lost state
        self._last = signed
        return signed.signature


def _fmt(position: tuple[int, int, int]) -> str:
    height, rnd, step = position
    return f"height {height} round {rnd} step {SignedStep(step).name}"


class FilePrivValidator(_GuardedSigner):
    """The production signer: last-signed state in a JSON file (mode 0600), fsync'd on every
    signature."""

    def __init__(self, key: Ed25519Key, state_path: Path) -> None:
        super().__init__(key, _FileStore(state_path))
        self.state_path = state_path


class MemoryPrivValidator(_GuardedSigner):
    """The simulation signer: `state` plays the disk; pass the same dict to a new instance to
    model a restart after a crash."""

    def __init__(self, key: Ed25519Key, state: dict[str, Any] | None = None) -> None:
        super().__init__(key, _DictStore(state if state is not None else {}))
