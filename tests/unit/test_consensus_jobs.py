"""Block work off the event loop (consensus/driver.py `RunJob`, consensus/host.py): with a staged
source the driver never builds, validates or commits inside `handle`; it emits jobs whose
answers come back through their finish, stale answers are dropped by the core, and the host
runs jobs in order and hands the driver no input while a commit is in flight; with transactions
waiting it ends timeout_commit early (at once with every precommit in, else after a grace)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import trio
import trio.testing

from consensus.core import Step, TimeoutInfo
from consensus.driver import (
    Broadcast,
    Committed,
    ConsensusDriver,
    DecidedBlock,
    Effect,
    Finish,
    RunJob,
    ScheduleTimeout,
    Work,
)
from consensus.host import ConsensusHost, EarlyStart, JobFinish, on_the_loop
from consensus.types import Commit, DuplicateVoteEvidence, Proposal, Validator, Vote, VoteType
from tests.unit.test_consensus_driver import (
    ADDR,
    DEFAULT_TIMEOUTS,
    RecordingWal,
    Source,
    _commit_for,
    block,
    make,
    non_proposer,
    proposal_messages,
    sign_vote,
)


class StagedSource(Source):
    """`Source` in halves; `log` says on which side each half ran."""

    def _stage(self, name: str, whole: Callable[[], Any]) -> Work[Any]:
        self.log.append(("stage", name))

        def work() -> Finish[Any]:
            self.log.append(("work", name))
            answer = whole()
            return lambda: answer

        return work

    def stage_proposal(
        self,
        height: int,
        round: int,
        proposer: bytes,
        last_commit: Commit | None,
        evidence: Sequence[DuplicateVoteEvidence],
    ) -> Work[tuple[bytes, bytes]]:
        return self._stage(
            "build", lambda: self.propose_block(height, round, proposer, last_commit, evidence)
        )

    def stage_validation(self, height: int, block_hash: bytes, data: bytes) -> Work[bool]:
        return self._stage("validate", lambda: self.validate_block(height, block_hash, data))

    def stage_commit(
        self, height: int, block_hash: bytes, data: bytes, commit: Commit
    ) -> Work[Sequence[Validator]]:
        return self._stage("commit", lambda: self.commit_block(height, block_hash, data, commit))

    light = False  # what is_light says of every block

    def is_light(self, data: bytes) -> bool:
        return self.light


def staged(me: int | None, n: int = 4, source: StagedSource | None = None) -> ConsensusDriver:
    d = make(me, n, source=source or StagedSource())
    d.staged = d.source  # type: ignore[assignment]
    return d


def jobs(effects: list[Effect]) -> list[RunJob]:
    return [e for e in effects if isinstance(e, RunJob)]


def run_jobs(effects: list[Effect]) -> list[Effect]:
    """Run every job in `effects` (and the jobs their finishes emit), in order."""
    out = [e for e in effects if not isinstance(e, RunJob)]
    for job in jobs(effects):
        out += run_jobs(job.work()())
    return out


def test_a_chain_progresses_with_every_block_job_run_outside_handle() -> None:
    source = StagedSource()
    d = staged(0, 1, source)
    timers = [e.timeout for e in run_jobs(d.start()) if isinstance(e, ScheduleTimeout)]
    while d.height < 4:
        timers.sort(key=lambda t: t.duration_ms)
        before = list(source.log)
        effects = d.handle(timers.pop(0))
        assert not [e for e in source.log[len(before) :] if e[0] == "work"]  # none in handle
        timers += [e.timeout for e in run_jobs(effects) if isinstance(e, ScheduleTimeout)]
    assert [h for h, _ in source.committed] == [1, 2, 3]
    # Every half ran in its place: staged in handle, the work only when the job ran.
    builds = [entry for entry in source.log if entry[1] == "build"]
    assert builds[:2] == [("stage", "build"), ("work", "build")]


def test_a_validation_answer_arrives_through_the_job_only() -> None:
    me = non_proposer()
    source = StagedSource()
    d = staged(me, source=source)
    d.start()
    effects: list[Effect] = []
    for m in proposal_messages(d, 0, "good"):
        effects += d.handle(m)
    [job] = jobs(effects)
    assert not job.commit and ("work", "validate") not in source.log
    assert not [e for e in effects if isinstance(e, Broadcast)]  # no prevote without a verdict
    prevotes = [e for e in job.work()() if isinstance(e, Broadcast)]
    assert len(prevotes) == 1 and prevotes[0].message.block_id is not None


def test_a_block_built_after_its_round_moved_on_is_not_proposed() -> None:
    source = StagedSource()
    d = staged(0, 1, source)
    effects = d.start()
    [job] = jobs(effects)  # round 0: we propose
    propose_timeout = TimeoutInfo(d.height, 0, Step.PROPOSE, 0)
    d.handle(propose_timeout)  # the round goes on while the block is being built
    late = job.work()()
    assert not [e for e in late if isinstance(e, Broadcast) and isinstance(e.message, Proposal)]


def test_a_commit_job_moves_to_the_next_height_only_when_finished() -> None:
    wal = RecordingWal()
    source = StagedSource(wal.log)
    d = make(None, source=source, wal=wal)
    d.staged = source  # type: ignore[assignment]
    d.start()
    block_id, data, _ = block("decided")
    commit = _commit_for(block_id, [0, 1, 2])
    [job] = jobs(d.handle(DecidedBlock(1, block_id.hash, data, commit)))
    assert job.commit and d.height == 1 and source.committed == []
    finish = job.work()
    assert source.committed == [(1, block_id.hash)] and d.height == 1
    assert ("end_height", 1) not in wal.log  # the marker follows the finish
    assert Committed(1, block_id.hash, commit) in finish()
    assert d.height == 2
    assert wal.log.index(("commit", 1)) < wal.log.index(("end_height", 1))


def test_replay_runs_block_work_inline() -> None:
    """`start` replays before the host serves anything: verdicts are needed at once."""
    storage: list[bytes] = []
    proposer = next(i for i in range(4) if i != non_proposer() and _proposes(i))
    first = staged(proposer)
    first.wal = RecordingWal(storage)
    [job] = jobs(first.start())  # live: the build is a job
    run_jobs([job])  # the proposal is signed and logged
    second = staged(proposer)
    second.wal = RecordingWal(storage)
    assert not jobs(second.start())
    assert list(second.state.verdicts.values()) == [True]  # validated inline during replay


def _proposes(i: int) -> bool:
    return jobs(staged(i).start()) != []


# -- the host ------------------------------------------------------------------------------------
class Gossip:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def broadcast(self, message: Any) -> None:
        self.sent.append(message)


def test_the_host_holds_inputs_while_a_commit_is_in_flight() -> None:
    async def main() -> None:
        release = trio.Event()
        source = StagedSource()
        d = staged(0, 1, source)
        host = ConsensusHost(d, gossip=Gossip())

        async def runner(work: Callable[[], JobFinish]) -> JobFinish:
            finish = work()
            if source.committed and d.height == 1:
                await release.wait()
            return finish

        host._run_job = runner
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            while not source.committed:
                await trio.sleep(0.01)
            host.submit(TimeoutInfo(1, 0, Step.PROPOSE, 0))  # an input meanwhile
            await trio.sleep(1)
            assert host._send.statistics().current_buffer_used == 1  # still waiting
            assert d.height == 1
            release.set()
            while d.height < 3:
                await trio.sleep(0.01)
            assert host._send.statistics().current_buffer_used == 0
            nursery.cancel_scope.cancel()
        assert [h for h, _ in source.committed][:2] == [1, 2]

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.parametrize("threads", [False, True])
def test_the_host_runs_a_single_validator_chain(threads: bool) -> None:
    async def main() -> None:
        source = StagedSource()
        d = staged(0, 1, source)
        host = ConsensusHost(d, gossip=Gossip(), runner=None if threads else on_the_loop)
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            with trio.fail_after(30):
                while d.height < 4:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        assert [h for h, _ in source.committed][:3] == [1, 2, 3]

    if threads:
        trio.run(main)
    else:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.parametrize("light", [False, True])
def test_light_jobs_run_on_the_loop_and_the_others_through_the_runner(light: bool) -> None:
    async def main() -> list[str]:
        source = StagedSource()
        source.light = light
        d = staged(0, 1, source)
        through_runner: list[str] = []

        async def runner(work: Callable[[], JobFinish]) -> JobFinish:
            through_runner.append(source.log[-1][1])  # the stage just staged
            return work()

        host = ConsensusHost(d, gossip=Gossip(), runner=runner)
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            while d.height < 3:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        assert [h for h, _ in source.committed][:2] == [1, 2]
        return through_runner

    through_runner = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    # Building never asks is_light (the block does not exist yet); validation and commit do.
    if light:
        assert set(through_runner) == {"build"}
    else:
        assert {"build", "commit"} <= set(through_runner)


# -- ending timeout_commit early (consensus/host.py `EarlyStart`) -------------------------------
GRACE_S = 0.1
POLL_S = 0.001  # the test sees the commit up to one poll late


def _next_height_starts_after(precommitters: list[int], work_waiting: bool) -> float:
    """Virtual seconds from block 1's commit to round 0 of height 2, for a follower of four
    validators that saw block 1 decided by the precommits of `precommitters`."""

    async def main() -> float:
        source = StagedSource()
        d = staged(None, 4, source)
        early = EarlyStart(work_waiting=lambda: work_waiting, grace_s=GRACE_S)
        host = ConsensusHost(d, gossip=Gossip(), runner=on_the_loop, early_start=early)
        block_id = block("a", 1)[0]
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            for message in proposal_messages(d, 0, "a"):
                host.submit(message)
            for i in precommitters:
                host.submit(sign_vote(i, Vote(VoteType.PRECOMMIT, 1, 0, block_id, ADDR[i])))
            while not source.committed:
                await trio.sleep(POLL_S)
            committed_at = trio.current_time()
            while d.height < 2 or d.state.step == Step.NEW_HEIGHT:
                await trio.sleep(POLL_S)
            started_at = trio.current_time()
            nursery.cancel_scope.cancel()
        return started_at - committed_at

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_with_every_precommit_in_the_next_height_starts_at_once() -> None:
    assert _next_height_starts_after([0, 1, 2, 3], work_waiting=True) < GRACE_S / 2


def test_a_missing_precommit_is_waited_for_the_grace_only() -> None:
    # A validator still executing the block when +2/3 precommits reach it commits without
    # voting: its precommit never comes, and timeout_commit (1 s) would idle the network.
    waited = _next_height_starts_after([0, 1, 2], work_waiting=True)
    assert GRACE_S - POLL_S <= waited < GRACE_S * 1.5


def test_an_idle_chain_waits_timeout_commit() -> None:
    commit_s = DEFAULT_TIMEOUTS.commit_ms / 1000
    assert _next_height_starts_after([0, 1, 2, 3], work_waiting=False) >= commit_s - POLL_S
    assert _next_height_starts_after([0, 1, 2], work_waiting=False) >= commit_s - POLL_S
