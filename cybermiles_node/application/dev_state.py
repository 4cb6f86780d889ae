"""Devnet state edits (anvil_setBalance & co.), impersonated transactions and state dumps.

Every state this node serves is a block's state root, and blocks are re-executed (import,
restarts that replay nothing but must keep everything). So an edit is never a side door into
the database: it is a record carried by a block of its own (DECISIONS "Dev state edits"):

- `DevState.apply(edits)` seals a new block on the head at once, with no transactions, whose
  pipeline applies the edits after the modules' begin_block (chain.py `_run_block`) and whose
  header's `extra_data` is `edits_commitment(edits)` (automine blocks have no consensus metadata
  to commit to there), so the block hash covers the edits. The block takes the head's timestamp
  (an edit takes no time: time control, evm_*, stays with the dev-chain methods) and randomness
  made like the producer's. Its encoded edits are stored under the block's hash
  (schema `dev_edits_key`); `Chain.dev_edits(header)` reads them back for re-execution.
- Snapshots and reverts (evm_snapshot / evm_revert) and restarts therefore see edits like any
  other block; an edit is visible to "latest" as soon as the call returns.

Impersonation: the RPC layer (rpc/dev_state.py) builds a transaction carrying a marker signature
no key can make (r = 5, no curve point's x: every sender recovery fails) and hands it here with the
sender it speaks for; `submit_impersonated` admits it to the mempool with that sender. The block
store keeps each transaction's sender beside it (schema: body = [raw, sender]), so receipts,
eth_getTransactionByHash, logs and restarts show the impersonated `from`; a node that recovers
senders (eth_sendRawTransaction, gossip, blocksync) refuses such bytes.

Dumps read the head state back from the flat snapshot (evm/flat.py): accounts by address, slots
through the preimages a devnet's database records (`Chain(record_preimages=True)`); a dump is
checked against the head's state root before it is handed out, so what is loaded back gives the
same root.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import msgpack
import trio
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3

from cybermiles_node.errors import CyberMilesError
from cybermiles_node.params import read_params
from cybermiles_node.system.addresses import PARAMS_ADDRESS
from cybermiles_node.system.errors import SystemStateError
from evm import flat
from evm.db import MemoryDB
from evm.state import StateDB, decode_account
from genesis import AllocAccount, DumpedAt, Genesis, GenesisError, StateDump

if TYPE_CHECKING:
    from cybermiles_node.application.app import ChainApp
    from cybermiles_node.application.chain import Chain

log = logging.getLogger(__name__)

_COMMITMENT_DOMAIN = b"cybermiles devnet state edits v1"


class DevStateError(CyberMilesError):
    """A dev state request this node cannot serve (JSON-RPC -32000 with the message)."""

    code = -32000

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SetBalance:
    address: bytes
    balance: int


@dataclass(frozen=True)
class SetNonce:
    address: bytes
    nonce: int


@dataclass(frozen=True)
class SetCode:
    address: bytes
    code: bytes  # b"": the account has no code any more


@dataclass(frozen=True)
class SetStorage:
    address: bytes
    slot: int
    value: int


StateEdit = SetBalance | SetNonce | SetCode | SetStorage
NO_EDITS: tuple[StateEdit, ...] = ()

# Wire tags of the stored record: msgpack [[tag, address, *fields], ...]; never renumbered.
_TAGS: dict[type, int] = {SetBalance: 0, SetNonce: 1, SetCode: 2, SetStorage: 3}


def encode_edits(edits: Sequence[StateEdit]) -> bytes:
    rows: list[list[Any]] = []
    for edit in edits:
        tag = _TAGS[type(edit)]
        if isinstance(edit, SetBalance):
            rows.append([tag, edit.address, _word(edit.balance)])
        elif isinstance(edit, SetNonce):
            rows.append([tag, edit.address, _word(edit.nonce)])
        elif isinstance(edit, SetCode):
            rows.append([tag, edit.address, edit.code])
        else:
            rows.append([tag, edit.address, _word(edit.slot), _word(edit.value)])
    packed: bytes = msgpack.packb(rows)
    return packed


def decode_edits(data: bytes) -> tuple[StateEdit, ...]:
    """The edits of a record this node stored (trusted: written with its block)."""
    edits: list[StateEdit] = []
    for tag, address, *fields in msgpack.unpackb(data):
        if tag == 0:
            edits.append(SetBalance(address, _int(fields[0])))
        elif tag == 1:
            edits.append(SetNonce(address, _int(fields[0])))
        elif tag == 2:
            edits.append(SetCode(address, fields[0]))
        elif tag == 3:
            edits.append(SetStorage(address, _int(fields[0]), _int(fields[1])))
        else:
            raise ValueError(f"unknown state edit tag {tag}")
    return tuple(edits)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def edits_commitment(edits: Sequence[StateEdit]) -> bytes:
    """The 32 bytes an edit block's header carries in extra_data."""
    return hashlib.sha256(_COMMITMENT_DOMAIN + encode_edits(edits)).digest()


def apply_edits(state: StateDB, edits: Iterable[StateEdit]) -> None:
    """Apply edits in order. An edit changes only what it names: a balance set on a contract
    keeps its code and storage; storage set on an address without an account creates one."""
    for edit in edits:
        if isinstance(edit, SetBalance):
            state.set_balance(edit.address, edit.balance)
        elif isinstance(edit, SetNonce):
            state.set_nonce(edit.address, edit.nonce)
        elif isinstance(edit, SetCode):
            if edit.code:
                state.set_code(edit.address, edit.code)
            else:
                state.delete_code(edit.address)
        else:
            # StateDB drops storage of an account that does not exist (as the EVM never
            # writes one): make it exist, as anvil does.
            if not state.account_exists(edit.address):
                state.touch_account(edit.address)
            state.set_storage(edit.address, edit.slot, edit.value)


def write_accounts(state: StateDB, accounts: Iterable[tuple[bytes, AllocAccount]]) -> None:
    """Write whole accounts into `state`, empty ones included (a dump lists every account the
    trie holds, and an empty account is still a trie entry)."""
    for address, account in accounts:
        state.touch_account(address)
        state.set_balance(address, account.balance)
        state.set_nonce(address, account.nonce)
        if account.code:
            state.set_code(address, account.code)
        for slot, value in account.storage:
            state.set_storage(address, slot, value)


def state_root_of(accounts: Iterable[tuple[bytes, AllocAccount]]) -> bytes:
    """The state root of exactly these accounts."""
    state = StateDB(MemoryDB())  # type: ignore[arg-type]
    write_accounts(state, accounts)
    return bytes(state.make_state_root())


def genesis_from_dump(dump: StateDump, template: Genesis) -> Genesis:
    """The genesis of a new devnet started from `dump` (`cybermiles devnet --load-state`): the
    template's validators (who makes blocks), network and time; the dump's chain id, profile,
    and accounts as the whole genesis state (genesis/schema.py `from_state_dump`), so the
    genesis state root is the dumped one; the parameters the dumped state holds."""
    state = StateDB(MemoryDB())  # type: ignore[arg-type]
    write_accounts(state, dump.accounts)
    try:
        params = read_params(state)
    except SystemStateError:
        raise GenesisError(
            "accounts",
            f"no chain parameters in the state (account 0x{PARAMS_ADDRESS.hex()}): a state dump "
            "lists every account of a chain, system accounts included",
        ) from None
    return replace(
        template,
        chain_id=dump.chain_id,
        evm_profile=dump.evm_profile,
        alloc=dump.accounts,
        params=params,
        from_state_dump=True,
    )


def edits_of_dump(dump: StateDump) -> tuple[StateEdit, ...]:
    """anvil_loadState's merge: each listed account's balance, nonce and code are set, and each
    listed slot; accounts and slots the dump does not list keep their values."""
    edits: list[StateEdit] = []
    for address, account in dump.accounts:
        edits += [
            SetBalance(address, account.balance),
            SetNonce(address, account.nonce),
            SetCode(address, account.code),
        ]
        edits += [SetStorage(address, slot, value) for slot, value in account.storage]
    return tuple(edits)


def dump_head_state(chain: Chain) -> StateDump:
    """The head's whole state, checked against its root (DevStateError when it cannot be)."""
    db = chain.db
    head = chain.head
    if db.get(flat.MARKER_KEY) != bytes(head.state_root):
        raise DevStateError(
            "state dump unavailable: this database has no flat state snapshot of the head "
            "(made by an older version; use --reset)"
        )
    accounts = []
    for address, encoded in flat.accounts(db):
        nonce, balance, storage_root, code_hash = decode_account(encoded)
        code = b"" if code_hash == EMPTY_SHA3 else bytes(db[code_hash])
        storage = []
        if storage_root != BLANK_ROOT_HASH:
            for hashed_slot, value in flat.storage(db, address):
                slot = flat.slot_preimage(db, hashed_slot)
                if slot is None:
                    raise DevStateError(
                        f"state dump unavailable: a storage slot of 0x{address.hex()} has no "
                        "recorded preimage (written before this devnet recorded them; use "
                        "--reset)"
                    )
                storage.append((slot, value))
        accounts.append((address, AllocAccount(balance, nonce, code, tuple(sorted(storage)))))
    dump = StateDump(
        chain_id=chain.chain_id,
        evm_profile=chain.genesis.evm_profile,
        block=DumpedAt(
            number=int(head.block_number),
            hash=bytes(head.hash),
            timestamp=int(head.timestamp),
            state_root=bytes(head.state_root),
        ),
        accounts=tuple(accounts),
    )
    if state_root_of(dump.accounts) != bytes(head.state_root):
        raise DevStateError("state dump unavailable: the dumped accounts do not give the head root")
    return dump


class DevState:
    """The node side of rpc/dev_state.py's methods, over a devnet's application."""

    def __init__(
        self,
        app: ChainApp,
        *,
        coinbase: bytes,
        randomness: Callable[[bytes], bytes],
        lock: trio.Lock | None = None,
    ) -> None:
        self.app = app
        self.coinbase = coinbase
        self.randomness = randomness  # the parent's mix_hash -> this block's (VRF, as produced)
        # The devnet producer's block lock (application/producer.py): an edit block is made
        # between two blocks, never while one executes in the producer's worker thread.
        self.lock = lock or trio.Lock()

    async def apply(self, edits: Sequence[StateEdit]) -> None:
        """Seal and commit a block carrying `edits` on the head (module docstring)."""
        if not edits:
            return
        async with self.lock:
            self._apply(tuple(edits))

    def _apply(self, record: tuple[StateEdit, ...]) -> None:
        head = self.app.head
        ctx = self.app.next_context(
            time=int(head.timestamp),
            coinbase=self.coinbase,
            randomness=self.randomness(bytes(head.mix_hash)),
            extra_data=edits_commitment(record),
        )
        block = self.app.chain.build_block(ctx, (), edits=record)
        self.app.commit(block)
        log.info("block %d: %d state edits", block.number, len(record))

    async def set_balance(self, address: bytes, balance: int) -> None:
        await self.apply([SetBalance(address, balance)])

    async def set_nonce(self, address: bytes, nonce: int) -> None:
        await self.apply([SetNonce(address, nonce)])

    async def set_code(self, address: bytes, code: bytes) -> None:
        await self.apply([SetCode(address, code)])

    async def set_storage(self, address: bytes, slot: int, value: int) -> None:
        await self.apply([SetStorage(address, slot, value)])

    async def dump_state(self) -> StateDump:
        # Under the lock: a block in flight moves the flat snapshot before the head.
        async with self.lock:
            return dump_head_state(self.app.chain)

    async def load_state(self, dump: StateDump) -> None:
        await self.apply(edits_of_dump(dump))

    def submit_impersonated(self, raw: bytes, sender: bytes) -> bytes:
        """Admit a transaction sent on behalf of `sender` (rpc/dev_state.py made `raw`); its
        hash. Refusals are the usual admission errors."""
        return self.app.check_tx(raw, sender=sender).hash
