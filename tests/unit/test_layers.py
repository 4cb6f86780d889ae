"""No import runs back up the layers (DESIGN.md §7, item 1).

The packages stack as: `genesis`, `evm` and `p2p` at the bottom; `consensus` on `p2p`; `rpc` on
`evm` and `genesis` (the parameter types the cmt methods answer with); `cybermiles_node`, the
composition root, on all of them. A lower package never imports a higher one, so each can be
used and tested alone. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("genesis", "evm", "p2p", "consensus", "rpc", "cybermiles_node")
ALLOWED: dict[str, frozenset[str]] = {
    "genesis": frozenset(),
    "evm": frozenset(),
    "p2p": frozenset(),
    "consensus": frozenset({"p2p"}),
    "rpc": frozenset({"evm", "genesis"}),
    "cybermiles_node": frozenset(PACKAGES),
}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_runs_back_up(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).rglob("*.py"))
        if (imported := imported_packages(path)) - ALLOWED[package] - {package}
    }
    assert not offenders, f"{package} imports layers above it: {offenders}"
