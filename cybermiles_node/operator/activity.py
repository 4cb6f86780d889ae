"""One log line per committed block and one per transaction in it, as anvil prints them.

A developer watching a devnet sees what their client did without asking the RPC:

    ... INFO chain: transaction hash=0x5c… from=0xf39f… to=0x7099… gas_used=21000 status=success
    ... INFO chain: transaction hash=0x9a… from=0xf39f… contract_created=0x5fbd… gas_used=… status=…
    ... INFO chain: block number=5 hash=0x2b… txs=2 gas_used=142000 time=2026-12-02T10:00:00Z

The transactions come first, then their block (anvil's order); every line carries `block` or
`number` so a reader can group them. In JSON format the same fields are keys of the record
(operator/logs.py). The logger is `chain` (ACTIVITY_LOGGER) and logs at info whatever the
node's level: `configure_logging` sets it from `LogConfig.activity`, which devnets turn on and
`--quiet` off; the node registers `log_block` as a commit listener only when it is on, so a node
of a real network pays nothing for it (see docs/DECISIONS.md "Block and transaction lines").

`block_lines` is pure (a committed block in, (message, fields) pairs out); `log_block` writes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Final

from cybermiles_node.application.chain import PendingBlock
from cybermiles_node.operator.logs import ACTIVITY_LOGGER, log_fields

SUCCESS: Final = b"\x01"  # a post-Byzantium receipt's status, in its state_root field

log = logging.getLogger(ACTIVITY_LOGGER)

Line = tuple[str, Mapping[str, object]]


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _utc(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def block_lines(block: PendingBlock) -> list[Line]:
    """The lines of `block`: one per transaction in block order, then the block's."""
    result = block.result
    lines: list[Line] = []
    previous_cumulative = 0
    for tx, receipt, created in zip(
        result.transactions, result.receipts, result.contract_addresses, strict=True
    ):
        fields: dict[str, object] = {"hash": _hex(tx.hash), "from": _hex(tx.sender)}
        if tx.to:
            fields["to"] = _hex(tx.to)
        else:  # a creation that failed created nothing: null
            fields["contract_created"] = _hex(created) if created else None
        fields["gas_used"] = receipt.gas_used - previous_cumulative
        fields["status"] = "success" if receipt.state_root == SUCCESS else "reverted"
        fields["block"] = block.number
        previous_cumulative = receipt.gas_used
        lines.append(("transaction", fields))
    header = block.header
    lines.append(
        (
            "block",
            {
                "number": block.number,
                "hash": _hex(block.hash),
                "txs": len(result.transactions),
                "gas_used": header.gas_used,
                "time": _utc(header.timestamp),
            },
        )
    )
    return lines


def log_block(block: PendingBlock) -> None:
    """A commit listener (ChainApp.on_commit): the block's lines at info."""
    for message, fields in block_lines(block):
        log_fields(log, logging.INFO, message, **fields)
