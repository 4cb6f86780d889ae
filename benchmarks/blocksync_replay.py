"""Blocksync's per-block CPU in process: a fresh node commits decided empty blocks.

A maker (4 validators, the node's modules, the VRF beacon, in memory) builds N empty blocks,
each with a commit signed by all four validators. A fresh node on LevelDB in a temp dir (the
node's `open_chain` settings, a FileWal) then gets them exactly as blocksync hands them over:
`DecidedBlock` inputs to its `ConsensusDriver` (commit signatures checked, block executed,
roots checked, committed with its records). Prints blocks/s and CPU ms per block (process
utime+stime over the replay); `--profile` prints cProfile's top entries of the replay.

    python benchmarks/blocksync_replay.py --blocks 500 [--profile] [--transfers-every K]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
from pathlib import Path

from consensus.driver import ConsensusDriver, DecidedBlock
from consensus.evidence import EvidencePool
from consensus.keys import Ed25519Key
from consensus.parts import PartSet
from consensus.types import BlockID, Commit, CommitSig, Vote, VoteType, validator_address
from consensus.wal import FileWal
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.consensus_app import ChainConsensus
from cybermiles_node.application.randomness import VrfBeacon
from cybermiles_node.node import chain_modules
from evm.db import LevelDB, MemoryDB
from genesis import Genesis, devnet_genesis

KEYS = [Ed25519Key.from_seed(bytes([i + 1]) * 32) for i in range(4)]
BY_ADDRESS = {validator_address(k.public_key): k for k in KEYS}
GENESIS_TIME = 1_700_000_000


def consensus_node(
    db: object, genesis: Genesis, key: Ed25519Key | None, now: float
) -> ChainConsensus:
    chain = Chain(db, genesis, modules=chain_modules())
    return ChainConsensus(
        ChainApp(chain), genesis=genesis, key=key, beacon=VrfBeacon(), wall_clock=lambda: now
    )


def signed_commit(chain_id: str, height: int, block_hash: bytes, data: bytes) -> Commit:
    parts = PartSet.from_data(data)
    block_id = BlockID(block_hash, parts.total, parts.root)
    sigs = []
    for address in sorted(BY_ADDRESS):
        vote = Vote(VoteType.PRECOMMIT, height, 0, block_id, address)
        sigs.append(CommitSig(address, BY_ADDRESS[address].sign(vote.sign_bytes(chain_id))))
    return Commit(height, 0, block_id, tuple(sigs))


def make_chain(genesis: Genesis, blocks: int) -> list[DecidedBlock]:
    maker = consensus_node(MemoryDB(), genesis, None, GENESIS_TIME + 10**6)
    decided = []
    last_commit: Commit | None = None
    for height in range(1, blocks + 1):
        proposer = maker.state.validators.proposer_address
        maker.key = BY_ADDRESS[proposer]
        maker.wall_clock = lambda h=height: GENESIS_TIME + h  # type: ignore[misc]
        block_hash, data = maker.propose_block(height, 0, proposer, last_commit, [])
        last_commit = signed_commit(maker.chain_id, height, block_hash, data)
        maker.commit_block(height, block_hash, data, last_commit)
        decided.append(DecidedBlock(height, block_hash, data, last_commit))
    return decided


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def replay(genesis: Genesis, decided: list[DecidedBlock], work: Path, profile: bool) -> None:
    db = LevelDB(work / "chain")
    node = consensus_node(db, genesis, None, GENESIS_TIME + 10**6)
    driver = ConsensusDriver(
        chain_id=node.chain_id,
        state=node.state,
        source=node,
        wal=FileWal(work / "cs.wal"),
        signer=None,
        timeouts=genesis.timeouts,
        evidence=EvidencePool(),
    )
    driver.start()
    profiler = cProfile.Profile() if profile else None
    wall0, cpu0 = time.perf_counter(), cpu()
    if profiler is not None:
        profiler.enable()
    for block in decided:
        driver.handle(block)
    if profiler is not None:
        profiler.disable()
    wall, used = time.perf_counter() - wall0, cpu() - cpu0
    assert node.committed_height() == len(decided), node.committed_height()
    n = len(decided)
    print(
        f"replayed {n} blocks in {wall:.2f}s = {n / wall:,.0f} blocks/s; "
        f"CPU {used:.2f}s = {1000 * used / n:.2f} ms per block"
    )
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top entries")
    args = parser.parse_args()
    genesis = devnet_genesis(
        validator_pub_keys=[k.public_key for k in KEYS], genesis_time=GENESIS_TIME
    )
    started = time.perf_counter()
    decided = make_chain(genesis, args.blocks)
    print(f"made {len(decided)} empty blocks in {time.perf_counter() - started:.2f}s")
    with tempfile.TemporaryDirectory(prefix="cmt-blocksync-") as tmp:
        replay(genesis, decided, Path(tmp), args.profile)


if __name__ == "__main__":
    main()
