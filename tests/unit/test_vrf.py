"""ECVRF-EDWARDS25519-SHA512-TAI (evm.vrf) against RFC 9381, and the VrfBeacon built on it.

The known-answer vectors are RFC 9381 Appendix B.3, Examples 16-18 (SK, PK, alpha, pi, beta,
plus the intermediate secret scalar x and encode_to_curve output H, which pin down the key
expansion and try-and-increment separately; Example 17 needs counter 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.keys import Ed25519Key
from cybermiles_node.application.randomness import HashChainBeacon, VrfBeacon
from evm import vrf


@dataclass(frozen=True)
class Vector:
    sk: bytes
    pk: bytes
    alpha: bytes
    x: bytes
    h: bytes
    pi: bytes
    beta: bytes


def _vector(sk: str, pk: str, alpha: str, x: str, h: str, pi: str, beta: str) -> Vector:
    return Vector(*(bytes.fromhex(v) for v in (sk, pk, alpha, x, h, pi, beta)))


# RFC 9381 Appendix B.3 (ECVRF-EDWARDS25519-SHA512-TAI).
RFC9381_B3 = [
    _vector(  # Example 16
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "307c83864f2833cb427a2ef1c00a013cfdff2768d980c0a3a520f006904de94f",
        "91bbed02a99461df1ad4c6564a5f5d829d0b90cfc7903e7a5797bd658abf3318",
        "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f"
        "26f8a57ccaed74ee1b190bed1f479d9727d2d0f9b005a6e456a35d4fb0daab12"
        "68a1b0db10836d9826a528ca76567805",
        "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff"
        "66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae",
    ),
    _vector(  # Example 17
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "68bd9ed75882d52815a97585caf4790a7f6c6b3b7f821c5e259a24b02e502e51",
        "5b659fc3d4e9263fd9a4ed1d022d75eaacc20df5e09f9ea937502396598dc551",
        "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed593"
        "3bf0864a62558b3ed7f2fea45c92a465301b3bbf5e3e54ddf2d935be3b67926d"
        "a3ef39226bbc355bdc9850112c8f4b02",
        "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb"
        "5e33821bc613efb94db5e5b54c70a848a0bef4553a41befc57663b56373a5031",
    ),
    _vector(  # Example 18
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "909a8b755ed902849023a55b15c23d11ba4d7f4ec5c2f51b1325a181991ea95c",
        "bf4339376f5542811de615e3313d2b36f6f53c0acfebb482159711201192576a",
        "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf80"
        "96bb474e53895c362d8628ee9f9ea3c0e52c7a5c691b6c18c9979866568add7a"
        "2d41b00b05081ed0f58ee5e31b3a970e",
        "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c45"
        "2118fec1219202a0edcf038bb6373241578be7217ba85a2687f7a0310b2df19f",
    ),
]
IDS = ["example16", "example17", "example18"]
V0 = RFC9381_B3[0]

P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493
IDENTITY = (1).to_bytes(32, "little")
ORDER_2 = (P - 1).to_bytes(32, "little")  # the point (0, -1)


# --- RFC 9381 Appendix B.3 ----------------------------------------------------------------------


@pytest.mark.parametrize("v", RFC9381_B3, ids=IDS)
def test_rfc_public_key(v: Vector) -> None:
    assert vrf.public_key(v.sk) == v.pk
    assert Ed25519Key.from_seed(v.sk).public_key == v.pk  # the node's ed25519 key is the VRF key


@pytest.mark.parametrize("v", RFC9381_B3, ids=IDS)
def test_rfc_intermediates(v: Vector) -> None:
    x, _ = vrf._expand_secret(v.sk)
    assert x.to_bytes(32, "little") == v.x
    assert vrf._encode_to_curve(v.pk, v.alpha) == v.h


@pytest.mark.parametrize("v", RFC9381_B3, ids=IDS)
def test_rfc_prove(v: Vector) -> None:
    assert vrf.prove(v.sk, v.alpha) == v.pi


@pytest.mark.parametrize("v", RFC9381_B3, ids=IDS)
def test_rfc_proof_to_hash(v: Vector) -> None:
    assert vrf.proof_to_hash(v.pi) == v.beta


@pytest.mark.parametrize("v", RFC9381_B3, ids=IDS)
def test_rfc_verify(v: Vector) -> None:
    assert vrf.verify(v.pk, v.pi, v.alpha) == v.beta


# --- determinism and round trip -----------------------------------------------------------------


def test_prove_is_deterministic() -> None:
    seed, alpha = os.urandom(32), os.urandom(40)
    assert vrf.prove(seed, alpha) == vrf.prove(seed, alpha)
    assert len(vrf.prove(seed, alpha)) == vrf.PROOF_LEN


@settings(max_examples=25, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), alpha=st.binary(max_size=100))
def test_round_trip(seed: bytes, alpha: bytes) -> None:
    pi = vrf.prove(seed, alpha)
    beta = vrf.verify(vrf.public_key(seed), pi, alpha)
    assert beta is not None and beta == vrf.proof_to_hash(pi) and len(beta) == vrf.BETA_LEN


def test_prove_rejects_bad_seed_length() -> None:
    with pytest.raises(ValueError):
        vrf.prove(b"\x00" * 31, b"")


# --- rejection ----------------------------------------------------------------------------------


@pytest.mark.parametrize("v", RFC9381_B3, ids=IDS)
def test_every_flipped_bit_of_pi_is_rejected(v: Vector) -> None:
    for bit in range(8 * len(v.pi)):
        tampered = bytearray(v.pi)
        tampered[bit // 8] ^= 1 << (bit % 8)
        assert vrf.verify(v.pk, bytes(tampered), v.alpha) is None, f"bit {bit}"


@pytest.mark.parametrize("v", RFC9381_B3, ids=IDS)
def test_wrong_alpha_is_rejected(v: Vector) -> None:
    assert vrf.verify(v.pk, v.pi, v.alpha + b"\x00") is None
    assert vrf.verify(v.pk, v.pi, b"other") is None


def test_wrong_public_key_is_rejected() -> None:
    for v, other in zip(RFC9381_B3, RFC9381_B3[1:] + RFC9381_B3[:1], strict=True):
        assert vrf.verify(other.pk, v.pi, v.alpha) is None


def test_truncated_and_extended_proofs_are_rejected() -> None:
    for n in (0, 1, 32, 48, 79):
        assert vrf.verify(V0.pk, V0.pi[:n], V0.alpha) is None
    assert vrf.verify(V0.pk, V0.pi + b"\x00", V0.alpha) is None
    assert vrf.verify(V0.pk, V0.pi * 2, V0.alpha) is None
    with pytest.raises(ValueError):
        vrf.proof_to_hash(V0.pi[:79])


def test_wrong_length_public_keys_are_rejected() -> None:
    for pk in (b"", V0.pk[:31], V0.pk + b"\x00"):
        assert vrf.verify(pk, V0.pi, V0.alpha) is None


def test_non_canonical_s_is_rejected() -> None:
    # s + q satisfies the same verification equation; the RFC rejects it so proofs are unique.
    s = int.from_bytes(V0.pi[48:], "little")
    assert s + Q < 2**256
    malleated = V0.pi[:48] + (s + Q).to_bytes(32, "little")
    assert vrf.verify(V0.pk, malleated, V0.alpha) is None


def test_point_decoding_follows_rfc8032() -> None:
    assert vrf._decode_point(IDENTITY) == IDENTITY
    assert vrf._decode_point(V0.pk) == V0.pk
    assert vrf._decode_point((P + 1).to_bytes(32, "little")) is None  # y >= p (identity again)
    assert vrf._decode_point((1 | 1 << 255).to_bytes(32, "little")) is None  # x = 0, sign 1
    assert vrf._decode_point((2).to_bytes(32, "little")) is None  # y = 2 is not on the curve
    assert vrf._decode_point(V0.pk[:31]) is None


def _small_order_points() -> list[bytes]:
    """The 8 points of order dividing 8: the multiples of an order-8 point T.

    q * P kills P's prime-order part and leaves its torsion part; try small encodings until
    that part has order exactly 8.
    """
    for i in range(256):
        candidate = vrf._decode_point(bytes([i]) + bytes(31))
        if candidate is None:
            continue
        t = vrf._double_and_add(Q, candidate)
        if vrf._double_and_add(4, t) != IDENTITY:  # order exactly 8
            points = [vrf._double_and_add(k, t) for k in range(8)]
            assert len(set(points)) == 8
            return points
    raise AssertionError("no order-8 point found")


def test_small_order_public_keys_are_rejected() -> None:
    points = _small_order_points()
    assert IDENTITY in points and ORDER_2 in points
    for pk in points:
        assert vrf.verify(pk, V0.pi, V0.alpha) is None
        # Even a "proof" whose Gamma is the identity (which would pass for some small-order keys
        # without key validation) is rejected.
        assert vrf.verify(pk, IDENTITY + bytes(48), V0.alpha) is None


@settings(max_examples=200, deadline=None)
@given(pi=st.binary(min_size=80, max_size=80))
def test_random_proofs_are_rejected(pi: bytes) -> None:
    assert vrf.verify(V0.pk, pi, V0.alpha) is None


@settings(max_examples=200, deadline=None)
@given(pk=st.binary(max_size=40), pi=st.binary(max_size=100), alpha=st.binary(max_size=40))
def test_verify_never_raises(pk: bytes, pi: bytes, alpha: bytes) -> None:
    assert vrf.verify(pk, pi, alpha) is None


# --- public keys with a torsion component (the double-and-add path) ------------------------------


def test_double_and_add_matches_libsodium() -> None:
    for n in (1, 2, 3, 2**128 - 1, Q - 1, Q, Q + 5, 2**255 + 7):
        assert vrf._double_and_add(n, V0.pk) == vrf._mult(n, V0.pk)
    assert vrf._mult(Q, V0.pk) == IDENTITY


def _prove_for_torsioned_key(seed: bytes, pk: bytes, alpha: bytes, want_c_mod_8: int) -> bytes:
    """A proof for pk = x*B + T (T of order 2) made with the honest prover's steps.

    The verifier computes U = s*B - c*pk = k*B - c*T, which equals the prover's k*B exactly when
    c is even; grinding the nonce picks the case the test wants.
    """
    x, _ = vrf._expand_secret(seed)
    h = vrf._encode_to_curve(pk, alpha)
    assert h is not None
    gamma = vrf._mult(x, h)
    for k in range(1, 1000):
        c = vrf._challenge(pk, h, gamma, vrf._base_mult(k), vrf._mult(k, h))
        if c % 8 == want_c_mod_8:
            s = (k + c * x) % Q
            return gamma + c.to_bytes(16, "little") + s.to_bytes(32, "little")
    raise AssertionError("grinding failed")


def test_torsioned_public_key_follows_rfc_arithmetic() -> None:
    # RFC 9381 only rejects small-order keys, so a key with a torsion component is valid and
    # c*Y must include the torsion part: a proof verifies iff c*T vanishes.
    seed, alpha = V0.sk, b"torsion"
    pk = vrf._add(V0.pk, ORDER_2)
    assert not vrf.sodium.crypto_core_ed25519_is_valid_point(pk)
    good = _prove_for_torsioned_key(seed, pk, alpha, want_c_mod_8=0)
    assert vrf.verify(pk, good, alpha) == vrf.proof_to_hash(good)
    bad = _prove_for_torsioned_key(seed, pk, alpha, want_c_mod_8=1)
    assert vrf.verify(pk, bad, alpha) is None


# --- VrfBeacon ----------------------------------------------------------------------------------


def test_beacon_round_trip() -> None:
    key, previous = Ed25519Key.generate(), os.urandom(32)
    beacon = VrfBeacon()
    output, proof = beacon.produce(key, previous)
    assert len(output) == 32 and len(proof) == vrf.PROOF_LEN
    assert output == vrf.proof_to_hash(proof)[:32]
    assert beacon.verify(key.public_key, previous, output, proof)
    assert beacon.produce(key, previous) == (output, proof)


def test_beacon_chain_of_blocks() -> None:
    keys = [Ed25519Key.from_seed(bytes([i]) * 32) for i in range(3)]
    beacon, previous = VrfBeacon(), bytes(32)
    for height in range(6):
        key = keys[height % 3]
        output, proof = beacon.produce(key, previous)
        assert beacon.verify(key.public_key, previous, output, proof)
        assert output != previous
        previous = output


def test_beacon_rejections() -> None:
    key, other, previous = Ed25519Key.generate(), Ed25519Key.generate(), os.urandom(32)
    beacon = VrfBeacon()
    output, proof = beacon.produce(key, previous)
    assert not beacon.verify(other.public_key, previous, output, proof)  # not the proposer
    assert not beacon.verify(key.public_key, os.urandom(32), output, proof)  # other previous
    assert not beacon.verify(key.public_key, previous, os.urandom(32), proof)  # other output
    full_beta = vrf.proof_to_hash(proof)
    assert not beacon.verify(key.public_key, previous, full_beta, proof)  # untruncated
    tampered = proof[:40] + bytes([proof[40] ^ 1]) + proof[41:]
    assert not beacon.verify(key.public_key, previous, output, tampered)
    assert not beacon.verify(key.public_key, previous, output, b"")
    # The placeholder's (output, empty proof) is not a VRF beacon value.
    chain_output, chain_proof = HashChainBeacon().produce(key, previous)
    assert not beacon.verify(key.public_key, previous, chain_output, chain_proof)
