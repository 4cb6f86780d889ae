"""The consensus message codec: exact round trips, and MalformedMessage for any hostile input."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.core import RoundStep, Step, TimeoutInfo
from consensus.errors import MalformedMessage
from consensus.messages import (
    MAX_MESSAGE_BYTES,
    VERSION,
    ConsensusMessage,
    EndHeight,
    decode_message,
    encode_message,
)
from consensus.parts import BlockPart
from consensus.types import (
    MAX_HEIGHT,
    MAX_ROUND,
    BlockID,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Proposal,
    Vote,
    VoteType,
)

# -- strategies of valid messages ---------------------------------------------------------------
heights = st.integers(1, MAX_HEIGHT)
rounds = st.integers(0, MAX_ROUND)
hashes = st.binary(min_size=32, max_size=32)
addresses = st.binary(min_size=20, max_size=20)
signatures = st.binary(min_size=64, max_size=64)
block_ids = st.builds(BlockID, hashes, st.integers(1, 2**16), hashes)


@st.composite
def proposals(draw: st.DrawFn) -> Proposal:
    rnd = draw(rounds)
    pol = draw(st.integers(-1, rnd - 1))
    return Proposal(draw(heights), rnd, pol, draw(block_ids), draw(addresses), draw(signatures))


votes = st.builds(
    Vote,
    st.sampled_from(VoteType),
    heights,
    rounds,
    st.none() | block_ids,
    addresses,
    signatures,
)
block_parts = st.builds(
    BlockPart,
    heights,
    rounds,
    st.integers(0, 255),
    st.binary(max_size=300),
    st.lists(hashes, max_size=8).map(tuple),
)
commits = st.builds(
    Commit,
    heights,
    rounds,
    block_ids,
    st.lists(st.builds(CommitSig, addresses, signatures), max_size=5).map(tuple),
)
messages: st.SearchStrategy[ConsensusMessage] = st.one_of(
    proposals(),
    block_parts,
    votes,
    st.builds(DuplicateVoteEvidence.of, votes, votes),
    st.builds(TimeoutInfo, heights, rounds, st.sampled_from(Step), st.integers(0, 2**40)),
    st.builds(RoundStep, heights, rounds, st.sampled_from(Step)),
    commits,
    st.builds(EndHeight, st.integers(0, MAX_HEIGHT)),
)

# Arbitrary msgpack-able values: what a hostile peer can put where a field is expected.
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.binary(max_size=70),
    lambda inner: (
        st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=25,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_malformed_or_valid(data: bytes) -> None:
    """The codec's contract: a valid message, or MalformedMessage; never another exception."""
    try:
        msg = decode_message(data)
    except MalformedMessage:
        return
    assert decode_message(encode_message(msg)) == msg


# -- round trips --------------------------------------------------------------------------------
@FAST
@given(messages)
def test_round_trip(msg: ConsensusMessage) -> None:
    data = encode_message(msg)
    assert decode_message(data) == msg
    assert encode_message(decode_message(data)) == data  # the encoding is canonical


def test_format_is_version_tag_payload() -> None:
    assert msgpack.unpackb(encode_message(EndHeight(7))) == [VERSION, 8, [7]]


def test_encode_rejects_non_messages() -> None:
    with pytest.raises(TypeError):
        encode_message("vote")  # type: ignore[arg-type]


# -- hostile input ------------------------------------------------------------------------------
@FAST
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    assert_malformed_or_valid(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(encode_message(draw(messages)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        elif kind == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 9))]
        elif kind == "truncate":
            del data[pos:]
        else:
            data += draw(st.binary(min_size=1, max_size=9))
    return bytes(data)


@FAST
@given(mutated())
def test_mutations_of_valid_encodings(data: bytes) -> None:
    assert_malformed_or_valid(data)


@FAST
@given(st.integers(1, 8), msgpack_values)
def test_arbitrary_payload_for_every_kind(tag: int, payload: Any) -> None:
    assert_malformed_or_valid(msgpack.packb([VERSION, tag, payload]))


@FAST
@given(messages, st.data())
def test_one_field_replaced_by_anything(msg: ConsensusMessage, data: st.DataObject) -> None:
    version, tag, payload = msgpack.unpackb(encode_message(msg))
    index = data.draw(st.integers(0, len(payload) - 1))
    payload[index] = data.draw(msgpack_values)
    assert_malformed_or_valid(msgpack.packb([version, tag, payload]))


VALID = encode_message(EndHeight(3))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        VALID + b"\x00",  # trailing garbage
        VALID[:-1],  # truncated
        msgpack.packb([VERSION, 8, [3], 0]),  # extra envelope field
        msgpack.packb([2, 8, [3]]),  # unknown version
        msgpack.packb([True, 8, [3]]),  # bool is not a version
        msgpack.packb([VERSION, 99, [3]]),  # unknown kind
        msgpack.packb([VERSION, True, [3]]),  # bool is not a tag
        msgpack.packb([VERSION, 8.0, [3]]),  # float tag
        msgpack.packb([VERSION, 8, [3.0]]),  # float field
        msgpack.packb([VERSION, 8, [2**64 - 1]]),  # number out of range
        msgpack.packb([VERSION, 8, [-1]]),
        msgpack.packb([VERSION, 8, {"height": 3}]),  # map payload
        msgpack.packb({"v": 1}),
        msgpack.packb([VERSION, 8, [msgpack.ExtType(1, b"x")]]),
        msgpack.packb([VERSION, 8, ["x" * 1000]]),  # long string
        msgpack.packb([VERSION, 8, [b"\x00" * 8]]),  # bytes where an int belongs
        msgpack.packb([VERSION, 3, [1, 1, 0, None, b"a" * 19, b"s" * 64]]),  # 19-byte address
        msgpack.packb([VERSION, 3, [3, 1, 0, None, b"a" * 20, b"s" * 64]]),  # vote type 3
        msgpack.packb([VERSION, 7, [1, 0, [b"h" * 32, 1, b"p" * 32], [None] * 10_001]]),
        b"\x91" * 100_000,  # nesting deeper than msgpack's stack
        b"\xdd\xff\xff\xff\xff",  # array header claiming 4 billion items
        b"\xc6\xff\xff\xff\xff",  # bin header claiming 4 GiB
        b"\xc1",  # never-used msgpack byte
        b"\x93\x01\x08\xd9\x02\xff\xfe",  # invalid UTF-8 string
    ],
)
def test_specific_malformed_inputs(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_message(data)


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(MalformedMessage, match="too large"):
        decode_message(b"\x00" * (MAX_MESSAGE_BYTES + 1))


def test_non_bytes_input() -> None:
    with pytest.raises(MalformedMessage):
        decode_message("not bytes")  # type: ignore[arg-type]


def test_proposal_pol_round_must_precede_round() -> None:
    bid = BlockID(b"h" * 32, 1, b"p" * 32)
    bad = msgpack.packb([VERSION, 1, [5, 2, 2, bid.to_wire(), b"a" * 20, b"s" * 64]])
    with pytest.raises(MalformedMessage):
        decode_message(bad)
