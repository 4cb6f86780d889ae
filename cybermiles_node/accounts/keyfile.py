"""Geth keystore v3 key files, pure: parse, decrypt, encrypt, name. No file I/O here.

A v3 key file is JSON:

    {"address": "<40 hex>", "id": "<uuid>", "version": 3,
     "crypto": {"cipher": "aes-128-ctr", "ciphertext": hex, "cipherparams": {"iv": hex},
                "kdf": "scrypt" | "pbkdf2", "kdfparams": {...}, "mac": hex}}

The KDF turns the passphrase into a 32-byte key; its first half is the AES-128-CTR key of the
private key, and mac = keccak256(second half + ciphertext) tells a wrong passphrase from a right
one before anything is decrypted. We write scrypt (geth's standard n = 2^18, r = 8, p = 1) and
read scrypt and pbkdf2 (hmac-sha256), as geth does.

The KDF and cipher are `cryptography`'s (OpenSSL), already a dependency: DECISIONS "Node
keystore" says why not eth-keyfile. Every field is checked by `parse_keyfile` before any work:
a malformed file is a `MalformedKeyfile` naming its source, never a KeyError; KDF parameters are
capped (`MAX_KDF_MEMORY`, `MAX_SCRYPT_P`, `MAX_PBKDF2_ROUNDS`), so a hostile file cannot make
the node allocate gigabytes or spin for minutes.
"""

from __future__ import annotations

import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from coincurve import PrivateKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from eth_hash.auto import keccak

from cybermiles_node.errors import CyberMilesError

STANDARD_SCRYPT_N: Final = 1 << 18  # geth's StandardScryptN
LIGHT_SCRYPT_N: Final = 1 << 12  # geth's LightScryptN (tests, throwaway keys)
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
DKLEN: Final = 32
# Caps on what a file may ask of us: 1 GiB of scrypt memory (geth's standard needs 256 MiB),
# p up to 16, and pbkdf2 rounds up to 10 million (geth writes 262,144).
MAX_KDF_MEMORY: Final = 1 << 30
MAX_SCRYPT_P: Final = 16
MAX_PBKDF2_ROUNDS: Final = 10_000_000
# secp256k1's group order: a private key is 1 <= k < N.
SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

Kdf = Literal["scrypt", "pbkdf2"]


class KeystoreError(CyberMilesError):
    """Anything the keystore refuses; the message is one line for an operator."""


class MalformedKeyfile(KeystoreError):
    """A file that is not a readable geth v3 key file (message names the file and the fault)."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not open the key file (its MAC does not match)."""


class InvalidPrivateKey(KeystoreError):
    """Not 32 bytes, or outside 1 .. secp256k1's order - 1."""


@dataclass(frozen=True)
class ScryptParams:
    n: int
    r: int
    p: int
    salt: bytes


@dataclass(frozen=True)
class Pbkdf2Params:
    rounds: int
    salt: bytes


@dataclass(frozen=True)
class Keyfile:
    """A checked v3 key file: everything decryption needs, nothing derived yet."""

    address: bytes | None  # the file's claim; None when the file has no address field
    kdf: ScryptParams | Pbkdf2Params
    iv: bytes
    ciphertext: bytes
    mac: bytes


@dataclass(frozen=True)
class Randomness:
    """The random inputs of `encrypt`, so that it stays a pure function (tests fix them)."""

    salt: bytes
    iv: bytes
    uuid: uuid.UUID


def address_of(private_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a secp256k1 private key."""
    check_private_key(private_key)
    public = PrivateKey(private_key).public_key.format(compressed=False)[1:]
    return keccak(public)[-20:]


def check_private_key(private_key: bytes) -> None:
    if len(private_key) != 32 or not 0 < int.from_bytes(private_key, "big") < SECP256K1_N:
        raise InvalidPrivateKey("not a secp256k1 private key (32 bytes, 1 <= k < n)")


def parse_private_key_hex(text: str) -> bytes:
    """A private key typed or stored as hex (with or without 0x, surrounding blanks ignored)."""
    body = text.strip()
    body = body[2:] if body[:2] in ("0x", "0X") else body
    try:
        key = bytes.fromhex(body)
    except ValueError:
        raise InvalidPrivateKey("a private key is 64 hex digits") from None
    check_private_key(key)
    return key


def keyfile_name(address: bytes, when: datetime) -> str:
    """geth's file name: UTC--<ISO 8601 with '-' for ':', nanoseconds>--<address hex>."""
    t = when.astimezone(UTC)
    stamp = t.strftime("%Y-%m-%dT%H-%M-%S") + f".{t.microsecond * 1000:09d}Z"
    return f"UTC--{stamp}--{address.hex()}"


# ----------------------------------------------------------------------------- parsing


def parse_keyfile(text: str | bytes, source: str) -> Keyfile:
    """Check a key file's JSON; `source` (usually the path) names it in every error."""
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedKeyfile(f"{source}: not JSON ({exc})") from None
    try:
        return _parse_body(body)
    except _Fault as fault:
        raise MalformedKeyfile(f"{source}: not a geth v3 key file ({fault})") from None


class _Fault(Exception):
    """A structural fault, reported with the file's name by parse_keyfile."""


def _parse_body(body: object) -> Keyfile:
    if not isinstance(body, dict):
        raise _Fault("expected a JSON object")
    if body.get("version") != 3:
        raise _Fault(f"version {body.get('version')!r}, expected 3")
    # Some early geth versions wrote "Crypto"; geth still reads both.
    crypto = _object(body.get("crypto", body.get("Crypto")), "crypto")
    if crypto.get("cipher") != "aes-128-ctr":
        raise _Fault(f"cipher {crypto.get('cipher')!r}, expected aes-128-ctr")
    iv = _hex(_object(crypto.get("cipherparams"), "cipherparams").get("iv"), "iv", 16)
    address = body.get("address")
    return Keyfile(
        address=None if address is None else _hex(address, "address", 20),
        kdf=_kdf(crypto),
        iv=iv,
        ciphertext=_hex(crypto.get("ciphertext"), "ciphertext", 32),
        mac=_hex(crypto.get("mac"), "mac", 32),
    )


def _kdf(crypto: dict[str, Any]) -> ScryptParams | Pbkdf2Params:
    params = _object(crypto.get("kdfparams"), "kdfparams")
    if _int(params.get("dklen"), "dklen") != DKLEN:
        raise _Fault(f"dklen {params.get('dklen')}, expected {DKLEN}")
    salt = _hex(params.get("salt"), "salt", None)
    kdf = crypto.get("kdf")
    if kdf == "scrypt":
        n, r, p = (_int(params.get(k), k) for k in ("n", "r", "p"))
        if n < 2 or n & (n - 1) or r < 1 or not 1 <= p <= MAX_SCRYPT_P:
            raise _Fault(f"scrypt parameters n={n} r={r} p={p} out of range")
        if 128 * n * r > MAX_KDF_MEMORY:
            raise _Fault(f"scrypt n={n} r={r} needs more than {MAX_KDF_MEMORY >> 20} MiB")
        return ScryptParams(n, r, p, salt)
    if kdf == "pbkdf2":
        if params.get("prf") != "hmac-sha256":
            raise _Fault(f"pbkdf2 prf {params.get('prf')!r}, expected hmac-sha256")
        rounds = _int(params.get("c"), "c")
        if not 1 <= rounds <= MAX_PBKDF2_ROUNDS:
            raise _Fault(f"pbkdf2 rounds {rounds} out of range")
        return Pbkdf2Params(rounds, salt)
    raise _Fault(f"kdf {kdf!r}, expected scrypt or pbkdf2")


def _object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Fault(f"{name} missing or not an object")
    return value


def _int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Fault(f"{name} missing or not an integer")
    return value


def _hex(value: object, name: str, size: int | None) -> bytes:
    if not isinstance(value, str):
        raise _Fault(f"{name} missing or not a string")
    try:
        data = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    except ValueError:
        raise _Fault(f"{name} is not hex") from None
    if size is not None and len(data) != size:
        raise _Fault(f"{name} is {len(data)} bytes, expected {size}")
    return data


# -------------------------------------------------------------------------- crypto


def derive_key(passphrase: str, kdf: ScryptParams | Pbkdf2Params) -> bytes:
    secret = passphrase.encode()
    if isinstance(kdf, ScryptParams):
        return Scrypt(salt=kdf.salt, length=DKLEN, n=kdf.n, r=kdf.r, p=kdf.p).derive(secret)
    return PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=DKLEN, salt=kdf.salt, iterations=kdf.rounds
    ).derive(secret)


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    # CTR mode: encryption and decryption are the same operation.
    cryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return cryptor.update(data) + cryptor.finalize()


def decrypt(keyfile: Keyfile, passphrase: str, source: str) -> bytes:
    """The private key; WrongPassphrase when the MAC does not match, MalformedKeyfile when the
    key inside is not valid or not the file's address."""
    derived = derive_key(passphrase, keyfile.kdf)
    mac = keccak(derived[16:32] + keyfile.ciphertext)
    if not hmac.compare_digest(mac, keyfile.mac):
        raise WrongPassphrase(f"{source}: wrong passphrase (could not decrypt the key)")
    private_key = _aes_ctr(derived[:16], keyfile.iv, keyfile.ciphertext)
    try:
        address = address_of(private_key)
    except InvalidPrivateKey:
        raise MalformedKeyfile(f"{source}: the decrypted key is not a valid private key") from None
    if keyfile.address is not None and address != keyfile.address:
        raise MalformedKeyfile(
            f"{source}: the key inside belongs to 0x{address.hex()}, "
            f"not to the file's address 0x{keyfile.address.hex()}"
        )
    return private_key


def encrypt(
    private_key: bytes,
    passphrase: str,
    randomness: Randomness,
    *,
    scrypt_n: int = STANDARD_SCRYPT_N,
) -> dict[str, Any]:
    """The v3 key file JSON (as geth writes it: scrypt, lowercase hex without 0x)."""
    address = address_of(private_key)
    kdf = ScryptParams(scrypt_n, SCRYPT_R, SCRYPT_P, randomness.salt)
    derived = derive_key(passphrase, kdf)
    ciphertext = _aes_ctr(derived[:16], randomness.iv, private_key)
    return {
        "address": address.hex(),
        "crypto": {
            "cipher": "aes-128-ctr",
            "ciphertext": ciphertext.hex(),
            "cipherparams": {"iv": randomness.iv.hex()},
            "kdf": "scrypt",
            "kdfparams": {
                "dklen": DKLEN,
                "n": kdf.n,
                "p": kdf.p,
                "r": kdf.r,
                "salt": kdf.salt.hex(),
            },
            "mac": keccak(derived[16:32] + ciphertext).hex(),
        },
        "id": str(randomness.uuid),
        "version": 3,
    }
