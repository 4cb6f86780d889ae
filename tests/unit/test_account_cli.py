"""`cybermiles account new | list | import | import-key` through click's CliRunner.

Every refusal is one `error:` line, a non-zero exit and an unchanged keystore; passphrases come
from a prompt or --password-file only. Files are written at geth's standard scrypt cost, so each
command that encrypts or decrypts takes ~0.6 s."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner, Result
from eth_account import Account

from cybermiles_node.operator.cli import main
from tests.shared import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "keystore"
TRAVIS_7EFF = FIXTURES / (
    "UTC--2016-10-21T22-30-03.071787745Z--7eff122b94897ea5b0e2a9abf47b86337fafebdc"
)
TRAVIS_CHECKSUM = "0x7eFf122b94897EA5b0E2A9abf47B86337FAfebdC"
KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
KEY_ADDRESS = Account.from_key(KEY).address


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def keystore_of(home: Path) -> dict[str, bytes]:
    directory = home / "keystore"
    if not directory.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def assert_refused(result: Result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], result.stderr
    assert isinstance(result.exception, SystemExit)  # no traceback


def test_import_the_fixture_with_a_password_file_then_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pw = write(tmp_path / "pw", "1234\n")
    result = invoke(
        "account", "import", str(TRAVIS_7EFF), "--home", str(home), "--password-file", str(pw)
    )
    assert result.exit_code == 0, result.output
    assert f"address: {TRAVIS_CHECKSUM}" in result.stdout
    (stored,) = (home / "keystore").iterdir()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "keystore").stat().st_mode) == 0o700
    listed = invoke("account", "list", "--home", str(home))
    assert listed.exit_code == 0
    assert listed.stdout == f"#0  {TRAVIS_CHECKSUM}  {stored}\n"


def test_new_prompts_twice_and_eth_account_reads_the_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = invoke("account", "new", "--home", str(home), input="s3cret-phrase\ns3cret-phrase\n")
    assert result.exit_code == 0, result.output
    assert "s3cret-phrase" not in result.output  # hidden input
    (stored,) = (home / "keystore").iterdir()
    key = Account.decrypt(json.loads(stored.read_text()), "s3cret-phrase")
    assert f"address: {Account.from_key(key).address}" in result.stdout


def test_new_with_confirmation_mismatch_writes_nothing(tmp_path: Path) -> None:
    result = invoke("account", "new", "--home", str(tmp_path), input="one\ntwo\n")
    assert result.exit_code != 0
    assert keystore_of(tmp_path) == {}


def test_empty_passphrase_for_a_new_key_is_refused(tmp_path: Path) -> None:
    pw = write(tmp_path / "pw", "\n")
    result = invoke("account", "new", "--home", str(tmp_path), "--password-file", str(pw))
    assert_refused(result, "empty passphrase")
    assert keystore_of(tmp_path) == {}


def test_import_key_from_files_and_from_prompts(tmp_path: Path) -> None:
    key_file = write(tmp_path / "key", "0x" + KEY + "\n")
    pw = write(tmp_path / "pw", "first line\nsecond line ignored\n")
    home_a = tmp_path / "a"
    result = invoke(
        "account", "import-key", "--home", str(home_a), "--key-file", str(key_file),
        "--password-file", str(pw),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (stored,) = (home_a / "keystore").iterdir()
    assert Account.decrypt(json.loads(stored.read_text()), "first line").hex() == KEY
    home_b = tmp_path / "b"
    result = invoke("account", "import-key", "--home", str(home_b), input=f"{KEY}\npw\npw\n")
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    assert f"address: {KEY_ADDRESS}" in result.stdout


def test_wrong_passphrase_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    result = invoke("account", "import", str(TRAVIS_7EFF), "--home", str(tmp_path), input="4321\n")
    assert_refused(result, "wrong passphrase")
    assert keystore_of(tmp_path) == {}


def test_a_key_already_present_is_refused(tmp_path: Path) -> None:
    key_file = write(tmp_path / "key", KEY)
    pw = write(tmp_path / "pw", "pw")
    args = ("account", "import-key", "--home", str(tmp_path), "--key-file", str(key_file))
    assert invoke(*args, "--password-file", str(pw)).exit_code == 0
    before = keystore_of(tmp_path)
    assert_refused(invoke(*args, "--password-file", str(pw)), "already in the keystore")
    assert keystore_of(tmp_path) == before


def test_malformed_keyfile_and_bad_private_key_are_one_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.json", '{"version": 3, "crypto": {}}')
    pw = write(tmp_path / "pw", "pw")
    result = invoke(
        "account", "import", str(bad), "--home", str(tmp_path), "--password-file", str(pw)
    )
    assert_refused(result, f"{bad}: not a geth v3 key file")
    key_file = write(tmp_path / "key", "not hex")
    result = invoke(
        "account", "import-key", "--home", str(tmp_path), "--key-file", str(key_file),
        "--password-file", str(pw),
    )  # fmt: skip
    assert_refused(result, "64 hex digits")
    assert keystore_of(tmp_path) == {}


def test_unreadable_password_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file"
    result = invoke("account", "new", "--home", str(tmp_path), "--password-file", str(missing))
    assert_refused(result, f"cannot read {missing}")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    result = invoke("account", "new", "--home", str(tmp_path), "--password-file", str(binary))
    assert_refused(result, "not UTF-8")
    assert keystore_of(tmp_path) == {}


def test_list_reports_broken_files_on_stderr(tmp_path: Path) -> None:
    directory = tmp_path / "keystore"
    directory.mkdir()
    write(directory / "UTC--broken", "{}")
    result = invoke("account", "list", "--home", str(tmp_path))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.startswith(f"warning: not listed: {directory / 'UTC--broken'}: ")


def test_no_passphrase_option_on_the_command_line(tmp_path: Path) -> None:
    result = invoke("account", "new", "--home", str(tmp_path), "--password", "x")
    assert result.exit_code == 2  # click: no such option
    assert keystore_of(tmp_path) == {}


def test_bad_keyfile_and_present_key_are_refused_before_any_prompt(tmp_path: Path) -> None:
    # No input: a prompt would end in click's "Aborted!" instead of these lines.
    bad = write(tmp_path / "bad.json", "[]")
    assert_refused(invoke("account", "import", str(bad), "--home", str(tmp_path)), str(bad))
    missing = tmp_path / "missing.json"
    result = invoke("account", "import", str(missing), "--home", str(tmp_path))
    assert_refused(result, f"cannot read {missing}")
    key_file = write(tmp_path / "key", KEY)
    args = ("account", "import-key", "--home", str(tmp_path), "--key-file", str(key_file))
    assert invoke(*args, input="pw\npw\n").exit_code == 0
    assert_refused(invoke(*args), "already in the keystore")
