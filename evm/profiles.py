"""EVM profiles: the rule sets a chain can fix in its genesis.

A profile is a py-evm fork specialised for CyberMiles: the state class (our `StateDB`, base fee
always 0, no Ethereum system contracts), the computation class (opcodes and precompiles), the
transaction builder and the header class. `cvm` is Prague as it is today; the CVM opcodes and
precompiles plug in through `CvmComputation.opcodes` / `_precompiles` (the seam the CVM issue
fills). `lity` joins the registry with the CVM issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.blocks import PragueBlockHeader
from eth.vm.forks.prague.computation import PRAGUE_PRECOMPILES, PragueComputation
from eth.vm.forks.prague.opcodes import PRAGUE_OPCODES
from eth.vm.forks.prague.state import PragueState
from eth.vm.forks.prague.transactions import PragueTransactionBuilder

from evm.state import StateDB


class CvmComputation(PragueComputation):
    """Prague computation; the CVM opcodes (0x0c-0x0e, 0x2a-0x2d, 0xf6-0xf9) attach here."""

    opcodes = dict(PRAGUE_OPCODES)
    _precompiles = dict(PRAGUE_PRECOMPILES)


class CvmState(PragueState):
    account_db_class = StateDB
    computation_class = CvmComputation

    def set_system_contracts(self) -> None:
        # Ethereum's beacon-root and history contracts are not part of CyberMiles genesis.
        pass


@dataclass(frozen=True)
class EvmProfile:
    name: str
    state_class: Any
    vm_class: Any
    header_class: Any
    transaction_builder: Any

    @cached_property
    def precompile_addresses(self) -> frozenset[bytes]:
        return frozenset(self.state_class.computation_class.get_precompiles())


CVM = EvmProfile(
    name="cvm",
    state_class=CvmState,
    vm_class=PragueVM,
    header_class=PragueBlockHeader,
    transaction_builder=PragueTransactionBuilder,
)

PROFILES: dict[str, EvmProfile] = {"cvm": CVM}


def get_profile(name: str) -> EvmProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown EVM profile {name!r}; known: {sorted(PROFILES)}") from None
