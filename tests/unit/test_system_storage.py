"""Typed system storage (cybermiles_node/system/storage.py, DESIGN.md §7 item 4).

What is proven here:
- our StateDB, py-evm's stock PragueState (its own AccountDB) and our CvmState (what a precompile
  sees) all satisfy `SystemStorage`, and the same operations through them give the same values
  and the same state root;
- each codec puts exactly the documented words at the documented slots, round-trips every value
  of its type, refuses what does not fit, refuses corrupt words, and leaves a footprint that
  depends only on the value (not on what was written before);
- maps and sorted indices derive the documented slots; a sorted index behaves like a Python set
  iterated in sorted order over random operation sequences, and its storage is canonical;
- the namespaces of every layout in the node are distinct and their fixed words never collide;
- the system package and params.py import nothing impure.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from eth_hash.auto import keccak
from eth_typing import Address
from hypothesis import given, settings
from hypothesis import strategies as st

import cybermiles_node
from cybermiles_node.system import addresses
from cybermiles_node.system.errors import StorageError
from cybermiles_node.system.storage import (
    ADDRESS,
    ADDRESS_KEY,
    BOOL,
    BYTES,
    BYTES32,
    BYTES32_KEY,
    BYTES_KEY,
    MAX_STORED_BYTES,
    RATIONAL,
    STRING,
    STRING_KEY,
    UINT,
    UINT256_MAX,
    UINT_KEY,
    Codec,
    KeyCodec,
    Layout,
    MemoryStorage,
    SortedIndex,
    SystemStorage,
)
from evm.precompiles import CVM_PRECOMPILES
from tests.system_backends import BACKENDS, STUB_CODE, cvm_state, state_db, stock_prague

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = Address(b"\x00" * 17 + b"\xc0\xde\x99")
OTHER = Address(b"\x42" * 20)
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)


def h(data: bytes) -> int:
    return int.from_bytes(keccak(data), "big")


def w(n: int) -> bytes:
    return n.to_bytes(32, "big")


# -- the backends --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", BACKENDS.values(), ids=BACKENDS.keys())
def test_every_backend_satisfies_the_protocol(make: Callable[[], SystemStorage]) -> None:
    storage = make()
    assert isinstance(storage, SystemStorage)  # runtime_checkable: the four methods exist
    # ... and each accepts the protocol's positional arguments (the static check is mypy's:
    # the assignments in BACKENDS type-check only if the signatures are compatible).
    for name, args in {
        "get_storage": (ACCOUNT, 1),
        "set_storage": (ACCOUNT, 1, 2),
        "get_balance": (ACCOUNT,),
        "set_balance": (ACCOUNT, 3),
    }.items():
        inspect.signature(getattr(storage, name)).bind(*args)
    # ... and works through it.
    storage.set_storage(ACCOUNT, UINT256_MAX, UINT256_MAX)
    storage.set_balance(ACCOUNT, 10**27)
    assert storage.get_storage(ACCOUNT, UINT256_MAX) == UINT256_MAX
    assert storage.get_storage(ACCOUNT, 0) == 0
    assert storage.get_balance(ACCOUNT) == 10**27
    assert storage.get_balance(OTHER) == 0
    item = Layout(ACCOUNT, "probe").item("text", STRING)
    item.set(storage, "a value longer than one storage word, to use the data slots")
    assert item.get(storage) == "a value longer than one storage word, to use the data slots"


# -- codecs: exact words -------------------------------------------------------------------------

S = 7  # a slot
D = h(w(S))  # where BYTES puts the data of a value at S
CODEC_WORDS: list[tuple[Codec, object, dict[int, int]]] = [
    (UINT, 0, {}),
    (UINT, 5, {S: 5}),
    (UINT, UINT256_MAX, {S: UINT256_MAX}),
    (BOOL, False, {}),
    (BOOL, True, {S: 1}),
    (ADDRESS, bytes(20), {}),
    (ADDRESS, b"\x01" + bytes(18) + b"\x02", {S: (1 << 152) | 2}),  # right-aligned
    (BYTES32, b"\xab" + bytes(31), {S: 0xAB << 248}),
    (BYTES, b"", {}),
    (BYTES, b"abc", {S: 3, D: int.from_bytes(b"abc".ljust(32, b"\0"), "big")}),
    (BYTES, b"\x01" * 32, {S: 32, D: int.from_bytes(b"\x01" * 32, "big")}),
    (BYTES, b"\x02" * 33, {S: 33, D: int.from_bytes(b"\x02" * 32, "big"), D + 1: 0x02 << 248}),
    (STRING, "é", {S: 2, D: int.from_bytes("é".encode().ljust(32, b"\0"), "big")}),
    (RATIONAL, Fraction(0), {}),
    (RATIONAL, Fraction(3, 7), {S: 3, S + 1: 7}),
    (RATIONAL, Fraction(12, 100), {S: 3, S + 1: 25}),  # lowest terms
    (RATIONAL, Fraction(5), {S: 5, S + 1: 1}),
]


@pytest.mark.parametrize(("codec", "value", "words"), CODEC_WORDS)
def test_codec_writes_exactly_the_documented_words(
    codec: Codec, value: object, words: dict[int, int]
) -> None:
    storage = MemoryStorage()
    codec.write(storage, ACCOUNT, S, value)
    assert storage.words() == tuple((bytes(ACCOUNT), s, v) for s, v in sorted(words.items()))
    assert codec.read(storage, ACCOUNT, S) == value
    codec.clear(storage, ACCOUNT, S)
    assert storage.words() == ()
    assert codec.read(storage, ACCOUNT, S) == codec.zero  # unwritten reads as the zero value


def test_slots_wrap_around_like_the_evm() -> None:
    storage = MemoryStorage()
    RATIONAL.write(storage, ACCOUNT, UINT256_MAX, Fraction(1, 3))
    assert storage.words() == ((bytes(ACCOUNT), 0, 3), (bytes(ACCOUNT), UINT256_MAX, 1))
    assert RATIONAL.read(storage, ACCOUNT, UINT256_MAX) == Fraction(1, 3)


BAD_VALUES: list[tuple[Codec, object]] = [
    (UINT, -1),
    (UINT, UINT256_MAX + 1),
    (UINT, True),
    (UINT, "1"),
    (BOOL, 1),
    (ADDRESS, bytes(19)),
    (ADDRESS, "0x" + "00" * 20),
    (BYTES32, bytes(31)),
    (BYTES, "text"),
    (BYTES, bytes(MAX_STORED_BYTES + 1)),
    (STRING, b"bytes"),
    (STRING, "\ud800"),  # a lone surrogate has no UTF-8
    (RATIONAL, Fraction(-1, 2)),
    (RATIONAL, Fraction(1, UINT256_MAX + 1)),
    (RATIONAL, 0.5),
    (RATIONAL, 1),
]


@pytest.mark.parametrize(("codec", "value"), BAD_VALUES)
def test_codec_refuses_values_that_do_not_fit(codec: Codec, value: object) -> None:
    storage = MemoryStorage()
    with pytest.raises(StorageError):
        codec.write(storage, ACCOUNT, S, value)
    assert storage.words() == ()


CORRUPT: list[tuple[Codec, dict[int, int]]] = [
    (BOOL, {S: 2}),
    (ADDRESS, {S: 1 << 160}),
    (RATIONAL, {S: 1}),  # 1/0
    (RATIONAL, {S: 2, S + 1: 4}),  # not in lowest terms
    (BYTES, {S: MAX_STORED_BYTES + 1}),
    (BYTES, {S: 1, D: 0x0101 << 240}),  # data beyond the length
    (STRING, {S: 1, D: 0xFF << 248}),  # not UTF-8
]


@pytest.mark.parametrize(("codec", "words"), CORRUPT)
def test_codec_refuses_words_it_could_not_have_written(codec: Codec, words: dict[int, int]) -> None:
    storage = MemoryStorage()
    for slot, value in words.items():
        storage.set_storage(ACCOUNT, slot, value)
    with pytest.raises(StorageError):
        codec.read(storage, ACCOUNT, S)


VALUES: dict[str, tuple[Codec, st.SearchStrategy]] = {
    "uint": (UINT, st.integers(0, UINT256_MAX)),
    "bool": (BOOL, st.booleans()),
    "address": (ADDRESS, st.binary(min_size=20, max_size=20)),
    "bytes32": (BYTES32, st.binary(min_size=32, max_size=32)),
    "bytes": (BYTES, st.binary(max_size=200)),
    "str": (STRING, st.text(max_size=80)),
    "rational": (
        RATIONAL,
        st.builds(Fraction, st.integers(0, UINT256_MAX), st.integers(1, UINT256_MAX)),
    ),
}


@pytest.mark.parametrize("kind", VALUES)
@PROPERTY
@given(data=st.data())
def test_codec_round_trips_and_its_footprint_depends_on_the_value_only(
    kind: str, data: st.DataObject
) -> None:
    codec, values = VALUES[kind]
    first, second = data.draw(values), data.draw(values)
    slot = data.draw(st.integers(0, UINT256_MAX))
    overwritten = MemoryStorage()
    codec.write(overwritten, ACCOUNT, slot, first)
    assert codec.read(overwritten, ACCOUNT, slot) == first
    codec.write(overwritten, ACCOUNT, slot, second)
    assert codec.read(overwritten, ACCOUNT, slot) == second
    fresh = MemoryStorage()
    codec.write(fresh, ACCOUNT, slot, second)
    assert overwritten.words() == fresh.words()


# -- items, maps, indices: slot derivation -------------------------------------------------------


def test_slots_are_derived_as_documented() -> None:
    layout = Layout(ACCOUNT, "demo")
    item = layout.item("total", UINT)
    by_address = layout.map("by_address", ADDRESS_KEY, RATIONAL)
    by_name = layout.map("by_name", STRING_KEY, UINT)
    index = layout.sorted_index("members", UINT_KEY)
    who = b"\x11" * 20
    assert item.slot == h(b"demo/total")
    assert by_address.slot(who) == h(keccak(b"demo/by_address") + who)
    assert by_name.slot("ab") == h(keccak(b"demo/by_name") + b"ab")
    assert index.length_slot == h(b"demo/members")
    assert index.elements_slot == h(w(h(b"demo/members")))

    storage = MemoryStorage()
    item.set(storage, 9)
    by_address.set(storage, who, Fraction(2, 3))
    index.insert(storage, 40)
    index.insert(storage, 30)
    expected = {
        h(b"demo/total"): 9,
        by_address.slot(who): 2,
        by_address.slot(who) + 1: 3,
        index.length_slot: 2,
        index.elements_slot: 30,
        index.elements_slot + 1: 40,
    }
    assert storage.words() == tuple((bytes(ACCOUNT), s, v) for s, v in sorted(expected.items()))


def test_map_reads_unset_keys_as_zero_and_delete_leaves_nothing() -> None:
    layout = Layout(ACCOUNT, "demo")
    names = layout.map("names", UINT_KEY, STRING)
    storage = MemoryStorage()
    assert names.get(storage, 1) == ""
    names.set(storage, 1, "one" * 20)
    names.set(storage, 2, "two")
    assert (names.get(storage, 1), names.get(storage, 2)) == ("one" * 20, "two")
    names.delete(storage, 1)
    names.delete(storage, 2)
    assert storage.words() == ()


KEYS: dict[str, tuple[KeyCodec, st.SearchStrategy]] = {
    "uint": (UINT_KEY, st.integers(0, UINT256_MAX)),
    "address": (ADDRESS_KEY, st.binary(min_size=20, max_size=20)),
    "bytes32": (BYTES32_KEY, st.binary(min_size=32, max_size=32)),
    "str": (STRING_KEY, st.text(max_size=40)),
    "bytes": (BYTES_KEY, st.binary(max_size=40)),
}


@pytest.mark.parametrize("kind", KEYS)
@PROPERTY
@given(data=st.data())
def test_key_encoding_is_injective_and_orders_like_the_keys(kind: str, data: st.DataObject) -> None:
    codec, keys = KEYS[kind]
    a, b = data.draw(keys), data.draw(keys)
    assert (codec.encode(a) == codec.encode(b)) == (a == b)
    assert (codec.encode(a) < codec.encode(b)) == (a < b)


@PROPERTY
@given(st.lists(st.text(max_size=6), min_size=2, max_size=2, unique=True), st.binary(max_size=40))
def test_two_maps_never_share_a_slot_for_the_same_key(names: list[str], key: bytes) -> None:
    # Names of one layout cannot repeat; across layouts the module part differs. Either way the
    # namespaces differ, and so do the slots (even for variable-length keys).
    first = Layout(ACCOUNT, "m" + names[0].encode().hex()).map("x", BYTES_KEY, UINT)
    second = Layout(ACCOUNT, "m" + names[1].encode().hex()).map("x", BYTES_KEY, UINT)
    assert first.slot(key) != second.slot(key)


# -- sorted index ----------------------------------------------------------------------------------

INDEX_KEYS: dict[str, tuple[KeyCodec, st.SearchStrategy]] = {
    # Small domains, so inserts of present keys and removes of absent ones happen often.
    "uint": (UINT_KEY, st.sampled_from([0, 1, 2, 7, 2**255, UINT256_MAX])),
    "address": (ADDRESS_KEY, st.sampled_from([bytes([i]) * 20 for i in (0, 1, 5, 0xFF)])),
    "str": (STRING_KEY, st.sampled_from(["", "a", "ab", "b", "é", "x" * 70])),
}


@pytest.mark.parametrize("kind", INDEX_KEYS)
@PROPERTY
@given(data=st.data())
def test_sorted_index_is_a_sorted_set_with_canonical_storage(
    kind: str, data: st.DataObject
) -> None:
    codec, keys = INDEX_KEYS[kind]
    index: SortedIndex = Layout(ACCOUNT, "demo").sorted_index("set", codec)
    storage = MemoryStorage()
    model: set = set()
    for insert, key in data.draw(st.lists(st.tuples(st.booleans(), keys), max_size=30)):
        if insert:
            assert index.insert(storage, key) == (key not in model)
            model.add(key)
        else:
            assert index.remove(storage, key) == (key in model)
            model.discard(key)
        assert index.keys(storage) == tuple(sorted(model))
        assert index.length(storage) == len(model)
    for key in data.draw(st.lists(keys, max_size=6)):
        assert index.contains(storage, key) == (key in model)
    for rank, key in enumerate(sorted(model)):
        assert index.at(storage, rank) == key
    fresh = MemoryStorage()
    for key in sorted(model, reverse=True):  # another history, the same set
        index.insert(fresh, key)
    assert storage.words() == fresh.words()


def test_sorted_index_edges() -> None:
    index = Layout(ACCOUNT, "demo").sorted_index("set", UINT_KEY)
    storage = MemoryStorage()
    assert index.keys(storage) == ()
    assert not index.contains(storage, 0)
    assert not index.remove(storage, 0)
    with pytest.raises(IndexError):
        index.at(storage, 0)
    assert index.insert(storage, 0)  # the zero key is a real member, not "unset"
    assert index.contains(storage, 0) and index.keys(storage) == (0,)
    assert index.remove(storage, 0)
    assert storage.words() == ()
    storage.set_storage(ACCOUNT, index.length_slot, 2**40)
    with pytest.raises(StorageError):
        index.keys(storage)


@pytest.mark.parametrize("kind", INDEX_KEYS)
@PROPERTY
@given(data=st.data())
def test_assign_leaves_the_words_of_any_history_reaching_the_keys(
    kind: str, data: st.DataObject
) -> None:
    """`assign(keys)` over any index content gives the canonical words of `keys`; unsorted
    or repeated keys are refused; a queue is never assigned (its head is history)."""
    codec, keys = INDEX_KEYS[kind]
    layout = Layout(ACCOUNT, "demo")
    index: SortedIndex = layout.sorted_index("set", codec)
    storage = MemoryStorage()
    for key in data.draw(st.lists(keys, max_size=8)):
        index.insert(storage, key)
    wanted = sorted(set(data.draw(st.lists(keys, max_size=8))), key=codec.encode)
    index.assign(storage, wanted)
    fresh = MemoryStorage()
    for key in wanted:
        index.insert(fresh, key)
    assert storage.words() == fresh.words()
    assert index.keys(storage) == tuple(wanted)
    if wanted:
        with pytest.raises(StorageError):
            index.assign(storage, [*wanted, wanted[0]])
    with pytest.raises(StorageError):
        layout.sorted_queue("q", codec).assign(storage, wanted)


@pytest.mark.parametrize("queue", [False, True])
@PROPERTY
@given(data=st.data())
def test_replace_moves_one_key_and_writes_only_the_words_between(
    queue: bool, data: st.DataObject
) -> None:
    """`replace(old, new)` leaves the set with `new` instead of `old`, in canonical storage,
    and writes only the words from old's position to new's (plus nothing else); refusals
    change nothing."""
    layout = Layout(ACCOUNT, "demo")
    index: SortedIndex = (
        layout.sorted_queue("q", UINT_KEY) if queue else layout.sorted_index("set", UINT_KEY)
    )
    storage = MemoryStorage()
    model = sorted(data.draw(st.sets(st.integers(0, 60), min_size=1, max_size=25)))
    for key in model:
        index.insert(storage, key)
    if queue and len(model) > 1:
        index.remove(storage, model.pop(0))  # a head offset > 0
    for old, new in data.draw(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)))):
        before = {(a, slot): v for a, slot, v in storage.words()}
        if old not in model or (new in model and new != old):
            with pytest.raises(StorageError):
                index.replace(storage, old, new)
            assert {(a, slot): v for a, slot, v in storage.words()} == before
            continue
        index.replace(storage, old, new)
        start = model.index(old)
        model = sorted((set(model) - {old}) | {new})
        end = model.index(new)
        assert index.keys(storage) == tuple(model)
        after = {(a, slot): v for a, slot, v in storage.words()}
        changed = {w for w in before.keys() | after.keys() if before.get(w) != after.get(w)}
        assert len(changed) <= abs(end - start) + 1
        low, high = min(start, end), max(start, end) + 1
        assert tuple(index.at(storage, i) for i in range(low, high)) == tuple(model[low:high])
    fresh = MemoryStorage()
    for key in model:
        index.insert(fresh, key)
    if not queue:
        assert storage.words() == fresh.words()


@PROPERTY
@given(data=st.data())
def test_a_sorted_queue_is_a_sorted_set_drained_from_the_front(data: st.DataObject) -> None:
    """Any mix of inserts and removes keeps the same set as a sorted index; draining from
    the front writes only the head, the length and the vacated word; once empty, the queue
    leaves no words behind."""
    queue = Layout(ACCOUNT, "demo").sorted_queue("q", UINT_KEY)
    storage = MemoryStorage()
    model: set[int] = set()
    keys = st.integers(0, 40)
    for action, key in data.draw(
        st.lists(st.tuples(st.sampled_from(["insert", "remove", "drain"]), keys), max_size=40)
    ):
        if action == "insert":
            assert queue.insert(storage, key) == (key not in model)
            model.add(key)
        elif action == "remove":
            assert queue.remove(storage, key) == (key in model)
            model.discard(key)
        elif model:
            smallest = min(model)
            before = {(a, slot): v for a, slot, v in storage.words()}
            assert queue.remove(storage, smallest)
            model.discard(smallest)
            after = {(a, slot): v for a, slot, v in storage.words()}
            changed = {w for w in before.keys() | after.keys() if before.get(w) != after.get(w)}
            assert len(changed) <= 3  # head, length, the drained key's word
        assert queue.keys(storage) == tuple(sorted(model))
        for rank, member in enumerate(sorted(model)):
            assert queue.at(storage, rank) == member
    for key in sorted(model):
        assert queue.remove(storage, key)
    assert storage.words() == ()


# -- layouts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name"), [("demo", "Bad"), ("demo", "a/b"), ("demo", ""), ("Demo", "x"), ("1x", "y")]
)
def test_layout_refuses_bad_names(module: str, name: str) -> None:
    with pytest.raises(StorageError):
        Layout(ACCOUNT, module).item(name, UINT)


def test_layout_refuses_a_name_twice_even_for_another_kind() -> None:
    layout = Layout(ACCOUNT, "demo")
    layout.item("x", UINT)
    with pytest.raises(StorageError, match="declared twice"):
        layout.map("x", UINT_KEY, UINT)
    with pytest.raises(StorageError, match="declared twice"):
        layout.sorted_index("x", UINT_KEY)
    assert [d.namespace for d in layout.declarations] == ["demo/x"]


def all_layouts() -> list[Layout]:
    """Every Layout declared at module level anywhere in cybermiles_node."""
    found: dict[int, Layout] = {}
    for info in pkgutil.walk_packages(cybermiles_node.__path__, "cybermiles_node."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, Layout):
                found[id(value)] = value
    return sorted(found.values(), key=lambda layout: layout.module)


def test_no_two_declarations_of_the_node_collide() -> None:
    layouts = all_layouts()
    modules = [layout.module for layout in layouts]
    assert {"ledger", "params"} <= set(modules)  # the walk found the layouts we know of
    assert len(modules) == len(set(modules)), modules
    declarations = [d for layout in layouts for d in layout.declarations]
    namespaces = [d.namespace for d in declarations]
    assert len(namespaces) == len(set(namespaces))
    words = [(bytes(d.account), slot) for d in declarations for slot in d.fixed_slots()]
    assert len(words) == len(set(words))
    for layout in layouts:
        assert layout.account in addresses.SYSTEM_STORAGE_ACCOUNTS


def test_system_accounts_are_distinct_from_everything_else() -> None:
    accounts = addresses.SYSTEM_STORAGE_ACCOUNTS
    assert list(accounts) == sorted(set(accounts))
    assert not set(accounts) & set(CVM_PRECOMPILES)
    assert not set(accounts) & {addresses.MINT_ADDRESS, addresses.HOLD_ADDRESS}
    assert addresses.MINT_ADDRESS == bytes(20)
    assert addresses.HOLD_ADDRESS == b"\xff" * 20
    assert addresses.STAKING_ADDRESS.hex() == "0000000000000000000000000000000000c0de05"
    assert addresses.GOVERNANCE_ADDRESS.hex() == "0000000000000000000000000000000000c0de06"
    assert addresses.PARAMS_ADDRESS.hex() == "0000000000000000000000000000000000c0de07"
    assert addresses.SUPPLY_ADDRESS.hex() == "0000000000000000000000000000000000c0de08"


# -- one behaviour on every backend ---------------------------------------------------------------


def scripted_operations(storage: SystemStorage) -> tuple[object, ...]:
    """A fixed mix of every declaration kind and codec, with overwrites and removals."""
    layout = Layout(ACCOUNT, "script")
    counter = layout.item("counter", UINT)
    ratio = layout.item("ratio", RATIONAL)
    text = layout.item("text", STRING)
    owners = layout.map("owners", UINT_KEY, ADDRESS)
    flags = layout.map("flags", ADDRESS_KEY, BOOL)
    names = layout.sorted_index("names", STRING_KEY)
    counter.set(storage, 2**200)
    ratio.set(storage, Fraction(22, 7))
    text.set(storage, "x" * 100)
    text.set(storage, "short")  # stale data words must be zeroed on every backend
    for i in range(5):
        owners.set(storage, i, bytes([i + 1]) * 20)
        flags.set(storage, bytes([i]) * 20, i % 2 == 0)
    owners.delete(storage, 3)
    for name in ["delta", "alpha", "charlie", "a much longer name than thirty-two bytes", "bravo"]:
        names.insert(storage, name)
    names.remove(storage, "charlie")
    storage.set_balance(ACCOUNT, 12345)
    return (
        counter.get(storage),
        ratio.get(storage),
        text.get(storage),
        tuple(owners.get(storage, i) for i in range(5)),
        tuple(flags.get(storage, bytes([i]) * 20) for i in range(5)),
        names.keys(storage),
        storage.get_balance(ACCOUNT),
    )


def test_same_operations_give_the_same_values_and_state_root_on_every_backend() -> None:
    results = {name: scripted_operations(make()) for name, make in BACKENDS.items()}
    assert len(set(results.values())) == 1, results
    memory = MemoryStorage()
    scripted_operations(memory)
    ours, stock, cvm = state_db(), stock_prague(), cvm_state()
    for storage in (ours, stock, cvm):
        storage.set_code(ACCOUNT, STUB_CODE)
        scripted_operations(storage)
    roots = {ours.make_state_root(), stock.make_state_root(), cvm.make_state_root()}
    assert len(roots) == 1
    # ... and the words in the trie are exactly MemoryStorage's canonical content.
    for _, slot, value in memory.words():
        assert ours.get_storage(ACCOUNT, slot, from_journal=False) == value


# -- purity --------------------------------------------------------------------------------------

ALLOWED_IMPORTS = {
    "__future__", "abc", "collections", "dataclasses", "fractions", "functools", "math", "re",
    "typing", "eth_hash", "eth_typing", "genesis", "cybermiles_node",
}  # fmt: skip


PURE_MODULES = sorted(
    [*(ROOT / "cybermiles_node" / "system").glob("*.py"), ROOT / "cybermiles_node" / "params.py"]
)


@pytest.mark.parametrize("path", PURE_MODULES, ids=lambda path: path.name)
def test_system_modules_import_only_pure_code(path: Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            if node.module.startswith("cybermiles_node"):
                # Inside the node: only the system package (params.py is the only other module).
                assert node.module.startswith("cybermiles_node.system"), node.module
    assert {name.split(".")[0] for name in imported} <= ALLOWED_IMPORTS, imported
