"""The application side of consensus: blocks built for a proposal, checked before prevoting,
committed with their records (`cybermiles_node.application.consensus_app`).

Two nodes of one 2-validator chain share nothing but the genesis: the proposer builds a block,
the other validates and commits it with a real commit signed by both validators. Every way a
proposer could cheat in the metadata makes `validate_block` say no without changing anything.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from consensus.keys import Ed25519Key
from consensus.parts import PartSet
from consensus.types import (
    BlockID,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Vote,
    VoteType,
    validator_address,
)
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.blocks import BlockMeta, WireBlock, decode_block, encode_block
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.consensus_app import ChainConsensus, ConsensusRecords
from cybermiles_node.application.randomness import HashChainBeacon
from evm.db import MemoryDB
from genesis import dev_accounts, devnet_genesis

KEYS = [Ed25519Key.from_seed(bytes([i + 1]) * 32) for i in range(2)]
GENESIS = devnet_genesis(
    validator_pub_keys=[k.public_key for k in KEYS], genesis_time=1_700_000_000
)
NOW = 1_700_000_100


def node(key: Ed25519Key) -> ChainConsensus:
    return ChainConsensus(
        ChainApp(Chain(MemoryDB(), GENESIS)),
        genesis=GENESIS,
        key=key,
        beacon=HashChainBeacon(),
        wall_clock=lambda: NOW,
    )


def _addr(key: Ed25519Key) -> bytes:
    return validator_address(key.public_key)


def transfer(nonce: int) -> bytes:
    sender = dev_accounts(3)[2]
    fields = {
        "to": to_checksum_address(b"\x09" * 20),
        "value": 5,
        "gas": 21000,
        "gasPrice": 2 * 10**9,
        "nonce": nonce,
        "chainId": GENESIS.chain_id,
    }
    return bytes(Account.sign_transaction(fields, sender.private_key).raw_transaction)


def commit_for(chain_id: str, height: int, block_hash: bytes, data: bytes) -> Commit:
    parts = PartSet.from_data(data)
    block_id = BlockID(block_hash, parts.total, parts.root)
    sigs = []
    for key in sorted(KEYS, key=_addr):
        vote = Vote(VoteType.PRECOMMIT, height, 0, block_id, _addr(key))
        sigs.append(CommitSig(vote.validator, key.sign(vote.sign_bytes(chain_id))))
    return Commit(height, 0, block_id, tuple(sigs))


def test_a_proposed_block_validates_and_commits_elsewhere_with_its_records() -> None:
    proposer, follower = node(KEYS[0]), node(KEYS[1])
    proposer.app.check_tx(transfer(0))
    block_hash, data = proposer.propose_block(1, 0, _addr(KEYS[0]), None, [])
    assert follower.validate_block(1, block_hash, data)

    commit = commit_for(follower.chain_id, 1, block_hash, data)
    assert follower.commit_block(1, block_hash, data, commit) == []
    proposer.commit_block(1, block_hash, data, commit)
    for cons in (proposer, follower):
        assert cons.app.chain.head_number == 1
        assert cons.state.height == 2 and cons.state.last_commit == commit
        assert cons.records.decision_at(1) == (commit, decode_block(data).meta)
        deciders = cons.records.validators_at(1)
        assert deciders is not None and len(deciders) == 2
        assert cons.app.query().get_balance(b"\x09" * 20) == 5
    # Blocksync serves exactly the bytes that were decided.
    assert follower.decided_block(1) == (block_hash, data, commit)

    # Block 2 carries block 1's commit, checked against the deciders of block 1.
    block2, data2 = follower.propose_block(2, 0, _addr(KEYS[1]), commit, [])
    assert proposer.validate_block(2, block2, data2)


def tampered(data: bytes, **changes: object) -> tuple[bytes, bytes]:
    """The block re-encoded with metadata fields changed (extra_data kept: a lying header)."""
    wire = decode_block(data)
    meta = replace(wire.meta, **changes)  # type: ignore[arg-type]
    fixed = WireBlock(wire.header, wire.raw_txs, meta)
    return fixed.hash, encode_block(fixed)


def resealed(data: bytes, **changes: object) -> tuple[bytes, bytes]:
    """The block with metadata changed AND its header's extra_data recommitted to it."""
    wire = decode_block(data)
    meta = replace(wire.meta, **changes)  # type: ignore[arg-type]
    header = wire.header.copy(extra_data=meta.commitment())
    fixed = WireBlock(header, wire.raw_txs, meta)
    return fixed.hash, encode_block(fixed)


@pytest.mark.parametrize(
    "change",
    [
        {"proposer": b"\x07" * 20},  # not a validator
        {"validators_hash": b"\x00" * 32},
        {"next_validators_hash": b"\x00" * 32},
        {"randomness_proof": b"\x01"},
    ],
)
def test_metadata_lies_get_a_nil_prevote(change: dict[str, object]) -> None:
    proposer, follower = node(KEYS[0]), node(KEYS[1])
    _, data = proposer.propose_block(1, 0, _addr(KEYS[0]), None, [])
    for block_hash, bad in (tampered(data, **change), resealed(data, **change)):
        assert not follower.validate_block(1, block_hash, bad)
    assert follower.app.chain.head_number == 0


def test_a_decided_block_is_not_asked_for_its_randomness_proof_again() -> None:
    """Live, a bad proof gets a nil prevote; a block decided by +2/3 (blocksync) was checked by
    the honest ones among them, so committing it does not verify the proof again."""
    proposer = node(KEYS[0])
    _, data = proposer.propose_block(1, 0, _addr(KEYS[0]), None, [])
    block_hash, bad = resealed(data, randomness_proof=b"\x01")
    assert not node(KEYS[1]).validate_block(1, block_hash, bad)
    syncing = node(KEYS[1])
    syncing.commit_block(1, block_hash, bad, commit_for(syncing.chain_id, 1, block_hash, bad))
    assert syncing.app.chain.head_number == 1


def test_wrong_hash_future_timestamp_and_missing_last_commit_are_refused() -> None:
    proposer, follower = node(KEYS[0]), node(KEYS[1])
    block_hash, data = proposer.propose_block(1, 0, _addr(KEYS[0]), None, [])
    assert not follower.validate_block(1, b"\x11" * 32, data)
    assert not follower.validate_block(1, block_hash, data[:-1])
    assert not follower.validate_block(2, block_hash, data)

    early = node(KEYS[1])
    early.wall_clock = lambda: NOW - 60  # the proposer's clock is a minute ahead of ours
    assert not early.validate_block(1, block_hash, data)

    commit = commit_for(follower.chain_id, 1, block_hash, data)
    for cons in (proposer, follower):
        cons.commit_block(1, block_hash, data, commit)
    no_commit = resealed(
        proposer.propose_block(2, 0, _addr(KEYS[0]), commit, [])[1], last_commit=None
    )
    assert not follower.validate_block(2, *no_commit)
    forged = replace(
        commit, signatures=tuple(replace(s, signature=b"\x00" * 64) for s in commit.signatures)
    )
    _, good2 = proposer.propose_block(2, 0, _addr(KEYS[0]), commit, [])
    assert not follower.validate_block(2, *resealed(good2, last_commit=forged))


def test_evidence_is_recorded_for_the_application_and_never_included_twice() -> None:
    proposer, follower = node(KEYS[0]), node(KEYS[1])
    h1, d1 = proposer.propose_block(1, 0, _addr(KEYS[0]), None, [])
    c1 = commit_for(proposer.chain_id, 1, h1, d1)
    for cons in (proposer, follower):
        cons.commit_block(1, h1, d1, c1)

    cheat = KEYS[1]
    votes = [
        Vote(VoteType.PREVOTE, 1, 0, BlockID(bytes([b]) * 32, 1, b"\x00" * 32), _addr(cheat))
        for b in (1, 2)
    ]
    signed = [replace(v, signature=cheat.sign(v.sign_bytes(proposer.chain_id))) for v in votes]
    evidence = DuplicateVoteEvidence.of(*signed)

    h2, d2 = proposer.propose_block(2, 0, _addr(KEYS[0]), c1, [evidence])
    assert decode_block(d2).meta.evidence == (evidence,)
    assert follower.validate_block(2, h2, d2)
    c2 = commit_for(proposer.chain_id, 2, h2, d2)
    for cons in (proposer, follower):
        cons.commit_block(2, h2, d2, c2)
        (record,) = cons.records.misbehaviour_at(2)
        assert (record.validator, record.height, record.included_at) == (_addr(cheat), 1, 2)
        assert cons.records.evidence_included(evidence)

    # A proposer that still holds it leaves it out; a block that carries it again is refused.
    h3, d3 = proposer.propose_block(3, 0, _addr(KEYS[0]), c2, [evidence])
    assert decode_block(d3).meta.evidence == ()
    assert not follower.validate_block(3, *resealed(d3, evidence=(evidence,)))


def test_a_forged_evidence_signature_makes_the_block_invalid() -> None:
    proposer, follower = node(KEYS[0]), node(KEYS[1])
    h1, d1 = proposer.propose_block(1, 0, _addr(KEYS[0]), None, [])
    c1 = commit_for(proposer.chain_id, 1, h1, d1)
    for cons in (proposer, follower):
        cons.commit_block(1, h1, d1, c1)
    votes = [
        Vote(
            VoteType.PREVOTE,
            1,
            0,
            BlockID(bytes([b]) * 32, 1, b"\x00" * 32),
            _addr(KEYS[1]),
            b"\x05" * 64,
        )
        for b in (1, 2)
    ]
    _, d2 = proposer.propose_block(2, 0, _addr(KEYS[0]), c1, [])
    assert not follower.validate_block(
        2, *resealed(d2, evidence=(DuplicateVoteEvidence.of(*votes),))
    )


def test_records_survive_reopening() -> None:
    db = MemoryDB()
    first = ChainConsensus(
        ChainApp(Chain(db, GENESIS)),
        genesis=GENESIS,
        key=KEYS[0],
        beacon=HashChainBeacon(),
        wall_clock=lambda: NOW,
    )
    h1, d1 = first.propose_block(1, 0, _addr(KEYS[0]), None, [])
    first.commit_block(1, h1, d1, commit_for(first.chain_id, 1, h1, d1))
    reopened = ChainConsensus(
        ChainApp(Chain(db, GENESIS)),
        genesis=GENESIS,
        key=KEYS[0],
        beacon=HashChainBeacon(),
        wall_clock=lambda: NOW,
    )
    assert reopened.state == first.state
    assert isinstance(reopened.records, ConsensusRecords)
    assert BlockMeta.from_wire(decode_block(d1).meta.to_wire()) == decode_block(d1).meta
