"""Governance records (SPEC §7): a proposal with its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cybermiles_node.governance.msgs import ProposalMsg

__all__ = ["Proposal", "Result"]


class Result(Enum):
    OPEN = ""  # Travis's `Result` while undecided
    APPROVED = "Approved"
    REJECTED = "Rejected"
    EXPIRED = "Expired"


@dataclass(frozen=True)
class Proposal:
    """A proposal: the message that made it, who and when, its expiry, and its outcome.

    `expire_block_height` / `expire_timestamp`: exactly one is non-zero. For deploy_libeni,
    retire_program and upgrade_program the expiry is the height (or time) the decision takes
    effect at: voting ends there. `executed` marks an approved proposal whose effect has run
    (a deployed library, a halt written); transfer_fund and change_param execute when decided.
    """

    id: bytes  # the proposing transaction's hash
    seq: int  # creation order, from 1
    msg: ProposalMsg
    proposer: bytes
    block_height: int
    expire_block_height: int
    expire_timestamp: int
    result: Result = Result.OPEN
    result_msg: str = ""
    result_block_height: int = 0
    executed: bool = False

    @property
    def kind(self) -> str:
        return self.msg.KIND

    @property
    def type_name(self) -> str:
        """Travis's `Type`: the kind without its "governance/propose/" prefix."""
        return self.msg.KIND.rsplit("/", 1)[1]
