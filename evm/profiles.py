"""EVM profiles: the rule sets a chain can fix in its genesis.

A profile is a py-evm fork specialised for CyberMiles: the state class (our `StateDB`, a base
fee paid like the rest of the fee instead of burned, no Ethereum system contracts), the
computation class (opcodes and precompiles), the transaction builder and the header class. Both
profiles share the state machinery (our `StateDB`, Prague-shaped transactions and receipts);
they differ in the computation class, i.e. in which opcode table and which precompiles bytecode
sees. The opcode logic lives in evm/cvm.py.

- `cvm` (default): Prague opcodes plus the CVM opcodes at bytes free in Prague; Prague
  precompiles plus the CVM precompiles at 0xc0de01-0xc0de04 (evm/precompiles.py).
- `lity`: Travis-exact bytecode semantics for existing Lity contracts: `LITY_OPCODES`
  (Byzantium opcodes and their gas, SHL/SHR/SAR, checked ADD/SUB/MUL, CVM opcodes, ENI at 0xf5;
  no CREATE2, EXTCODEHASH, PUSH0, TLOAD/TSTORE, MCOPY, BASEFEE, ...), Byzantium's
  precompiles (0x01-0x08 at Byzantium prices) and the same CVM precompiles.

`EvmProfile.precompile_addresses` (all of a profile's precompiles, the CVM ones included) is
what the executor's transfer fast path checks to never fast-path a call to a precompile.

Injected precompiles (DESIGN.md §7). evm never imports the modules above it (staking,
governance), yet their precompiles must run inside the EVM. So the composition root plugs them
in: `profile.with_precompiles({address: precompile})` returns a profile whose state class
carries a computation subclass with the extra precompiles. py-evm runs every child message
(CALL, CALLCODE, DELEGATECALL, STATICCALL, CREATE) through the class of its parent computation
and looks precompiles up on it, and the state asks its computation class which addresses are
warm, so every frame of a transaction sees them. The shared `CvmComputation`/`LityComputation`
classes are never changed: a process can run the base and the extended profile side by side.

What of Prague still applies under `lity`, and why. Everything outside the opcode table and
precompiles is the transaction/state machinery, which the chain shares between profiles
(wallets, eth_estimateGas and the fee rules see one kind of transaction):
- transaction types (legacy, 2930, 1559, 7702) and validation; the base fee is the block's
  (0 under `lity`, whose blocks carry none: `has_base_fee`);
- intrinsic gas (Istanbul calldata prices, EIP-3860 initcode words, EIP-7623 floor): a
  transaction-level charge, not bytecode behaviour;
- the refund cap (EIP-3529: refund <= gas used / 5, no SELFDESTRUCT refund); SSTORE still
  *earns* Byzantium's 15000 clear refund because that is in the Byzantium SSTORE opcode;
- access lists are accepted and charged intrinsically, but warm/cold has no effect: the
  Byzantium opcodes price BALANCE/SLOAD/CALL/... at fixed Tangerine-Whistle rates;
- contract creation checks in the computation class: EIP-170 code size, EIP-3541 (no new code
  starting with 0xEF; Lity never emits it), EIP-3860 initcode size limit;
- SELFDESTRUCT is Byzantium's (the account is deleted, no EIP-6780 restriction), because the
  opcode decides that;
- EIP-7702 delegations are processed at the transaction level, but Byzantium CALL does not follow
  delegation designators (only Prague's call opcodes do).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache, cached_property
from typing import Any

from eth._utils.address import generate_contract_address
from eth.abc import ComputationAPI, MessageAPI, SignedTransactionAPI
from eth.constants import CREATE_CONTRACT_ADDRESS
from eth.vm.forks.byzantium.computation import BYZANTIUM_PRECOMPILES
from eth.vm.forks.cancun.constants import BLOB_TX_TYPE
from eth.vm.forks.homestead.validation import validate_homestead_transaction
from eth.vm.forks.prague import PragueVM
from eth.vm.forks.prague.blocks import PragueBlockHeader
from eth.vm.forks.prague.computation import PRAGUE_PRECOMPILES, PragueComputation
from eth.vm.forks.prague.opcodes import PRAGUE_OPCODES
from eth.vm.forks.prague.state import PragueState, PragueTransactionExecutor
from eth.vm.forks.prague.transactions import PragueTransactionBuilder
from eth.vm.message import Message
from eth_typing import Address
from eth_utils import ExtendedDebugLogger, ValidationError, get_extended_debug_logger

from evm.cvm import CVM_OPCODES, LITY_OPCODES, CvmStateMixin
from evm.interpreter import FastInterpreter
from evm.precompiles import CVM_PRECOMPILES, Precompile
from evm.state import StateDB

BASEFEE_OPCODE = 0x48


@cache
def _state_logger(class_name: str) -> ExtendedDebugLogger:
    return get_extended_debug_logger(f"eth.vm.state.{class_name}")


class CvmComputation(FastInterpreter, PragueComputation):
    """Prague computation with the CVM opcodes (0x0c-0x0e, 0x2a-0x2d, 0xf6-0xf9) and precompiles,
    run by the cheaper interpreter loop (evm/interpreter.py)."""

    opcodes = {**PRAGUE_OPCODES, **CVM_OPCODES}
    _precompiles = {**PRAGUE_PRECOMPILES, **CVM_PRECOMPILES}


class LityComputation(CvmComputation):
    """Same message machinery; Travis's opcode table and Byzantium's precompiles."""

    opcodes = dict(LITY_OPCODES)
    _precompiles = {**BYZANTIUM_PRECOMPILES, **CVM_PRECOMPILES}


class CvmTransactionExecutor(PragueTransactionExecutor):
    """Prague's executor; a transaction the node decoded itself is not re-validated.

    `CvmStateMixin.apply_checked_transaction` marks the state while it applies a transaction
    `evm.transactions.decode_transaction` accepted, which checked what py-evm's
    `transaction.validate()` checks (field ranges, intrinsic gas, the signature with py-evm's
    rules); the state's own checks (balance, nonce, low s) run either way."""

    def validate_transaction(self, transaction: SignedTransactionAPI) -> None:
        if not getattr(self.vm_state, "transaction_prechecked", False):
            transaction.validate()
        self.vm_state.validate_transaction(transaction)

    def build_evm_message(self, transaction: SignedTransactionAPI) -> MessageAPI:
        """CancunTransactionExecutor.build_evm_message without its debug line, whose f-string
        (the hex of the whole contract code, the transaction's repr) is built on every
        transaction even with debug logging off."""
        state = self.vm_state
        data_fee = 0
        if transaction.type_id == BLOB_TX_TYPE:  # refused at decoding; kept for eth_call & co
            data_fee = self.calc_data_fee(transaction)  # type: ignore[arg-type]
        state.delta_balance(
            transaction.sender, -(transaction.gas * state.get_gas_price(transaction) + data_fee)
        )
        state.increment_nonce(transaction.sender)
        refund = self.calc_message_refund(transaction)
        if transaction.to == CREATE_CONTRACT_ADDRESS:
            create_address = generate_contract_address(
                transaction.sender, state.get_nonce(transaction.sender) - 1
            )
            data, code, is_delegation = b"", transaction.data, False
        else:
            create_address = None
            data = transaction.data
            code, delegation_address = self.get_code_at_address(transaction.to)
            is_delegation = delegation_address is not None
        return Message(
            gas=transaction.gas - transaction.intrinsic_gas,
            to=transaction.to,
            sender=transaction.sender,
            value=transaction.value,
            data=data,
            code=code,
            create_address=create_address,  # type: ignore[arg-type]  # None: a call (py-evm's)
            refund=refund,
            is_delegation=is_delegation,
        )


class CvmState(CvmStateMixin, PragueState):
    """Prague state on our StateDB, with the per-transaction CVM values (evm/cvm.py).

    The base fee (the execution context's) is part of the price, not burned, and does not make
    a transaction invalid: the whole fee goes to the coinbase (the executor moves it on to the
    award pool), and a fee cap below the base fee is a low-price transaction that pays its fee
    cap (SPEC §4, DECISIONS "Fees for default clients")."""

    account_db_class = StateDB
    computation_class = CvmComputation
    transaction_executor_class = CvmTransactionExecutor

    def set_system_contracts(self) -> None:
        # Ethereum's beacon-root and history contracts are not part of CyberMiles genesis.
        pass

    @property
    def logger(self) -> ExtendedDebugLogger:
        # py-evm builds the logger (getLogger + logger-class juggling) on every access, a few
        # times per transaction; the same named logger, looked up once per class.
        return _state_logger(type(self).__name__)

    def get_tip(self, transaction: SignedTransactionAPI) -> int:
        # What the coinbase is credited per gas: the whole effective price.
        return self.get_gas_price(transaction)

    def validate_transaction(self, transaction: SignedTransactionAPI) -> None:
        # Cancun's checks without London's "max fee per gas below the base fee" refusal (blob
        # transactions never get here: decoding refuses them).
        validate_homestead_transaction(self, transaction)
        if self.get_balance(transaction.sender) < transaction.gas * transaction.max_fee_per_gas:
            raise ValidationError("Sender has insufficient funds for blob fee.")


class LityState(CvmState):
    computation_class = LityComputation


@dataclass(frozen=True)
class EvmProfile:
    """One rule set: py-evm classes plus the addresses of precompiles plugged in by modules."""

    name: str
    state_class: Any
    vm_class: Any
    header_class: Any
    transaction_builder: Any
    # Addresses added by `with_precompiles`, so the composition root can give them genesis
    # code stubs (`evm.precompiles.genesis_code_stubs`); empty on the base profiles.
    injected_precompile_addresses: frozenset[Address] = frozenset()

    @cached_property
    def has_base_fee(self) -> bool:
        """Whether blocks carry a base fee: the profile's EVM has the BASEFEE opcode (London
        and later rules: cvm), so clients see EIP-1559 blocks; lity (Byzantium) has neither."""
        return BASEFEE_OPCODE in self.state_class.computation_class.opcodes

    @cached_property
    def precompile_addresses(self) -> frozenset[bytes]:
        return frozenset(self.state_class.computation_class.get_precompiles())

    def with_precompiles(self, extra: Mapping[bytes, Precompile]) -> EvmProfile:
        """This profile (same name) whose EVM also runs `extra` at their addresses.

        Raises ValueError if an address is not 20 bytes or already holds a precompile of this
        profile (Ethereum's, the CVM ones or one injected earlier): silently replacing one
        would change what existing contracts call.
        """
        if not extra:
            return self
        precompiles = {_checked_address(address): fn for address, fn in extra.items()}
        _refuse_collisions(self, precompiles)
        return replace(
            self,
            state_class=_state_class_with(self.state_class, precompiles),
            injected_precompile_addresses=self.injected_precompile_addresses | set(precompiles),
        )


def _checked_address(address: bytes) -> Address:
    # A key of another length would never equal a message's code address: refuse, not ignore.
    if len(address) != 20:
        raise ValueError(f"precompile address 0x{address.hex()} is not 20 bytes")
    return Address(bytes(address))


def _refuse_collisions(profile: EvmProfile, extra: Mapping[Address, Precompile]) -> None:
    taken = sorted(profile.precompile_addresses & set(extra))
    if taken:
        listed = ", ".join(f"0x{address.hex()}" for address in taken)
        raise ValueError(
            f"cannot inject precompiles at {listed}: profile {profile.name!r} already has "
            "a precompile there"
        )


def _state_class_with(state_class: Any, extra: Mapping[Address, Precompile]) -> Any:
    """A subclass of `state_class` whose computation class also has the `extra` precompiles.

    Cached on the mapping's items, so building the same profile twice (tests, eth_call's
    per-state-class cache in evm/call.py) reuses one class instead of minting a new one.
    """
    try:
        items = frozenset(extra.items())
    except TypeError:  # an unhashable precompile callable: still works, just not cached
        return _build_state_class(state_class, extra.items())
    return _cached_state_class(state_class, items)


@cache
def _cached_state_class(state_class: Any, items: frozenset[tuple[Address, Precompile]]) -> Any:
    return _build_state_class(state_class, items)


def _build_state_class(state_class: Any, items: Iterable[tuple[Address, Precompile]]) -> Any:
    base: type[ComputationAPI] = state_class.computation_class
    computation = type(
        f"Injected{base.__name__}",
        (base,),
        {"_precompiles": {**base.get_precompiles(), **dict(items)}, "__module__": __name__},
    )
    return type(
        f"Injected{state_class.__name__}",
        (state_class,),
        {"computation_class": computation, "__module__": __name__},
    )


CVM = EvmProfile(
    name="cvm",
    state_class=CvmState,
    vm_class=PragueVM,
    header_class=PragueBlockHeader,
    transaction_builder=PragueTransactionBuilder,
)

LITY = EvmProfile(
    name="lity",
    state_class=LityState,
    vm_class=PragueVM,
    header_class=PragueBlockHeader,
    transaction_builder=PragueTransactionBuilder,
)

PROFILES: dict[str, EvmProfile] = {"cvm": CVM, "lity": LITY}


def get_profile(name: str) -> EvmProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown EVM profile {name!r}; known: {sorted(PROFILES)}") from None
