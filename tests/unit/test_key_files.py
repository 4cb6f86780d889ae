"""Key files: open to other users is refused, as ssh does; the node writes its own 0600."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cybermiles_node.operator.keys import Ed25519Key, KeyFileError, exposure, read_key, write_key


@pytest.mark.parametrize(
    "mode, problem",
    [
        (0o600, None),
        (0o400, None),
        (0o700, None),
        (0o644, "readable by others"),
        (0o604, "readable by others"),
        (0o640, "readable by its group"),
        (0o620, "open to its group or others"),
        (0o602, "open to its group or others"),
        (0o610, "open to its group or others"),
    ],
)
def test_exposure_of_permission_bits(mode: int, problem: str | None) -> None:
    assert exposure(mode) == problem


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "priv_validator_key.json"
    write_key(path, Ed25519Key.generate())
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o660, 0o606])
def test_a_key_open_to_others_is_refused_with_the_fix(key_file: Path, mode: int) -> None:
    key_file.chmod(mode)
    path = re.escape(str(key_file))
    expected = rf"^{path} is .* \(mode {mode:04o}\); run `chmod 600 {path}`$"
    with pytest.raises(KeyFileError, match=expected):
        read_key(key_file)


def test_a_private_key_file_is_read(key_file: Path) -> None:
    key_file.chmod(0o400)
    assert len(read_key(key_file).public_key) == 32


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)  # nothing masked: the mode must come from the node itself
    try:
        yield
    finally:
        os.umask(previous)


def test_keys_are_written_0600_even_over_a_leftover_temp_file(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "node_key.json"
    leftover = path.with_suffix(".tmp")
    leftover.write_text("{}")
    leftover.chmod(0o666)
    write_key(path, Ed25519Key.generate())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    read_key(path)  # and the node accepts what it wrote
