"""The consensus WAL: replay semantics, torn tails, corruption, rotation, kill -9."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consensus import wal as wal_module
from consensus.core import Step, TimeoutInfo
from consensus.errors import WalCorrupted
from consensus.messages import EndHeight, encode_message
from consensus.parts import BlockPart
from consensus.types import (
    BlockID,
    Commit,
    DuplicateVoteEvidence,
    Proposal,
    Vote,
    VoteType,
)
from consensus.wal import FileWal, MemoryWal, Wal, WalRecord, frame, scan_frames

BLOCK = BlockID(b"h" * 32, 2, b"p" * 32)
REPO = Path(__file__).resolve().parents[2]


def vote(height: int, rnd: int = 0, kind: VoteType = VoteType.PREVOTE, v: int = 1) -> Vote:
    return Vote(kind, height, rnd, BLOCK, bytes([v]) * 20, b"s" * 64)


def records_of(height: int) -> list[WalRecord]:
    """One of every kind of WAL record."""
    return [
        Proposal(height, 1, 0, BLOCK, b"p" * 20, b"s" * 64),
        BlockPart(height, 1, 0, b"block data" * 5, (b"x" * 32,)),
        vote(height, 1),
        TimeoutInfo(height, 1, Step.PREVOTE_WAIT, 1000),
        DuplicateVoteEvidence.of(vote(height - 1 or 1), vote(height - 1 or 1, v=2)),
    ]


# -- behaviour shared by both implementations ---------------------------------------------------
class Disk:
    """Opens the same log again, as a restarted process would."""

    def __init__(self, open_wal: Callable[[], Wal]) -> None:
        self.open = open_wal


@pytest.fixture(params=["file", "memory"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    if request.param == "file":
        yield Disk(lambda: FileWal(tmp_path / "wal" / "cs.wal"))
    else:
        storage: list[bytes] = []
        yield Disk(lambda: MemoryWal(storage))


def test_round_trip_and_restart(disk: Disk) -> None:
    w = disk.open()
    recs = records_of(1)
    for r in recs:
        w.append(r)
    assert w.replay(0) == recs
    w.close()
    assert disk.open().replay(0) == recs


def test_replay_boundaries(disk: Disk) -> None:
    w = disk.open()
    assert w.replay(0) == []  # a new log starts with EndHeight(0)
    h1, h2, h3 = records_of(1), records_of(2), records_of(3)[:2]
    for r in h1:
        w.append(r)
    w.end_height(1)
    for r in h2:
        w.append(r, sync=True)
    w.end_height(2)
    for r in h3:
        w.append(r)
    assert w.replay(0) == h1  # stops at the next marker
    assert w.replay(1) == h2
    assert w.replay(2) == h3
    assert w.replay(3) == []  # marker not written yet
    assert w.replay(99) == []
    w.close()
    assert disk.open().replay(2) == h3


def test_end_height_with_nothing_after(disk: Disk) -> None:
    w = disk.open()
    w.end_height(1)
    assert w.replay(1) == []
    assert w.replay(0) == []


def test_only_wal_records_are_appended(disk: Disk) -> None:
    w = disk.open()
    for bad in (EndHeight(3), Commit(1, 0, BLOCK, ()), "vote"):
        with pytest.raises(TypeError):
            w.append(bad)  # type: ignore[arg-type]


def test_oversized_record_is_refused(disk: Disk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal_module, "MAX_RECORD_BYTES", 100)
    w = disk.open()
    with pytest.raises(ValueError, match="exceeds"):
        w.append(BlockPart(1, 0, 0, b"x" * 200, ()))
    assert w.replay(0) == []


def test_memory_wal_storage_is_the_disk() -> None:
    storage: list[bytes] = []
    MemoryWal(storage).append(vote(1))
    assert MemoryWal(storage).replay(0) == [vote(1)]
    assert storage[0] == encode_message(EndHeight(0))


# -- torn tails and corruption ------------------------------------------------------------------
def write_log(path: Path, heights: int = 2) -> list[int]:
    """A log of a few heights; returns the start offset of every frame."""
    with FileWal(path) as w:
        for h in range(1, heights + 1):
            for r in records_of(h):
                w.append(r)
            w.end_height(h)
        w.append(vote(heights + 1))  # the last frame: the one a crash tears
    offsets, pos = [], 0
    for payload in scan_frames(path.read_bytes())[0]:
        offsets.append(pos)
        pos += 8 + len(payload)
    return offsets


def test_torn_last_record_is_truncated_at_every_offset(tmp_path: Path) -> None:
    src = tmp_path / "src.wal"
    last = write_log(src)[-1]
    data = src.read_bytes()
    path = tmp_path / "cs.wal"
    for cut in range(last, len(data)):
        for tail in (b"", bytes(len(data) - cut)):  # cut short; or a zero-filled tail
            path.write_bytes(data[:cut] + tail)
            with FileWal(path) as w:
                assert path.stat().st_size == last
                assert w.replay(2) == []  # the torn vote is gone, the marker is intact
                assert w.replay(1) == records_of(2)
                w.append(vote(3, 5))
                assert w.replay(2) == [vote(3, 5)]


def test_torn_record_whose_payload_embeds_a_valid_frame(tmp_path: Path) -> None:
    # A peer controls block data; a torn part holding a well-formed frame is still a torn tail.
    path = tmp_path / "cs.wal"
    with FileWal(path) as w:
        w.append(vote(1))
    inner = frame(encode_message(vote(1, 7)))
    torn = frame(encode_message(BlockPart(1, 0, 0, b"q" * 50 + inner + b"q" * 50, ())))[:-40]
    with open(path, "ab") as f:
        f.write(torn)
    with FileWal(path) as w:
        assert w.replay(0) == [vote(1)]


def corrupt(path: Path, offset: int, value: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= value
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "where, xor",
    [
        (12, 0x01),  # payload byte of a middle record
        (5, 0x01),  # its checksum
        (3, 0x01),  # its length, still plausible but wrong
        (0, 0x80),  # its length, absurd
    ],
)
def test_corruption_in_the_middle_is_detected(tmp_path: Path, where: int, xor: int) -> None:
    path = tmp_path / "cs.wal"
    offsets = write_log(path)
    corrupt(path, offsets[3] + where, xor)
    with pytest.raises(WalCorrupted, match=f"^{re.escape(str(path))}: "):
        FileWal(path)


def test_checksum_valid_but_undecodable_record(tmp_path: Path) -> None:
    path = tmp_path / "cs.wal"
    with FileWal(path) as w:
        w.append(vote(1))
    with open(path, "ab") as f:
        f.write(frame(b"\x93\x01\x63\x90"))  # kind 99: well framed, unknown to the codec
    with pytest.raises(WalCorrupted, match=f"^{re.escape(str(path))}: .*does not decode"):
        FileWal(path)  # refused at open, before the node starts anything


def test_corruption_of_the_rotated_file_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "cs.wal"
    offsets = write_log(path)
    previous = tmp_path / "cs.wal.1"
    previous.write_bytes(path.read_bytes())
    corrupt(previous, offsets[3] + 12, 0x01)
    with pytest.raises(WalCorrupted, match=f"^{re.escape(str(previous))}: "):
        FileWal(path)


def test_closed_wal_refuses_writes(tmp_path: Path) -> None:
    w = FileWal(tmp_path / "cs.wal")
    w.close()
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.append(vote(1))


# -- rotation -----------------------------------------------------------------------------------
def test_rotation_keeps_replay_correct(tmp_path: Path) -> None:
    path = tmp_path / "cs.wal"
    w = FileWal(path, max_file_size=2000)
    rotated_at = []
    for h in range(1, 21):
        for r in records_of(h):
            w.append(r)
        w.end_height(h)
        if path.stat().st_size < 100:  # only the new file's EndHeight(h) frame
            rotated_at.append(h)
    for r in records_of(21)[:3]:
        w.append(r)
    assert len(rotated_at) >= 3
    assert path.stat().st_size < 2000 + 1000
    # the current file starts with the marker of the last rotation
    assert scan_frames(path.read_bytes())[0][0] == encode_message(EndHeight(rotated_at[-1]))
    # every height since the rotation before last replays; older ones are gone
    oldest = rotated_at[-2]
    expected = {h: records_of(h + 1) for h in range(oldest, 20)} | {20: records_of(21)[:3]}
    for h in range(0, 21):
        assert w.replay(h) == expected.get(h, []), h
    w.close()
    with FileWal(path, max_file_size=2000) as again:
        for h, recs in expected.items():
            assert again.replay(h) == recs


def test_replay_falls_back_on_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "cs.wal"
    with FileWal(path, max_file_size=1) as w:  # rotate at every height
        for r in records_of(1):
            w.append(r)
        w.end_height(1)
        for r in records_of(2):
            w.append(r)
        w.end_height(2)
        assert w.replay(0) == []  # two rotations ago
        assert w.replay(1) == records_of(2)  # from cs.wal.1
        assert w.replay(2) == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cs.wal", "cs.wal.1"]


def test_crash_between_link_and_replace(tmp_path: Path) -> None:
    # State after step 1 of a rotation: the previous file is a hard link of the current one.
    path = tmp_path / "cs.wal"
    with FileWal(path) as w:
        for r in records_of(1):
            w.append(r)
        w.end_height(1)
        w.append(vote(2))
    os.link(path, path.with_name("cs.wal.1"))
    with FileWal(path) as w:
        assert w.replay(1) == [vote(2)]
        assert w.replay(0) == records_of(1)


# -- kill -9 ------------------------------------------------------------------------------------
_APPEND_THEN_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from consensus.types import BlockID, Vote, VoteType
    from consensus.wal import FileWal

    w = FileWal(Path(sys.argv[1]))
    w.end_height(4)
    w.append(Vote(VoteType.PRECOMMIT, 5, 0, BlockID(b"h" * 32, 2, b"p" * 32), b"v" * 20, b"s" * 64),
             sync=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_kill_9_after_synced_append(tmp_path: Path) -> None:
    path = tmp_path / "cs.wal"
    proc = subprocess.run(
        [sys.executable, "-c", _APPEND_THEN_DIE, str(path)],
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=30,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    with FileWal(path) as w:
        assert w.replay(4) == [
            Vote(VoteType.PRECOMMIT, 5, 0, BLOCK, b"v" * 20, b"s" * 64),
        ]
