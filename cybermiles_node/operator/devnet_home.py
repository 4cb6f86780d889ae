"""Which directories `cybermiles devnet` may take, and what `--reset` may delete in them.

A devnet writes keys, configs and a chain into its `--home`, rewrites configs on every run, and
`--reset` deletes state. Pointed at the wrong directory (a validator home made by `cybermiles
init`, a typo'd path to a directory full of other files) that destroys an operator's files. So:

- A devnet home carries a marker, `HOME/.cybermiles-devnet`, JSON `{"kind": "devnet",
  "version": 1}`; each node home of a multi-validator devnet (`HOME/node{i}`) carries one of kind
  `"devnet-node"`. The devnet writes them when it creates the directories.
- `claim_devnet_home` accepts a missing or empty directory (creates and marks it), a marked
  devnet home, or a devnet made before markers existed: exactly the devnet layout (below) with
  configs saying `devnet.enabled = true`, which is marked on the spot. It refuses everything
  else, an `init` home and a node home of another devnet with their own messages.
- `reset_devnet_home` deletes only the entries a devnet writes (`DEVNET_ENTRIES`, and in node
  homes that carry a node marker `NODE_ENTRIES`), never anything else found there, and only in a
  marked devnet home. The root marker stays, so leftover files keep the directory a devnet home.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

from cybermiles_node.errors import DevnetError
from cybermiles_node.operator.config import ConfigError, HomeLayout, load_config

__all__ = [
    "DEVNET_ENTRIES",
    "MANIFEST_NAME",
    "MARKER_NAME",
    "NODE_ENTRIES",
    "DevnetMarker",
    "MarkerKind",
    "claim_devnet_home",
    "mark",
    "node_home",
    "read_marker",
    "reset_devnet_home",
    "reset_targets",
]

MARKER_NAME: Final = ".cybermiles-devnet"
MARKER_VERSION: Final = 1
MANIFEST_NAME: Final = "devnet.json"
MarkerKind = Literal["devnet", "devnet-node"]

_NODE_DIR: Final = re.compile(r"node[0-9]+")
_MARKER_TMP: Final = f".{MARKER_NAME}.tmp"
# What a devnet writes at the top of its home (node dirs aside) and in each node home; the
# marker itself is listed where a reset deletes it (node homes), not where it stays (the root).
DEVNET_ENTRIES: Final = frozenset({"config", "data", MANIFEST_NAME, f".{MANIFEST_NAME}.tmp"})
# "keystore": the Travis preset writes each node home's accounts (operator/travis_preset.py).
NODE_ENTRIES: Final = frozenset(
    {"config", "data", "keystore", "node.log", MARKER_NAME, _MARKER_TMP}
)
_CHOOSE_ANOTHER: Final = "Choose another --home (a new or empty directory)."


def node_home(home: Path, index: int) -> Path:
    return home / f"node{index}"


# ---------------------------------------------------------------------------- the marker


@dataclass(frozen=True)
class DevnetMarker:
    kind: MarkerKind
    version: int = MARKER_VERSION

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "version": self.version}) + "\n"

    @classmethod
    def parse(cls, text: str, where: Path) -> DevnetMarker:
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise DevnetError(f"{where} is not a devnet marker ({exc})") from None
        if not isinstance(body, dict) or body.get("kind") not in get_args(MarkerKind):
            raise DevnetError(f"{where} is not a devnet marker (kind: {body!r:.60})")
        version = body.get("version")
        if type(version) is not int or not 1 <= version <= MARKER_VERSION:
            raise DevnetError(
                f"{where}: devnet marker version {version!r} is not one this node knows "
                f"(1..{MARKER_VERSION})"
            )
        kind: MarkerKind = body["kind"]
        return cls(kind, version)


def read_marker(home: Path) -> DevnetMarker | None:
    path = home / MARKER_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DevnetError(f"{path}: cannot read the devnet marker ({exc})") from None
    return DevnetMarker.parse(text, path)


def mark(home: Path, kind: MarkerKind) -> None:
    """Write HOME's marker (creating HOME), atomically: a reader sees none or a whole one."""
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / _MARKER_TMP
    tmp.write_text(DevnetMarker(kind).to_json())
    os.replace(tmp, home / MARKER_NAME)


# ---------------------------------------------------------------------------- claiming a home


def claim_devnet_home(home: Path) -> None:
    """Make sure the devnet may use HOME (see the module doc); DevnetError, one line, if not."""
    if home.exists() and not home.is_dir():
        raise DevnetError(f"{home} is not a directory. {_CHOOSE_ANOTHER}")
    marker = read_marker(home) if home.exists() else None
    if marker is not None:
        if marker.kind == "devnet-node":
            raise DevnetError(
                f"{home} is a node home of the devnet in {home.parent}; run that devnet, or "
                f"this node alone with `cybermiles node start --home {home}`. {_CHOOSE_ANOTHER}"
            )
        return
    if not home.exists() or not any(home.iterdir()):
        mark(home, "devnet")
        return
    legacy_nodes = _legacy_devnet_nodes(home)
    if legacy_nodes is not None:
        for node in legacy_nodes:
            mark(node, "devnet-node")
        mark(home, "devnet")
        return
    if HomeLayout(home).config_file.exists():
        raise DevnetError(
            f"{home} is not a devnet home (made by `cybermiles init`); refusing to use it as "
            f"a devnet. {_CHOOSE_ANOTHER}"
        )
    raise DevnetError(
        f"{home} is not empty and is not a devnet home (no {MARKER_NAME}); refusing to use or "
        f"reset it as a devnet. {_CHOOSE_ANOTHER}"
    )


def _legacy_devnet_nodes(home: Path) -> list[Path] | None:
    """For a devnet made before markers: its node homes ([] for a single-node devnet); None
    when HOME is not exactly the layout a devnet writes with devnet-enabled configs."""
    names = _names(home)
    nodes = sorted(home / name for name in names if _NODE_DIR.fullmatch(name))
    if not nodes:
        single = names <= {"config", "data"} and _devnet_config(home)
        return [] if single else None
    others = names - {node.name for node in nodes}
    if not others <= DEVNET_ENTRIES - {"config", "data"}:
        return None
    for node in nodes:
        if not (node.is_dir() and _names(node) <= NODE_ENTRIES and _devnet_config(node)):
            return None
    return nodes


def _names(directory: Path) -> set[str]:
    return {entry.name for entry in directory.iterdir()}


def _devnet_config(home: Path) -> bool:
    try:
        return load_config(HomeLayout(home).config_file).devnet.enabled
    except ConfigError:
        return False


# ---------------------------------------------------------------------------- --reset


def reset_targets(home: Path) -> list[Path]:
    """The paths `--reset` deletes in the marked devnet HOME: the entries a devnet writes, those
    of node homes that carry a node marker (their marker last), nothing else."""
    marker = read_marker(home)
    if marker is None or marker.kind != "devnet":
        raise DevnetError(f"{home} is not a marked devnet home; refusing to reset it")
    targets = _existing(home, DEVNET_ENTRIES)
    for name in sorted(_names(home)):
        node = home / name
        if _NODE_DIR.fullmatch(name) and node.is_dir() and _is_devnet_node(node):
            targets += _existing(node, NODE_ENTRIES - {MARKER_NAME})
            targets.append(node / MARKER_NAME)
    return targets


def _is_devnet_node(node: Path) -> bool:
    try:
        marker = read_marker(node)
    except DevnetError:
        return False  # not ours to judge, so not ours to delete
    return marker is not None and marker.kind == "devnet-node"


def _existing(directory: Path, names: Iterable[str]) -> list[Path]:
    return [directory / name for name in sorted(names) if os.path.lexists(directory / name)]


def reset_devnet_home(home: Path) -> list[Path]:
    """Delete `reset_targets(home)`, then node homes left empty; returns what was deleted."""
    targets = reset_targets(home)
    for path in targets:
        _delete(path)
    for node in {path.parent for path in targets if path.parent != home}:
        if not any(node.iterdir()):
            node.rmdir()
    return targets


def _delete(path: Path) -> None:
    # A symlink is deleted as a link: what it points to was never the devnet's.
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
