"""The staking exception tree: every refusal of a `stake/*` transaction (SPEC §5, §6, §8).

Each refusal is a `TxRejected`, so admission (mempool, `eth_sendRawTransaction`) reports it like
any other rejected transaction, with a JSON-RPC `code`; in a block the same refusal leaves the
transaction out (`modules._guarded`). Each also carries `check_tx_code`, the Travis code of the
`cmt_*` result shape (SPEC §8: a rejected transaction is a normal result with height 0 and
`check_tx {code, log}`).

| class                    | check_tx | JSON-RPC | meaning                                  |
|--------------------------|----------|----------|------------------------------------------|
| MalformedStakingTx       | 1        | -32000   | undecodable: unknown kind or field,      |
|                          |          |          | wrong JSON type, bad number, ...         |
| UnknownCandidate         | 5        | 2005     | no such candidate                        |
| InsufficientStakingFunds | 20       | 2020     | balance below stake + fee                |
| StakingRuleViolation     | 21       | 2021     | any other SPEC §6 rule                   |
| UnknownCubeBatch         | 21       | 2022     | `cube_batch` not in `cube_pub_keys`      |
| InvalidCubeSignature     | 21       | 2023     | the Cube signature does not verify       |

The JSON-RPC codes are stable. Malformed input answers -32000 ("invalid input"), as every other
undecodable transaction does (`evm.errors.InvalidTransaction`); rule refusals live in a range of
their own, 2000 + the Travis code (2001-2099, unused by execution-apis and by the node's other
codes: 1-2 nonce, 101-103 low price, 800-809 gas, 1000-1001 pool), so a client can tell them
apart without parsing messages. Bad nonces (Travis code 6) are refused by the pool before any
staking code runs (`NonceTooLow`/`NonceTooHigh`); `check_tx_code_of` maps every `TxRejected`,
those included, to its Travis code for the `cmt_*` result.
"""

from __future__ import annotations

from cybermiles_node.errors import (
    InsufficientFunds,
    InvalidSender,
    InvalidTransaction,
    NonceTooHigh,
    NonceTooLow,
    TxRejected,
)

__all__ = [
    "CHECK_TX_BAD_NONCE",
    "CHECK_TX_INSUFFICIENT_FUNDS",
    "CHECK_TX_MALFORMED",
    "CHECK_TX_RULE",
    "CHECK_TX_UNKNOWN_CANDIDATE",
    "InsufficientStakingFunds",
    "InvalidCubeSignature",
    "MalformedStakingTx",
    "StakingRejected",
    "StakingRuleViolation",
    "UnknownCandidate",
    "UnknownCubeBatch",
    "check_tx_code_of",
]

# The Travis check_tx codes of SPEC §8.
CHECK_TX_MALFORMED = 1
CHECK_TX_UNKNOWN_CANDIDATE = 5
CHECK_TX_BAD_NONCE = 6
CHECK_TX_INSUFFICIENT_FUNDS = 20
CHECK_TX_RULE = 21


class StakingRejected(TxRejected):
    """Base of every staking refusal: a JSON-RPC `code` and a Travis `check_tx_code`."""

    code = 2000 + CHECK_TX_RULE
    check_tx_code: int = CHECK_TX_RULE


class MalformedStakingTx(StakingRejected):
    """The transaction does not decode into a staking message (SPEC §5). `field` names the
    culprit as a dotted path inside the envelope's `data` ("data.amount"), or is None when the
    kind itself is at fault."""

    code = -32000
    check_tx_code = CHECK_TX_MALFORMED

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownCandidate(StakingRejected):
    code = 2000 + CHECK_TX_UNKNOWN_CANDIDATE
    check_tx_code = CHECK_TX_UNKNOWN_CANDIDATE


class InsufficientStakingFunds(StakingRejected):
    code = 2000 + CHECK_TX_INSUFFICIENT_FUNDS
    check_tx_code = CHECK_TX_INSUFFICIENT_FUNDS


class StakingRuleViolation(StakingRejected):
    code = 2000 + CHECK_TX_RULE
    check_tx_code = CHECK_TX_RULE


class UnknownCubeBatch(StakingRuleViolation):
    """The delegation names a `cube_batch` that the `cube_pub_keys` parameter in force does not
    hold. A rule violation, not malformed input: which batches exist is chain state (governance
    may add one), so the same bytes can be valid at another height."""

    code = 2022


class InvalidCubeSignature(StakingRuleViolation):
    """A well-formed Cube signature that does not verify against its batch's key (SPEC §6)."""

    code = 2023


def check_tx_code_of(exc: TxRejected) -> int:
    """The Travis `check_tx.code` (SPEC §8) for any admission refusal: a module's refusal
    carries its own (`check_tx_code`: staking's, governance's), the rest map by kind."""
    own = getattr(exc, "check_tx_code", None)
    if isinstance(own, int):
        return own
    if isinstance(exc, NonceTooLow | NonceTooHigh):
        return CHECK_TX_BAD_NONCE
    if isinstance(exc, InsufficientFunds):
        return CHECK_TX_INSUFFICIENT_FUNDS
    if isinstance(exc, InvalidTransaction | InvalidSender):
        return CHECK_TX_MALFORMED
    return CHECK_TX_RULE
