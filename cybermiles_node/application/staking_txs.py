"""What the cmt_* staking and governance transaction methods need of the node (rpc/cmt_tx.py's
`CmtTxBackend`).

`CmtTransactions` submits a signed transaction through `ChainApp.check_tx` (the admission of
eth_sendRawTransaction) and turns a refusal into Travis's check_tx code with
`staking.errors.check_tx_code_of`; once the transaction is in a committed block it reads the
outcome back from the block's receipts:
- gasUsed: the receipt's own gas (cumulative minus the previous receipt's);
- fee: gasUsed × the gas_price in force for that block (the parameters after its parent), which
  is what the staking rules charge (`gas_of_kind × gas_price`);
- log: the receipt's log payloads (the modules' canonical event JSON) as one JSON array;
- data: for an account update request, its id as decimal text (from the staking module's
  `account_update_requested` event); for a governance proposal, its id's 32 bytes (from the
  governance module's `proposed` event: Travis's result data is the proposing tx hash); else
  empty.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from cybermiles_node.application.app import ChainApp
from cybermiles_node.errors import TxRejected
from cybermiles_node.governance.rules import EventKind as GovernanceEventKind
from cybermiles_node.staking.errors import check_tx_code_of
from cybermiles_node.staking.rules import EventKind
from rpc.cmt_tx import Admission, CheckTx, DeliverTx

__all__ = ["CmtTransactions"]

# event name → the result bytes it carries (one event per transaction has any)
_RESULT_OF_EVENT: Mapping[str, Callable[[Mapping[str, Any]], bytes]] = {
    f"stake/{EventKind.ACCOUNT_UPDATE_REQUESTED.value}": lambda e: str(e["request_id"]).encode(),
    f"governance/{GovernanceEventKind.PROPOSED.value}": lambda e: bytes.fromhex(
        str(e["proposal_id"]).removeprefix("0x")
    ),
}


class CmtTransactions:
    def __init__(self, app: ChainApp) -> None:
        self.app = app

    @property
    def chain_id(self) -> int:
        return self.app.chain.chain_id

    def pending_nonce(self, sender: bytes) -> int:
        return self.app.mempool.pending_nonce(sender)

    def submit(self, raw: bytes) -> Admission:
        try:
            tx = self.app.check_tx(raw)
        except TxRejected as exc:
            return Admission(CheckTx(check_tx_code_of(exc), exc.message), system=False)
        return Admission(CheckTx(0), system=tx.is_system)

    def is_pending(self, tx_hash: bytes) -> bool:
        return tx_hash in self.app.mempool

    def delivered(self, tx_hash: bytes) -> DeliverTx | None:
        chain = self.app.chain
        found = chain.located_receipt(tx_hash)  # one receipt: a block's worth costs O(block)
        if found is None:
            return None
        number = int(found.header.block_number)
        parent = chain.header_by_number(number - 1)
        if parent is None:
            return None  # not stored yet: the next block notification looks again
        receipt = found.stored.receipt
        gas_used = found.gas_used
        payloads = [bytes(log.data).decode("utf-8", "replace") for log in receipt.logs]
        return DeliverTx(
            height=number,
            success=receipt.state_root == b"\x01",
            data=_result_data(payloads),
            gas_used=gas_used,
            fee=gas_used * chain.params_at(parent).gas_price,
            log=f"[{','.join(payloads)}]" if payloads else "",
        )


def _result_data(payloads: list[str]) -> bytes:
    """Travis's result bytes: an account update request's id as decimal text, a proposal's id,
    else nothing."""
    for payload in payloads:
        try:
            event = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        result = _RESULT_OF_EVENT.get(str(event.get("event")))
        if result is not None:
            return result(event)
    return b""
