"""Clean halts for governance upgrades (issue #10), the node side: a block whose modules decide a
halt is committed, then the node stops (`ChainHalted`); restarted with a version the chain's
program requirement does not accept it refuses with the same message; a version that satisfies
it goes on.

The halt is decided by `DecideHalt` (operator/failpoints.py), a tiny module that does at the
end of block H what an approved upgrade_program does: it writes the program requirement with
`put_program_requirement` and returns `BlockOutcome(halt=message)`. It runs in the real block
pipeline of a `Chain`, driven by the devnet producer, by real consensus drivers (one
validator; two, for the precommit a halt cuts off) and by blocksync's decided blocks.
"""

from __future__ import annotations

import os
import signal
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from click.testing import CliRunner

from consensus.driver import (
    Broadcast,
    ConsensusDriver,
    DecidedBlock,
    Effect,
    ScheduleTimeout,
)
from consensus.evidence import EvidencePool
from consensus.keys import Ed25519Key
from consensus.messages import EndHeight, decode_message
from consensus.privval import MemoryPrivValidator
from consensus.types import Vote, VoteType
from consensus.wal import MemoryWal
from cybermiles_node.application.app import (
    DEFAULT_PROGRAM_VERSION,
    AppConfig,
    ChainApp,
    ChainHalted,
    program_must_stop,
)
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.consensus_app import ChainConsensus
from cybermiles_node.application.producer import DevnetProducer, on_the_loop
from cybermiles_node.application.randomness import HashChainBeacon
from cybermiles_node.governance.versions import (
    PROGRAM_NAME,
    RETIRED,
    ProgramRequirement,
    program_requirement,
)
from cybermiles_node.modules import BlockOutcome, Module, ModuleSet
from cybermiles_node.node import chain_profile
from cybermiles_node.operator.cli import EXIT_HALTED, init_home, main
from cybermiles_node.operator.config import ConsensusConfig, HomeLayout, NodeConfig
from cybermiles_node.operator.failpoints import DecideHalt
from cybermiles_node.operator.startup import check_program_version
from cybermiles_node.staking.module import StakingModule
from cybermiles_node.system.context import BlockContext
from evm.db import LevelDB, MemoryDB
from evm.state import StateDB
from genesis import devnet_genesis, load_genesis

KEY = Ed25519Key.from_seed(b"\x07" * 32)
GENESIS = devnet_genesis(validator_pub_keys=[KEY.public_key], genesis_time=1_700_000_000)
NOW = 1_700_000_100
HALT_AT = 2
OLD, REQUIRED, NEWER = "v1.4.2", "v1.5.0", "v2.0.0"
UPGRADE = ProgramRequirement(PROGRAM_NAME, REQUIRED, HALT_AT)
REPO = Path(__file__).resolve().parents[2]


def chain_on(db: object, *extra: Module) -> Chain:
    """The node's chain (staking, its profile) with `extra` modules after staking."""
    return Chain(
        db, GENESIS, modules=ModuleSet([StakingModule(), *extra]), profile=chain_profile(GENESIS)
    )


def producer(app: ChainApp) -> DevnetProducer:
    # Blocks on the event loop: the automine loop runs on trio's MockClock below, whose
    # autojump would move virtual time on while a worker thread builds in real time.
    return DevnetProducer(
        app,
        coinbase=b"\x01" * 20,
        key=KEY,
        beacon=HashChainBeacon(),
        wall_clock=lambda: NOW,
        runner=on_the_loop,
    )


def automine(version: str, requirement: ProgramRequirement = UPGRADE) -> DevnetProducer:
    app = ChainApp(
        chain_on(MemoryDB(), DecideHalt(requirement)), AppConfig(program_version=version)
    )
    return producer(app)


class HaltOnly:
    """A halt decided with no program requirement (no version lifts it, nothing is stored)."""

    name = "halt-only"
    kinds: frozenset[str] = frozenset()
    fee_recipient: bytes | None = None

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        pass

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        return (
            BlockOutcome(halt="stop for maintenance") if ctx.height == HALT_AT else BlockOutcome()
        )


# ---------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("requirement", "head", "version", "stops"),
    [
        (UPGRADE, HALT_AT, OLD, True),
        (UPGRADE, HALT_AT + 5, OLD, True),
        (UPGRADE, HALT_AT - 1, OLD, False),  # not in force yet
        (UPGRADE, HALT_AT, REQUIRED, False),
        (UPGRADE, HALT_AT, "v1.5.1", False),
        (UPGRADE, HALT_AT, NEWER, False),
        (UPGRADE, HALT_AT, "v1.4.99", True),
        (ProgramRequirement("another-program", REQUIRED, HALT_AT), HALT_AT, NEWER, True),
        (ProgramRequirement(RETIRED, "v0.0.0", HALT_AT), HALT_AT, "v99.0.0", True),
    ],
)
def test_program_must_stop(
    requirement: ProgramRequirement, head: int, version: str, stops: bool
) -> None:
    assert program_must_stop(requirement, head, version) is stops


def test_the_default_version_is_the_packages_own() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert DEFAULT_PROGRAM_VERSION == "v" + pyproject["project"]["version"]
    assert AppConfig().program_version == DEFAULT_PROGRAM_VERSION


# ---------------------------------------------------------------------------- automine


def test_the_halting_block_is_committed_then_the_producer_stops() -> None:
    mine = automine(OLD)
    app = mine.app
    assert isinstance(app, ChainApp)
    heard: list[int] = []
    app.on_commit.append(lambda block: heard.append(block.number))
    mine.produce()
    with pytest.raises(ChainHalted) as halted:
        mine.produce()
    assert (halted.value.message, halted.value.height) == ("upgrade needed: cybermiles v1.5.0", 2)
    assert app.chain.head_number == HALT_AT and heard == [1, 2]
    assert program_requirement(app.chain.state_at()) == UPGRADE
    # Written in the block's batch: a chain reopened on the database has it as its head.
    assert chain_on(app.chain.db).head_number == HALT_AT


def test_the_automine_loop_ends_with_the_halt() -> None:
    mine = automine(OLD)
    mine.set_interval(1.0)  # a block every second, empty ones included

    async def run() -> None:
        with trio.fail_after(60):  # virtual seconds: a loop that never stops fails, not hangs
            await mine.run()

    with pytest.raises(ChainHalted):
        trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    assert mine.app.head.block_number == HALT_AT


@pytest.mark.parametrize("version", [REQUIRED, NEWER])
def test_a_node_running_the_required_version_goes_on(version: str) -> None:
    mine = automine(version)
    for height in range(1, HALT_AT + 3):
        assert mine.produce().number == height
    assert program_requirement(mine.app.query()) == UPGRADE


def test_a_retired_program_halts_every_version() -> None:
    mine = automine("v99.0.0", ProgramRequirement(RETIRED, "v0.0.0", HALT_AT))
    mine.produce()
    with pytest.raises(ChainHalted, match=r"^program retired at height 2$"):
        mine.produce()


def test_a_halt_without_a_requirement_stops_this_run_only() -> None:
    app = ChainApp(chain_on(MemoryDB(), HaltOnly()), AppConfig(program_version=NEWER))
    mine = producer(app)
    mine.produce()
    with pytest.raises(ChainHalted, match="^stop for maintenance$"):
        mine.produce()
    check_program_version(app.chain, OLD)  # nothing in state refuses a restart


# ---------------------------------------------------------------------------- restart


def test_a_restart_with_the_old_version_is_refused_with_the_same_message() -> None:
    mine = automine(OLD)
    mine.produce()
    with pytest.raises(ChainHalted) as halted:
        mine.produce()
    chain = chain_on(mine.app.chain.db)  # the node opens its database again
    for version in (OLD, "v1.4.99"):
        with pytest.raises(ChainHalted) as refused:
            check_program_version(chain, version)
        assert (refused.value.message, refused.value.height) == (
            halted.value.message,
            halted.value.height,
        )
    check_program_version(chain, REQUIRED)
    check_program_version(chain, NEWER)
    # ... and the upgraded node goes on from the halting block.
    upgraded = producer(ChainApp(chain, AppConfig(program_version=REQUIRED)))
    assert upgraded.produce().number == HALT_AT + 1


def test_a_fresh_chain_has_no_requirement() -> None:
    chain = chain_on(MemoryDB())
    assert program_requirement(chain.state_at()) is None
    check_program_version(chain, "v0.0.0")


def test_the_cli_refuses_a_halted_home_with_the_halt_status(tmp_path: Path) -> None:
    config = NodeConfig(consensus=ConsensusConfig(engine="automine"))
    layout = init_home(
        tmp_path / "home", chain_id=None, genesis_file=None, accounts=2, config=config
    )
    halt_home_chain(layout)
    start = ["node", "start", "--home", str(layout.home)]
    # A safety net: a node that wrongly starts is stopped (exit 0) instead of running forever.
    watchdog = threading.Timer(30, os.kill, (os.getpid(), signal.SIGTERM))
    watchdog.start()
    try:
        result = CliRunner().invoke(main, start)
    finally:
        watchdog.cancel()
    assert result.exit_code == EXIT_HALTED == 3
    assert result.output == "halted at block 2: upgrade needed: cybermiles v9.0.0\n"
    result = CliRunner().invoke(main, [*start, "--program-version", "9.0"])
    assert result.exit_code == 2
    assert "'9.0' is not of the form vX.Y.Z" in result.output


def halt_home_chain(layout: HomeLayout) -> None:
    """Run the home's chain (automine) until a DecideHalt module halts it at block 2."""
    genesis = load_genesis(layout.genesis_file)
    db = LevelDB(layout.chain_db)
    try:
        chain = Chain(
            db,
            genesis,
            modules=ModuleSet(
                [StakingModule(), DecideHalt(ProgramRequirement(PROGRAM_NAME, "v9.0.0", 2))]
            ),
            profile=chain_profile(genesis),
        )
        app = ChainApp(chain)
        mine = DevnetProducer(app, coinbase=b"\x01" * 20, key=KEY, beacon=HashChainBeacon())
        mine.produce()
        with pytest.raises(ChainHalted):
            mine.produce()
        app.close()
    finally:
        db.close()


# ---------------------------------------------------------------------------- BFT


class OneValidator:
    """One validator of the one-validator chain: its ChainConsensus under a real driver, with
    an in-memory WAL and signer whose storage survives a restart."""

    def __init__(
        self, db: object, version: str, wal: list[bytes], signed: dict[str, object]
    ) -> None:
        app = ChainApp(chain_on(db, DecideHalt(UPGRADE)), AppConfig(program_version=version))
        self.consensus = ChainConsensus(
            app, genesis=GENESIS, key=KEY, beacon=HashChainBeacon(), wall_clock=lambda: NOW
        )
        self.wal = MemoryWal(wal)
        self.signer = MemoryPrivValidator(KEY, signed)
        self.driver = driver(self.consensus, self.wal, self.signer)

    def run_until(self, height: int) -> None:
        """Start, then fire every timeout in order until the head is `height`."""
        pending = [e for e in self.driver.start() if isinstance(e, ScheduleTimeout)]
        while self.consensus.app.chain.head_number < height:
            pending += timeouts(self.driver.handle(pending.pop(0).timeout))


def driver(
    consensus: ChainConsensus, wal: MemoryWal, signer: MemoryPrivValidator | None
) -> ConsensusDriver:
    return ConsensusDriver(
        chain_id=consensus.chain_id,
        state=consensus.state,
        source=consensus,
        wal=wal,
        signer=signer,
        timeouts=GENESIS.timeouts,
        evidence=EvidencePool(),
    )


def timeouts(effects: list[Effect]) -> list[ScheduleTimeout]:
    return [e for e in effects if isinstance(e, ScheduleTimeout)]


def wal_heights(storage: list[bytes]) -> tuple[set[int], set[int]]:
    """(heights of the WAL's EndHeight markers, heights of its other records)."""
    ends, others = set(), set()
    for payload in storage:
        record = decode_message(payload)
        (ends if isinstance(record, EndHeight) else others).add(record.height)
    return ends, others


def test_a_validator_commits_the_halting_block_and_signs_nothing_after_it() -> None:
    db, wal, signed = MemoryDB(), list[bytes](), dict[str, object]()
    old = OneValidator(db, OLD, wal, signed)
    with pytest.raises(ChainHalted) as halted:
        old.run_until(HALT_AT + 1)
    assert str(halted.value) == UPGRADE.message and halted.value.height == HALT_AT
    chain = old.consensus.app.chain
    assert chain.head_number == HALT_AT
    assert old.consensus.records.decision_at(HALT_AT) is not None  # the commit, same batch
    last = old.signer.last_signed
    assert last is not None and last.height == HALT_AT
    ends, others = wal_heights(wal)
    assert max(others) == HALT_AT and HALT_AT not in ends  # the driver stopped at the commit

    # Restarted with the same version: refused before consensus starts.
    reopened = chain_on(db)
    with pytest.raises(ChainHalted, match=f"^{UPGRADE.message}$"):
        check_program_version(reopened, OLD)
    # Restarted upgraded: the driver resumes at H+1 from the same WAL and signer state.
    check_program_version(reopened, REQUIRED)
    new = OneValidator(db, REQUIRED, wal, signed)
    assert new.consensus.state.height == HALT_AT + 1
    new.run_until(HALT_AT + 2)
    assert new.consensus.app.chain.head_number == HALT_AT + 2
    assert HALT_AT in wal_heights(wal)[0]  # the marker the halt left out, written at start


def test_a_node_catching_up_by_blocksync_stops_after_the_halting_block() -> None:
    upgraded = OneValidator(MemoryDB(), NEWER, [], {})
    upgraded.run_until(HALT_AT + 2)  # the rest of the chain upgraded in time and went on
    follower = ChainConsensus(
        ChainApp(chain_on(MemoryDB(), DecideHalt(UPGRADE)), AppConfig(program_version=OLD)),
        genesis=GENESIS,
        key=None,
        beacon=HashChainBeacon(),
        wall_clock=lambda: NOW,
    )
    full_node = driver(follower, MemoryWal(), None)
    full_node.start()
    for height in range(1, HALT_AT):
        found = upgraded.consensus.decided_block(height)
        assert found is not None
        full_node.handle(DecidedBlock(height, *found))
    found = upgraded.consensus.decided_block(HALT_AT)
    assert found is not None
    with pytest.raises(ChainHalted, match=f"^{UPGRADE.message}$"):
        full_node.handle(DecidedBlock(HALT_AT, *found))
    assert follower.app.chain.head_number == HALT_AT
    assert follower.app.chain.header_by_number(
        HALT_AT
    ) == upgraded.consensus.app.chain.header_by_number(HALT_AT)


def test_a_precommit_cut_off_by_the_halt_is_still_offered_to_peers() -> None:
    """Why a halted BFT node stays on the network a little (node.py `_linger`): when its own
    precommit completes the commit, the halt leaves the driver before that precommit is
    broadcast, and a peer may need it. It is among the driver's known messages, which the
    reactor's gossip re-offers to peers at that height."""
    keys = [Ed25519Key.from_seed(bytes([i + 1]) * 32) for i in range(2)]
    genesis = devnet_genesis(
        validator_pub_keys=[k.public_key for k in keys], genesis_time=1_700_000_000
    )
    halt_at_1 = ProgramRequirement(PROGRAM_NAME, REQUIRED, 1)

    def validator(key: Ed25519Key) -> ConsensusDriver:
        chain = Chain(
            MemoryDB(), genesis, modules=ModuleSet([StakingModule(), DecideHalt(halt_at_1)])
        )
        consensus = ChainConsensus(
            ChainApp(chain, AppConfig(program_version=OLD)),
            genesis=genesis,
            key=key,
            beacon=HashChainBeacon(),
            wall_clock=lambda: NOW,
        )
        return driver(consensus, MemoryWal(), MemoryPrivValidator(key))

    first, second = validator(keys[0]), validator(keys[1])
    proposer, other = (
        (first, second) if first.status.proposer == first.signer.address else (second, first)
    )  # type: ignore[union-attr]
    proposed = broadcasts(proposer.start())  # proposal, parts, its prevote
    broadcasts(other.start())
    answered: list[Vote] = []
    for message in proposed:
        answered += [m for m in broadcasts(other.handle(message)) if isinstance(m, Vote)]
    prevote, precommit = sorted(answered, key=lambda v: v.type)
    assert (prevote.type, precommit.type) == (VoteType.PREVOTE, VoteType.PRECOMMIT)
    # The proposer hears the other's precommit before its prevote: its own precommit, signed
    # on that prevote, completes the commit of block 1, and the halt stops it right there.
    proposer.handle(precommit)
    with pytest.raises(ChainHalted):
        proposer.handle(prevote)
    assert source(proposer).app.chain.head_number == 1
    assert source(other).app.chain.head_number == 0  # it still needs the proposer's precommit
    own = [
        m
        for m in proposer.known_messages()
        if isinstance(m, Vote)
        and m.type == VoteType.PRECOMMIT
        and m.validator == proposer.signer.address  # type: ignore[union-attr]
    ]
    assert len(own) == 1
    with pytest.raises(ChainHalted):  # gossip brings it: the other commits block 1 and halts
        other.handle(own[0])
    assert source(other).app.chain.head_number == 1


def broadcasts(effects: list[Effect]) -> list[Any]:
    return [e.message for e in effects if isinstance(e, Broadcast)]


def source(d: ConsensusDriver) -> ChainConsensus:
    assert isinstance(d.source, ChainConsensus)
    return d.source
