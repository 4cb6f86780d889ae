"""Ethereum JSON shapes of blocks, transactions, receipts and logs (execution-apis schemas).

Pure functions from the node's records to the dicts the JSON-RPC methods return. Quantities are
lowercase hex without leading zeros, data is 0x hex, addresses lowercase (EIP-55 checksums
are the client's business). Pending transactions carry null block fields, as geth does.
"""

from __future__ import annotations

from typing import Any

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
        result["transactions"] = [tx_json(tx, header=header, index=i) for i, tx in enumerate(txs)]
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
    stx: SignedTx, *, header: BlockHeaderAPI | None = None, index: int | None = None
) -> dict[str, Any]:
    tx: Any = stx.tx
    result: dict[str, Any] = {
        "blockHash": d(header.hash) if header is not None else None,
        "blockNumber": q(header.block_number) if header is not None else None,
        "blockTimestamp": q(header.timestamp) if header is not None else None,
        "transactionIndex": q(index) if index is not None else None,
        "hash": d(stx.hash),
        "from": d(stx.sender),
        "to": d(stx.to) if stx.to else None,
        "nonce": q(stx.nonce),
        "gas": q(stx.gas),
        "value": q(stx.value),
        "input": d(stx.data),
        "type": q(stx.type_id),
        # geth's: what it paid in its block; a pending one's fee cap.
        "gasPrice": q(stx.fee_cap if header is None else stx.price(header.base_fee_per_gas or 0)),
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
    receipt: Any, *, header: BlockHeaderAPI, tx: SignedTx, tx_index: int, first_log_index: int
) -> list[dict[str, Any]]:
    block_hash = d(header.hash)
    number = q(header.block_number)
    timestamp = q(header.timestamp)
    tx_hash = d(tx.hash)
    return [
        {
            "address": d(log.address),
            "topics": [topic(t) for t in log.topics],
            "data": d(log.data),
            "blockNumber": number,
            "blockHash": block_hash,
            "blockTimestamp": timestamp,
            "transactionHash": tx_hash,
            "transactionIndex": q(tx_index),
            "logIndex": q(first_log_index + i),
            "removed": False,
        }
        for i, log in enumerate(receipt.logs)
    ]


def receipt_json(
    stored: Any,
    *,
    header: BlockHeaderAPI,
    tx: SignedTx,
    tx_index: int,
    previous_cumulative: int,
    first_log_index: int,
) -> dict[str, Any]:
    receipt = stored.receipt
    return {
        "transactionHash": d(tx.hash),
        "transactionIndex": q(tx_index),
        "blockHash": d(header.hash),
        "blockNumber": q(header.block_number),
        "from": d(tx.sender),
        "to": d(tx.to) if tx.to else None,
        "cumulativeGasUsed": q(receipt.gas_used),
        "gasUsed": q(receipt.gas_used - previous_cumulative),
        "contractAddress": d(stored.contract_address) if stored.contract_address else None,
        "logs": logs_json(
            receipt, header=header, tx=tx, tx_index=tx_index, first_log_index=first_log_index
        ),
        "logsBloom": "0x" + receipt.bloom.to_bytes(256, "big").hex(),
        "type": q(tx.type_id),
        "status": "0x1" if receipt.state_root == b"\x01" else "0x0",
        "effectiveGasPrice": q(tx.price(header.base_fee_per_gas or 0)),
    }
