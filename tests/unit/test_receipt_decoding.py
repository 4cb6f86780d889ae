"""The fast decoders of stored receipts and transactions (evm/receipt_decoding.py) equal
py-evm's, and so does the receipt a transaction's execution makes (`make_receipt`): every
receipt type with and without logs, every transaction type (legacy, EIP-2930, EIP-1559,
EIP-7702 and the SPEC §5 system envelope), drawn by Hypothesis; malformed bytes raise
ValueError instead of decoding to something else."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rlp
from eth.rlp.logs import Log
from eth.rlp.receipts import Receipt
from eth.vm.forks.prague.receipts import PragueReceiptBuilder, PragueTypedReceipt
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evm.receipt_decoding import decode_receipt, make_receipt, summarize_transaction
from evm.rlp_raw import decode
from evm.transactions import load_stored_transaction

CHAIN_ID = 1234
KEY = b"\x05" * 32
SENDER = bytes.fromhex(Account.from_key(KEY).address[2:])

uint = st.integers(min_value=0, max_value=2**256 - 1)
small = st.integers(min_value=0, max_value=2**64 - 1)
logs = st.lists(
    st.builds(
        Log,
        st.binary(min_size=20, max_size=20),
        st.lists(uint, max_size=4).map(tuple),
        st.binary(max_size=200),
    ),
    max_size=5,
)


@settings(max_examples=300)
@given(
    type_id=st.sampled_from([None, 1, 2, 4]),
    state_root=st.sampled_from([b"", b"\x01", b"\x00" * 32, b"\xab" * 32]),
    gas_used=small,
    logs=logs,
)
def test_receipt_decodes_as_pyevm_does(
    type_id: int | None, state_root: bytes, gas_used: int, logs: list[Log]
) -> None:
    inner = Receipt(state_root, gas_used, logs)
    made = inner if type_id is None else PragueTypedReceipt(type_id, inner)
    encoded = made.encode()
    ours, reference = decode_receipt(encoded), PragueReceiptBuilder.decode(encoded)
    assert ours.type_id == getattr(reference, "type_id", None) == type_id
    assert ours.state_root == reference.state_root
    assert ours.gas_used == reference.gas_used
    assert ours.bloom == reference.bloom
    assert int(ours.bloom_filter) == int(reference.bloom_filter)
    assert len(ours.logs) == len(reference.logs)
    for mine, theirs in zip(ours.logs, reference.logs, strict=True):
        assert (mine.address, tuple(mine.topics), mine.data) == (
            theirs.address,
            tuple(theirs.topics),
            theirs.data,
        )
        assert mine.bloomables == theirs.bloomables
        assert mine == theirs
    assert ours.encode() == encoded == reference.encode()
    assert ours == reference


@settings(max_examples=300)
@given(
    type_id=st.sampled_from([None, 1, 2, 4]),
    status=st.sampled_from([b"", b"\x01"]),
    gas_used=small,
    logs=logs,
)
def test_a_made_receipt_is_pyevms_bit_for_bit(
    type_id: int | None, status: bytes, gas_used: int, logs: list[Log]
) -> None:
    inner = Receipt(status, gas_used, logs)
    reference = inner if type_id is None else PragueTypedReceipt(type_id, inner)
    entries = [(log.address, log.topics, log.data) for log in logs]
    ours = make_receipt(type_id, status, gas_used, entries)
    assert ours.encode() == reference.encode()
    assert ours.bloom == reference.bloom
    assert (ours.type_id, ours.state_root, ours.gas_used) == (type_id, status, gas_used)
    assert list(ours.logs) == list(reference.logs)
    assert ours == reference


@pytest.mark.parametrize(
    "encoded",
    [
        b"",
        b"\x05" + rlp.encode([b"\x01", 1, b"\x00" * 256, []]),  # unknown type
        rlp.encode([b"\x01", 1, b"\x00" * 256]),  # a field short
        rlp.encode([b"\x01", 1, b"\x00" * 255, []]),  # bloom too short
        rlp.encode([b"\x01", 1, b"\x00" * 256, [[b"\x01" * 19, [], b""]]]),  # address size
        rlp.encode([b"\x01", 1, b"\x00" * 256, [[b"\x01" * 20, [b"\x02" * 31], b""]]]),
        rlp.encode([b"\x01", 1, b"\x00" * 256, []]) + b"\x00",  # trailing byte
        rlp.encode([b"\x01", 1, b"\x00" * 256, []])[:-1],  # cut short
        rlp.encode([[], 1, b"\x00" * 256, []]),  # a list where the status is
    ],
)
def test_malformed_receipts_raise(encoded: bytes) -> None:
    with pytest.raises(ValueError):
        decode_receipt(encoded)


@given(st.recursive(st.binary(max_size=80), lambda kids: st.lists(kids, max_size=5)))
def test_generic_decode_inverts_rlp_encode(item: Any) -> None:
    assert decode(rlp.encode(item)) == item


TO = to_checksum_address(b"\x09" * 20)
AUTHORIZATION = Account.sign_authorization(
    {"chainId": CHAIN_ID, "address": TO, "nonce": 1}, b"\x06" * 32
)


@st.composite
def transactions(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["legacy", "2930", "1559", "7702", "system"]))
    if kind == "system":  # SPEC §5: legacy, no recipient, value 0, price 0, gas 0
        body = {"type": "stake/delegate", "data": {"amount": str(draw(small))}}
        data = json.dumps(body).encode()
        return {"nonce": draw(small), "gasPrice": 0, "gas": 0, "value": 0, "data": data}
    fields: dict[str, Any] = {
        "nonce": draw(small),
        "gas": draw(st.integers(min_value=21_000, max_value=2**63)),
        "value": draw(uint),
        "data": draw(st.binary(max_size=120)),
    }
    if kind == "7702" or draw(st.booleans()):
        fields["to"] = to_checksum_address(draw(st.binary(min_size=20, max_size=20)))
    if kind in ("legacy", "2930"):
        fields["gasPrice"] = draw(uint)
    else:
        fields["maxFeePerGas"] = draw(uint)
        fields["maxPriorityFeePerGas"] = draw(uint)  # may exceed the cap: tip is capped
    if kind != "legacy":
        fields["type"] = {"2930": 1, "1559": 2, "7702": 4}[kind]
        fields["accessList"] = [
            {"address": TO, "storageKeys": ["0x" + b.hex() for b in keys]}
            for keys in draw(
                st.lists(st.lists(st.binary(min_size=32, max_size=32), max_size=2), max_size=2)
            )
        ]
    if kind == "7702":
        fields["authorizationList"] = [AUTHORIZATION]
    return fields


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=transactions(), base_fee=uint)
def test_transaction_summary_matches_pyevm_decode(fields: dict[str, Any], base_fee: int) -> None:
    raw = bytes(Account.sign_transaction({"chainId": CHAIN_ID, **fields}, KEY).raw_transaction)
    summary = summarize_transaction(raw, SENDER)
    full = load_stored_transaction(raw, SENDER)
    assert summary.hash == full.hash
    assert summary.sender == full.sender == SENDER
    assert summary.to == full.to
    assert summary.type_id == full.type_id
    assert (summary.tip, summary.fee_cap) == (full.tip, full.fee_cap)
    assert summary.price(base_fee) == full.price(base_fee)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x03" + rlp.encode([b"\x01"] * 14),  # blob: not stored on this chain
        b"\x02" + rlp.encode([b"\x01"] * 11),  # a 1559 transaction a field short
        rlp.encode([b"\x01"] * 10),  # a legacy one a field long
        rlp.encode([b"\x01", b"\x02", b"\x03", [], b"", b"", b"", b"", b""]),  # list as `to`
    ],
)
def test_malformed_transactions_raise(raw: bytes) -> None:
    with pytest.raises(ValueError):
        summarize_transaction(raw, SENDER)
