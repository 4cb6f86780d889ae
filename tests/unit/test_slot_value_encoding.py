"""The storage trie's leaf values (evm/state.py `encode_slot_value`) are byte for byte what
`rlp.encode` gives for the word, so state roots do not move; 0 is a deletion (b"")."""

from __future__ import annotations

import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from evm.state import encode_slot_value

EDGES = [1, 0x7F, 0x80, 0xFF, 0x100, 2**55, 2**56 - 1, 2**64, 2**255, 2**256 - 1]


@settings(max_examples=500, derandomize=True)
@given(st.integers(1, 2**256 - 1) | st.sampled_from(EDGES))
def test_a_word_encodes_as_rlp_of_its_integer(value: int) -> None:
    assert encode_slot_value(value) == rlp.encode(value)


def test_zero_is_a_deletion() -> None:
    assert encode_slot_value(0) == b""
