"""Node and validator key files: ed25519 keys (`consensus.keys.Ed25519Key`) in the Tendermint
style.

A key file is JSON `{"type": "ed25519", "pub_key": base64, "priv_key": base64}` written with
mode 0600. The node id is the hex of the first 20 bytes of SHA-256 of the node's public key.

As ssh does with private keys, a key file that its group or others may read or write is refused
(`read_key`): a consensus key copied by another local user can sign conflicting votes.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Final

from consensus.keys import Ed25519Key
from cybermiles_node.errors import CyberMilesError

SECRET_FILE_MODE: Final = 0o600


class KeyFileError(CyberMilesError):
    """A key file is missing, unreadable, malformed or open to other users."""


def exposure(mode: int) -> str | None:
    """How permission bits `mode` expose a secret file to other users; None when they do not."""
    if mode & stat.S_IROTH:
        return "readable by others"
    if mode & stat.S_IRGRP:
        return "readable by its group"
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return "open to its group or others"
    return None


def check_private(path: Path) -> None:
    """KeyFileError when `path` is open to its group or others, with the command that fixes it.
    A missing file passes: reading it reports that better."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    problem = exposure(mode)
    if problem is not None:
        raise KeyFileError(
            f"{path} is {problem} (mode {mode:04o}); run `chmod {SECRET_FILE_MODE:o} {path}`"
        )


def write_key(path: Path, key: Ed25519Key) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "type": "ed25519",
        "pub_key": base64.b64encode(key.public_key).decode(),
        "priv_key": base64.b64encode(key.private_key).decode(),
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    # The mode of os.open applies only when it creates the file: a leftover temp file keeps its
    # own, so set it before the secret is written.
    os.fchmod(fd, SECRET_FILE_MODE)
    with os.fdopen(fd, "w") as f:
        json.dump(body, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_key(path: Path) -> Ed25519Key:
    check_private(path)
    try:
        body = json.loads(path.read_text())
        seed = base64.b64decode(body["priv_key"], validate=True)
        key = Ed25519Key.from_seed(seed)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(
            f"{path}: not a valid ed25519 key file ({exc}); restore it from your backup"
        ) from None
    if base64.b64decode(body.get("pub_key", "")) != key.public_key:
        raise KeyFileError(f"{path}: pub_key does not match priv_key")
    return key
