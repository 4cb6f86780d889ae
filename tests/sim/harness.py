"""Deterministic simulation of a validator network: real drivers, fake network, virtual clock.

Every node runs a real `ConsensusDriver` with a `MemoryWal` and a `MemoryPrivValidator` whose
backing list/dict play the node's disk, and an in-memory `SimSource` application (blocks are
`canonical([height, round, proposer, tag])`, hash = sha256, tag b"bad" marks blocks every honest
validator rejects). Nodes talk through a simulated network driven by a virtual clock: a heap of
(time, seq, event), all randomness from one `random.Random(seed)`, so a seed *is* a schedule and
replaying it reproduces a failure exactly.

Faults, all drawn from the seed by `Schedule.random`: message loss, delay and therefore
reordering, duplication, partitions that heal, crashes with restarts (between events, and in
the middle of handling one by failing the N-th WAL write: e.g. after the signer persisted a
signature but before the WAL got it, or after a block was committed but before EndHeight),
and byzantine validators: equivocating (a second, conflicting vote signed with the raw key,
sent to half the peers), silent, or proposing invalid blocks.

Liveness needs gossip, since messages get lost: every `gossip_ms` each node re-sends its
`known_messages()` to peers at its height (skipping what a peer already received from it, as
the real reactor does), and a node behind the others is handed `DecidedBlock`s of the heights
it lacks every `catchup_ms` (blocksync).

Invariants, checked as events happen: agreement (no two nodes commit different blocks at one
height), validity (every committed block is well-formed and not bad), no evidence against an
honest validator, no honest message refused by a peer; and liveness: once all faults are over
(`heal_ms`), every honest node reaches `target_height` within `liveness_ms` of virtual time.
A violation raises `SimFailure` carrying the seed.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack

from consensus.core import HeightState, TimeoutInfo, Timeouts
from consensus.driver import (
    Broadcast,
    Committed,
    ConsensusDriver,
    DecidedBlock,
    Effect,
    ScheduleTimeout,
)
from consensus.errors import ConsensusError
from consensus.evidence import EvidencePool
from consensus.keys import Ed25519Key
from consensus.parts import BlockPart, PartSet
from consensus.privval import MemoryPrivValidator
from consensus.types import (
    BlockID,
    Commit,
    DuplicateVoteEvidence,
    Proposal,
    Validator,
    Vote,
    canonical,
)
from consensus.validators import ValidatorSet
from consensus.wal import MemoryWal

CHAIN_ID = "cybermiles-sim"
MAX_NODES = 8

SIM_TIMEOUTS = Timeouts(
    propose_ms=120,
    propose_delta_ms=40,
    prevote_ms=60,
    prevote_delta_ms=30,
    precommit_ms=60,
    precommit_delta_ms=30,
    commit_ms=10,
)


class SimFailure(AssertionError):
    """An invariant was violated; the message names the seed and the broken invariant."""


class _Crash(Exception):
    """Raised inside a node (by its WAL) to model the process dying mid-operation."""


# -- keys ---------------------------------------------------------------------------------------
_SIGNATURES: dict[tuple[bytes, bytes], bytes] = {}


@dataclass(frozen=True)
class CachedKey(Ed25519Key):
    """Ed25519 signing is deterministic, so a signature can be memoised: identical results,
    and thousands of schedules signing the same votes stay fast."""

    def sign(self, message: bytes) -> bytes:
        key = (self.private_key, message)
        sig = _SIGNATURES.get(key)
        if sig is None:
            if len(_SIGNATURES) > 200_000:
                _SIGNATURES.clear()
            sig = _SIGNATURES[key] = super().sign(message)
        return sig


def _make_key(i: int) -> CachedKey:
    base = Ed25519Key.from_seed(hashlib.sha256(b"cybermiles-sim-validator-%d" % i).digest())
    return CachedKey(base.private_key, base.public_key)


KEYS: list[CachedKey] = [_make_key(i) for i in range(MAX_NODES)]


# -- blocks -------------------------------------------------------------------------------------
def block_data(height: int, round: int, proposer: bytes, bad: bool) -> bytes:
    return canonical([height, round, proposer, b"bad" if bad else b"ok"])


def block_is_valid(height: int, block_hash: bytes, data: bytes) -> bool:
    if hashlib.sha256(data).digest() != block_hash:
        return False
    try:
        fields = msgpack.unpackb(data, raw=False)
    except Exception:
        return False
    return (
        isinstance(fields, list) and len(fields) == 4 and fields[0] == height and fields[3] == b"ok"
    )


# -- schedules ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Partition:
    start_ms: float
    end_ms: float
    groups: tuple[frozenset[int], ...]  # nodes in different groups cannot talk


@dataclass(frozen=True)
class Crash:
    node: int
    at_ms: float
    down_ms: float


@dataclass(frozen=True)
class Schedule:
    """Everything about one run that is not the seed's random stream of delays and losses."""

    n: int
    powers: tuple[int, ...]
    target_height: int = 3
    delay_ms: tuple[float, float] = (1.0, 15.0)
    loss: float = 0.0  # during the fault window
    residual_loss: float = 0.0  # forever
    dup: float = 0.0
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    wal_crash: tuple[tuple[int, int], ...] = ()  # (node, fail the k-th WAL write)
    byzantine: tuple[tuple[int, str], ...] = ()  # (node, "equivocate" | "silent" | "bad")
    full_nodes: tuple[int, ...] = ()  # nodes not in the genesis set (join by update)
    updates: tuple[tuple[int, int, int], ...] = ()  # (at commit of height, node, new power)
    skip_timeout_commit: bool = False
    fault_end_ms: float = 0.0
    liveness_ms: float = 30_000.0
    gossip_ms: float = 150.0
    catchup_ms: float = 400.0

    @property
    def heal_ms(self) -> float:
        ends = [self.fault_end_ms]
        ends += [p.end_ms for p in self.partitions]
        ends += [c.at_ms + c.down_ms for c in self.crashes]
        return max(ends)

    def kind_of(self, node: int) -> str | None:
        for i, kind in self.byzantine:
            if i == node:
                return kind
        return None

    def describe(self) -> str:
        parts = [f"n={self.n}", f"powers={list(self.powers)}", f"target={self.target_height}"]
        if self.loss or self.residual_loss:
            parts.append(f"loss={self.loss:.2f}/{self.residual_loss:.2f}")
        if self.dup:
            parts.append(f"dup={self.dup:.2f}")
        if self.partitions:
            parts.append(
                "partitions="
                + ";".join(
                    f"[{p.start_ms:.0f},{p.end_ms:.0f})"
                    + "|".join("".join(map(str, sorted(g))) for g in p.groups)
                    for p in self.partitions
                )
            )
        if self.crashes:
            parts.append(
                "crashes="
                + ";".join(f"{c.node}@{c.at_ms:.0f}+{c.down_ms:.0f}" for c in self.crashes)
            )
        if self.wal_crash:
            parts.append(f"wal_crash={list(self.wal_crash)}")
        if self.byzantine:
            parts.append(f"byzantine={list(self.byzantine)}")
        if self.updates:
            parts.append(f"updates={list(self.updates)} full={list(self.full_nodes)}")
        return " ".join(parts)


# -- the application ----------------------------------------------------------------------------
class SimSource:
    """The in-memory application of one node; `store` is its disk (survives crashes)."""

    def __init__(self, sim: Simulation, node: SimNode) -> None:
        self.sim = sim
        self.node = node

    def propose_block(
        self,
        height: int,
        round: int,
        proposer: bytes,
        last_commit: Commit | None,
        evidence: Sequence[DuplicateVoteEvidence],
    ) -> tuple[bytes, bytes]:
        bad = self.sim.schedule.kind_of(self.node.index) == "bad"
        data = block_data(height, round, proposer, bad)
        return hashlib.sha256(data).digest(), data

    def validate_block(self, height: int, block_hash: bytes, data: bytes) -> bool:
        return block_is_valid(height, block_hash, data)

    def commit_block(
        self, height: int, block_hash: bytes, data: bytes, commit: Commit
    ) -> Sequence[Validator]:
        node = self.node
        if height != node.committed_height + 1:
            raise SimFailure(f"node {node.index} committed height {height} out of order")
        self.sim.check_commit(node, height, block_hash, data)
        updates = self.sim.updates_at(height)
        node.store[height] = (block_hash, data, commit)
        node.heights[height + 1] = node.heights[height].next(commit, updates)
        return updates


# -- a node ---------------------------------------------------------------------------------------
class FaultyWal(MemoryWal):
    """A MemoryWal whose k-th write (append or end_height) kills the node before writing."""

    def __init__(self, storage: list[bytes], fail_at: int | None) -> None:
        super().__init__(storage)
        self.fail_at = fail_at
        self.writes = 0

    def _write(self, payload: bytes, sync: bool) -> None:
        self.writes += 1
        if self.fail_at is not None and self.writes == self.fail_at:
            self.fail_at = None
            raise _Crash()
        super()._write(payload, sync)


@dataclass(eq=False)
class SimNode:
    index: int
    key: CachedKey
    wal_disk: list[bytes] = field(default_factory=list)
    privval_disk: dict[str, Any] = field(default_factory=dict)
    store: dict[int, tuple[bytes, bytes, Commit]] = field(default_factory=dict)
    heights: dict[int, HeightState] = field(default_factory=dict)  # persisted HeightStates
    driver: ConsensusDriver | None = None
    incarnation: int = 0
    wal_fail_at: int | None = None

    @property
    def address(self) -> bytes:
        return Validator(self.key.public_key, 1).address

    @property
    def committed_height(self) -> int:
        return len(self.store)

    @property
    def alive(self) -> bool:
        return self.driver is not None


# -- the simulation -------------------------------------------------------------------------------
Message = Proposal | BlockPart | Vote | DuplicateVoteEvidence | DecidedBlock


class Simulation:
    def __init__(
        self,
        seed: int,
        schedule: Schedule,
        *,
        validator_set_type: type[ValidatorSet] = ValidatorSet,
        tracing: bool = False,
    ) -> None:
        self.seed = seed
        self.schedule = schedule
        self.rng = random.Random(seed ^ 0x5EED)
        self.tracing = tracing
        self.now = 0.0
        self._seq = 0
        self._queue: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._committed_since_check = False
        self.decided: dict[int, bytes] = {}  # height -> block hash committed by anyone
        self.events = 0
        self.trace = hashlib.sha256()
        genesis_nodes = [i for i in range(schedule.n) if i not in schedule.full_nodes]
        genesis = [Validator(KEYS[i].public_key, schedule.powers[i]) for i in genesis_nodes]
        vs = validator_set_type(genesis)
        self.genesis = HeightState(1, vs, vs.increment(1), None)
        self.nodes = [SimNode(i, KEYS[i]) for i in range(schedule.n)]
        self.byzantine_addresses = {self.nodes[i].address for i, _ in schedule.byzantine}
        self._delivered: dict[tuple[int, int], set[Any]] = {}
        for node in self.nodes:
            node.heights[1] = self.genesis
            node.wal_fail_at = dict(schedule.wal_crash).get(node.index)

    # -- running ------------------------------------------------------------------------------
    def run(self) -> None:
        s = self.schedule
        for node in self.nodes:
            if s.kind_of(node.index) != "silent":
                self._push(self.rng.uniform(0, 20), "start", node.index, 0)
            self._push(self.rng.uniform(0, s.gossip_ms), "gossip", node.index)
        self._push(s.catchup_ms, "catchup")
        for c in s.crashes:
            self._push(c.at_ms, "crash", c.node, c.down_ms)
        deadline = s.heal_ms + s.liveness_ms
        try:
            while self._queue:
                at, _, kind, args = heapq.heappop(self._queue)
                if at > deadline:
                    break
                self.now = at
                self.events += 1
                getattr(self, "_ev_" + kind)(*args)
                if self._committed_since_check:
                    self._committed_since_check = False
                    if self._done():
                        return
        except SimFailure as exc:
            raise self._failure(str(exc)) from None
        raise self._failure(
            f"liveness: honest nodes at heights {self._honest_heights()} after "
            f"{self.now:.0f} ms of virtual time (healed at {s.heal_ms:.0f} ms, "
            f"target {s.target_height})"
        )

    def _done(self) -> bool:
        return all(h > self.schedule.target_height for h in self._honest_heights().values())

    def _honest_heights(self) -> dict[int, int]:
        return {
            n.index: n.committed_height
            for n in self.nodes
            if self.schedule.kind_of(n.index) is None
        }

    def _failure(self, what: str) -> SimFailure:
        return SimFailure(
            f"seed {self.seed}: {what}\n  schedule: {self.schedule.describe()}\n"
            f"  at t={self.now:.1f} ms after {self.events} events"
        )

    def _push(self, at: float, kind: str, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, args))

    # -- events ---------------------------------------------------------------------------------
    def _ev_start(self, index: int, incarnation: int) -> None:
        node = self.nodes[index]
        if node.alive or node.incarnation != incarnation:
            return  # a stale restart: the node was restarted and killed again since
        height = node.committed_height + 1
        signer = MemoryPrivValidator(node.key, node.privval_disk)
        node.driver = ConsensusDriver(
            chain_id=CHAIN_ID,
            state=node.heights[height],
            source=SimSource(self, node),
            wal=FaultyWal(node.wal_disk, node.wal_fail_at),
            signer=signer,
            timeouts=SIM_TIMEOUTS,
            evidence=EvidencePool(),
            skip_timeout_commit=self.schedule.skip_timeout_commit,
        )
        node.wal_fail_at = None  # a WAL crash happens once
        self._call(node, node.driver.start)

    def _ev_crash(self, index: int, down_ms: float) -> None:
        node = self.nodes[index]
        if node.alive:
            self._kill(node)
            self._push(self.now + down_ms, "start", index, node.incarnation)

    def _kill(self, node: SimNode) -> None:
        node.driver = None
        node.incarnation += 1
        for key in list(self._delivered):
            if node.index in key:
                del self._delivered[key]

    def _ev_timeout(self, index: int, incarnation: int, timeout: TimeoutInfo) -> None:
        node = self.nodes[index]
        if node.driver is not None and node.incarnation == incarnation:
            driver = node.driver
            self._call(node, lambda: driver.handle(timeout))

    def _ev_deliver(self, src: int, dst: int, msg: Message) -> None:
        node = self.nodes[dst]
        if node.driver is None:
            return
        driver = node.driver
        if getattr(msg, "height", None) == driver.height and not isinstance(msg, DecidedBlock):
            # The peer can use it now, so gossip need not send it again. A message that
            # arrived while the peer was at another height was dropped there: resend it.
            self._delivered.setdefault((src, dst), set()).add(msg)
        try:
            self._call(node, lambda: driver.handle(msg))
        except ConsensusError as exc:
            if self.schedule.kind_of(src) is None:
                raise SimFailure(
                    f"node {dst} refused {type(msg).__name__} from honest node {src}: {exc}"
                ) from None

    def _ev_gossip(self, index: int) -> None:
        self._push(self.now + self.schedule.gossip_ms, "gossip", index)
        node = self.nodes[index]
        if node.driver is None:
            return
        messages = node.driver.known_messages()
        height = node.driver.height
        for peer in self.nodes:
            if peer is node or peer.driver is None or peer.driver.height != height:
                continue
            delivered = self._delivered.get((index, peer.index), set())
            for msg in messages:
                if msg not in delivered:
                    self._send(index, peer.index, msg)

    def _ev_catchup(self) -> None:
        """Blocksync: a node behind gets the next block it lacks from the first peer that has
        it (through the network: partitions and loss apply)."""
        self._push(self.now + self.schedule.catchup_ms, "catchup")
        for node in self.nodes:
            if node.driver is None:
                continue
            height = node.committed_height + 1
            for peer in self.nodes:
                if peer is not node and height in peer.store:
                    block_hash, data, commit = peer.store[height]
                    self._send(
                        peer.index, node.index, DecidedBlock(height, block_hash, data, commit)
                    )
                    break

    # -- node I/O ----------------------------------------------------------------------------------
    def _call(self, node: SimNode, action: Callable[[], list[Effect]]) -> None:
        try:
            effects = action()
        except _Crash:
            self._kill(node)
            self._push(self.now + self.rng.uniform(10, 200), "start", node.index, node.incarnation)
            return
        self._apply(node, effects)

    def _apply(self, node: SimNode, effects: list[Effect]) -> None:
        for effect in effects:
            if self.tracing:
                self.trace.update(repr((round(self.now, 6), node.index, effect)).encode())
            if isinstance(effect, Broadcast):
                self._broadcast(node, effect.message)
            elif isinstance(effect, ScheduleTimeout):
                t = effect.timeout
                self._push(self.now + t.duration_ms, "timeout", node.index, node.incarnation, t)
            elif isinstance(effect, Committed):
                pass  # checked in SimSource.commit_block, where the application commits

    def _broadcast(self, node: SimNode, msg: Any) -> None:
        if isinstance(msg, DuplicateVoteEvidence) and msg.validator not in self.byzantine_addresses:
            raise SimFailure(
                f"node {node.index} holds evidence against honest {msg.validator.hex()}"
            )
        if self.schedule.kind_of(node.index) == "equivocate":
            if isinstance(msg, Vote):
                self._equivocate(node, msg)
                return
            if isinstance(msg, Proposal) and msg.pol_round == -1:
                self._equivocate_proposal(node, msg)
        for peer in self.nodes:
            if peer is not node:
                self._send(node.index, peer.index, msg)

    def _equivocate(self, node: SimNode, vote: Vote) -> None:
        """Sign a conflicting vote with the raw key (no double-sign protection) and show each
        half of the peers a different vote."""
        if vote.block_id is None:
            fake = hashlib.sha256(b"fake %d %d" % (vote.height, vote.round)).digest()
            other = replace(vote, block_id=BlockID(fake, 1, fake))
        else:
            other = replace(vote, block_id=None)
        other = replace(other, signature=node.key.sign(other.sign_bytes(CHAIN_ID)))
        peers = [p.index for p in self.nodes if p is not node]
        self.rng.shuffle(peers)
        half = len(peers) // 2
        for i, peer in enumerate(peers):
            self._send(node.index, peer, vote if i < half else other)

    def _equivocate_proposal(self, node: SimNode, proposal: Proposal) -> None:
        """A second, different valid block for the same round, signed with the raw key, with
        its parts, to half of the peers (the real proposal still goes to everyone: who sees
        which first depends on delays)."""
        data = block_data(proposal.height, proposal.round + 1000, node.address, bad=False)
        ps = PartSet.from_data(data, height=proposal.height, round=proposal.round)
        block_id = BlockID(hashlib.sha256(data).digest(), ps.total, ps.root)
        other = replace(proposal, block_id=block_id)
        other = replace(other, signature=node.key.sign(other.sign_bytes(CHAIN_ID)))
        peers = [p.index for p in self.nodes if p is not node]
        self.rng.shuffle(peers)
        for peer in peers[: len(peers) // 2]:
            self._send(node.index, peer, other)
            for part in ps.parts():
                self._send(node.index, peer, part)

    def _send(self, src: int, dst: int, msg: Message) -> None:
        s = self.schedule
        if self._partitioned(src, dst):
            return
        loss = s.residual_loss + (s.loss if self.now < s.fault_end_ms else 0.0)
        if loss and self.rng.random() < loss:
            return
        lo, hi = s.delay_ms
        self._push(self.now + self.rng.uniform(lo, hi), "deliver", src, dst, msg)
        if s.dup and self.rng.random() < s.dup:
            self._push(self.now + self.rng.uniform(lo, hi * 3), "deliver", src, dst, msg)

    def _partitioned(self, a: int, b: int) -> bool:
        for p in self.schedule.partitions:
            if p.start_ms <= self.now < p.end_ms:
                group_of_a = next((g for g in p.groups if a in g), None)
                if group_of_a is None or b not in group_of_a:
                    return True
        return False

    # -- invariants -------------------------------------------------------------------------------
    def check_commit(self, node: SimNode, height: int, block_hash: bytes, data: bytes) -> None:
        if not block_is_valid(height, block_hash, data):
            raise SimFailure(f"validity: node {node.index} committed an invalid block at {height}")
        self._committed_since_check = True
        other = self.decided.setdefault(height, block_hash)
        if other != block_hash:
            raise SimFailure(
                f"agreement: node {node.index} committed {block_hash.hex()[:12]} at height "
                f"{height}, another node committed {other.hex()[:12]}"
            )

    def updates_at(self, height: int) -> list[Validator]:
        return [
            Validator(KEYS[node].public_key, power)
            for at, node, power in self.schedule.updates
            if at == height
        ]


# -- schedule generation ---------------------------------------------------------------------
SCENARIOS = (
    "happy",
    "lossy",
    "partition",
    "crash",
    "equivocate",
    "silent",
    "bad_proposer",
    "mixed",
    "valset_change",
)


def random_schedule(scenario: str, rng: random.Random) -> Schedule:
    """A schedule of the given scenario drawn from `rng`."""
    n = rng.randint(4, 7)
    f = (n - 1) // 3  # the most byzantine validators of equal power that BFT tolerates
    powers = tuple([10] * n)
    sched = Schedule(n=n, powers=powers, skip_timeout_commit=rng.random() < 0.3)
    sched = replace(sched, delay_ms=(1.0, rng.choice((5.0, 15.0, 40.0))))
    if scenario == "happy":
        return replace(sched, target_height=rng.randint(2, 4))
    if scenario == "lossy":
        return replace(
            sched,
            loss=rng.uniform(0.1, 0.5),
            residual_loss=rng.choice((0.0, 0.05, 0.15)),
            dup=rng.uniform(0.0, 0.3),
            delay_ms=(1.0, rng.choice((20.0, 80.0))),
            fault_end_ms=rng.uniform(200, 1500),
        )
    if scenario == "partition":
        return replace(sched, partitions=_partitions(rng, n))
    if scenario == "crash":
        return replace(sched, crashes=_crashes(rng, n), wal_crash=_wal_crashes(rng, n))
    if scenario in ("equivocate", "silent", "bad_proposer"):
        kind = {"equivocate": "equivocate", "silent": "silent", "bad_proposer": "bad"}[scenario]
        nodes = rng.sample(range(n), rng.randint(1, f))
        return replace(sched, byzantine=tuple((i, kind) for i in sorted(nodes)))
    if scenario == "mixed":
        kinds = ("equivocate", "silent", "bad")
        byz = sorted(rng.sample(range(n), rng.randint(0, f)))
        honest = [i for i in range(n) if i not in byz]
        return replace(
            sched,
            byzantine=tuple((i, rng.choice(kinds)) for i in byz),
            loss=rng.uniform(0.0, 0.3),
            dup=rng.uniform(0.0, 0.2),
            fault_end_ms=rng.uniform(100, 800),
            partitions=_partitions(rng, n) if rng.random() < 0.5 else (),
            crashes=_crashes(rng, n, among=honest) if rng.random() < 0.5 else (),
            wal_crash=_wal_crashes(rng, n, among=honest) if rng.random() < 0.3 else (),
        )
    if scenario == "valset_change":
        return _valset_change(rng, sched)
    raise ValueError(f"unknown scenario {scenario}")


def _partitions(rng: random.Random, n: int) -> tuple[Partition, ...]:
    out = []
    t = rng.uniform(0, 300)
    for _ in range(rng.randint(1, 2)):
        nodes = list(range(n))
        rng.shuffle(nodes)
        cut = rng.randint(1, n - 1)
        groups = (frozenset(nodes[:cut]), frozenset(nodes[cut:]))
        length = rng.uniform(100, 1500)
        out.append(Partition(t, t + length, groups))
        t += length + rng.uniform(0, 300)
    return tuple(out)


def _crashes(rng: random.Random, n: int, among: Sequence[int] | None = None) -> tuple[Crash, ...]:
    pool = list(among if among is not None else range(n))
    count = rng.randint(1, min(len(pool), 3))
    return tuple(
        Crash(i, rng.uniform(0, 600), rng.uniform(20, 800)) for i in sorted(rng.sample(pool, count))
    )


def _wal_crashes(
    rng: random.Random, n: int, among: Sequence[int] | None = None
) -> tuple[tuple[int, int], ...]:
    pool = list(among if among is not None else range(n))
    return tuple((i, rng.randint(1, 12)) for i in sorted(rng.sample(pool, rng.randint(1, 2))))


def _valset_change(rng: random.Random, sched: Schedule) -> Schedule:
    """A full node joins the set (update at height 2, effective at 4), another validator's
    power changes, and sometimes a validator leaves; the target is past the change."""
    n = sched.n
    joiner = n - 1
    updates = [(2, joiner, 10)]
    changed = rng.randrange(0, n - 1)
    updates.append((rng.randint(1, 3), changed, rng.choice((5, 20, 30))))
    leaver = rng.choice([i for i in range(n - 1) if i != changed] + [None])
    if leaver is not None and n >= 5:
        updates.append((rng.randint(2, 4), leaver, 0))
    return replace(
        sched,
        full_nodes=(joiner,),
        updates=tuple(sorted(updates)),
        target_height=6,
        crashes=_crashes(rng, n) if rng.random() < 0.3 else (),
    )
