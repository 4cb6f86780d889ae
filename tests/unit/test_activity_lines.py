"""The per-block and per-transaction log lines (cybermiles_node.operator.activity): what a block
of a transfer, a contract creation and a reverted creation prints, in text and JSON, and that
they pass at info when the node logs at warning only."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain, PendingBlock
from cybermiles_node.operator.activity import block_lines, log_block
from cybermiles_node.operator.config import LogConfig
from cybermiles_node.operator.logs import ACTIVITY_LOGGER, configure_logging
from evm.db import MemoryDB
from genesis import dev_accounts, devnet_genesis

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
SENDER = dev_accounts(2)[1]
RECIPIENT = bytes([9]) * 20
PRICE = 2 * 10**9
RETURN_EMPTY = bytes.fromhex("60006000f3")  # init code: PUSH1 0 PUSH1 0 RETURN
REVERT = bytes.fromhex("60006000fd")  # init code: PUSH1 0 PUSH1 0 REVERT


def _signed(nonce: int, to: bytes | None, data: bytes = b"", gas: int = 21_000) -> bytes:
    fields: dict[str, object] = {
        "value": 1 if to else 0,
        "gas": gas,
        "gasPrice": PRICE,
        "nonce": nonce,
        "chainId": GENESIS.chain_id,
        "data": data,
    }
    if to is not None:
        fields["to"] = to_checksum_address(to)
    return bytes(Account.sign_transaction(fields, SENDER.private_key).raw_transaction)


def _block() -> PendingBlock:
    app = ChainApp(Chain(MemoryDB(), GENESIS))
    outcomes = app.check_txs(
        [
            _signed(0, RECIPIENT),
            _signed(1, None, RETURN_EMPTY, gas=100_000),
            _signed(2, None, REVERT, gas=100_000),
        ]
    )
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    block = app.build_block(
        app.next_context(
            time=1_700_000_100,
            coinbase=dev_accounts(1)[0].address,
            randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )
    )
    app.commit(block)
    return block


@pytest.fixture(scope="module")
def block() -> PendingBlock:
    return _block()


@pytest.fixture()
def restore_logging() -> Iterator[None]:
    root, activity = logging.getLogger(), logging.getLogger(ACTIVITY_LOGGER)
    handlers, level, activity_level = list(root.handlers), root.level, activity.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    activity.setLevel(activity_level)


def test_one_line_per_transaction_then_the_block(block: PendingBlock) -> None:
    lines = block_lines(block)
    assert [message for message, _ in lines] == ["transaction"] * 3 + ["block"]
    sender = "0x" + SENDER.address.hex()
    transfer, created, reverted, summary = (fields for _, fields in lines)
    txs = block.result.transactions
    assert transfer == {
        "hash": "0x" + txs[0].hash.hex(),
        "from": sender,
        "to": "0x" + RECIPIENT.hex(),
        "gas_used": 21_000,
        "status": "success",
        "block": 1,
    }
    address = block.result.contract_addresses[1]
    assert address is not None
    assert created["contract_created"] == "0x" + address.hex() and "to" not in created
    assert created["status"] == "success"
    assert reverted["contract_created"] is None and reverted["status"] == "reverted"
    # Gas per transaction, not the receipts' running total; they add up to the block's.
    gas = [fields["gas_used"] for fields in (transfer, created, reverted)]
    assert all(isinstance(g, int) and g >= 21_000 for g in gas)
    assert sum(g for g in gas if isinstance(g, int)) == block.header.gas_used
    assert summary == {
        "number": 1,
        "hash": "0x" + block.hash.hex(),
        "txs": 3,
        "gas_used": block.header.gas_used,
        "time": "2023-11-14T22:15:00Z",  # 1_700_000_100
    }


def _logged(block: PendingBlock, config: LogConfig) -> str:
    stream = io.StringIO()
    configure_logging(config, stream=stream)
    log_block(block)
    logging.getLogger("other").info("an info line of another logger")
    return stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_pass_at_info_while_the_node_logs_warnings_only(block: PendingBlock) -> None:
    out = _logged(block, LogConfig(level="warning", activity=True)).splitlines()
    assert len(out) == 4  # the other logger's info line is filtered out
    tx_hash = "0x" + block.result.transactions[0].hash.hex()
    assert re.search(
        rf"INFO chain: transaction hash={tx_hash} from=0x[0-9a-f]{{40}} "
        r"to=0x0909090909090909090909090909090909090909 gas_used=21000 status=success block=1$",
        out[0],
    ), out[0]
    assert re.search(r"INFO chain: block number=1 hash=0x[0-9a-f]{64} txs=3 gas_used=\d+ ", out[3])


@pytest.mark.usefixtures("restore_logging")
def test_json_records_carry_the_same_fields(block: PendingBlock) -> None:
    records = [
        json.loads(line)
        for line in _logged(block, LogConfig(format="json", activity=True)).splitlines()
    ]
    assert [r["msg"] for r in records[:4]] == ["transaction"] * 3 + ["block"]
    for record, (_, fields) in zip(records, block_lines(block), strict=False):
        assert record["logger"] == ACTIVITY_LOGGER and record["level"] == "INFO"
        assert {k: record[k] for k in fields} == fields


@pytest.mark.usefixtures("restore_logging")
def test_without_activity_the_chain_logger_follows_the_level(block: PendingBlock) -> None:
    assert _logged(block, LogConfig(level="warning", activity=False)) == ""
