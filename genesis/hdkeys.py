"""BIP-39 seeds and BIP-32 key derivation for the devnet's mnemonic accounts, on coincurve.

`seed_from_mnemonic` and `key_at(seed, "m/44'/60'/0'/0/3")` compute what eth-account's
`hdaccount` does (tests/unit/test_hdkeys.py compares them), and `address_of` what
`Account.from_key(key).address` gives, without importing eth-account: its import (and
py_ecc's tables behind it) costs a tenth of a second, and every devnet start derives its
funded accounts before the RPC answers.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import Final

from coincurve import PrivateKey
from eth_hash.auto import keccak

SECP256K1_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HARDENED: Final = 1 << 31
PBKDF2_ROUNDS: Final = 2048


def seed_from_mnemonic(mnemonic: str, passphrase: str = "") -> bytes:
    """BIP-39: the 64-byte seed of a mnemonic (its words are not checked against a list)."""

    def normal(text: str) -> bytes:
        return unicodedata.normalize("NFKD", text).encode()

    return hashlib.pbkdf2_hmac(
        "sha512", normal(mnemonic), b"mnemonic" + normal(passphrase), PBKDF2_ROUNDS
    )


def _indices(path: str) -> list[int]:
    parts = path.split("/")
    if parts[0] != "m":
        raise ValueError(f"a derivation path starts with m/: {path!r}")
    indices = []
    for part in parts[1:]:
        hardened = part.endswith("'")
        number = int(part[:-1] if hardened else part)
        if not 0 <= number < HARDENED:
            raise ValueError(f"derivation index out of range in {path!r}")
        indices.append(number + HARDENED if hardened else number)
    return indices


def key_at(seed: bytes, path: str) -> bytes:
    """BIP-32: the private key at `path` (e.g. "m/44'/60'/0'/0/0") below the seed's master."""
    digest = hmac.digest(b"Bitcoin seed", seed, "sha512")
    key, chain_code = digest[:32], digest[32:]
    for index in _indices(path):
        if index >= HARDENED:
            data = b"\x00" + key + index.to_bytes(4, "big")
        else:
            data = PrivateKey(key).public_key.format(compressed=True) + index.to_bytes(4, "big")
        digest = hmac.digest(chain_code, data, "sha512")
        child = (int.from_bytes(digest[:32], "big") + int.from_bytes(key, "big")) % SECP256K1_ORDER
        # BIP-32's "invalid key" case (probability ~2^-127) is not handled: no dev path hits it.
        key, chain_code = child.to_bytes(32, "big"), digest[32:]
    return key


def address_of(private_key: bytes) -> bytes:
    """The Ethereum address of a secp256k1 private key."""
    public = PrivateKey(private_key).public_key.format(compressed=False)[1:]
    return keccak(public)[12:]
