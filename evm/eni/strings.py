"""Our string library (beyond Travis, SPEC §9): text operations on UTF-8 strings.

Every operation counts in Unicode code points, returns one string (ENI's only return type: numbers
come back as decimal text, ``split`` as a JSON array text) and costs ``size_gas`` (10 per byte of
input and output).  Strings carrying invalid UTF-8 are bad arguments.

| function | arguments | result |
|---|---|---|
| upper / lower | s | ASCII letters case-mapped, other characters unchanged |
| concat | a, b | a + b |
| substr | s, start, length | s[start:start+length] (code points; clipped at the end) |
| indexOf | s, sub | code-point index of the first sub in s, or -1 |
| split | s, sep | JSON array of the parts (sep non-empty) |
| replace | s, old, new | every old replaced by new (empty old inserts between characters) |
| length | s | number of code points |
| toInt | s | canonical decimal of ``[+-]?[0-9]+`` within int256 |
| fromInt | n | decimal text of n (int256 or uint256) |

Case mapping is ASCII-only on purpose: full Unicode mappings depend on the interpreter's Unicode
database version, and a consensus result must not change when a node upgrades Python.

Also here: ``reverse`` v2.0.0 (``reverse_code_points``), a newer version of Travis's ``reverse``
(registry.py chooses which one a block runs). Travis's v1.3.7 reverses bytes, so "héllo" (é is
two bytes) comes back as "oll", the two bytes of é swapped (invalid UTF-8), "h". v2.0.0 reverses
code points: "olléh". For the same reason as the ASCII case mapping it does not keep grapheme
clusters together (that needs the Unicode database): "e" + U+0301 (combining acute) comes back
as U+0301 + "e". Its arguments follow this library's rule (invalid UTF-8 is a bad argument, so
reversing twice always gives the input back), and its gas is Travis's (10 per input byte), so a
contract pays the same whichever version runs.
"""

from __future__ import annotations

import re
from typing import Any

from evm.eni.convention import (
    GAS_PER_BYTE,
    EniError,
    Library,
    LibResult,
    bytes_from_text,
    check_args,
    check_result_size,
    escape_json_string,
    require_utf8,
    sized_library,
)

INT256_MIN = -(1 << 255)
INT256_MAX = (1 << 255) - 1
UINT256_MAX = (1 << 256) - 1

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_DECIMAL = re.compile(r"[+-]?([0-9]+)")
_MAX_INT256_DIGITS = len(str(1 << 255))


def _upper(s: str) -> str:
    return s.translate(_ASCII_UPPER)


def _lower(s: str) -> str:
    return s.translate(_ASCII_LOWER)


def _concat(a: str, b: str) -> str:
    return a + b


def _substr(s: str, start: int, length: int) -> str:
    if start < 0 or length < 0:
        raise EniError("substr: negative start or length")
    return s[start : start + length]


def _index_of(s: str, sub: str) -> str:
    return str(s.find(sub))


def _split(s: str, sep: str) -> str:
    if not sep:
        raise EniError("split: empty separator")
    return "[" + ",".join(map(escape_json_string, s.split(sep))) + "]"


def _replace(s: str, old: str, new: str) -> str:
    # Size the result before building it: replace is the one operation that amplifies.
    occurrences = s.count(old)
    check_result_size("replace", len(s) + occurrences * (len(new) - len(old)))
    return s.replace(old, new)


def _length(s: str) -> str:
    return str(len(s))


def _to_int(s: str) -> str:
    match = _DECIMAL.fullmatch(s)
    # Bound the digit count first: int() of a huge string is slow (and capped by Python).
    if match is None or len(match.group(1).lstrip("0")) > _MAX_INT256_DIGITS:
        raise EniError("toInt: not a decimal int256")
    value = int(s)
    if not INT256_MIN <= value <= INT256_MAX:
        raise EniError("toInt: out of int256 range")
    return str(value)


def _from_int(n: int) -> str:
    if not INT256_MIN <= n <= UINT256_MAX:
        raise EniError("fromInt: out of 256-bit range")
    return str(n)


LIBRARIES: dict[str, Library] = {
    "upper": sized_library("upper", (str,), _upper),
    "lower": sized_library("lower", (str,), _lower),
    "concat": sized_library("concat", (str, str), _concat),
    "substr": sized_library("substr", (str, int, int), _substr),
    "indexOf": sized_library("indexOf", (str, str), _index_of),
    "split": sized_library("split", (str, str), _split),
    "replace": sized_library("replace", (str, str, str), _replace),
    "length": sized_library("length", (str,), _length),
    "toInt": sized_library("toInt", (str,), _to_int),
    "fromInt": sized_library("fromInt", (int,), _from_int),
}


def reverse_code_points(args: list[Any]) -> LibResult:
    """``reverse`` v2.0.0: the code points of a UTF-8 string in reverse order."""
    (text,) = check_args("reverse", args, (str,))
    require_utf8("reverse", text)
    return LibResult(text[::-1], GAS_PER_BYTE * len(bytes_from_text(text)))
