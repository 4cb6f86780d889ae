"""`[accounts] unlock` + `password_file` (geth's --unlock/--password): keystore accounts unlocked
when the node starts, until it stops, and every refusal one StartupRefused line naming the
account or the file (cybermiles_node.operator.startup.unlock_configured_accounts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomli_w

from cybermiles_node.accounts.keyfile import LIGHT_SCRYPT_N
from cybermiles_node.accounts.keystore import Keystore, keystore_dir
from cybermiles_node.accounts.unlock import Unlocker
from cybermiles_node.operator.config import (
    AccountsConfig,
    ConfigError,
    NodeConfig,
    RpcConfig,
    load_config,
)
from cybermiles_node.operator.keys import KeyFileError
from cybermiles_node.operator.startup import (
    StartupRefused,
    unlock_configured_accounts,
    unlock_passphrases,
)

A = "0x" + "aa" * 20
B = "0x" + "bb" * 20
C = "0x" + "cc" * 20


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "text, expected",
    [
        ("one\ntwo\nthree\n", ["one", "two", "three"]),
        ("one\ntwo\nthree", ["one", "two", "three"]),
        ("same\n", ["same", "same", "same"]),  # one line serves every account
        ("one\ntwo\n", ["one", "two", "two"]),  # the last line for accounts beyond (geth)
        ("crlf\r\nline\r\n", ["crlf", "line", "line"]),
        (" spaced \n", [" spaced ", " spaced ", " spaced "]),  # blanks are passphrase text
    ],
)
def test_passphrases_are_read_as_geth_reads_password(text: str, expected: list[str]) -> None:
    plan = unlock_passphrases(AccountsConfig(unlock=(A, B, C)), text, "pw")
    assert plan == [(bytes.fromhex(a[2:]), p) for a, p in zip((A, B, C), expected, strict=True)]


@pytest.mark.parametrize("text", ["", "\n"])
def test_an_empty_password_file_is_refused(text: str) -> None:
    with pytest.raises(StartupRefused, match="^pw: the password file is empty$"):
        unlock_passphrases(AccountsConfig(unlock=(A,)), text, "pw")


def make_home(tmp_path: Path, passphrases: list[str]) -> tuple[Path, Keystore, list[bytes]]:
    keystore = Keystore(keystore_dir(tmp_path), scrypt_n=LIGHT_SCRYPT_N)
    addresses = [keystore.new_account(p).address for p in passphrases]
    return tmp_path, keystore, addresses


def write_password_file(home: Path, text: str, mode: int = 0o600) -> str:
    path = home / "config" / "password.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return "config/password.txt"


def config_for(addresses: list[bytes], password_file: str, **rpc: object) -> NodeConfig:
    return NodeConfig(
        rpc=RpcConfig(**rpc),  # type: ignore[arg-type]
        accounts=AccountsConfig(
            unlock=tuple(f"0x{a.hex()}" for a in addresses), password_file=password_file
        ),
    )


def test_configured_accounts_are_unlocked_until_the_node_stops(tmp_path: Path) -> None:
    home, keystore, addresses = make_home(tmp_path, ["first", "second"])
    config = config_for(addresses, write_password_file(home, "first\nsecond\n"))
    clock = FakeClock()
    unlocker = Unlocker(keystore, clock)
    assert unlock_configured_accounts(unlocker, config, home) == 2
    clock.now += 10 * 365 * 24 * 3600  # duration 0: no expiry
    assert unlocker.unlocked_addresses() == sorted(addresses)
    for address, passphrase in zip(addresses, ["first", "second"], strict=True):
        assert unlocker.key_of(address) == keystore.decrypt(address, passphrase)


def test_no_unlock_list_reads_nothing(tmp_path: Path) -> None:
    unlocker = Unlocker(Keystore(keystore_dir(tmp_path)), FakeClock())
    assert unlock_configured_accounts(unlocker, NodeConfig(), tmp_path) == 0


def test_an_absolute_password_file_is_used_as_written(tmp_path: Path) -> None:
    home, keystore, addresses = make_home(tmp_path / "home", ["pw"])
    absolute = tmp_path / "secret.txt"
    absolute.write_text("pw\n")
    os.chmod(absolute, 0o600)
    unlocker = Unlocker(keystore, FakeClock())
    assert unlock_configured_accounts(unlocker, config_for(addresses, str(absolute)), home) == 1


def test_a_wrong_passphrase_refuses_to_start_naming_the_account(tmp_path: Path) -> None:
    home, keystore, addresses = make_home(tmp_path, ["right", "other"])
    config = config_for(addresses, write_password_file(home, "right\nwrong\n"))
    unlocker = Unlocker(keystore, FakeClock())
    with pytest.raises(StartupRefused) as refused:
        unlock_configured_accounts(unlocker, config, home)
    message = str(refused.value)
    assert "\n" not in message
    assert f"does not open 0x{addresses[1].hex()}" in message
    assert str(home / "config" / "password.txt") in message


def test_an_account_missing_from_the_keystore_refuses_to_start(tmp_path: Path) -> None:
    home, keystore, addresses = make_home(tmp_path, ["pw"])
    stranger = bytes.fromhex("cc" * 20)
    config = config_for([*addresses, stranger], write_password_file(home, "pw\n"))
    with pytest.raises(StartupRefused, match=f"0x{'cc' * 20} is not in the node's keystore"):
        unlock_configured_accounts(Unlocker(keystore, FakeClock()), config, home)


def test_unlock_on_a_public_rpc_bind_is_refused_unless_allowed(tmp_path: Path) -> None:
    home, keystore, addresses = make_home(tmp_path, ["pw"])
    password_file = write_password_file(home, "pw\n")
    public = config_for(addresses, password_file, host="0.0.0.0")
    with pytest.raises(StartupRefused, match="rpc.host is 0.0.0.0 .*allow_insecure_unlock"):
        unlock_configured_accounts(Unlocker(keystore, FakeClock()), public, home)
    allowed = config_for(addresses, password_file, host="0.0.0.0", allow_insecure_unlock=True)
    assert unlock_configured_accounts(Unlocker(keystore, FakeClock()), allowed, home) == 1


def test_unlock_on_a_node_without_node_accounts_is_refused(tmp_path: Path) -> None:
    home, _keystore, addresses = make_home(tmp_path, ["pw"])
    config = config_for(addresses, write_password_file(home, "pw\n"))
    with pytest.raises(StartupRefused, match="set rpc.node_accounts = true"):
        unlock_configured_accounts(None, config, home)


def test_unlock_without_a_password_file_is_refused(tmp_path: Path) -> None:
    home, keystore, addresses = make_home(tmp_path, ["pw"])
    with pytest.raises(StartupRefused, match="accounts.unlock needs accounts.password_file"):
        unlock_configured_accounts(Unlocker(keystore, FakeClock()), config_for(addresses, ""), home)


def test_a_password_file_open_to_others_is_refused(tmp_path: Path) -> None:
    home, keystore, addresses = make_home(tmp_path, ["pw"])
    config = config_for(addresses, write_password_file(home, "pw\n", mode=0o644))
    with pytest.raises(KeyFileError, match="readable by others .*chmod 600"):
        unlock_configured_accounts(Unlocker(keystore, FakeClock()), config, home)


def test_a_missing_password_file_is_refused_naming_it(tmp_path: Path) -> None:
    home, keystore, addresses = make_home(tmp_path, ["pw"])
    with pytest.raises(StartupRefused, match="accounts.password_file: cannot read .*nowhere.txt"):
        unlock_configured_accounts(
            Unlocker(keystore, FakeClock()), config_for(addresses, "nowhere.txt"), home
        )


def test_config_toml_round_trips_the_accounts_section(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        tomli_w.dumps({"accounts": {"unlock": [A, B], "password_file": "config/password.txt"}})
    )
    assert load_config(path).accounts == AccountsConfig(
        unlock=(A, B), password_file="config/password.txt"
    )


def test_config_refuses_an_unlock_entry_that_is_not_an_address(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps({"accounts": {"unlock": [A, "0x1234"]}}))
    with pytest.raises(ConfigError, match=r"accounts.unlock must be .*\(entry 1\), got '0x1234'"):
        load_config(path)
