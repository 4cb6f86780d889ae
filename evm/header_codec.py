"""A fast decoder for block headers: `rlp.decode(encoded, sedes=PragueBlockHeader)` in ~11 us.

The `rlp` package spends ~35 us on a header: sedes inference per field, kwargs merging and
py-evm's keyword constructor. Every block a node validates, commits or syncs has its header
decoded from the wire, and RPC reads decode stored headers, so `decode_header` reads the 21
fields straight from the bytes with the strict reader of evm/rlp_raw.py, checks each against
the very sedes py-evm declares for it (taken from `PragueBlockHeader._meta`, so the rules
cannot drift from py-evm's), and fills the object the way rlp's constructor does (the same
class, the same attribute values, the RLP cache set to `encoded`, as `rlp.decode` sets it).

Anything it is not sure of (another shape, non-canonical RLP, a field of the wrong length)
goes to `rlp.decode`, which then decodes it or raises what it always raised.
tests/unit/test_header_codec.py checks it against rlp on valid and mutated headers.
"""

from __future__ import annotations

from typing import Any

import rlp
from eth.abc import BlockHeaderAPI
from eth.vm.forks.prague.blocks import PragueBlockHeader
from rlp.sedes import BigEndianInt, Binary

from evm.rlp_raw import NotStrict, strict_list_items

_HEADER: Any = PragueBlockHeader
_ATTRS: tuple[str, ...] = tuple(_HEADER._meta.field_attrs)


def _field_rule(sedes: object) -> tuple[bool, bool, int, float, bool]:
    """(is an integer, minimal (no leading zero byte), least length, greatest length, empty
    allowed) of one field's sedes, as its `deserialize` judges the bytes."""
    if isinstance(sedes, BigEndianInt):
        if sedes.length is None:
            return True, True, 0, float("inf"), True
        return True, False, sedes.length, sedes.length, False  # fixed width: zeros pad it
    if isinstance(sedes, Binary):
        return False, False, sedes.min_length, sedes.max_length, sedes.allow_empty
    raise TypeError(f"header field sedes {sedes!r} has no fast rule")  # a new py-evm header


_RULES = tuple(_field_rule(sedes) for _, sedes in _HEADER._meta.fields)


def decode_header(encoded: bytes) -> BlockHeaderAPI:
    """The Prague header `encoded` holds; raises what `rlp.decode` raises for bad bytes."""
    try:
        values = _fields(encoded)
    except (NotStrict, IndexError):
        header: BlockHeaderAPI = rlp.decode(encoded, sedes=PragueBlockHeader)
        return header
    header = _HEADER.__new__(_HEADER)
    # What rlp's constructor does (setattr of each field attribute; plain attributes, no
    # __slots__, no __setattr__ hook), without its per-field calls.
    attrs = header.__dict__
    attrs.update(zip(_ATTRS, values, strict=True))
    attrs["_cached_rlp"] = encoded
    return header


def _fields(encoded: bytes) -> list[bytes | int]:
    if type(encoded) is not bytes:
        raise NotStrict  # memoryview, bytearray: rlp's business
    items = strict_list_items(encoded, 0, len(encoded))
    if len(items) != len(_RULES):
        raise NotStrict
    values: list[bytes | int] = []
    for item, rule in zip(items, _RULES, strict=True):
        is_list, start, stop = item
        is_int, minimal, least, greatest, empty_ok = rule
        length = stop - start
        if is_list or not (least <= length <= greatest or (empty_ok and length == 0)):
            raise NotStrict
        if minimal and length and encoded[start] == 0:
            raise NotStrict  # leading zeros (rlp refuses them)
        values.append(int.from_bytes(encoded[start:stop], "big") if is_int else encoded[start:stop])
    return values


__all__ = ["decode_header"]
