"""Sans-I/O wire codecs: length-prefixed frames and msgpack packets.

On the wire a connection is a sequence of frames, each `u32 big-endian length || body`. After
the handshake the body is ChaCha20-Poly1305 ciphertext (see `handshake.py`) of a *packet*:
msgpack `[channel_id, message]`.

`FrameDecoder` is fed whatever bytes the socket produced and returns the complete frames. It
checks the announced length as soon as the 4 header bytes are in, before any of the body is
buffered, so a peer cannot make us allocate more than `max_frame_bytes` (+ one read).

`decode_packet` never raises anything but `MalformedFrame`: the msgpack limits are derived from
the frame size, ext types are refused, map keys must be str/bytes, strings must be UTF-8, and
the channel must be one the node serves, with the packet within that channel's size limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from p2p.errors import FrameTooLarge, MalformedFrame

HEADER_BYTES = 4
MAX_FRAME_LIMIT = 2**32 - 1


def encode_frame(body: bytes) -> bytes:
    if len(body) > MAX_FRAME_LIMIT:
        raise ValueError("frame body does not fit a u32 length")
    return len(body).to_bytes(HEADER_BYTES, "big") + body


def frame_header(body_len: int) -> bytes:
    return body_len.to_bytes(HEADER_BYTES, "big")


class FrameDecoder:
    """Reassembles length-prefixed frames from arbitrary chunks of a byte stream.

    `append` + `next_frame` parse one frame at a time, so a limit changed between two frames
    (the handshake's small one, then the connection's) applies to every frame after the change.
    `feed` is the one-call form: append and return every complete frame.

    FrameTooLarge is raised as soon as a header announces more than `max_frame_bytes`; the
    decoder is unusable afterwards (the stream has no recoverable boundary)."""

    def __init__(self, max_frame_bytes: int) -> None:
        if not 0 < max_frame_bytes <= MAX_FRAME_LIMIT:
            raise ValueError("max_frame_bytes out of range")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._pos = 0  # start of the first unparsed byte

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def append(self, data: bytes | bytearray) -> None:
        # Drop consumed bytes once per append, not per frame: deleting a bytearray's head
        # copies the rest.
        del self._buf[: self._pos]
        self._pos = 0
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None until more bytes arrive."""
        start = self._pos + HEADER_BYTES
        if len(self._buf) < start:
            return None
        size = int.from_bytes(self._buf[self._pos : start], "big")
        if size > self.max_frame_bytes:
            raise FrameTooLarge(f"frame of {size} bytes exceeds {self.max_frame_bytes}")
        if len(self._buf) < start + size:
            return None
        self._pos = start + size
        return bytes(self._buf[start : self._pos])

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        self.append(data)
        return list(iter(self.next_frame, None))


def encode_packet(channel: int, message: Any) -> bytes:
    """msgpack `[channel, message]`; TypeError if `message` is not msgpack-encodable."""
    return msgpack.packb([channel, message], use_bin_type=True)


def _unpacker(data: bytes) -> msgpack.Unpacker:
    limit = len(data)
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        use_list=True,
        max_buffer_size=max(limit, 1),
        max_str_len=limit,
        max_bin_len=limit,
        max_array_len=limit,
        max_map_len=limit // 2,
        max_ext_len=0,
    )
    unpacker.feed(data)
    return unpacker


def unpack_strict(data: bytes) -> Any:
    """Decode exactly one msgpack object under the same strict limits; MalformedFrame else."""
    try:
        unpacker = _unpacker(data)
        obj = unpacker.unpack()
        if unpacker.tell() != len(data):
            raise MalformedFrame("trailing bytes after the object")
    except MalformedFrame:
        raise
    except Exception as exc:  # msgpack raises many types: ValueError, StackError, ...
        raise MalformedFrame(f"undecodable msgpack: {type(exc).__name__}") from None
    return obj


def decode_packet(data: bytes, max_message_bytes: Mapping[int, int]) -> tuple[int, Any]:
    """Decode `[channel, message]` from a frame's plaintext.

    `max_message_bytes` maps every channel the node serves to the largest packet it accepts.
    The channel is read first, so an oversize message is refused before it is decoded."""
    try:
        unpacker = _unpacker(data)
        if unpacker.read_array_header() != 2:
            raise MalformedFrame("packet is not a 2-element array")
        channel = unpacker.unpack()
        if type(channel) is not int:
            raise MalformedFrame("channel id is not an integer")
        limit = max_message_bytes.get(channel)
        if limit is None:
            raise MalformedFrame(f"unknown channel {channel}")
        if len(data) > limit:
            raise MalformedFrame(f"packet of {len(data)} bytes exceeds channel {channel}'s {limit}")
        message = unpacker.unpack()
        if unpacker.tell() != len(data):
            raise MalformedFrame("trailing bytes after the packet")
    except MalformedFrame:
        raise
    except Exception as exc:  # msgpack raises many types: ValueError, StackError, ...
        raise MalformedFrame(f"undecodable packet: {type(exc).__name__}") from None
    return channel, message
