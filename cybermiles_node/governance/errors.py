"""The governance exception tree: every refusal of a `governance/*` transaction (SPEC §5, §7).

As staking's (staking/errors.py): each refusal is a `TxRejected` with a stable JSON-RPC `code`
and the Travis `check_tx_code` of the cmt_* result shape (a refused transaction is a result with
height 0 and `check_tx {code, log}`); in a block the same refusal leaves the transaction out.

| class                       | check_tx | JSON-RPC | meaning                                 |
|-----------------------------|----------|----------|-----------------------------------------|
| MalformedGovernanceTx       | 1        | -32000   | undecodable: unknown kind or field,     |
|                             |          |          | wrong JSON type, bad number, ...        |
| UnknownProposal             | 5        | 3005     | no proposal with that id                |
| InsufficientGovernanceFunds | 20       | 3020     | balance below the amount or the fee     |
| GovernanceRuleViolation     | 21       | 3021     | any other SPEC §7 rule (expiry, param,  |
|                             |          |          | version, decided proposal, ...)         |
| NotAValidator               | 21       | 3022     | the sender owns no current validator or |
|                             |          |          | backup                                  |

Governance codes are 3000 + the Travis code (3001-3099), beside staking's 2001-2099.
"""

from __future__ import annotations

from cybermiles_node.errors import TxRejected
from cybermiles_node.staking.errors import (
    CHECK_TX_INSUFFICIENT_FUNDS,
    CHECK_TX_MALFORMED,
    CHECK_TX_RULE,
    CHECK_TX_UNKNOWN_CANDIDATE,
)

__all__ = [
    "GovernanceRejected",
    "GovernanceRuleViolation",
    "InsufficientGovernanceFunds",
    "MalformedGovernanceTx",
    "NotAValidator",
    "UnknownProposal",
]


class GovernanceRejected(TxRejected):
    """Base of every governance refusal: a JSON-RPC `code` and a Travis `check_tx_code`."""

    code = 3000 + CHECK_TX_RULE
    check_tx_code: int = CHECK_TX_RULE


class MalformedGovernanceTx(GovernanceRejected):
    """The transaction does not decode into a governance message (SPEC §5); `field` names the
    culprit ("data.amount"), or is None when the kind itself is at fault."""

    code = -32000
    check_tx_code = CHECK_TX_MALFORMED

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownProposal(GovernanceRejected):
    code = 3005
    check_tx_code = CHECK_TX_UNKNOWN_CANDIDATE  # Travis's "unknown" code (5)


class InsufficientGovernanceFunds(GovernanceRejected):
    code = 3020
    check_tx_code = CHECK_TX_INSUFFICIENT_FUNDS


class GovernanceRuleViolation(GovernanceRejected):
    code = 3021


class NotAValidator(GovernanceRejected):
    code = 3022
