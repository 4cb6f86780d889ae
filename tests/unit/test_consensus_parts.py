"""Block parts: RFC 6962 Merkle roots (Certificate Transparency's test vectors), per-part
proofs, incremental assembly that rejects anything not proving into the root, size limits."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.errors import MalformedMessage
from consensus.parts import (
    MAX_BLOCK_BYTES,
    MAX_PARTS,
    BlockPart,
    PartSet,
    leaf_hash,
    merkle_proof,
    merkle_root,
    root_from_proof,
)

# The leaves and roots of certificate-transparency's merkle_tree_test vectors.
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_rfc6962_roots(n: int) -> None:
    leaves = [leaf_hash(bytes.fromhex(x)) for x in CT_LEAVES[:n]]
    assert merkle_root(leaves).hex() == CT_ROOTS[n - 1]


def test_empty_tree_root() -> None:
    assert merkle_root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 13, 64, 255, 256])
def test_every_proof_verifies_only_at_its_own_index(n: int) -> None:
    leaves = [leaf_hash(bytes([i % 256, i // 256])) for i in range(n)]
    root = merkle_root(leaves)
    for i in range(n):
        proof = merkle_proof(leaves, i)
        assert root_from_proof(leaves[i], i, n, proof) == root
        if n > 1:
            other = (i + 1) % n
            assert root_from_proof(leaves[i], other, n, proof) != root


@pytest.mark.parametrize(
    ("size", "part_size", "total"),
    [(0, 10, 1), (1, 10, 1), (10, 10, 1), (11, 10, 2), (1000, 7, 143)],
)
def test_split_and_reassemble_in_any_order(size: int, part_size: int, total: int) -> None:
    data = bytes(random.Random(size).randrange(256) for _ in range(size))
    full = PartSet.from_data(data, part_size, height=3, round=1)
    assert full.complete and full.total == total and full.data == data
    assert all(p.height == 3 and p.round == 1 for p in full.parts())
    parts = full.parts()
    random.Random(1).shuffle(parts)
    rebuilt = PartSet.expecting(full.total, full.root)
    for i, part in enumerate(parts):
        assert not rebuilt.complete
        assert rebuilt.add(part) is True
        assert rebuilt.add(part) is False  # a duplicate is not news
        assert rebuilt.has(part.index)
        assert rebuilt.count == i + 1
    assert rebuilt.complete and rebuilt.data == data


def test_incomplete_data_is_an_error() -> None:
    full = PartSet.from_data(b"x" * 30, 10)
    partial = PartSet.expecting(full.total, full.root)
    partial.add(full.parts()[0])
    with pytest.raises(ValueError):
        _ = partial.data


def test_tampered_parts_are_rejected() -> None:
    full = PartSet.from_data(bytes(range(200)), 16)
    target = PartSet.expecting(full.total, full.root)
    part = full.parts()[3]
    bad_data = BlockPart(part.height, part.round, part.index, b"evil" + part.data[4:], part.proof)
    moved = BlockPart(part.height, part.round, 4, part.data, part.proof)
    short_proof = BlockPart(part.height, part.round, part.index, part.data, part.proof[:-1])
    out_of_range = BlockPart(part.height, part.round, full.total, part.data, part.proof)
    for bad in (bad_data, moved, short_proof, out_of_range):
        with pytest.raises(MalformedMessage):
            target.add(bad)
    assert target.count == 0
    other_block = PartSet.from_data(bytes(range(1, 201)), 16)
    with pytest.raises(MalformedMessage):
        target.add(other_block.parts()[3])


def test_size_limits() -> None:
    with pytest.raises(MalformedMessage):
        PartSet.from_data(b"\x00" * (MAX_BLOCK_BYTES + 1))
    with pytest.raises(MalformedMessage):
        PartSet.from_data(b"\x00" * (MAX_PARTS + 1), part_size=1)
    with pytest.raises(MalformedMessage):
        PartSet.expecting(MAX_PARTS + 1, b"\x00" * 32)
    with pytest.raises(MalformedMessage):
        PartSet.expecting(0, b"\x00" * 32)
    biggest = PartSet.from_data(b"\x01" * MAX_BLOCK_BYTES)
    assert biggest.total == MAX_PARTS


def test_block_part_wire_round_trip_and_checks() -> None:
    part = PartSet.from_data(b"abc" * 100, 50, height=9, round=2).parts()[4]
    assert BlockPart.from_wire(part.to_wire()) == part
    bad = [
        [9, 2, 4, "text", []],
        [9, 2, 4, b"x", [b"\x00" * 31]],
        [9, 2, MAX_PARTS, b"x", []],
        [0, 2, 4, b"x", []],
        [9, 2, 4, b"x", [b"\x00" * 32] * 9],
        [9, 2, 4, b"x"],
    ]
    for wire in bad:
        with pytest.raises(MalformedMessage):
            BlockPart.from_wire(wire)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000), st.integers(1, 400), st.randoms(use_true_random=False))
def test_any_split_reassembles(data: bytes, part_size: int, rng: random.Random) -> None:
    full = PartSet.from_data(data, part_size)
    parts = full.parts()
    rng.shuffle(parts)
    rebuilt = PartSet.expecting(full.total, full.root)
    for part in parts:
        rebuilt.add(part)
    assert rebuilt.data == data
