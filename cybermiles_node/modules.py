"""The modules of the chain application and the order they run in (DESIGN.md §7).

A module (params, staking, governance) takes part in every block through two hooks around the
block's transactions: `begin_block(ctx, storage)` before the first one and
`end_block(ctx, storage, fees)` after the last one, both on the block's own state, so their
writes land in the block's state root; `fees` is what the block's transactions paid to the
fee recipient (the award pool's: a module may name it, `fee_recipient`). `end_block` answers a
`BlockOutcome`: validator updates for consensus (effective at H+2) and an optional halt.
`ModuleSet` runs its modules in a fixed order and merges their outcomes; with no modules a
block is the plain Ethereum block.

A module also owns system transaction kinds (SPEC §5: "stake/delegate", ...). `ModuleSet` is the
executor's `SystemTxHandler` (evm/system.py) and the admission check: it parses the envelope's
JSON once into a `SystemTxMessage` and hands it to the module that owns the kind, whose same
guard code runs at admission (`check_tx`, against the pending state) and at execution
(`deliver_tx`). A kind no module owns is refused with a clear message.

Modules see the state only through `SystemStorage`-like access (the block's `StateDB`): no
trio, disk, clock, rpc or consensus inside them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from types import MappingProxyType
from typing import Protocol, TypeVar

from eth_hash.auto import keccak

from cybermiles_node.errors import InvalidTransaction, TxRejected
from cybermiles_node.system.context import BlockContext
from evm.executor import TransactionInvalid
from evm.state import StateDB
from evm.system import Log, SystemTxResult
from evm.transactions import SignedTx

T = TypeVar("T")

__all__ = [
    "NO_MODULES",
    "BlockOutcome",
    "Module",
    "ModuleSet",
    "SystemTxMessage",
    "ValidatorUpdate",
    "event_log",
    "parse_system_tx",
]


@dataclass(frozen=True)
class ValidatorUpdate:
    """A change of the consensus set decided by a block: power 0 removes the validator."""

    pub_key: bytes  # ed25519
    power: int


@dataclass(frozen=True)
class BlockOutcome:
    """What a block decided beyond its transactions."""

    validator_updates: tuple[ValidatorUpdate, ...] = ()
    # The node must stop after committing this block, with this message (governance upgrades).
    halt: str | None = None

    def merged(self, other: BlockOutcome) -> BlockOutcome:
        if self.halt is not None and other.halt is not None:
            halt: str | None = f"{self.halt}; {other.halt}"
        else:
            halt = self.halt if self.halt is not None else other.halt
        return BlockOutcome(self.validator_updates + other.validator_updates, halt)


@dataclass(frozen=True)
class SystemTxMessage:
    """A staking/governance transaction, parsed once: its sender, kind and data."""

    sender: bytes
    nonce: int
    tx_hash: bytes
    kind: str
    data: Mapping[str, object]


def parse_system_tx(tx: SignedTx) -> SystemTxMessage:
    """The envelope's `{"type": kind, "data": {...}}`; InvalidTransaction when malformed."""
    try:
        body = json.loads(tx.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidTransaction(f"malformed staking/governance transaction: {exc}") from None
    if not isinstance(body, dict) or set(body) != {"type", "data"}:
        raise InvalidTransaction(
            'malformed staking/governance transaction: expected {"type": kind, "data": {...}}'
        )
    kind, data = body["type"], body["data"]
    if not isinstance(kind, str) or not isinstance(data, dict):
        raise InvalidTransaction(
            "malformed staking/governance transaction: type must be a string, data an object"
        )
    return SystemTxMessage(tx.sender, tx.nonce, tx.hash, kind, MappingProxyType(data))


class Module(Protocol):
    name: str
    kinds: frozenset[str]  # the system transaction kinds it owns
    # Where the block's transaction fees go (the account of its award pool), or None.
    fee_recipient: bytes | None

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None: ...

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        """After the block's transactions, which paid `fees` wei to the fee recipient."""
        ...

    def check_tx(self, msg: SystemTxMessage, storage: StateDB, height: int, time: int) -> None:
        """Admission against the state the next block (`height`, `time`: the head's) starts
        from: raise a TxRejected, change nothing."""
        ...

    def gas_of(self, msg: SystemTxMessage, storage: StateDB) -> int:
        """The gas it is charged (SPEC §5: the kind's *_gas parameter, or 0 when free)."""
        ...

    def deliver_tx(
        self, msg: SystemTxMessage, storage: StateDB, height: int, time: int
    ) -> SystemTxResult:
        """Execution: the same guards as check_tx (their TxRejected leaves the transaction out
        of the block), then the effect."""
        ...


class ModuleSet:
    """Runs `modules` in their given (fixed) order around each block's transactions."""

    def __init__(self, modules: Sequence[Module] = ()) -> None:
        self.modules = tuple(modules)
        recipients = [m.fee_recipient for m in self.modules if m.fee_recipient is not None]
        if len(recipients) > 1:
            raise ValueError("two modules claim the block's fees")
        # None: fees go to the coinbase, as in Ethereum.
        self.fee_recipient: bytes | None = recipients[0] if recipients else None

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        for module in self.modules:
            module.begin_block(ctx, storage)

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        outcome = BlockOutcome()
        for module in self.modules:
            outcome = outcome.merged(module.end_block(ctx, storage, fees))
        return outcome

    # -- system transactions ---------------------------------------------------------------
    def _owner(self, kind: str) -> Module:
        for module in self.modules:
            if kind in module.kinds:
                return module
        raise InvalidTransaction(f"unknown staking/governance transaction kind {kind!r}")

    def _route(self, tx: SignedTx) -> tuple[SystemTxMessage, Module]:
        """The parsed message and the module owning its kind (raises TxRejected)."""
        msg = parse_system_tx(tx)
        return msg, self._owner(msg.kind)

    def owner_name(self, tx: SignedTx) -> str:
        """The name of the module owning a system transaction's kind (raises TxRejected)."""
        return self._route(tx)[1].name

    def check_tx(self, tx: SignedTx, state: StateDB, height: int, time: int) -> None:
        """Admission of a system transaction into the block `height` (raises TxRejected)."""
        msg, owner = self._route(tx)
        owner.check_tx(msg, state, height, time)

    def gas_of(self, tx: SignedTx, state: StateDB) -> int:
        def charged() -> int:
            msg, owner = self._route(tx)
            return owner.gas_of(msg, state)

        return _guarded(charged)

    def deliver(
        self, tx: SignedTx, state: StateDB, block_number: int, block_time: int
    ) -> SystemTxResult:
        def delivered() -> SystemTxResult:
            msg, owner = self._route(tx)
            return owner.deliver_tx(msg, state, block_number, block_time)

        return _guarded(delivered)


def _guarded(step: Callable[[], T]) -> T:
    """In a block, a refusal (the same guard code as admission's) means: leave the transaction
    out, or refuse the block holding it (TransactionInvalid)."""
    try:
        return step()
    except TxRejected as exc:
        raise TransactionInvalid(exc.message) from None


NO_MODULES = ModuleSet()


# -- receipt logs of module events ----------------------------------------------------------------
# A module event is a frozen dataclass with a `kind` (an Enum). Its log is emitted by the
# module's storage account: topic 0 is keccak256 of "<prefix>/<kind>" ("stake/staked",
# "governance/voted"); the data is the event's fields as canonical JSON (addresses and bytes as
# 0x hex, rationals "a/b", enums their value, integers at or above 2^53 as decimal strings, since
# JSON readers lose precision there), so wallets read what a system transaction did without an
# ABI. One format for every module.
class Event(Protocol):
    """A module event: a frozen dataclass whose `kind` names what happened."""

    @property
    def kind(self) -> Enum: ...


def event_log(account: bytes, prefix: str, event: Event) -> Log:
    """The receipt log of `event`, emitted by `account`."""
    if not dataclasses.is_dataclass(event) or isinstance(event, type):
        raise TypeError(f"not an event: {event!r}")
    name = f"{prefix}/{json_value(event.kind)}"
    topic = int.from_bytes(keccak(name.encode()), "big")
    fields = {f.name: json_value(getattr(event, f.name)) for f in dataclasses.fields(event)}
    data = json.dumps({"event": name, **fields}, sort_keys=True, separators=(",", ":"))
    return (account, (topic,), data.encode())


def json_value(value: object) -> object:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2**53:
        return str(value)
    return value
