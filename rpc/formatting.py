"""Ethereum JSON shapes of blocks, transactions, receipts and logs (execution-apis schemas).

Pure functions from the node's records to the dicts the JSON-RPC methods return. Quantities are
lowercase hex without leading zeros, data is 0x hex, addresses lowercase (EIP-55 checksums
are the client's business). Pending transactions carry null block fields, as geth does.

A block's own fields, which every transaction, receipt and log JSON of the block repeats, are
formatted once per block (`BlockFields`), not once per entry: a block of a thousand receipts
formats its hash a thousand times otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import rlp
from eth.abc import BlockHeaderAPI

from evm.transactions import SignedTx


def q(value: int) -> str:
    return hex(value)


def d(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def topic(value: int | bytes) -> str:
    if isinstance(value, int):
        return f"0x{value:064x}"
    return d(value)


@dataclass(frozen=True)
class BlockFields:
    """The fields of a block that its transactions, receipts and logs carry, as JSON."""

    hash: str
    number: str
    timestamp: str
    base_fee: int  # an int: each transaction's effective price is computed from it

    @classmethod
    def of(cls, header: BlockHeaderAPI) -> BlockFields:
        return cls(
            hash="0x" + bytes(header.hash).hex(),
            number=hex(header.block_number),
            timestamp=hex(header.timestamp),
            base_fee=header.base_fee_per_gas or 0,
        )


def header_json(header: Any, *, size: int | None = None) -> dict[str, Any]:
    """A Prague header as JSON (the fork fields are always present on this chain; a lity
    block's baseFeePerGas is 0)."""
    encoded = rlp.encode(header)
    result = {
        "number": q(header.block_number),
        "hash": d(header.hash),
        "parentHash": d(header.parent_hash),
        "nonce": d(header.nonce),
        "sha3Uncles": d(header.uncles_hash),
        "logsBloom": "0x" + header.bloom.to_bytes(256, "big").hex(),
        "transactionsRoot": d(header.transaction_root),
        "stateRoot": d(header.state_root),
        "receiptsRoot": d(header.receipt_root),
        "miner": d(header.coinbase),
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": d(header.extra_data),
        "size": q(size if size is not None else len(encoded)),
        "gasLimit": q(header.gas_limit),
        "gasUsed": q(header.gas_used),
        "timestamp": q(header.timestamp),
        "mixHash": d(header.mix_hash),
        "baseFeePerGas": q(header.base_fee_per_gas),
        "withdrawalsRoot": d(header.withdrawals_root),
        "blobGasUsed": q(header.blob_gas_used),
        "excessBlobGas": q(header.excess_blob_gas),
        "parentBeaconBlockRoot": d(header.parent_beacon_block_root),
        "requestsHash": d(header.requests_hash),
    }
    return result


def block_json(header: BlockHeaderAPI, txs: list[SignedTx], *, full: bool) -> dict[str, Any]:
    header_size = len(rlp.encode(header))
    body_size = sum(len(tx.raw) + 3 for tx in txs)
    result = header_json(header, size=header_size + body_size + 6)
    if full:
        block = BlockFields.of(header)
        result["transactions"] = [tx_json(tx, block=block, index=i) for i, tx in enumerate(txs)]
    else:
        result["transactions"] = [d(tx.hash) for tx in txs]
    result["uncles"] = []
    result["withdrawals"] = []
    return result


def _access_list(tx: Any) -> list[dict[str, Any]]:
    return [
        {"address": d(address), "storageKeys": [f"0x{slot:064x}" for slot in slots]}
        for address, slots in tx.access_list
    ]


def tx_json(
    stx: SignedTx, *, block: BlockFields | None = None, index: int | None = None
) -> dict[str, Any]:
    """A transaction as JSON; with its `block` and `index` when it is committed."""
    tx: Any = stx.tx
    result: dict[str, Any] = {
        "blockHash": block.hash if block is not None else None,
        "blockNumber": block.number if block is not None else None,
        "blockTimestamp": block.timestamp if block is not None else None,
        "transactionIndex": hex(index) if index is not None else None,
        "hash": d(stx.hash),
        "from": d(stx.sender),
        "to": d(stx.to) if stx.to else None,
        "nonce": q(stx.nonce),
        "gas": q(stx.gas),
        "value": q(stx.value),
        "input": d(stx.data),
        "type": q(stx.type_id),
        # geth's: what it paid in its block; a pending one's fee cap.
        "gasPrice": q(stx.fee_cap if block is None else stx.price(block.base_fee)),
        "r": q(tx.r),
        "s": q(tx.s),
    }
    if stx.type_id == 0:
        result["v"] = q(tx.v)
        result["chainId"] = q(tx.chain_id)
        return result
    result["chainId"] = q(tx.chain_id)
    result["accessList"] = _access_list(tx)
    result["yParity"] = q(tx.y_parity)
    result["v"] = q(tx.y_parity)
    if stx.type_id >= 2:
        result["maxFeePerGas"] = q(tx.max_fee_per_gas)
        result["maxPriorityFeePerGas"] = q(tx.max_priority_fee_per_gas)
    if stx.type_id == 4:
        result["authorizationList"] = [
            {
                "chainId": q(auth.chain_id),
                "address": d(auth.address),
                "nonce": q(auth.nonce),
                "yParity": q(auth.y_parity),
                "r": q(auth.r),
                "s": q(auth.s),
            }
            for auth in tx.authorization_list
        ]
    return result


def logs_json(
    receipt: Any, *, block: BlockFields, tx_hash: str, tx_index: int, first_log_index: int
) -> list[dict[str, Any]]:
    """A receipt's logs as JSON; `tx_hash` already formatted (the receipt has it too)."""
    tx_index_json = hex(tx_index)
    return [
        {
            "address": "0x" + log.address.hex(),
            "topics": [f"0x{t:064x}" for t in log.topics],
            "data": "0x" + log.data.hex(),
            "blockNumber": block.number,
            "blockHash": block.hash,
            "blockTimestamp": block.timestamp,
            "transactionHash": tx_hash,
            "transactionIndex": tx_index_json,
            "logIndex": hex(first_log_index + i),
            "removed": False,
        }
        for i, log in enumerate(receipt.logs)
    ]


class ReceiptTx(Protocol):
    """What a receipt's JSON takes from its transaction: a `SignedTx`, or the summary a
    receipt lookup cuts from the stored bytes (evm.receipt_decoding.TxSummary)."""

    @property
    def hash(self) -> bytes: ...
    @property
    def sender(self) -> bytes: ...
    @property
    def to(self) -> bytes: ...
    @property
    def type_id(self) -> int: ...
    def price(self, base_fee: int) -> int: ...


def receipt_json(
    stored: Any,
    *,
    block: BlockFields,
    tx: ReceiptTx,
    tx_index: int,
    gas_used: int,
    first_log_index: int,
) -> dict[str, Any]:
    """A stored receipt (receipt + contract address) as JSON. `gas_used` and
    `first_log_index` depend on the transactions before it in the block: the caller has them
    (chain's "t" record, or counted over the block)."""
    receipt = stored.receipt
    tx_hash = "0x" + tx.hash.hex()
    contract = stored.contract_address
    to = tx.to
    return {
        "transactionHash": tx_hash,
        "transactionIndex": hex(tx_index),
        "blockHash": block.hash,
        "blockNumber": block.number,
        "from": "0x" + tx.sender.hex(),
        "to": "0x" + to.hex() if to else None,
        "cumulativeGasUsed": hex(receipt.gas_used),
        "gasUsed": hex(gas_used),
        "contractAddress": "0x" + contract.hex() if contract else None,
        "logs": logs_json(
            receipt,
            block=block,
            tx_hash=tx_hash,
            tx_index=tx_index,
            first_log_index=first_log_index,
        )
        if receipt.logs
        else [],
        "logsBloom": "0x" + receipt.bloom.to_bytes(256, "big").hex(),
        "type": hex(tx.type_id),
        "status": "0x1" if receipt.state_root == b"\x01" else "0x0",
        "effectiveGasPrice": hex(tx.price(block.base_fee)),
    }
