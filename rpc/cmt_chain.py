"""Travis's `cmt_*` chain helpers (SPEC §8): blocks, transactions and the pool for web3-cmt.js.

Travis (github.com/CyberMiles/travis, `api/cmt.go`, `CmtRPCService`) answered these from
Tendermint's RPC core, serialised by geth's JSON encoder (so heights are JSON numbers, unlike
Tendermint's own endpoint, and byte fields without a JSON form are base64). We keep Travis's
parameter lists and result shapes and fill them from what our chain stores; every field's source:

| method (params)                              | result                                          |
|----------------------------------------------|-------------------------------------------------|
| cmt_syncing()                                | Tendermint's SyncInfo (below)                   |
| cmt_getBlockByNumber(height, decodeTx=false) | `{"block_meta", "block"}` (below)               |
| cmt_getTransactionByHash(hash)               | a cmt transaction (below), or null if unknown   |
| cmt_getTransactionFromBlock(height, index)   | a cmt transaction; an error if out of range     |
| cmt_pendingTransactionCount()                | hex count of every transaction in the pool      |
| cmt_getPendingTransactions(limit)            | up to `limit` pool transactions, or null if none |

cmt_syncing: `latest_block_hash` (the head's hash), `latest_app_hash` (its state root),
`latest_block_height` (number), `latest_block_time` (RFC 3339 UTC, whole seconds: our headers
keep seconds), `catching_up` (blocksync is behind a peer: eth_syncing is not false) and the same
value as `syncing`, Tendermint 0.22's name, which web3-cmt.js documents. Hashes are written as
everywhere else on this node (`0x` + lowercase hex of the Ethereum values, as the status endpoint
does), not Tendermint's upper-case hex.

cmt_getBlockByNumber: Tendermint's ResultBlock. `height` is a JSON integer or a hex quantity,
0 is the genesis block (Tendermint refused 0; our chain has a block 0), above the head is
-32000 with Tendermint's words. `block_meta.block_id` and `block.header` come from:
- `chain_id`: the consensus chain id (`cybermiles-<id>-<genesis hash>`, what votes sign);
- `height`, `time`: the header's number and timestamp; `num_txs`: the block's transaction count;
  `total_txs` is left out (we keep no running count);
- `last_block_id.hash`: the parent hash; `data_hash`: the transactions root; `app_hash`: the
  state root (Travis's app hash was its state root too);
- `proposer_address`, `validators_hash`, `next_validators_hash`, `last_commit_hash` and the
  block id's `parts`: the BFT commit record of the block (`Decision`); a block without one
  (genesis, an automine devnet) has "" there and parts {"total": 0, "hash": ""};
- `consensus_hash`, `last_results_hash`, `evidence_hash`: "" (our headers do not commit to them).
`block.data.txs` is each raw transaction in base64, or with decodeTx each one's cmt transaction
JSON text in base64 (Travis replaced the bytes with that JSON, which its encoder then wrote in
base64); `block.evidence.evidence` the committed double-sign evidence, or null;
`block.last_commit` the previous block's commit (null without one).

A cmt transaction is the eth_getTransactionByHash object (rpc/formatting.py: Travis's fields
blockNumber, from, gas, gasPrice, hash, input, nonce, to, transactionIndex, value, v, r, s and
the newer Ethereum ones) plus:
- `cmtHash`: Tendermint's hash of the raw bytes (SHA-256, first 20 bytes, upper-case hex);
  lookups go by the Ethereum `hash` (we index no other);
- `cmtInput`: a staking or governance transaction's `{"type", "data"}` payload, else null;
- `txResult`: a committed transaction's `deliver_tx` as the cmt_* transaction methods answer
  it (rpc/cmt_tx.py: code, data, gasUsed, fee, log; an EVM transaction's fee is gasUsed x its
  price and its log is "", its events being the receipt's logs); {} while pending.
Pending transactions carry null block fields (eth's convention).

cmt_getPendingTransactions: `limit` is a JSON integer or null; below 1 means 30, above 100 means
100 (Tendermint's paging). Order: the executable transactions by sender and nonce, then the
queued ones. Travis answered null, not [], for an empty pool; so do we.

Every parameter is validated before anything is read: bad input is -32602.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from eth.abc import BlockHeaderAPI

from evm.transactions import SignedTx
from rpc import formatting as fmt
from rpc.cmt_tx import DeliverTx, committed_json
from rpc.errors import InvalidInput, InvalidParams
from rpc.eth import EthApi
from rpc.params import hash32, quantity

__all__ = ["CmtChainApi", "Decision", "TxOutcomes", "cmt_hash"]

DEFAULT_PENDING_LIMIT: Final = 30  # Tendermint's default page size
MAX_PENDING_LIMIT: Final = 100  # and its largest
MAX_HEIGHT: Final = 2**63 - 1  # heights are int64 in Tendermint


@dataclass(frozen=True)
class Decision:
    """What BFT consensus recorded about a block, already in Tendermint's JSON shapes."""

    block_id: dict[str, Any]  # {"hash", "parts": {"total", "hash"}}
    proposer_address: str
    validators_hash: str
    next_validators_hash: str
    last_commit_hash: str
    last_commit: dict[str, Any] | None  # the previous block's commit
    evidence: list[dict[str, Any]]


class TxOutcomes(Protocol):
    """A committed transaction's outcome (`cybermiles_node.application.staking_txs`)."""

    def delivered(self, tx_hash: bytes) -> DeliverTx | None: ...


def cmt_hash(raw: bytes) -> str:
    """Tendermint's transaction hash (tmhash: SHA-256 cut to 20 bytes), as Travis showed it."""
    return hashlib.sha256(raw).digest()[:20].hex().upper()


def _time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _height(value: object, name: str) -> int:
    """A block height: a non-negative JSON integer or hex quantity, at most int64."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        number = quantity(value, name)
    else:
        raise InvalidParams(f"invalid {name}: expected a block number, got {value!r:.40}")
    if not 0 <= number <= MAX_HEIGHT:
        raise InvalidParams(f"invalid {name}: {number} is not a block height")
    return number


def _index(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        number = quantity(value, "index")
    else:
        raise InvalidParams(f"invalid index: expected a number, got {value!r:.40}")
    if number < 0:
        raise InvalidParams(f"invalid index: {number} is negative")
    return number


def _flag(value: object, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidParams(f"invalid {name}: expected true or false, got {value!r:.40}")
    return value


def _limit(value: object) -> int:
    if value is None:
        return DEFAULT_PENDING_LIMIT
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams(f"invalid limit: expected a number, got {value!r:.40}")
    if value < 1:
        return DEFAULT_PENDING_LIMIT
    return min(value, MAX_PENDING_LIMIT)


def _tx_hash(value: object) -> bytes:
    """The Ethereum hash, with or without 0x (Travis's clients strip it)."""
    if isinstance(value, str) and len(value) == 64:
        value = "0x" + value
    if isinstance(value, str) and len(value.removeprefix("0x").removeprefix("0X")) == 40:
        raise InvalidParams(
            "invalid hash: a 20-byte Tendermint hash (cmtHash) is not indexed here; "
            "look the transaction up by its 32-byte Ethereum hash"
        )
    return hash32(value, "hash")


def _cmt_input(tx: SignedTx) -> Any:
    if not tx.is_system:
        return None
    try:
        return json.loads(tx.data)
    except ValueError:  # a committed system transaction always decodes; a pending one too
        return None


class CmtChainApi:
    """The chain helpers over the node's `EthApi` (chain, pool, sync state), the committed
    outcomes of transactions, and the BFT records of blocks (`decision`; none on a devnet
    without BFT)."""

    def __init__(
        self,
        eth: EthApi,
        outcomes: TxOutcomes,
        *,
        chain_name: str,
        decision: Callable[[int], Decision | None] = lambda number: None,
    ) -> None:
        self.eth = eth
        self.chain = eth.chain
        self.outcomes = outcomes
        self.chain_name = chain_name
        self.decision = decision

    def install(self, dispatcher: Any) -> None:
        for name in (
            "cmt_syncing",
            "cmt_getBlockByNumber",
            "cmt_getTransactionByHash",
            "cmt_getTransactionFromBlock",
            "cmt_pendingTransactionCount",
            "cmt_getPendingTransactions",
        ):
            dispatcher.register(name, getattr(self, name))

    # -- sync state ---------------------------------------------------------------------------
    def cmt_syncing(self) -> dict[str, Any]:
        head = self.chain.head
        catching_up = self.eth.eth_syncing() is not False
        return {
            "latest_block_hash": fmt.d(head.hash),
            "latest_app_hash": fmt.d(head.state_root),
            "latest_block_height": int(head.block_number),
            "latest_block_time": _time(head.timestamp),
            "catching_up": catching_up,
            "syncing": catching_up,
        }

    # -- blocks -------------------------------------------------------------------------------
    def _header(self, height: int) -> BlockHeaderAPI:
        header = self.chain.header_by_number(height)
        if header is None:
            head = self.chain.head.block_number
            raise InvalidInput(
                f"height {height} must be less than or equal to the current blockchain "
                f"height {head}"
            )
        return header

    def cmt_getBlockByNumber(self, height: object, decode_tx: object = False) -> dict[str, Any]:
        number = _height(height, "height")
        decode = _flag(decode_tx, "decodeTx")
        header = self._header(number)
        txs = self.chain.transactions(number)
        decided = self.decision(number)
        tm_header = self._tm_header(header, len(txs), decided)
        if decode:
            block = fmt.BlockFields.of(header)
            encoded = [
                json.dumps(self._tx_json(tx, block, i), separators=(",", ":")).encode()
                for i, tx in enumerate(txs)
            ]
        else:
            encoded = [tx.raw for tx in txs]
        block_id = (
            decided.block_id
            if decided is not None
            else {"hash": fmt.d(header.hash), "parts": {"total": 0, "hash": ""}}
        )
        return {
            "block_meta": {"block_id": block_id, "header": tm_header},
            "block": {
                "header": tm_header,
                "data": {"txs": [base64.b64encode(raw).decode() for raw in encoded]},
                "evidence": {"evidence": (decided.evidence if decided else None) or None},
                "last_commit": decided.last_commit if decided is not None else None,
            },
        }

    def _tm_header(
        self, header: BlockHeaderAPI, num_txs: int, decided: Decision | None
    ) -> dict[str, Any]:
        return {
            "chain_id": self.chain_name,
            "height": int(header.block_number),
            "time": _time(header.timestamp),
            "num_txs": num_txs,
            "last_block_id": {"hash": fmt.d(header.parent_hash), "parts": {"total": 0, "hash": ""}},
            "last_commit_hash": decided.last_commit_hash if decided else "",
            "data_hash": fmt.d(header.transaction_root),
            "validators_hash": decided.validators_hash if decided else "",
            "next_validators_hash": decided.next_validators_hash if decided else "",
            "consensus_hash": "",
            "app_hash": fmt.d(header.state_root),
            "last_results_hash": "",
            "evidence_hash": "",
            "proposer_address": decided.proposer_address if decided else "",
        }

    # -- transactions -------------------------------------------------------------------------
    def _tx_json(
        self, tx: SignedTx, block: fmt.BlockFields | None = None, index: int | None = None
    ) -> dict[str, Any]:
        result = fmt.tx_json(tx, block=block, index=index)
        result["cmtHash"] = cmt_hash(tx.raw)
        result["cmtInput"] = _cmt_input(tx)
        result["txResult"] = {} if block is None else self._tx_result(tx, block)
        return result

    def _tx_result(self, tx: SignedTx, block: fmt.BlockFields) -> dict[str, Any]:
        done = self.outcomes.delivered(tx.hash)
        if done is None:
            return {}
        if not tx.is_system:
            price = tx.price(block.base_fee)
            done = replace(done, fee=done.gas_used * price, log="")
        deliver: dict[str, Any] = committed_json(tx.hash, done)["deliver_tx"]
        return deliver

    def cmt_getTransactionByHash(self, tx_hash: object) -> dict[str, Any] | None:
        wanted = _tx_hash(tx_hash)
        location = self.chain.tx_location(wanted)
        if location is None:
            pending = self.eth.app.mempool.get(wanted)
            return None if pending is None else self._tx_json(pending)
        number, index = location
        header = self.chain.header_by_number(number)
        tx = self.chain.transaction(number, index)
        if header is None or tx is None:
            return None  # indexed before its block is readable: not there yet
        return self._tx_json(tx, fmt.BlockFields.of(header), index)

    def cmt_getTransactionFromBlock(self, height: object, index: object) -> dict[str, Any]:
        number = _height(height, "height")
        position = _index(index)
        header = self._header(number)
        tx = self.chain.transaction(number, position)
        if tx is None:
            raise InvalidInput(f"No transaction in block {number}, index {position}.")
        return self._tx_json(tx, fmt.BlockFields.of(header), position)

    # -- the pool -----------------------------------------------------------------------------
    def cmt_pendingTransactionCount(self) -> str:
        return fmt.q(len(self.eth.app.mempool))

    def cmt_getPendingTransactions(self, limit: object = None) -> list[dict[str, Any]] | None:
        wanted = _limit(limit)
        mempool = self.eth.app.mempool
        out: list[dict[str, Any]] = []
        for by_sender in (mempool.pending_by_sender(), mempool.queued_by_sender()):
            for _, txs in sorted(by_sender.items()):
                for tx in txs:
                    if len(out) == wanted:
                        return out
                    out.append(self._tx_json(tx))
        return out or None
