"""A flat key-value copy of the head state beside the trie, for block execution.

Why: a cold read through the Merkle trie walks ~6 nodes (a database read and an RLP decode
each). Block execution reads the head state only, so, like geth's "snapshot" and Erigon/reth's
"plain state", we keep that one state a second time as plain keys: one database read per
account or slot. The tries stay the truth: state roots and proofs are computed from them, and
every other state (older blocks, RPC reads) is read through them.

Layout, in the same database as the trie nodes (keys never collide with them: a node or code
is stored under its 32-byte keccak, and no key here is 32 bytes long; the chain's own prefixes
are in cybermiles_node/application/schema.py, which lists these too):

| key                                                    | value                              |
|--------------------------------------------------------|------------------------------------|
| b"f:root"                                              | the state root the snapshot is of  |
| b"fa" + address(20)                                    | the RLP account, as the account    |
|                                                        | trie stores it; absent: no account |
| b"fi" + address(20)                                    | be32 incarnation; absent: 0        |
| b"fs" + address(20) + be32(incarnation) + keccak(be256(slot)) | minimal big-endian value;   |
|                                                        | absent: 0                          |
| b"fp" + keccak(be256(slot))                            | be256(slot): the slot's preimage,  |
|                                                        | only when the database records them |

The slot is keyed by keccak(slot), the key the storage trie uses: it is computed for the trie
anyway, it has a fixed length, and a snapshot can be checked against (or rebuilt from) trie
leaves, which know only the hashed key.

Incarnations make a wipe O(1). SELFDESTRUCT (lity profile), EIP-161 deletion, `delete_account`
and `delete_storage` empty an account's storage, which may hold any number of slots; deleting
them would mean iterating the database inside the block's write batch. Instead the account's
incarnation goes up by one and every storage key embeds it, so the old entries become
unreachable. They are LEFT BEHIND as garbage (nothing deletes them yet; a compaction could
iterate b"fs" + address and drop the entries of older incarnations; a prefix scan also meets
32-byte node and code hashes that start with the same bytes: their length tells them apart).
The incarnation is bumped only when the wipe hides something, i.e. when the snapshot's account
had a storage root other than the blank one: a live entry exists under the current incarnation
exactly when the storage trie is non-empty, so an account without storage (an EIP-161 deletion
of an empty coinbase, every block) costs no write. An incarnation key is never deleted: an
account recreated after its deletion must not see its old slots again.

Preimages: the tries and the snapshot know a slot only by its hash, so nothing above could list a
contract's storage by slot. A devnet (state dumps, `anvil_dumpState`) opts in with
`OverlayDB(..., slot_preimages=True)`: every slot a block writes then leaves `b"fp" + keccak(slot)
-> slot` beside its entry (geth's preimage store, for slots only: accounts are keyed by address
here already). `accounts`, `storage` and `slot_preimage` read the head state back by address and
slot.

Consistency: `FlatSnapshot.write` puts the changes of one state transition and the new marker
into the same database as the trie nodes; the chain hands a block's `OverlayDB` and commits it
in one write batch with the block, so on disk the marker always names the state the entries
describe. A `StateDB` uses the snapshot only if its database opts in (`flat_snapshot`, set by
the chain for the block pipeline and genesis, never for RPC reads, which run in other threads
while the snapshot moves at each commit) AND the marker equals the root it was opened at
(`snapshot_valid`). An empty database without a marker is valid at the blank root (the empty
state is complete): genesis creates the snapshot that way. A database made before the snapshot
existed (no marker, a non-blank head) never passes the check, so it is read through the trie
and never gets a marker. The caller commits at most one child of a snapshot state (the chain
does: a block commits only on the head); two children built on the same head each read the
same snapshot and write their changes into their own overlay, and only the committed one lands.
If a block were ever committed without the snapshot, the marker would fall behind and the
snapshot would never be used again (slower, never wrong). A devnet rolls the snapshot back with
its blocks (`Chain.rollback`): each block's batch keeps the prior values of the snapshot keys it
writes (`is_snapshot_key`), which a rollback writes back, newest block first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import rlp
from eth.constants import BLANK_ROOT_HASH

MARKER_KEY = b"f:root"
ACCOUNT_PREFIX = b"fa"
INCARNATION_PREFIX = b"fi"
STORAGE_PREFIX = b"fs"
PREIMAGE_PREFIX = b"fp"
# Every key family of the snapshot (the marker is a whole key), for the schema's collision check.
KEY_PREFIXES = (MARKER_KEY, ACCOUNT_PREFIX, INCARNATION_PREFIX, STORAGE_PREFIX, PREIMAGE_PREFIX)
_ADDRESS_SIZE = 20
_HASH_SIZE = 32

_MAX_INCARNATION = 2**32 - 1


def account_key(address: bytes) -> bytes:
    return ACCOUNT_PREFIX + address


def incarnation_key(address: bytes) -> bytes:
    return INCARNATION_PREFIX + address


def storage_key(address: bytes, incarnation: int, hashed_slot: bytes) -> bytes:
    return STORAGE_PREFIX + address + encode_incarnation(incarnation) + hashed_slot


def preimage_key(hashed_slot: bytes) -> bytes:
    return PREIMAGE_PREFIX + hashed_slot


def encode_incarnation(incarnation: int) -> bytes:
    if not 0 <= incarnation <= _MAX_INCARNATION:
        raise ValueError(f"incarnation out of range: {incarnation}")
    return incarnation.to_bytes(4, "big")


def decode_incarnation(value: bytes | None) -> int:
    return 0 if value is None else int.from_bytes(value, "big")


def encode_value(value: int) -> bytes:
    """Minimal big-endian bytes; 0 is never stored (absent means 0)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def decode_value(value: bytes | None) -> int:
    return int.from_bytes(value, "big") if value else 0


def is_snapshot_key(key: bytes) -> bool:
    """Whether `key` belongs to the snapshot (never a 32-byte node or code hash, whatever its
    first bytes)."""
    return len(key) != 32 and key.startswith(KEY_PREFIXES)


def snapshot_valid(db: Any, state_root: bytes) -> bool:
    """Whether a `StateDB` opened on `db` at `state_root` may read the snapshot."""
    if not getattr(db, "flat_snapshot", False):
        return False
    marker = db.get(MARKER_KEY)
    if marker is None:
        return state_root == BLANK_ROOT_HASH
    return bytes(marker) == state_root


def _storage_root(encoded_account: bytes) -> bytes:
    return bytes(rlp.decode(encoded_account)[2])


# -- reading the whole head state back (state dumps) ---------------------------------------
# A prefix scan also meets 32-byte node and code hashes that start with the same two bytes:
# the length of each family's keys tells them apart.


def accounts(db: Any) -> Iterator[tuple[bytes, bytes]]:
    """(address, RLP account) of every account of the snapshot's state, by address."""
    size = len(ACCOUNT_PREFIX) + _ADDRESS_SIZE
    for key, value in db.iterate_prefix(ACCOUNT_PREFIX):
        if len(key) == size:
            yield bytes(key[len(ACCOUNT_PREFIX) :]), bytes(value)


def storage(db: Any, address: bytes) -> Iterator[tuple[bytes, int]]:
    """(keccak(slot), value) of the account's live slots (its current incarnation)."""
    prefix = (
        STORAGE_PREFIX
        + address
        + encode_incarnation(decode_incarnation(db.get(incarnation_key(address))))
    )
    for key, value in db.iterate_prefix(prefix):
        if len(key) == len(prefix) + _HASH_SIZE and value:
            yield bytes(key[len(prefix) :]), decode_value(bytes(value))


def slot_preimage(db: Any, hashed_slot: bytes) -> int | None:
    """The slot whose keccak is `hashed_slot`, if the database recorded it."""
    value = db.get(preimage_key(hashed_slot))
    return None if value is None else int.from_bytes(value, "big")


class FlatSnapshot:
    """Reads of the snapshot a `StateDB` was opened on, and the changes it will write.

    Changes accumulate across several state roots (`set_account`, `set_slot`, `wipe`) and are
    written by `write`; until then reads see them, so the view is always the StateDB's latest
    state root."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.records_preimages: bool = getattr(db, "slot_preimages", False)
        self._preimages: dict[bytes, int] = {}
        self._incarnations: dict[bytes, bytes] = {}  # as in the database, be32
        self._accounts: dict[bytes, bytes | None] = {}  # RLP account, None: deleted
        self._slots: dict[bytes, dict[bytes, int]] = {}  # address -> keccak(slot) -> value
        self._wiped: set[bytes] = set()  # storage emptied since the last write

    # -- reads --------------------------------------------------------------------------
    def account(self, address: bytes) -> bytes | None:
        """The RLP account, or None when there is no account."""
        if address in self._accounts:
            return self._accounts[address]
        value = self._db.get(account_key(address))
        return None if value is None else bytes(value)

    def storage(self, address: bytes, hashed_slot: bytes) -> int:
        slots = self._slots.get(address)
        if slots is not None and hashed_slot in slots:
            return slots[hashed_slot]
        if address in self._wiped:
            return 0
        key = STORAGE_PREFIX + address + self._incarnation(address) + hashed_slot
        return decode_value(self._db.get(key))

    def _incarnation(self, address: bytes) -> bytes:
        incarnation = self._incarnations.get(address)
        if incarnation is None:
            stored = self._db.get(incarnation_key(address))
            incarnation = self._incarnations[address] = bytes(stored or b"\x00" * 4)
        return incarnation

    # -- changes ------------------------------------------------------------------------
    def set_account(self, address: bytes, encoded: bytes | None) -> None:
        self._accounts[address] = encoded

    def set_slot(self, address: bytes, hashed_slot: bytes, value: int) -> None:
        self._slots.setdefault(address, {})[hashed_slot] = value

    def note_preimages(self, pairs: Iterable[tuple[bytes, int]]) -> None:
        """(keccak(slot), slot) of slots written, kept when the database records preimages."""
        if self.records_preimages:
            self._preimages.update(pairs)

    def wipe(self, address: bytes) -> None:
        """The account's storage is empty from now on: slot changes made before are void."""
        self._wiped.add(address)
        self._slots.pop(address, None)

    def write(self, state_root: bytes) -> None:
        """Put every change and the new marker into the database (the block's overlay), in a
        deterministic order."""
        db = self._db
        for address in sorted(self._wiped):
            if self._has_storage_in_db(address):
                incarnation = decode_incarnation(self._incarnation(address)) + 1
                encoded = encode_incarnation(incarnation)
                db[incarnation_key(address)] = encoded
                self._incarnations[address] = encoded
        for address in sorted(self._accounts):
            _put(db, account_key(address), self._accounts[address])
        for address in sorted(self._slots):
            prefix = STORAGE_PREFIX + address + self._incarnation(address)
            slots = self._slots[address]
            for hashed_slot in sorted(slots):
                value = slots[hashed_slot]
                _put(db, prefix + hashed_slot, encode_value(value) if value else None)
        for hashed_slot in sorted(self._preimages):
            db[preimage_key(hashed_slot)] = self._preimages[hashed_slot].to_bytes(32, "big")
        db[MARKER_KEY] = state_root
        self._preimages = {}
        self._accounts = {}
        self._slots = {}
        self._wiped = set()

    def _has_storage_in_db(self, address: bytes) -> bool:
        """Whether entries live under the account's current incarnation: exactly when the
        snapshot's account has a non-blank storage root (runs before the new accounts are
        written)."""
        encoded = self._db.get(account_key(address))
        return encoded is not None and _storage_root(bytes(encoded)) != BLANK_ROOT_HASH


def _put(db: Any, key: bytes, value: bytes | None) -> None:
    if value is not None:
        db[key] = value
        return
    try:
        del db[key]
    except KeyError:  # a database that refuses to delete what it lacks (not the overlay)
        pass
