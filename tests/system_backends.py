"""The `SystemStorage` implementations the system tests run through (cybermiles_node/system).

- `MemoryStorage`: the dict-backed one of the system package;
- `state_db()`: our StateDB, what blocks and admission use;
- `real_prague()`: py-evm's stock PragueState on its own AccountDB;
- `stock_prague()`: the same without Ethereum's system contracts (absent from CyberMiles genesis),
  so its state root is comparable with StateDB's;
- `cvm_state()`: our CvmState (PragueState on StateDB), what a precompile sees as
  `computation.state`.
"""

from __future__ import annotations

from collections.abc import Callable

from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.prague.state import PragueState
from eth_typing import Address, BlockNumber, Hash32

from cybermiles_node.system.storage import MemoryStorage, SystemStorage
from evm.db import MemoryDB
from evm.profiles import CvmState
from evm.state import StateDB

STUB_CODE = bytes.fromhex("60006000fd")  # what genesis gives every system storage account


def _context() -> ExecutionContext:
    return ExecutionContext(
        coinbase=Address(bytes(20)),
        timestamp=1_700_000_000,
        block_number=BlockNumber(1),
        difficulty=0,
        mix_hash=Hash32(bytes(32)),
        gas_limit=30_000_000,
        prev_hashes=(),
        chain_id=1234,
        base_fee_per_gas=0,
        excess_blob_gas=0,
    )


class StockPragueState(PragueState):
    """py-evm's Prague state on py-evm's own AccountDB, without Ethereum's system contracts."""

    def set_system_contracts(self) -> None:
        pass


def _empty_root() -> Hash32:
    return StateDB(MemoryDB()).state_root


def state_db() -> StateDB:
    return StateDB(MemoryDB())


def real_prague() -> PragueState:
    return PragueState(MemoryDB(), _context(), _empty_root())


def stock_prague() -> PragueState:
    return StockPragueState(MemoryDB(), _context(), _empty_root())


def cvm_state() -> CvmState:
    return CvmState(MemoryDB(), _context(), _empty_root())


# Typed as SystemStorage factories: mypy accepts these entries only if each class's methods are
# compatible with the protocol (the static half of the conformance test).
BACKENDS: dict[str, Callable[[], SystemStorage]] = {
    "memory": MemoryStorage,
    "statedb": state_db,
    "prague": real_prague,
    "stock-prague": stock_prague,
    "cvm-state": cvm_state,
}
