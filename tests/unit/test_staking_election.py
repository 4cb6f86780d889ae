"""Elections at the end of blocks (SPEC §6): a declared candidate is elected, and the change of
the consensus set reaches BFT consensus from `commit_block`, effective at H+2.

Two validators run the real consensus application with the staking module; a third key
declares. With max_vals 2 and backup_vals 1 it becomes the backup: a member of the consensus
set with power 10, sent to consensus as an update. Deactivating it takes it out again (power 0).
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from eth_account import Account

from consensus.keys import Ed25519Key
from consensus.types import Validator
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.consensus_app import ChainConsensus
from cybermiles_node.application.randomness import HashChainBeacon
from cybermiles_node.errors import InvariantViolation
from cybermiles_node.modules import BlockOutcome, ModuleSet
from cybermiles_node.params import write_params
from cybermiles_node.staking import keeper
from cybermiles_node.staking.election import (
    check_hold_covers_stakes,
    run_election,
    run_full_election,
)
from cybermiles_node.staking.invariants import check_power_bookkeeping
from cybermiles_node.staking.module import StakingModule
from cybermiles_node.staking.msgs import DeactivateCandidacy, Delegate
from cybermiles_node.staking.records import CandidateState
from cybermiles_node.staking.rewards import unsettled_award
from cybermiles_node.staking.rules import TxContext, apply
from cybermiles_node.system import MemoryStorage
from cybermiles_node.system.addresses import HOLD_ADDRESS
from cybermiles_node.system.context import BlockContext
from evm.db import MemoryDB
from genesis import dev_accounts, devnet_genesis
from tests.unit.test_consensus_app import NOW, commit_for

CMT = 10**18
KEYS = [Ed25519Key.from_seed(bytes([i + 1]) * 32) for i in range(2)]
NEWCOMER = Ed25519Key.from_seed(b"\x07" * 32)
BASE = devnet_genesis(validator_pub_keys=[k.public_key for k in KEYS], genesis_time=1_700_000_000)
GENESIS = replace(BASE, params=replace(BASE.params, max_vals=2, backup_vals=1))
DECLARER = dev_accounts(5)[4]


def node(key: Ed25519Key) -> ChainConsensus:
    chain = Chain(MemoryDB(), GENESIS, modules=ModuleSet([StakingModule()]))
    return ChainConsensus(
        ChainApp(chain), genesis=GENESIS, key=key, beacon=HashChainBeacon(), wall_clock=lambda: NOW
    )


def staking_tx(nonce: int, kind: str, data: dict[str, Any]) -> bytes:
    body = json.dumps({"type": kind, "data": data}).encode()
    fields = {"to": b"", "value": 0, "gas": 0, "gasPrice": 0, "nonce": nonce, "data": body}
    signed = Account.sign_transaction({**fields, "chainId": GENESIS.chain_id}, DECLARER.private_key)
    return bytes(signed.raw_transaction)


def decide(nodes: list[ChainConsensus], height: int, proposer: int, last: Any) -> tuple[Any, list]:
    """Propose on `proposer`, validate and commit everywhere; (commit, validator updates)."""
    leader = nodes[proposer]
    address = Validator(KEYS[proposer].public_key, 10).address
    block_hash, data = leader.propose_block(height, 0, address, last, [])
    commit = commit_for(leader.chain_id, height, block_hash, data)
    updates = []
    for n in nodes:
        assert n.validate_block(height, block_hash, data)
        updates.append(n.commit_block(height, block_hash, data, commit))
    assert updates[0] == updates[1]
    return commit, updates[0]


def test_a_declared_candidate_is_elected_backup_and_joins_consensus() -> None:
    nodes = [node(KEYS[0]), node(KEYS[1])]
    declare = {
        "pub_key": base64.b64encode(NEWCOMER.public_key).decode(),
        "max_amount": str(20_000 * CMT),
        "comp_rate": "1/5",
    }
    nodes[0].app.check_tx(staking_tx(0, "stake/declareCandidacy", declare))
    commit, updates = decide(nodes, 1, 0, None)
    assert updates == [Validator(NEWCOMER.public_key, 10)]
    state = nodes[1].app.query()
    record = keeper.candidate(state, DECLARER.address)
    assert record is not None and record.state is CandidateState.BACKUP
    assert record.voting_power == 2_000  # floor(20,000 x 1/10) CMT self-stake, factor 1
    assert DECLARER.address in nodes[1].app.chain.validator_owners_at(nodes[1].app.head)
    # Nothing changed: no updates in the next block.
    commit, updates = decide(nodes, 2, 1, commit)
    assert updates == []
    # Deactivated, it leaves the consensus set: power 0 for consensus.
    nodes[0].app.check_tx(staking_tx(1, "stake/deactivateCandidacy", {}))
    commit, updates = decide(nodes, 3, 0, commit)
    assert updates == [Validator(NEWCOMER.public_key, 0)]
    assert DECLARER.address not in nodes[0].app.chain.validator_owners_at(nodes[0].app.head)
    assert nodes[0].app.head.state_root == nodes[1].app.head.state_root


def test_hold_must_cover_the_stakes_but_may_hold_more() -> None:
    storage_chain = Chain(MemoryDB(), GENESIS, modules=ModuleSet([StakingModule()]))
    state = storage_chain.state_at()
    delegations = [
        d
        for v in GENESIS.validators
        if (d := keeper.delegation(state, v.owner, v.owner)) is not None
    ]
    check_hold_covers_stakes(state, delegations)  # genesis: exactly the self-stakes
    state.set_balance(HOLD_ADDRESS, state.get_balance(HOLD_ADDRESS) + 1)
    check_hold_covers_stakes(state, delegations)  # a gift to Hold stops nothing
    state.set_balance(HOLD_ADDRESS, state.get_balance(HOLD_ADDRESS) - 2)
    with pytest.raises(InvariantViolation, match="below the .* wei staked"):
        check_hold_covers_stakes(state, delegations)


def test_a_block_that_would_leave_hold_short_is_never_built() -> None:
    """A broken invariant stops the node: building raises instead of sealing the block."""

    class Thief:
        name = "thief"
        kinds: frozenset[str] = frozenset()
        fee_recipient = None

        def begin_block(self, ctx: Any, storage: Any) -> None:
            storage.set_balance(HOLD_ADDRESS, storage.get_balance(HOLD_ADDRESS) - 1)

        def end_block(self, ctx: Any, storage: Any, fees: int) -> Any:
            return BlockOutcome()

    chain = Chain(MemoryDB(), GENESIS, modules=ModuleSet([Thief(), StakingModule()]))
    ctx = chain.next_context(time=NOW, coinbase=b"\x05" * 20)
    with pytest.raises(InvariantViolation):
        chain.build_block(ctx, [])


# -- the incremental election against the full recompute -------------------------------------------
class CountingStorage(MemoryStorage):
    """A MemoryStorage that counts the storage words read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_storage(self, address: Any, slot: int, /) -> int:
        self.reads += 1
        return super().get_storage(address, slot)


def _staked_state(delegators: int) -> CountingStorage:
    """Genesis (two validators, max_vals 2, backup_vals 1), `delegators` delegations to the
    first, one election run."""
    storage = CountingStorage()
    for address, account in GENESIS.alloc:
        storage.set_balance(address, account.balance)
    write_params(storage, GENESIS.params)
    keeper.init_genesis(storage, GENESIS)
    for i in range(delegators):
        delegator = bytes([0xD0]) + i.to_bytes(19, "big")
        storage.set_balance(delegator, 2_000 * CMT)
        ctx = TxContext(delegator, 0, bytes(32), 1, 1_700_000_001, GENESIS.params)
        apply(Delegate(GENESIS.validators[0].owner, 1_000 * CMT + i * CMT), ctx, storage)
    run_election(storage, GENESIS.params)
    return storage


@pytest.mark.parametrize("delegators", [5, 60])
def test_a_quiet_election_changes_nothing_and_reads_no_delegation(delegators: int) -> None:
    """Nothing written since the last election: the same results, found without reading the
    delegations (the words read do not grow with their number)."""
    storage = _staked_state(delegators)
    run_election(storage, GENESIS.params)  # settles what the first one left dirty
    before = storage.words()
    storage.reads = 0
    assert run_election(storage, GENESIS.params) == []
    assert storage.words() == before
    assert storage.reads < 150, storage.reads


def test_incremental_and_full_elections_leave_the_same_state() -> None:
    """After a delegation and a deactivation, both elections store the same words."""
    storage = _staked_state(8)
    owner = GENESIS.validators[1].owner
    delegator = bytes([0xD0]) + (3).to_bytes(19, "big")
    ctx = TxContext(delegator, 1, bytes(32), 2, 1_700_000_002, GENESIS.params)
    apply(Delegate(owner, 500 * CMT), ctx, storage)
    apply(DeactivateCandidacy(), replace(ctx, sender=GENESIS.validators[0].owner), storage)
    full = copy.deepcopy(storage)
    updates = run_election(storage, GENESIS.params)
    assert updates == run_full_election(full, GENESIS.params)
    assert updates  # the deactivated validator leaves the set
    assert storage.words() == full.words()
    check_power_bookkeeping(storage)


def test_an_idle_chain_settles_once_then_writes_only_the_award_words() -> None:
    """Four equal validators, each above validator_size_threshold (the devnet's set): the
    first elections settle and recompute until the powers are what the settled stakes give;
    after that a block without staking activity writes only its award step's words (no
    record, ranking or dirty mark moves: its election is quiet), while what a query shows as
    a validator's award keeps growing."""
    keys = [Ed25519Key.from_seed(bytes([i + 1]) * 32) for i in range(4)]
    genesis = devnet_genesis(
        validator_pub_keys=[k.public_key for k in keys], genesis_time=1_700_000_000
    )
    assert Fraction(1, 4) > genesis.params.validator_size_threshold
    storage = MemoryStorage()
    for address, account in genesis.alloc:
        storage.set_balance(address, account.balance)
    write_params(storage, genesis.params)
    keeper.init_genesis(storage, genesis)
    module = StakingModule()
    owner = genesis.validators[0].owner

    def changed_by_block(height: int) -> set[tuple[bytes, int]]:
        before = {(account, slot): value for account, slot, value in storage.words()}
        time = 1_700_000_000 + height
        module.end_block(
            BlockContext(height, time, bytes(20), bytes(32), b"", genesis.params), storage, 0
        )
        check_power_bookkeeping(storage)
        after = {(account, slot): value for account, slot, value in storage.words()}
        return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}

    assert len(changed_by_block(1)) > 10  # the first election settles and ranks
    changed_by_block(2)
    powers = {c.owner: c.voting_power for c in keeper.candidates(storage)}
    own = keeper.delegation(storage, owner, owner)
    assert own is not None
    for height in range(3, 8):
        changed = changed_by_block(height)
        assert 0 < len(changed) <= 10, len(changed)  # minted, reserve, 4 accumulators, infos
    assert {c.owner: c.voting_power for c in keeper.candidates(storage)} == powers
    assert keeper.delegation(storage, owner, owner) == own
    assert keeper.dirty_delegations(storage) == ()
    assert unsettled_award(storage, own).total > 0
