"""evm/tx_codec.py's decoder against py-evm's: same transactions, same refusals.

The reference is `decode_transaction` with the fast decoder switched off (every input then
goes through py-evm, as before the fast decoder existed). On valid transactions of every type
and on mutations of them (flipped, cut, inserted bytes; re-encoded fields with leading zeros,
wrong sizes, extra items) both must give equal `SignedTx`s (fields, hash, sender, intrinsic
gas, an equal py-evm object of the same class) or the same refusal (class and message).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import fields as dataclass_fields
from typing import Any
from unittest import mock

import pytest
import rlp
from coincurve import PrivateKey
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node.errors import TxRejected
from evm import transactions
from evm.profiles import CVM
from evm.rlp_raw import encode_list_payload
from evm.transactions import SignedTx, decode_transaction, load_stored_transaction
from evm.tx_codec import decode_fields, evm_transaction, fields_of

CHAIN_ID = 1234
GAS_LIMIT = 30_000_000
KEY = PrivateKey(b"\x05" * 32)


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def sign(kind: int, fields: list[Any], chain_id: int = CHAIN_ID) -> bytes:
    """A signed transaction of `kind` from its unsigned fields (typed: chain id first)."""
    if kind == 0:
        digest = keccak(rlp.encode([*fields, chain_id, 0, 0]))
        sig = KEY.sign_recoverable(digest, hasher=None)
        return rlp.encode([*fields, sig[64] + 35 + 2 * chain_id, _int(sig[:32]), _int(sig[32:64])])
    prefix = bytes((kind,))
    sig = KEY.sign_recoverable(keccak(prefix + rlp.encode(fields)), hasher=None)
    return prefix + rlp.encode([*fields, sig[64], _int(sig[:32]), _int(sig[32:64])])


def random_raw(rng: random.Random) -> bytes:
    kind = rng.choice([0, 1, 2])
    nonce = rng.choice([0, 1, rng.randrange(2**64)])
    price = rng.choice([0, 1, 10**9, rng.randrange(2**256)])
    gas = rng.choice([0, 21_000, 53_000, rng.randrange(21_000, GAS_LIMIT + 2), 2**64])
    to = rng.choice([b"", rng.randbytes(20)])
    value = rng.choice([0, 1, rng.randrange(2**256)])
    data = rng.randbytes(rng.choice([0, 1, 4, 68, 300]))
    if rng.random() < 0.3:
        data = bytes(len(data))  # zero bytes cost less
    access = [
        [rng.randbytes(20), [rng.randbytes(32) for _ in range(rng.randrange(3))]]
        for _ in range(rng.choice([0, 0, 1, 3]))
    ]
    chain_id = CHAIN_ID if rng.random() < 0.9 else rng.randrange(2**16)
    if kind == 0:
        return sign(0, [nonce, price, gas, to, value, data], chain_id)
    if kind == 1:
        return sign(1, [chain_id, nonce, price, gas, to, value, data, access])
    tip = rng.choice([price, rng.randrange(price + 2)])
    return sign(2, [chain_id, nonce, tip, price, gas, to, value, data, access])


def _reencoded_field(rng: random.Random, raw: bytes) -> bytes:
    """One field of the outer list replaced by an odd but decodable RLP item."""
    typed = raw[0] < 0xC0
    items: list[Any] = rlp.decode(raw[1:] if typed else raw)
    i = rng.randrange(len(items))
    items[i] = rng.choice(
        [
            b"\x00" + items[i] if isinstance(items[i], bytes) else items[i],  # leading zero
            b"\x00",
            rng.randbytes(rng.choice([19, 21, 32])),
            [],
            [items[i]],
        ]
    )
    if rng.random() < 0.2:
        items.append(b"")
    return (raw[:1] if typed else b"") + rlp.encode(items)


def _odd_item_encoding(rng: random.Random, raw: bytes) -> bytes:
    """One item of the outer list in a non-canonical form rlp refuses: a byte below 0x80 as
    a one-byte string, or a long-form length prefix for a payload under 56 bytes."""
    typed = raw[0] < 0xC0
    items: list[Any] = rlp.decode(raw[1:] if typed else raw)
    i = rng.randrange(len(items))
    encoded = [rlp.encode(item) for item in items]
    item = items[i]
    if isinstance(item, bytes) and len(item) == 1 and item[0] < 0x80:
        encoded[i] = b"\x81" + item
    elif len(encoded[i]) - 1 < 56 and encoded[i][0] not in range(0x80):
        tag, payload = encoded[i][0], encoded[i][1:]
        encoded[i] = bytes((0xF8 if tag >= 0xC0 else 0xB8, len(payload))) + payload
    return (raw[:1] if typed else b"") + encode_list_payload(b"".join(encoded))


def _long_form(raw: bytes) -> bytes:
    """The outer list's length written with a leading zero byte, which RLP forbids."""
    typed = raw[0] < 0xC0
    body = raw[1:] if typed else raw
    payload = body[1:] if body[0] < 0xF8 else body[1 + body[0] - 0xF7 :]
    return (
        (raw[:1] if typed else b"") + bytes((0xFA, 0)) + len(payload).to_bytes(2, "big") + payload
    )


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    lambda rng, raw: raw,
    lambda rng, raw: raw[: rng.randrange(len(raw))],
    lambda rng, raw: raw + rng.randbytes(rng.randrange(1, 3)),
    lambda rng, raw: _flip(rng, raw),
    lambda rng, raw: _insert(rng, raw),
    _reencoded_field,
    _odd_item_encoding,
    lambda rng, raw: _long_form(raw),
]


def _flip(rng: random.Random, raw: bytes) -> bytes:
    i = rng.randrange(len(raw))
    return raw[:i] + bytes((raw[i] ^ (1 << rng.randrange(8)),)) + raw[i + 1 :]


def _insert(rng: random.Random, raw: bytes) -> bytes:
    i = rng.randrange(len(raw) + 1)
    return raw[:i] + bytes((rng.choice([0x00, 0x80, 0x81, 0xB8, 0xC0, 0xF8]),)) + raw[i:]


@contextmanager
def py_evm_only() -> Any:
    with mock.patch.object(transactions, "decode_fields", lambda raw: None):
        yield


def outcome(raw: bytes, sender: bytes | None = None) -> SignedTx | tuple[str, str]:
    try:
        return decode_transaction(raw, chain_id=CHAIN_ID, block_gas_limit=GAS_LIMIT, sender=sender)
    except TxRejected as exc:
        return (type(exc).__name__, str(exc))


def assert_same(fast: SignedTx | tuple[str, str], slow: SignedTx | tuple[str, str]) -> None:
    if isinstance(slow, tuple) or isinstance(fast, tuple):
        assert fast == slow
        return
    for field in dataclass_fields(SignedTx):
        if field.name != "tx":
            assert getattr(fast, field.name) == getattr(slow, field.name), field.name
    assert_same_evm_object(fast.tx, slow.tx)
    assert fast.tx.sender == slow.tx.sender


def assert_same_evm_object(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs)
    assert type(getattr(ours, "_inner", None)) is type(getattr(theirs, "_inner", None))
    assert ours == theirs
    assert ours.encode() == theirs.encode()
    assert ours.hash == theirs.hash
    assert ours.intrinsic_gas == theirs.intrinsic_gas
    assert ours.get_message_for_signing() == theirs.get_message_for_signing()


@settings(max_examples=400, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32), mutation=st.sampled_from(range(len(MUTATIONS))))
def test_fast_decoder_agrees_with_py_evm(seed: int, mutation: int) -> None:
    rng = random.Random(seed)
    raw = MUTATIONS[mutation](rng, random_raw(rng))
    fast = outcome(raw)
    with py_evm_only():
        slow = outcome(raw)
    assert_same(fast, slow)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(first=st.sampled_from([0x01, 0x02, 0xC0, 0xE0, 0xF8, 0xF9]), rest=st.binary(max_size=120))
def test_fast_decoder_accepts_only_what_py_evm_decodes_the_same(first: int, rest: bytes) -> None:
    """Whatever bytes `decode_fields` accepts, py-evm decodes to the same object and fields."""
    raw = bytes((first,)) + rest
    fields = decode_fields(raw)
    if fields is None:
        return
    reference = CVM.transaction_builder.decode(raw)
    assert reference.encode() == raw
    assert fields_of(reference, fields.type_id) == fields
    assert_same_evm_object(evm_transaction(fields, raw), reference)


@pytest.mark.parametrize("seed", range(40))
def test_valid_transactions_take_the_fast_path_and_match(seed: int) -> None:
    rng = random.Random(seed)
    raw = random_raw(rng)
    fields = decode_fields(raw)
    assert fields is not None
    reference = CVM.transaction_builder.decode(raw)
    assert fields_of(reference, fields.type_id) == fields
    assert fields.intrinsic_gas == reference.intrinsic_gas
    assert_same_evm_object(evm_transaction(fields, raw), reference)
    sender = bytes(20)
    fast, slow = outcome(raw, sender), outcome(raw, sender)
    with py_evm_only():
        slow = outcome(raw, sender)
    assert_same(fast, slow)


@pytest.mark.parametrize("seed", range(10))
def test_stored_transactions_load_the_same_either_way(seed: int) -> None:
    raw = random_raw(random.Random(seed))
    sender = bytes(range(20))
    fast = load_stored_transaction(raw, sender)
    with py_evm_only():
        slow = load_stored_transaction(raw, sender)
    assert_same(fast, slow)


def test_set_code_transactions_are_left_to_py_evm() -> None:
    assert decode_fields(b"\x04" + rlp.encode([b""] * 13)) is None
