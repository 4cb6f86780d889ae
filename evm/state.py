"""`StateDB`: py-evm's account database, rebuilt for one-batch-per-block state roots.

py-evm's own `AccountDB` pushes every change through several journaling layers and updates a
`HexaryTrie` key by key, which makes the state root the most expensive part of a block. This
class implements the same `AccountDatabaseAPI` with:

- a flat cache of account tuples `(nonce, balance, storage_root, code_hash)` and storage slots,
  loaded lazily from the trie;
- an undo journal: every change appends the value it replaced, a checkpoint is a journal length,
  `discard` pops back to it (this is what EVM calls and reverts need);
- warm-address and warm-slot sets (EIP-2929) journaled the same way;
- the original value of each slot the transaction wrote (EIP-2200 net gas metering asks for it
  with `from_journal=False`: the value when the transaction began, `lock_changes`);
- `make_state_root` applies all dirty storage slots and accounts to `MerkleTrie`s in one sorted
  batch each, and keeps the new trie nodes until `persist` writes them (and new code) to the db;
- a flat snapshot of the head state (`evm/flat.py`): when the database opts in and the
  snapshot is of the root this StateDB was opened at, accounts and slots are read from it (one
  database read each instead of a walk down the trie), and `persist` writes the flat entries of
  everything changed, with the new marker, beside the trie nodes. The tries are still updated
  and remain the truth for roots and proofs.

Nodes are stored under keccak(node) and code under keccak(code), exactly as py-evm stores them,
so any state root this class produced can also be read by stock py-evm.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import rlp
from eth.abc import AccountDatabaseAPI, AtomicDatabaseAPI
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth.db.journal import get_next_checkpoint
from eth.typing import JournalDBCheckpoint
from eth_hash.auto import keccak
from eth_typing import Hash32

from evm.flat import FlatSnapshot, snapshot_valid
from evm.rlp_raw import encode_bytes, encode_list_payload, encode_uint
from evm.trie import MerkleTrie, NodeCache

AccountTuple = tuple[int, int, bytes, bytes]
EMPTY_ACCOUNT: AccountTuple = (0, 0, BLANK_ROOT_HASH, EMPTY_SHA3)

# Journal entry tags.
_ACCOUNT = 0
_SLOT = 1
_WIPE = 2
_WARM_ADDRESS = 3
_WARM_SLOT = 4


class MissingCode(KeyError):
    """An account's code hash has no code in the database (a corrupt or partial store)."""


def encode_account(account: AccountTuple) -> bytes:
    """RLP of [nonce, balance, storage_root, code_hash], as `rlp.encode` gives it, byte work
    only (`rlp` infers and validates sedes per call: most of a transfer block's state root)."""
    nonce, balance, storage_root, code_hash = account
    return encode_list_payload(
        encode_uint(nonce) + encode_uint(balance) + encode_bytes(storage_root)
        + encode_bytes(code_hash)
    )


def decode_account(encoded: bytes) -> AccountTuple:
    nonce, balance, storage_root, code_hash = rlp.decode(encoded)
    return (
        int.from_bytes(nonce, "big"),
        int.from_bytes(balance, "big"),
        storage_root,
        code_hash,
    )


def encode_slot_value(value: int) -> bytes:
    """A storage trie leaf's value: RLP of the word as a minimal big-endian integer, as
    `rlp.encode(value)` gives it (byte work only); b"" for 0 (a deletion)."""
    return encode_uint(value) if value else b""


@lru_cache(maxsize=1 << 16)
def storage_key(slot: int) -> bytes:
    """The storage trie's (and the flat snapshot's) key of a slot. Memoised: hot slots (a
    token's balances, the staking indices) are read and written block after block, and a dict
    hit is cheaper than hashing again."""
    return keccak(slot.to_bytes(32, "big"))


class StateDB(AccountDatabaseAPI):
    """The world state of one chain position, with changes buffered until `persist`."""

    def __init__(self, db: AtomicDatabaseAPI, state_root: Hash32 = BLANK_ROOT_HASH) -> None:
        self._db = db
        # A node cache shared across blocks and tries (content-addressed, so always valid);
        # the chain hangs it on the database it hands out.
        # (`is None`, not `or`: an empty cache is falsy, and the shared one starts empty.)
        shared: NodeCache | None = getattr(db, "node_cache", None)
        self._node_cache = shared if shared is not None else NodeCache()
        self._reset(state_root)

    def _reset(self, state_root: bytes) -> None:
        self._trie = MerkleTrie(self._db.__getitem__, state_root, cache=self._node_cache)
        # The flat snapshot, when the database opts in and it describes this root (checked
        # once here: within this StateDB, the snapshot moves only by our own `persist`).
        self._flat = FlatSnapshot(self._db) if snapshot_valid(self._db, state_root) else None
        self._accounts: dict[bytes, AccountTuple | None] = {}
        self._dirty_accounts: dict[bytes, None] = {}
        self._storage: dict[bytes, dict[int, int]] = {}
        self._dirty_slots: dict[bytes, dict[int, None]] = {}
        self._wiped: set[bytes] = set()
        self._storage_tries: dict[bytes, MerkleTrie] = {}
        self._new_code: dict[bytes, bytes] = {}
        self._code_cache: dict[bytes, bytes] = {}
        self._new_nodes: dict[bytes, bytes] = {}
        self._journal: list[tuple[Any, ...]] = []
        self._checkpoints: dict[int, int] = {}
        self._warm_addresses: set[bytes] = set()
        self._warm_slots: set[tuple[bytes, int]] = set()
        # The current transaction's original slot values (EIP-2200), see `_original`.
        self._originals: dict[tuple[bytes, int], int] = {}
        self._tx_wipes: set[bytes] = set()

    # -- roots ---------------------------------------------------------------------------
    @property
    def state_root(self) -> Hash32:
        return Hash32(self._trie.root)

    @state_root.setter
    def state_root(self, value: Hash32) -> None:
        # py-evm's State.revert assigns the root it saw at snapshot time; within a block that
        # is the current root, and the journal does the actual undo.
        if value != self._trie.root:
            self._reset(value)

    def has_root(self, state_root: bytes) -> bool:
        return state_root == BLANK_ROOT_HASH or state_root in self._db

    # -- accounts ------------------------------------------------------------------------
    def _get(self, address: bytes) -> AccountTuple | None:
        try:
            return self._accounts[address]
        except KeyError:
            pass
        if self._flat is not None:
            encoded = self._flat.account(address)
        else:
            encoded = self._trie.get(keccak(address))
        account = decode_account(encoded) if encoded else None
        self._accounts[address] = account
        return account

    def _put(self, address: bytes, old: AccountTuple | None, account: AccountTuple | None) -> None:
        """Replace the account (`old`: what `_get` returned, for the journal)."""
        self._journal.append((_ACCOUNT, address, old))
        self._accounts[address] = account
        self._dirty_accounts[address] = None

    def get_balance(self, address: bytes) -> int:
        account = self._get(address)
        return account[1] if account is not None else 0

    def set_balance(self, address: bytes, balance: int) -> None:
        if balance < 0 or balance >= 2**256:
            raise ValueError(f"balance out of range: {balance}")
        old = self._get(address)
        nonce, _, root, code_hash = old or EMPTY_ACCOUNT
        self._put(address, old, (nonce, balance, root, code_hash))

    def get_nonce(self, address: bytes) -> int:
        account = self._get(address)
        return account[0] if account is not None else 0

    def set_nonce(self, address: bytes, nonce: int) -> None:
        old = self._get(address)
        _, balance, root, code_hash = old or EMPTY_ACCOUNT
        self._put(address, old, (nonce, balance, root, code_hash))

    def increment_nonce(self, address: bytes) -> None:
        old = self._get(address)
        nonce, balance, root, code_hash = old or EMPTY_ACCOUNT
        self._put(address, old, (nonce + 1, balance, root, code_hash))

    def get_code_hash(self, address: bytes) -> Hash32:
        account = self._get(address)
        return Hash32(account[3] if account is not None else EMPTY_SHA3)

    def get_code(self, address: bytes) -> bytes:
        code_hash = self.get_code_hash(address)
        if code_hash == EMPTY_SHA3:
            return b""
        code = self._code_cache.get(code_hash)
        if code is None:
            code = self._new_code.get(code_hash)
        if code is None:
            try:
                code = self._db[code_hash]
            except KeyError as exc:
                raise MissingCode(code_hash) from exc
            self._code_cache[code_hash] = code
        return code

    def set_code(self, address: bytes, code: bytes) -> None:
        code_hash = keccak(code)
        if code:
            self._new_code[code_hash] = code
        old = self._get(address)
        nonce, balance, root, _ = old or EMPTY_ACCOUNT
        self._put(address, old, (nonce, balance, root, code_hash))

    def delete_code(self, address: bytes) -> None:
        old = self._get(address)
        nonce, balance, root, _ = old or EMPTY_ACCOUNT
        self._put(address, old, (nonce, balance, root, EMPTY_SHA3))

    def account_has_code_or_nonce(self, address: bytes) -> bool:
        account = self._get(address)
        return account is not None and (account[0] != 0 or account[3] != EMPTY_SHA3)

    def delete_account(self, address: bytes) -> None:
        self._wipe_storage(address)
        self._put(address, self._get(address), None)

    def account_exists(self, address: bytes) -> bool:
        return self._get(address) is not None

    def touch_account(self, address: bytes) -> None:
        old = self._get(address)
        self._put(address, old, old or EMPTY_ACCOUNT)

    def account_is_empty(self, address: bytes) -> bool:
        account = self._get(address)
        return account is None or (account[0] == 0 and account[1] == 0 and account[3] == EMPTY_SHA3)

    # -- storage -------------------------------------------------------------------------
    def _storage_trie(self, address: bytes) -> MerkleTrie:
        trie = self._storage_tries.get(address)
        if trie is None:
            account = self._get(address)
            root = account[2] if account is not None else BLANK_ROOT_HASH
            trie = MerkleTrie(self._db.__getitem__, root, cache=self._node_cache)
            self._storage_tries[address] = trie
        return trie

    def get_storage(self, address: bytes, slot: int, from_journal: bool = True) -> int:
        if not from_journal:
            return self._original(address, slot)
        slots = self._storage.get(address)
        if slots is None:
            slots = self._storage[address] = {}
        elif slot in slots:
            return slots[slot]
        value = 0 if address in self._wiped else self._read_slot(address, slot)
        slots[slot] = value
        return value

    def _read_slot(self, address: bytes, slot: int) -> int:
        """The slot in the account's stored storage (flat snapshot or trie), below the cache."""
        if self._flat is not None:
            return self._flat.storage(address, storage_key(slot))
        encoded = self._storage_trie(address).get(storage_key(slot))
        return int.from_bytes(rlp.decode(encoded), "big") if encoded else 0

    def _original(self, address: bytes, slot: int) -> int:
        """The slot's value when the transaction began (EIP-2200's "original value", what
        py-evm's `from_journal=False` answers): recorded by the transaction's first write of
        the slot, else the value now. After a wipe in this transaction, 0: the account's old
        storage is gone for the transaction too (geth's committed state of a destructed
        object; py-evm's whenever the wiped storage had been flushed to its trie)."""
        if address in self._tx_wipes:
            return 0
        key = (address, slot)
        if key in self._originals:
            return self._originals[key]
        return self.get_storage(address, slot)

    def set_storage(self, address: bytes, slot: int, value: int) -> None:
        old = self.get_storage(address, slot)
        if old == value:
            return  # nothing to undo and nothing for the root: a rewrite costs no trie update
        key = (address, slot)
        if key not in self._originals and address not in self._tx_wipes:
            self._originals[key] = old  # the transaction's first write: old is the original
        self._journal.append((_SLOT, address, slot, old))
        self._storage[address][slot] = value
        self._dirty_slots.setdefault(address, {})[slot] = None
        self._dirty_accounts[address] = None

    def delete_storage(self, address: bytes) -> None:
        self._wipe_storage(address)
        old = self._get(address)
        nonce, balance, _, code_hash = old or EMPTY_ACCOUNT
        self._put(address, old, (nonce, balance, BLANK_ROOT_HASH, code_hash))

    def _wipe_storage(self, address: bytes) -> None:
        self._journal.append(
            (
                _WIPE,
                address,
                self._storage.get(address),
                self._dirty_slots.get(address),
                address in self._wiped,
                self._storage_tries.get(address),
                address in self._tx_wipes,
            )
        )
        self._tx_wipes.add(address)
        self._storage[address] = {}
        self._dirty_slots[address] = {}
        self._wiped.add(address)
        self._storage_tries.pop(address, None)
        self._dirty_accounts[address] = None

    # -- EIP-2929 warm sets ----------------------------------------------------------------
    def is_address_warm(self, address: bytes) -> bool:
        return address in self._warm_addresses

    def mark_address_warm(self, address: bytes) -> None:
        if address not in self._warm_addresses:
            self._warm_addresses.add(address)
            self._journal.append((_WARM_ADDRESS, address))

    def is_storage_warm(self, address: bytes, slot: int) -> bool:
        return (address, slot) in self._warm_slots

    def mark_storage_warm(self, address: bytes, slot: int) -> None:
        key = (address, slot)
        if key not in self._warm_slots:
            self._warm_slots.add(key)
            self._journal.append((_WARM_SLOT, key))

    # -- journal ---------------------------------------------------------------------------
    def record(self) -> JournalDBCheckpoint:
        # Checkpoint ids must be unique process-wide: py-evm records the same id in other
        # journals (transient storage), which already hold ids from py-evm's global counter
        # (their root checkpoint, one per clear()). A private counter collides with those
        # ("Tried to record with an existing checkpoint"), so draw from the same counter.
        checkpoint = get_next_checkpoint()
        self._checkpoints[checkpoint] = len(self._journal)
        return checkpoint

    def discard(self, checkpoint: JournalDBCheckpoint) -> None:
        length = self._checkpoints.pop(checkpoint)
        journal = self._journal
        while len(journal) > length:
            entry = journal.pop()
            tag = entry[0]
            if tag == _ACCOUNT:
                self._accounts[entry[1]] = entry[2]
            elif tag == _SLOT:
                self._storage[entry[1]][entry[2]] = entry[3]
            elif tag == _WARM_ADDRESS:
                self._warm_addresses.discard(entry[1])
            elif tag == _WARM_SLOT:
                self._warm_slots.discard(entry[1])
            else:
                self._undo_wipe(*entry[1:])

    def _undo_wipe(
        self,
        address: bytes,
        storage: dict[int, int] | None,
        dirty: dict[int, None] | None,
        was_wiped: bool,
        trie: MerkleTrie | None,
        was_tx_wiped: bool,
    ) -> None:
        for target, value in ((self._storage, storage), (self._dirty_slots, dirty)):
            if value is None:
                target.pop(address, None)
            else:
                target[address] = value  # type: ignore[assignment]
        if not was_wiped:
            self._wiped.discard(address)
        if trie is not None:
            self._storage_tries[address] = trie
        if not was_tx_wiped:
            self._tx_wipes.discard(address)

    def commit(self, checkpoint: JournalDBCheckpoint) -> None:
        # Entries stay in the journal: an enclosing checkpoint may still discard them.
        del self._checkpoints[checkpoint]

    def lock_changes(self) -> None:
        """Start of a new transaction: nothing before it can be reverted, nothing is warm."""
        self._journal.clear()
        self._checkpoints.clear()
        self._warm_addresses.clear()
        self._warm_slots.clear()
        self._originals.clear()
        self._tx_wipes.clear()

    # -- roots and persistence -------------------------------------------------------------
    def make_state_root(self) -> Hash32:
        new_nodes = self._new_nodes
        get_node = self._db.__getitem__
        flat = self._flat
        if flat is not None:
            # Wipes first: every dirty slot of a wiped address was written after its wipe.
            for address in sorted(self._wiped):
                flat.wipe(address)
        for address in sorted(self._dirty_slots):
            # `_get`: storage read from the flat snapshot never loaded the account.
            account = self._get(address)
            if account is None:
                continue  # storage of an account that does not exist is dropped, flat too
            base_root = BLANK_ROOT_HASH if address in self._wiped else account[2]
            trie = self._storage_trie(address) if address not in self._wiped else None
            if trie is None or trie.root != base_root:
                trie = MerkleTrie(get_node, base_root, cache=self._node_cache)
            slots = self._storage[address]
            values = {storage_key(slot): slots[slot] for slot in self._dirty_slots[address]}
            updates = {key: encode_slot_value(value) for key, value in values.items()}
            new_nodes.update(trie.apply(updates))
            if flat is not None:
                for key, value in values.items():
                    flat.set_slot(address, key, value)
                flat.note_preimages(
                    (storage_key(slot), slot) for slot in self._dirty_slots[address]
                )
            self._storage_tries[address] = trie
            nonce, balance, _, code_hash = account
            self._accounts[address] = (nonce, balance, trie.root, code_hash)
        updates = {}
        for address in self._dirty_accounts:
            account = self._get(address)
            encoded = encode_account(account) if account is not None else b""
            updates[keccak(address)] = encoded
            if flat is not None:
                flat.set_account(address, encoded or None)
        if updates:
            new_nodes.update(self._trie.apply(updates))
        self._dirty_accounts.clear()
        self._dirty_slots.clear()
        self._wiped.clear()
        self._journal.clear()
        self._checkpoints.clear()
        # Like py-evm's: what a state root includes is the new original value of its slots.
        self._originals.clear()
        self._tx_wipes.clear()
        return Hash32(self._trie.root)

    def persist(self) -> Any:
        """Write new trie nodes and code into the database (the block's write overlay), and the
        flat snapshot's changes and marker when this StateDB reads the snapshot."""
        self.make_state_root()
        db = self._db
        for key, value in self._new_nodes.items():
            db[key] = value
        for key, value in self._new_code.items():
            db[key] = value
        if self._flat is not None:
            self._flat.write(self._trie.root)
        self._code_cache.update(self._new_code)
        self._new_nodes = {}
        self._new_code = {}
        return None

    @property
    def reads_flat_snapshot(self) -> bool:
        """Whether reads go to the flat snapshot (evm/flat.py) rather than the tries."""
        return self._flat is not None

    # -- reads for RPC (eth_getProof) -----------------------------------------------------
    def account_proof(self, address: bytes) -> list[bytes]:
        return self._trie.get_proof(keccak(address))

    def storage_proof(self, address: bytes, slots: Iterable[int]) -> list[list[bytes]]:
        trie = self._storage_trie(address)
        return [trie.get_proof(storage_key(slot)) for slot in slots]

    def storage_root(self, address: bytes) -> bytes:
        account = self._get(address)
        return account[2] if account is not None else BLANK_ROOT_HASH

    def storage_root_if_unwritten(self, address: bytes) -> bytes | None:
        """The account's storage root when no slot of it was written or wiped since the last
        root was made, so that the root describes every slot it reads; None otherwise (a
        pending write is in no root yet). For caches of what a storage root determines."""
        if address in self._dirty_slots or address in self._wiped:
            return None
        return self.storage_root(address)
