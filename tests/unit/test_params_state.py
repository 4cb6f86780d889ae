"""The chain parameters kept in state (cybermiles_node/params.py).

What is proven here:
- every valid `Params` (Hypothesis, within genesis' bounds) reads back equal after `write_params`,
  rationals exactly, and the stored words depend only on the parameters written last;
- each kind sits at its documented words; every field of `genesis.Params` has a slot;
- a state nobody wrote parameters to (or written with another layout) is refused with a clear
  error, as is a stored value out of its bounds;
- `change_param` applies exactly one governable parameter, parsed as genesis parses it, and
  refuses foundation_address, unknown names, unparsable, out-of-bound and unstorable values
  without writing anything;
- StateDB and py-evm's own state hold the same parameters under the same state root.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node.params import (
    LAYOUT_VERSION,
    PARAM_ITEMS,
    WRITTEN,
    ParamsNotInState,
    change_param,
    check_change,
    params_slots,
    read_params,
    read_state_params,
    write_params,
)
from cybermiles_node.system import MemoryStorage, SystemStateError
from cybermiles_node.system.addresses import PARAMS_ADDRESS
from evm.db import MemoryDB
from evm.state import StateDB
from genesis import PARAM_NAMES, PARAM_SPECS, ParamError, Params, ParamSpec, default_params
from tests.system_backends import STUB_CODE, state_db, stock_prague

PROPERTY = settings(max_examples=100, deadline=None, derandomize=True)
ACCOUNT = bytes(PARAMS_ADDRESS)
DEFAULT_CUBE_ENTRIES = json.loads(Params().cube_pub_keys)


def slot(name: str) -> int:
    return int.from_bytes(keccak(f"params/{name}".encode()), "big")


def cube_pub_keys() -> st.SearchStrategy[str]:
    """Valid cube_pub_keys texts: any subset of the default keys, in any order and spacing."""
    return st.builds(
        lambda entries, indent: json.dumps(entries, indent=indent),
        st.lists(st.sampled_from(DEFAULT_CUBE_ENTRIES), unique_by=lambda e: e["cube_batch"]),
        st.sampled_from([None, 2]),
    )


def values_for(spec: ParamSpec) -> st.SearchStrategy[object]:
    if spec.kind == "uint":
        assert isinstance(spec.minimum, int) and isinstance(spec.maximum, int)
        return st.integers(spec.minimum, spec.maximum)
    if spec.kind == "rat":
        low = Fraction(spec.minimum)
        high = Fraction(spec.maximum) if spec.maximum is not None else Fraction(2**128)
        fractions = st.builds(Fraction, st.integers(0, 2**96), st.integers(1, 2**96))
        return fractions.filter(
            lambda f: (f > low if spec.exclusive_minimum else f >= low) and f <= high
        ) | st.sampled_from([high] + ([] if spec.exclusive_minimum else [low]))
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "address":
        return st.binary(min_size=20, max_size=20)
    return cube_pub_keys()


VALID_PARAMS: st.SearchStrategy[Params] = st.fixed_dictionaries(
    {spec.name: values_for(spec) for spec in PARAM_SPECS}
).map(lambda fields: Params(**fields))  # type: ignore[arg-type]


@PROPERTY
@given(VALID_PARAMS, VALID_PARAMS)
def test_every_valid_params_round_trips_and_leaves_a_canonical_footprint(
    first: Params, second: Params
) -> None:
    storage = MemoryStorage()
    write_params(storage, first)
    assert read_params(storage) == first
    write_params(storage, second)
    assert read_params(storage) == second
    fresh = MemoryStorage()
    write_params(fresh, second)
    assert storage.words() == fresh.words()


@pytest.mark.parametrize("network", ["private", "mainnet"])
def test_network_defaults_round_trip(network: str) -> None:
    storage = MemoryStorage()
    write_params(storage, default_params(network))
    assert read_params(storage) == default_params(network)


def test_each_kind_sits_at_its_documented_words() -> None:
    params = dataclasses.replace(
        Params(), max_vals=19, slash_ratio=Fraction(12, 1000), slash_enabled=True
    )
    storage = MemoryStorage()
    write_params(storage, params)
    word = {(s, v) for _, s, v in storage.words()}
    assert (slot("written"), LAYOUT_VERSION) in word
    assert (slot("max_vals"), 19) in word
    assert (slot("backup_vals"), 1) in word
    assert {(slot("slash_ratio"), 3), (slot("slash_ratio") + 1, 250)} <= word  # lowest terms
    assert (slot("slash_enabled"), 1) in word
    foundation = int.from_bytes(params.foundation_address, "big")
    assert (slot("foundation_address"), foundation) in word
    assert (slot("cube_pub_keys"), len(params.cube_pub_keys.encode())) in word
    assert all(account == ACCOUNT for account, _, _ in storage.words())
    assert params_slots() == {name: slot(name) for name in PARAM_NAMES}


def test_every_params_field_has_an_item() -> None:
    assert tuple(PARAM_ITEMS) == PARAM_NAMES
    assert tuple(f.name for f in dataclasses.fields(Params)) == PARAM_NAMES
    for spec in PARAM_SPECS:  # the words each parameter owns, as the collision test sees them
        words = 2 if spec.kind == "rat" else 1
        expected = tuple(slot(spec.name) + i for i in range(words))
        assert PARAM_ITEMS[spec.name].fixed_slots() == expected, spec.name


@pytest.mark.parametrize("make", [MemoryStorage, state_db], ids=["memory", "statedb"])
def test_reading_params_nobody_wrote_is_refused_clearly(make: type[MemoryStorage]) -> None:
    with pytest.raises(ParamsNotInState, match="genesis must write them") as raised:
        read_params(make())
    assert "0x0000000000000000000000000000000000c0de07" in str(raised.value)
    assert isinstance(raised.value, SystemStateError)


def test_another_layout_version_is_refused() -> None:
    storage = MemoryStorage()
    write_params(storage, Params())
    WRITTEN.set(storage, LAYOUT_VERSION + 1)
    with pytest.raises(ParamsNotInState, match="unknown layout 2"):
        read_params(storage)


def test_a_stored_value_out_of_bounds_is_refused() -> None:
    storage = MemoryStorage()
    write_params(storage, Params())
    PARAM_ITEMS["max_vals"].set(storage, 0)  # no validators: genesis.Params refuses it
    with pytest.raises(ParamError, match="max_vals"):
        read_params(storage)


CHANGES: list[tuple[str, str, object]] = [
    ("max_vals", "19", 19),
    ("max_vals", "0x13", 19),
    ("backup_vals", "0", 0),
    ("gas_price", "1000000000", 10**9),
    ("self_staking_ratio", "0.2", Fraction(1, 5)),
    ("inflation_rate", "6/100", Fraction(3, 50)),
    ("validators_block_award_ratio", "1", Fraction(1)),
    ("slash_enabled", "true", True),
    ("slash_enabled", "false", False),
    ("cube_pub_keys", "[]", "[]"),
    ("cal_vp_interval", "10", 10),
]


@pytest.mark.parametrize(("name", "text", "expected"), CHANGES)
def test_change_param_writes_exactly_one_parameter(name: str, text: str, expected: object) -> None:
    before = dataclasses.replace(Params(), slash_enabled=True, backup_vals=3)
    storage = MemoryStorage()
    write_params(storage, before)
    assert check_change(name, text) == expected
    after = change_param(storage, name, text)
    assert after == dataclasses.replace(before, **{name: expected})  # type: ignore[arg-type]
    assert read_params(storage) == after
    fresh = MemoryStorage()
    write_params(fresh, after)
    assert storage.words() == fresh.words()  # nothing else moved, no stale words


REFUSED: list[tuple[str, str, str]] = [
    ("foundation_address", "0x" + "11" * 20, "cannot be changed by governance"),
    ("no_such_param", "1", "unknown parameter"),
    ("max_vals", "-1", "max_vals"),
    ("max_vals", "abc", "max_vals"),
    ("max_vals", "0", ">= 1"),
    ("max_vals", str(2**63), "<= "),
    ("self_staking_ratio", "3/2", "<= 1"),
    ("validator_size_threshold", "0", "> 0"),
    ("inflation_rate", "1/0", "inflation_rate"),
    ("inflation_rate", "1" + "0" * 80, "does not fit in state"),  # parses, but 266 bits
    ("slash_enabled", "yes", "true or false"),
    ("cube_pub_keys", "[{", "JSON"),
    ("cube_pub_keys", "{}", "array"),
]


@pytest.mark.parametrize(("name", "text", "message"), REFUSED)
def test_change_param_refusals_write_nothing(name: str, text: str, message: str) -> None:
    storage = MemoryStorage()
    write_params(storage, Params())
    before = storage.words()
    with pytest.raises(ParamError, match=message):
        check_change(name, text)
    with pytest.raises(ParamError, match=message):
        change_param(storage, name, text)
    assert storage.words() == before


def test_change_param_needs_params_in_state() -> None:
    storage = MemoryStorage()
    with pytest.raises(ParamsNotInState):
        change_param(storage, "max_vals", "5")
    assert storage.words() == ()


def test_statedb_and_py_evm_hold_the_same_params_under_the_same_root() -> None:
    params = dataclasses.replace(default_params("mainnet"), inflation_rate=Fraction(7, 99))
    ours, stock = state_db(), stock_prague()
    for storage in (ours, stock):
        storage.set_code(PARAMS_ADDRESS, STUB_CODE)  # genesis makes the account non-empty
        write_params(storage, params)
        assert change_param(storage, "max_vals", "21").max_vals == 21
        assert read_params(storage) == dataclasses.replace(params, max_vals=21)
    assert ours.make_state_root() == stock.make_state_root()


def test_state_params_are_decoded_once_per_root_and_see_pending_changes() -> None:
    """`read_state_params` caches by the params storage root: equal to `read_params` at every
    root, a change is seen before its root is made (pending) and after (a new root), and an
    older root still reads its own parameters."""
    params = dataclasses.replace(default_params("devnet"), max_vals=7)
    db = MemoryDB()
    storage = StateDB(db)
    storage.set_code(PARAMS_ADDRESS, STUB_CODE)
    write_params(storage, params)
    assert read_state_params(storage) == params  # pending: read as written
    storage.persist()
    first = StateDB(db, storage.state_root)
    assert read_state_params(first) == params == read_state_params(first)
    change_param(storage, "max_vals", "9")
    changed = dataclasses.replace(params, max_vals=9)
    assert read_state_params(storage) == changed == read_params(storage)
    storage.persist()
    assert read_state_params(storage) == changed
    assert read_state_params(StateDB(db, storage.state_root)) == changed
    assert read_state_params(first) == params
