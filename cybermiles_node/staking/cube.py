"""CyberMiles Cube signatures on delegations (SPEC §6), and the delegation source they decide.

A Cube hardware wallet signs `"0x<lowercase sender address>|<decimal tx nonce>"`: the digest is
SHA-256 of that text, `sig` is the hex of a raw RSA value s (no padding), and it is valid iff
s^e mod n equals the digest, both compared as integers (so without leading zero bytes; Travis
compared big-endian bytes, which never matches a digest that starts with a zero byte). The key is
chosen by `cube_batch` from the `cube_pub_keys` parameter in force.

Decisions:
- no `sig` (empty) means no Cube: the source is `cmt_wallet` and `cube_batch` is not looked at;
- a `sig` that is not hex is malformed input (`MalformedStakingTx`, check_tx 1);
- a `cube_batch` the parameter does not hold is `UnknownCubeBatch` (check_tx 21): which batches
  exist is chain state, so it is a rule violation, not a malformed transaction;
- s must be below n (RFC 8017 RSAVP1): otherwise s + k·n would be further "valid" signatures;
- anything that does not verify is `InvalidCubeSignature` (check_tx 21).

`cube_pub_keys` text is parsed once per distinct string (a small cache): the parameter changes
only by governance. `Params` has already validated it; text that does not parse here is a
programming error (ValueError), never a transaction's fault.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from cybermiles_node.staking.errors import (
    InvalidCubeSignature,
    MalformedStakingTx,
    UnknownCubeBatch,
)
from cybermiles_node.staking.records import DelegationSource

__all__ = [
    "CubeKey",
    "cube_digest",
    "cube_keys",
    "cube_message",
    "delegation_source",
    "parse_cube_sig",
    "verify_cube_signature",
]

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
MAX_SIG_HEX_DIGITS = 1024  # a 4096-bit value; the Cube keys are 1024 bits


@dataclass(frozen=True)
class CubeKey:
    """An RSA public key as its numbers."""

    e: int
    n: int


@lru_cache(maxsize=8)
def cube_keys(cube_pub_keys: str) -> MappingProxyType[str, CubeKey]:
    """The keys of a `cube_pub_keys` parameter value, by batch (ValueError if it does not parse:
    `Params` guarantees it does)."""
    entries = json.loads(cube_pub_keys)
    if not isinstance(entries, list):
        raise ValueError("cube_pub_keys must be a JSON array of {cube_batch, pub_key}")
    keys: dict[str, CubeKey] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"cube_pub_keys entry {index} is not an object")
        batch, pem = entry.get("cube_batch"), entry.get("pub_key")
        if not isinstance(batch, str) or not isinstance(pem, str):
            raise ValueError(f"cube_pub_keys entry {index}: cube_batch, pub_key must be strings")
        key = load_pem_public_key(pem.encode())
        if not isinstance(key, RSAPublicKey):
            raise ValueError(f"cube_pub_keys entry {index}: pub_key is not an RSA key")
        numbers = key.public_numbers()
        keys[batch] = CubeKey(e=numbers.e, n=numbers.n)
    return MappingProxyType(keys)


def cube_message(sender: bytes, nonce: int) -> bytes:
    """The text a Cube signs: lowercase 0x sender address, "|", decimal nonce."""
    return f"0x{sender.hex()}|{nonce}".encode("ascii")


def cube_digest(sender: bytes, nonce: int) -> int:
    """SHA-256 of `cube_message`, as an integer."""
    return int.from_bytes(hashlib.sha256(cube_message(sender, nonce)).digest(), "big")


def parse_cube_sig(sig: str) -> int:
    """The RSA value s of a `sig` hex string ("0x" optional); MalformedStakingTx otherwise."""
    digits = sig.removeprefix("0x")
    if not digits or not _HEX_DIGITS.issuperset(digits):
        raise MalformedStakingTx(
            "stake/delegate: data.sig: not a hex string (a Cube signature is the hex of an RSA "
            "value)",
            "data.sig",
        )
    if len(digits) > MAX_SIG_HEX_DIGITS:
        raise MalformedStakingTx(
            f"stake/delegate: data.sig: longer than {MAX_SIG_HEX_DIGITS} hex digits", "data.sig"
        )
    return int(digits, 16)


def verify_cube_signature(
    sender: bytes, nonce: int, cube_batch: str, sig: str, cube_pub_keys: str
) -> None:
    """Refuse unless `sig` is `cube_batch`'s signature of (sender, nonce)."""
    s = parse_cube_sig(sig)
    key = cube_keys(cube_pub_keys).get(cube_batch)
    if key is None:
        raise UnknownCubeBatch(
            f"stake/delegate: unknown cube_batch {cube_batch!r} (not in cube_pub_keys)"
        )
    if s >= key.n or pow(s, key.e, key.n) != cube_digest(sender, nonce):
        raise InvalidCubeSignature(
            f"stake/delegate: invalid Cube signature for batch {cube_batch!r} "
            f"(expected a signature of {cube_message(sender, nonce).decode()!r})"
        )


def delegation_source(
    sender: bytes, nonce: int, cube_batch: str, sig: str, cube_pub_keys: str
) -> DelegationSource:
    """SPEC §6: CUBE when a valid sig is given, WALLET when none is; an invalid one is refused."""
    if sig == "":
        return DelegationSource.WALLET
    verify_cube_signature(sender, nonce, cube_batch, sig, cube_pub_keys)
    return DelegationSource.CUBE
