"""The node keystore (cybermiles_node.accounts): geth v3 files that eth_account reads back and
that we read from eth_account and geth (the Travis fixture), refusals that leave the keystore
unchanged, private crash-safe writes, and unlock expiry on a fake clock.

New files use geth's light scrypt cost (n = 4096) to keep the suite fast; the fixture and one
round trip use the standard n = 2^18 (~0.6 s each)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from cybermiles_node.accounts.keyfile import (
    LIGHT_SCRYPT_N,
    InvalidPrivateKey,
    MalformedKeyfile,
    WrongPassphrase,
    address_of,
    keyfile_name,
    parse_keyfile,
    parse_private_key_hex,
)
from cybermiles_node.accounts.keystore import (
    AccountExists,
    Keystore,
    UnknownAccount,
    keystore_dir,
)
from cybermiles_node.accounts.unlock import AccountLocked, BadDuration, Unlocker
from tests.shared import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "keystore"
TRAVIS_7EFF = FIXTURES / (
    "UTC--2016-10-21T22-30-03.071787745Z--7eff122b94897ea5b0e2a9abf47b86337fafebdc"
)
TRAVIS_77BE = FIXTURES / (
    "UTC--2018-04-09T09-48-47.241470000Z--77beb894fc9b0ed41231e51f128a347043960a9d"
)
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = bytes.fromhex(Account.from_key(KEY).address[2:])


def light_keystore(tmp_path: Path) -> Keystore:
    return Keystore(keystore_dir(tmp_path), scrypt_n=LIGHT_SCRYPT_N)


def snapshot(directory: Path) -> dict[str, bytes]:
    if not directory.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# ---------------------------------------------------------------- round trips


def test_what_we_write_eth_account_decrypts(tmp_path: Path) -> None:
    entry = light_keystore(tmp_path).import_key(KEY, "correct horse")
    body = json.loads(entry.path.read_text())
    assert bytes(Account.decrypt(body, "correct horse")) == KEY
    assert entry.address == ADDRESS
    assert entry.path.name.endswith("--" + ADDRESS.hex())


def test_standard_cost_file_is_geths_standard_and_eth_account_decrypts(tmp_path: Path) -> None:
    entry = Keystore(keystore_dir(tmp_path)).import_key(KEY, "pw")
    body = json.loads(entry.path.read_text())
    assert body["crypto"]["kdfparams"]["n"] == 1 << 18
    assert body["version"] == 3 and body["address"] == ADDRESS.hex()
    assert bytes(Account.decrypt(body, "pw")) == KEY


@pytest.mark.parametrize("kdf", ["scrypt", "pbkdf2"])
def test_we_decrypt_what_eth_account_encrypts(tmp_path: Path, kdf: str) -> None:
    body = Account.encrypt(KEY, "pass phrase", kdf=kdf, iterations=1024 if kdf == "scrypt" else 2)
    source = tmp_path / "from-eth-account.json"
    source.write_text(json.dumps(body))
    keystore = light_keystore(tmp_path)
    entry = keystore.import_keyfile(source, "pass phrase")
    assert entry.address == ADDRESS
    assert keystore.decrypt(ADDRESS, "pass phrase") == KEY


def test_the_travis_fixture_decrypts_with_1234(tmp_path: Path) -> None:
    keystore = light_keystore(tmp_path)
    entry = keystore.import_keyfile(TRAVIS_7EFF, "1234")
    address = bytes.fromhex("7eff122b94897ea5b0e2a9abf47b86337fafebdc")
    assert entry.address == address
    assert address_of(keystore.decrypt(address, "1234")) == address
    # Copied as it is: its own KDF parameters, same ciphertext.
    assert (
        json.loads(entry.path.read_text())["crypto"]
        == json.loads(TRAVIS_7EFF.read_text())["crypto"]
    )


def test_a_file_without_its_passphrase_is_imported_for_form_only(tmp_path: Path) -> None:
    keystore = light_keystore(tmp_path)
    entry = keystore.import_keyfile(TRAVIS_77BE, None)
    assert entry.address.hex() == "77beb894fc9b0ed41231e51f128a347043960a9d"
    assert keystore.addresses() == [entry.address]


def test_file_names_are_geths() -> None:
    when = datetime(2018, 4, 9, 9, 48, 47, 241470, tzinfo=UTC)
    assert keyfile_name(bytes.fromhex("77beb894fc9b0ed41231e51f128a347043960a9d"), when) == (
        TRAVIS_77BE.name
    )


# ------------------------------------------------------------------ refusals


def test_wrong_passphrase_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    keystore = light_keystore(tmp_path)
    keystore.import_key(KEY, "right")
    before = snapshot(keystore.directory)
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        keystore.decrypt(ADDRESS, "wrong")
    with pytest.raises(WrongPassphrase, match=TRAVIS_7EFF.name):
        keystore.import_keyfile(TRAVIS_7EFF, "4321")
    assert snapshot(keystore.directory) == before


def test_a_key_already_present_is_refused(tmp_path: Path) -> None:
    keystore = light_keystore(tmp_path)
    first = keystore.import_key(KEY, "one")
    before = snapshot(keystore.directory)
    with pytest.raises(AccountExists, match=first.path.name):
        keystore.import_key(KEY, "two")
    with pytest.raises(AccountExists):
        keystore.import_keyfile(first.path, "one")
    assert snapshot(keystore.directory) == before


def test_unknown_account(tmp_path: Path) -> None:
    with pytest.raises(UnknownAccount, match="0x" + ADDRESS.hex()):
        light_keystore(tmp_path).decrypt(ADDRESS, "x")


def good_body() -> dict[str, Any]:
    return json.loads(TRAVIS_7EFF.read_text())


def broken(change: str) -> str:
    body = good_body()
    crypto = body["crypto"]
    if change == "not json":
        return "{"
    if change == "array":
        return "[]"
    if change == "version":
        body["version"] = 1
    elif change == "no crypto":
        del body["crypto"]
    elif change == "cipher":
        crypto["cipher"] = "aes-256-cbc"
    elif change == "iv":
        crypto["cipherparams"]["iv"] = "zz"
    elif change == "mac size":
        crypto["mac"] = "00"
    elif change == "kdf":
        crypto["kdf"] = "argon2"
    elif change == "huge n":
        crypto["kdfparams"]["n"] = 1 << 30
    elif change == "n not power of two":
        crypto["kdfparams"]["n"] = 1000
    elif change == "n as string":
        crypto["kdfparams"]["n"] = "262144"
    elif change == "dklen":
        crypto["kdfparams"]["dklen"] = 16
    elif change == "address":
        body["address"] = "7eff"
    return json.dumps(body)


BROKEN = [
    "not json",
    "array",
    "version",
    "no crypto",
    "cipher",
    "iv",
    "mac size",
    "kdf",
    "huge n",
    "n not power of two",
    "n as string",
    "dklen",
    "address",
]


@pytest.mark.parametrize("change", BROKEN)
def test_malformed_files_are_one_clear_error_naming_the_file(change: str) -> None:
    with pytest.raises(MalformedKeyfile) as caught:
        parse_keyfile(broken(change), "/some/UTC--file")
    message = str(caught.value)
    assert message.startswith("/some/UTC--file: ") and "\n" not in message


def test_a_file_whose_key_is_not_its_address_is_refused(tmp_path: Path) -> None:
    body = Account.encrypt(KEY, "pw", kdf="pbkdf2", iterations=2)
    body["address"] = "7eff122b94897ea5b0e2a9abf47b86337fafebdc"
    source = tmp_path / "liar.json"
    source.write_text(json.dumps(body))
    keystore = light_keystore(tmp_path)
    with pytest.raises(MalformedKeyfile, match="belongs to 0x" + ADDRESS.hex()):
        keystore.import_keyfile(source, "pw")
    assert snapshot(keystore.directory) == {}


def test_scan_reports_broken_files_and_ignores_dotfiles(tmp_path: Path) -> None:
    keystore = light_keystore(tmp_path)
    good = keystore.import_key(KEY, "pw")
    (keystore.directory / "UTC--broken").write_text(broken("cipher"))
    (keystore.directory / "notes.txt").write_text("hello")
    (keystore.directory / ".editor-swap").write_text("ignored like geth")
    (keystore.directory / "subdir").mkdir()
    scan = keystore.scan()
    assert [e.path for e in scan.entries] == [good.path]
    assert [p.path.name for p in scan.problems] == ["UTC--broken", "notes.txt"]
    assert "cipher" in scan.problems[0].reason and "not JSON" in scan.problems[1].reason
    # A broken file does not hide the good ones from decrypt either.
    assert keystore.decrypt(ADDRESS, "pw") == KEY


def test_an_oversized_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    keystore = light_keystore(tmp_path)
    keystore.directory.mkdir(parents=True)
    (keystore.directory / "UTC--big").write_bytes(b" " * (1 << 20))
    assert "larger than" in keystore.scan().problems[0].reason


@pytest.mark.parametrize("text", ["", "0x12", "zz" * 32, "00" * 32, "ff" * 32])
def test_invalid_private_keys(text: str) -> None:
    with pytest.raises(InvalidPrivateKey):
        parse_private_key_hex(text)


def test_private_key_hex_with_or_without_0x() -> None:
    assert parse_private_key_hex(" 0x" + KEY.hex() + "\n") == KEY
    assert parse_private_key_hex(KEY.hex()) == KEY


# ---------------------------------------------------------------- file modes


def test_files_0600_directory_0700_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        keystore = light_keystore(tmp_path)
        entry = keystore.new_account("pw")
    finally:
        os.umask(old)
    assert stat.S_IMODE(keystore.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    assert [p.name for p in keystore.directory.iterdir()] == [entry.path.name]  # no temp left
    assert address_of(keystore.decrypt(entry.address, "pw")) == entry.address


# ------------------------------------------------------------------ unlocking


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unlocker_with_key(tmp_path: Path) -> tuple[Unlocker, FakeClock]:
    keystore = light_keystore(tmp_path)
    keystore.import_key(KEY, "pw")
    clock = FakeClock()
    return Unlocker(keystore, clock, default_seconds=300), clock


def test_an_unlock_expires_on_the_clock(tmp_path: Path) -> None:
    unlocker, clock = unlocker_with_key(tmp_path)
    unlocker.unlock(ADDRESS, "pw", 60)
    clock.now += 59.9
    assert unlocker.is_unlocked(ADDRESS) and unlocker.key_of(ADDRESS) == KEY
    clock.now += 0.1
    assert not unlocker.is_unlocked(ADDRESS)
    with pytest.raises(AccountLocked, match="0x" + ADDRESS.hex()):
        unlocker.key_of(ADDRESS)
    assert unlocker.unlocked_addresses() == []


def test_default_duration_zero_and_lock(tmp_path: Path) -> None:
    unlocker, clock = unlocker_with_key(tmp_path)
    unlocker.unlock(ADDRESS, "pw", None)
    clock.now += 299
    assert unlocker.is_unlocked(ADDRESS)
    clock.now += 1
    assert not unlocker.is_unlocked(ADDRESS)
    unlocker.unlock(ADDRESS, "pw", 0)  # until locked
    clock.now += 10**9
    assert unlocker.unlocked_addresses() == [ADDRESS]
    unlocker.lock(ADDRESS)
    assert not unlocker.is_unlocked(ADDRESS)


def test_unlocking_again_replaces_the_expiry(tmp_path: Path) -> None:
    unlocker, clock = unlocker_with_key(tmp_path)
    unlocker.unlock(ADDRESS, "pw", 0)
    unlocker.unlock(ADDRESS, "pw", 10)
    clock.now += 10
    assert not unlocker.is_unlocked(ADDRESS)


def test_wrong_passphrase_or_bad_duration_leaves_the_lock_state_alone(tmp_path: Path) -> None:
    unlocker, clock = unlocker_with_key(tmp_path)
    unlocker.unlock(ADDRESS, "pw", 100)
    with pytest.raises(WrongPassphrase):
        unlocker.unlock(ADDRESS, "nope", 0)
    for bad in (-1, 1.5, True, 10**12):
        with pytest.raises(BadDuration):
            unlocker.unlock(ADDRESS, "pw", bad)  # type: ignore[arg-type]
    clock.now += 100
    assert not unlocker.is_unlocked(ADDRESS)  # still the first unlock's expiry
    with pytest.raises(AccountLocked):
        Unlocker(light_keystore(tmp_path), clock).key_of(ADDRESS)
