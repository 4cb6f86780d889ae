"""Crash points for fault-injection tests, switched on by an environment variable.

- `CYBERMILES_FAILPOINT=crash-after-sign:<height>` makes the node exit abruptly (as kill -9
  would: no cleanup, no flush) right after its private validator has durably signed its first
  vote at `height` or above, and before the vote reaches the WAL or any peer (the e2e test of
  double-sign protection).
- `CYBERMILES_FAILPOINT=equivocate:<height>` turns the validator byzantine: with every prevote
  it sends at `height` or above it also sends a conflicting prevote, signed with its key behind
  the private validator's back (the e2e test of evidence detection and inclusion).

A node without the variable never checks anything else.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from eth_hash.auto import keccak

from consensus.keys import Ed25519Key
from consensus.types import BlockID, Proposal, Vote, VoteType, validator_address
from cybermiles_node.errors import InvariantViolation
from cybermiles_node.governance.versions import (
    PROGRAM_NAME,
    ProgramRequirement,
    put_program_requirement,
)
from cybermiles_node.modules import BlockOutcome, Module, SystemTxMessage
from cybermiles_node.system.context import BlockContext
from evm.state import StateDB
from evm.system import SystemTxResult

if TYPE_CHECKING:  # the BFT stack: loaded only by nodes that run it (node.py)
    from consensus.host import Gossip
    from consensus.privval import PrivValidator
    from consensus.reactor import ConsensusReactor

ENV = "CYBERMILES_FAILPOINT"


class CrashAfterSign:
    """A PrivValidator that dies after signing a vote at or above `height`."""

    def __init__(self, inner: PrivValidator, height: int) -> None:
        self.inner = inner
        self.height = height
        self.address = inner.address
        self.pub_key = inner.pub_key

    def sign_vote(self, chain_id: str, vote: Vote) -> Vote:
        signed = self.inner.sign_vote(chain_id, vote)
        if vote.height >= self.height:
            sys.stderr.write(f"failpoint crash-after-sign: exiting after signing {vote}\n")
            sys.stderr.flush()
            os._exit(70)
        return signed

    def sign_proposal(self, chain_id: str, proposal: Proposal) -> Proposal:
        return self.inner.sign_proposal(chain_id, proposal)


class EquivocatingGossip:
    """Wraps the consensus gossip: each own prevote goes out with a conflicting twin."""

    def __init__(
        self, inner: ConsensusReactor, key: Ed25519Key, chain_id: str, height: int
    ) -> None:
        self.inner = inner
        self.key = key
        self.chain_id = chain_id
        self.height = height
        self.address = validator_address(key.public_key)

    def broadcast(self, message: Any) -> None:
        self.inner.broadcast(message)
        if (
            isinstance(message, Vote)
            and message.validator == self.address
            and message.type == VoteType.PREVOTE
            and message.height >= self.height
        ):
            fake = BlockID(keccak(message.sign_bytes(self.chain_id)), 1, b"\x00" * 32)
            twin = replace(message, block_id=fake, signature=b"")
            twin = replace(twin, signature=self.key.sign(twin.sign_bytes(self.chain_id)))
            from consensus.messages import encode_message
            from p2p import CONSENSUS_VOTE

            # Straight to every peer: the reactor would not send a second vote of the same
            # (height, round, type, validator) to a peer that has one.
            for peer in self.inner.peers():
                peer.send(CONSENSUS_VOTE, encode_message(twin))


class DecideHalt:
    """A module whose end_block of block `requirement.height` writes `requirement` and halts
    the chain with its message, as governance does for an approved upgrade_program."""

    name = "halt-failpoint"
    kinds: frozenset[str] = frozenset()  # owns no transaction kind: the tx hooks never run
    fee_recipient: bytes | None = None

    def __init__(self, requirement: ProgramRequirement) -> None:
        self.requirement = requirement

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        pass

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        if ctx.height != self.requirement.height:
            return BlockOutcome()
        put_program_requirement(storage, self.requirement)
        return BlockOutcome(halt=self.requirement.message)

    def check_tx(self, msg: SystemTxMessage, storage: StateDB, height: int, time: int) -> None:
        raise InvariantViolation(f"{self.name} owns no transaction kind")

    def gas_of(self, msg: SystemTxMessage, storage: StateDB) -> int:
        raise InvariantViolation(f"{self.name} owns no transaction kind")

    def deliver_tx(
        self, msg: SystemTxMessage, storage: StateDB, height: int, time: int
    ) -> SystemTxResult:
        raise InvariantViolation(f"{self.name} owns no transaction kind")


def _failpoint_spec(name: str) -> str | None:
    """What follows `name:` in the variable, when it names this failpoint."""
    spec = os.environ.get(ENV, "")
    prefix = name + ":"
    return spec[len(prefix) :] if spec.startswith(prefix) else None


def _failpoint(name: str) -> int | None:
    spec = _failpoint_spec(name)
    return None if spec is None else int(spec)


def with_failpoints(signer: PrivValidator) -> PrivValidator:
    height = _failpoint("crash-after-sign")
    return signer if height is None else CrashAfterSign(signer, height)


def gossip_with_failpoints(gossip: ConsensusReactor, key: Ed25519Key, chain_id: str) -> Gossip:
    height = _failpoint("equivocate")
    return gossip if height is None else EquivocatingGossip(gossip, key, chain_id, height)


def failpoint_modules() -> tuple[Module, ...]:
    """The chain modules failpoints add after the node's own (`halt`)."""
    spec = _failpoint_spec("halt")
    if spec is None:
        return ()
    height, version = spec.split(":")
    return (DecideHalt(ProgramRequirement(PROGRAM_NAME, version, int(height))),)
