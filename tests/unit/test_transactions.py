"""Decoding, sender recovery and stateless checks of raw transactions."""

from __future__ import annotations

import random

import pytest
import rlp
from eth.constants import SECPK1_N
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node import errors
from evm.profiles import CVM
from evm.transactions import (
    MAX_TX_BYTES,
    decode_transaction,
    recover_sender_of_raw,
    signing_message,
)

CHAIN_ID = 1234
GAS_LIMIT = 30_000_000
KEY = b"\x05" * 32
SENDER = bytes.fromhex(Account.from_key(KEY).address[2:])
TO = to_checksum_address(b"\x09" * 20)


def signed(fields: dict, key: bytes = KEY) -> bytes:
    return bytes(Account.sign_transaction({"chainId": CHAIN_ID, **fields}, key).raw_transaction)


def decode(raw: bytes):
    return decode_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=GAS_LIMIT)


def _authorization() -> object:
    return Account.sign_authorization(
        {"chainId": CHAIN_ID, "address": TO, "nonce": 1}, b"\x06" * 32
    )


def random_fields(rng: random.Random, kind: int) -> dict:
    fields: dict = {
        "nonce": rng.randrange(2**20),
        "gas": rng.randrange(60_000, 1_000_000),
        "value": rng.randrange(2**80),
        "data": "0x" + rng.randbytes(rng.choice([0, 1, 40, 300])).hex(),
    }
    if rng.random() < 0.9 or kind == 4:
        fields["to"] = TO
    if kind in (0, 1):
        fields["gasPrice"] = rng.randrange(2 * 10**9, 10**12)
    else:
        tip = rng.randrange(2 * 10**9, 10**11)
        fields["maxPriorityFeePerGas"] = tip
        fields["maxFeePerGas"] = tip + rng.randrange(10**10)
    if kind:
        fields["type"] = kind
    if kind in (1, 2, 4):
        fields["accessList"] = [
            {"address": TO, "storageKeys": ["0x" + rng.randbytes(32).hex()]}
            for _ in range(rng.randrange(3))
        ]
    if kind == 4:
        fields["authorizationList"] = [_authorization()]
    return fields


@pytest.mark.parametrize("kind", [0, 1, 2, 4])
def test_sender_and_signing_message_match_pyevm(kind: int) -> None:
    rng = random.Random(kind)
    for _ in range(15):
        raw = signed(random_fields(rng, kind))
        tx = decode(raw)
        reference = CVM.transaction_builder.decode(raw)
        assert signing_message(raw, tx.type_id, CHAIN_ID) == reference.get_message_for_signing()
        assert tx.sender == SENDER == reference.sender
        assert recover_sender_of_raw(raw) == SENDER
        assert tx.type_id == kind
        assert tx.max_cost == tx.value + tx.gas * tx.fee_cap


def test_given_sender_is_trusted_and_cached_on_the_pyevm_object() -> None:
    raw = signed({"to": TO, "value": 1, "gas": 21000, "gasPrice": 2 * 10**9, "nonce": 0})
    tx = decode_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=GAS_LIMIT, sender=SENDER)
    assert tx.tx.sender == SENDER


def _legacy(**overrides: object) -> dict:
    return {"to": TO, "value": 1, "gas": 21000, "gasPrice": 2 * 10**9, "nonce": 0, **overrides}


def _high_s(raw: bytes) -> bytes:
    items = rlp.decode(raw)
    s = int.from_bytes(items[8], "big")
    v = int.from_bytes(items[6], "big")
    flipped_v = v + 1 if v % 2 == 1 else v - 1  # (r, N - s) is the same signature, other parity
    items[8] = (SECPK1_N - s).to_bytes(32, "big")
    items[6] = flipped_v.to_bytes(2, "big")
    return rlp.encode(items)


def _unprotected() -> bytes:
    tx = Account.sign_transaction(
        {k: v for k, v in _legacy().items()}, KEY
    )  # chainId absent -> pre-EIP-155 signature
    return bytes(tx.raw_transaction)


REJECTIONS = [
    ("empty", lambda: b"", errors.InvalidTransaction, "empty"),
    ("garbage", lambda: b"\xf8\xff\x00", errors.InvalidTransaction, "malformed"),
    ("blob", lambda: b"\x03" + rlp.encode([b"\x01"] * 14), errors.InvalidTransaction, "blob"),
    ("unknown type", lambda: b"\x05\xc0", errors.InvalidTransaction, "type 5"),
    # py-evm raises UnrecognizedTransactionType (no ValueError) for the two ends of 0x00-0x7f.
    ("type 0x00", lambda: b"\x00" + signed(_legacy()), errors.InvalidTransaction, "type 0"),
    ("type 0x7f", lambda: b"\x7f\xc0", errors.InvalidTransaction, "type 127"),
    (
        "wrong chain",
        lambda: bytes(Account.sign_transaction({**_legacy(), "chainId": 1}, KEY).raw_transaction),
        errors.InvalidTransaction,
        "chain id",
    ),
    ("unprotected", _unprotected, errors.InvalidTransaction, "replay-protected"),
    ("high s", lambda: _high_s(signed(_legacy())), errors.InvalidSender, "invalid sender"),
    ("intrinsic", lambda: signed(_legacy(gas=20_000)), errors.IntrinsicGasTooLow, "intrinsic"),
    (
        "over block gas",
        lambda: signed(_legacy(gas=GAS_LIMIT + 1)),
        errors.GasLimitExceedsBlock,
        "block gas limit",
    ),
    (
        "tip above cap",
        lambda: signed(
            {
                "to": TO,
                "value": 0,
                "gas": 21000,
                "nonce": 0,
                "maxFeePerGas": 10**9,
                "maxPriorityFeePerGas": 2 * 10**9,
            }
        ),
        errors.TipAboveFeeCap,
        "max priority fee",
    ),
    (
        "oversized",
        lambda: signed(_legacy(gas=GAS_LIMIT, data="0x" + "01" * MAX_TX_BYTES)),
        errors.InvalidTransaction,
        "oversized",
    ),
    (
        "non-canonical",
        lambda: _non_canonical(signed(_legacy())),
        errors.InvalidTransaction,
        "malformed",
    ),
]


def _non_canonical(raw: bytes) -> bytes:
    # The same list with a two-byte length whose first byte is zero, which RLP forbids.
    payload = raw[1 + raw[0] - 0xF7 :]
    return bytes((0xF9, 0, len(payload))) + payload


@pytest.mark.parametrize(
    ("case", "make", "error", "words"), REJECTIONS, ids=[r[0] for r in REJECTIONS]
)
def test_rejections_name_the_problem(case: str, make, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        decode(make())
    assert words in str(info.value)
    assert info.value.code == error.code


def test_recovery_pool_recovers_the_tail_of_a_batch_in_a_worker() -> None:
    from evm.transactions import SenderRecoveryPool

    raws = [signed(_legacy(nonce=n)) for n in range(10)]
    raws[8] = _high_s(raws[8])  # invalid signature: the worker reports None
    pool = SenderRecoveryPool(1, min_batch=4, worker_share=0.5)
    try:
        start, wait = pool.submit(raws)
        assert start == 5
        assert wait() == [SENDER, SENDER, SENDER, None, SENDER]
        small_start, small_wait = pool.submit(raws[:3])
        assert small_start == 3 and small_wait() == []
    finally:
        pool.close()


def test_recovery_pool_ships_a_whole_batch_in_pieces_recovered_in_order() -> None:
    from evm.transactions import SenderRecoveryPool

    raws = [signed(_legacy(nonce=n)) for n in range(10)]
    raws[8] = _high_s(raws[8])
    pool = SenderRecoveryPool(1, min_batch=4)
    try:
        waits = pool.ship(raws, 4)
        assert [len(w.result()) for w in waits] == [4, 4, 2]
        assert [sender for w in waits for sender in w.result()] == [SENDER] * 8 + [None, SENDER]
        assert pool.ship(raws[:3], 4) == []  # below min_batch: the caller recovers them
        assert SenderRecoveryPool(0).ship(raws, 4) == []  # no workers
    finally:
        pool.close()


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    first=st.sampled_from([0x00, 0x01, 0x02, 0x04, 0x7F, 0x80, 0xC0, 0xF8]),
    rest=st.binary(max_size=200),
)
def test_any_bytes_decode_or_raise_a_rejection(first: int, rest: bytes) -> None:
    """Whatever a peer or client sends, decoding ends in a transaction or a TxRejected."""
    try:
        decode(bytes([first]) + rest)
    except errors.TxRejected:
        pass
