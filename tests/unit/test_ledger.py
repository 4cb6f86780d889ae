"""The ledger (cybermiles_node/system/ledger.py): transfer, mint, burn and the supply invariant.

What is proven here:
- each operation moves exactly the amount, keeps the counters, and on every refusal (negative or
  non-integer amount, insufficient balance, overflow, bad address) raises `LedgerError` and
  changes nothing;
- over random sequences of operations (refused ones included), Σ balances = genesis supply +
  minted − burned, and `supply_invariant_holds` notices any balance changed behind its back;
- the counters sit at the documented words of the supply account;
- the same sequence gives the same state root on StateDB and on py-evm's own state.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_hash.auto import keccak
from eth_typing import Address
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node.system import LedgerError, MemoryStorage, SystemStateError, SystemStorage
from cybermiles_node.system.addresses import HOLD_ADDRESS, MINT_ADDRESS, SUPPLY_ADDRESS
from cybermiles_node.system.ledger import (
    BURNED,
    MINTED,
    SupplyCounters,
    burn,
    mint,
    read_supply,
    supply_invariant_holds,
    transfer,
)
from cybermiles_node.system.storage import UINT256_MAX
from tests.system_backends import STUB_CODE, state_db, stock_prague

ALICE = Address(b"\xa1" * 20)
BOB = Address(b"\xb0" * 20)
CAROL = Address(b"\xc0" * 20)
ACCOUNTS = (ALICE, BOB, CAROL, HOLD_ADDRESS, MINT_ADDRESS)
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True)


def funded(**balances: int) -> MemoryStorage:
    storage = MemoryStorage()
    names = {"alice": ALICE, "bob": BOB, "carol": CAROL, "hold": HOLD_ADDRESS}
    for name, balance in balances.items():
        storage.set_balance(names[name], balance)
    return storage


def snapshot(storage: MemoryStorage) -> tuple[object, ...]:
    return storage.words(), storage.balances()


def test_transfer_moves_the_amount() -> None:
    storage = funded(alice=100, bob=5)
    transfer(storage, ALICE, BOB, 60)
    assert (storage.get_balance(ALICE), storage.get_balance(BOB)) == (40, 65)
    transfer(storage, ALICE, HOLD_ADDRESS, 40)  # the whole balance
    assert (storage.get_balance(ALICE), storage.get_balance(HOLD_ADDRESS)) == (0, 40)
    assert read_supply(storage) == SupplyCounters(minted=0, burned=0)


def test_transfer_to_oneself_is_a_checked_no_op() -> None:
    storage = funded(alice=100)
    transfer(storage, ALICE, ALICE, 100)
    assert storage.get_balance(ALICE) == 100
    with pytest.raises(LedgerError, match="insufficient balance"):
        transfer(storage, ALICE, ALICE, 101)


def test_zero_amounts_are_valid_no_ops() -> None:
    storage = funded(alice=1)
    before = snapshot(storage)
    transfer(storage, BOB, CAROL, 0)  # even from an empty account
    mint(storage, BOB, 0)
    burn(storage, CAROL, 0)
    assert snapshot(storage) == before


def test_mint_and_burn_keep_the_counters_at_their_words() -> None:
    storage = funded(alice=10)
    mint(storage, HOLD_ADDRESS, 7)
    mint(storage, ALICE, 5)
    burn(storage, HOLD_ADDRESS, 3)
    assert storage.get_balance(HOLD_ADDRESS) == 4
    assert storage.get_balance(ALICE) == 15
    assert storage.get_balance(MINT_ADDRESS) == 0  # the Mint address is never debited
    assert read_supply(storage) == SupplyCounters(minted=12, burned=3)
    minted_slot = int.from_bytes(keccak(b"ledger/minted"), "big")
    burned_slot = int.from_bytes(keccak(b"ledger/burned"), "big")
    assert (MINTED.slot, BURNED.slot) == (minted_slot, burned_slot)
    assert storage.words() == tuple(
        sorted([(bytes(SUPPLY_ADDRESS), minted_slot, 12), (bytes(SUPPLY_ADDRESS), burned_slot, 3)])
    )


REFUSED: list[tuple[str, Callable[[MemoryStorage], None], str]] = [
    ("negative transfer", lambda s: transfer(s, ALICE, BOB, -1), "negative"),
    ("negative mint", lambda s: mint(s, ALICE, -5), "negative"),
    ("negative burn", lambda s: burn(s, ALICE, -1), "negative"),
    ("bool amount", lambda s: transfer(s, ALICE, BOB, True), "integer"),
    ("float amount", lambda s: mint(s, ALICE, 1.0), "integer"),  # type: ignore[arg-type]
    ("str amount", lambda s: burn(s, ALICE, "1"), "integer"),  # type: ignore[arg-type]
    ("amount above uint256", lambda s: transfer(s, ALICE, BOB, UINT256_MAX + 1), "exceeds"),
    ("transfer beyond balance", lambda s: transfer(s, ALICE, BOB, 101), "insufficient"),
    ("transfer from empty", lambda s: transfer(s, CAROL, BOB, 1), "insufficient"),
    ("burn beyond balance", lambda s: burn(s, ALICE, 101), "insufficient"),
    ("recipient overflows", lambda s: transfer(s, ALICE, BOB, 100), "exceed 2"),
    ("mint overflows balance", lambda s: mint(s, BOB, 51), "exceed 2"),
    ("short sender", lambda s: transfer(s, b"\x01" * 19, BOB, 0), "20-byte"),
    ("str recipient", lambda s: mint(s, "0x" + "00" * 20, 1), "20-byte"),  # type: ignore[arg-type]
    ("long holder", lambda s: burn(s, b"\x01" * 21, 0), "20-byte"),
]


@pytest.mark.parametrize(("case", "operation", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_operations_raise_and_change_nothing(
    case: str, operation: Callable[[MemoryStorage], None], message: str
) -> None:
    storage = funded(alice=100, bob=UINT256_MAX - 50)
    before = snapshot(storage)
    with pytest.raises(LedgerError, match=message) as raised:
        operation(storage)
    assert isinstance(raised.value, SystemStateError)  # one base class for the package
    assert snapshot(storage) == before


def test_counter_overflow_is_refused() -> None:
    storage = MemoryStorage()
    MINTED.set(storage, UINT256_MAX)
    BURNED.set(storage, UINT256_MAX)
    storage.set_balance(ALICE, 1)
    before = snapshot(storage)
    with pytest.raises(LedgerError, match="minted counter"):
        mint(storage, BOB, 1)
    with pytest.raises(LedgerError, match="burned counter"):
        burn(storage, ALICE, 1)
    assert snapshot(storage) == before


OPERATION = st.tuples(
    st.sampled_from(["transfer", "mint", "burn"]),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(ACCOUNTS),
    st.integers(-3, 300),
)


def run(
    storage: SystemStorage, operations: list[tuple[str, Address, Address, int]]
) -> SupplyCounters:
    """Apply the operations, skipping refused ones; returns what the accepted ones minted/burned
    by a plain count (a model to hold the ledger's counters against)."""
    minted = burned = 0
    for kind, first, second, amount in operations:
        try:
            if kind == "transfer":
                transfer(storage, first, second, amount)
            elif kind == "mint":
                mint(storage, first, amount)
                minted += amount
            else:
                burn(storage, first, amount)
                burned += amount
        except LedgerError:
            pass
    return SupplyCounters(minted=minted, burned=burned)


@PROPERTY
@given(
    st.lists(st.integers(0, 200), min_size=len(ACCOUNTS), max_size=len(ACCOUNTS)),
    st.lists(OPERATION, max_size=40),
)
def test_supply_is_conserved_over_random_operations(
    genesis_balances: list[int], operations: list[tuple[str, Address, Address, int]]
) -> None:
    storage = MemoryStorage()
    for account, balance in zip(ACCOUNTS, genesis_balances, strict=True):
        storage.set_balance(account, balance)
    model = run(storage, operations)
    balances = [storage.get_balance(account) for account in ACCOUNTS]
    assert all(balance >= 0 for balance in balances)
    counters = read_supply(storage)
    assert counters == model
    assert supply_invariant_holds(sum(genesis_balances), balances, counters)
    # The check can fail: a balance changed outside the ledger is caught either way.
    assert not supply_invariant_holds(sum(genesis_balances), [*balances, 1], counters)
    assert not supply_invariant_holds(sum(genesis_balances) + 1, balances, counters)


def test_the_ledger_gives_the_same_state_root_on_statedb_and_py_evm() -> None:
    operations = [
        ("mint", ALICE, ALICE, 1000),
        ("transfer", ALICE, HOLD_ADDRESS, 400),
        ("burn", HOLD_ADDRESS, HOLD_ADDRESS, 150),
        ("transfer", HOLD_ADDRESS, BOB, 250),
        ("transfer", BOB, CAROL, 999),  # refused
    ]
    ours, stock = state_db(), stock_prague()
    for storage in (ours, stock):
        storage.set_code(SUPPLY_ADDRESS, STUB_CODE)  # genesis makes it non-empty
        assert run(storage, operations) == SupplyCounters(minted=1000, burned=150)
        assert read_supply(storage) == SupplyCounters(minted=1000, burned=150)
        assert storage.get_balance(BOB) == 250  # the last transfer was refused
    assert ours.make_state_root() == stock.make_state_root()
