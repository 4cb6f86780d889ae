"""`cybermiles init` warns when the genesis it writes funds the public test mnemonic."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cybermiles_node.operator.cli import main, public_mnemonic_accounts
from genesis import dev_accounts, devnet_genesis, load_genesis
from genesis.presets import DEV_MNEMONIC, TRAVIS_DEV_ADDRESSES


def test_a_devnet_genesis_funds_the_public_mnemonic() -> None:
    genesis = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=0, accounts=3)
    assert public_mnemonic_accounts(genesis) == sorted(a.address for a in dev_accounts(3))


def test_init_without_a_genesis_warns_on_stderr(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", "--home", str(tmp_path / "n")])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("WARNING: ")
    assert f'"{DEV_MNEMONIC}"' in result.stderr
    assert "anyone can spend those accounts" in result.stderr
    assert "for local testing only" in result.stderr
    assert "WARNING" not in result.stdout


def without_public_accounts(genesis_file: Path, out: Path) -> Path:
    """The same genesis with the mnemonic accounts removed (a Travis account owns the validator)."""
    body = json.loads(genesis_file.read_text())
    public = {"0x" + a.address.hex() for a in dev_accounts(10)}
    body["alloc"] = {k: v for k, v in body["alloc"].items() if k not in public}
    body["validators"][0]["owner"] = "0x" + TRAVIS_DEV_ADDRESSES[0].hex()
    out.write_text(json.dumps(body))
    return out


def test_init_with_a_genesis_that_funds_no_public_key_says_nothing(tmp_path: Path) -> None:
    CliRunner().invoke(main, ["init", "--home", str(tmp_path / "a")])
    genesis = without_public_accounts(
        tmp_path / "a" / "config" / "genesis.json", tmp_path / "network.json"
    )
    assert public_mnemonic_accounts(load_genesis(genesis)) == []
    result = CliRunner().invoke(
        main, ["init", "--home", str(tmp_path / "b"), "--genesis", str(genesis)]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
