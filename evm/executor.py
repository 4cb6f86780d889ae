"""Block execution: py-evm for everything, a fast path for plain value transfers.

`BlockExecutor` applies transactions one by one on a `StateDB` opened at the parent's state
root, then computes the state root, the transactions root, the receipts root and the logs
bloom once for the whole block (`finish`). A transaction that py-evm would reject (bad nonce,
insufficient funds, over the block's gas) raises `TransactionInvalid` and leaves the state as
it was, so a block builder can skip it.

The fast path (`_apply_transfer`) handles a value transfer to an account without code, with no
data, in exactly py-evm's semantics (validation order and messages, gas purchase, value move,
refund, tip to the coinbase, EIP-161 clearing of touched empty accounts) without building an EVM
message or computation. `tests/unit/test_fast_path.py` proves it equal to py-evm on random
transfers, including failures.

Fees: a transaction pays gasUsed x its effective price, min(fee cap, base fee + priority fee)
(`SignedTx.price`; legacy: the gas price), with the block's `BlockEnv.base_fee` (the header's
baseFeePerGas, what BASEFEE answers). Unlike Ethereum nothing is burned and a fee cap below the
base fee is not invalid (it is a low-price transaction, SPEC §4, and pays its fee cap): the CVM
state classes (evm/profiles.py) pay the whole fee to the coinbase. A `BlockEnv.fee_recipient`
sends it elsewhere instead: CyberMiles pays every fee into the block's award pool, held by the
Hold account (SPEC §4), while the coinbase (the COINBASE opcode, the header's miner) stays the
proposer's address. The executor counts what the block paid (`fees`, system transactions' fees
included) and what freegas burned (`burned`) for the block's end: the award pool and the supply
counters.

ENI library versions: `BlockEnv.eni_versions` holds the versions the chain state enables (plain
data: evm never reads governance's state itself). Building the env turns them into the block's
`eni.Registry` (the defaults with those on top) and refuses, with `UnknownEniVersion`, a version
this node does not ship; `execution_context` hands the registry to the ENI opcode and precompile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from eth._utils.address import generate_contract_address
from eth.abc import ComputationAPI, ReceiptAPI
from eth.constants import EMPTY_SHA3, SECPK1_N
from eth.vm.execution_context import ExecutionContext
from eth.vm.forks.byzantium.constants import (
    EIP658_TRANSACTION_STATUS_CODE_FAILURE,
    EIP658_TRANSACTION_STATUS_CODE_SUCCESS,
)
from eth.vm.forks.prague import PragueVM
from eth_bloom import BloomFilter
from eth_typing import Address, BlockNumber, Hash32
from eth_utils import ValidationError

from evm.cvm import CvmExecutionContext
from evm.eni import Registry
from evm.profiles import EvmProfile
from evm.receipt_decoding import make_receipt
from evm.state import StateDB
from evm.system import SystemTxHandler
from evm.transactions import SignedTx, gas_limit_shortfall
from evm.trie import ordered_trie_root

_HALF_N = SECPK1_N // 2
_STATUS_CODES = (EIP658_TRANSACTION_STATUS_CODE_FAILURE, EIP658_TRANSACTION_STATUS_CODE_SUCCESS)


class TransactionInvalid(Exception):
    """The transaction cannot be included in this block (py-evm would reject it)."""


class TransactionCrashed(TransactionInvalid):
    """Executing the transaction raised something no rule expects. The state is as before it;
    a block builder leaves the transaction out and evicts it, a validator refuses the block."""


@dataclass(frozen=True)
class BlockEnv:
    """What the EVM sees of the block being built: number, time, coinbase, randomness, and
    the rule inputs the chain reads from state for it (validators, freegas, ENI versions)."""

    number: int
    timestamp: int
    coinbase: bytes
    gas_limit: int
    mix_hash: bytes
    chain_id: int
    prev_hashes: tuple[bytes, ...] = ()  # parent first, at most 256
    # Owners of the current validators and backups: what ISVALIDATOR answers (evm/cvm.py).
    validator_owners: frozenset[bytes] = frozenset()
    # The randomness (mix_hash) of an earlier block by number, None for unknown or future
    # blocks: what the randomness precompile's randomAt(height) reads.
    past_randomness: Callable[[int], bytes | None] = field(default=lambda _number: None)
    # The chain's freegas terms (SPEC §4); None: every transaction pays for itself.
    freegas: FreegasTerms | None = None
    # Where transaction fees go; None: the coinbase, as in Ethereum.
    fee_recipient: bytes | None = None
    # The block's base fee per gas (its header's baseFeePerGas): part of every fee, not burned.
    base_fee: int = 0
    # ENI function name -> the version governance enabled ("vX.Y.Z"); the others run their
    # default version. The ENI opcode and precompile run `eni_registry`, built from it.
    eni_versions: Mapping[str, str] = field(default_factory=dict)
    eni_registry: Registry = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built (and checked: UnknownEniVersion) once per env, not per ENI call.
        object.__setattr__(self, "eni_registry", Registry.governed(self.eni_versions))

    @property
    def fees_to(self) -> bytes:
        return self.coinbase if self.fee_recipient is None else self.fee_recipient


@dataclass(frozen=True)
class FreegasTerms:
    """Price 0, a gas limit above `min_gas`, a call with data: the called contract pays
    gas x `gas_price` (SPEC §4). The price is the one paid in the block: a fee cap of 0, or a
    priority fee of 0 where the base fee is 0."""

    gas_price: int
    min_gas: int  # the low-price gas limit; freegas needs strictly more

    def applies(self, tx: SignedTx, base_fee: int) -> bool:
        return tx.price(base_fee) == 0 and tx.gas > self.min_gas and bool(tx.to) and bool(tx.data)

    def prepayment(self, tx: SignedTx) -> int:
        return tx.gas * self.gas_price


@dataclass(frozen=True)
class _Applied:
    """One executed transaction: its receipt's status, gas and logs, the fee it paid to the
    fee recipient and the wei it burned (a freegas contract's payment)."""

    status: int
    gas: int
    logs: Sequence[Any]
    fee: int = 0
    burned: int = 0


@dataclass
class ExecutionResult:
    """Everything a block's header and store entry need after execution."""

    state_root: bytes
    transaction_root: bytes
    receipt_root: bytes
    bloom: int
    gas_used: int
    transactions: list[SignedTx]
    receipts: list[ReceiptAPI]
    contract_addresses: list[bytes | None] = field(default_factory=list)


def execution_context(env: BlockEnv) -> ExecutionContext:
    # A CvmExecutionContext so the CVM opcodes reach validator_owners from any state built here
    # (blocks and eth_call alike); stock py-evm states accept it as a plain ExecutionContext.
    return CvmExecutionContext(
        coinbase=Address(env.coinbase),
        timestamp=env.timestamp,
        block_number=BlockNumber(env.number),
        difficulty=0,
        mix_hash=Hash32(env.mix_hash),
        gas_limit=env.gas_limit,
        prev_hashes=cast(list[Hash32], list(env.prev_hashes)),  # Hash32 is a NewType: no call
        chain_id=env.chain_id,
        base_fee_per_gas=env.base_fee,
        excess_blob_gas=0,
        validator_owners=env.validator_owners,
        past_randomness=env.past_randomness,
        eni_registry=env.eni_registry,
    )


def contract_address_of(tx: SignedTx) -> bytes | None:
    if tx.to or tx.is_system:
        return None
    return generate_contract_address(Address(tx.sender), tx.nonce)


class BlockExecutor:
    """Applies the transactions of one block on top of the parent state."""

    def __init__(
        self,
        profile: EvmProfile,
        db: Any,
        parent_state_root: bytes,
        env: BlockEnv,
        *,
        fast_path: bool = True,
        system: SystemTxHandler | None = None,
    ) -> None:
        self.env = env
        self.system = system  # delivers staking/governance transactions; None: refused
        self.profile = profile
        self.state = profile.state_class(db, execution_context(env), parent_state_root)
        self.account_db: StateDB = self.state._account_db  # type: ignore[attr-defined]
        self.fast_path = fast_path
        self.gas_used = 0
        self.fees = 0  # wei the block's transactions paid to `env.fees_to`
        self.burned = 0  # wei destroyed by freegas payments
        self.transactions: list[SignedTx] = []
        self.receipts: list[ReceiptAPI] = []
        self.contract_addresses: list[bytes | None] = []

    def use_freegas_terms(self, terms: FreegasTerms) -> None:
        """The freegas terms from the next transaction on: governance changed gas_price or the
        low-price gas limit within the block (SPEC §7: in force for the next transaction)."""
        self.env = dataclasses.replace(self.env, freegas=terms)

    def apply(self, tx: SignedTx) -> ReceiptAPI:
        """Execute `tx` and record its receipt, or raise and leave the state as it was:
        TransactionInvalid when a rule refuses it, TransactionCrashed when execution failed in
        a way no rule foresees (a bug, or an input nobody thought of). Either way the caller
        can go on with the next transaction."""
        limit = self._check_fits(tx)
        # Per-transaction CVM values (RAND counter, FREEGAS mark) start afresh for every
        # transaction, fast-path transfers included, so `state.freegas_marked` is this one's.
        self.state.begin_transaction()
        self.state.lock_changes()
        checkpoint = self.account_db.record()
        try:
            applied = self._execute(tx)
            if applied.gas > limit:
                raise TransactionInvalid(f"used {applied.gas} gas, above its gas limit {limit}")
        except TransactionInvalid:
            self.account_db.discard(checkpoint)
            raise
        except Exception as exc:
            self.account_db.discard(checkpoint)
            raise TransactionCrashed(f"execution failed unexpectedly: {exc!r}") from exc
        self.gas_used += applied.gas
        self.fees += applied.fee
        self.burned += applied.burned
        receipt = make_receipt(
            tx.type_id or None, _STATUS_CODES[applied.status], self.gas_used, applied.logs
        )
        self.transactions.append(tx)
        self.receipts.append(receipt)
        self.contract_addresses.append(contract_address_of(tx) if applied.status else None)
        return receipt

    def _check_fits(self, tx: SignedTx) -> int:
        """The gas limit covers the least the transaction can be charged (intrinsic gas and
        the calldata floor) and fits the block's remaining gas, so neither the transaction's
        nor the block's gasUsed can exceed its limit. Returns that limit: a system
        transaction's is the gas its handler will charge."""
        if tx.is_system:
            limit = self._system_handler().gas_of(tx, self.account_db)
        else:
            limit = tx.gas
            shortfall = gas_limit_shortfall(tx.gas, tx.intrinsic_gas, tx.data)
            if shortfall is not None:
                raise TransactionInvalid(shortfall)
        if self.gas_used + limit > self.env.gas_limit:
            raise TransactionInvalid(
                f"transaction gas {limit} exceeds the block's remaining gas "
                f"{self.env.gas_limit - self.gas_used}"
            )
        return limit

    def _system_handler(self) -> SystemTxHandler:
        if self.system is None:
            raise TransactionInvalid("staking and governance transactions are not enabled")
        return self.system

    def _execute(self, tx: SignedTx) -> _Applied:
        if tx.is_system:
            return self._apply_system(tx, self._system_handler())
        if self.env.freegas is not None and self.env.freegas.applies(tx, self.env.base_fee):
            return self._apply_freegas(tx, self.env.freegas)
        if self.fast_path and tx.is_plain_transfer_shape:
            result = self._apply_transfer(tx)
            if result is not None:
                return result
        return self._apply_evm(tx)

    def _apply_system(self, tx: SignedTx, handler: SystemTxHandler) -> _Applied:
        """The handler applies it; the executor keeps the nonce rule every transaction has."""
        nonce = self.account_db.get_nonce(tx.sender)
        if nonce != tx.nonce:
            raise TransactionInvalid(
                f"Invalid transaction nonce: Expected {nonce}, but got {tx.nonce}"
            )
        result = handler.deliver(tx, self.account_db, self.env.number, self.env.timestamp)
        self.account_db.increment_nonce(tx.sender)
        return _Applied(int(result.success), result.gas_used, result.logs, fee=result.fee)

    def _apply_evm(self, tx: SignedTx) -> _Applied:
        try:
            computation: ComputationAPI = self.state.apply_checked_transaction(tx.tx, tx.hash)
        except ValidationError as exc:
            raise TransactionInvalid(str(exc)) from None
        gas = PragueVM.finalize_gas_used(tx.tx, computation)
        status = 0 if computation.is_error else 1
        fee = gas * tx.price(self.env.base_fee)  # what the CVM state credited the coinbase
        self._redirect_fee(fee)
        return _Applied(status, gas, computation.get_log_entries(), fee=fee)

    def _redirect_fee(self, fee: int) -> None:
        """Move the fee py-evm paid the coinbase on to the fee recipient. A coinbase left empty
        is deleted, as EIP-161 would have done had the fee never reached it."""
        db, coinbase, recipient = self.account_db, self.env.coinbase, self.env.fees_to
        if recipient == coinbase or fee == 0:
            return
        db.set_balance(coinbase, db.get_balance(coinbase) - fee)
        db.set_balance(recipient, db.get_balance(recipient) + fee)
        if db.account_is_empty(coinbase):
            db.delete_account(coinbase)

    def _apply_freegas(self, tx: SignedTx, terms: FreegasTerms) -> _Applied:
        """The contract prepays gas x gas_price and the call runs at price 0. If the called
        code marked the transaction freegas (opcode 0xf8 or the precompile), the contract gets
        the unused gas back and pays gasUsed x gas_price, burned (py-evm credits the coinbase
        gasUsed x 0); the receipt follows the call. If not, everything the call did is undone,
        the contract keeps its balance, and the sender's nonce alone moves: status 0, gasUsed 0,
        nobody pays (SPEC §4; Travis kept the failed call's state changes, a bug)."""
        db, contract = self.account_db, tx.to
        prepay = terms.prepayment(tx)
        balance = db.get_balance(contract)
        if balance < prepay:
            raise TransactionInvalid(
                f"freegas: contract balance {balance} cannot prepay {prepay} (gas x gas price)"
            )
        checkpoint = db.record()
        db.set_balance(contract, balance - prepay)
        try:
            computation: ComputationAPI = self.state.apply_checked_transaction(tx.tx, tx.hash)
        except ValidationError as exc:
            raise TransactionInvalid(str(exc)) from None  # apply() undoes the prepayment
        if not getattr(self.state, "freegas_marked", False):
            db.discard(checkpoint)
            db.increment_nonce(tx.sender)
            return _Applied(0, 0, ())
        db.commit(checkpoint)
        gas = PragueVM.finalize_gas_used(tx.tx, computation)
        db.set_balance(contract, db.get_balance(contract) + (tx.gas - gas) * terms.gas_price)
        status = 0 if computation.is_error else 1
        burned = gas * terms.gas_price
        return _Applied(status, gas, computation.get_log_entries(), burned=burned)

    def _apply_transfer(self, tx: SignedTx) -> _Applied | None:
        """A plain transfer applied directly; None when the recipient needs the EVM."""
        db = self.account_db
        to = tx.to
        if db.get_code_hash(to) != EMPTY_SHA3 or to in self.profile.precompile_addresses:
            return None
        sender = tx.sender
        raw_tx: Any = tx.tx
        # Validation in the CVM state's order, with its checks (Homestead s-value, Frontier
        # balances and nonce, Cancun max-fee balance; no base-fee refusal).
        if raw_tx.s > _HALF_N or raw_tx.s == 0:
            raise TransactionInvalid("Invalid signature S value")
        price = tx.price(self.env.base_fee)
        balance = db.get_balance(sender)
        gas_cost = tx.gas * price
        if balance < gas_cost:
            raise TransactionInvalid(
                f"Sender {sender!r} cannot afford txn gas {gas_cost} with account balance {balance}"
            )
        if balance < tx.value + gas_cost:
            raise TransactionInvalid(
                "Sender does not have enough balance to cover transaction value and gas "
                f" (has {balance}, needs {tx.value + gas_cost})"
            )
        nonce = db.get_nonce(sender)
        if nonce != tx.nonce:
            raise TransactionInvalid(
                f"Invalid transaction nonce: Expected {nonce}, but got {tx.nonce}"
            )
        if balance < tx.gas * tx.fee_cap:
            raise TransactionInvalid("Sender has insufficient funds for blob fee.")
        gas_used = tx.intrinsic_gas
        db.set_balance(sender, balance - gas_used * price - tx.value)
        db.increment_nonce(sender)
        if tx.value:
            db.set_balance(to, db.get_balance(to) + tx.value)
        fee = gas_used * price
        recipient = self.env.fees_to
        db.set_balance(recipient, db.get_balance(recipient) + fee)
        for touched in (self.env.coinbase, recipient, to):  # py-evm touches the coinbase too
            if db.account_exists(touched) and db.account_is_empty(touched):
                db.delete_account(touched)
        return _Applied(1, gas_used, (), fee=fee)

    def finish(self) -> ExecutionResult:
        """State root, roots of transactions and receipts, bloom; writes state nodes to db."""
        self.account_db.persist()
        bloom = BloomFilter()
        for receipt in self.receipts:
            bloom |= receipt.bloom
        return ExecutionResult(
            state_root=self.account_db.state_root,
            transaction_root=ordered_trie_root([tx.raw for tx in self.transactions]),
            receipt_root=ordered_trie_root([r.encode() for r in self.receipts]),
            bloom=int(bloom),
            gas_used=self.gas_used,
            transactions=list(self.transactions),
            receipts=list(self.receipts),
            contract_addresses=list(self.contract_addresses),
        )
