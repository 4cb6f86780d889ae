"""Cube signatures (SPEC §6): the shared fixture keys load, a signature made with a test key
verifies, and every way of getting it wrong is refused with its class and check_tx code.

The shared fixtures hold the Cube public keys but no signature vectors (the private keys are the
Cube vendor's), so positive cases use a key pair generated here with `cryptography`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cybermiles_node.staking.cube import (
    cube_digest,
    cube_keys,
    cube_message,
    delegation_source,
    verify_cube_signature,
)
from cybermiles_node.staking.errors import (
    InvalidCubeSignature,
    MalformedStakingTx,
    StakingRejected,
    UnknownCubeBatch,
)
from cybermiles_node.staking.records import DelegationSource
from genesis import default_params
from tests.shared import FIXTURES as SHARED_FIXTURES

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = SHARED_FIXTURES / "cube_pub_keys.json"

SENDER = bytes.fromhex("7eff122b94897ea5b0e2a9abf47b86337fafebdc")
OTHER = bytes.fromhex("77beb894fc9b0ed41231e51f128a347043960a9d")
NONCE = 7


def fixture_text() -> str:
    if not FIXTURE.is_file():  # fail, never skip: the fixture is part of the contract
        raise AssertionError(f"shared fixture missing: {FIXTURE}")
    return FIXTURE.read_text()


@pytest.fixture(scope="module")
def test_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys_json(test_key: rsa.RSAPrivateKey) -> str:
    """The fixture's batches plus batch "99" holding the test key."""
    pem = (
        test_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return json.dumps([*json.loads(fixture_text()), {"cube_batch": "99", "pub_key": pem}])


def sign(key: rsa.RSAPrivateKey, sender: bytes, nonce: int) -> str:
    """A raw RSA signature as the Cube makes it: s = digest^d mod n, in hex."""
    numbers = key.private_numbers()
    return format(pow(cube_digest(sender, nonce), numbers.d, numbers.public_numbers.n), "x")


# -- the message --------------------------------------------------------------------------------
def test_message_is_lowercase_address_bar_decimal_nonce() -> None:
    upper = bytes.fromhex("ABCDEF" + "00" * 17)
    assert cube_message(upper, 1234) == b"0xabcdef" + b"00" * 17 + b"|1234"
    digest = hashlib.sha256(b"0x" + SENDER.hex().encode() + b"|7").digest()
    assert cube_digest(SENDER, NONCE) == int.from_bytes(digest, "big")


# -- the fixture keys ---------------------------------------------------------------------------
def test_fixture_keys_load_by_batch() -> None:
    keys = cube_keys(fixture_text())
    assert sorted(keys) == ["01", "02", "05", "06"]
    for key in keys.values():
        assert key.e == 65537
        assert key.n.bit_length() == 1024


def test_default_parameter_holds_the_fixture_keys() -> None:
    assert cube_keys(default_params().cube_pub_keys) == cube_keys(fixture_text())


def test_keys_are_parsed_once_per_text() -> None:
    text = fixture_text()
    assert cube_keys(text) is cube_keys(text)


def test_random_sig_against_a_fixture_key_is_refused() -> None:
    n = cube_keys(fixture_text())["01"].n
    with pytest.raises(InvalidCubeSignature):
        verify_cube_signature(SENDER, NONCE, "01", format(n // 3, "x"), fixture_text())


# -- a test key pair -----------------------------------------------------------------------------
def test_valid_signature_gives_source_cube(test_key: rsa.RSAPrivateKey, keys_json: str) -> None:
    sig = sign(test_key, SENDER, NONCE)
    verify_cube_signature(SENDER, NONCE, "99", sig, keys_json)
    assert delegation_source(SENDER, NONCE, "99", sig, keys_json) is DelegationSource.CUBE
    # "0x" prefix and upper case are the same value.
    assert delegation_source(SENDER, NONCE, "99", "0x" + sig.upper(), keys_json) is (
        DelegationSource.CUBE
    )


def test_no_sig_gives_source_wallet(keys_json: str) -> None:
    assert delegation_source(SENDER, NONCE, "", "", keys_json) is DelegationSource.WALLET
    # Without a signature the batch is not looked at.
    assert delegation_source(SENDER, NONCE, "nope", "", keys_json) is DelegationSource.WALLET


def _tampered(sig: str) -> str:
    last = "0" if sig[-1] != "0" else "1"
    return sig[:-1] + last


Case = Callable[[rsa.RSAPrivateKey], tuple[bytes, int, str, str]]
REFUSALS: list[tuple[str, Case, type[StakingRejected], int]] = [
    ("wrong nonce", lambda k: (SENDER, NONCE + 1, "99", sign(k, SENDER, NONCE)),
     InvalidCubeSignature, 21),
    ("wrong sender", lambda k: (OTHER, NONCE, "99", sign(k, SENDER, NONCE)),
     InvalidCubeSignature, 21),
    ("tampered sig", lambda k: (SENDER, NONCE, "99", _tampered(sign(k, SENDER, NONCE))),
     InvalidCubeSignature, 21),
    ("sig + n (out of range)", lambda k: (
        SENDER, NONCE, "99",
        format(int(sign(k, SENDER, NONCE), 16) + k.public_key().public_numbers().n, "x"),
    ), InvalidCubeSignature, 21),
    ("other batch's key", lambda k: (SENDER, NONCE, "01", sign(k, SENDER, NONCE)),
     InvalidCubeSignature, 21),
    ("unknown batch", lambda k: (SENDER, NONCE, "42", sign(k, SENDER, NONCE)),
     UnknownCubeBatch, 21),
    ("empty batch", lambda k: (SENDER, NONCE, "", sign(k, SENDER, NONCE)),
     UnknownCubeBatch, 21),
    ("sig not hex", lambda k: (SENDER, NONCE, "99", "zz" + sign(k, SENDER, NONCE)),
     MalformedStakingTx, 1),
    ("sig only 0x", lambda k: (SENDER, NONCE, "99", "0x"), MalformedStakingTx, 1),
    ("sig too long", lambda k: (SENDER, NONCE, "99", "f" * 1025), MalformedStakingTx, 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "error", "check_tx_code"),
    [pytest.param(case, error, code, id=name) for name, case, error, code in REFUSALS],
)
def test_refusals(
    test_key: rsa.RSAPrivateKey,
    keys_json: str,
    case: Case,
    error: type[StakingRejected],
    check_tx_code: int,
) -> None:
    sender, nonce, batch, sig = case(test_key)
    with pytest.raises(error) as caught:
        delegation_source(sender, nonce, batch, sig, keys_json)
    assert type(caught.value) is error
    assert caught.value.check_tx_code == check_tx_code
    assert "stake/delegate" in caught.value.message


def test_codes_of_the_refusals() -> None:
    assert (InvalidCubeSignature.code, UnknownCubeBatch.code, MalformedStakingTx.code) == (
        2023,
        2022,
        -32000,
    )


def test_digest_with_leading_zero_byte_verifies(
    test_key: rsa.RSAPrivateKey, keys_json: str
) -> None:
    """Compared as integers (SPEC §6), unlike Travis's byte comparison."""
    nonce = next(n for n in range(100_000) if cube_digest(SENDER, n) < 2**248)
    sig = sign(test_key, SENDER, nonce)
    assert delegation_source(SENDER, nonce, "99", sig, keys_json) is DelegationSource.CUBE
