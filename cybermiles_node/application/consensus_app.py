"""The application side of BFT consensus: blocks for consensus to order, and their records.

`ChainConsensus` is what the consensus driver sees of the chain (its `BlockSource`) and what
blocksync serves from (its `BlockStore`):
- `propose_block` builds an Ethereum block from the mempool, with the consensus metadata
  (proposer, validator-set hashes, last commit, evidence, randomness proof) committed in
  `extra_data`, and returns its wire bytes;
- `validate_block` checks a proposed block before this node prevotes for it: the metadata
  against the validator sets, the last commit's signatures, the evidence, the randomness beacon,
  the timestamp, then executes it (every root must match its header);
- `commit_block` persists a decided block together with its commit, the validator set that
  decided it, the misbehaviour it evidences and the consensus state of the next height, all in
  the block's one write batch, so a crash never separates a block from its commit.

A block that halts the chain (governance, issue #10) is committed with its records like any
other; `ChainApp.commit` then raises `ChainHalted`, which leaves `commit_block` and the driver
at once: the driver neither writes `end_height(H)` to its WAL nor moves to H+1, so this node
signs nothing for H+1 (a node restarted with an accepted version writes the missing marker, as
after a crash between commit and marker: consensus/driver.py `start`). Blocksync's blocks are
committed by the same call, so a node catching up stops after H too. The node stays on the
network briefly before it exits, for peers still getting block H (node.py `_run_consensus`).

Validator sets with their proposer priorities are persisted per height; the state for the next
height is computed by consensus's own transition function, never re-derived here.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypedDict

import msgpack

from consensus.core import HeightState
from consensus.driver import Finish, Work
from consensus.errors import ConsensusError, InvalidBlock, InvalidSignature, MalformedMessage
from consensus.evidence import EvidencePool, verify_evidence
from consensus.keys import Ed25519Key
from consensus.types import Commit, DuplicateVoteEvidence, Validator, canonical
from consensus.validators import ValidatorSet
from consensus.verify import verify_commit
from cybermiles_node.application import schema
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.blocks import BlockMeta, WireBlock, decode_block, encode_block
from cybermiles_node.application.chain import BlockRejected, PendingBlock
from cybermiles_node.application.randomness import RandomnessBeacon
from cybermiles_node.errors import InvariantViolation, TxRejected
from cybermiles_node.staking import keeper as staking_keeper
from cybermiles_node.staking.power import CONSENSUS_POWER
from cybermiles_node.system.context import Misbehaviour
from evm.state import StateDB
from evm.transactions import SignedTx
from genesis import Genesis

log = logging.getLogger(__name__)

MAX_EVIDENCE_AGE = 100  # heights
VALIDATED_CACHE = 8


def consensus_chain_id(genesis: Genesis, genesis_hash: bytes) -> str:
    """The string every consensus signature and the p2p handshake bind to: the chain id and
    the genesis block, so nothing signed for one chain verifies on another."""
    return f"cybermiles-{genesis.chain_id}-{genesis_hash[:8].hex()}"


def consensus_members(storage: StateDB) -> dict[bytes, tuple[Validator, bytes]]:
    """The staking state's validators and backups as consensus sees them, by consensus address:
    each with equal power (SPEC §6) and its owner's address (the fee address of its blocks)."""
    members = {}
    for member in staking_keeper.consensus_set(storage):
        validator = Validator(member.pub_key, CONSENSUS_POWER)
        members[validator.address] = (validator, member.owner)
    return members


class ConsensusFacts(TypedDict):
    """What consensus tells the application of a block beyond its header (BlockContext)."""

    proposer: bytes
    last_commit_signers: tuple[bytes, ...]
    last_commit_validators: tuple[bytes, ...]
    misbehaviour: tuple[Misbehaviour, ...]


def consensus_facts(height: int, meta: BlockMeta, deciders: ValidatorSet | None) -> ConsensusFacts:
    """`deciders`: the validator set that decided the parent (None for block 1)."""
    signers = () if meta.last_commit is None else meta.last_commit.signatures
    return ConsensusFacts(
        proposer=meta.proposer,
        last_commit_signers=tuple(sorted(sig.validator for sig in signers)),
        last_commit_validators=() if deciders is None else tuple(sorted(deciders.addresses)),
        misbehaviour=tuple(Misbehaviour(ev.validator, ev.height, height) for ev in meta.evidence),
    )


@dataclass
class Validated:
    block: PendingBlock
    wire: WireBlock


class ConsensusRecords:
    """The consensus records stored beside the blocks (keys from
    `cybermiles_node.application.schema`)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def height_state(self) -> HeightState | None:
        raw = self.db.get(schema.CONSENSUS_STATE_KEY)
        return None if raw is None else HeightState.from_wire(_unpack(raw))

    def validators_at(self, height: int) -> ValidatorSet | None:
        raw = self.db.get(schema.validators_key(height))
        return None if raw is None else _validator_set(bytes(raw))

    def decision_at(self, height: int) -> tuple[Commit, BlockMeta] | None:
        raw = self.db.get(schema.commit_key(height))
        if raw is None:
            return None
        commit, meta = _unpack(raw)
        return Commit.from_wire(commit), BlockMeta.from_wire(meta)

    def misbehaviour_at(self, height: int) -> list[Misbehaviour]:
        raw = self.db.get(schema.misbehaviour_key(height))
        return [] if raw is None else [Misbehaviour(*m) for m in _unpack(raw)]

    @staticmethod
    def writes(
        height: int,
        commit: Commit,
        meta: BlockMeta,
        deciders: ValidatorSet,
        next_state: HeightState,
    ) -> dict[bytes, bytes]:
        writes = {
            schema.commit_key(height): canonical([commit.to_wire(), meta.to_wire()]),
            schema.validators_key(height): canonical(deciders.to_wire()),
            schema.CONSENSUS_STATE_KEY: canonical(next_state.to_wire()),
        }
        if meta.evidence:
            writes[schema.misbehaviour_key(height)] = canonical(
                [[ev.validator, ev.height, height] for ev in meta.evidence]
            )
        for ev in meta.evidence:
            writes[schema.evidence_key(ev.hash())] = schema.be64(height)
        return writes

    def evidence_included(self, ev: DuplicateVoteEvidence) -> bool:
        return self.db.get(schema.evidence_key(ev.hash())) is not None


class ChainConsensus:
    """The consensus driver's `BlockSource` and blocksync's `BlockStore` over a `ChainApp`."""

    def __init__(
        self,
        app: ChainApp,
        *,
        genesis: Genesis,
        key: Ed25519Key | None,
        beacon: RandomnessBeacon,
        wall_clock: Callable[[], float] = time.time,
        max_clock_drift_s: float = 10.0,
    ) -> None:
        self.app = app
        self.genesis = genesis
        self.key = key
        self.beacon = beacon
        self.wall_clock = wall_clock
        self.max_clock_drift_s = max_clock_drift_s
        self.records = ConsensusRecords(app.chain.db)
        self.chain_id = consensus_chain_id(genesis, bytes(app.chain.genesis_header.hash))
        self._owner_of: tuple[tuple[bytes, bytes], bytes] = ((b"", b""), b"")
        self.state = self._load_state()
        self._validated: OrderedDict[bytes, Validated] = OrderedDict()
        self.evidence_pool: EvidencePool | None = None  # told what blocks include

    def _load_state(self) -> HeightState:
        stored = self.records.height_state()
        head = self.app.chain.head_number
        if stored is None:
            if head != 0:
                raise InvariantViolation(
                    f"the store holds {head} blocks but no consensus state: "
                    "it was not written by a BFT node"
                )
            genesis_state = self.app.chain.state_at(self.app.chain.genesis_header)
            members = consensus_members(genesis_state).values()
            return HeightState.genesis([validator for validator, _ in members])
        if stored.height != head + 1:
            raise InvariantViolation(
                f"consensus state is for height {stored.height} but the head is block {head}"
            )
        return stored

    # -- BlockSource (in halves: consensus/driver.py `StagedBlockSource`) -------------------
    # Each `stage_*` runs on the event loop and reads there what belongs to the loop (the
    # mempool); its work runs in the consensus host's worker thread, one job at a time, so the
    # head stays still under it; its finish runs back on the loop. The whole calls below run
    # the three halves in a row (tests, tools, WAL replay).
    def propose_block(
        self,
        height: int,
        round: int,
        proposer: bytes,
        last_commit: Commit | None,
        evidence: Sequence[DuplicateVoteEvidence],
    ) -> tuple[bytes, bytes]:
        return self.stage_proposal(height, round, proposer, last_commit, evidence)()()

    def validate_block(self, height: int, block_hash: bytes, data: bytes) -> bool:
        return self.stage_validation(height, block_hash, data)()()

    def commit_block(
        self, height: int, block_hash: bytes, data: bytes, commit: Commit
    ) -> Sequence[Validator]:
        return self.stage_commit(height, block_hash, data, commit)()()

    def stage_proposal(
        self,
        height: int,
        round: int,
        proposer: bytes,
        last_commit: Commit | None,
        evidence: Sequence[DuplicateVoteEvidence],
    ) -> Work[tuple[bytes, bytes]]:
        head = self.app.head
        if self.key is None or height != head.block_number + 1:
            raise InvariantViolation(f"asked to propose block {height} on head {head.block_number}")
        key = self.key
        candidates = self.app.reap()  # the pool is the loop's; later arrivals wait a block
        timestamp = max(int(self.wall_clock()), head.timestamp)

        def work() -> Finish[tuple[bytes, bytes]]:
            started = time.perf_counter()
            output, proof = self.beacon.produce(key, bytes(head.mix_hash))
            meta = BlockMeta(
                proposer=proposer,
                validators_hash=self.state.validators.hash(),
                next_validators_hash=self.state.next_validators.hash(),
                last_commit=last_commit,
                # After a restart, gossip may bring back evidence an earlier block holds.
                evidence=tuple(ev for ev in evidence if not self.records.evidence_included(ev)),
                randomness_proof=proof,
            )
            ctx = self.app.chain.next_context(
                time=timestamp,
                coinbase=self._owner(proposer),
                randomness=output,
                extra_data=meta.commitment(),
                **consensus_facts(height, meta, self._deciders(height)),
            )
            pending = self.app.execute(ctx, candidates)
            raws = tuple(tx.raw for tx in pending.result.transactions)
            wire = WireBlock(pending.header, raws, meta)
            self._remember(Validated(pending, wire))
            answer = wire.hash, encode_block(wire)
            build_ms = (time.perf_counter() - started) * 1000

            def finish() -> tuple[bytes, bytes]:
                self.app.evict_crashed(pending)
                for tx, reason in pending.skipped:
                    log.info(
                        "transaction 0x%s left out of block %d: %s", tx.hash.hex(), height, reason
                    )
                log.info(
                    "proposing block height=%d round=%d txs=%d build_ms=%.0f",
                    height,
                    round,
                    len(wire.raw_txs),
                    build_ms,
                )
                return answer

            return finish

        return work

    def stage_validation(self, height: int, block_hash: bytes, data: bytes) -> Work[bool]:
        known = self._known(data)

        def work() -> Finish[bool]:
            started = time.perf_counter()
            try:
                self._validate(height, block_hash, data, live=True, known=known)
            except (ConsensusError, BlockRejected, TxRejected) as exc:
                log.warning("block %d 0x%s rejected: %s", height, block_hash.hex()[:16], exc)
                return lambda: False
            log.info(
                "validated block height=%d validate_ms=%.0f",
                height,
                (time.perf_counter() - started) * 1000,
            )
            return lambda: True

        return work

    def stage_commit(
        self, height: int, block_hash: bytes, data: bytes, commit: Commit
    ) -> Work[Sequence[Validator]]:
        # A block this node validated (the usual case) executes from that result: looking its
        # transactions up in the pool again would hash every one of them for nothing.
        known = None if block_hash in self._validated else self._known(data)
        senders = self.app.pool_senders()  # read_ahead reads their accounts off the loop

        def work() -> Finish[Sequence[Validator]]:
            started = time.perf_counter()
            try:
                validated = self._validate(height, block_hash, data, live=False, known=known)
            except (BlockRejected, TxRejected) as exc:
                raise InvalidBlock(f"decided block {height} does not execute: {exc}") from None
            # The modules' decisions (staking elections) reach consensus here, effective at H+2.
            block = validated.block
            updates = [Validator(u.pub_key, u.power) for u in block.outcome.validator_updates]
            next_state = self.state.next(commit, updates)
            meta = validated.wire.meta
            deciders = self.state.validators
            writes = ConsensusRecords.writes(height, commit, meta, deciders, next_state)
            self.app.write(block, writes)
            state_after = self.app.read_ahead(block, senders)

            def finish() -> Sequence[Validator]:
                self.app.finish_commit(block, state_after)  # raises ChainHalted for a halt
                if self.evidence_pool is not None:
                    self.evidence_pool.mark_committed(meta.evidence, height)
                for ev in meta.evidence:
                    log.warning(
                        "misbehaviour: validator %s double-voted at height %d (evidence in "
                        "block %d)",
                        ev.validator.hex(),
                        ev.height,
                        height,
                    )
                self.state = next_state
                self._validated.clear()
                log.info(
                    "committed block height=%d round=%d txs=%d hash=0x%s commit_ms=%.0f",
                    height,
                    commit.round,
                    len(validated.wire.raw_txs),
                    block_hash.hex()[:16],
                    (time.perf_counter() - started) * 1000,
                )
                return updates

            return finish

        return work

    def is_light(self, data: bytes) -> bool:
        """A block without transactions (or one that does not decode, refused at once)."""
        try:
            return not decode_block(data).raw_txs
        except ConsensusError:
            return True

    def _known(self, data: bytes) -> list[SignedTx | None] | None:
        """The pool's decoded copies of a block's transactions, looked up on the loop (None
        for a block that does not decode: validation says why)."""
        try:
            return self.app.known_txs(decode_block(data).raw_txs)
        except ConsensusError:
            return None

    # -- BlockStore ------------------------------------------------------------------------
    def committed_height(self) -> int:
        return self.app.chain.head_number

    def decided_block(self, height: int) -> tuple[bytes, bytes, Commit] | None:
        header = self.app.chain.header_by_number(height)
        decision = self.records.decision_at(height)
        if header is None or decision is None:
            return None
        commit, meta = decision
        raws = tuple(tx.raw for tx in self.app.chain.transactions(height))
        return bytes(header.hash), encode_block(WireBlock(header, raws, meta)), commit

    # -- validation ------------------------------------------------------------------------
    def _validate(
        self,
        height: int,
        block_hash: bytes,
        data: bytes,
        *,
        live: bool,
        known: Sequence[SignedTx | None] | None = None,
    ) -> Validated:
        cached = self._validated.get(block_hash)
        if cached is not None:
            return cached
        wire = decode_block(data)
        head = self.app.head
        if wire.hash != block_hash:
            raise InvalidBlock("block bytes do not hash to the proposed block")
        if wire.number != height or height != head.block_number + 1:
            raise InvalidBlock(
                f"block {wire.number} is not the next block after {head.block_number}"
            )
        self._check_meta(wire, live=live)
        facts = consensus_facts(height, wire.meta, self._deciders(height))
        ctx = self.app.chain.context_of(wire.header, **facts)
        block = self.app.validate_block(ctx, wire.header, wire.raw_txs, known)
        validated = Validated(block, wire)
        self._remember(validated)
        return validated

    def _check_meta(self, wire: WireBlock, *, live: bool) -> None:
        header, meta, head = wire.header, wire.meta, self.app.head
        if header.extra_data != meta.commitment():
            raise InvalidBlock("extra_data does not commit to the block's metadata")
        if meta.validators_hash != self.state.validators.hash():
            raise InvalidBlock("validators hash is not the current validator set's")
        if meta.next_validators_hash != self.state.next_validators.hash():
            raise InvalidBlock("next validators hash is not the next validator set's")
        member = self.state.validators.get(meta.proposer)
        if member is None:
            raise InvalidBlock("the block's proposer is not a validator")
        if header.coinbase != self._owner(meta.proposer):
            raise InvalidBlock("coinbase is not the proposer's fee address")
        if header.timestamp < head.timestamp:
            raise InvalidBlock("timestamp is before the parent's")
        if live and header.timestamp > self.wall_clock() + self.max_clock_drift_s:
            raise InvalidBlock("timestamp is too far in the future")
        # A decided block (not live: blocksync, or decided before we validated it) carries a
        # +2/3 commit, so honest validators checked its proof before prevoting; its randomness
        # output (mix_hash) is still the one every root is computed with.
        if live and not self.beacon.verify(
            member[1].pub_key, bytes(head.mix_hash), bytes(header.mix_hash), meta.randomness_proof
        ):
            raise InvalidBlock("randomness beacon does not verify")
        self._check_last_commit(wire.number, meta.last_commit)
        self._check_evidence(wire.number, meta.evidence)

    def _check_last_commit(self, height: int, last_commit: Commit | None) -> None:
        if height == 1:
            if last_commit is not None:
                raise InvalidBlock("block 1 carries a last commit")
            return
        if last_commit is None:
            raise InvalidBlock("block carries no commit of its parent")
        if last_commit.height != height - 1 or last_commit.block_id.hash != self.app.head.hash:
            raise InvalidBlock("last commit is not for the parent block")
        deciders = self._deciders(height)
        assert deciders is not None  # height > 1
        verify_commit(self.chain_id, deciders, last_commit)

    def _check_evidence(self, height: int, evidence: Sequence[DuplicateVoteEvidence]) -> None:
        seen: set[bytes] = set()
        for ev in evidence:
            key = ev.hash()
            if key in seen or self.records.evidence_included(ev):
                raise InvalidBlock("evidence repeated in the block or already included")
            seen.add(key)
            if not height - MAX_EVIDENCE_AGE <= ev.height < height:
                raise InvalidBlock(f"evidence of height {ev.height} is out of range")
            deciders = self.records.validators_at(ev.height)
            member = None if deciders is None else deciders.get(ev.validator)
            if member is None:
                raise InvalidBlock("evidence names no validator of its height")
            try:
                verify_evidence(self.chain_id, ev, member[1].pub_key)
            except (MalformedMessage, InvalidSignature) as exc:
                raise InvalidBlock(f"invalid evidence: {exc}") from None

    # -- helpers ---------------------------------------------------------------------------
    def _deciders(self, height: int) -> ValidatorSet | None:
        """The validator set that decided block `height - 1` (None for block 1)."""
        if height <= 1:
            return None
        deciders = self.records.validators_at(height - 1)
        if deciders is None:
            raise InvariantViolation(f"no validator set stored for block {height - 1}")
        return deciders

    def _owner(self, proposer: bytes) -> bytes:
        """The fee address of a block by `proposer`: its owner in the head's staking state
        (the proposer's own address when it is no member of the head's consensus set)."""
        key = (bytes(self.app.head.hash), proposer)
        if self._owner_of[0] != key:
            owner = staking_keeper.consensus_member_owner(self.app.chain.state_at(), proposer)
            self._owner_of = (key, proposer if owner is None else owner)
        return self._owner_of[1]

    def _remember(self, validated: Validated) -> None:
        self._validated[validated.wire.hash] = validated
        while len(self._validated) > VALIDATED_CACHE:
            self._validated.popitem(last=False)


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False)


@lru_cache(maxsize=16)
def _validator_set(raw: bytes) -> ValidatorSet:
    """A stored validator set, decoded once: validating a block reads its deciders' set twice
    (the last commit, the block context), and ValidatorSet is immutable."""
    return ValidatorSet.from_wire(_unpack(raw))
