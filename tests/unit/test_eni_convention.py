"""ENI calling convention: memory images byte for byte, function names, registry, run/precompile."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from evm.eni import (
    ENI_BASE_GAS,
    EniError,
    Registry,
    available,
    decode_call,
    default_registry,
    encode_result,
    function_name,
    precompile_call,
    run,
)


def word(value: int) -> bytes:
    return (value % (1 << 256)).to_bytes(32, "big")


def padded(raw: bytes) -> bytes:
    return raw + bytes(-len(raw) % 32)


def reader(memory: bytes) -> Callable[[int, int], bytes]:
    def read(offset: int, size: int) -> bytes:
        chunk = memory[offset : offset + size]
        return chunk + bytes(size - len(chunk))

    return read


def type_section(arg_types: bytes, ret_types: bytes = b"\x04") -> bytes:
    return word(len(arg_types)) + padded(arg_types) + word(len(ret_types)) + padded(ret_types)


def data_section(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return word(len(body)) + body


def string_arg(raw: bytes) -> bytes:
    return word(len(raw)) + padded(raw)


def image(types: bytes, data: bytes) -> tuple[bytes, int, int]:
    """Memory: 0x80 free-pointer area, then the type section, then the data section."""
    type_offset = 0x80
    data_offset = type_offset + len(types)
    return bytes(0x80) + types + data, type_offset, data_offset


def decode(types: bytes, data: bytes) -> str:
    memory, type_offset, data_offset = image(types, data)
    return decode_call(reader(memory), type_offset, data_offset)


def test_decode_strings_are_escaped_travis_style() -> None:
    raw = b'q"b\\s\x00\x01\x1f\n\x7f' + "é".encode() + b"\xff"
    text = decode(type_section(b"\x04\x04"), data_section(string_arg(raw), string_arg(b"")))
    assert text == '["q\\"b\\\\s\\u0000\\u0001\\u001F\\u000A\x7fé\udcff",""]'
    # The raw 0xff byte survives as a surrogate escape and encodes back to itself.
    assert text.encode("utf-8", "surrogateescape").endswith(b'\xff",""]')


def test_decode_ints_uints_bools() -> None:
    types = bytes([9, 41, 42, 74, 0, 0])  # int, int256, uint, uint256, bool, bool
    data = data_section(word(-5), word(12), word((1 << 256) - 1), word(7), word(0), word(1 << 200))
    assert decode(type_section(types), data) == f"[-5,12,{(1 << 256) - 1},7,false,true]"


def test_decode_the_jsontest_call_shape() -> None:
    doc = b'{"hello": "world"}'
    types = type_section(bytes([4, 4, 9, 9, 4]))
    data = data_section(
        string_arg(b"objectGet"), string_arg(doc), word(0), word(18), string_arg(b"hello")
    )
    args = decode(types, data)
    assert args == '["objectGet","{\\"hello\\": \\"world\\"}",0,18,"hello"]'
    assert run("json", args) == ('["0000000a00000011"]', 160)


def test_decode_reads_past_the_end_as_zeros() -> None:
    memory, type_offset, data_offset = image(
        type_section(b"\x04"),
        word(64) + word(3),  # memory ends after the length word
    )
    assert decode_call(reader(memory), type_offset, data_offset) == '["\\u0000\\u0000\\u0000"]'


@pytest.mark.parametrize(
    "types, data",
    [
        (type_section(b"\x04", b""), data_section(string_arg(b"x"))),  # no return type
        (type_section(b"\x04", b"\x09"), data_section(string_arg(b"x"))),  # int return
        (type_section(b"\x04"), data_section(word(5))),  # string longer than the section
        (type_section(b"\x09"), data_section()),  # value past the section
        (type_section(b"\x01"), data_section(word(1))),  # address: unsupported
        (type_section(b"\x04"), word(1 << 40)),  # absurd data length
    ],
)
def test_decode_errors(types: bytes, data: bytes) -> None:
    with pytest.raises(EniError):
        decode(types, data)


def test_encode_result_layout() -> None:
    position, blob, free = encode_result(0x100, 0x60, '["hello"]')
    assert position == 0x100 + 32 + 0x60
    assert blob == word(64) + word(5) + padded(b"hello")
    assert free == position + 96


def test_encode_result_unaligned_length_word_and_empty_and_raw_bytes() -> None:
    position, blob, free = encode_result(0x100, 0x21, '[""]')
    assert (position, blob, free) == (0x100 + 32 + 0x40, word(32) + word(0), 0x100 + 32 + 0x40 + 64)
    _, blob, _ = encode_result(0, 0, '["\\u0001\udcff"]')
    assert blob == word(64) + word(2) + padded(b"\x01\xff")


@pytest.mark.parametrize("bad", ["[]", '["a","b"]', "[1]", "nope"])
def test_encode_result_rejects_non_string_results(bad: str) -> None:
    with pytest.raises(EniError):
        encode_result(0, 0, bad)


def test_function_name() -> None:
    assert function_name(b"reverse".ljust(32, b"\x00")) == "reverse"
    with pytest.raises(EniError):
        function_name(b"\xff".ljust(32, b"\x00"))


def test_registry_default_versions() -> None:
    registry = default_registry()
    enabled = registry.enabled()
    assert enabled["reverse"] == enabled["json"] == "v1.3.7"
    assert enabled["upper"] == enabled["json_get"] == "v1.0.0"
    assert set(enabled) == set(available())
    assert registry == Registry.default() == Registry.governed({})
    with pytest.raises(ValueError):
        Registry.governed({"reverse": "9.9"})
    with pytest.raises(EniError):
        run("no_such_function", "[]", registry)


def test_precompile_includes_base_gas_and_returns_the_string() -> None:
    assert precompile_call("reverse", '["abc"]') == ("cba", ENI_BASE_GAS + 30)
    with pytest.raises(EniError):
        precompile_call("nope", "[]")
