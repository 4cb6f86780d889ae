"""The tally of SPEC §7, a pure function: votes of the current validators and backups,
weighted by their staking voting power.

approved once 3·yes ≥ 2·total, rejected once 3·no ≥ 2·total, where total is the voting power
of every current member (voters or not) and yes / no the power of the members who answered so.
A vote by an address that is no longer a member does not count; a member's later vote replaced
its earlier one already (keeper.put_vote). With no voting power at all nothing is decided (3·0
≥ 2·0 would approve everything).
"""

from __future__ import annotations

from collections.abc import Mapping

from cybermiles_node.governance.records import Result

__all__ = ["tally"]


def tally(votes: Mapping[bytes, bool], powers: Mapping[bytes, int]) -> Result:
    """APPROVED, REJECTED or OPEN (undecided) for `votes` (voter → "Y") under `powers`."""
    total = sum(powers.values())
    if total <= 0:
        return Result.OPEN
    yes = sum(power for member, power in powers.items() if votes.get(member) is True)
    no = sum(power for member, power in powers.items() if votes.get(member) is False)
    if 3 * yes >= 2 * total:
        return Result.APPROVED
    if 3 * no >= 2 * total:
        return Result.REJECTED
    return Result.OPEN
