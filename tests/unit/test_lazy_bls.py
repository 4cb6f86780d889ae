"""operator/lazy_bls.py: py-evm imports without py_ecc's BLS12-381 tables, and a BLS precompile
called through the deferring package computes what py-evm's own function computes. Each check
runs in a fresh interpreter: the deferral only works before py-evm is imported."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from cybermiles_node.operator.lazy_bls import BLS_PRECOMPILES


def _run(code: str) -> object:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.splitlines()[-1])


DEFERRED = (
    "from cybermiles_node.operator.lazy_bls import defer_bls12_381\nassert defer_bls12_381()\n"
)


def test_importing_py_evm_leaves_the_bls_tables_out() -> None:
    loaded = _run(
        DEFERRED
        + "import json, sys\nimport eth.vm.forks.prague.computation\n"
        + "print(json.dumps(sorted(m for m in sys.modules if m.startswith('py_ecc'))))"
    )
    assert isinstance(loaded, list)
    assert "py_ecc.bls" not in loaded
    assert "py_ecc.optimized_bls12_381" not in loaded
    assert "py_ecc.optimized_bls12_381.optimized_pairing" not in loaded


def test_the_deferring_package_has_every_function_the_real_one_exports() -> None:
    spec = importlib.util.find_spec("eth")
    assert spec is not None and spec.origin is not None
    init = Path(spec.origin).parent / "precompiles" / "bls12_381" / "__init__.py"
    exported = {
        (alias.asname or alias.name, node.module)
        for node in ast.parse(init.read_text()).body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert exported == set(BLS_PRECOMPILES.items())


def test_a_deferred_precompile_computes_what_py_evm_computes() -> None:
    # G1ADD of the generator with itself, through the cvm profile's precompile table, against
    # the real function of the submodule; a bad input raises the same VMError.
    result = _run(
        DEFERRED
        + """
import json
from types import SimpleNamespace
from eth.exceptions import VMError
from evm.profiles import CvmComputation
from eth.precompiles.bls12_381 import bls12_381_g1 as real
from py_ecc.optimized_bls12_381 import G1

class Computation:
    def __init__(self, data):
        self.msg = SimpleNamespace(data=data)
        self.gas = []
        self.output = b""
    def consume_gas(self, amount, reason):
        self.gas.append(amount)

data = real.g1_optimized_3d_to_bytes(G1) * 2
deferred, direct = Computation(data), Computation(data)
deferred_add = CvmComputation._precompiles[b"\\x00" * 19 + b"\\x0b"]
assert deferred_add is not real.bls12_g1_add and deferred_add.__name__ == "bls12_g1_add"
deferred_add(deferred)
real.bls12_g1_add(direct)
errors = []
for f in (deferred_add, real.bls12_g1_add):
    try:
        f(Computation(b"short"))
    except VMError as exc:
        errors.append(str(exc))
print(json.dumps([deferred.output.hex(), direct.output.hex(), deferred.gas, direct.gas, errors]))
"""
    )
    assert isinstance(result, list)
    out_deferred, out_direct, gas_deferred, gas_direct, errors = result
    assert out_deferred == out_direct and len(out_deferred) == 256
    assert gas_deferred == gas_direct and gas_deferred
    assert len(errors) == 2 and errors[0] == errors[1]


def test_after_py_evm_is_imported_it_changes_nothing() -> None:
    assert (
        _run(
            "import json, eth\nfrom cybermiles_node.operator.lazy_bls import defer_bls12_381\n"
            "print(json.dumps(defer_bls12_381()))"
        )
        is False
    )
