"""The ed25519 key of a node or a validator: a seed, its public key, signing, the node id.

Consensus signs votes and proposals with it, p2p authenticates the handshake with it, the
randomness beacon proves with it. Reading and writing key files is the node's business
(`cybermiles_node/operator/keys.py`); this module holds only the key, so no layer below the
node needs to import the node.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["Ed25519Key"]


@dataclass(frozen=True)
class Ed25519Key:
    private_key: bytes  # 32-byte seed
    public_key: bytes

    @classmethod
    def generate(cls) -> Ed25519Key:
        return cls.from_seed(os.urandom(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Key:
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        return cls(seed, public.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.private_key).sign(message)

    @property
    def node_id(self) -> str:
        return hashlib.sha256(self.public_key).digest()[:20].hex()
