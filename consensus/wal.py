"""The consensus write-ahead log: what this node saw and decided, so a restart resumes the height.

Consensus appends every proposal, block part, vote, timeout and piece of evidence it acts on, and
writes an `EndHeight(h)` marker once block h is committed to the store. After a crash the node
asks `replay(h)` for the records of height h+1 written after the marker EndHeight(h) (up to the
next marker, if any) and feeds them back to the consensus core; together with the private
validator's last-signed state, this means a restarted node neither forgets its own votes nor
contradicts them.

`FileWal` on-disk format: a sequence of frames `[u32 length][u32 crc32][payload]` (big endian),
payload = `messages.encode_message(record)`. Crash handling on open:
- a torn LAST frame (kill -9 in the middle of a write, or a power loss leaving a zero-filled tail)
  is truncated away: nothing after it was ever acknowledged;
- a bad frame followed by any valid frame is real corruption: `WalCorrupted`, the node stops.
Both files (`path` and the rotated `<path>.1`) are checked at open, frames and record decoding,
so a corrupt log stops the node before it starts anything, with the file named.
Size: when `end_height(h)` finds the file above `max_file_size`, the file is rotated: its
content is kept as `<path>.1` (hard link) and `path` is atomically replaced by a new file whose
first frame is EndHeight(h), so replay of the current height needs only the new file; replay of
older heights falls back on `<path>.1`.

A new, empty log starts with EndHeight(0), so `replay(0)` finds the records of height 1.
`MemoryWal` keeps the encoded payloads in a list that plays the disk, for simulations.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from consensus.core import TimeoutInfo
from consensus.durable import atomic_write, ensure_dir, write_all
from consensus.errors import MalformedMessage, WalCorrupted
from consensus.messages import EndHeight, decode_message, encode_message
from consensus.parts import BlockPart
from consensus.types import DuplicateVoteEvidence, Proposal, Vote

log = logging.getLogger(__name__)

WalRecord = Proposal | BlockPart | Vote | TimeoutInfo | DuplicateVoteEvidence
_RECORD_TYPES = (Proposal, BlockPart, Vote, TimeoutInfo, DuplicateVoteEvidence)

MAX_RECORD_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_FILE_SIZE = 1024 * 1024
_HEADER = struct.Struct(">II")  # payload length, crc32 of the payload


class Wal(Protocol):
    def append(self, record: WalRecord, *, sync: bool = False) -> None: ...

    def end_height(self, height: int, *, sync: bool = True) -> None: ...

    def replay(self, after_height: int) -> list[WalRecord]: ...

    def close(self) -> None: ...


# -- logic shared by every WAL ------------------------------------------------------------------
def _encode_record(record: WalRecord) -> bytes:
    if not isinstance(record, _RECORD_TYPES):
        raise TypeError(f"not a WAL record: {type(record).__name__}")
    return _checked_size(encode_message(record))


def _checked_size(payload: bytes) -> bytes:
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"WAL record of {len(payload)} bytes exceeds {MAX_RECORD_BYTES}")
    return payload


def _records_after(payloads: Iterable[bytes], height: int) -> list[WalRecord] | None:
    """Records between the last EndHeight(height) and the next marker; None if no such marker."""
    found: list[WalRecord] | None = None
    for payload in payloads:
        msg = _decode(payload)
        if isinstance(msg, EndHeight):
            if msg.height == height:
                found = []  # a later copy of the marker wins (it was written last)
            elif found is not None:
                return found  # the next height ended: its records are not "after" ours
        elif found is not None:
            found.append(msg)
    return found


def _decode(payload: bytes) -> WalRecord | EndHeight:
    try:
        msg = decode_message(payload)
    except MalformedMessage as exc:
        # The checksum matched, so these are the bytes we wrote: not a torn write but a bug or
        # an incompatible format. Refuse rather than silently skip part of our own history.
        raise WalCorrupted(f"WAL record with a valid checksum does not decode: {exc}") from None
    if not isinstance(msg, (*_RECORD_TYPES, EndHeight)):
        raise WalCorrupted(f"WAL holds a {type(msg).__name__}, which is not a WAL record")
    return msg


class _WalBase:
    """The Wal protocol over a `_write(payload, sync)` primitive and a history of payloads."""

    def append(self, record: WalRecord, *, sync: bool = False) -> None:
        self._write(_encode_record(record), sync)

    def end_height(self, height: int, *, sync: bool = True) -> None:
        # The marker tells a restarted node that the height is finished. `sync=False` (heights
        # decided by blocksync, driver.py) leaves it to the next synced write: a marker lost in
        # a power cut is the state after a crash between commit and marker, which `start` heals.
        self._write(encode_message(EndHeight(height)), sync)
        self._after_end_height(height)

    def replay(self, after_height: int) -> list[WalRecord]:
        for history in self._histories():
            records = _records_after(history, after_height)
            if records is not None:
                return records
        return []

    def close(self) -> None:
        pass

    def _write(self, payload: bytes, sync: bool) -> None:
        raise NotImplementedError

    def _after_end_height(self, height: int) -> None:
        pass

    def _histories(self) -> Iterator[Iterable[bytes]]:
        """Payload sequences to search for a marker, newest first."""
        raise NotImplementedError


# -- in memory ----------------------------------------------------------------------------------
class MemoryWal(_WalBase):
    """`storage` (a list of encoded payloads) plays the disk: a new MemoryWal on the same list
    after a simulated crash sees everything appended before it."""

    def __init__(self, storage: list[bytes] | None = None) -> None:
        self.storage: list[bytes] = storage if storage is not None else []
        if not self.storage:
            self.storage.append(encode_message(EndHeight(0)))

    def _write(self, payload: bytes, sync: bool) -> None:
        self.storage.append(payload)

    def _histories(self) -> Iterator[Iterable[bytes]]:
        yield list(self.storage)


# -- on disk ------------------------------------------------------------------------------------
def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _frame_at(data: bytes, offset: int) -> bytes | None:
    """The payload of a complete, intact frame at `offset`, or None."""
    if len(data) - offset < _HEADER.size:
        return None
    length, crc = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    # Length 0 is never written; rejecting it also rejects zero-filled tails (crc32(b"") == 0).
    if not 0 < length <= min(MAX_RECORD_BYTES, len(data) - start):
        return None
    payload = data[start : start + length]
    return payload if zlib.crc32(payload) == crc else None


def scan_frames(data: bytes) -> tuple[list[bytes], int]:
    """The payloads of the valid frames of `data` and the length of the valid prefix. A bad
    frame is a torn tail (excluded from the prefix) if its header spans to the end of the data
    or nothing valid follows it; otherwise the log is corrupt in the middle: WalCorrupted."""
    payloads: list[bytes] = []
    offset = 0
    while offset < len(data):
        payload = _frame_at(data, offset)
        if payload is None:
            _check_torn_tail(data, offset)
            break
        payloads.append(payload)
        offset += _HEADER.size + len(payload)
    return payloads, offset


def _check_torn_tail(data: bytes, bad: int) -> None:
    if _claims_the_tail(data, bad):
        return
    # Garbage or a damaged length field: a torn write leaves a prefix of one frame (or zeros),
    # so no intact frame can start after it. An intact one means corruption in the middle.
    for offset in range(bad + 1, len(data) - _HEADER.size):
        if _frame_at(data, offset) is not None:
            raise WalCorrupted(
                f"WAL frame at byte {bad} is corrupt but a valid frame follows at byte {offset}"
            )


def _claims_the_tail(data: bytes, offset: int) -> bool:
    """Whether the frame at `offset` has a sane header and spans to the end of the data: the
    shape of a write cut short by kill -9, or of a tail a power loss left zero-filled. Its
    payload is then not searched for frames: it may hold block data chosen by a peer, which
    could embed a well-formed frame and turn a torn tail into a refusal to start."""
    if len(data) - offset < _HEADER.size:
        return True
    length, _ = _HEADER.unpack_from(data, offset)
    return 0 < length <= MAX_RECORD_BYTES and offset + _HEADER.size + length >= len(data)


def _checked_payloads(path: Path, data: bytes) -> int:
    """The length of the valid prefix of `data` (the content of `path`), after checking that
    every record in it decodes; WalCorrupted naming `path` otherwise."""
    try:
        payloads, valid = scan_frames(data)
        for payload in payloads:
            _decode(payload)
    except WalCorrupted as exc:
        raise WalCorrupted(f"{path}: {exc}") from None
    return valid


class FileWal(_WalBase):
    """The production WAL; see the module docstring for the format and crash handling."""

    def __init__(self, path: Path, *, max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> None:
        self.path = path
        self.previous_path = path.with_name(path.name + ".1")
        self.max_file_size = max_file_size
        ensure_dir(path.parent)
        if self.previous_path.exists():
            _checked_payloads(self.previous_path, self.previous_path.read_bytes())
        if path.exists():
            self._fd = self._open_existing()
        else:
            atomic_write(path, frame(encode_message(EndHeight(0))))
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def _open_existing(self) -> int:
        data = self.path.read_bytes()
        valid = _checked_payloads(self.path, data)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        if valid < len(data):
            log.warning(
                "%s: truncating a torn tail of %d bytes at byte %d",
                self.path,
                len(data) - valid,
                valid,
            )
            os.ftruncate(fd, valid)
            os.fsync(fd)
        return fd

    def _write(self, payload: bytes, sync: bool) -> None:
        if self._fd < 0:
            raise ValueError("the WAL is closed")
        # Unbuffered: once os.write returns the bytes are in the kernel and survive kill -9;
        # fsync additionally makes them survive a power loss.
        write_all(self._fd, frame(payload))
        if sync:
            os.fsync(self._fd)

    def _after_end_height(self, height: int) -> None:
        if os.fstat(self._fd).st_size > self.max_file_size:
            self._rotate(height)

    def _rotate(self, height: int) -> None:
        # Crash-safe order: at every instant `path` holds a complete log whose marker suffices
        # for the current height. 1) hard-link the current file as the previous one (atomic via a
        # temp name), 2) atomically replace `path` by a file that starts with EndHeight(height).
        link_tmp = self.previous_path.with_name(self.previous_path.name + ".tmp")
        link_tmp.unlink(missing_ok=True)
        os.link(self.path, link_tmp)
        os.replace(link_tmp, self.previous_path)
        os.close(self._fd)
        self._fd = -1
        atomic_write(self.path, frame(encode_message(EndHeight(height))))  # fsyncs the directory
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _histories(self) -> Iterator[Iterable[bytes]]:
        yield scan_frames(self.path.read_bytes())[0]
        if self.previous_path.exists():
            yield scan_frames(self.previous_path.read_bytes())[0]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileWal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
