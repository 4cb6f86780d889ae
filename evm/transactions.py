"""Decoding and stateless checks of signed transactions.

`decode_transaction` turns raw bytes from the wire into a `SignedTx`: the py-evm transaction
object plus everything the mempool and block builder need, computed once (hash, sender, prices,
maximum cost). The sender is recovered exactly once per transaction and cached on the py-evm
object itself (`sender` is a cached property there), so py-evm's execution never recovers it
again. Batches can be recovered in a process pool (`recover_senders`), because coincurve holds
the GIL and threads do not help.

Accepted: legacy (EIP-155 protected only), EIP-2930, EIP-1559 and EIP-7702 transactions.
Refused with a clear error: blob transactions, unprotected legacy transactions, a wrong chain
id, invalid signatures, oversized encodings, a gas limit below the intrinsic gas or below
Prague's calldata floor (EIP-7623: 21000 + 10 per calldata token, charged after execution when
it exceeds what the transaction used, so a limit below it would be charged above the limit).
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from coincurve import PublicKey
from eth.abc import SignedTransactionAPI
from eth.constants import SECPK1_N
from eth.vm.forks.prague.transactions import PragueTransactionBuilder
from eth_hash.auto import keccak
from eth_utils import ValidationError

from evm.errors import (
    GasLimitExceedsBlock,
    IntrinsicGasTooLow,
    InvalidSender,
    InvalidTransaction,
    TipAboveFeeCap,
)
from evm.rlp_raw import encode_list_payload, encode_uint, item_offsets, list_payload
from evm.tx_codec import TxFields, decode_fields, evm_transaction, fields_of

MAX_TX_BYTES = 128 * 1024
BLOB_TX_TYPE = 3
SET_CODE_TX_TYPE = 4
UINT256_LIMIT = 2**256
TX_BASE_GAS = 21_000
FLOOR_GAS_PER_TOKEN = 10  # EIP-7623 TOTAL_COST_FLOOR_PER_TOKEN
TOKENS_PER_NONZERO_BYTE = 4  # EIP-7623 STANDARD_TOKEN_COST


def data_floor_gas(data: bytes) -> int:
    """EIP-7623's least gas a transaction with `data` is charged: 21000 + 10 x tokens, where a
    zero byte is one token and any other byte four (py-evm's PragueTransactionExecutor)."""
    zeros = data.count(0)
    tokens = zeros + (len(data) - zeros) * TOKENS_PER_NONZERO_BYTE
    return TX_BASE_GAS + FLOOR_GAS_PER_TOKEN * tokens


def is_system_envelope(type_id: int, to: bytes, value: int, fee_cap: int, gas: int) -> bool:
    """SPEC §5: a legacy transaction with no recipient, value 0, price 0 and gas 0 (no EVM
    transaction can have gas 0) is a staking/governance transaction."""
    return type_id == 0 and not to and value == 0 and fee_cap == 0 and gas == 0


def gas_limit_shortfall(gas: int, intrinsic: int, data: bytes) -> str | None:
    """Why a gas limit cannot cover the least a transaction is charged (its intrinsic gas,
    and the calldata floor), or None when it can. Admission, block building and block
    validation all refuse with this message."""
    if intrinsic > gas:
        return f"intrinsic gas too low: have {gas}, want {intrinsic}"
    floor = data_floor_gas(data)
    if floor > gas:
        return (
            f"intrinsic gas too low: have {gas}, want {floor} (the EIP-7623 calldata floor: "
            f"21000 + {FLOOR_GAS_PER_TOKEN} per calldata token)"
        )
    return None


@dataclass(frozen=True, slots=True, eq=False)
class SignedTx:
    """A decoded, signature-checked transaction (implements the mempool's PoolTransaction)."""

    tx: SignedTransactionAPI
    raw: bytes
    hash: bytes
    sender: bytes
    type_id: int
    nonce: int
    gas: int
    tip: int  # the priority fee per gas, at most fee_cap (legacy: the gas price)
    fee_cap: int
    value: int
    to: bytes  # b"" for contract creation
    data: bytes
    max_cost: int
    intrinsic_gas: int

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_system(self) -> bool:
        """The SPEC §5 envelope of a staking/governance transaction (evm/system.py)."""
        return is_system_envelope(self.type_id, self.to, self.value, self.fee_cap, self.gas)

    def price(self, base_fee: int) -> int:
        """What the sender pays per gas in a block with `base_fee`: min(fee cap, base fee +
        priority fee) (legacy: the gas price). `tip` is the priority fee, capped by the fee
        cap, so this is also the price at base fee 0."""
        return min(self.fee_cap, base_fee + self.tip)

    @property
    def is_plain_transfer_shape(self) -> bool:
        """No data, a recipient and no authorizations: may take the transfer fast path."""
        return not self.data and bool(self.to) and self.type_id != SET_CODE_TX_TYPE


def _type_id(raw: bytes) -> int:
    """EIP-2718: a first byte up to 0x7f is an envelope type; a legacy tx is an RLP list."""
    first = raw[0]
    return first if first <= 0x7F else 0


def decode_transaction(
    raw: bytes,
    *,
    chain_id: int,
    block_gas_limit: int,
    sender: bytes | None = None,
) -> SignedTx:
    """Decode and statelessly validate one raw transaction; raise a `TxRejected` subclass.

    The common types are read by evm/tx_codec.py's decoder; what it is not sure of (EIP-7702,
    anything malformed) goes through py-evm's, which also words the refusals."""
    if not raw:
        raise InvalidTransaction("empty transaction")
    if len(raw) > MAX_TX_BYTES:
        raise InvalidTransaction(f"oversized transaction: {len(raw)} bytes > {MAX_TX_BYTES}")
    type_id = _type_id(raw)
    if type_id == BLOB_TX_TYPE:
        raise InvalidTransaction("blob transactions (type 3) are not supported on this chain")
    if raw[0] == 0 or type_id not in (0, 1, 2, SET_CODE_TX_TYPE):
        # Type 0x00 would be a typed envelope of a legacy tx, which EIP-2718 does not define.
        raise InvalidTransaction(f"unsupported transaction type {raw[0]}")
    fields = decode_fields(raw)
    tx = None if fields is not None else _decode_with_py_evm(raw)
    if fields is None:
        fields = fields_of(tx, type_id)
    tx_chain_id = fields.chain_id
    if tx_chain_id is None:
        raise InvalidTransaction("only replay-protected (EIP-155) transactions are accepted")
    if tx_chain_id != chain_id:
        raise InvalidTransaction(
            f"invalid chain id: transaction has {tx_chain_id}, this chain is {chain_id}"
        )
    return _checked(fields, tx, raw, block_gas_limit, sender)


def _decode_with_py_evm(raw: bytes) -> Any:
    """py-evm's decoding, for what tx_codec's decoder left to it; refusals say why."""
    try:
        tx = PragueTransactionBuilder.decode(raw)
    except Exception as exc:
        # rlp and py-evm raise many unrelated exception types for bad bytes; every one of them
        # means the same thing here: these bytes are not a transaction.
        raise InvalidTransaction(f"malformed transaction: {exc}") from None
    if tx.encode() != raw:
        # Non-canonical RLP would give one transaction two hashes.
        raise InvalidTransaction("malformed transaction: non-canonical encoding")
    return tx


def _checked(
    fields: TxFields, tx: Any, raw: bytes, block_gas_limit: int, sender: bytes | None
) -> SignedTx:
    """The stateless rules on `fields`; `tx` is py-evm's object when py-evm decoded it, None
    when tx_codec did (then it is built from the fields once they passed)."""
    tip, fee_cap, gas, value = fields.tip, fields.fee_cap, fields.gas, fields.value
    if tip > fee_cap:
        raise TipAboveFeeCap(
            f"max priority fee per gas higher than max fee per gas: {tip} > {fee_cap}"
        )
    if fee_cap >= UINT256_LIMIT or value >= UINT256_LIMIT:
        raise InvalidTransaction("fee or value exceeds 2^256-1")
    if gas >= 2**64:
        raise InvalidTransaction("gas limit exceeds 2^64-1")
    if gas > block_gas_limit:
        raise GasLimitExceedsBlock(
            f"exceeds block gas limit: tx gas {gas} > block gas limit {block_gas_limit}"
        )
    intrinsic = fields.intrinsic_gas if tx is None else _py_evm_intrinsic_gas(tx)
    # A system transaction (gas 0, price 0, no recipient, no value: evm/system.py) is charged
    # by its handler, not by gas: the intrinsic gas rules do not apply to it.
    is_system = is_system_envelope(fields.type_id, fields.to, value, fee_cap, gas)
    shortfall = None if is_system else gas_limit_shortfall(gas, intrinsic, fields.data)
    if shortfall is not None:
        raise IntrinsicGasTooLow(shortfall)
    if fields.nonce >= 2**64 - 1:
        raise InvalidTransaction("nonce exceeds 2^64-2 (EIP-2681)")
    if sender is None:
        sender = recover_sender(fields, raw)
    if tx is None:
        tx = evm_transaction(fields, raw)
    tx.__dict__["sender"] = sender
    if fields.type_id == SET_CODE_TX_TYPE:
        # Rare enough to afford py-evm's full field validation (authorization list shape).
        try:
            tx.validate()
        except ValidationError as exc:
            raise InvalidTransaction(f"invalid transaction: {exc}") from None
    return _signed_tx(tx, raw, fields, sender, intrinsic)


def _py_evm_intrinsic_gas(tx: Any) -> int:
    try:
        return int(tx.intrinsic_gas)
    except ValidationError as exc:
        raise InvalidTransaction(f"invalid transaction: {exc}") from None


def signing_message(raw: bytes, type_id: int, chain_id: int) -> bytes:
    """The bytes a sender signed, cut from the raw encoding (no RLP re-encoding).

    Typed transactions sign `type || rlp(fields without y_parity, r, s)`; EIP-155 legacy ones
    sign `rlp(nonce, gas_price, gas, to, value, data, chain_id, 0, 0)`.
    """
    if type_id:
        payload = list_payload(raw[1:])
        offsets = item_offsets(payload)
        return raw[:1] + encode_list_payload(payload[: offsets[-4]])
    payload = list_payload(raw)
    offsets = item_offsets(payload)
    return encode_list_payload(payload[: offsets[6]] + encode_uint(chain_id) + b"\x80\x80")


def with_signature(raw: bytes, v: int, r: int, s: int) -> bytes:
    """`raw` (a signed legacy or typed transaction) with its last three fields, the signature
    (v or y_parity, r, s), replaced by these; nothing else is re-encoded."""
    head = raw[:1] if _type_id(raw) else b""
    payload = list_payload(raw[len(head) :])
    fields = payload[: item_offsets(payload)[-4]]
    signature = b"".join(encode_uint(n) for n in (v, r, s))
    return head + encode_list_payload(fields + signature)


def recover_sender(fields: TxFields, raw: bytes) -> bytes:
    """The signer's address, with the signature rules py-evm applies (low s, valid v/r/s).

    Uses coincurve directly: one signing-hash computation and one recovery, where py-evm's
    validate() + sender would recover the public key three times.
    """
    r, s = fields.r, fields.s
    recovery_id = fields.recovery_id
    if recovery_id not in (0, 1):
        raise InvalidSender("invalid sender: bad signature (v / y_parity out of range)")
    if not (0 < r < SECPK1_N) or not (0 < s <= SECPK1_N // 2):
        raise InvalidSender("invalid sender: bad signature (r or s out of range)")
    message_hash = keccak(signing_message(raw, fields.type_id, fields.chain_id or 0))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((recovery_id,))
    try:
        public_key = PublicKey.from_signature_and_message(signature, message_hash, hasher=None)
    except Exception:  # coincurve raises ValueError or its own error for unrecoverable keys
        raise InvalidSender("invalid sender: bad signature (no public key)") from None
    return keccak(public_key.format(compressed=False)[1:])[12:]


def recover_sender_of_raw(raw: bytes) -> bytes | None:
    """Worker-side recovery for the process pool: decode and recover, None when invalid."""
    try:
        return recover_sender(_fields_of_raw(raw), raw)
    except Exception:
        return None


def _fields_of_raw(raw: bytes) -> TxFields:
    """Fields of bytes known to decode (stored, or about to be checked again)."""
    fields = decode_fields(raw)
    if fields is None:
        fields = fields_of(PragueTransactionBuilder.decode(raw), _type_id(raw))
    return fields


def recover_senders_of_raws(raws: Sequence[bytes]) -> list[bytes | None]:
    return [recover_sender_of_raw(raw) for raw in raws]


class SenderRecoveryPool:
    """Recovers the senders of the tail of large batches in worker processes.

    The caller keeps decoding (and recovering) the head of the batch while the workers recover
    the tail, so both cores work: waiting for a pool to do all of it would only move the work.
    `worker_share` balances the two: a worker pays for decoding too, the caller decodes anyway.
    """

    def __init__(self, workers: int, *, min_batch: int = 64, worker_share: float = 0.6) -> None:
        self._workers = workers
        self._min_batch = min_batch
        self._worker_share = worker_share
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Fork the worker processes now. A node calls it at start-up, before its worker
        threads exist: forking while another thread holds a lock the child needs is unsafe,
        and the pool would otherwise fork at the first large batch, with a block executing."""
        if self._workers >= 1 and self._pool is None:
            self._pool = self._new_pool()
            self._pool.submit(int)  # forks every worker now (the fork context), ~15 ms

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers, initializer=_worker_setup, initargs=(os.getpid(),)
        )

    def _pool_for(self, raws: Sequence[bytes]) -> ProcessPoolExecutor | None:
        """The pool, started if need be, when `raws` are worth shipping (None: recover here)."""
        if self._workers < 1 or len(raws) < self._min_batch:
            return None
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

    def submit(self, raws: Sequence[bytes]) -> tuple[int, Callable[[], list[bytes | None]]]:
        """Ship the tail of `raws`; returns where it starts and how to wait for its senders."""
        pool = self._pool_for(raws)
        if pool is None:
            return len(raws), list
        start = int(len(raws) * (1 - self._worker_share))
        tail = list(raws[start:])
        size = -(-len(tail) // self._workers)
        futures = [
            pool.submit(recover_senders_of_raws, tail[i : i + size])
            for i in range(0, len(tail), size)
        ]

        def wait() -> list[bytes | None]:
            return [sender for future in futures for sender in future.result()]

        return start, wait

    def ship(self, raws: Sequence[bytes], piece: int) -> list[Future[list[bytes | None]]]:
        """Ship ALL of `raws`, in pieces of `piece`, recovered in order: per piece a future of
        its senders; [] when there are no workers or `raws` is too small to ship. For a
        caller that waits without blocking its event loop and admits each piece as it comes:
        the loop recovers nothing itself. (On the loop, every recovery is a C call that lets go
        of the GIL, and getting it back from a thread executing a block takes up to a switch
        interval: a few dozen recoveries held a request for tens of milliseconds.)"""
        pool = self._pool_for(raws)
        if pool is None:
            return []
        return [
            pool.submit(recover_senders_of_raws, list(raws[i : i + piece]))
            for i in range(0, len(raws), piece)
        ]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _worker_setup(parent: int) -> None:
    """A recovery worker leaves Ctrl-C to the node (it reaches the whole process group; the
    node shuts the pool down) and dies with it, even when it is killed with SIGKILL, which
    would otherwise leave the worker orphaned, waiting on its queue forever (Linux: the
    parent-death signal; elsewhere it goes with the pool's queue)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent:  # the node died before the signal was armed
        os._exit(0)


def load_stored_transaction(raw: bytes, sender: bytes) -> SignedTx:
    """Rebuild a transaction read back from our own block store (already validated once)."""
    fields = decode_fields(raw)
    if fields is None:
        tx: Any = PragueTransactionBuilder.decode(raw)
        fields = fields_of(tx, _type_id(raw))
        intrinsic = int(tx.intrinsic_gas)
    else:
        tx = evm_transaction(fields, raw)
        intrinsic = fields.intrinsic_gas
    tx.__dict__["sender"] = sender
    return _signed_tx(tx, raw, fields, sender, intrinsic)


def _signed_tx(tx: Any, raw: bytes, fields: TxFields, sender: bytes, intrinsic: int) -> SignedTx:
    fee_cap = fields.fee_cap
    return SignedTx(
        tx=tx,
        raw=raw,
        hash=keccak(raw),
        sender=sender,
        type_id=fields.type_id,
        nonce=fields.nonce,
        gas=fields.gas,
        tip=min(fields.tip, fee_cap),
        fee_cap=fee_cap,
        value=fields.value,
        to=fields.to,
        data=fields.data,
        max_cost=fields.value + fields.gas * fee_cap,
        intrinsic_gas=intrinsic,
    )
