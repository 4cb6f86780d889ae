"""Absence and double-sign punishment at the end of a block (SPEC §6), O(validators) per block.

Absence: consensus tells the block who could have signed its parent's commit
(`BlockContext.last_commit_validators`) and who did (`last_commit_signers`). Each member of that
set that did not sign has missed one more commit in a row; one that signed starts again from 0.
A candidate that reaches `max_slash_blocks` misses in a row is deactivated (it leaves the set at
this block's election, in consensus at H+2) and, when `slash_enabled`, each of its delegations
loses floor(shares × slash_ratio). Its count starts again from 0. Without commit information
(block 1, the one-node automine devnet) nobody is counted.

Double sign: every `Misbehaviour` the block carries (committed duplicate-vote evidence) slashes
the offender's delegations whatever `slash_enabled` says, and deactivates it.

Slashed CMT is burned: taken from Hold and from the supply through the ledger (SPEC §6,
**Ours**). Each delegation is settled first, so what it earned before the slash is credited at
the power it held. Validators are named by consensus address; the keeper maps an address to the
owner that last used its key, so an owner whose key changed is still found.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from math import floor

from cybermiles_node.staking import keeper, rewards
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS
from cybermiles_node.system.context import BlockContext
from cybermiles_node.system.storage import SystemStorage

__all__ = ["Punishment", "PunishmentReason", "punish_absence", "punish_double_signs"]


class PunishmentReason(Enum):
    ABSENCE = "absence"
    DOUBLE_SIGN = "double_sign"


@dataclass(frozen=True)
class Punishment:
    """A candidate deactivated at this block, with the wei burned from its delegations."""

    owner: bytes
    reason: PunishmentReason
    slashed: int


def punish_absence(storage: SystemStorage, ctx: BlockContext) -> tuple[Punishment, ...]:
    """Count the parent's commit; deactivate (and maybe slash) who missed too many in a row."""
    signers = frozenset(ctx.last_commit_signers)
    punished = []
    for address in ctx.last_commit_validators:
        owner = keeper.owner_of_address(storage, address)
        if owner is None:
            continue
        missed = keeper.absences(storage, owner)
        if address in signers or not _punishable(storage, owner):
            if missed:
                keeper.put_absences(storage, owner, 0)
            continue
        missed += 1
        if missed < ctx.params.max_slash_blocks:
            keeper.put_absences(storage, owner, missed)
            continue
        keeper.put_absences(storage, owner, 0)
        slashing = ctx.params.slash_enabled
        punished.append(_punish(storage, owner, PunishmentReason.ABSENCE, slashing, ctx))
    return tuple(p for p in punished if p is not None)


def _punishable(storage: SystemStorage, owner: bytes) -> bool:
    """Active and not withdrawn: a deactivated validator still in consensus for two more
    blocks (updates take effect at H+2) is not punished twice for the same absence."""
    candidate = keeper.candidate(storage, owner)
    return candidate is not None and candidate.active and not candidate.withdrawn


def punish_double_signs(storage: SystemStorage, ctx: BlockContext) -> tuple[Punishment, ...]:
    """Slash and deactivate every validator the block's evidence shows double-signing."""
    punished = []
    for address in sorted({m.validator for m in ctx.misbehaviour}):
        owner = keeper.owner_of_address(storage, address)
        if owner is not None:
            punished.append(_punish(storage, owner, PunishmentReason.DOUBLE_SIGN, True, ctx))
    return tuple(p for p in punished if p is not None)


def _punish(
    storage: SystemStorage,
    owner: bytes,
    reason: PunishmentReason,
    slashing: bool,
    ctx: BlockContext,
) -> Punishment | None:
    candidate = keeper.candidate(storage, owner)
    if candidate is None or candidate.withdrawn:
        return None
    slashed = _slash(storage, owner, ctx) if slashing else 0
    candidate = keeper.candidate(storage, owner)  # settling and slashing rewrote it
    assert candidate is not None
    keeper.put_candidate(storage, replace(candidate, active=False))
    return Punishment(owner, reason, slashed)


def _slash(storage: SystemStorage, owner: bytes, ctx: BlockContext) -> int:
    """Burn floor(shares × slash_ratio) of every delegation to `owner`; the total burned."""
    ratio = ctx.params.slash_ratio
    total = 0
    for record in keeper.delegations_to(storage, owner):
        settled = rewards.settle(storage, record)
        amount = floor(settled.shares * ratio)
        if amount <= 0:
            continue
        keeper.put_delegation(storage, replace(settled, slash_amount=settled.slash_amount + amount))
        ledger.burn(storage, HOLD_ADDRESS, amount)
        total += amount
    candidate = keeper.candidate(storage, owner)
    assert candidate is not None
    keeper.put_candidate(storage, replace(candidate, shares=candidate.shares - total))
    return total
