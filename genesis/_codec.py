"""Strict JSON value codecs shared by the parameter table and the genesis schema.

Each `parse_*` takes an untrusted JSON value and the dotted `field` path it came from, and either
returns a typed Python value or raises `GenesisError(field, …)`. The rules are deliberately narrow:
- integers: a JSON integer, a decimal string ("1000") or a 0x-hex string ("0x3e8"); never a JSON
  float (1e18 as a float is already rounded) nor a bool (Python's bool is an int);
- rationals: "a/b" or a plain decimal string ("0.2"), or a JSON integer; never a JSON float;
- addresses: "0x" + 40 hex digits; a mixed-case address must carry a valid EIP-55 checksum, because
  mixed case is the signal that the writer meant a checksum and a typo there loses funds.
The `format_*` functions are the canonical output forms (what `genesis_to_json` writes).
"""

from __future__ import annotations

import re
from fractions import Fraction

from eth_utils import to_checksum_address

from genesis.errors import GenesisError

UINT256_MAX = 2**256 - 1

_DEC_RE = re.compile(r"[0-9]+")
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+")
_RATIO_RE = re.compile(r"([0-9]+)/([0-9]+)")
_DECIMAL_RE = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_HEXDIGITS_RE = re.compile(r"[0-9a-fA-F]*")


def type_name(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def parse_uint(value: object, field: str, *, maximum: int = UINT256_MAX) -> int:
    """A non-negative integer from a JSON integer, decimal string or 0x-hex string."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise GenesisError(
            field,
            f"expected an integer or a decimal/0x-hex string, got {type_name(value)}"
            + (
                ' (write large amounts as strings, e.g. "1000000000000000000")'
                if isinstance(value, float)
                else ""
            ),
        )
    if isinstance(value, str):
        if _DEC_RE.fullmatch(value):
            number = int(value, 10)
        elif _HEX_RE.fullmatch(value):
            number = int(value, 16)
        elif value.startswith("-") and _DEC_RE.fullmatch(value[1:]):
            raise GenesisError(field, f"must be non-negative, got {value}")
        else:
            raise GenesisError(field, f"not a decimal or 0x-hex integer: {value!r}")
    else:
        number = value
    if number < 0:
        raise GenesisError(field, f"must be non-negative, got {number}")
    if number > maximum:
        raise GenesisError(field, f"must be at most {maximum}, got {number}")
    return number


def parse_rational(value: object, field: str) -> Fraction:
    """A non-negative rational from "a/b", a decimal string like "0.2", or a JSON integer."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        hint = ""
        if isinstance(value, float):
            # A float has already been rounded by the JSON decoder; consensus values must be exact.
            hint = ' (write rationals as strings: "1/5" or "0.2")'
        raise GenesisError(
            field, f'expected a rational string like "1/5", got {type_name(value)}' + hint
        )
    if isinstance(value, int):
        if value < 0:
            raise GenesisError(field, f"must be non-negative, got {value}")
        return Fraction(value)
    if value.startswith("-"):
        raise GenesisError(field, f"must be non-negative, got {value!r}")
    ratio = _RATIO_RE.fullmatch(value)
    if ratio:
        denominator = int(ratio.group(2))
        if denominator == 0:
            raise GenesisError(field, f"zero denominator in {value!r}")
        return Fraction(int(ratio.group(1)), denominator)
    decimal = _DECIMAL_RE.fullmatch(value)
    if decimal:
        return Fraction(value)  # exact: Fraction parses decimal strings without floats
    raise GenesisError(field, f'not a rational ("a/b" or a decimal like "0.2"): {value!r}')


def format_rational(value: Fraction) -> str:
    """Canonical "a/b" in lowest terms (also for whole numbers: "1/1"), as Travis's Rat prints."""
    return f"{value.numerator}/{value.denominator}"


def parse_address(value: object, field: str) -> bytes:
    """20 bytes from "0x" + 40 hex digits; mixed case must be a valid EIP-55 checksum."""
    if not isinstance(value, str):
        raise GenesisError(field, f"expected an address string, got {type_name(value)}")
    return parse_address_text(value, field)


def parse_address_text(text: str, field: str) -> bytes:
    if not _ADDRESS_RE.fullmatch(text):
        raise GenesisError(field, f"not an address (0x followed by 40 hex digits): {text!r}")
    digits = text[2:]
    if digits != digits.lower() and digits != digits.upper():
        if to_checksum_address(text) != text:
            raise GenesisError(
                field,
                f"bad EIP-55 checksum in {text} (expected "
                f"{to_checksum_address(text)} or all lowercase)",
            )
    return bytes.fromhex(digits)


def format_address(address: bytes) -> str:
    """Lowercase 0x-hex, the form Travis and the spec use in JSON."""
    return "0x" + address.hex()


def parse_hex_bytes(value: object, field: str) -> bytes:
    """Bytes from a 0x-prefixed hex string with an even number of digits ("0x" is empty)."""
    if not isinstance(value, str):
        raise GenesisError(field, f"expected a 0x-hex string, got {type_name(value)}")
    if not value.startswith("0x"):
        raise GenesisError(field, f"hex data must start with 0x: {value[:20]!r}")
    digits = value[2:]
    if len(digits) % 2:
        raise GenesisError(field, "odd number of hex digits")
    # bytes.fromhex alone would also accept embedded spaces.
    if not _HEXDIGITS_RE.fullmatch(digits):
        raise GenesisError(field, "not hex data")
    return bytes.fromhex(digits)
