"""Minimal RLP on raw bytes for hot paths: encode strings and list payloads, split lists.

The `rlp` package infers and validates sedes on every call, which costs tens of microseconds
per transaction; these helpers do only the byte work, for callers that know the shape.
"""

from __future__ import annotations


def encode_bytes(b: bytes) -> bytes:
    n = len(b)
    if n == 1 and b[0] < 0x80:
        return b
    if n < 56:
        return bytes((0x80 + n,)) + b
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xB7 + len(ln),)) + ln + b


def encode_uint(n: int) -> bytes:
    """RLP of a non-negative integer: its minimal big-endian bytes as a string (0: b"\x80")."""
    return encode_bytes(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def encode_list_payload(payload: bytes) -> bytes:
    n = len(payload)
    if n < 56:
        return bytes((0xC0 + n,)) + payload
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(ln),)) + ln + payload


def _item_end(data: bytes, pos: int) -> int:
    b = data[pos]
    if b < 0x80:
        return pos + 1
    if b < 0xB8:
        return pos + 1 + b - 0x80
    if b < 0xC0:
        size = b - 0xB7
        return pos + 1 + size + int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
    if b < 0xF8:
        return pos + 1 + b - 0xC0
    size = b - 0xF7
    return pos + 1 + size + int.from_bytes(data[pos + 1 : pos + 1 + size], "big")


def list_payload(data: bytes) -> bytes:
    """The payload of the RLP list that is all of `data` (ValueError if it is not one)."""
    b = data[0]
    if b < 0xC0:
        raise ValueError("expected an RLP list")
    start = 1 if b < 0xF8 else 1 + b - 0xF7
    if _item_end(data, 0) != len(data):
        raise ValueError("RLP list length does not match the data")
    return data[start:]


def item_offsets(payload: bytes) -> list[int]:
    """Start offset of every item of a list payload, plus its end (len(payload))."""
    offsets = [0]
    pos = 0
    while pos < len(payload):
        pos = _item_end(payload, pos)
        offsets.append(pos)
    if pos != len(payload):
        raise ValueError("RLP items overrun the list")
    return offsets


RlpItem = bytes | list["RlpItem"]


def decode(data: bytes) -> RlpItem:
    """`data` as nested bytes and lists (ValueError when it is not exactly one RLP item).

    No canonical-form checks: for bytes this node encoded itself (its stores), not the wire.
    """
    item, end = _decode_at(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after the RLP item")
    return item


def _decode_at(data: bytes, pos: int) -> tuple[RlpItem, int]:
    b = data[pos]
    if b < 0x80:
        return data[pos : pos + 1], pos + 1
    if b < 0xB8:
        end = pos + 1 + b - 0x80
        _check_end(data, end)
        return data[pos + 1 : end], end
    if b < 0xC0:
        size = b - 0xB7
        start = pos + 1 + size
        end = start + int.from_bytes(data[pos + 1 : start], "big")
        _check_end(data, end)
        return data[start:end], end
    if b < 0xF8:
        start, end = pos + 1, pos + 1 + b - 0xC0
    else:
        size = b - 0xF7
        start = pos + 1 + size
        end = start + int.from_bytes(data[pos + 1 : start], "big")
    _check_end(data, end)
    items: list[RlpItem] = []
    while start < end:
        item, start = _decode_at(data, start)
        items.append(item)
    if start != end:
        raise ValueError("RLP items overrun their list")
    return items, end


def _check_end(data: bytes, end: int) -> None:
    if end > len(data):
        raise ValueError("RLP item runs past the data")


def string_at(payload: bytes, start: int) -> bytes:
    """The bytes of the RLP string item starting at `start` of a list payload."""
    b = payload[start]
    if b < 0x80:
        return payload[start : start + 1]
    if b < 0xB8:
        return payload[start + 1 : start + 1 + b - 0x80]
    if b < 0xC0:
        size = b - 0xB7
        begin = start + 1 + size
        return payload[begin : begin + int.from_bytes(payload[start + 1 : begin], "big")]
    raise ValueError("expected an RLP string, found a list")


# -- strict canonical reading -------------------------------------------------------------------
# An item is (is_list, start, stop) of its payload in the buffer. Every non-canonical form the
# `rlp` package refuses (a single byte < 0x80 wrapped as a string, long forms for short
# payloads, length prefixes with leading zeros) and every overrun raises NotStrict (or
# IndexError at the very end of the data): a caller falls back to `rlp`, whose refusals word
# the error. Used by the transaction and header fast decoders (tx_codec, header_codec).


class NotStrict(Exception):
    """Not canonical RLP of the shape the fast decoder expects: ask the `rlp` package."""


def strict_item(data: bytes, pos: int, end: int) -> tuple[bool, int, int]:
    b = data[pos]
    if b < 0x80:
        return False, pos, pos + 1
    if b < 0xB8:
        start = pos + 1
        stop = start + b - 0x80
        if b == 0x81 and (start >= end or data[start] < 0x80):
            raise NotStrict
        is_list = False
    elif b < 0xC0:
        start, stop = _strict_long(data, pos, end, b - 0xB7)
        is_list = False
    elif b < 0xF8:
        start = pos + 1
        stop = start + b - 0xC0
        is_list = True
    else:
        start, stop = _strict_long(data, pos, end, b - 0xF7)
        is_list = True
    if stop > end:
        raise NotStrict
    return is_list, start, stop


def _strict_long(data: bytes, pos: int, end: int, size: int) -> tuple[int, int]:
    start = pos + 1 + size
    if start > end or data[pos + 1] == 0:
        raise NotStrict
    length = int.from_bytes(data[pos + 1 : start], "big")
    if length < 56:
        raise NotStrict
    return start, start + length


def strict_list_items(data: bytes, pos: int, end: int) -> list[tuple[bool, int, int]]:
    """The items of the one list that spans data[pos:end] exactly."""
    is_list, start, stop = strict_item(data, pos, end)
    if not is_list or stop != end:
        raise NotStrict
    items = []
    while start < stop:
        item = strict_item(data, start, stop)
        items.append(item)
        start = item[2]
    return items
