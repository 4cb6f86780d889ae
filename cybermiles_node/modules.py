"""The modules of the chain application and the order they run in (DESIGN.md §7).

A module (params, staking, governance) takes part in every block through two hooks around the
block's transactions: `begin_block(ctx, storage)` before the first one and
`end_block(ctx, storage)` after the last one, both on the block's own state, so their writes
land in the block's state root. `end_block` answers a `BlockOutcome`: validator updates for
consensus (effective at H+2), events, and an optional halt. `ModuleSet` runs its modules in a
fixed order and merges their outcomes; with no modules a block is the plain Ethereum block.

Modules see the state only through `SystemStorage`-like access (the block's `StateDB`): no
trio, disk, clock, rpc or consensus inside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cybermiles_node.system.context import BlockContext
from evm.state import StateDB

__all__ = ["NO_MODULES", "BlockOutcome", "Module", "ModuleSet", "ValidatorUpdate"]


@dataclass(frozen=True)
class ValidatorUpdate:
    """A change of the consensus set decided by a block: power 0 removes the validator."""

    pub_key: bytes  # ed25519
    power: int


@dataclass(frozen=True)
class BlockOutcome:
    """What a block decided beyond its transactions."""

    validator_updates: tuple[ValidatorUpdate, ...] = ()
    # The node must stop after committing this block, with this message (governance upgrades).
    halt: str | None = None

    def merged(self, other: BlockOutcome) -> BlockOutcome:
        if self.halt is not None and other.halt is not None:
            halt: str | None = f"{self.halt}; {other.halt}"
        else:
            halt = self.halt if self.halt is not None else other.halt
        return BlockOutcome(self.validator_updates + other.validator_updates, halt)


class Module(Protocol):
    name: str

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None: ...

    def end_block(self, ctx: BlockContext, storage: StateDB) -> BlockOutcome: ...


class ModuleSet:
    """Runs `modules` in their given (fixed) order around each block's transactions."""

    def __init__(self, modules: Sequence[Module] = ()) -> None:
        self.modules = tuple(modules)

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        for module in self.modules:
            module.begin_block(ctx, storage)

    def end_block(self, ctx: BlockContext, storage: StateDB) -> BlockOutcome:
        outcome = BlockOutcome()
        for module in self.modules:
            outcome = outcome.merged(module.end_block(ctx, storage))
        return outcome


NO_MODULES = ModuleSet()
