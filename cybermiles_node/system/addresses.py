"""The fixed addresses of the system: SPEC §2's Mint and Hold, and each module's storage account.

| address                                      | what                                             |
|----------------------------------------------|--------------------------------------------------|
| 0x0000000000000000000000000000000000000000   | Mint: the source of newly minted CMT (SPEC §2)   |
| 0xffffffffffffffffffffffffffffffffffffffff   | Hold: all staked CMT and governance escrow       |
| 0x0000000000000000000000000000000000c0de05   | staking: its precompile and its storage          |
| 0x0000000000000000000000000000000000c0de06   | governance: its precompile and its storage       |
| 0x0000000000000000000000000000000000c0de07   | params: the chain parameters (params.py)         |
| 0x0000000000000000000000000000000000c0de08   | supply: the ledger's minted/burned counters      |

0xc0de01-0xc0de04 are the CVM precompiles (docs/PRECOMPILES.md); 0xc0de05 onwards was reserved
there for the staking and governance modules. A module's storage account is its precompile
address (DESIGN.md §7), so `eth_getProof` at that address proves the module's state.

The supply counters get an account of their own rather than a corner of a module's: mint and
burn are called by staking (awards, slashing) and by the executor (freegas burns), so they
belong to no module; and the Mint address itself cannot hold them, because giving 0x0 the code
or nonce it would need (below) changes what clients observe at the zero address.

Every storage account must be non-empty from genesis on — genesis gives it the precompile stub
code (`evm.precompiles.PRECOMPILE_STUB_CODE`): an account with nonce 0, balance 0 and no code is
deleted with its storage when any transaction touches it (EIP-161).
"""

from __future__ import annotations

from eth_typing import Address

from genesis import HOLD_ADDRESS as _HOLD
from genesis import MINT_ADDRESS as _MINT


def _system_address(suffix: int) -> Address:
    return Address(suffix.to_bytes(20, "big"))


MINT_ADDRESS = Address(_MINT)
HOLD_ADDRESS = Address(_HOLD)
STAKING_ADDRESS = _system_address(0xC0DE05)
GOVERNANCE_ADDRESS = _system_address(0xC0DE06)
PARAMS_ADDRESS = _system_address(0xC0DE07)
SUPPLY_ADDRESS = _system_address(0xC0DE08)

# Accounts whose storage the system owns, sorted; genesis must give each the stub code.
SYSTEM_STORAGE_ACCOUNTS: tuple[Address, ...] = (
    STAKING_ADDRESS,
    GOVERNANCE_ADDRESS,
    PARAMS_ADDRESS,
    SUPPLY_ADDRESS,
)
