"""A fast decoder for the common transaction types: bytes to fields without py-evm's sedes.

py-evm's `PragueTransactionBuilder.decode` spends ~50 us per transaction in rlp's sedes
machinery (type inference, kwargs merging, per-field validation objects), and a re-encode to
check canonical form costs another ~15 us. `decode_fields` reads legacy, EIP-2930 and
EIP-1559 transactions straight from the bytes into a `TxFields` record, and `evm_transaction`
builds the very py-evm object the builder would have (same classes, same field values, the
RLP cache set) with its positional constructor, which costs ~3 us.

The contract: `decode_fields` accepts only canonical RLP of the exact shape py-evm's sedes
accept (field count, integers without leading zeros, 0- or 20-byte recipients, access lists
of 20-byte addresses with 32-byte keys), so everything it accepts py-evm decodes to the same
values and re-encodes to the same bytes. Anything else (another type, any malformation) gives
None, and the caller falls back to py-evm, whose refusal messages thus stay what they were.
tests/unit/test_tx_codec.py checks this against py-evm on valid and mutated inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth.abc import SignedTransactionAPI
from eth.vm.forks.berlin.transactions import AccessListTransaction, AccountAccesses
from eth.vm.forks.london.transactions import DynamicFeeTransaction
from eth.vm.forks.prague.transactions import PragueTransactionBuilder, PragueTypedTransaction

from evm.rlp_raw import NotStrict, strict_item, strict_list_items

LEGACY_TX_TYPE = 0
ACCESS_LIST_TX_TYPE = 1
DYNAMIC_FEE_TX_TYPE = 2
SET_CODE_TX_TYPE = 4

# Intrinsic gas (Istanbul calldata prices, EIP-2930 access lists, EIP-7702 authorizations).
TX_GAS = 21_000
TX_CREATE_GAS = 32_000
TX_DATA_ZERO_GAS = 4
TX_DATA_NONZERO_GAS = 16
ACCESS_LIST_ADDRESS_GAS = 2_400
ACCESS_LIST_KEY_GAS = 1_900
AUTHORIZATION_GAS = 25_000

AccessList = tuple[tuple[bytes, tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class TxFields:
    """A signed transaction's fields, whatever its type (legacy: tip = fee_cap = gas price)."""

    type_id: int
    chain_id: int | None  # None: a legacy transaction without EIP-155 replay protection
    nonce: int
    tip: int  # as signed, not capped by fee_cap
    fee_cap: int
    gas: int
    to: bytes  # b"" for contract creation
    value: int
    data: bytes
    access_list: AccessList
    authorizations: int  # EIP-7702 authorization count
    v: int  # legacy: v as signed; typed: y_parity
    r: int
    s: int

    @property
    def recovery_id(self) -> int:
        """The signature's y parity (legacy EIP-155: v - 35 - 2 x chain id)."""
        if self.type_id == LEGACY_TX_TYPE:
            return self.v - 35 - 2 * (self.chain_id or 0)
        return self.v

    @property
    def intrinsic_gas(self) -> int:
        """py-evm's Prague intrinsic gas (calculate_txn_intrinsic_gas_berlin + EIP-7702)."""
        zeros = self.data.count(0)
        keys = sum(len(slots) for _, slots in self.access_list)
        return (
            TX_GAS
            + (0 if self.to else TX_CREATE_GAS)
            + zeros * TX_DATA_ZERO_GAS
            + (len(self.data) - zeros) * TX_DATA_NONZERO_GAS
            + len(self.access_list) * ACCESS_LIST_ADDRESS_GAS
            + keys * ACCESS_LIST_KEY_GAS
            + self.authorizations * AUTHORIZATION_GAS
        )


def decode_fields(raw: bytes) -> TxFields | None:
    """The fields of a canonical legacy, EIP-2930 or EIP-1559 transaction; None otherwise."""
    try:
        first = raw[0]
        if first >= 0xC0:
            return _legacy(raw, strict_list_items(raw, 0, len(raw)))
        if first == ACCESS_LIST_TX_TYPE:
            return _access_list_tx(raw, strict_list_items(raw, 1, len(raw)))
        if first == DYNAMIC_FEE_TX_TYPE:
            return _dynamic_fee_tx(raw, strict_list_items(raw, 1, len(raw)))
    except (NotStrict, IndexError):
        return None
    return None


def fields_of(tx: Any, type_id: int) -> TxFields:
    """The fields of a py-evm transaction object (the fallback's way to the same record)."""
    if type_id == LEGACY_TX_TYPE:
        tip = fee_cap = tx.gas_price
        v = tx.v
    elif type_id == ACCESS_LIST_TX_TYPE:
        tip = fee_cap = tx.gas_price
        v = tx.y_parity
    else:
        tip, fee_cap, v = tx.max_priority_fee_per_gas, tx.max_fee_per_gas, tx.y_parity
    authorizations = len(tx.authorization_list) if type_id == SET_CODE_TX_TYPE else 0
    access_list = tuple((bytes(a), tuple(keys)) for a, keys in tx.access_list)
    return TxFields(
        type_id, tx.chain_id, tx.nonce, tip, fee_cap, tx.gas, tx.to, tx.value, tx.data,
        access_list, authorizations, v, tx.r, tx.s,
    )  # fmt: skip


def evm_transaction(fields: TxFields, raw: bytes) -> SignedTransactionAPI:
    """The py-evm object `PragueTransactionBuilder.decode(raw)` gives, for fields
    `decode_fields(raw)` read (its constructors take positional fields without validation;
    the RLP cache spares py-evm a re-encoding when it hashes or stores it)."""
    f = fields
    tx: Any
    if f.type_id == LEGACY_TX_TYPE:
        tx = _LEGACY(f.nonce, f.fee_cap, f.gas, f.to, f.value, f.data, f.v, f.r, f.s)
        tx._cached_rlp = raw
        return tx  # type: ignore[no-any-return]
    access_list = tuple(AccountAccesses(a, keys) for a, keys in f.access_list)
    if f.type_id == ACCESS_LIST_TX_TYPE:
        inner: Any = AccessListTransaction(
            f.chain_id, f.nonce, f.fee_cap, f.gas, f.to, f.value, f.data, access_list,
            f.v, f.r, f.s,
        )  # fmt: skip
    else:
        inner = DynamicFeeTransaction(
            f.chain_id, f.nonce, f.tip, f.fee_cap, f.gas, f.to, f.value, f.data, access_list,
            f.v, f.r, f.s,
        )  # fmt: skip
    inner._cached_rlp = raw[1:]
    return PragueTypedTransaction(f.type_id, inner)


_LEGACY = PragueTransactionBuilder.legacy_signed


def _bytes(data: bytes, item: tuple[bool, int, int]) -> bytes:
    is_list, start, stop = item
    if is_list:
        raise NotStrict
    return data[start:stop]


def _int(data: bytes, item: tuple[bool, int, int]) -> int:
    is_list, start, stop = item
    if is_list or (stop > start and data[start] == 0):
        raise NotStrict  # rlp's big_endian_int refuses leading zeros
    return int.from_bytes(data[start:stop], "big")


def _address(data: bytes, item: tuple[bool, int, int]) -> bytes:
    value = _bytes(data, item)
    if len(value) not in (0, 20):
        raise NotStrict
    return value


def _access_list(data: bytes, item: tuple[bool, int, int]) -> AccessList:
    is_list, start, stop = item
    if not is_list:
        raise NotStrict
    entries = []
    while start < stop:
        entry = strict_item(data, start, stop)
        pair = strict_list_items(data, start, entry[2])
        if len(pair) != 2 or not pair[1][0]:
            raise NotStrict
        account = _bytes(data, pair[0])
        if len(account) != 20:
            raise NotStrict
        keys = []
        k_start, k_stop = pair[1][1], pair[1][2]
        while k_start < k_stop:
            key = strict_item(data, k_start, k_stop)
            value = _bytes(data, key)
            if len(value) != 32:
                raise NotStrict
            keys.append(int.from_bytes(value, "big"))
            k_start = key[2]
        entries.append((account, tuple(keys)))
        start = entry[2]
    return tuple(entries)


def _legacy(raw: bytes, items: list[tuple[bool, int, int]]) -> TxFields:
    if len(items) != 9:
        raise NotStrict
    gas_price = _int(raw, items[1])
    v = _int(raw, items[6])
    chain_id = None
    if v >= 35:  # EIP-155 (py-evm's extract_chain_id)
        chain_id = (v - 35) // 2
    return TxFields(
        LEGACY_TX_TYPE, chain_id, _int(raw, items[0]), gas_price, gas_price,
        _int(raw, items[2]), _address(raw, items[3]), _int(raw, items[4]),
        _bytes(raw, items[5]), (), 0, v, _int(raw, items[7]), _int(raw, items[8]),
    )  # fmt: skip


def _access_list_tx(raw: bytes, items: list[tuple[bool, int, int]]) -> TxFields:
    if len(items) != 11:
        raise NotStrict
    gas_price = _int(raw, items[2])
    return TxFields(
        ACCESS_LIST_TX_TYPE, _int(raw, items[0]), _int(raw, items[1]), gas_price, gas_price,
        _int(raw, items[3]), _address(raw, items[4]), _int(raw, items[5]),
        _bytes(raw, items[6]), _access_list(raw, items[7]), 0, _int(raw, items[8]),
        _int(raw, items[9]), _int(raw, items[10]),
    )  # fmt: skip


def _dynamic_fee_tx(raw: bytes, items: list[tuple[bool, int, int]]) -> TxFields:
    if len(items) != 12:
        raise NotStrict
    return TxFields(
        DYNAMIC_FEE_TX_TYPE, _int(raw, items[0]), _int(raw, items[1]), _int(raw, items[2]),
        _int(raw, items[3]), _int(raw, items[4]), _address(raw, items[5]),
        _int(raw, items[6]), _bytes(raw, items[7]), _access_list(raw, items[8]), 0,
        _int(raw, items[9]), _int(raw, items[10]), _int(raw, items[11]),
    )  # fmt: skip
