"""Parsers for JSON-RPC parameters and formatters for results.

Ethereum JSON-RPC encodes numbers as "quantities" (0x-prefixed hex, no leading zeros) and byte
strings as "data" (0x-prefixed hex, two digits per byte). Each parser takes the raw JSON value and
the parameter's name, returns a Python value (`int`, `bytes`, ...) and raises `InvalidParams` with
a message naming the parameter when the value is malformed, so a handler can be written as

    def eth_getBalance(addr, block="latest"):
        address_ = address(addr, "address")
        ref = block_ref(block, "block")

The formatters `hex_quantity` and `hex_data` go the other way. Parsers are strict where clients are
consistent (no decimal numbers, no leading zeros, even-length data) and lenient where real clients
differ (upper-case hex digits, a "0X" prefix, all-lower-case or all-upper-case addresses).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast

from eth_hash.auto import keccak

from rpc.errors import InvalidParams

__all__ = [
    "BLOCK_TAGS",
    "BlockRef",
    "BlockTag",
    "MAX_UINT256",
    "address",
    "array",
    "block_ref",
    "block_tag",
    "bool_param",
    "data",
    "hash32",
    "hex_data",
    "hex_quantity",
    "json_object",
    "optional",
    "optional_address",
    "optional_data",
    "optional_quantity",
    "quantity",
    "storage_slot",
    "to_checksum",
]

MAX_UINT256: Final = 2**256 - 1

BlockTag = Literal["latest", "earliest", "pending", "safe", "finalized"]
BLOCK_TAGS: Final[frozenset[str]] = frozenset(
    {"latest", "earliest", "pending", "safe", "finalized"}
)

_QUANTITY_RE: Final = re.compile(r"0[xX](?:0|[1-9a-fA-F][0-9a-fA-F]{0,63})")
_HEX_DIGITS_RE: Final = re.compile(r"0[xX][0-9a-fA-F]*")
_STORAGE_SLOT_RE: Final = re.compile(r"0[xX][0-9a-fA-F]{1,64}")

T = TypeVar("T")


def _describe(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def quantity(v: object, name: str) -> int:
    """A quantity: "0x0" or "0x" + hex without leading zeros, at most 2**256 - 1."""
    if type(v) is str and _QUANTITY_RE.fullmatch(v):
        return int(v[2:], 16)
    raise InvalidParams(f"invalid {name}: {_quantity_problem(v)}")


def _quantity_problem(v: object) -> str:
    if type(v) is not str:
        return f"expected a hex quantity string, got {type(v).__name__}"
    if not v.startswith(("0x", "0X")):
        return f"hex string without 0x prefix: {_describe(v)}"
    if len(v) == 2:
        return "empty hex string"
    if not _HEX_DIGITS_RE.fullmatch(v):
        return f"invalid hex string: {_describe(v)}"
    if v[2] == "0":
        return "hex number with leading zero digits"
    return "hex number larger than 256 bits"


def data(v: object, name: str) -> bytes:
    """Data: "0x" + an even number of hex digits, as bytes."""
    if type(v) is str and v[:2] in ("0x", "0X"):
        digits = v[2:]
        if len(digits) % 2 == 0:
            try:
                raw = bytes.fromhex(digits)
            except ValueError:
                pass
            else:
                # bytes.fromhex skips whitespace between bytes; the length check rejects that.
                if len(raw) * 2 == len(digits):
                    return raw
            raise InvalidParams(f"invalid {name}: invalid hex string")
        raise InvalidParams(f"invalid {name}: hex string of odd length")
    if type(v) is not str:
        raise InvalidParams(f"invalid {name}: expected a hex data string, got {type(v).__name__}")
    raise InvalidParams(f"invalid {name}: hex string without 0x prefix")


def _fixed_data(v: object, name: str, size: int, what: str) -> bytes:
    raw = data(v, name)
    if len(raw) != size:
        raise InvalidParams(f"invalid {name}: {what} must be {size} bytes, got {len(raw)}")
    return raw


def to_checksum(raw: bytes) -> str:
    """The EIP-55 mixed-case form of a 20-byte address."""
    lower = raw.hex()
    digest = keccak(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(lower)
    )


def address(v: object, name: str) -> bytes:
    """A 20-byte address; a mixed-case address must carry a valid EIP-55 checksum."""
    raw = _fixed_data(v, name, 20, "address")
    text = cast(str, v)[2:]
    if not (text.islower() or text.isupper() or text.isdigit()):
        if to_checksum(raw)[2:] != text:
            raise InvalidParams(f"invalid {name}: bad EIP-55 address checksum")
    return raw


def hash32(v: object, name: str) -> bytes:
    """A 32-byte hash."""
    return _fixed_data(v, name, 32, "hash")


def storage_slot(v: object, name: str) -> int:
    """A storage slot: "0x" + 1 to 64 hex digits, leading zeros allowed (clients send slots both
    as quantities and as 32-byte data). Only hex digits: `int(text, 16)` alone would also take
    "-1", "+1", "1_0" and surrounding spaces."""
    if type(v) is str and _STORAGE_SLOT_RE.fullmatch(v):
        return int(v[2:], 16)
    if type(v) is not str:
        raise InvalidParams(f"invalid {name}: expected a hex string, got {type(v).__name__}")
    raise InvalidParams(
        f"invalid {name}: hex string {_describe(v)} is not a storage slot "
        "(0x and at most 64 hex digits)"
    )


def array(v: object, name: str, what: str) -> list[Any]:
    """A JSON array (of `what`, for the message)."""
    if type(v) is list:
        return cast(list[Any], v)
    raise InvalidParams(f"invalid {name}: expected an array of {what}, got {type(v).__name__}")


def json_object(v: object, name: str) -> dict[str, Any]:
    """A JSON object."""
    if type(v) is dict:
        return cast(dict[str, Any], v)
    raise InvalidParams(f"invalid {name}: expected an object, got {type(v).__name__}")


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block named by number, tag or hash (EIP-1898); exactly one of the three is set."""

    number: int | None = None
    tag: BlockTag | None = None
    hash: bytes | None = None
    require_canonical: bool = False


def block_tag(v: object, name: str) -> int | BlockTag | BlockRef:
    """A block number (quantity) or tag; an EIP-1898 object gives a `BlockRef`."""
    if type(v) is str:
        if v in BLOCK_TAGS:
            return cast(BlockTag, v)
        if v[:2] in ("0x", "0X"):
            return quantity(v, name)
        raise InvalidParams(
            f"invalid {name}: expected a block number or one of "
            f"latest, earliest, pending, safe, finalized; got {_describe(v)}"
        )
    if type(v) is dict:
        return _eip1898(cast(dict[str, Any], v), name)
    raise InvalidParams(f"invalid {name}: expected a block number or tag, got {type(v).__name__}")


def _eip1898(obj: dict[str, Any], name: str) -> BlockRef:
    unknown = set(obj) - {"blockNumber", "blockHash", "requireCanonical"}
    if unknown:
        raise InvalidParams(f"invalid {name}: unknown field {sorted(unknown)[0]!r}")
    has_number = obj.get("blockNumber") is not None
    has_hash = obj.get("blockHash") is not None
    if has_number == has_hash:
        raise InvalidParams(f"invalid {name}: exactly one of blockNumber and blockHash is required")
    if has_number:
        if "requireCanonical" in obj:
            raise InvalidParams(f"invalid {name}: requireCanonical needs blockHash")
        value = obj["blockNumber"]
        if type(value) is str and value in BLOCK_TAGS:
            return BlockRef(tag=cast(BlockTag, value))
        return BlockRef(number=quantity(value, f"{name}.blockNumber"))
    canonical = obj.get("requireCanonical", False)
    return BlockRef(
        hash=hash32(obj["blockHash"], f"{name}.blockHash"),
        require_canonical=bool_param(canonical, f"{name}.requireCanonical"),
    )


def block_ref(v: object, name: str) -> BlockRef:
    """Like `block_tag`, always normalised to a `BlockRef`."""
    ref = block_tag(v, name)
    if isinstance(ref, BlockRef):
        return ref
    if isinstance(ref, int):
        return BlockRef(number=ref)
    return BlockRef(tag=ref)


def bool_param(v: object, name: str) -> bool:
    """A JSON boolean."""
    if type(v) is bool:
        return v
    raise InvalidParams(f"invalid {name}: expected a boolean, got {type(v).__name__}")


def optional(parser: Callable[[object, str], T], v: object, name: str, default: T) -> T:
    """`parser(v, name)`, or `default` when the parameter is null or was omitted (None)."""
    if v is None:
        return default
    return parser(v, name)


def optional_quantity(v: object, name: str) -> int | None:
    return None if v is None else quantity(v, name)


def optional_data(v: object, name: str) -> bytes | None:
    return None if v is None else data(v, name)


def optional_address(v: object, name: str) -> bytes | None:
    return None if v is None else address(v, name)


def hex_quantity(n: int) -> str:
    """An int as a quantity ("0x0", "0x1f"); negative numbers are a bug in the caller."""
    if n < 0:
        raise ValueError(f"negative quantity {n}")
    return hex(n)


def hex_data(b: bytes) -> str:
    """Bytes as data ("0x", "0x00ff")."""
    return "0x" + b.hex()
