"""Travis libENI 1.3.7 libraries against the fixtures (SPEC §9, fixtures/lity)."""

from __future__ import annotations

import json

import pytest

from evm.eni import ENI_BASE_GAS, EniError, run
from tests.shared import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "lity"
TRACE = json.loads((FIXTURES / "jsontest_eni_trace.json").read_text())
RSA = json.loads((FIXTURES / "eni_rsa_vectors.json").read_text())


def call(function: str, *args: object) -> tuple[str, int]:
    """Run with Python arguments; returns (the result string, library gas)."""
    result, gas = run(function, json.dumps(args))
    (value,) = json.loads(result)
    return value, gas


@pytest.mark.parametrize("entry", TRACE, ids=lambda e: e["args_json"][:40])
def test_jsontest_trace(entry: dict[str, object]) -> None:
    result, gas = run(str(entry["eni"]), str(entry["args_json"]))
    assert result == entry["ret_json"]
    assert ENI_BASE_GAS + gas == entry["eni_gas"]


def test_reverse_vector() -> None:
    assert run("reverse", '["Hello World!"]') == ('["!dlroW olleH"]', 120)


def test_reverse_is_byte_reversal_of_non_ascii() -> None:
    value, gas = call("reverse", "hé")
    assert value.encode("utf-8", "surrogateescape") == "hé".encode()[::-1]
    assert gas == 30


def test_scrypt_vector() -> None:
    assert call("scrypt", "00") == (
        "161d0876f3b93b1048cda1bdeaa7332ee210f7131b42013cb43913a6553a4b69",
        10,
    )


def test_scrypt_pads_to_80_bytes() -> None:
    assert call("scrypt", "")[0] == call("scrypt", "00" * 80)[0]
    assert call("scrypt", "AB")[0] == call("scrypt", "ab")[0]


@pytest.mark.parametrize("bad", ["zz", "0", "0" * 162, "0x00", " 00"])
def test_scrypt_rejects_with_gas_1500(bad: str) -> None:
    with pytest.raises(EniError) as info:
        call("scrypt", bad)
    assert info.value.gas == 1500


def test_scrypt_accepts_160_chars() -> None:
    assert call("scrypt", "ff" * 80)[1] == 800


def test_rsa_encrypt_vector() -> None:
    vector = RSA["rsa_encrypt"]
    assert call("rsa_encrypt", *vector["args"]) == (vector["expected_result_hex"], vector["gas"])


def test_rsa_decrypt_vector() -> None:
    vector = RSA["rsa_decrypt"]
    assert call("rsa_decrypt", *vector["args"]) == (vector["expected_result"], vector["gas"])


def _ed25519_pems() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode(), private.decode()


def test_rsa_rejects_non_rsa_keys() -> None:
    public, private = _ed25519_pems()
    with pytest.raises(EniError):
        call("rsa_encrypt", public, "abc")
    with pytest.raises(EniError):
        call("rsa_decrypt", private, "00")


def test_rsa_round_trip_and_errors() -> None:
    public, private = RSA["rsa_encrypt"]["args"][0], RSA["rsa_decrypt"]["args"][0]
    cipher, _ = call("rsa_encrypt", public, "abc")
    assert call("rsa_decrypt", private, cipher)[0] == "abc"
    for function, args in [
        ("rsa_encrypt", (public, "x" * 257)),  # longer than the modulus
        ("rsa_encrypt", (public, "\xff" * 256)),  # not below the modulus
        ("rsa_encrypt", ("not a key", "abc")),
        ("rsa_encrypt", (private, "abc")),  # a private key is no public key
        ("rsa_decrypt", (private, "zz")),
        ("rsa_decrypt", (private, "ff" * 257)),
        ("rsa_decrypt", (public, cipher)),
    ]:
        with pytest.raises(EniError):
            call(function, *args)


DOC = '[true, 12345, "hello", [1,2,3], {"a": "b"}]'


def test_json_parse_array_concatenates_tokens() -> None:
    value, gas = call("json", "parseArray", DOC, 0, len(DOC))
    assert value == "".join(
        ["0000000100000005", "000000070000000c", "0000000e00000015", "000000170000001e"]
        + ["000000200000002a"]
    )
    assert gas == 10 * 80


def test_json_object_get_missing_key_is_zero_token() -> None:
    assert call("json", "objectGet", '{"a": 1}', 0, 8, "b") == ("0000000000000000", 160)


def test_json_object_get_decodes_keys_and_keeps_last_duplicate() -> None:
    doc = '{"\\u0061": 1, "a": [2]}'
    assert call("json", "objectGet", doc, 0, len(doc), "a")[0] == f"{19:08x}{22:08x}"


def test_json_primitives_and_whitespace() -> None:
    doc = "[ null ,\n-1.5e3 ]"
    assert call("json", "parseArray", doc, 0, len(doc))[0] == f"{2:08x}{6:08x}{9:08x}{15:08x}"


def test_json_parse_string_leading_whitespace_and_escapes() -> None:
    assert call("json", "parseString", '  "a\\nb"', 0, 99) == ("a\nb", 30)


@pytest.mark.parametrize(
    "args",
    [
        ("arrayGet", DOC, 0, len(DOC), 5),  # index out of range
        ("arrayGet", DOC, 0, len(DOC), -1),
        ("arrayGet", DOC, -1, len(DOC), 0),
        ("arrayGet", "", 0, 0, 0),  # no token
        ("arrayGet", '["a', 0, 3, 0),  # unterminated string
        ("arrayGet", '["\\x"]', 0, 6, 0),  # bad escape
        ("parseString", "12", 0, 2),  # not a string
        ("parseString", '"a"', 4, 1),  # begin past the end
        ("objectGet", "{1: 2}", 0, 6, "1"),  # key is no string
        ("nope", DOC, 0, 1),
        ("arrayGet", DOC, "0", 1, 0),
    ],
)
def test_json_errors(args: tuple[object, ...]) -> None:
    with pytest.raises(EniError):
        call("json", *args)


def test_json_counting_pass_ignores_unmatched_bracket() -> None:
    # libENI's second jsmn pass fails on the extra ']' but keeps the tokens it had.
    doc = '["foo", ["nested"]]'
    assert call("json", "arrayGet", doc, 8, 19, 0)[0] == "0000000900000011"


def test_bad_arguments() -> None:
    for function, args_json in [
        ("reverse", "[]"),
        ("reverse", "[1]"),
        ("reverse", '{"a": 1}'),
        ("reverse", "not json"),
        ("unknown", '["x"]'),
    ]:
        with pytest.raises(EniError):
            run(function, args_json)
