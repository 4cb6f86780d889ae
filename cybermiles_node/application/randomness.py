"""The per-block randomness beacon: the one narrow seam between consensus and randomness.

The proposer of block H calls `produce(key, previous)` with its consensus key and block H-1's
beacon output (`mix_hash`); the output goes into block H's `mix_hash`, the proof into the
block's consensus metadata. Every validator calls `verify(pub_key, previous, output, proof)`
before it prevotes for the block. Nothing else in the node computes or checks randomness.

`VrfBeacon` is the beacon of the chain: output = the first 32 bytes of the
ECVRF-EDWARDS25519-SHA512-TAI output (RFC 9381, `evm.vrf`) of the proposer's ed25519 consensus
key over the previous output. What it guarantees and what it does not:

* Unique: for a given proposer and previous output exactly one output verifies, so the proposer
  cannot choose among values, and nobody can grind it by reordering, adding or dropping
  transactions (the transactions are not an input).
* Unpredictable to everyone else: without the proposer's secret key the output of block H is
  unknown until block H is proposed, and the chain of outputs cannot be computed ahead.
* Not hidden from the proposer: the proposer knows its own output before it proposes, and may
  withhold its block if it dislikes the value. That costs it the slot (the round moves to the
  next proposer, whose output is then a different, equally unpredictable value), so the bias it
  buys is one "re-roll" per slot it is willing to lose, never a chosen value (a coalition of
  consecutive proposers gets one alternative per member, still never a chosen value).
* Contracts that must not trust the current proposer should commit at height H and use the
  randomness of a later block (`randomAt(H+k)` of the randomness precompile): its value depends
  on the keys of future proposers, unknown to anyone at commit time.

`HashChainBeacon` (output = keccak(previous), empty proof) is kept as a deterministic
placeholder for tests; it is checkable but predictable by anyone.
"""

from __future__ import annotations

from typing import Protocol

from eth_hash.auto import keccak

from consensus.keys import Ed25519Key
from evm import vrf

# `mix_hash` is 32 bytes; beta is 64. The first half of beta is a uniformly distributed 256-bit
# value on its own (beta is a SHA-512 output), so truncation loses no security that a 256-bit
# seed could have.
OUTPUT_LEN = 32


class RandomnessBeacon(Protocol):
    def produce(self, key: Ed25519Key, previous: bytes) -> tuple[bytes, bytes]:
        """(output, proof) for the block after the one whose output is `previous`."""
        ...

    def verify(self, pub_key: bytes, previous: bytes, output: bytes, proof: bytes) -> bool:
        """Whether `output` is the proposer's beacon after `previous`, as `proof` shows."""
        ...


class VrfBeacon:
    """output = ECVRF beta[:32] over `previous` with the proposer's key; proof = the 80-byte pi."""

    def produce(self, key: Ed25519Key, previous: bytes) -> tuple[bytes, bytes]:
        proof = vrf.prove(key.private_key, previous)
        return vrf.proof_to_hash(proof)[:OUTPUT_LEN], proof

    def verify(self, pub_key: bytes, previous: bytes, output: bytes, proof: bytes) -> bool:
        beta = vrf.verify(pub_key, proof, previous)
        return beta is not None and beta[:OUTPUT_LEN] == output


class HashChainBeacon:
    """output = keccak(previous); no proof. A placeholder with the beacon's interface."""

    def produce(self, key: Ed25519Key, previous: bytes) -> tuple[bytes, bytes]:
        return keccak(previous), b""

    def verify(self, pub_key: bytes, previous: bytes, output: bytes, proof: bytes) -> bool:
        return proof == b"" and output == keccak(previous)
