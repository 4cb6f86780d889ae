"""Typed system storage: values, items, maps and sorted indices over 256-bit storage words.

Bird's-eye view
---------------
The params, staking and governance modules keep their state in ordinary account storage — the
storage of each module's own address (addresses.py) — so one state root covers it, eth_getProof
proves it, and a reverting EVM call that reached a module through its precompile undoes it for
free. This module is the only one that turns typed Python values into storage words:

- `SystemStorage`: the four methods the modules need (get/set a storage word, get/set a balance).
  Our `evm.state.StateDB` (blocks, admission) and py-evm's state objects (what a precompile sees
  as `computation.state`) both have them; `MemoryStorage` is a plain dict-backed one for pure tests.
- Value codecs `UINT`, `BOOL`, `ADDRESS`, `BYTES32`, `BYTES`, `STRING`, `RATIONAL`: a typed value
  ⇄ the words at a slot. All-zero words decode to the type's zero value (0, False, the zero
  address, 32 zero bytes, b"", "", Fraction(0)), as in Solidity, so an unwritten slot reads as
  the zero value and writing the zero value leaves no words behind.
- Key codecs `UINT_KEY`, `ADDRESS_KEY`, `BYTES32_KEY`, `STRING_KEY`, `BYTES_KEY`: a key ⇄ the bytes
  hashed into its slot (and the value codec that stores the key itself in a sorted index).
- `Layout(account, module)` declares a module's named storage: `item` (one value), `map` (values
  by key; not iterable, like a Solidity mapping), `sorted_index` (an iterable set of keys) and
  `sorted_queue` (a sorted index drained from its smallest key in O(1)).

Slot layout (keccak = keccak256; ns = UTF-8 of "<module>/<name>"; ints as 32-byte big-endian
words; slot arithmetic is modulo 2**256, as in the EVM)

| what                            | word(s)                                                       |
|---------------------------------|---------------------------------------------------------------|
| Item ns                         | the value at s = keccak(ns)                                   |
| Map ns, entry of key k          | the value at s = keccak(keccak(ns) ‖ key_bytes(k))            |
| SortedIndex ns                  | length at keccak(ns); element i at keccak(keccak(ns)) + i     |
| SortedQueue ns                  | as SortedIndex, plus a head h at keccak(ns ‖ "#head"):        |
|                                 | element i at keccak(keccak(ns)) + h + i                       |
| uint, bool, address, bytes32 at s | one word at s (bool 0/1; address right-aligned, as Solidity) |
| bytes, str at s                 | byte length at s; data word j at keccak(s) + j, the last one  |
|                                 | right-padded with zeros (str: its UTF-8)                      |
| rational at s                   | numerator at s, denominator at s + 1, in lowest terms         |
|                                 | (0 and 0 read as Fraction(0), the unwritten value)            |

Why this derivation. Hashing the namespace first gives every map a fixed 32-byte prefix, so
(namespace, key) ↦ preimage is injective for every key codec, variable-length keys included: two
different entries share a slot only through a keccak collision. Namespaces never repeat: a
`Layout` refuses a name twice, module and name match [a-z][a-z0-9_]* (so "/" splits them in one
way only), and a test checks all layouts of the node together. Multi-word values (a rational's
s + 1, array elements, bytes data) start at keccak outputs, so two of them overlap only if two
256-bit hashes fall within a few words of each other — the argument Solidity's layout rests on.

Canonical footprint. The words a value occupies depend only on the value, never on history:
writing a shorter bytes value zeroes the stale data words, removing a key from a sorted index
zeroes the vacated element, writing a zero value zeroes its words. So the state root depends on
what is stored, not on the order in which it was written: nodes that reach the same records by
different paths agree on the root. The one exception is a sorted queue's head offset: it counts
the keys drained from the front since the queue was last empty (it returns to 0 then), which is
the price of an O(1) drain.

Sorted index: a sorted array (length word + keccak-addressed elements, the layout of a Solidity
dynamic array) rather than a linked list. Iteration is a straight read of consecutive words with
no next-pointer records to keep consistent; element i is addressable (ranks, pagination); contains
is a binary search in O(log n) reads with no per-key side record; and the layout is canonical. The
price is that insert and remove shift the tail (O(n) writes), which suits sets read every block
and changed rarely (candidates, validators); a large set that churns should be split (e.g. one
index per candidate). `replace` moves one key to its new place shifting only the keys in
between: a ranking whose keys move a little at a time costs O(distance), not O(n).
Order is the bytewise order of the key encoding, which for every key codec
here is the natural order of the keys (numeric for uint, bytewise for address/bytes32/bytes, code
point order for str because UTF-8 preserves it). No iteration here depends on dict or set order.

EIP-161: an account with nonce 0, balance 0 and no code is "empty" and is deleted, storage and
all, when a transaction touches it. Every storage account of the system must therefore carry code
(genesis puts the precompile stub there); see addresses.py.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache
from math import gcd
from typing import Generic, Protocol, TypeVar, runtime_checkable

from eth_hash.auto import keccak
from eth_typing import Address

from cybermiles_node.system.errors import StorageError

WORD_MODULUS = 2**256
UINT256_MAX = WORD_MODULUS - 1
# Bytes/str values beyond this are refused on write and treated as corruption on read: the
# largest value we store (cube_pub_keys, a few PEM keys) is kilobytes, and a garbage length word
# must not make a reader loop over 2**256 slots.
MAX_STORED_BYTES = 1 << 20
# The same guard for a sorted index's length word.
MAX_INDEX_LENGTH = 1 << 32

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


@runtime_checkable
class SystemStorage(Protocol):
    """Account storage words and balances: what our StateDB and py-evm's states both offer.

    Positional-only, so implementations may name their parameters as they like (StateDB and
    py-evm's BaseState also take an optional `from_journal` on get_storage, which this ignores).
    """

    def get_storage(self, address: Address, slot: int, /) -> int: ...

    def set_storage(self, address: Address, slot: int, value: int, /) -> None: ...

    def get_balance(self, address: Address, /) -> int: ...

    def set_balance(self, address: Address, balance: int, /) -> None: ...


class MemoryStorage:
    """A `SystemStorage` in two dicts, for pure tests and simulations.

    Zero words and zero balances are not kept, so `words()` is the canonical content (what a
    storage trie would hold).
    """

    def __init__(self) -> None:
        self._words: dict[tuple[bytes, int], int] = {}
        self._balances: dict[bytes, int] = {}

    def get_storage(self, address: Address, slot: int, /) -> int:
        return self._words.get((bytes(address), _check_word(slot, "slot")), 0)

    def set_storage(self, address: Address, slot: int, value: int, /) -> None:
        key = (bytes(address), _check_word(slot, "slot"))
        if _check_word(value, "value"):
            self._words[key] = value
        else:
            self._words.pop(key, None)

    def get_balance(self, address: Address, /) -> int:
        return self._balances.get(bytes(address), 0)

    def set_balance(self, address: Address, balance: int, /) -> None:
        if _check_word(balance, "balance"):
            self._balances[bytes(address)] = balance
        else:
            self._balances.pop(bytes(address), None)

    def words(self) -> tuple[tuple[bytes, int, int], ...]:
        """Every non-zero word as (account, slot, value), sorted."""
        words = ((account, slot, value) for (account, slot), value in self._words.items())
        return tuple(sorted(words))

    def balances(self) -> tuple[tuple[bytes, int], ...]:
        """Every non-zero balance as (account, balance), sorted by account."""
        return tuple(sorted(self._balances.items()))


def _check_word(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT256_MAX:
        raise StorageError(f"{what} must be an integer in [0, 2**256), got {value!r}")
    return value


@lru_cache(maxsize=1 << 16)
def word_slot(data: bytes) -> int:
    """keccak256(data) as a slot number. Memoised: the slots of hot records (candidates, the
    set's accumulators, index heads) are derived again in every block."""
    return int.from_bytes(keccak(data), "big")


def _offset(slot: int, offset: int) -> int:
    # Slots wrap around like the EVM's; StateDB refuses slots >= 2**256.
    return (slot + offset) % WORD_MODULUS


def _slot_bytes(slot: int) -> bytes:
    return slot.to_bytes(32, "big")


# -- value codecs ----------------------------------------------------------------------------------


class Codec(ABC, Generic[T]):
    """How a value of type T sits in storage at a slot.

    `width` is the number of consecutive words from the slot that the value occupies; variable
    data (bytes) lives further away, at keccak-derived slots. `zero` is the value the all-zero
    words decode to.
    """

    name: str
    width: int
    zero: T

    @abstractmethod
    def read(self, storage: SystemStorage, account: Address, slot: int) -> T: ...

    @abstractmethod
    def write(self, storage: SystemStorage, account: Address, slot: int, value: T) -> None: ...

    def clear(self, storage: SystemStorage, account: Address, slot: int) -> None:
        """Zero every word the stored value occupies."""
        self.write(storage, account, slot, self.zero)

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


class WordCodec(Codec[T]):
    """A value that is one word: `encode` checks it and returns the word, `decode` the reverse."""

    width = 1

    def __init__(
        self, name: str, zero: T, encode: Callable[[T], int], decode: Callable[[int], T]
    ) -> None:
        self.name = name
        self.zero = zero
        self._encode = encode
        self._decode = decode

    def encode(self, value: T) -> int:
        return self._encode(value)

    def decode(self, word: int) -> T:
        return self._decode(word)

    def read(self, storage: SystemStorage, account: Address, slot: int) -> T:
        return self._decode(storage.get_storage(account, slot))

    def write(self, storage: SystemStorage, account: Address, slot: int, value: T) -> None:
        storage.set_storage(account, slot, self._encode(value))


def _encode_uint(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StorageError(f"uint: expected an int, got {type(value).__name__}")
    if not 0 <= value <= UINT256_MAX:
        raise StorageError(f"uint: {value} is outside [0, 2**256)")
    return value


def _decode_uint(word: int) -> int:
    return word


def _encode_bool(value: bool) -> int:
    if not isinstance(value, bool):
        raise StorageError(f"bool: expected a bool, got {type(value).__name__}")
    return int(value)


def _decode_bool(word: int) -> bool:
    if word not in (0, 1):
        raise StorageError(f"bool: stored word {word:#x} is neither 0 nor 1")
    return word == 1


def _fixed_bytes(value: bytes, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise StorageError(f"{what}: expected {size} bytes, got {value!r}")
    return value


def _encode_address(value: bytes) -> int:
    return int.from_bytes(_fixed_bytes(value, 20, "address"), "big")


def _decode_address(word: int) -> bytes:
    if word >> 160:
        raise StorageError(f"address: stored word {word:#x} has non-zero high bytes")
    return word.to_bytes(20, "big")


def _encode_bytes32(value: bytes) -> int:
    return int.from_bytes(_fixed_bytes(value, 32, "bytes32"), "big")


def _decode_bytes32(word: int) -> bytes:
    return word.to_bytes(32, "big")


UINT: WordCodec[int] = WordCodec("uint", 0, _encode_uint, _decode_uint)
BOOL: WordCodec[bool] = WordCodec("bool", False, _encode_bool, _decode_bool)
ADDRESS: WordCodec[bytes] = WordCodec("address", bytes(20), _encode_address, _decode_address)
BYTES32: WordCodec[bytes] = WordCodec("bytes32", bytes(32), _encode_bytes32, _decode_bytes32)


class BytesCodec(Codec[bytes]):
    """Variable-length bytes: the length at the slot, the data at keccak(slot) + j."""

    name = "bytes"
    width = 1
    zero = b""

    def read(self, storage: SystemStorage, account: Address, slot: int) -> bytes:
        get = storage.get_storage
        length = get(account, slot)
        if not length:
            return b""
        if length > MAX_STORED_BYTES:
            raise StorageError(f"bytes: stored length {length} exceeds {MAX_STORED_BYTES}")
        data_slot = word_slot(_slot_bytes(slot))
        words = b"".join(
            [
                get(account, _offset(data_slot, j)).to_bytes(32, "big")
                for j in range(_words_for(length))
            ]
        )
        if any(words[length:]):
            # Our writer always pads with zeros: anything else was not written by this codec.
            raise StorageError("bytes: non-zero padding after the stored length")
        return words[:length]

    def write(self, storage: SystemStorage, account: Address, slot: int, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise StorageError(f"bytes: expected bytes, got {type(value).__name__}")
        if len(value) > MAX_STORED_BYTES:
            raise StorageError(f"bytes: {len(value)} bytes exceed the {MAX_STORED_BYTES} limit")
        old_length = storage.get_storage(account, slot)
        old_words = _words_for(min(old_length, MAX_STORED_BYTES))
        new_words = _words_for(len(value))
        data_slot = word_slot(_slot_bytes(slot))
        padded = value.ljust(new_words * 32, b"\x00")
        for j in range(new_words):
            word = int.from_bytes(padded[32 * j : 32 * j + 32], "big")
            storage.set_storage(account, _offset(data_slot, j), word)
        # Zero what a longer old value left behind, so the footprint depends on the value only.
        for j in range(new_words, old_words):
            storage.set_storage(account, _offset(data_slot, j), 0)
        storage.set_storage(account, slot, len(value))


def _words_for(length: int) -> int:
    return (length + 31) // 32


BYTES = BytesCodec()


class StringCodec(Codec[str]):
    """A str as its UTF-8 bytes in the `BYTES` layout."""

    name = "str"
    width = 1
    zero = ""

    def read(self, storage: SystemStorage, account: Address, slot: int) -> str:
        data = BYTES.read(storage, account, slot)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise StorageError(f"str: stored bytes are not UTF-8 ({error})") from None

    def write(self, storage: SystemStorage, account: Address, slot: int, value: str) -> None:
        BYTES.write(storage, account, slot, _utf8(value))


def _utf8(value: str) -> bytes:
    if not isinstance(value, str):
        raise StorageError(f"str: expected a str, got {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise StorageError(f"str: not encodable as UTF-8 ({error})") from None


STRING = StringCodec()


class RationalCodec(Codec[Fraction]):
    """A non-negative Fraction (SPEC §3 rationals) exactly: numerator at s, denominator at s + 1."""

    name = "rational"
    width = 2
    zero = Fraction(0)

    def read(self, storage: SystemStorage, account: Address, slot: int) -> Fraction:
        numerator = storage.get_storage(account, slot)
        denominator = storage.get_storage(account, _offset(slot, 1))
        if denominator == 0:
            if numerator:
                raise StorageError(f"rational: stored {numerator}/0")
            return Fraction(0)  # never written (a written 0 is 0/1)
        if gcd(numerator, denominator) != 1:
            raise StorageError(f"rational: stored {numerator}/{denominator} is not in lowest terms")
        return Fraction(numerator, denominator)

    def write(self, storage: SystemStorage, account: Address, slot: int, value: Fraction) -> None:
        if not isinstance(value, Fraction):
            raise StorageError(f"rational: expected a Fraction, got {type(value).__name__}")
        if value < 0 or value.denominator > UINT256_MAX or value.numerator > UINT256_MAX:
            raise StorageError(f"rational: {value} is negative or too large for two words")
        if value == 0:
            numerator, denominator = 0, 0  # the zero value leaves no words, like every codec
        else:
            numerator, denominator = value.numerator, value.denominator  # lowest terms
        storage.set_storage(account, slot, numerator)
        storage.set_storage(account, _offset(slot, 1), denominator)


RATIONAL = RationalCodec()


# -- key codecs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyCodec(Generic[K]):
    """A key type: its bytes in slot derivation and sort order, and how a sorted index stores it.

    `encode` must be injective; the bytewise order of encodings is the sort order of an index.
    `word_ordered`: the key is stored as one word (a `WordCodec`) whose numeric order is that
    order, so a search compares stored words without decoding them.
    """

    name: str
    encode: Callable[[K], bytes]
    value: Codec[K]
    word_ordered: bool = False


def _uint_key(key: int) -> bytes:
    return _encode_uint(key).to_bytes(32, "big")


def _address_key(key: bytes) -> bytes:
    return _fixed_bytes(key, 20, "address key")


def _bytes32_key(key: bytes) -> bytes:
    return _fixed_bytes(key, 32, "bytes32 key")


def _bytes_key(key: bytes) -> bytes:
    if not isinstance(key, bytes):
        raise StorageError(f"bytes key: expected bytes, got {type(key).__name__}")
    return key


# Big-endian words: numeric order is the bytewise order of the key bytes (an address is
# right-aligned, all 20-byte keys alike).
UINT_KEY: KeyCodec[int] = KeyCodec("uint", _uint_key, UINT, word_ordered=True)
ADDRESS_KEY: KeyCodec[bytes] = KeyCodec("address", _address_key, ADDRESS, word_ordered=True)
BYTES32_KEY: KeyCodec[bytes] = KeyCodec("bytes32", _bytes32_key, BYTES32, word_ordered=True)
STRING_KEY: KeyCodec[str] = KeyCodec("str", _utf8, STRING)
BYTES_KEY: KeyCodec[bytes] = KeyCodec("bytes", _bytes_key, BYTES)


# -- declared storage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item(Generic[T]):
    """One value at the slot keccak(namespace) of `account`."""

    account: Address
    namespace: str
    codec: Codec[T]

    @cached_property
    def slot(self) -> int:
        return word_slot(self.namespace.encode())

    def fixed_slots(self) -> tuple[int, ...]:
        """The head words this declaration owns (for collision checks)."""
        return tuple(_offset(self.slot, i) for i in range(self.codec.width))

    def get(self, storage: SystemStorage) -> T:
        return self.codec.read(storage, self.account, self.slot)

    def set(self, storage: SystemStorage, value: T) -> None:
        self.codec.write(storage, self.account, self.slot, value)

    def clear(self, storage: SystemStorage) -> None:
        self.codec.clear(storage, self.account, self.slot)


@dataclass(frozen=True)
class Map(Generic[K, V]):
    """Values by key at keccak(keccak(namespace) ‖ key bytes); unset keys read as the zero value.

    Not iterable (its keys are hashed away): pair it with a `SortedIndex` of its keys.
    """

    account: Address
    namespace: str
    key: KeyCodec[K]
    value: Codec[V]

    @cached_property
    def prefix(self) -> bytes:
        return keccak(self.namespace.encode())

    def fixed_slots(self) -> tuple[int, ...]:
        return ()  # every word of a map is at a key-derived slot

    def slot(self, key: K) -> int:
        return word_slot(self.prefix + self.key.encode(key))

    def get(self, storage: SystemStorage, key: K) -> V:
        return self.value.read(storage, self.account, self.slot(key))

    def set(self, storage: SystemStorage, key: K, value: V) -> None:
        self.value.write(storage, self.account, self.slot(key), value)

    def delete(self, storage: SystemStorage, key: K) -> None:
        self.value.clear(storage, self.account, self.slot(key))


@dataclass(frozen=True)
class SortedIndex(Generic[K]):
    """A set of keys as a sorted array: length at keccak(ns), key i at keccak(keccak(ns)) + i.

    See the module docstring for why an array and what the operations cost.
    """

    account: Address
    namespace: str
    key: KeyCodec[K]

    @cached_property
    def length_slot(self) -> int:
        return word_slot(self.namespace.encode())

    @cached_property
    def elements_slot(self) -> int:
        return word_slot(_slot_bytes(self.length_slot))

    def fixed_slots(self) -> tuple[int, ...]:
        return (self.length_slot,)

    def _element_slot(self, index: int) -> int:
        return _offset(self.elements_slot, index * self.key.value.width)

    def length(self, storage: SystemStorage) -> int:
        length = storage.get_storage(self.account, self.length_slot)
        if length > MAX_INDEX_LENGTH:
            raise StorageError(f"{self.namespace}: stored length {length} is not plausible")
        return length

    def at(self, storage: SystemStorage, index: int) -> K:
        """The key of rank `index` (0 = smallest)."""
        if not 0 <= index < self.length(storage):
            raise IndexError(f"{self.namespace}: index {index} out of range")
        return self._read(storage, index)

    def keys(self, storage: SystemStorage) -> tuple[K, ...]:
        """All keys in ascending order (a tuple: safe to keep while the index changes)."""
        return tuple(self._read(storage, i) for i in range(self.length(storage)))

    def contains(self, storage: SystemStorage, key: K) -> bool:
        return self._search(storage, key, self.length(storage))[1]

    def position(self, storage: SystemStorage, key: K) -> tuple[int, bool]:
        """(the rank `key` has or would have, whether it is there): O(log n) reads."""
        return self._search(storage, key, self.length(storage))

    def insert(self, storage: SystemStorage, key: K) -> bool:
        """Add `key`; False (and no change) if it was already there."""
        length = self.length(storage)
        position, found = self._search(storage, key, length)
        if found:
            return False
        for i in range(length, position, -1):  # shift the tail up, from the end
            self._write(storage, i, self._read(storage, i - 1))
        self._write(storage, position, key)
        storage.set_storage(self.account, self.length_slot, length + 1)
        return True

    def remove(self, storage: SystemStorage, key: K) -> bool:
        """Remove `key`; False (and no change) if it was not there."""
        length = self.length(storage)
        position, found = self._search(storage, key, length)
        if not found:
            return False
        for i in range(position, length - 1):  # shift the tail down
            self._write(storage, i, self._read(storage, i + 1))
        self._clear(storage, length - 1)
        storage.set_storage(self.account, self.length_slot, length - 1)
        return True

    def assign(self, storage: SystemStorage, keys: Sequence[K]) -> None:
        """Make the index hold exactly `keys` (ascending, distinct: StorageError otherwise).
        The words are those any sequence of inserts and removals reaching the same keys leaves
        (the layout is canonical), written once each: a key already at its place is not
        rewritten, and the vacated tail is zeroed."""
        encode = self.key.encode
        codes = [encode(key) for key in keys]
        if any(a >= b for a, b in zip(codes, codes[1:], strict=False)):
            raise StorageError(f"{self.namespace}: assigned keys are not ascending and distinct")
        length = self.length(storage)
        for index, key in enumerate(keys):
            self._write(storage, index, key)
        for index in range(len(keys), length):
            self._clear(storage, index)
        storage.set_storage(self.account, self.length_slot, len(keys))

    def replace(self, storage: SystemStorage, old: K, new: K) -> None:
        """Replace `old` by `new` where `new` belongs. Only the keys between the two
        positions shift, so a key that moves a little (a ranking after a small change) costs a
        few words, not the tail. `old` must be there and `new` must not (StorageError)."""
        length = self.length(storage)
        position, found = self._search(storage, old, length)
        if not found:
            raise StorageError(f"{self.namespace}: no key {old!r} to replace")
        target, encode = self.key.encode(new), self.key.encode
        if target == encode(old):
            return
        step = 1 if target > encode(old) else -1
        index = position
        passed: list[K] = []  # the keys `new` moves past, in walking order
        while 0 <= index + step < length:
            neighbour = self._read(storage, index + step)
            code = encode(neighbour)
            if code == target:
                raise StorageError(f"{self.namespace}: key {new!r} is already there")
            if (code > target) if step == 1 else (code < target):
                break
            passed.append(neighbour)
            index += step
        for offset, key in enumerate(passed):  # each passed key moves one place back
            self._write(storage, position + offset * step, key)
        self._write(storage, index, new)

    def _search(self, storage: SystemStorage, key: K, length: int) -> tuple[int, bool]:
        """(first position whose key is >= `key`, whether that key equals it)."""
        codec = self.key.value
        if self.key.word_ordered and isinstance(codec, WordCodec):
            return self._search_words(storage, codec.encode(key), length)
        target = self.key.encode(key)
        low, high = 0, length
        while low < high:
            middle = (low + high) // 2
            if self.key.encode(self._read(storage, middle)) < target:
                low = middle + 1
            else:
                high = middle
        found = low < length and self.key.encode(self._read(storage, low)) == target
        return low, found

    def _search_words(self, storage: SystemStorage, target: int, length: int) -> tuple[int, bool]:
        """`_search` over stored words (a word-ordered key codec): no decoding."""
        account, low, high = self.account, 0, length
        while low < high:
            middle = (low + high) // 2
            if storage.get_storage(account, self._slot_of(storage, middle)) < target:
                low = middle + 1
            else:
                high = middle
        found = low < length and storage.get_storage(account, self._slot_of(storage, low)) == target
        return low, found

    def _slot_of(self, storage: SystemStorage, index: int) -> int:
        """The first word of the key of rank `index`."""
        return self._element_slot(index)

    def _read(self, storage: SystemStorage, index: int) -> K:
        return self.key.value.read(storage, self.account, self._slot_of(storage, index))

    def _write(self, storage: SystemStorage, index: int, key: K) -> None:
        self.key.value.write(storage, self.account, self._slot_of(storage, index), key)

    def _clear(self, storage: SystemStorage, index: int) -> None:
        self.key.value.clear(storage, self.account, self._slot_of(storage, index))


@dataclass(frozen=True)
class SortedQueue(SortedIndex[K]):
    """A `SortedIndex` consumed from its smallest key: the array starts at a head offset
    (at keccak(ns + "#head"): no declared name holds "#") that removing the smallest key
    advances, so that removal and an insertion past the largest key are O(1) writes; any other
    insertion or removal shifts the keys after it, as in `SortedIndex`. Made for queues kept in
    key order and drained from the front (the unstake queue, by maturity height)."""

    @cached_property
    def head_slot(self) -> int:
        return word_slot((self.namespace + "#head").encode())

    def fixed_slots(self) -> tuple[int, ...]:
        return (self.length_slot, self.head_slot)

    def _head(self, storage: SystemStorage) -> int:
        return storage.get_storage(self.account, self.head_slot)

    def _slot_of(self, storage: SystemStorage, index: int) -> int:
        return self._element_slot(self._head(storage) + index)

    def assign(self, storage: SystemStorage, keys: Sequence[K]) -> None:
        """Not for a queue: its head offset depends on its history (see the class)."""
        raise StorageError(f"{self.namespace}: a sorted queue cannot be assigned")

    def remove(self, storage: SystemStorage, key: K) -> bool:
        length = self.length(storage)
        position, found = self._search(storage, key, length)
        if not found or position > 0:
            return found and super().remove(storage, key)
        head = self._head(storage)
        self._clear(storage, 0)
        # An empty queue starts again at offset 0: its words are all zero again.
        storage.set_storage(self.account, self.head_slot, head + 1 if length > 1 else 0)
        storage.set_storage(self.account, self.length_slot, length - 1)
        return True


class Declaration(Protocol):
    """What a `Layout` records of each declaration (items, maps and indices all have it)."""

    @property
    def account(self) -> Address: ...

    @property
    def namespace(self) -> str: ...

    def fixed_slots(self) -> tuple[int, ...]: ...


_D = TypeVar("_D", bound=Declaration)


class Layout:
    """The named storage of one module at one account.

    Declare everything at import time, at module level (`LAYOUT = Layout(ADDR, "staking")`,
    `CANDIDATES = LAYOUT.map(...)`): the collision test finds layouts there. A name can be
    declared once; the namespace of a declaration is "<module>/<name>".
    """

    def __init__(self, account: Address, module: str) -> None:
        if not isinstance(account, bytes) or len(account) != 20:
            raise StorageError(f"layout {module!r}: account must be 20 bytes")
        if not _NAME_RE.fullmatch(module):
            raise StorageError(f"layout: module name {module!r} must match {_NAME_RE.pattern}")
        self.account = account
        self.module = module
        self._declared: dict[str, Declaration] = {}

    def item(self, name: str, codec: Codec[T]) -> Item[T]:
        return self._declare(name, Item(self.account, self._namespace(name), codec))

    def map(self, name: str, key: KeyCodec[K], value: Codec[V]) -> Map[K, V]:
        return self._declare(name, Map(self.account, self._namespace(name), key, value))

    def sorted_index(self, name: str, key: KeyCodec[K]) -> SortedIndex[K]:
        return self._declare(name, SortedIndex(self.account, self._namespace(name), key))

    def sorted_queue(self, name: str, key: KeyCodec[K]) -> SortedQueue[K]:
        return self._declare(name, SortedQueue(self.account, self._namespace(name), key))

    @property
    def declarations(self) -> tuple[Declaration, ...]:
        """Everything declared, sorted by namespace."""
        return tuple(self._declared[name] for name in sorted(self._declared))

    def _namespace(self, name: str) -> str:
        if not _NAME_RE.fullmatch(name):
            raise StorageError(f"{self.module}: name {name!r} must match {_NAME_RE.pattern}")
        if name in self._declared:
            raise StorageError(f"{self.module}: {name!r} is declared twice")
        return f"{self.module}/{name}"

    def _declare(self, name: str, declaration: _D) -> _D:
        self._declared[name] = declaration
        return declaration

    def __repr__(self) -> str:
        return f"Layout({self.account.hex()}, {self.module!r}, {len(self._declared)} names)"
