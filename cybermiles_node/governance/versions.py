"""What governance decided about software: the enabled ENI library versions and the program
version the chain requires. Read by the chain every block (ENI) and by the node at start-up and
after each commit (halts); written only by governance's end_block.

Slot layout (account GOVERNANCE_ADDRESS = 0x…c0de06, module "governance"; derivations in
cybermiles_node/system/storage.py)

| name                | kind                       | key → value                                   |
|---------------------|----------------------------|-----------------------------------------------|
| eni_versions        | map str → str              | ENI function name → enabled version "vX.Y.Z"  |
| eni_names           | sorted index of str        | every name in `eni_versions`                  |
| program_requirement | bytes                      | RLP [name, version "vX.Y.Z", height]: from    |
|                     |                            | block height + 1 on, a node must run at least |
|                     |                            | that version (empty: no requirement)          |

A library without an entry runs the version the node ships as its default (evm/eni/registry).
Versions are compared as (X, Y, Z) integer triples.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import rlp

from cybermiles_node.system import rlp_codec
from cybermiles_node.system.addresses import GOVERNANCE_ADDRESS
from cybermiles_node.system.storage import BYTES, STRING, STRING_KEY, Layout, SystemStorage

__all__ = [
    "LAYOUT",
    "PROGRAM_NAME",
    "RETIRED",
    "ProgramRequirement",
    "enable_eni_version",
    "enabled_eni_versions",
    "parse_version",
    "program_requirement",
    "put_program_requirement",
    "version_at_least",
]

LAYOUT = Layout(GOVERNANCE_ADDRESS, "governance")
ENI_VERSIONS = LAYOUT.map("eni_versions", STRING_KEY, STRING)
ENI_NAMES = LAYOUT.sorted_index("eni_names", STRING_KEY)
PROGRAM_REQUIREMENT = LAYOUT.item("program_requirement", BYTES)

VERSION_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


def parse_version(version: str) -> tuple[int, int, int]:
    """(X, Y, Z) of "vX.Y.Z"; ValueError otherwise."""
    match = VERSION_RE.fullmatch(version)
    if match is None:
        raise ValueError(f"version {version!r} is not of the form vX.Y.Z")
    x, y, z = (int(part) for part in match.groups())
    return x, y, z


def version_at_least(version: str, required: str) -> bool:
    return parse_version(version) >= parse_version(required)


def enabled_eni_versions(storage: SystemStorage) -> Mapping[str, str]:
    """ENI function name → the version governance enabled ("vX.Y.Z"), by name."""
    return {name: ENI_VERSIONS.get(storage, name) for name in ENI_NAMES.keys(storage)}


def enable_eni_version(storage: SystemStorage, name: str, version: str) -> None:
    parse_version(version)
    ENI_VERSIONS.set(storage, name, version)
    ENI_NAMES.insert(storage, name)


PROGRAM_NAME = "cybermiles"  # the name upgrade_program proposals give this node's program
RETIRED = "retired"  # the requirement a retire_program leaves: no program satisfies it


@dataclass(frozen=True)
class ProgramRequirement:
    """From block `height` + 1 on, nodes must run `name` at `version` or newer; a retired
    chain (name RETIRED) accepts no program at all."""

    name: str
    version: str
    height: int

    @property
    def message(self) -> str:
        """What a node that must stop prints and logs."""
        if self.name == RETIRED:
            return f"program retired at height {self.height}"
        return f"upgrade needed: {self.name} {self.version}"

    def satisfied_by(self, name: str, version: str) -> bool:
        """Whether a node running `name` at `version` may go on past `height`."""
        return self.name == name and version_at_least(version, self.version)


def program_requirement(storage: SystemStorage) -> ProgramRequirement | None:
    encoded = PROGRAM_REQUIREMENT.get(storage)
    if not encoded:
        return None
    name, version, height = rlp.decode(encoded)
    return ProgramRequirement(name.decode(), version.decode(), int.from_bytes(height, "big"))


def put_program_requirement(storage: SystemStorage, requirement: ProgramRequirement) -> None:
    parse_version(requirement.version)
    PROGRAM_REQUIREMENT.set(
        storage,
        rlp_codec.encode(
            [requirement.name.encode(), requirement.version.encode(), requirement.height]
        ),
    )
