"""The one versioned codec of consensus messages, for the p2p consensus channel and the WAL.

A message is the msgpack array `[version, kind_tag, payload]` where `payload` is the record's
`to_wire()` list. Tags are part of the format: never renumber them, only add new ones (and bump
`VERSION` only for an incompatible change).

Decoding is the border with hostile peers: `decode_message` returns a well-formed record or
raises `MalformedMessage`, and nothing else, whatever the bytes. msgpack is run with tight limits
(no maps, no extension types, bounded bins, arrays and strings) so a small message cannot make it
allocate much, and every field is then checked by the record's own `from_wire`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from consensus.core import RoundStep, TimeoutInfo
from consensus.errors import MalformedMessage
from consensus.parts import MAX_BLOCK_BYTES, BlockPart
from consensus.types import (
    MAX_HEIGHT,
    Commit,
    DuplicateVoteEvidence,
    Proposal,
    Vote,
    _fields,
    _int,
    canonical,
)

VERSION = 1
# A block part carries at most a whole block (16 MiB) of data; allow framing overhead on top.
MAX_MESSAGE_BYTES = MAX_BLOCK_BYTES + 64 * 1024
# The longest array in any message: a commit's signatures (types.Commit allows 10000).
_MAX_ARRAY_LEN = 10_000
# No message carries text; a small bound keeps a hostile string from costing anything.
_MAX_STR_LEN = 64


@dataclass(frozen=True)
class EndHeight:
    """WAL marker: every record of `height` is in the log before it (height 0 = before block 1)."""

    height: int

    def to_wire(self) -> list[Any]:
        return [self.height]

    @classmethod
    def from_wire(cls, obj: Any) -> EndHeight:
        (height,) = _fields(obj, 1)
        return cls(_int(height, 0, MAX_HEIGHT))


ConsensusMessage = (
    Proposal
    | BlockPart
    | Vote
    | DuplicateVoteEvidence
    | TimeoutInfo
    | RoundStep
    | Commit
    | EndHeight
)

# kind tag -> record class. Wire format: append only.
_KINDS: dict[int, Any] = {
    1: Proposal,
    2: BlockPart,
    3: Vote,
    4: DuplicateVoteEvidence,
    5: TimeoutInfo,
    6: RoundStep,
    7: Commit,
    8: EndHeight,
}
_TAGS: dict[type, int] = {cls: tag for tag, cls in _KINDS.items()}


def encode_message(msg: ConsensusMessage) -> bytes:
    tag = _TAGS.get(type(msg))
    if tag is None:
        raise TypeError(f"not a consensus message: {type(msg).__name__}")
    return canonical([VERSION, tag, msg.to_wire()])


def decode_message(data: bytes) -> ConsensusMessage:
    """Parse one message; MalformedMessage for anything that is not exactly one valid message."""
    version, tag, payload = _fields(_unpack(data), 3)
    if type(version) is not int or version != VERSION:
        raise MalformedMessage(f"unsupported consensus message version {version!r:.20}")
    cls = _KINDS.get(tag) if type(tag) is int else None
    if cls is None:
        raise MalformedMessage(f"unknown consensus message kind {tag!r:.20}")
    try:
        msg: ConsensusMessage = cls.from_wire(payload)
    except MalformedMessage:
        raise
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        # from_wire should only raise MalformedMessage; this keeps the border sealed anyway.
        raise MalformedMessage(f"malformed {cls.__name__}: {exc}") from None
    return msg


def _unpack(data: bytes) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedMessage("a consensus message must be bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"consensus message of {len(data)} bytes is too large")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_bin_len=MAX_BLOCK_BYTES,
            max_str_len=_MAX_STR_LEN,
            max_array_len=_MAX_ARRAY_LEN,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:
        # msgpack signals bad input with a zoo of types (ExtraData, FormatError, StackError,
        # OutOfData, UnicodeDecodeError, plain ValueError...); all mean "malformed" here.
        raise MalformedMessage(f"not a msgpack consensus message: {exc!r:.80}") from None
