"""evm/rlp_raw.py's encoders are byte for byte `rlp.encode` for the shapes they take."""

from __future__ import annotations

import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from evm.rlp_raw import encode_bytes, encode_uint


@settings(max_examples=300, derandomize=True)
@given(st.integers(0, 2**300))
def test_encode_uint_is_rlp_encode(n: int) -> None:
    assert encode_uint(n) == rlp.encode(n)


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=300))
def test_encode_bytes_is_rlp_encode(data: bytes) -> None:
    assert encode_bytes(data) == rlp.encode(data)
