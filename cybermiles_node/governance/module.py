"""The governance module: proposals and votes in, decisions, library versions and halts out
(DESIGN.md §7, SPEC §7).

`GovernanceModule` is what the chain's `ModuleSet` runs after staking. A `governance/*`
transaction is parsed into its message (msgs.py) and handed to rules.py, whose one guard runs
at admission (`check_tx`, against the state the next block starts from) and again in the block
(`deliver_tx`); the events become the receipt's logs, emitted by the governance account
(modules.py: topic keccak("governance/<kind>")); a proposal's fee goes to the block's
award pool in Hold, as staking's fees do.

Per block: `begin_block` settles the proposals that expire at this block; `end_block` settles
the deploy proposals whose deploy point is the next block and enables their versions (a block
runs the versions of its parent's state), and writes the program requirement of an approved
retire/upgrade whose height has come, answering a `BlockOutcome` with `halt` set: the chain
commits this block and every node stops (versions.py: "upgrade needed: <name> <version>").

Governance reads staking only through the `Electorate` it is given (the composition root
passes staking's): owner → voting power of the current validators and backups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from cybermiles_node.governance import rules
from cybermiles_node.governance.msgs import GOVERNANCE_KINDS, gas_of_kind, parse_governance_msg
from cybermiles_node.modules import BlockOutcome, SystemTxMessage, event_log
from cybermiles_node.params import read_params
from cybermiles_node.system.addresses import GOVERNANCE_ADDRESS
from cybermiles_node.system.context import BlockContext
from cybermiles_node.system.storage import SystemStorage
from evm.state import StateDB
from evm.system import Log, SystemTxResult

__all__ = ["Electorate", "GovernanceModule", "governance_log"]

# owner → voting power of every current validator and backup validator
Electorate = Callable[[SystemStorage], Mapping[bytes, int]]


def governance_log(event: rules.GovernanceEvent) -> Log:
    return event_log(GOVERNANCE_ADDRESS, "governance", event)


class GovernanceModule:
    name = "governance"
    kinds = GOVERNANCE_KINDS
    fee_recipient: bytes | None = None  # proposal fees are paid into Hold by the rules

    def __init__(self, electorate: Electorate) -> None:
        self.electorate = electorate

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        members = partial(self.electorate, storage)
        rules.settle_due(storage, ctx.height, ctx.time, members, ctx.params)

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        members = partial(self.electorate, storage)
        rules.settle_deploys(storage, ctx.height, ctx.time, members, ctx.params)
        requirement = rules.due_halts(storage, ctx.height)
        return BlockOutcome(halt=None if requirement is None else requirement.message)

    def check_tx(self, msg: SystemTxMessage, storage: StateDB, height: int, time: int) -> None:
        parsed = parse_governance_msg(msg.kind, msg.data)
        rules.check(parsed, self._context(msg, storage, height, time), storage)

    def gas_of(self, msg: SystemTxMessage, storage: StateDB) -> int:
        return gas_of_kind(msg.kind, read_params(storage))

    def deliver_tx(
        self, msg: SystemTxMessage, storage: StateDB, height: int, time: int
    ) -> SystemTxResult:
        ctx = self._context(msg, storage, height, time)
        parsed = parse_governance_msg(msg.kind, msg.data)
        events = rules.apply(parsed, ctx, storage)
        return SystemTxResult(
            True,
            gas_of_kind(msg.kind, ctx.params),
            [governance_log(e) for e in events],
            fee=rules.fee_of(parsed, ctx.params),
        )

    def _context(
        self, msg: SystemTxMessage, storage: StateDB, height: int, time: int
    ) -> rules.TxContext:
        return rules.TxContext(
            sender=msg.sender,
            tx_hash=msg.tx_hash,
            height=height,
            time=time,
            params=read_params(storage),
            members=self.electorate(storage),
        )
