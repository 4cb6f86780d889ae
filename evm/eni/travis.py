"""Travis libENI 1.3.7 libraries: reverse, scrypt, rsa_encrypt, rsa_decrypt and json.

Each library is a function ``(args) -> LibResult`` over the parsed argument array, reproducing
libENI's results and gas (SPEC §9, fixtures/lity):

* ``reverse(s)``: byte reversal, gas 10 per byte.
* ``scrypt(hex)``: Litecoin's scrypt (N=1024, r=1, p=1, 32 bytes, password = salt = the input
  zero-padded to 80 bytes), gas 10 per input byte; non-hex or > 160 chars costs 1500 and fails.
* ``rsa_encrypt(pem_public, msg)`` / ``rsa_decrypt(pem_private, hex)``: raw RSA without padding
  (message right-padded with NUL to the modulus size; decrypted text cut at the first NUL),
  gas 10 per modulus byte.
* ``json(op, data, begin, end[, extra])``: the token-position API the Lity ``json`` library is
  built on.  libENI runs the jsmn tokenizer (non-strict mode) over ``data[:end]`` from ``begin``;
  ``_jsmn`` re-implements the part of jsmn the ops observe, including its quirks (the counting
  pass ignores brackets; a failing second pass leaves zeroed tokens behind).  Positions are byte
  offsets; a token is 16 lowercase hex chars (start, end as big-endian u32, strings with quotes).

Divergence from Travis, for node safety: RSA moduli above 4096 bits are refused (modular
exponentiation cost grows cubically while gas grows linearly).
"""

from __future__ import annotations

import hashlib
import json as stdjson
import string
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from evm.eni.convention import (
    GAS_PER_BYTE,
    EniError,
    LibResult,
    bytes_from_text,
    check_args,
    text_from_bytes,
)

# --- reverse ---------------------------------------------------------------------------------


def reverse(args: list[Any]) -> LibResult:
    (text,) = check_args("reverse", args, (str,))
    raw = bytes_from_text(text)
    return LibResult(text_from_bytes(raw[::-1]), GAS_PER_BYTE * len(raw))


# --- scrypt ----------------------------------------------------------------------------------

SCRYPT_MAX_HEX_CHARS = 160  # an 80-byte block header
SCRYPT_REJECT_GAS = 1500
_HEX_DIGITS = frozenset(string.hexdigits)


def scrypt(args: list[Any]) -> LibResult:
    (hex_text,) = check_args("scrypt", args, (str,))
    if (
        len(hex_text) > SCRYPT_MAX_HEX_CHARS
        or len(hex_text) % 2
        or not _HEX_DIGITS.issuperset(hex_text)
    ):
        raise EniError("scrypt: input is not hex of at most 80 bytes", gas=SCRYPT_REJECT_GAS)
    data = bytes.fromhex(hex_text)
    block = data + bytes(80 - len(data))
    digest = hashlib.scrypt(block, salt=block, n=1024, r=1, p=1, dklen=32)
    return LibResult(digest.hex(), GAS_PER_BYTE * len(data))


# --- raw RSA ---------------------------------------------------------------------------------

RSA_MAX_MODULUS_BITS = 4096


def _modulus_bytes(n: int) -> int:
    if n.bit_length() > RSA_MAX_MODULUS_BITS:
        raise EniError("rsa: modulus larger than 4096 bits")
    return (n.bit_length() + 7) // 8


def _load_public(pem: str) -> rsa.RSAPublicNumbers:
    try:
        key = load_pem_public_key(bytes_from_text(pem))
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # malformed or exotic PEM
        raise EniError("rsa_encrypt: bad public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise EniError("rsa_encrypt: not an RSA key")
    return key.public_numbers()


def _load_private(pem: str) -> rsa.RSAPrivateNumbers:
    try:
        key = load_pem_private_key(bytes_from_text(pem), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise EniError("rsa_decrypt: bad private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise EniError("rsa_decrypt: not an RSA key")
    return key.private_numbers()


def _raw_rsa(value: int, exponent: int, n: int, size: int) -> bytes:
    # OpenSSL's RSA_NO_PADDING refuses inputs not below the modulus.
    if value >= n:
        raise EniError("rsa: data too large for modulus")
    return pow(value, exponent, n).to_bytes(size, "big")


def rsa_encrypt(args: list[Any]) -> LibResult:
    pem, message = check_args("rsa_encrypt", args, (str, str))
    numbers = _load_public(pem)
    size = _modulus_bytes(numbers.n)
    raw = bytes_from_text(message)
    if len(raw) > size:
        raise EniError("rsa_encrypt: message longer than the modulus")
    padded = raw + bytes(size - len(raw))
    cipher = _raw_rsa(int.from_bytes(padded, "big"), numbers.e, numbers.n, size)
    return LibResult(cipher.hex(), GAS_PER_BYTE * size)


def rsa_decrypt(args: list[Any]) -> LibResult:
    pem, cipher_hex = check_args("rsa_decrypt", args, (str, str))
    numbers = _load_private(pem)
    n = numbers.public_numbers.n
    size = _modulus_bytes(n)
    try:
        cipher = bytes.fromhex(cipher_hex)
    except ValueError as exc:
        raise EniError("rsa_decrypt: ciphertext is not hex") from exc
    if len(cipher) > size:
        raise EniError("rsa_decrypt: ciphertext longer than the modulus")
    plain = _raw_rsa(int.from_bytes(cipher, "big"), numbers.d, n, size)
    return LibResult(text_from_bytes(plain.split(b"\x00", 1)[0]), GAS_PER_BYTE * size)


# --- json: a jsmn replica --------------------------------------------------------------------

JSMN_UNDEFINED, JSMN_OBJECT, JSMN_ARRAY, JSMN_STRING, JSMN_PRIMITIVE = range(5)
_PRIMITIVE_END = frozenset(b":\t\r\n ,]}")  # ':' ends a primitive in non-strict mode
_ESCAPES = frozenset(b'"/\\bfrnt')
_HEX_BYTES = frozenset(string.hexdigits.encode())


@dataclass
class Token:
    type: int = JSMN_UNDEFINED
    start: int = 0
    end: int = 0


class _JsmnFailure(Exception):
    """jsmn returned a negative code (JSMN_ERROR_INVAL / JSMN_ERROR_PART)."""


def _scan_string(js: bytes, pos: int) -> int:
    """Index of the closing quote of the string opening at ``pos`` (jsmn_parse_string)."""
    pos += 1
    while pos < len(js) and js[pos] != 0:
        c = js[pos]
        if c == ord('"'):
            return pos
        if c == ord("\\") and pos + 1 < len(js):
            pos += 1
            if js[pos] == ord("u"):
                pos += 1
                digits = 0
                while digits < 4 and pos < len(js) and js[pos] != 0:
                    if js[pos] not in _HEX_BYTES:
                        raise _JsmnFailure("bad \\u escape")
                    pos += 1
                    digits += 1
                pos -= 1
            elif js[pos] not in _ESCAPES:
                raise _JsmnFailure("bad escape")
        pos += 1
    raise _JsmnFailure("unterminated string")


def _scan_primitive(js: bytes, pos: int) -> int:
    """End (exclusive) of the primitive starting at ``pos`` (jsmn_parse_primitive, non-strict)."""
    while pos < len(js) and js[pos] != 0:
        c = js[pos]
        if c in _PRIMITIVE_END:
            break
        # jsmn compares a signed char: bytes >= 0x80 are negative, hence "< 32" too.
        if c < 32 or c >= 127:
            raise _JsmnFailure("bad primitive character")
        pos += 1
    return pos


def _close(tokens: list[Token], js: bytes, pos: int) -> None:
    """Close the innermost open container (jsmn's '}' / ']' case with a token array)."""
    wanted = JSMN_OBJECT if js[pos] == ord("}") else JSMN_ARRAY
    for token in reversed(tokens):
        if token.end == -1:
            if token.type != wanted:
                raise _JsmnFailure("mismatched bracket")
            token.end = pos + 1
            return
    raise _JsmnFailure("unmatched closing bracket")


def _jsmn_pass(js: bytes, start: int, tokens: list[Token] | None) -> int:
    """One jsmn_parse call from ``start``: counts tokens, or also fills ``tokens`` when given.

    Like jsmn, the counting pass (``tokens is None``) does not check brackets."""
    count = 0
    pos = start
    while pos < len(js) and js[pos] != 0:
        c = js[pos]
        if c in b"{[":
            count += 1
            if tokens is not None:
                tokens.append(Token(JSMN_OBJECT if c == ord("{") else JSMN_ARRAY, pos, -1))
        elif c in b"}]":
            if tokens is not None:
                _close(tokens, js, pos)
        elif c == ord('"'):
            close = _scan_string(js, pos)
            count += 1
            if tokens is not None:
                tokens.append(Token(JSMN_STRING, pos + 1, close))
            pos = close
        elif c not in b"\t\r\n :,":
            stop = _scan_primitive(js, pos)
            count += 1
            if tokens is not None:
                tokens.append(Token(JSMN_PRIMITIVE, pos, stop))
            pos = stop - 1
        pos += 1
    if tokens is not None and any(t.end == -1 for t in tokens):
        raise _JsmnFailure("unclosed container")
    return count


def _tokenize(data: bytes, start: int, end: int) -> list[Token]:
    """libENI's ``internalParse``: count, allocate zeroed tokens, fill them ignoring errors."""
    if start < 0:
        raise EniError("json: negative begin")
    js = data[:end] if end >= 0 else data  # a negative int becomes a huge size_t
    try:
        count = _jsmn_pass(js, start, None)
    except _JsmnFailure as exc:
        raise EniError(f"json: {exc}") from exc
    if count == 0:
        raise EniError("json: no token")
    filled: list[Token] = []
    try:
        _jsmn_pass(js, start, filled)
    except _JsmnFailure:
        pass  # libENI ignores the second pass's result; unfilled tokens stay zero
    return (filled + [Token() for _ in range(count)])[:count]


def _children(tokens: list[Token]) -> list[Token]:
    """Direct children of ``tokens[0]`` (libENI's ``arrayTokens`` filter)."""
    after, before = tokens[0].start, tokens[0].end
    result = []
    for token in tokens[1:]:
        if token.start < after:
            continue
        if token.start > before:
            break
        result.append(token)
        after = token.end
    return result


def _encode_token(token: Token) -> str:
    quote = 1 if token.type == JSMN_STRING else 0
    return f"{token.start - quote:08x}{token.end + quote:08x}"


def _decode_json_string(raw: bytes) -> str:
    """The first JSON value of ``raw`` (leading whitespace allowed), which must be a string."""
    text = text_from_bytes(raw).lstrip(" \t\r\n")
    try:
        value, _ = stdjson.JSONDecoder().raw_decode(text)
    except ValueError as exc:
        raise EniError("json: not a JSON value") from exc
    if not isinstance(value, str):
        raise EniError("json: value is not a string")
    return value


def _object_members(data: bytes, tokens: list[Token]) -> dict[str, Token]:
    members: dict[str, Token] = {}
    children = _children(tokens)
    for key, value in zip(children[::2], children[1::2], strict=False):
        if key.type != JSMN_STRING:
            raise EniError("json: object key is not a string")
        members[_decode_json_string(data[key.start - 1 : key.end + 1])] = value
    return members


def _json_parse_string(data: bytes, begin: int, end: int) -> str:
    # std::string(s, pos, count): pos past the end throws, count is clipped.
    if not 0 <= begin <= len(data) or end < 0:
        raise EniError("json: substring out of range")
    return _decode_json_string(data[begin : begin + end])


def _json_array_get(data: bytes, begin: int, end: int, index: object) -> str:
    if not isinstance(index, int) or isinstance(index, bool):
        raise EniError("json: arrayGet index is not an integer")
    children = _children(_tokenize(data, begin, end))
    if not 0 <= index < len(children):
        raise EniError("json: arrayGet index out of range")
    return _encode_token(children[index])


def _json_object_get(data: bytes, begin: int, end: int, key: object) -> str:
    if not isinstance(key, str):
        raise EniError("json: objectGet key is not a string")
    members = _object_members(data, _tokenize(data, begin, end))
    # std::map::operator[] value-initialises a missing key: an all-zero token.
    return _encode_token(members.get(key, Token()))


def json(args: list[Any]) -> LibResult:
    if len(args) not in (4, 5):
        raise EniError("json: expected 4 or 5 arguments")
    op, data_text, begin, end = check_args("json", args[:4], (str, str, int, int))
    data = bytes_from_text(data_text)
    extra = args[4] if len(args) == 5 else None
    if op == "parseString":
        value = _json_parse_string(data, begin, end)
    elif op == "parseArray":
        value = "".join(map(_encode_token, _children(_tokenize(data, begin, end))))
    elif op == "arrayGet":
        value = _json_array_get(data, begin, end, extra)
    elif op == "objectGet":
        value = _json_object_get(data, begin, end, extra)
    else:
        raise EniError(f"json: unknown op {op!r}")
    # libENI charges 10 per byte of its result string (token hex or the parsed string).
    return LibResult(value, GAS_PER_BYTE * len(bytes_from_text(value)))
