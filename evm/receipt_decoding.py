"""Fast decoding of what a receipt lookup reads back from the block store.

py-evm's receipt and transaction classes are rlp `Serializable`s: decoding one validates every
field through its sedes and builds the object through keyword merging, ~70 microseconds a
receipt and more for a transaction, most of the cost of a receipt lookup outside the cache.
Here, for bytes this node stored itself (so already validated once):

- `decode_receipt`: a stored receipt (legacy, or EIP-2718 typed) as a `RawReceipt`, a plain
  `ReceiptAPI` with the same fields py-evm's decoder gives (state root, cumulative gas,
  bloom, logs with int topics) and `encode()` giving back the stored bytes.
- `make_receipt`: a receipt executing a transaction just produced, as a `RawReceipt` with
  its encoding written directly (py-evm's `make_receipt` validates every field through its
  sedes, then `encode()` walks them again: ~10 % of a block's execution for transfers).
- `summarize_transaction`: only the fields a receipt's JSON takes from its transaction (hash,
  sender, recipient, type, fees), cut from the raw transaction without decoding the rest
  (access lists, authorizations, signature).

Both check the shapes they rely on (field counts, address/topic/bloom sizes) and raise
ValueError otherwise. tests/unit/test_receipt_decoding.py holds them equal to py-evm's
decoders on every transaction type.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth.abc import LogAPI, ReceiptAPI
from eth_bloom import BloomFilter
from eth_hash.auto import keccak
from eth_typing import Address

from evm.rlp_raw import (
    RlpItem,
    decode,
    encode_bytes,
    encode_list_payload,
    encode_uint,
    item_offsets,
    list_payload,
    string_at,
)

BLOOM_BYTES = 256
ADDRESS_BYTES = 20
TOPIC_BYTES = 32
LEGACY_RECEIPT_FIELDS = 4  # state root (status), cumulative gas, bloom, logs
LOG_FIELDS = 3  # address, topics, data
TYPED_RECEIPTS = (1, 2, 3, 4)  # the EIP-2718 receipt types py-evm's Prague builder knows


class RawLog(LogAPI):
    """One log of a stored receipt."""

    __slots__ = ("address", "topics", "data")

    def __init__(self, address: Address, topics: tuple[int, ...], data: bytes) -> None:
        self.address = address
        self.topics = topics
        self.data = data

    @property
    def bloomables(self) -> tuple[bytes, ...]:
        return (self.address, *(t.to_bytes(TOPIC_BYTES, "big") for t in self.topics))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, LogAPI)
            and (self.address, tuple(self.topics), self.data)
            == (other.address, tuple(other.topics), other.data)
        )

    def __hash__(self) -> int:
        return hash((self.address, self.topics, self.data))

    def __repr__(self) -> str:
        return f"RawLog(address={self.address!r}, topics={self.topics!r}, data={self.data!r})"


class RawReceipt(ReceiptAPI):
    """A stored receipt, decoded without py-evm's sedes (`type_id` None for a legacy one)."""

    __slots__ = ("type_id", "_state_root", "_gas_used", "_bloom", "_logs", "_encoded")

    def __init__(
        self,
        type_id: int | None,
        state_root: bytes,
        gas_used: int,
        bloom: int,
        logs: tuple[RawLog, ...],
        encoded: bytes,
    ) -> None:
        self.type_id = type_id
        self._state_root = state_root
        self._gas_used = gas_used
        self._bloom = bloom
        self._logs = logs
        self._encoded = encoded

    @property
    def state_root(self) -> bytes:
        return self._state_root

    @property
    def gas_used(self) -> int:
        return self._gas_used

    @property
    def bloom(self) -> int:
        return self._bloom

    @property
    def logs(self) -> Sequence[LogAPI]:
        return self._logs

    @property
    def bloom_filter(self) -> BloomFilter:
        return BloomFilter(self._bloom)

    def encode(self) -> bytes:
        return self._encoded

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReceiptAPI) and self._encoded == other.encode()

    def __hash__(self) -> int:
        return hash(self._encoded)


def decode_receipt(encoded: bytes) -> RawReceipt:
    """A receipt as stored (py-evm's `encode()`): an RLP list, or a type byte and one."""
    if not encoded:
        raise ValueError("empty receipt")
    type_id: int | None = encoded[0]
    if encoded[0] >= 0xC0:
        type_id, body = None, encoded
    elif encoded[0] in TYPED_RECEIPTS:
        body = encoded[1:]
    else:
        raise ValueError(f"unknown receipt type {encoded[0]}")
    fields = _list(decode(body), LEGACY_RECEIPT_FIELDS, "receipt")
    state_root, gas_used, bloom, logs = fields
    if not isinstance(state_root, bytes) or not isinstance(gas_used, bytes):
        raise ValueError("receipt status and gas must be strings")
    return RawReceipt(
        type_id,
        state_root,
        int.from_bytes(gas_used, "big"),
        int.from_bytes(_sized(bloom, BLOOM_BYTES, "bloom"), "big"),
        tuple(_log(entry) for entry in _list(logs, None, "logs")),
        encoded,
    )


LogEntry = tuple[bytes, Sequence[int], bytes]  # address, topics, data (py-evm's log entries)
_EMPTY_BLOOM = encode_bytes(bytes(BLOOM_BYTES))


def make_receipt(
    type_id: int | None, status: bytes, cumulative_gas: int, log_entries: Iterable[LogEntry]
) -> RawReceipt:
    """The receipt py-evm's `make_receipt` gives a transaction of `type_id` (None: legacy),
    bit for bit the same encoding (tests/unit/test_receipt_decoding.py)."""
    logs = tuple(RawLog(Address(a), tuple(topics), data) for a, topics, data in log_entries)
    if logs:
        bloomables = itertools.chain.from_iterable(log.bloomables for log in logs)
        bloom = int(BloomFilter.from_iterable(bloomables))
        encoded_bloom = encode_bytes(bloom.to_bytes(BLOOM_BYTES, "big"))
    else:
        bloom, encoded_bloom = 0, _EMPTY_BLOOM
    body = encode_list_payload(
        encode_bytes(status)
        + encode_uint(cumulative_gas)
        + encoded_bloom
        + encode_list_payload(b"".join(_encode_log(log) for log in logs))
    )
    encoded = body if type_id is None else bytes((type_id,)) + body
    return RawReceipt(type_id, status, cumulative_gas, bloom, logs, encoded)


def _encode_log(log: RawLog) -> bytes:
    topics = b"".join(encode_bytes(t.to_bytes(TOPIC_BYTES, "big")) for t in log.topics)
    return encode_list_payload(
        encode_bytes(log.address) + encode_list_payload(topics) + encode_bytes(log.data)
    )


def _log(entry: RlpItem) -> RawLog:
    address, topics, data = _list(entry, LOG_FIELDS, "log")
    if not isinstance(data, bytes):
        raise ValueError("log data must be a string")
    return RawLog(
        Address(_sized(address, ADDRESS_BYTES, "log address")),
        tuple(
            int.from_bytes(_sized(t, TOPIC_BYTES, "topic"), "big")
            for t in _list(topics, None, "topics")
        ),
        data,
    )


def _list(item: RlpItem, length: int | None, what: str) -> list[RlpItem]:
    if not isinstance(item, list) or (length is not None and len(item) != length):
        raise ValueError(f"malformed {what}")
    return item


def _sized(item: RlpItem, size: int, what: str) -> bytes:
    if not isinstance(item, bytes) or len(item) != size:
        raise ValueError(f"malformed {what}: expected {size} bytes")
    return item


@dataclass(frozen=True, slots=True)
class TxSummary:
    """What a receipt's JSON takes from its transaction (a `SignedTx` has the same fields)."""

    hash: bytes
    sender: bytes
    to: bytes  # b"" for contract creation
    type_id: int
    tip: int  # the priority fee per gas, at most fee_cap (legacy: the gas price)
    fee_cap: int

    def price(self, base_fee: int) -> int:
        """What the sender paid per gas in a block with `base_fee` (SignedTx.price)."""
        return min(self.fee_cap, base_fee + self.tip)


# Per transaction type: (field count, index of the tip, of the fee cap, of the recipient).
_TX_LAYOUT = {
    0: (9, 1, 1, 3),  # nonce, gas_price, gas, to, value, data, v, r, s
    1: (11, 2, 2, 4),  # chain_id, nonce, gas_price, gas, to, value, data, access_list, y, r, s
    2: (12, 2, 3, 5),  # chain_id, nonce, tip, fee_cap, gas, to, value, data, access_list, y, r, s
    4: (13, 2, 3, 5),  # as 2, with the authorization list before y, r, s
}


def summarize_transaction(raw: bytes, sender: bytes) -> TxSummary:
    """The `TxSummary` of a stored transaction's raw bytes (its sender stored beside it)."""
    type_id = raw[0] if raw and raw[0] <= 0x7F else 0
    layout = _TX_LAYOUT.get(type_id)
    if layout is None:
        raise ValueError(f"unsupported transaction type {type_id}")
    count, tip_at, cap_at, to_at = layout
    payload = list_payload(raw[1:] if type_id else raw)
    offsets = item_offsets(payload)
    if len(offsets) != count + 1:
        raise ValueError(f"malformed type {type_id} transaction: {len(offsets) - 1} fields")
    fee_cap = int.from_bytes(string_at(payload, offsets[cap_at]), "big")
    tip = int.from_bytes(string_at(payload, offsets[tip_at]), "big")
    return TxSummary(
        hash=keccak(raw),
        sender=sender,
        to=string_at(payload, offsets[to_at]),
        type_id=type_id,
        tip=min(tip, fee_cap),
        fee_cap=fee_cap,
    )
