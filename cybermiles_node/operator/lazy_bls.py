"""py-evm without its BLS12-381 tables at start-up: the Prague precompiles 0x0b-0x11 load on use.

Importing py-evm imports `eth.precompiles`, whose `bls12_381` package imports py_ecc's
BLS12-381 code, and py_ecc computes its pairing tables at import: about 0.18 s of CPU, a quarter
of the node's whole import and so of the time until the RPC answers, for seven precompiles a
devnet rarely calls. `defer_bls12_381()` registers, in place of that package, a module with the
same seven functions; each imports the real submodule on its first call and calls through. The
submodules are py-evm's own, found through the real package's folder, so a call computes
exactly what py-evm computes (tests/unit/test_lazy_bls.py checks both the names and a result).

The node's CLI calls it before importing the node stack (operator/cli.py `_import_node`); the
first call of a BLS precompile then pays the import once. Nothing else changes: it must run
before py-evm is imported, and does nothing (returns False) when py-evm already was, or when
the installed py-evm has no such package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["BLS_PACKAGE", "BLS_PRECOMPILES", "defer_bls12_381"]

BLS_PACKAGE: Final = "eth.precompiles.bls12_381"
# The package's public functions (its __init__ re-exports them) -> the submodule defining each.
BLS_PRECOMPILES: Final = {
    "bls12_g1_add": "bls12_381_g1",
    "bls12_g1_msm": "bls12_381_g1",
    "bls12_map_fp_to_g1": "bls12_381_g1",
    "bls12_g2_add": "bls12_381_g2",
    "bls12_g2_msm": "bls12_381_g2",
    "bls12_map_fp2_to_g2": "bls12_381_g2",
    "bls12_pairing_check": "bls12_381_pairing",
}


def defer_bls12_381() -> bool:
    """Register the deferring package (module doc); True when it is in place."""
    if "eth" in sys.modules or BLS_PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec("eth")  # finds the package without importing it
    if spec is None or spec.origin is None:
        return False
    folder = Path(spec.origin).parent / "precompiles" / "bls12_381"
    if not (folder / "__init__.py").is_file():
        return False
    package = types.ModuleType(BLS_PACKAGE, __doc__)
    package.__path__ = [str(folder)]  # the real submodules import from here
    for name, submodule in BLS_PRECOMPILES.items():
        setattr(package, name, _on_first_call(name, f"{BLS_PACKAGE}.{submodule}"))
    sys.modules[BLS_PACKAGE] = package
    return True


def _on_first_call(name: str, module: str) -> Callable[..., object]:
    def precompile(computation: object) -> object:
        function: Callable[[object], object] = getattr(importlib.import_module(module), name)
        return function(computation)

    precompile.__name__ = precompile.__qualname__ = name
    return precompile
