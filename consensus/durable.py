"""Crash-safe file primitives shared by the private validator state and the consensus WAL.

A write is durable only when both the file's bytes and the directory entry that names it have
reached the disk: `os.replace` alone is atomic but not durable (after a power loss the rename
may be gone), and `fsync` on the file alone does not persist a new name. So every atomic
replacement is: write a temp file, flush, fsync it, rename it over the target, fsync the
directory.
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Persist the directory's entries (file creations, renames, unlinks)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path) -> None:
    """mkdir -p whose new entries are durable too (each created directory's parent is fsync'd)."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)


def write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked (signals, quotas); loop until everything is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash at any instant leaves either the old or the new
    content, never a mix, and the new content is on disk when this returns."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # a leftover temp file keeps its old mode through os.open
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
