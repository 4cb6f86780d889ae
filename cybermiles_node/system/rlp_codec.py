"""Canonical RLP for the records the modules store, fast enough for the per-block paths.

The staking records are stored as the canonical RLP of their fields (staking/keeper.py). The
`rlp` package produces and checks exactly that, but spends most of its time inferring sedes
and walking generic serializers: at 100,000 delegations the staking benchmark spent a third
of each block in it. Our records are nested lists of non-negative integers and byte strings,
so:

- `encode` writes canonical RLP of such a value directly (bytes as is, an int as its minimal
  big-endian bytes, a list as the concatenation of its items). It produces byte for byte what
  `rlp.encode` produces (tests/unit/test_rlp_codec.py checks that on random values).
- `memoised_decoder` wraps a record decoder (bytes → a frozen record) in a bounded memo keyed
  by the encoded bytes. Decoding is a pure function of the bytes and records are immutable, so
  a hit is always right; a record read several times in a block, or block after block, is
  decoded once. The decoders themselves use `rlp.decode`, which is strict (it refuses
  non-canonical input, i.e. a store we did not write). The memo is shared by threads (RPC
  reads state in a worker): a race between them costs a miss, never a wrong record.
  A writer that has just encoded a record `remember`s it under its encoding: a record written
  in a block (every block, for the validators' candidates and delegations) is then never
  decoded again. The writer's record must be what decoding its encoding gives (the keeper's
  records round-trip exactly: tests/unit/test_staking_keeper.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeAlias, TypeVar

__all__ = ["Encodable", "MemoisedDecoder", "encode", "memoised_decoder"]

Encodable: TypeAlias = bytes | int | Sequence["Encodable"]
R = TypeVar("R")

# Records per decoder. Every block rewrites the records of the validators it pays (awards),
# and each new encoding is remembered, so the memo fills with dead versions at ~10 a second
# per decoder on a busy chain: at 32,768 that was ~20 MiB of resident memory per decoder
# creeping in for most of an hour (issue #13's soak). Hot records are hit every block and
# stay; 4,096 holds a block's working set at 100,000 delegations (benchmarks/staking.py).
_MEMO_SIZE = 1 << 12


def encode(item: Encodable) -> bytes:
    """Canonical RLP of `item` (ints must be non-negative; bool counts as int)."""
    if isinstance(item, bytes):
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _prefix(len(item), 0x80) + item
    if isinstance(item, int):
        if item < 0:
            raise ValueError(f"RLP cannot encode the negative integer {item}")
        if item < 0x80:
            return bytes((item,)) if item else b"\x80"
        data = item.to_bytes((item.bit_length() + 7) // 8, "big")
        return _prefix(len(data), 0x80) + data
    payload = b"".join([encode(element) for element in item])
    return _prefix(len(payload), 0xC0) + payload


def _prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes((offset + length,))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(size),)) + size


class MemoisedDecoder(Generic[R]):
    """A record decoder behind a bounded LRU memo keyed by the encoded bytes (module
    docstring); called like the decoder."""

    def __init__(self, decoder: Callable[[bytes], R]) -> None:
        self.decoder = decoder  # the uncached decoder
        self._memo: OrderedDict[bytes, R] = OrderedDict()
        self.__doc__ = decoder.__doc__

    def __call__(self, encoded: bytes) -> R:
        memo = self._memo
        found = memo.get(encoded)
        if found is not None:
            try:
                memo.move_to_end(encoded)
            except KeyError:  # evicted by another thread meanwhile
                pass
            return found
        record = self.decoder(encoded)
        self.remember(encoded, record)
        return record

    def remember(self, encoded: bytes, record: R) -> None:
        """`record` is what `encoded` decodes to (its writer just encoded it)."""
        memo = self._memo
        memo[encoded] = record
        try:
            if len(memo) > _MEMO_SIZE:
                memo.popitem(last=False)
        except KeyError:  # another thread emptied it meanwhile
            pass


def memoised_decoder(decoder: Callable[[bytes], R]) -> MemoisedDecoder[R]:
    """`decoder` behind a bounded LRU memo keyed by the encoded bytes (module docstring)."""
    return MemoisedDecoder(decoder)
