"""One block pipeline for building and validating, with module hooks (DESIGN.md §7, item 2).

A module here writes what its hooks saw into its own storage, in begin_block and in end_block,
and decides a validator update. Building and validating must run it identically (same state
root, same outcome), the context must carry the block's consensus facts (proposer, the parent
commit's signers, evidence) read back from the block on the validator's side, and the decided
updates must reach consensus from `commit_block`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.keys import Ed25519Key
from consensus.types import Validator
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.consensus_app import ChainConsensus
from cybermiles_node.application.randomness import HashChainBeacon
from cybermiles_node.modules import BlockOutcome, ModuleSet, ValidatorUpdate
from cybermiles_node.params import change_param
from cybermiles_node.system.context import BlockContext
from evm.db import MemoryDB
from evm.precompiles import PRECOMPILE_GENESIS_CODE
from evm.state import StateDB
from tests.unit.test_consensus_app import GENESIS, KEYS, NOW, _addr, commit_for, transfer

# A module keeps its state in the storage of its precompile's address, which genesis creates.
RECORDER = min(PRECOMPILE_GENESIS_CODE)
NEWCOMER = Ed25519Key.from_seed(b"\x09" * 32)


@dataclass
class Recorder:
    """Stores, per block, what begin_block and end_block saw: height, signer count, time."""

    name: str = "recorder"
    kinds: frozenset[str] = frozenset()  # owns no system transaction kind
    fee_recipient: bytes | None = None
    seen: list[BlockContext] = field(default_factory=list)

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        self.seen.append(ctx)
        storage.set_storage(RECORDER, ctx.height, len(ctx.last_commit_signers) + 1)

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        storage.set_storage(RECORDER, 2**32 + ctx.height, ctx.time)
        if ctx.height == 2:
            return BlockOutcome(validator_updates=(ValidatorUpdate(NEWCOMER.public_key, 10),))
        return BlockOutcome()


def node(key: Ed25519Key) -> tuple[ChainConsensus, Recorder]:
    recorder = Recorder()
    chain = Chain(MemoryDB(), GENESIS, modules=ModuleSet([recorder]))
    consensus = ChainConsensus(
        ChainApp(chain), genesis=GENESIS, key=key, beacon=HashChainBeacon(), wall_clock=lambda: NOW
    )
    return consensus, recorder


def test_building_and_validating_run_the_same_hooks_with_the_same_context() -> None:
    (proposer, built), (follower, checked) = node(KEYS[0]), node(KEYS[1])
    proposer.app.check_tx(transfer(0))
    block1, data1 = proposer.propose_block(1, 0, _addr(KEYS[0]), None, [])
    assert follower.validate_block(1, block1, data1)
    commit1 = commit_for(follower.chain_id, 1, block1, data1)
    assert follower.commit_block(1, block1, data1, commit1) == []
    proposer.commit_block(1, block1, data1, commit1)

    block2, data2 = follower.propose_block(2, 0, _addr(KEYS[1]), commit1, [])
    assert proposer.validate_block(2, block2, data2)
    commit2 = commit_for(proposer.chain_id, 2, block2, data2)
    updates = proposer.commit_block(2, block2, data2, commit2)
    assert updates == [Validator(NEWCOMER.public_key, 10)]
    assert follower.commit_block(2, block2, data2, commit2) == updates

    # Each node ran the hooks once per block it built or validated, with equal contexts.
    assert [c.height for c in built.seen] == [1, 2] == [c.height for c in checked.seen]
    assert built.seen == checked.seen
    second = built.seen[1]
    assert second.proposer == _addr(KEYS[1])
    assert second.last_commit_signers == tuple(sorted(_addr(k) for k in KEYS))
    assert second.params == GENESIS.params
    for cons in (proposer, follower):
        state = cons.app.query()
        assert state.get_storage(RECORDER, 1) == 1  # block 1: no parent commit
        assert state.get_storage(RECORDER, 2) == 3  # block 2: both validators signed block 1
        assert state.get_storage(RECORDER, 2**32 + 2) == second.time
    assert proposer.app.head.state_root == follower.app.head.state_root


def test_a_block_whose_hooks_would_write_otherwise_is_refused() -> None:
    """The hooks' writes are in the state root: a validator without the module refuses."""
    proposer, _ = node(KEYS[0])
    plain = ChainConsensus(
        ChainApp(Chain(MemoryDB(), GENESIS)),
        genesis=GENESIS,
        key=KEYS[1],
        beacon=HashChainBeacon(),
        wall_clock=lambda: NOW,
    )
    block1, data1 = proposer.propose_block(1, 0, _addr(KEYS[0]), None, [])
    assert not plain.validate_block(1, block1, data1)


@dataclass
class PriceRaiser:
    """Raises the minimum gas price in block 1's end_block, as an approved proposal will."""

    name: str = "price-raiser"
    kinds: frozenset[str] = frozenset()
    fee_recipient: bytes | None = None

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        pass

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        if ctx.height == 1:
            change_param(storage, "gas_price", str(3 * 10**9))
        return BlockOutcome()


def test_rule_inputs_are_read_from_state_for_every_block() -> None:
    app = ChainApp(Chain(MemoryDB(), GENESIS, modules=ModuleSet([PriceRaiser()])))
    assert app.min_gas_price == 2 * 10**9
    app.check_tx(transfer(0))  # 2 gwei: full price before the change
    ctx = app.next_context(
        time=NOW, coinbase=b"\x05" * 20, randomness=b"\x00" * 32, extra_data=b"\x00" * 32
    )
    assert ctx.params.gas_price == 2 * 10**9
    app.commit(app.build_block(ctx))
    assert app.min_gas_price == 3 * 10**9
    assert app.chain.params_at_head().gas_price == 3 * 10**9
    assert app.chain.fee_rules_at_head().is_low_price(app.decode(transfer(1)))
    after = app.next_context(
        time=NOW, coinbase=b"\x05" * 20, randomness=b"\x00" * 32, extra_data=b"\x00" * 32
    )
    assert after.params.gas_price == 3 * 10**9
