"""What one JSON-RPC request may cost: a work budget for batches, a size budget for responses.

Batches (`BatchBudget`, `BatchMeter`). A batch may hold `max_batch` calls, but calls differ in
cost by orders of magnitude (100 x eth_getLogs took 50 s, 20 x txpool_content 40 s). Two
budgets apply to every batch, and the first one to run out ends it:

- cost units: each method has a weight (`METHOD_COSTS`, default 1), charged before the call
  runs; this is deterministic, and it stops a batch of heavy calls before it starts them;
- wall-clock time: once the batch has run for `max_seconds`, no further call starts (a call
  already running finishes, so a batch lasts at most max_seconds + one call).

From the first call that does not fit, that call and every later one are answered with -32005
"batch budget exhausted", while earlier calls keep their answers: a client can resend the tail.
Single requests (not in a batch) are bounded by each method's own limits instead.

Responses (`ResponseBudget`, `*_json_bytes`). Methods whose answer grows with the data
(eth_getLogs, txpool_content, full blocks, block receipts) add up a LOWER BOUND of each item's
JSON size before formatting it and refuse with -32005 as soon as the sum passes
`max_response_bytes`, instead of building a huge answer and measuring it afterwards. The
estimates only ever under-count, so nothing that fits is refused; the dispatcher still measures
the encoded response and replaces one that is too large.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from rpc.errors import LimitExceeded

__all__ = [
    "DEFAULT_BATCH_BUDGET",
    "METHOD_COSTS",
    "BatchBudget",
    "BatchMeter",
    "ResponseBudget",
    "log_json_bytes",
    "receipt_json_bytes",
    "tx_json_bytes",
]

DEFAULT_COST: Final = 1
# Weights in cost units, roughly milliseconds of work of a typical call on a devnet node. Blocks
# stay at the default 1 (clients fetch hundreds in one batch); full blocks are bounded by the
# response-size estimate instead. The cmt_* staking and governance transactions sign like
# eth_sendTransaction, then wait for their block without working: in a batch that wait counts
# against the time budget, so a batch of them stops after max_seconds (+ the one call waiting).
_STAKING_TX_COST: Final = 2
# personal_* calls that run the key file's KDF (scrypt, ~1 s at geth's standard cost, one at a
# time: rpc/personal.py): one fills a default batch, so a batch cannot queue hundreds of them.
_KDF_COST: Final = 1000
METHOD_COSTS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "cmt_acceptCandidacyAccountUpdate": _STAKING_TX_COST,
        "cmt_activateCandidacy": _STAKING_TX_COST,
        "cmt_deactivateCandidacy": _STAKING_TX_COST,
        "cmt_declareCandidacy": _STAKING_TX_COST,
        # a block's or up to 100 pool transactions, each with its outcome (rpc/cmt_chain.py)
        "cmt_getBlockByNumber": 10,
        "cmt_getPendingTransactions": 10,
        "cmt_delegate": _STAKING_TX_COST,
        "cmt_proposeChangeParam": _STAKING_TX_COST,
        "cmt_proposeDeployLibEni": _STAKING_TX_COST,
        "cmt_proposeRetireProgram": _STAKING_TX_COST,
        "cmt_proposeTransferFund": _STAKING_TX_COST,
        "cmt_proposeUpgradeProgram": _STAKING_TX_COST,
        "cmt_sendRawTx": _STAKING_TX_COST,
        "cmt_setCompRate": _STAKING_TX_COST,
        "cmt_updateCandidacy": _STAKING_TX_COST,
        "cmt_updateCandidacyAccount": _STAKING_TX_COST,
        "cmt_verifyCandidacy": _STAKING_TX_COST,
        "cmt_vote": _STAKING_TX_COST,
        "cmt_withdraw": _STAKING_TX_COST,
        "cmt_withdrawCandidacy": _STAKING_TX_COST,
        # traces replay a block up to the transaction and record every step (rpc/debug.py)
        "debug_traceBlockByHash": 200,
        "debug_traceBlockByNumber": 200,
        "debug_traceCall": 50,
        "debug_traceTransaction": 100,
        "eth_call": 20,
        "eth_estimateGas": 50,
        "eth_feeHistory": 10,
        "eth_getBlockReceipts": 10,
        "eth_getFilterLogs": 50,
        "eth_getLogs": 50,
        "eth_getProof": 5,
        "eth_sendTransaction": 2,
        "personal_newAccount": _KDF_COST,
        "personal_sign": _KDF_COST,
        "personal_unlockAccount": _KDF_COST,
        "trace_transaction": 100,
        "txpool_content": 100,
    }
)


@dataclass(frozen=True)
class BatchBudget:
    """What one batch may spend (rpc.batch_max_cost, rpc.batch_time_budget)."""

    max_cost: int = 1000
    max_seconds: float = 5.0
    costs: Mapping[str, int] = field(default_factory=lambda: METHOD_COSTS)

    def cost_of(self, method: str) -> int:
        return self.costs.get(method, DEFAULT_COST)


DEFAULT_BATCH_BUDGET: Final = BatchBudget()


class BatchMeter:
    """The spending of one batch; once a call is refused, every later call is refused too."""

    def __init__(self, budget: BatchBudget, clock: Callable[[], float]) -> None:
        self.budget = budget
        self.spent = 0
        self._clock = clock
        self._started = clock()
        self._refusal: LimitExceeded | None = None

    def refusal(self, method: str, calls: int = 1) -> LimitExceeded | None:
        """None if `calls` calls of `method` may run (and charges them), else the error."""
        if self._refusal is None:
            self._refusal = self._check(method, calls)
        return self._refusal

    def _check(self, method: str, calls: int) -> LimitExceeded | None:
        budget = self.budget
        cost = budget.cost_of(method) * calls
        if self.spent + cost > budget.max_cost:
            return _exhausted(
                f"{self.spent} of {budget.max_cost} cost units spent, {method} costs "
                f"{budget.cost_of(method)}"
            )
        if self._clock() - self._started > budget.max_seconds:
            return _exhausted(f"the batch ran for more than {budget.max_seconds:g} s")
        self.spent += cost
        return None


def _exhausted(reason: str) -> LimitExceeded:
    return LimitExceeded(
        f"batch budget exhausted ({reason}): this call and the rest of the batch were not run; "
        "send them in another request"
    )


# Lower bounds of JSON sizes, in bytes: the keys and fixed-width values (hashes, addresses) every
# item always has, rounded down; variable fields count only their hex payload.
_LOG_FIXED: Final = 300  # a log without its topics and data
_TOPIC: Final = 67  # "0x" + 64 hex digits and quotes
_TX_FIXED: Final = 400  # a transaction without its input
_RECEIPT_FIXED: Final = 500  # a receipt without its logs and logs bloom
_BLOOM: Final = 514  # "0x" + 512 hex digits


def log_json_bytes(topics: int, data_len: int) -> int:
    return _LOG_FIXED + _TOPIC * topics + 2 * data_len


def tx_json_bytes(data_len: int) -> int:
    return _TX_FIXED + 2 * data_len


def receipt_json_bytes(log_bytes: int) -> int:
    return _RECEIPT_FIXED + _BLOOM + log_bytes


class ResponseBudget:
    """Adds up estimated response bytes; raises -32005 once they pass `max_bytes`."""

    def __init__(self, max_bytes: int, what: str) -> None:
        self.max_bytes = max_bytes
        self.what = what
        self.estimated = 0

    def charge(self, size: int) -> None:
        self.estimated += size
        if self.estimated > self.max_bytes:
            raise LimitExceeded(
                f"response too large: {self.what} would exceed {self.max_bytes} bytes "
                "(rpc.max_response_bytes); narrow the query"
            )
