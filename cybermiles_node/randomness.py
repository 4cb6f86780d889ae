"""The per-block randomness beacon: the one narrow seam between consensus and randomness.

The proposer of block H calls `produce(key, previous)` with its consensus key and block H-1's
beacon output (`mix_hash`); the output goes into block H's `mix_hash`, the proof into the
block's consensus metadata. Every validator calls `verify(pub_key, previous, output, proof)`
before it prevotes for the block. Nothing else in the node computes or checks randomness.

Until the CVM issue installs the ECVRF beacon (RFC 9381 over the proposer's ed25519 key), the
beacon is a keccak hash chain with an empty proof: deterministic and checkable, but not
unpredictable. Its interface is the one the VRF keeps.
"""

from __future__ import annotations

from typing import Protocol

from eth_hash.auto import keccak

from cybermiles_node.keys import Ed25519Key


class RandomnessBeacon(Protocol):
    def produce(self, key: Ed25519Key, previous: bytes) -> tuple[bytes, bytes]:
        """(output, proof) for the block after the one whose output is `previous`."""
        ...

    def verify(self, pub_key: bytes, previous: bytes, output: bytes, proof: bytes) -> bool:
        """Whether `output` is the proposer's beacon after `previous`, as `proof` shows."""
        ...


class HashChainBeacon:
    """output = keccak(previous); no proof. A placeholder with the beacon's interface."""

    def produce(self, key: Ed25519Key, previous: bytes) -> tuple[bytes, bytes]:
        return keccak(previous), b""

    def verify(self, pub_key: bytes, previous: bytes, output: bytes, proof: bytes) -> bool:
        return proof == b"" and output == keccak(previous)
