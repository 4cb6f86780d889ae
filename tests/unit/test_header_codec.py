"""evm/header_codec.py's decoder against `rlp.decode(..., sedes=PragueBlockHeader)`.

On random valid headers and on mutations of them (flipped, cut and inserted bytes; fields
re-encoded with leading zeros, other lengths, as lists; items added or dropped) both must give
an equal header (same class, every field, hash, encoding) or the same refusal (class and
message: the fast decoder hands whatever it is unsure of to rlp).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import rlp
from eth.vm.forks.prague.blocks import PragueBlockHeader
from hypothesis import given, settings
from hypothesis import strategies as st

from evm import header_codec
from evm.header_codec import decode_header

FIELDS = [name for name, _ in PragueBlockHeader._meta.fields]
INT_FIELDS = {"difficulty", "block_number", "gas_limit", "gas_used", "timestamp"}
INT_FIELDS |= {"base_fee_per_gas", "blob_gas_used", "excess_blob_gas"}


def random_header(rng: random.Random) -> Any:
    def number() -> int:
        return rng.choice([0, 1, 127, 128, 255, 256, rng.randrange(2**64), rng.randrange(2**256)])

    values: dict[str, Any] = {name: number() for name in INT_FIELDS}
    for name in FIELDS:
        if name not in INT_FIELDS:
            values[name] = rng.randbytes(32)
    values["coinbase"] = rng.choice([b"", rng.randbytes(20)])
    values["bloom"] = rng.choice([0, 1, rng.randrange(2**2048)])
    values["extra_data"] = rng.randbytes(rng.choice([0, 1, 32, 60]))
    values["nonce"] = rng.randbytes(8)
    return PragueBlockHeader(**values)


def outcome(decode: Any, data: Any) -> tuple[str, Any]:
    try:
        header = decode(data)
    except Exception as exc:
        return "refused", (type(exc).__name__, str(exc))
    return "header", (
        type(header),
        tuple(getattr(header, name) for name in FIELDS),
        bytes(header.hash),
        rlp.encode(header),
    )


def reference(data: Any) -> Any:
    return rlp.decode(data, sedes=PragueBlockHeader)


def assert_same(data: Any) -> None:
    assert outcome(decode_header, data) == outcome(reference, data)


def mutations(encoded: bytes, rng: random.Random) -> list[bytes]:
    items = rlp.decode(encoded)
    out = []
    for _ in range(6):
        i = rng.randrange(len(encoded))
        out.append(encoded[:i] + bytes([encoded[i] ^ (1 << rng.randrange(8))]) + encoded[i + 1 :])
        out.append(encoded[:i])
        out.append(encoded[:i] + rng.randbytes(1) + encoded[i:])
    for i in range(len(items)):
        changed = list(items)
        changed[i] = b"\x00" + items[i]  # leading zero / one byte longer
        out.append(rlp.encode(changed))
        changed[i] = items[i][1:]  # one byte shorter
        out.append(rlp.encode(changed))
        changed[i] = [items[i]]  # a list where bytes belong
        out.append(rlp.encode(changed))
    out.append(rlp.encode([*items, b"\x01"]))
    out.append(rlp.encode(items[:-1]))
    return out


@pytest.mark.parametrize("seed", range(40))
def test_valid_headers_decode_as_rlp_does(seed: int) -> None:
    rng = random.Random(seed)
    header = random_header(rng)
    encoded = rlp.encode(header)
    decoded = decode_header(encoded)
    assert outcome(decode_header, encoded) == outcome(reference, encoded)
    assert decoded == header and decoded.hash == header.hash
    assert decoded._cached_rlp == encoded  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(40))
def test_mutated_headers_decode_or_fail_as_rlp_does(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for data in mutations(rlp.encode(random_header(rng)), rng):
        assert_same(data)


def test_fast_path_takes_canonical_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the module: a valid header never reaches rlp's decoder."""
    encoded = rlp.encode(random_header(random.Random(7)))
    expected = reference(encoded).hash

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("fell back to rlp.decode")

    monkeypatch.setattr(header_codec.rlp, "decode", refuse)
    assert decode_header(encoded).hash == expected


def test_bytes_like_inputs_go_to_rlp() -> None:
    encoded = rlp.encode(random_header(random.Random(8)))
    for data in (bytearray(encoded), memoryview(encoded), b"", b"\xc0", "text"):
        assert_same(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_arbitrary_bytes_decode_or_fail_as_rlp_does(data: bytes) -> None:
    assert_same(data)
