"""A seeded staking and governance simulation: random staking transactions of all 11 kinds and
governance proposals (fund transfers, parameter changes) and votes, valid and invalid, over
hundreds of blocks, with every staking invariant and escrow conservation checked after every
block.

The state is the chain's own: a `StateDB` over an in-memory database, from a `Chain`'s genesis
(parameters in state, two genesis validators with their self-stake in Hold). Twenty funded
accounts (two of them own the genesis validators) and the foundation address send the
transactions; six more consensus keys can be declared. Each block:

1. the governance module's begin_block (expiries), then 0-8 random transactions, each built from
   the current state by one of the generators below, mostly plausible and sometimes broken on
   purpose (an unknown candidate, a bad Cube signature, more than the balance, ...). Each
   goes through the staking module as a block does: `check_tx` (admission), then
   `deliver_tx`. `check_tx` must change nothing (same state root); when it refuses,
   `deliver_tx` must refuse with the same error and leave the state root unchanged; when it
   accepts, `deliver_tx` must succeed. A transaction the generator broke on purpose must be
   refused. Governance transactions go to the governance module (as `node.chain_modules()`
   orders them: staking, then governance, reading staking's electorate).
2. `end_block`: matured unstakes are paid, and at every `cal_vp_interval` the election runs;
   its validator updates are applied to a model of what consensus holds.
   At an election the same end_block also runs on a copy of the state with the reference
   election (`election.run_full_election`: every delegation recomputed): the incremental one
   must leave the very same state (same root; on a difference the first differing candidate,
   delegation or consensus set is named).
3. The invariants (`staking/invariants.py`): Hold covers the stakes, the award reserve and the
   governance escrow (here exactly: nobody sends CMT to Hold in the simulation), the escrow is
   the sum of the undecided fund transfers (escrow conservation: Σ balances + escrow owed is
   what it was), the records agree with each
   other and their indices, the incremental election's bookkeeping is right, after an election
   its outcome adds up and the model of consensus equals the set last sent, and Σ balances over
   every account that can hold CMT = genesis supply + minted − burned.

Over the run, each kind must be both accepted and refused at least once (else the generators
have gone stale, and the simulation tests less than it claims).

Seeds: `DEFAULT_SEEDS` seeds run by default; `CYBERMILES_SIM_SEEDS=N` runs seeds 0..N-1,
`CYBERMILES_SIM_SEED=n` only seed n (the convention of tests/sim/test_simulation.py). A failure
names the seed, the block and the transactions of that block, and the command that replays it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cybermiles_node.application.chain import Chain
from cybermiles_node.errors import InvariantViolation, TxRejected
from cybermiles_node.governance import keeper as governance_keeper
from cybermiles_node.governance.module import GovernanceModule
from cybermiles_node.governance.msgs import ProposeTransferFund
from cybermiles_node.governance.records import Result
from cybermiles_node.modules import ModuleSet, SystemTxMessage
from cybermiles_node.params import read_params
from cybermiles_node.staking import keeper
from cybermiles_node.staking import module as staking_module
from cybermiles_node.staking.cube import cube_digest
from cybermiles_node.staking.election import run_full_election
from cybermiles_node.staking.errors import StakingRejected
from cybermiles_node.staking.invariants import (
    all_delegations,
    check_election_outcome,
    check_hold_covers_stakes,
    check_power_bookkeeping,
    check_records,
    check_supply,
)
from cybermiles_node.staking.module import StakingModule
from cybermiles_node.staking.query import members_voting_power
from cybermiles_node.staking.records import Candidate, RequestState
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import (
    GOVERNANCE_ADDRESS,
    HOLD_ADDRESS,
    MINT_ADDRESS,
    PARAMS_ADDRESS,
    STAKING_ADDRESS,
    SUPPLY_ADDRESS,
)
from cybermiles_node.system.context import BlockContext
from evm.db import MemoryDB
from evm.state import StateDB
from genesis import Genesis, dev_accounts, devnet_genesis

DEFAULT_SEEDS = 2
BLOCKS = 300
ACCOUNTS = 20
MAX_TXS_PER_BLOCK = 8
BLOCK_SECONDS = 10
CMT = 10**18
T0 = 1_700_000_000
CUBE_BATCH = "5a"


def _key(label: str) -> bytes:
    return hashlib.sha256(f"stakesim-{label}".encode()).digest()


GENESIS_KEYS = [_key(f"genesis-{i}") for i in range(2)]
DECLARABLE_KEYS = [_key(f"declare-{i}") for i in range(6)]
ADDRESSES = [account.address for account in dev_accounts(ACCOUNTS)]
ZERO = bytes(20)

KINDS = (
    "stake/declareCandidacy",
    "stake/updateCandidacy",
    "stake/withdrawCandidacy",
    "stake/verifyCandidacy",
    "stake/activateCandidacy",
    "stake/deactivateCandidacy",
    "stake/delegate",
    "stake/withdraw",
    "stake/setCompRate",
    "stake/updateCandidacyAccount",
    "stake/acceptCandidacyAccountUpdate",
    "governance/propose/transfer_fund",
    "governance/propose/change_param",
    "governance/vote",
)
# How often each kind is drawn: stake moves most, terminal or account-consuming kinds least.
WEIGHTS = (1.0, 1.0, 0.3, 1.0, 1.0, 1.0, 5.0, 4.0, 1.0, 0.5, 1.0, 0.7, 0.4, 2.0)
# Parameter changes governance may propose here: ones that move staking (a changed max_vals
# makes the next election recompute everything) and one that is refused.
PARAM_CHANGES = (("max_vals", "2"), ("max_vals", "3"), ("proposal_expire_period", "40"))


class StakingSimFailure(AssertionError):
    """Something the simulation checks broke; the message names where."""


@dataclass(frozen=True)
class Op:
    sender: bytes
    kind: str
    data: dict[str, object]
    # Why the generator knows this transaction is invalid (None: it may be either).
    must_refuse: str | None = None

    def describe(self) -> str:
        why = f"  [broken on purpose: {self.must_refuse}]" if self.must_refuse else ""
        return f"{_hex(self.sender)} {self.kind} {json.dumps(self.data, sort_keys=True)}{why}"


@dataclass
class Tally:
    accepted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def add(self, other: Tally) -> None:
        self.accepted.update(other.accepted)
        self.refused.update(other.refused)


def _hex(address: bytes) -> str:
    return "0x" + address.hex()


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _wei(amount: int) -> str:
    return str(amount)


# -- the chain the simulation runs on --------------------------------------------------------------
class CubeSigner:
    """The Cube batch the simulation's genesis trusts (one RSA key, generated per process: only
    whether a signature verifies matters to the state, never its bytes)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        pem = (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.cube_pub_keys = json.dumps([{"cube_batch": CUBE_BATCH, "pub_key": pem}])

    def sign(self, sender: bytes, nonce: int) -> str:
        numbers = self.key.private_numbers()
        return format(pow(cube_digest(sender, nonce), numbers.d, numbers.public_numbers.n), "x")


def sim_genesis(rng: random.Random, cube: CubeSigner) -> Genesis:
    """Two genesis validators, twenty accounts of 200,000 CMT; the parameters that shape the
    run (set sizes, unstaking period, election interval) drawn from the seed."""
    base = devnet_genesis(
        validator_pub_keys=GENESIS_KEYS,
        genesis_time=T0,
        accounts=ACCOUNTS,
        balance=200_000 * CMT,
    )
    params = dataclasses.replace(
        base.params,
        max_vals=rng.choice([2, 3, 4]),
        backup_vals=rng.choice([0, 1, 2]),
        unstake_waiting_period=rng.choice([1, 5, 20]),
        cal_vp_interval=rng.choice([1, 1, 3]),
        cube_pub_keys=cube.cube_pub_keys,
    )
    return dataclasses.replace(base, params=params)


@contextmanager
def full_recompute() -> Iterator[None]:
    """end_block runs the reference election (every delegation) instead of the incremental."""
    incremental = staking_module.run_election
    staking_module.run_election = run_full_election
    try:
        yield
    finally:
        staking_module.run_election = incremental


# -- the simulation --------------------------------------------------------------------------------
class StakingSim:
    def __init__(self, seed: int, cube: CubeSigner, blocks: int = BLOCKS) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.cube = cube
        self.blocks = blocks
        self.genesis = sim_genesis(self.rng, cube)
        self.params = self.genesis.params
        self.module = StakingModule()
        self.governance = GovernanceModule(members_voting_power)
        chain = Chain(MemoryDB(), self.genesis, modules=ModuleSet([self.module, self.governance]))
        self.db = chain.db
        self.state: StateDB = chain.state_at()
        self.genesis_supply = sum(account.balance for _, account in self.genesis.alloc)
        # Every account that can hold CMT: the genesis allocation (the simulation's senders
        # among them), the foundation (a sender, unfunded), Hold and the system accounts.
        self.known_accounts = sorted(
            {address for address, _ in self.genesis.alloc}
            | {self.params.foundation_address, HOLD_ADDRESS, MINT_ADDRESS, STAKING_ADDRESS}
            | {GOVERNANCE_ADDRESS, PARAMS_ADDRESS, SUPPLY_ADDRESS}
        )
        self.nonces: Counter[bytes] = Counter()
        # What consensus holds, built only from the validator updates end_block returns.
        self.consensus = {key: power for key, power in keeper.sent_set(self.state)}
        self.tally = Tally()
        self.height = 0
        self.block_ops: list[Op] = []

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> None:
        self.check_invariants(election=True)  # genesis
        for height in range(1, self.blocks + 1):
            self.height = height
            self.block_ops = []
            self.block_fees = 0
            self.governance.begin_block(self.context(), self.state)
            for _ in range(self.rng.randint(0, MAX_TXS_PER_BLOCK)):
                op = self.random_op()
                self.block_ops.append(op)
                self.deliver(op)
            elected = self.end_block()
            self.check_invariants(election=elected)

    def fail(self, what: str) -> StakingSimFailure:
        ops = "\n".join(f"    {op.describe()}" for op in self.block_ops) or "    (none)"
        return StakingSimFailure(
            f"seed {self.seed}, block {self.height}: {what}\n  transactions of the block:\n{ops}"
        )

    def root(self) -> bytes:
        """The state root, its trie nodes written to the database (a root only computed leaves
        the storage tries pointing at nodes the database does not have)."""
        self.state.persist()
        return self.state.state_root

    def time(self) -> int:
        return T0 + BLOCK_SECONDS * self.height

    def context(self) -> BlockContext:
        return BlockContext(self.height, self.time(), ZERO, bytes(32), b"", read_params(self.state))

    def module_of(self, kind: str) -> StakingModule | GovernanceModule:
        return self.governance if kind.startswith("governance/") else self.module

    def deliver(self, op: Op) -> None:
        """Admission, then execution, as a block runs a system transaction."""
        msg = SystemTxMessage(
            op.sender, self.nonces[op.sender], self.rng.randbytes(32), op.kind, op.data
        )
        self.nonces[op.sender] += 1
        before = self.root()
        refusal: TxRejected | None = None
        try:
            self.module_of(op.kind).check_tx(msg, self.state, self.height, self.time())
        except TxRejected as exc:
            refusal = exc
        if self.root() != before:
            raise self.fail(f"check_tx changed the state: {op.describe()}")
        if refusal is None:
            self.expect_delivered(op, msg)
        else:
            self.expect_refused(op, msg, refusal, before)

    def expect_delivered(self, op: Op, msg: SystemTxMessage) -> None:
        if op.must_refuse is not None:
            raise self.fail(f"check_tx accepted a transaction broken on purpose: {op.describe()}")
        try:
            result = self.module_of(op.kind).deliver_tx(msg, self.state, self.height, self.time())
        except TxRejected as exc:
            raise self.fail(
                f"admitted, then refused in the block ({exc}): {op.describe()}"
            ) from exc
        if not result.success:
            raise self.fail(f"admitted, then failed in the block: {op.describe()}")
        self.block_fees += result.fee
        self.tally.accepted[op.kind] += 1

    def expect_refused(
        self, op: Op, msg: SystemTxMessage, refusal: TxRejected, root: bytes
    ) -> None:
        try:
            self.module_of(op.kind).deliver_tx(msg, self.state, self.height, self.time())
        except TxRejected as exc:
            if type(exc) is not type(refusal):
                raise self.fail(
                    f"check_tx refused with {type(refusal).__name__}, deliver_tx with "
                    f"{type(exc).__name__}: {op.describe()}"
                ) from exc
        else:
            raise self.fail(f"refused at admission ({refusal}), delivered: {op.describe()}")
        if self.root() != root:
            raise self.fail(f"a refused transaction changed the state: {op.describe()}")
        self.tally.refused[op.kind] += 1

    def end_block(self) -> bool:
        """Run end_block; apply its validator updates to the model of consensus. True when an
        election ran (then checked against the reference election)."""
        params = read_params(self.state)
        ctx = BlockContext(self.height, self.time(), ZERO, bytes(32), b"", params)
        elects = self.height % params.cal_vp_interval == 0
        reference = StateDB(self.db, self.root()) if elects else None
        outcome = self.module.end_block(ctx, self.state, self.block_fees)
        self.governance.end_block(ctx, self.state, self.block_fees)
        if reference is not None:
            with full_recompute():
                expected = self.module.end_block(ctx, reference, self.block_fees)
            self.governance.end_block(ctx, reference, self.block_fees)
            if expected.validator_updates != outcome.validator_updates:
                raise self.fail(
                    f"the incremental election sent {outcome.validator_updates}, the full "
                    f"recompute {expected.validator_updates}"
                )
            self.expect_same_state(reference)
        for update in outcome.validator_updates:
            if update.power == 0:
                if self.consensus.pop(update.pub_key, None) is None:
                    raise self.fail(f"removal of {update.pub_key.hex()}, not in consensus")
            else:
                self.consensus[update.pub_key] = update.power
        return elects

    def expect_same_state(self, reference: StateDB) -> None:
        """The incremental election's state is the reference's; the first difference named."""
        for what, read in (
            ("candidates", keeper.candidates),
            ("delegations", all_delegations),
            ("sent sets", keeper.sent_set),
            ("dirty marks", keeper.dirty_delegations),
            ("election inputs", keeper.election_inputs),
        ):
            mine, theirs = read(self.state), read(reference)
            if mine != theirs:
                first = next(
                    ((a, b) for a, b in zip(mine or (), theirs or (), strict=False) if a != b),
                    (mine, theirs),
                )
                raise self.fail(
                    f"the incremental election and the full recompute differ in {what}: "
                    f"{first[0]} vs {first[1]}"
                )
        reference.persist()
        if self.root() != reference.state_root:
            raise self.fail("the incremental election and the full recompute differ in state root")

    def check_invariants(self, *, election: bool) -> None:
        state = self.state
        delegations = all_delegations(state)
        try:
            check_hold_covers_stakes(state, delegations)
            check_records(state)
            check_power_bookkeeping(state)
            if election:
                check_election_outcome(state)
            balances = sum(state.get_balance(address) for address in self.known_accounts)
            check_supply(balances, state, self.genesis_supply)
        except InvariantViolation as exc:
            raise self.fail(str(exc)) from exc
        owed = sum(d.shares + d.pending_withdraw_amount for d in delegations)
        owed += keeper.award_reserve(state) + governance_keeper.escrow(state)
        escrowed = sum(
            p.msg.amount
            for p in governance_keeper.open_proposals(state)
            if isinstance(p.msg, ProposeTransferFund)
        )
        if governance_keeper.escrow(state) != escrowed:
            raise self.fail(
                f"the escrow is {governance_keeper.escrow(state)} wei, the undecided fund "
                f"transfers {escrowed}"
            )
        # Exact here: no one sends CMT to Hold in the simulation; the block's fees and award
        # were distributed at its end, into the reserve.
        if state.get_balance(HOLD_ADDRESS) != owed:
            raise self.fail(f"Hold holds {state.get_balance(HOLD_ADDRESS)} wei, owes {owed}")
        if election and sorted(self.consensus.items()) != sorted(keeper.sent_set(state)):
            raise self.fail("the validator updates do not add up to the set sent to consensus")

    # -- reading the state for the generators -----------------------------------------------------
    def candidates(self) -> list[Candidate]:
        return list(keeper.candidates(self.state))

    def live(self) -> list[Candidate]:
        return [c for c in self.candidates() if not c.withdrawn]

    def balance(self, address: bytes) -> int:
        return self.state.get_balance(address)

    def pick(self, options: list[bytes], otherwise: list[bytes], p: float = 0.85) -> bytes:
        """One of `options` with probability p (when there are any), else one of `otherwise`."""
        if options and self.rng.random() < p:
            return self.rng.choice(options)
        return self.rng.choice(otherwise)

    def amount(self, choices: list[int]) -> int:
        """A whole number of CMT from `choices`, plus up to 1 CMT of wei dust."""
        return self.rng.choice(choices) * CMT + self.rng.randrange(CMT)

    def rate(self) -> str:
        return self.rng.choice(["1/10", "1/5", "1/2", "9/10"])

    # -- governance generators --------------------------------------------------------------------
    def members(self) -> list[bytes]:
        return sorted(members_voting_power(self.state))

    def expiry(self) -> dict[str, object]:
        if self.rng.random() < 0.3:
            return {"expire_timestamp": self.time() + BLOCK_SECONDS * self.rng.randint(3, 30)}
        return {"expire_block_height": self.height + self.rng.randint(3, 30)}

    def propose_transfer(self) -> Op:
        sender = self.pick(self.members(), ADDRESSES)
        source, target = self.rng.sample(ADDRESSES, 2)
        amount = self.amount([1, 100, 1_000, 1_000_000])
        reason = (
            "the sender owns no validator" if sender not in self.members()
            else "more than transfer_from holds" if amount > self.balance(source)
            else None
        )  # fmt: skip
        data = {"transfer_from": _hex(source), "transfer_to": _hex(target), "amount": str(amount)}
        return Op(sender, "governance/propose/transfer_fund", {**data, **self.expiry()}, reason)

    def propose_param(self) -> Op:
        sender = self.pick(self.members(), ADDRESSES)
        name, value = self.rng.choice([*PARAM_CHANGES, ("no_such_param", "1")])
        reason = (
            "the sender owns no validator" if sender not in self.members()
            else "no such parameter" if name == "no_such_param"
            else None
        )  # fmt: skip
        data = {"name": name, "value": value, **self.expiry()}
        return Op(sender, "governance/propose/change_param", data, reason)

    def vote(self) -> Op:
        sender = self.pick(self.members(), ADDRESSES)
        open_ids = [p.id for p in governance_keeper.open_proposals(self.state)]
        proposal_id = self.pick(open_ids, [self.rng.randbytes(32)], p=0.9)
        reason = (
            "the sender owns no validator" if sender not in self.members()
            else "no such proposal" if proposal_id not in open_ids
            else None
        )  # fmt: skip
        answer = "Y" if self.rng.random() < 0.7 else "N"
        data = {"proposal_id": _b64(proposal_id), "answer": answer}
        return Op(sender, "governance/vote", data, reason)

    # -- the generators, one per kind -------------------------------------------------------------
    def random_op(self) -> Op:
        kind = self.rng.choices(KINDS, WEIGHTS)[0]
        return self.generators[kind](self)

    def declare(self) -> Op:
        sender = self.rng.choice(ADDRESSES)
        key = self.rng.choice(DECLARABLE_KEYS + GENESIS_KEYS[:1])
        max_amount = self.amount([20_000, 50_000, 100_000, 5_000_000])
        comp_rate = self.rng.choice(["1/5", "1/2", "9/10", "1"])
        user = keeper.pub_key_owner(self.state, key)
        stake = int(max_amount * self.params.self_staking_ratio)
        reason = (
            "the sender is or was a candidate" if keeper.was_candidate(self.state, sender)
            else "comp_rate 1" if comp_rate == "1"
            else "the key is another candidate's" if user not in (None, sender)
            else "the self-stake is above the balance" if stake > self.balance(sender)
            else None
        )  # fmt: skip
        data = {"pub_key": _b64(key), "max_amount": _wei(max_amount), "comp_rate": comp_rate}
        return Op(sender, "stake/declareCandidacy", {**data, "description": {"name": "c"}}, reason)

    def update(self) -> Op:
        sender = self.pick([c.owner for c in self.live()], ADDRESSES)
        data: dict[str, object] = {}
        if self.rng.random() < 0.3:
            data["pub_key"] = _b64(self.rng.choice(DECLARABLE_KEYS + GENESIS_KEYS))
        if self.rng.random() < 0.5:
            data["max_amount"] = _wei(self.amount([30_000, 100_000, 150_000]))
        if self.rng.random() < 0.5:
            data["comp_rate"] = self.rate()
        if self.rng.random() < 0.3:
            data["description"] = {"name": f"renamed at {self.height}"}
        reason = None if keeper.candidate(self.state, sender) else "the sender has no candidacy"
        return Op(sender, "stake/updateCandidacy", data, reason)

    def withdraw_candidacy(self) -> Op:
        live = [c.owner for c in self.live()]
        # Keep three candidates: withdrawing is final, and with no candidates left the run
        # would test little; below that, only senders with no live candidacy are drawn.
        others = [a for a in ADDRESSES if a not in live]
        sender = self.pick(live if len(live) > 3 else [], others, p=0.7)
        record = keeper.candidate(self.state, sender)
        reason = (
            "the sender has no candidacy" if record is None
            else "the candidacy is already withdrawn" if record.withdrawn
            else None
        )  # fmt: skip
        return Op(sender, "stake/withdrawCandidacy", {}, reason)

    def verify(self) -> Op:
        foundation = self.params.foundation_address
        sender = foundation if self.rng.random() < 0.8 else self.rng.choice(ADDRESSES)
        target = self.pick([c.owner for c in self.candidates()], ADDRESSES)
        record = keeper.candidate(self.state, target)
        reason = (
            "not the foundation" if sender != foundation
            else "no such candidate" if record is None
            else "the candidacy is withdrawn" if record.withdrawn
            else None
        )  # fmt: skip
        data = {"candidate_address": _hex(target), "verified": self.rng.random() < 0.7}
        return Op(sender, "stake/verifyCandidacy", data, reason)

    def activation(self, active: bool) -> Op:
        sender = self.pick([c.owner for c in self.candidates()], ADDRESSES)
        record = keeper.candidate(self.state, sender)
        reason = (
            "the sender has no candidacy" if record is None
            else "the candidacy is withdrawn" if record.withdrawn
            else "already in that state" if record.active == active
            else None
        )  # fmt: skip
        kind = "stake/activateCandidacy" if active else "stake/deactivateCandidacy"
        return Op(sender, kind, {}, reason)

    def delegate(self) -> Op:
        sender = self.rng.choice(ADDRESSES)
        target = self.pick([c.owner for c in self.live()], ADDRESSES, p=0.9)
        amount = self.amount([0, 200, 1_000, 3_000, 10_000, 400_000])
        nonce = self.nonces[sender]
        data: dict[str, object] = {"validator_address": _hex(target), "amount": _wei(amount)}
        how = self.rng.choices(["wallet", "cube", "bad sig", "unknown batch"], [5, 4, 1, 1])[0]
        if how != "wallet":
            data["cube_batch"] = "77" if how == "unknown batch" else CUBE_BATCH
            data["sig"] = self.cube.sign(sender, nonce + (how == "bad sig"))
        record = keeper.candidate(self.state, target)
        reason = (
            f"a {how}" if how in ("bad sig", "unknown batch")
            else "no such candidate" if record is None
            else "the candidacy is withdrawn" if record.withdrawn
            else "more than the balance" if amount > self.balance(sender)
            else None
        )  # fmt: skip
        return Op(sender, "stake/delegate", data, reason)

    def withdraw(self) -> Op:
        owners = keeper.CANDIDATE_SET.keys(self.state)
        staked = [o for o in owners if keeper.delegator_count(self.state, o)]
        target = self.pick(staked, list(owners), p=0.95)
        delegators = keeper.delegators_of(self.state, target)
        if not delegators or self.rng.random() < 0.1:
            sender, target = self.rng.choice(ADDRESSES), self.rng.choice(ADDRESSES)
        else:
            sender = self.rng.choice(delegators)
        chosen = keeper.delegation(self.state, target, sender)
        shares = None if chosen is None else chosen.shares
        how = self.rng.choices(["part", "all", "complete", "too much"], [5, 2, 2, 1])[0]
        top = shares or 1
        amount = {"part": self.rng.randint(1, top), "too much": top + 1}.get(how, top)
        data = {
            "validator_address": _hex(target),
            "amount": _wei(amount),
            "completely_withdraw": how == "complete",
        }
        reason = (
            "no such delegation" if shares is None
            else "more than the shares" if amount > shares
            else None
        )  # fmt: skip
        return Op(sender, "stake/withdraw", data, reason)

    def set_comp_rate(self) -> Op:
        sender = self.pick([c.owner for c in self.candidates()], ADDRESSES)
        delegators = list(keeper.delegators_of(self.state, sender))
        delegator = self.pick(delegators, ADDRESSES)
        rate = self.rate()
        record = keeper.candidate(self.state, sender)
        reason = (
            "the sender has no candidacy" if record is None
            else "no such delegation" if keeper.delegation(self.state, sender, delegator) is None
            else None
        )  # fmt: skip
        data = {"delegator_address": _hex(delegator), "comp_rate": rate}
        return Op(sender, "stake/setCompRate", data, reason)

    def update_account(self) -> Op:
        sender = self.pick([c.owner for c in self.live()], ADDRESSES)
        new = self.rng.choice(ADDRESSES)
        reason = (
            "the sender has no candidacy" if keeper.candidate(self.state, sender) is None
            else "the new owner is the owner" if new == sender
            else "the new owner is or was a candidate" if keeper.was_candidate(self.state, new)
            else "the new owner was named before"
            if keeper.is_account_update_target(self.state, new)
            else None
        )  # fmt: skip
        return Op(
            sender, "stake/updateCandidacyAccount", {"new_candidate_account": _hex(new)}, reason
        )

    def accept(self) -> Op:
        next_id = keeper.ACCOUNT_UPDATE_NEXT_ID.get(self.state) or 1
        requests = [keeper.account_update_request(self.state, i) for i in range(1, next_id)]
        made = [r for r in requests if r is not None]
        pending = [r for r in made if r.state is RequestState.PENDING]
        if made and self.rng.random() < 0.85:
            # Mostly a PENDING request, sometimes one already accepted.
            request = self.rng.choice(pending if pending and self.rng.random() < 0.85 else made)
            sender = request.new_owner if self.rng.random() < 0.85 else self.rng.choice(ADDRESSES)
            request_id = request.id
            reason = (
                "not the named new owner" if sender != request.new_owner
                else "the request was accepted already" if request.state is RequestState.DONE
                else None
            )  # fmt: skip
        else:
            sender, request_id = self.rng.choice(ADDRESSES), next_id + self.rng.randrange(3)
            reason = "no such request"
        data = {"account_update_request_id": request_id}
        return Op(sender, "stake/acceptCandidacyAccountUpdate", data, reason)

    generators: dict[str, Callable[[StakingSim], Op]] = {
        "stake/declareCandidacy": declare,
        "stake/updateCandidacy": update,
        "stake/withdrawCandidacy": withdraw_candidacy,
        "stake/verifyCandidacy": verify,
        "stake/activateCandidacy": lambda sim: sim.activation(True),
        "stake/deactivateCandidacy": lambda sim: sim.activation(False),
        "stake/delegate": delegate,
        "stake/withdraw": withdraw,
        "stake/setCompRate": set_comp_rate,
        "stake/updateCandidacyAccount": update_account,
        "stake/acceptCandidacyAccountUpdate": accept,
        "governance/propose/transfer_fund": propose_transfer,
        "governance/propose/change_param": propose_param,
        "governance/vote": vote,
    }


# -- the tests -------------------------------------------------------------------------------------
def _seeds() -> list[int]:
    if "CYBERMILES_SIM_SEED" in os.environ:
        return [int(os.environ["CYBERMILES_SIM_SEED"])]
    return list(range(int(os.environ.get("CYBERMILES_SIM_SEEDS", DEFAULT_SEEDS))))


@pytest.fixture(scope="module")
def cube() -> CubeSigner:
    return CubeSigner()


def test_staking_simulation(cube: CubeSigner) -> None:
    total = Tally()
    outcomes: Counter[Result] = Counter()
    for seed in _seeds():
        sim = StakingSim(seed, cube)
        failure = None
        try:
            sim.run()
        except StakingSimFailure as exc:
            failure = str(exc)
        if failure is not None:
            pytest.fail(
                f"{failure}\n  reproduce: CYBERMILES_SIM_SEED={seed} "
                f".venv/bin/pytest tests/sim/test_staking_sim.py",
                pytrace=False,
            )
        total.add(sim.tally)
        outcomes.update(p.result for p in governance_keeper.proposals(sim.state))
    decided = {Result.APPROVED, Result.REJECTED, Result.EXPIRED}
    assert decided <= set(outcomes), f"proposals never decided some way: {outcomes}"
    never_accepted = [k for k in KINDS if total.accepted[k] == 0]
    never_refused = [k for k in KINDS if total.refused[k] == 0]
    assert not never_accepted and not never_refused, (
        f"the generators went stale: never accepted {never_accepted}, never refused "
        f"{never_refused} (accepted {dict(total.accepted)}, refused {dict(total.refused)})"
    )


def test_same_seed_same_state(cube: CubeSigner) -> None:
    """A seed is a run: two runs of one seed end in the same state root."""
    roots = []
    for _ in range(2):
        sim = StakingSim(11, cube, blocks=40)
        sim.run()
        roots.append(sim.root())
    assert roots[0] == roots[1]


def test_a_broken_invariant_names_the_seed_and_block(cube: CubeSigner) -> None:
    """The simulation's checks can fail: CMT taken out of Hold is reported with its seed."""
    sim = StakingSim(5, cube, blocks=3)
    sim.run()
    # More than the governance escrow, which Hold holds beside the stakes.
    taken = governance_keeper.escrow(sim.state) + 1
    sim.state.set_balance(HOLD_ADDRESS, sim.state.get_balance(HOLD_ADDRESS) - taken)
    with pytest.raises(StakingSimFailure, match=r"seed 5, block 3: staking: the Hold account"):
        sim.check_invariants(election=False)


def test_a_refusal_that_changes_state_is_caught(cube: CubeSigner) -> None:
    """The before/after comparison sees a change made by a refused transaction."""
    sim = StakingSim(6, cube, blocks=0)
    sim.height = 1
    op = Op(ADDRESSES[5], "stake/withdrawCandidacy", {}, "the sender has no candidacy")
    msg = SystemTxMessage(op.sender, 0, bytes(32), op.kind, op.data)
    with pytest.raises(StakingRejected) as refused:
        sim.module.check_tx(msg, sim.state, sim.height, sim.time())
    root = sim.root()
    ledger.mint(sim.state, op.sender, 1)  # as if the refused transaction had left a trace
    with pytest.raises(StakingSimFailure, match="a refused transaction changed the state"):
        sim.expect_refused(op, msg, refused.value, root)
