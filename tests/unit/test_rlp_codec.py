"""system/rlp_codec.py: the fast encoder is byte for byte `rlp.encode`; the memo never changes
what a decoder returns."""

from __future__ import annotations

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node.system import rlp_codec

values = st.recursive(
    st.binary(max_size=80) | st.integers(0, 2**300) | st.booleans(),
    lambda inner: st.lists(inner, max_size=8),
    max_leaves=40,
)


@settings(max_examples=400, derandomize=True)
@given(values)
def test_encode_is_rlp_encode(value: rlp_codec.Encodable) -> None:
    assert rlp_codec.encode(value) == rlp.encode(value)


@pytest.mark.parametrize("length", [0, 1, 55, 56, 255, 256, 70_000])
def test_encode_long_strings_and_lists(length: int) -> None:
    data = bytes(range(256)) * (length // 256 + 1)
    assert rlp_codec.encode(data[:length]) == rlp.encode(data[:length])
    items = [b"\x01"] * length
    assert rlp_codec.encode(items) == rlp.encode(items)


def test_encode_refuses_negative_integers() -> None:
    with pytest.raises(ValueError, match="negative"):
        rlp_codec.encode([1, -1])


def test_memoised_decoder_returns_what_the_decoder_returns_and_remembers() -> None:
    calls: list[bytes] = []

    def decode(encoded: bytes) -> tuple[int, ...]:
        calls.append(encoded)
        return tuple(int.from_bytes(x, "big") for x in rlp.decode(encoded))

    memoised = rlp_codec.memoised_decoder(decode)
    a, b = rlp.encode([1, 2]), rlp.encode([3])
    assert memoised(a) == (1, 2) and memoised(b) == (3,) and memoised(a) == (1, 2)
    assert calls == [a, b]
    with pytest.raises(rlp.DecodingError):
        memoised(b"\x81\x01")  # not canonical: refused, and not remembered
    with pytest.raises(rlp.DecodingError):
        memoised(b"\x81\x01")
