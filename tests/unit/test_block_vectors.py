"""Pinned block vectors: a 4-validator BFT chain with staking activity builds and replays to the
exact headers recorded in tests/unit/data/block_vectors.json.

Consensus code must stay bit-identical when it is made faster: every state root, receipt root,
log bloom and validator update of these blocks was recorded from main's code before the
blocksync speed work (issue #13) and may only change with a deliberate change of the rules.
The chain: the devnet genesis of benchmarks/blocksync_replay.py (4 validators, the node's
modules, the VRF beacon), one block per height, with delegations, a withdrawal, a new candidate
(elected as the backup, so it joins consensus and proposes), its deactivation and reactivation,
a compensation-rate change and transfers in some blocks; empty blocks elsewhere (every
validator is above validator_size_threshold, so each settlement moves the size factors and the
election settles to a fixed point). Re-pinned deliberately when the election stopped
re-marking what it credited (issue #13; docs/DECISIONS.md, "Settle to a fixed point").
The maker builds the chain (the proposal path); a fresh node on LevelDB replays it through its
consensus driver as blocksync hands it over (the decided-block path). Both must give the
recorded headers and validator updates.

Regenerate (only for a deliberate rule change): python -m tests.unit.test_block_vectors
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address

from consensus.driver import ConsensusDriver, DecidedBlock
from consensus.evidence import EvidencePool
from consensus.keys import Ed25519Key
from consensus.parts import PartSet
from consensus.types import BlockID, Commit, CommitSig, Validator, Vote, VoteType
from consensus.types import validator_address as consensus_address
from consensus.wal import FileWal
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.consensus_app import ChainConsensus
from cybermiles_node.application.randomness import VrfBeacon
from cybermiles_node.node import chain_modules
from evm.db import LevelDB, MemoryDB
from genesis import DevAccount, dev_accounts, devnet_genesis

VECTORS = Path(__file__).parent / "data" / "block_vectors.json"
BLOCKS = 60
CMT = 10**18
GENESIS_TIME = 1_700_000_000
KEYS = [Ed25519Key.from_seed(bytes([i + 1]) * 32) for i in range(4)]
NEWCOMER_KEY = Ed25519Key.from_seed(b"\x07" * 32)
SIGNERS = {consensus_address(k.public_key): k for k in [*KEYS, NEWCOMER_KEY]}
GENESIS = devnet_genesis(
    validator_pub_keys=[k.public_key for k in KEYS], genesis_time=GENESIS_TIME
)
ACCOUNTS = dev_accounts(8)
OWNER0, OWNER1 = ACCOUNTS[0], ACCOUNTS[1]
DELEGATOR, PAYER, NEWCOMER = ACCOUNTS[4], ACCOUNTS[5], ACCOUNTS[6]


def hex0x(address: bytes) -> str:
    return "0x" + address.hex()


def signed(app: ChainApp, account: DevAccount, fields: dict[str, Any]) -> bytes:
    nonce = app.mempool.pending_nonce(account.address)
    tx = {"chainId": GENESIS.chain_id, "nonce": nonce, **fields}
    return bytes(Account.sign_transaction(tx, account.private_key).raw_transaction)


def staking(account: DevAccount, kind: str, data: dict[str, Any]) -> Callable[[ChainApp], bytes]:
    body = json.dumps({"type": kind, "data": data}).encode()
    fields = {"to": b"", "value": 0, "gas": 0, "gasPrice": 0, "data": body}
    return lambda app: signed(app, account, fields)


def transfer(account: DevAccount, to: bytes, value: int) -> Callable[[ChainApp], bytes]:
    fields = {"to": to_checksum_address(to), "value": value, "gas": 21_000, "gasPrice": 2 * 10**9}
    return lambda app: signed(app, account, fields)


def activity() -> dict[int, list[Callable[[ChainApp], bytes]]]:
    """The transactions of each height that has any."""
    to0 = {"validator_address": hex0x(OWNER0.address)}
    to_newcomer = {"validator_address": hex0x(NEWCOMER.address)}
    declare = {
        "pub_key": base64.b64encode(NEWCOMER_KEY.public_key).decode(),
        "max_amount": str(20_000 * CMT),
        "comp_rate": "1/5",
    }
    return {
        3: [staking(DELEGATOR, "stake/delegate", {**to0, "amount": str(2_000 * CMT)})],
        5: [transfer(PAYER, b"\x42" * 20, 7), transfer(DELEGATOR, b"\x43" * 20, 1)],
        8: [staking(NEWCOMER, "stake/declareCandidacy", declare)],
        12: [staking(PAYER, "stake/delegate", {**to_newcomer, "amount": str(3_000 * CMT)})],
        15: [staking(DELEGATOR, "stake/withdraw", {**to0, "amount": str(500 * CMT)})],
        20: [
            staking(
                OWNER0,
                "stake/setCompRate",
                {"delegator_address": hex0x(DELEGATOR.address), "comp_rate": "1/4"},
            )
        ],
        26: [staking(NEWCOMER, "stake/deactivateCandidacy", {})],
        33: [staking(NEWCOMER, "stake/activateCandidacy", {})],
        40: [
            transfer(PAYER, b"\x44" * 20, 3),
            staking(DELEGATOR, "stake/delegate", {**to0, "amount": str(1_000 * CMT)}),
            staking(OWNER1, "stake/delegate", {**to0, "amount": str(1_500 * CMT)}),
        ],
        47: [staking(PAYER, "stake/withdraw", {**to_newcomer, "amount": str(3_000 * CMT)})],
    }


def consensus_node(db: object, now: float) -> ChainConsensus:
    chain = Chain(db, GENESIS, modules=chain_modules())
    return ChainConsensus(
        ChainApp(chain), genesis=GENESIS, key=None, beacon=VrfBeacon(), wall_clock=lambda: now
    )


def signed_commit(node: ChainConsensus, height: int, block_hash: bytes, data: bytes) -> Commit:
    """Every validator of the height precommits the block."""
    parts = PartSet.from_data(data)
    block_id = BlockID(block_hash, parts.total, parts.root)
    sigs = []
    for address in sorted(node.state.validators.addresses):
        vote = Vote(VoteType.PRECOMMIT, height, 0, block_id, address)
        sigs.append(CommitSig(address, SIGNERS[address].sign(vote.sign_bytes(node.chain_id))))
    return Commit(height, 0, block_id, tuple(sigs))


def make_chain() -> tuple[list[DecidedBlock], dict[int, list[Validator]]]:
    """The decided blocks and each height's validator updates, from the proposal path."""
    maker = consensus_node(MemoryDB(), GENESIS_TIME + 10**6)
    txs = activity()
    decided, updates = [], {}
    last_commit: Commit | None = None
    for height in range(1, BLOCKS + 1):
        for make in txs.get(height, []):
            maker.app.check_tx(make(maker.app))
        proposer = maker.state.validators.proposer_address
        maker.key = SIGNERS[proposer]
        maker.wall_clock = lambda h=height: GENESIS_TIME + 5 * h  # type: ignore[misc]
        block_hash, data = maker.propose_block(height, 0, proposer, last_commit, [])
        last_commit = signed_commit(maker, height, block_hash, data)
        updates[height] = list(maker.commit_block(height, block_hash, data, last_commit))
        decided.append(DecidedBlock(height, block_hash, data, last_commit))
        included = len(maker.app.chain.transactions(height))
        assert included == len(txs.get(height, [])), (height, included)
    return decided, updates


def record(chain: Chain, updates: dict[int, list[Validator]]) -> list[dict[str, Any]]:
    vectors = []
    for height in range(1, BLOCKS + 1):
        header = chain.header_by_number(height)
        assert header is not None
        vectors.append(
            {
                "height": height,
                "hash": bytes(header.hash).hex(),
                "state_root": bytes(header.state_root).hex(),
                "receipt_root": bytes(header.receipt_root).hex(),
                "updates": [[u.pub_key.hex(), u.power] for u in updates[height]],
            }
        )
    return vectors


def replay(decided: list[DecidedBlock], work: Path) -> list[dict[str, Any]]:
    """A fresh node on LevelDB commits the decided blocks through its consensus driver; the
    vectors of what it committed."""
    db = LevelDB(work / "chain")
    node = consensus_node(db, GENESIS_TIME + 10**6)
    driver = ConsensusDriver(
        chain_id=node.chain_id,
        state=node.state,
        source=node,
        wal=FileWal(work / "cs.wal"),
        signer=None,
        timeouts=GENESIS.timeouts,
        evidence=EvidencePool(),
    )
    driver.start()
    updates: dict[int, list[Validator]] = {}
    commit = node.commit_block

    def recording_commit(height: int, block_hash: bytes, data: bytes, c: Commit) -> Any:
        updates[height] = list(commit(height, block_hash, data, c))
        return updates[height]

    node.commit_block = recording_commit  # type: ignore[method-assign]
    try:
        for block in decided:
            driver.handle(block)
        assert node.committed_height() == len(decided)
        return record(node.app.chain, updates)
    finally:
        db.close()


def load() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS.read_text())
    return vectors


def test_the_built_chain_has_the_pinned_headers_and_updates() -> None:
    decided, updates = make_chain()
    expected = load()
    assert [v["height"] for v in expected] == list(range(1, BLOCKS + 1))
    assert any(v["updates"] for v in expected)  # the newcomer joins and leaves consensus
    got = [(b.height, b.block_hash.hex()) for b in decided]
    assert got == [(v["height"], v["hash"]) for v in expected]
    assert {h: [[u.pub_key.hex(), u.power] for u in us] for h, us in updates.items()} == {
        v["height"]: v["updates"] for v in expected
    }


def test_a_replayed_chain_commits_the_pinned_headers_and_updates(tmp_path: Path) -> None:
    decided, _ = make_chain()
    assert replay(decided, tmp_path) == load()


def write_vectors() -> None:
    decided, updates = make_chain()
    with tempfile.TemporaryDirectory(prefix="block-vectors-") as work:
        vectors = replay(decided, Path(work))
    assert [v["hash"] for v in vectors] == [b.block_hash.hex() for b in decided]
    assert [v["updates"] for v in vectors] == [
        [[u.pub_key.hex(), u.power] for u in updates[h]] for h in range(1, BLOCKS + 1)
    ]
    VECTORS.parent.mkdir(exist_ok=True)
    VECTORS.write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {len(vectors)} block vectors to {VECTORS}")


if __name__ == "__main__":
    write_vectors()
    sys.exit(0)
