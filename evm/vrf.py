"""ECVRF-EDWARDS25519-SHA512-TAI: the verifiable random function of RFC 9381 (suite 0x03).

A VRF is a keyed hash whose output anyone can check against the key holder's public key. The
proposer of a block proves over the previous block's randomness with its ed25519 consensus key
(`prove`), every validator checks the proof (`verify`), and the 64-byte hash of the proof
(`proof_to_hash`, "beta") is the new randomness. For one key and one input there is exactly one
beta that verifies, so the proposer cannot choose among outputs; without the secret key nobody can
predict it.

The construction (RFC 9381 §5):

* keys are ordinary RFC 8032 ed25519 keys: the secret scalar x is the clamped first half of
  SHA-512(seed) and the public key is Y = x*B (§5.5, RFC 8032 §5.1.5);
* the input alpha is hashed to a curve point H by try-and-increment (§5.4.1.1);
* Gamma = x*H; a Schnorr-style proof (c, s) shows that log_B(Y) == log_H(Gamma) (§5.1, §5.3);
* beta = SHA-512(0x03 || 0x03 || encode(8*Gamma) || 0x00) (§5.2).

Proof pi = Gamma (32 bytes) || c (16 bytes, little-endian) || s (32 bytes, little-endian).

Group operations run in libsodium through PyNaCl's low-level bindings. Point *decoding* is done
here in pure Python, because the RFC needs exactly RFC 8032 §5.1.3 decoding (reject y >= p,
reject x = 0 with the sign bit set, accept points outside the prime-order subgroup), which
libsodium does not expose: its `is_valid_point` also rejects points with a torsion component,
which try-and-increment must accept before clearing the cofactor. Scalar arithmetic mod the
group order uses Python integers. Nothing here is constant-time: the prover's output is public
as soon as its block is proposed, and the nonce is derived deterministically (§5.4.2.2), so
timing reveals nothing about the nonce that repeated proving would not.
"""

from __future__ import annotations

import hashlib

from nacl import bindings as sodium
from nacl.exceptions import CryptoError

__all__ = ["PROOF_LEN", "BETA_LEN", "prove", "proof_to_hash", "verify", "public_key"]

PROOF_LEN = 80  # ptLen 32 + cLen 16 + qLen 32 (RFC 9381 §5.5)
BETA_LEN = 64  # SHA-512 output

# Curve constants (RFC 8032 §5.1).
_P = 2**255 - 19  # field prime
_Q = 2**252 + 27742317777372353535851937790883648493  # prime order of the base point
_D = (-121665 * pow(121666, _P - 2, _P)) % _P  # Edwards curve constant d
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)  # a square root of -1 mod p

# Suite and domain separators (RFC 9381 §5.5, §5.2, §5.4.1.1, §5.4.3).
_SUITE = b"\x03"
_ENCODE_FRONT = b"\x01"
_CHALLENGE_FRONT = b"\x02"
_PROOF_TO_HASH_FRONT = b"\x03"
_BACK = b"\x00"
_C_LEN = 16

_IDENTITY = (1).to_bytes(32, "little")  # encoding of the neutral point (x=0, y=1)


# --- points: decoding (RFC 8032 §5.1.3) and libsodium arithmetic --------------------------------


def _decode_point(s: bytes) -> bytes | None:
    """`s` if it is a point encoding RFC 8032 §5.1.3 accepts, else None.

    Returns the encoding rather than coordinates because the arithmetic is libsodium's, which
    works on encodings; RFC 8032 decoding only accepts canonical encodings, so `s` is already
    the encoding libsodium will produce for the point.
    """
    if len(s) != 32:
        return None
    n = int.from_bytes(s, "little")
    sign = n >> 255
    y = n & ((1 << 255) - 1)
    if y >= _P:  # non-canonical y
        return None
    if _recover_x(y, sign) is None:
        return None
    return s


def _recover_x(y: int, sign: int) -> int | None:
    """x with x^2 = (y^2-1)/(d*y^2+1) and the given parity, or None (RFC 8032 §5.1.3 steps 2-4)."""
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    # Candidate root x = u*v^3 * (u*v^7)^((p-5)/8): one exponentiation instead of an inversion.
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    vx2 = (v * x * x) % _P
    if vx2 == u:
        pass
    elif vx2 == (-u) % _P:
        x = (x * _SQRT_M1) % _P
    else:
        return None  # (y^2-1)/(d*y^2+1) is not a square: no point has this y
    if x == 0 and sign == 1:
        return None  # "-0" is not a canonical encoding
    if x & 1 != sign:
        x = _P - x
    return x


def _add(a: bytes, b: bytes) -> bytes:
    # libsodium's add accepts any on-curve point (torsion components included).
    return sodium.crypto_core_ed25519_add(a, b)


def _sub(a: bytes, b: bytes) -> bytes:
    return sodium.crypto_core_ed25519_sub(a, b)


def _times_cofactor(point: bytes) -> bytes:
    """8 * point, by three doublings (libsodium's scalarmult refuses points with torsion)."""
    for _ in range(3):
        point = _add(point, point)
    return point


def _scalar_bytes(n: int) -> bytes:
    return n.to_bytes(32, "little")


def _base_mult(n: int) -> bytes:
    """n * B."""
    n %= _Q
    if n == 0:  # libsodium reports an identity result as an error
        return _IDENTITY
    return sodium.crypto_scalarmult_ed25519_base_noclamp(_scalar_bytes(n))


def _mult(n: int, point: bytes) -> bytes:
    """n * point for any on-curve point in canonical encoding.

    libsodium's scalar multiplication only takes points of the prime-order subgroup (where n can
    be reduced mod q). A public key or a Gamma sent by an adversary may carry a torsion component,
    and RFC 9381 (which only rejects small-order keys) defines the result all the same, so such
    points go through a double-and-add over libsodium's point addition. Honest inputs never do.
    """
    if sodium.crypto_core_ed25519_is_valid_point(point):
        n %= _Q
        if n == 0:
            return _IDENTITY
        return sodium.crypto_scalarmult_ed25519_noclamp(_scalar_bytes(n), point)
    return _double_and_add(n, point)


def _double_and_add(n: int, point: bytes) -> bytes:
    result = _IDENTITY
    for bit in bin(n)[2:]:  # most significant bit first
        result = _add(result, result)
        if bit == "1":
            result = _add(result, point)
    return result


# --- keys (RFC 8032 §5.1.5; RFC 9381 §5.5) ------------------------------------------------------


def _expand_secret(seed: bytes) -> tuple[int, bytes]:
    """(secret scalar x, nonce key = second half of SHA-512(seed))."""
    h = hashlib.sha512(seed).digest()
    a = bytearray(h[:32])
    a[0] &= 0xF8  # clear the cofactor bits
    a[31] &= 0x7F
    a[31] |= 0x40  # fixed top bit, as ed25519 does
    return int.from_bytes(a, "little"), h[32:]


def public_key(secret_key_seed: bytes) -> bytes:
    """The 32-byte public key Y = x*B: the same bytes as the ed25519 public key of the seed."""
    x, _ = _expand_secret(_check_seed(secret_key_seed))
    return _base_mult(x)


def _check_seed(seed: bytes) -> bytes:
    if len(seed) != 32:
        raise ValueError(f"secret key seed must be 32 bytes, got {len(seed)}")
    return seed


# --- the RFC 9381 auxiliary functions ------------------------------------------------------------


def _encode_to_curve(salt: bytes, alpha: bytes) -> bytes | None:
    """H = ECVRF_encode_to_curve_try_and_increment(salt, alpha) (RFC 9381 §5.4.1.1).

    Hash (suite, counter) until the first 32 bytes decode to a point whose cofactor multiple is
    not the identity. About half the hashes decode, so the counter is almost always 0 or 1; the
    RFC's counter is one byte, and None (never observed: probability about 2^-256) means all 256
    counters failed.
    """
    for ctr in range(256):
        digest = hashlib.sha512(
            _SUITE + _ENCODE_FRONT + salt + alpha + bytes([ctr]) + _BACK
        ).digest()
        candidate = _decode_point(digest[:32])
        if candidate is None:
            continue
        h = _times_cofactor(candidate)
        if h != _IDENTITY:
            return h
    return None


def _nonce(nonce_key: bytes, h_string: bytes) -> int:
    """k = ECVRF_nonce_generation_RFC8032 (RFC 9381 §5.4.2.2), as in ed25519 signing."""
    return int.from_bytes(hashlib.sha512(nonce_key + h_string).digest(), "little") % _Q


def _challenge(*points: bytes) -> int:
    """c = ECVRF_challenge_generation(Y, H, Gamma, U, V) (RFC 9381 §5.4.3): 16 bytes of SHA-512."""
    digest = hashlib.sha512(_SUITE + _CHALLENGE_FRONT + b"".join(points) + _BACK).digest()
    return int.from_bytes(digest[:_C_LEN], "little")


def _decode_proof(pi: bytes) -> tuple[bytes, int, int] | None:
    """(Gamma, c, s) from pi, or None if malformed (RFC 9381 §5.4.4)."""
    if len(pi) != PROOF_LEN:
        return None
    gamma = _decode_point(pi[:32])
    if gamma is None:
        return None
    c = int.from_bytes(pi[32 : 32 + _C_LEN], "little")
    s = int.from_bytes(pi[32 + _C_LEN :], "little")
    if s >= _Q:  # non-canonical scalar: would make proofs malleable
        return None
    return gamma, c, s


def _gamma_to_hash(gamma: bytes) -> bytes:
    """beta = SHA-512(suite || 0x03 || encode(8*Gamma) || 0x00) (RFC 9381 §5.2 step 4)."""
    return hashlib.sha512(_SUITE + _PROOF_TO_HASH_FRONT + _times_cofactor(gamma) + _BACK).digest()


def _validate_key(pk: bytes) -> bytes | None:
    """Y if pk decodes to a point that is not of small order, else None (RFC 9381 §5.4.5).

    A small-order key would let anyone make proofs for it that verify for many outputs.
    """
    y = _decode_point(pk)
    if y is None or _times_cofactor(y) == _IDENTITY:
        return None
    return y


# --- the public API -----------------------------------------------------------------------------


def prove(secret_key_seed: bytes, alpha: bytes) -> bytes:
    """pi = ECVRF_prove(SK, alpha) (RFC 9381 §5.1): the 80-byte proof. Deterministic.

    `secret_key_seed` is the 32-byte ed25519 seed. Raises ValueError for a seed of the wrong
    length; everything else is total (the try-and-increment failure has probability ~2^-256).
    """
    x, nonce_key = _expand_secret(_check_seed(secret_key_seed))
    y = _base_mult(x)
    h = _encode_to_curve(y, alpha)
    if h is None:  # pragma: no cover - probability about 2^-256
        raise ValueError("encode_to_curve failed for all 256 counters")
    gamma = _mult(x, h)
    k = _nonce(nonce_key, h)
    c = _challenge(y, h, gamma, _base_mult(k), _mult(k, h))
    s = (k + c * x) % _Q
    return gamma + c.to_bytes(_C_LEN, "little") + _scalar_bytes(s)


def proof_to_hash(pi: bytes) -> bytes:
    """beta = ECVRF_proof_to_hash(pi) (RFC 9381 §5.2): the 64-byte VRF output.

    This does NOT verify the proof: use the beta `verify` returns for anything that matters.
    Raises ValueError if pi does not decode.
    """
    decoded = _decode_proof(pi)
    if decoded is None:
        raise ValueError("malformed VRF proof")
    return _gamma_to_hash(decoded[0])


def verify(public_key: bytes, pi: bytes, alpha: bytes) -> bytes | None:
    """ECVRF_verify(PK, pi, alpha) with validate_key (RFC 9381 §5.3): beta if valid, else None.

    Never raises on bad input: wrong lengths, undecodable or non-canonical points, s >= q,
    small-order public keys and wrong proofs all return None.
    """
    try:
        return _verify(bytes(public_key), bytes(pi), bytes(alpha))
    except (CryptoError, ValueError, TypeError):
        # libsodium rejects nothing that passed our decoding, but a consensus-critical check
        # must answer "invalid" rather than crash on an input nobody anticipated.
        return None


def _verify(pk: bytes, pi: bytes, alpha: bytes) -> bytes | None:
    y = _validate_key(pk)
    if y is None:
        return None
    decoded = _decode_proof(pi)
    if decoded is None:
        return None
    gamma, c, s = decoded
    h = _encode_to_curve(pk, alpha)
    if h is None:  # pragma: no cover - probability about 2^-256
        return None
    u = _sub(_base_mult(s), _mult(c, y))  # U = s*B - c*Y
    v = _sub(_mult(s, h), _mult(c, gamma))  # V = s*H - c*Gamma
    if _challenge(y, h, gamma, u, v) != c:
        return None
    return _gamma_to_hash(gamma)
