"""The ENI calling convention (SPEC §9): how an ENI call crosses the VM/library boundary.

Bird's-eye view::

    memory --decode_call--> args JSON --library--> result JSON --encode_result--> memory

* ``decode_call`` reads the type section and the data section the Lity compiler lays out in memory
  and renders the arguments as the JSON array text Travis's VM hands to libENI.
* Libraries get the parsed argument list and return one string plus their gas (``LibResult``);
  ``render_result`` turns it into the JSON array text libENI would return (``["..."]``).
* ``encode_result`` turns that result text back into the bytes the VM writes after the data section.

Byte strings and ``str``: contract strings are arbitrary bytes, not necessarily UTF-8, and Travis
passes them raw inside the JSON text.  We carry such text as Python ``str`` decoded with
``surrogateescape`` (``text_from_bytes`` / ``bytes_from_text``), so every byte string round-trips
exactly and byte-oriented libraries (``reverse``, token positions of ``json``) see the real bytes.

Type codes are those of Travis's ``core/vm/eni/typecodes`` (BOOL=0, STRING=4, INT..INT256=9..41,
UINT..UINT256=42..74); addresses, bytes, enums, arrays and structs are not part of SPEC §9 and are
rejected.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

WORD = 32
GAS_PER_BYTE = 10

# Travis typecodes (iota order in core/vm/eni/typecodes).
TYPE_BOOL = 0
TYPE_STRING = 4
TYPE_INT_FIRST, TYPE_INT_LAST = 9, 41  # INT, INT8 .. INT256
TYPE_UINT_FIRST, TYPE_UINT_LAST = 42, 74  # UINT, UINT8 .. UINT256

# Reads never expand memory, so a contract could name a gigantic section for free; refuse sizes
# no real call needs instead of allocating them (deterministic: depends only on the words read).
MAX_SECTION_BYTES = 1 << 24


class EniError(Exception):
    """Unknown function, bad arguments or library failure: the VM errors and consumes all gas.

    ``gas`` is the library gas Travis had already charged when the failure was detected (e.g.
    1500 for a rejected scrypt input), or None; the VM burns all gas either way, so it is
    informational (traces, the precompile's error report)."""

    def __init__(self, message: str, gas: int | None = None) -> None:
        super().__init__(message)
        self.gas = gas


@dataclass(frozen=True)
class LibResult:
    """What a library returns: its single string result and its gas (ENI_BASE_GAS excluded)."""

    value: str
    gas: int


Library = Callable[[list[Any]], LibResult]


# --- bytes <-> text --------------------------------------------------------------------------


def text_from_bytes(raw: bytes) -> str:
    """Contract bytes as text; invalid UTF-8 is kept as surrogate escapes (lossless)."""
    return raw.decode("utf-8", "surrogateescape")


def bytes_from_text(text: str) -> bytes:
    """Inverse of ``text_from_bytes``; a lone surrogate that is no byte escape is an error."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise EniError("string is not encodable as bytes") from exc


def is_valid_utf8(text: str) -> bool:
    """False when ``text`` carries raw non-UTF-8 bytes (surrogate escapes) or lone surrogates."""
    return not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


# --- JSON text as Travis writes it ----------------------------------------------------------


def escape_json_string(text: str) -> str:
    """Quoted JSON string, Travis style: ``\\`` and ``"`` backslashed, code units < 0x20 as
    ``\\u00XX`` (uppercase hex), everything else raw (no ``\\n`` shortcuts, no ASCII escaping)."""
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def render_result(value: str) -> str:
    """The result JSON text of a library: a one-element array holding the string."""
    return "[" + escape_json_string(value) + "]"


def parse_result(result_json: str) -> str:
    """The string inside a result JSON text ``["..."]`` (the only return type ENI has)."""
    try:
        parsed = json.loads(result_json)
    except (ValueError, RecursionError) as exc:
        raise EniError("result is not JSON") from exc
    if not (isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], str)):
        raise EniError("result is not a one-string array")
    return parsed[0]


def parse_args(args_json: str) -> list[Any]:
    """The argument JSON array text as a list; anything else is bad arguments."""
    try:
        args = json.loads(args_json)
    except (ValueError, RecursionError) as exc:
        raise EniError("arguments are not JSON") from exc
    if not isinstance(args, list):
        raise EniError("arguments are not a JSON array")
    return args


def check_args(function: str, args: Sequence[Any], types: Sequence[type]) -> list[Any]:
    """Check arity and JSON types of ``args`` (``int`` excludes ``bool``); returns them."""
    if len(args) != len(types):
        raise EniError(f"{function}: expected {len(types)} arguments, got {len(args)}")
    for position, (arg, expected) in enumerate(zip(args, types, strict=True)):
        # bool is an int subclass in Python but a distinct JSON type.
        if not isinstance(arg, expected) or (expected is int and isinstance(arg, bool)):
            raise EniError(f"{function}: argument {position} is not {expected.__name__}")
    return list(args)


def size_gas(args: Sequence[Any], result: str) -> int:
    """Gas of our libraries: 10 per byte of input and of output (integers count their decimal
    digits).  Charging the output too keeps amplifying calls (``replace``, ``json_set``) paid."""
    size = len(result.encode("utf-8", "surrogatepass"))
    for arg in args:
        size += len(str(arg).encode("utf-8", "surrogatepass"))
    return GAS_PER_BYTE * size


def require_utf8(function: str, *texts: str) -> None:
    """Our libraries work on code points: raw non-UTF-8 argument bytes are bad arguments."""
    if not all(map(is_valid_utf8, texts)):
        raise EniError(f"{function}: argument is not valid UTF-8")


MAX_RESULT_CHARS = 1 << 20  # our libraries refuse to build larger results (memory safety)


def check_result_size(function: str, chars: int) -> None:
    if chars > MAX_RESULT_CHARS:
        raise EniError(f"{function}: result too large")


def sized_library(name: str, types: Sequence[type], compute: Callable[..., str]) -> Library:
    """Wrap ``compute(*args) -> str`` as one of our libraries: argument checking, UTF-8 only
    strings, ``size_gas``."""

    def call(args: list[Any]) -> LibResult:
        checked = check_args(name, args, types)
        require_utf8(name, *(arg for arg in checked if isinstance(arg, str)))
        value = compute(*checked)
        check_result_size(name, len(value))
        return LibResult(value, size_gas(checked, value))

    call.__name__ = name
    return call


# --- EVM memory -> argument text -------------------------------------------------------------


def roundup32(n: int) -> int:
    return (n + WORD - 1) // WORD * WORD


def _word(read: Callable[[int, int], bytes], offset: int) -> int:
    return int.from_bytes(read(offset, WORD), "big")


def _section_size(value: int, what: str) -> int:
    if value > MAX_SECTION_BYTES:
        raise EniError(f"{what} too large: {value}")
    return value


def function_name(word: bytes) -> str:
    """The ENI function name: a 32-byte left-aligned ASCII word with NULs stripped."""
    try:
        return word.rstrip(b"\x00").decode("ascii")
    except UnicodeDecodeError as exc:
        raise EniError("function name is not ASCII") from exc


def read_types(read: Callable[[int, int], bytes], type_offset: int) -> bytes:
    """Argument type codes of the type section; checks the return types are one string."""
    count = _section_size(_word(read, type_offset), "type count")
    arg_types = read(type_offset + WORD, count)
    ret_offset = type_offset + WORD + roundup32(count)
    ret_count = _word(read, ret_offset)
    if ret_count != 1 or read(ret_offset + WORD, 1) != bytes([TYPE_STRING]):
        raise EniError("ENI return type must be exactly one string")
    return arg_types


def _render_value(code: int, word: bytes) -> str:
    value = int.from_bytes(word, "big")
    if code == TYPE_BOOL:
        return "true" if value else "false"
    if TYPE_INT_FIRST <= code <= TYPE_INT_LAST:
        # Travis interprets every signed type as a full 256-bit two's-complement word.
        return str(value - (1 << 256) if value >> 255 else value)
    if TYPE_UINT_FIRST <= code <= TYPE_UINT_LAST:
        return str(value)
    raise EniError(f"unsupported ENI argument type code {code}")


def _render_string(data: bytes, pos: int) -> tuple[str, int]:
    """The string at ``data[pos:]`` (length word, bytes, padding) and the position after it."""
    if pos + WORD > len(data):
        raise EniError("string length word past the data section")
    length = int.from_bytes(data[pos : pos + WORD], "big")
    start = pos + WORD
    if start + length > len(data):
        raise EniError("string bytes past the data section")
    text = text_from_bytes(data[start : start + length])
    return escape_json_string(text), start + roundup32(length)


def decode_call(read: Callable[[int, int], bytes], type_offset: int, data_offset: int) -> str:
    """Render the arguments of an ENI call as the JSON array text the libraries get.

    ``read(offset, size)`` reads EVM memory without expanding it (zeros past the end).  The data
    section is ``L`` (its byte length, bounding what may be read, padding of the last string
    included) followed by the packed arguments."""
    arg_types = read_types(read, type_offset)
    data_length = _section_size(_word(read, data_offset), "data length")
    data = read(data_offset + WORD, roundup32(data_length))
    rendered = []
    pos = 0
    for code in arg_types:
        if code == TYPE_STRING:
            text, pos = _render_string(data, pos)
        else:
            if pos + WORD > len(data):
                raise EniError("value argument past the data section")
            text = _render_value(code, data[pos : pos + WORD])
            pos += WORD
        rendered.append(text)
    return "[" + ",".join(rendered) + "]"


# --- result text -> EVM memory ---------------------------------------------------------------


def encode_result(data_offset: int, data_length_word: int, result: str) -> tuple[int, bytes, int]:
    """Where and what the VM writes for a library result.

    ``result`` is the result JSON text as returned by ``run`` (``["..."]``).  Returns
    ``(P, blob, new_free_pointer)``: the VM writes ``blob`` at ``P``, stores
    ``new_free_pointer`` at mem[0x40] and pushes ``P + 32``.  ``blob`` is
    ``word(len(encoded)) ‖ encoded`` with ``encoded = word(len(s)) ‖ s ‖ zero padding``."""
    raw = bytes_from_text(parse_result(result))
    encoded = len(raw).to_bytes(WORD, "big") + raw + bytes(roundup32(len(raw)) - len(raw))
    blob = len(encoded).to_bytes(WORD, "big") + encoded
    position = data_offset + WORD + roundup32(data_length_word)
    return position, blob, roundup32(position + len(blob))
