"""Moving CMT between balances, creating it and destroying it — with the supply kept accountable.

Every CMT movement the system makes (staking moving stake into Hold, awards minted into Hold,
slashed stake burned, governance escrow) goes through `transfer`, `mint` or `burn`; what the
EVM executor destroys itself (freegas payments) is counted with `record_burned`. They check
their input before changing anything, so a refused call leaves the state as it was, and they
raise `LedgerError` (a `SystemStateError`) when refusing:

- amounts are ints (not bools) ≥ 0; 0 is a valid no-op, so callers need no special case;
- no balance may go negative (insufficient balance) or exceed 2**256 − 1;
- mint adds to `minted`, burn adds to `burned`: two counters in system storage.

Minting credits the recipient directly; the Mint address (SPEC §2) names the source of new CMT
in events and receipts, but its balance is never debited, so it never needs a balance.

Slot layout (account SUPPLY_ADDRESS = 0x…c0de08, module "ledger"; see storage.py for derivation)

| name   | type | word                        | meaning                         |
|--------|------|-----------------------------|---------------------------------|
| minted | uint | keccak("ledger/minted")     | Σ of every amount ever minted   |
| burned | uint | keccak("ledger/burned")     | Σ of every amount ever burned   |
| pool_fees | uint | keccak("ledger/pool_fees") | fees paid into Hold inside EVM  |
|        |      |                             | calls this block, not yet in    |
|        |      |                             | the award pool (below)          |

Fees paid inside EVM calls: a staking or governance transaction made by a contract through a
precompile pays its fee into Hold from within the call, where the block executor, which counts
the fees of transactions, does not see it. The precompile records it with `add_pool_fee` in
state, so a reverting caller undoes the record with the payment, and the award step takes it
with `take_pool_fees` at the end of the block: the pool gets every fee paid in the block.

Supply invariant (SPEC §6, **Ours**): Σ balances = genesis supply + minted − burned, checked by
`supply_invariant_holds` after every block in tests and simulations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_typing import Address

from cybermiles_node.system.addresses import SUPPLY_ADDRESS
from cybermiles_node.system.errors import LedgerError
from cybermiles_node.system.storage import UINT, UINT256_MAX, Layout, SystemStorage

LAYOUT = Layout(SUPPLY_ADDRESS, "ledger")
MINTED = LAYOUT.item("minted", UINT)
BURNED = LAYOUT.item("burned", UINT)
POOL_FEES = LAYOUT.item("pool_fees", UINT)


def add_pool_fee(storage: SystemStorage, amount: int) -> None:
    """Record `amount` wei of fees paid into Hold inside an EVM call (module docstring)."""
    _check_amount(amount)
    POOL_FEES.set(storage, POOL_FEES.get(storage) + amount)


def take_pool_fees(storage: SystemStorage) -> int:
    """The fees recorded by `add_pool_fee` this block, cleared."""
    fees = POOL_FEES.get(storage)
    if fees:
        POOL_FEES.set(storage, 0)
    return fees


@dataclass(frozen=True)
class SupplyCounters:
    """What the ledger has created and destroyed since genesis, in wei."""

    minted: int
    burned: int


def read_supply(storage: SystemStorage) -> SupplyCounters:
    return SupplyCounters(minted=MINTED.get(storage), burned=BURNED.get(storage))


def transfer(storage: SystemStorage, sender: bytes, recipient: bytes, amount: int) -> None:
    """Move `amount` wei from `sender` to `recipient` (the same account: a checked no-op)."""
    source, target = _account(sender, "sender"), _account(recipient, "recipient")
    _check_amount(amount)
    source_balance = storage.get_balance(source)
    _check_covers(source, source_balance, amount)
    if source == target:
        return
    target_balance = storage.get_balance(target)
    _check_room(target, target_balance, amount)
    storage.set_balance(source, source_balance - amount)
    storage.set_balance(target, target_balance + amount)


def mint(storage: SystemStorage, recipient: bytes, amount: int) -> None:
    """Create `amount` wei in `recipient`'s balance and count it in `minted`."""
    target = _account(recipient, "recipient")
    _check_amount(amount)
    balance = storage.get_balance(target)
    minted = MINTED.get(storage)
    _check_room(target, balance, amount)
    if minted + amount > UINT256_MAX:
        raise LedgerError(f"mint of {amount} wei overflows the minted counter ({minted})")
    storage.set_balance(target, balance + amount)
    MINTED.set(storage, minted + amount)


def burn(storage: SystemStorage, holder: bytes, amount: int) -> None:
    """Destroy `amount` wei of `holder`'s balance and count it in `burned`."""
    source = _account(holder, "holder")
    _check_amount(amount)
    balance = storage.get_balance(source)
    burned = BURNED.get(storage)
    _check_covers(source, balance, amount)
    if burned + amount > UINT256_MAX:
        raise LedgerError(f"burn of {amount} wei overflows the burned counter ({burned})")
    storage.set_balance(source, balance - amount)
    BURNED.set(storage, burned + amount)


def record_burned(storage: SystemStorage, amount: int) -> None:
    """Count `amount` wei that left the balances outside the ledger (freegas payments, which
    the EVM executor takes from the contract and credits nobody) as burned."""
    _check_amount(amount)
    if amount == 0:
        return
    burned = BURNED.get(storage)
    if burned + amount > UINT256_MAX:
        raise LedgerError(f"burn of {amount} wei overflows the burned counter ({burned})")
    BURNED.set(storage, burned + amount)


def expected_supply(genesis_supply: int, counters: SupplyCounters) -> int:
    """What Σ balances must be: genesis supply + minted − burned."""
    return genesis_supply + counters.minted - counters.burned


def supply_invariant_holds(
    genesis_supply: int, balances: Iterable[int], counters: SupplyCounters
) -> bool:
    """Σ balances = genesis supply + minted − burned (balances: every account's, Hold included)."""
    return sum(balances) == expected_supply(genesis_supply, counters)


def _account(address: bytes, role: str) -> Address:
    if not isinstance(address, bytes) or len(address) != 20:
        raise LedgerError(f"{role} must be a 20-byte address, got {address!r}")
    return Address(address)


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise LedgerError(f"amount must be an integer number of wei, got {type(amount).__name__}")
    if amount < 0:
        raise LedgerError(f"amount must not be negative, got {amount}")
    if amount > UINT256_MAX:
        raise LedgerError(f"amount {amount} exceeds 2**256 - 1")


def _check_covers(account: Address, balance: int, amount: int) -> None:
    if balance < amount:
        raise LedgerError(
            f"insufficient balance: 0x{bytes(account).hex()} has {balance} wei, needs {amount}"
        )


def _check_room(account: Address, balance: int, amount: int) -> None:
    if balance + amount > UINT256_MAX:
        raise LedgerError(f"balance of 0x{bytes(account).hex()} would exceed 2**256 - 1")
