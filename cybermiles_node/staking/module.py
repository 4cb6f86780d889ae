"""The staking module: staking transactions in, elections and payouts out (DESIGN.md §7).

`StakingModule` is what the chain's `ModuleSet` runs. A `stake/*` transaction is parsed into its
message (`msgs.py`) and handed to `rules.py`, whose one guard runs at admission (`check_tx`,
against the state the next block starts from) and again in the block (`deliver_tx`, then the
effect); the effect's events become the receipt's logs, emitted by the staking account, and its
fee goes to the block's award pool. At the end of every block, in this order: the block's award
pool (block award + fees) is distributed to the present validators and backups
(`rewards.py`), double signers and validators absent too long are deactivated and slashed
(`slashing.py`), unstake requests that matured are paid from Hold, and every `cal_vp_interval`
blocks the validators are elected again (`election.py`); the changes of the consensus set go to
consensus in the block's outcome. The module names Hold as the block's fee recipient, so EVM
fees reach the pool too.

Event logs (modules.py): topic 0 is keccak256 of the event's name ("stake/<kind>"); the
data is the event's fields as canonical JSON, so wallets can read what a staking transaction did
without an ABI.
"""

from __future__ import annotations

from cybermiles_node.modules import BlockOutcome, SystemTxMessage, ValidatorUpdate
from cybermiles_node.modules import event_log as system_event_log
from cybermiles_node.params import read_params
from cybermiles_node.staking import keeper, rewards, rules, slashing
from cybermiles_node.staking.election import run_election
from cybermiles_node.staking.msgs import STAKING_KINDS, gas_of_kind, parse_staking_msg
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS, STAKING_ADDRESS
from cybermiles_node.system.context import BlockContext
from evm.state import StateDB
from evm.system import Log, SystemTxResult

__all__ = ["StakingModule", "event_log"]


class StakingModule:
    name = "staking"
    kinds = STAKING_KINDS
    fee_recipient: bytes | None = HOLD_ADDRESS  # the award pool is kept in Hold

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        pass

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        # Every fee of the block: its transactions' and those paid inside calls (precompiles).
        pool_fees = fees + ledger.take_pool_fees(storage)
        # Read once: the awards need the set, and the election's quiet check needs it as it is
        # unless something was written since (which the check finds first).
        members = keeper.consensus_set(storage)
        rewards.distribute_block_awards(storage, ctx, pool_fees, members)
        slashing.punish_double_signs(storage, ctx)
        slashing.punish_absence(storage, ctx)
        rules.mature_unstakes(storage, ctx.height)
        if ctx.height % ctx.params.cal_vp_interval:
            return BlockOutcome()
        changes = run_election(storage, ctx.params, members=members)
        return BlockOutcome(validator_updates=tuple(ValidatorUpdate(k, p) for k, p in changes))

    def check_tx(self, msg: SystemTxMessage, storage: StateDB, height: int, time: int) -> None:
        rules.check(
            parse_staking_msg(msg.kind, msg.data), _context(msg, storage, height, time), storage
        )

    def gas_of(self, msg: SystemTxMessage, storage: StateDB) -> int:
        return gas_of_kind(msg.kind, read_params(storage))

    def deliver_tx(
        self, msg: SystemTxMessage, storage: StateDB, height: int, time: int
    ) -> SystemTxResult:
        ctx = _context(msg, storage, height, time)
        parsed = parse_staking_msg(msg.kind, msg.data)
        events = rules.apply(parsed, ctx, storage)
        return SystemTxResult(
            True,
            gas_of_kind(msg.kind, ctx.params),
            [event_log(e) for e in events],
            fee=rules.fee_of(parsed, ctx.params),
        )


def _context(msg: SystemTxMessage, storage: StateDB, height: int, time: int) -> rules.TxContext:
    return rules.TxContext(
        sender=msg.sender,
        nonce=msg.nonce,
        tx_hash=msg.tx_hash,
        height=height,
        time=time,
        params=read_params(storage),
    )


def event_log(event: rules.StakingEvent) -> Log:
    """The receipt log of a staking event (modules.py: topic keccak("stake/<kind>"))."""
    return system_event_log(STAKING_ADDRESS, "stake", event)
