"""Sans-I/O frame and packet codecs (p2p.framing), table-driven and fuzzed with Hypothesis."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.errors import FrameTooLarge, MalformedFrame, P2PError
from p2p.framing import FrameDecoder, decode_packet, encode_frame, encode_packet

LIMITS = {0x30: 10_000, 0x00: 64}


def feed_in_chunks(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[bytes]:
    frames: list[bytes] = []
    start = 0
    for cut in sorted({min(c, len(data)) for c in cuts}) + [len(data)]:
        frames += decoder.feed(data[start:cut])
        start = cut
    return frames


def test_frames_reassemble_at_every_split_point() -> None:
    bodies = [b"", b"a", b"hello world", bytes(range(256))]
    wire = b"".join(encode_frame(b) for b in bodies)
    for cut in range(len(wire) + 1):
        decoder = FrameDecoder(1024)
        assert decoder.feed(wire[:cut]) + decoder.feed(wire[cut:]) == bodies
        assert decoder.buffered == 0


def test_oversize_header_is_refused_before_the_body_arrives() -> None:
    decoder = FrameDecoder(100)
    assert decoder.feed(encode_frame(b"x" * 100)) == [b"x" * 100]  # exactly the limit is fine
    assert decoder.feed((101).to_bytes(4, "big")[:3]) == []  # header incomplete: nothing yet
    with pytest.raises(FrameTooLarge):
        decoder.feed((101).to_bytes(4, "big")[3:])  # no body byte has been sent


def test_a_new_limit_applies_to_the_frames_not_yet_taken() -> None:
    decoder = FrameDecoder(10)
    decoder.append(encode_frame(b"small") + encode_frame(b"x" * 100))
    assert decoder.next_frame() == b"small"
    decoder.max_frame_bytes = 1000  # the handshake is over: the connection's limit
    assert decoder.next_frame() == b"x" * 100
    assert decoder.next_frame() is None


def test_huge_announced_length_does_not_allocate() -> None:
    with pytest.raises(FrameTooLarge):
        FrameDecoder(4 * 2**20).feed(b"\xff\xff\xff\xff")


def test_packet_roundtrip() -> None:
    message = [b"\x00raw", "text", {"k": [1, -2, None, True]}, 2**63]
    assert decode_packet(encode_packet(0x30, message), LIMITS) == (0x30, message)
    assert decode_packet(encode_packet(0x30, (1, 2)), LIMITS) == (0x30, [1, 2])


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "empty"),
        (b"\x92", "truncated"),
        (msgpack.packb([0x30]), "one element"),
        (msgpack.packb([0x30, 1, 2]), "three elements"),
        (msgpack.packb({"a": 1}), "a map"),
        (msgpack.packb([0x30, 1]) + b"\x00", "trailing bytes"),
        (msgpack.packb([0x31, 1]), "unknown channel"),
        (msgpack.packb(["0x30", 1]), "channel is a string"),
        (msgpack.packb([True, 1]), "channel is a bool"),
        (msgpack.packb([0x00, b"x" * 100]), "over the channel limit"),
        (msgpack.packb([0x30, msgpack.ExtType(5, b"abc")]), "ext type"),
        (msgpack.packb([0x30, {1: 2}]), "non-string map key"),
        (b"\x92\x30\xa2\xff\xfe", "invalid utf-8"),
        (b"\x92\x30" + b"\x91" * 5000 + b"\xc0", "nesting deeper than the unpacker's stack"),
        (b"\x92\x30\xdd\xff\xff\xff\xff", "array length beyond the buffer"),
        (b"\x92\x30\xc6\x7f\xff\xff\xff", "bin length beyond the buffer"),
        (b"\xc1", "reserved byte"),
    ],
)
def test_malformed_packets(data: bytes, why: str) -> None:
    with pytest.raises(MalformedFrame):
        decode_packet(data, LIMITS)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512), st.lists(st.integers(0, 512), max_size=8))
def test_fuzz_decoder_raises_only_package_errors(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(64)
    try:
        frames = feed_in_chunks(decoder, data, cuts)
    except FrameTooLarge:
        return
    assert all(len(f) <= 64 for f in frames)
    assert sum(4 + len(f) for f in frames) + decoder.buffered == len(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=80), max_size=6),
    st.lists(st.integers(0, 600), max_size=6),
    st.integers(0, 600),
)
def test_fuzz_truncated_streams_yield_a_prefix_of_the_frames(
    bodies: list[bytes], cuts: list[int], truncate_at: int
) -> None:
    wire = b"".join(encode_frame(b) for b in bodies)[:truncate_at]
    try:
        frames = feed_in_chunks(FrameDecoder(64), wire, cuts)
    except FrameTooLarge:
        assert any(len(b) > 64 for b in bodies)
        return
    assert frames == bodies[: len(frames)]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_packet_decoder_raises_only_malformed(data: bytes) -> None:
    try:
        channel, _ = decode_packet(data, LIMITS)
    except MalformedFrame:
        return
    assert channel in LIMITS


_messages = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_messages, st.integers(0, 40), st.integers(0, 255))
def test_fuzz_roundtrip_and_mutations(message: object, position: int, byte: int) -> None:
    packet = encode_packet(0x30, message)
    assert decode_packet(packet, LIMITS) == (0x30, message)
    mutated = bytearray(packet)
    mutated[position % len(mutated)] = byte
    for candidate in (bytes(mutated), packet[: position % len(packet)]):
        try:
            decode_packet(candidate, LIMITS)
        except P2PError as exc:
            assert isinstance(exc, MalformedFrame)
