"""The Travis-compatibility devnet preset's pure parts and homes (operator/travis_preset.py):
the account plan and its order, the genesis, the keystore every node home gets (readable by
eth_account with `1234`, file names in plan order), `[accounts]` in every config, the checks on
an existing devnet, and the CLI refusing flags that contradict the preset. Nothing here starts
a node (tests/e2e/test_travis_preset.py does)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account

from cybermiles_node.accounts.keyfile import LIGHT_SCRYPT_N, parse_keyfile
from cybermiles_node.accounts.keystore import Keystore, keystore_dir
from cybermiles_node.operator import travis_preset
from cybermiles_node.operator.cli import main
from cybermiles_node.operator.config import load_config, password_file_path
from cybermiles_node.operator.devnet import DevnetError, DevnetOptions, Ports, prepare_devnet
from cybermiles_node.operator.devnet_home import claim_devnet_home, reset_devnet_home
from cybermiles_node.operator.travis_preset import (
    FOUNDATION,
    FOUNDATION_BALANCE,
    account_plan,
    commit_ms,
    preset_genesis,
    write_preset_keystore,
)
from genesis import CMT, dev_accounts, load_genesis
from genesis.params import Params
from genesis.presets import DEVNET_BALANCE, DEVNET_VALIDATOR_SHARES, preset_accounts
from tests.shared import FIXTURES as SHARED_FIXTURES

FIXTURE = SHARED_FIXTURES / "keystore"
PORTS = Ports(rpc=9300, p2p=31000, status=31001, metrics=31002)
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def preset_options(validators: int = 4, **kwargs: Any) -> DevnetOptions:
    return DevnetOptions(
        validators=validators,
        ports=PORTS,
        chain_id=1234,
        evm_profile="lity",
        preset="travis",
        **kwargs,
    )


# ------------------------------------------------------------------------ the account plan


def test_the_plan_has_travis_order_and_roles() -> None:
    plan = account_plan(4)
    assert len(plan) == 9  # 0x7eff, a user, owners of #2-#4, four more users
    assert plan[0].address == FOUNDATION and plan[0].validator == 1
    assert plan[0].balance == FOUNDATION_BALANCE == 10**16 * CMT
    assert plan[0].private_key is None  # the fixture key file
    assert plan[1].validator is None and plan[1].role == "user"
    assert [account.validator for account in plan[2:5]] == [2, 3, 4]
    assert all(account.validator is None for account in plan[5:])
    assert all(account.balance == DEVNET_BALANCE for account in plan[1:])
    generated = preset_accounts(8)
    assert [account.address for account in plan[1:]] == [a.address for a in generated]
    assert len({account.address for account in plan}) == len(plan)


def test_preset_keys_are_not_the_devnet_mnemonic_accounts() -> None:
    # With --accounts up to 1,000 the mnemonic accounts still never collide with the keystore.
    assert not {a.address for a in preset_accounts(30)} & {a.address for a in dev_accounts(100)}


def test_fewer_validators_keep_the_same_accounts_in_the_same_order() -> None:
    four, one = account_plan(4), account_plan(1)
    assert [a.address for a in one] == [a.address for a in four]
    assert [a.validator for a in one] == [1] + [None] * 8
    assert one[3].role == "owner of validator #3 (with --validators 3)"


def test_more_validators_put_their_owners_after_the_fourth() -> None:
    plan = account_plan(6)
    assert [a.validator for a in plan] == [1, None, 2, 3, 4, 5, 6, None, None, None, None]
    assert plan[-1].validator is None and plan[-1].balance > 0


def test_commit_ms_is_the_block_time() -> None:
    assert commit_ms(1) == 1000 and commit_ms(0.25) == 250 and commit_ms(10) == 10_000
    for bad in (0, 0.0001, 3601):
        with pytest.raises(DevnetError, match="--block-time must be between"):
            commit_ms(bad)


# ------------------------------------------------------------------------ the genesis


def test_the_genesis_is_travis_shaped() -> None:
    keys = [bytes([i]) * 32 for i in range(1, 5)]
    genesis = preset_genesis(
        validator_pub_keys=keys,
        genesis_time=1_700_000_000,
        mnemonic_accounts=10,
        block_time_s=2.5,
        params={"unstake_waiting_period": 5},
    )
    plan = account_plan(4)
    assert genesis.chain_id == 1234 and genesis.evm_profile == "lity"
    assert genesis.timeouts.commit_ms == 2500
    assert [v.owner for v in genesis.validators] == [a.address for a in plan[:1] + plan[2:5]]
    assert all(v.shares == DEVNET_VALIDATOR_SHARES for v in genesis.validators)
    balances = dict(genesis.alloc)
    for account in plan:
        assert balances[account.address].balance == account.balance
    for mnemonic in dev_accounts(10):  # the mnemonic accounts are funded as on every devnet
        assert balances[mnemonic.address].balance == DEVNET_BALANCE
    # SPEC §3 defaults (DECISIONS "Travis-compatibility preset") with --param on top.
    expected = Params(unstake_waiting_period=5)
    assert genesis.params == expected
    assert genesis.params.foundation_address == FOUNDATION
    assert travis_preset.is_preset_genesis(genesis)


# ------------------------------------------------------------------------ the keystore


def test_the_embedded_fixture_is_the_shared_one_and_opens_with_1234() -> None:
    shared = (FIXTURE / travis_preset.FOUNDATION_KEYFILE_NAME).read_text()
    assert json.loads(travis_preset.FOUNDATION_KEYFILE) == json.loads(shared)
    key = Account.decrypt(travis_preset.FOUNDATION_KEYFILE, "1234")
    assert Account.from_key(key).address.lower() == "0x" + FOUNDATION.hex()


def test_the_keystore_lists_the_plan_in_order_and_eth_account_opens_every_file(
    tmp_path: Path,
) -> None:
    write_preset_keystore(tmp_path, 1, CREATED)
    plan = account_plan(1)
    entries = Keystore(keystore_dir(tmp_path)).scan().entries
    assert [entry.address for entry in entries] == [account.address for account in plan]
    assert entries[0].path.name.startswith("UTC--2026-01-02T03-04-05.000000000Z--7eff")
    for entry, account in zip(entries[1:], plan[1:], strict=True):
        body = entry.path.read_text()
        keyfile = parse_keyfile(body, "x")
        assert getattr(keyfile.kdf, "n", None) == LIGHT_SCRYPT_N  # cheap to unlock at start
        assert Account.decrypt(body, "1234") == account.private_key
        assert stat.S_IMODE(entry.path.stat().st_mode) == 0o600
    password = tmp_path / travis_preset.PASSWORD_FILE
    assert password.read_text() == "1234\n"
    assert stat.S_IMODE(password.stat().st_mode) == 0o600


def test_every_node_home_gets_the_same_keystore(tmp_path: Path) -> None:
    nodes = prepare_devnet(tmp_path, preset_options(2))
    names = [sorted(p.name for p in keystore_dir(node.layout.home).iterdir()) for node in nodes]
    assert names[0] == names[1] and len(names[0]) == 9
    genesis_time = load_genesis(nodes[0].layout.genesis_file).genesis_time
    assert names[0][0].startswith(
        "UTC--" + datetime.fromtimestamp(genesis_time, UTC).strftime("%Y-%m-%dT%H-%M-%S")
    )


# ------------------------------------------------------------------------ homes and configs


def test_every_config_unlocks_the_keystore_with_the_password_file(tmp_path: Path) -> None:
    nodes = prepare_devnet(tmp_path, preset_options(2))
    plan = account_plan(2)
    for node in nodes:
        config = load_config(node.layout.config_file)
        assert config.accounts.unlock == tuple(f"0x{a.address.hex()}" for a in plan)
        path = password_file_path(config.accounts, node.layout.home)
        assert path.read_text() == "1234\n"
        assert config.consensus.engine == "bft" and config.devnet.enabled
        assert config.devnet.accounts == 10  # the mnemonic accounts, never validator owners
        assert config.rpc.pending_nonce_compat  # SPEC §8: on in the Travis preset
    plain = prepare_devnet(tmp_path / "plain", DevnetOptions(validators=1, ports=PORTS))
    assert not load_config(plain[0].layout.config_file).rpc.pending_nonce_compat
    genesis = load_genesis(nodes[0].layout.genesis_file)
    assert genesis.timeouts.commit_ms == 1000  # the preset's default block time


def test_a_rerun_keeps_the_devnet_and_rewrites_the_configs(tmp_path: Path) -> None:
    first = prepare_devnet(tmp_path, preset_options(1))
    before = sorted(keystore_dir(first[0].layout.home).iterdir())
    again = prepare_devnet(tmp_path, preset_options(1, block_time=1.0))
    assert sorted(keystore_dir(again[0].layout.home).iterdir()) == before
    assert load_config(again[0].layout.config_file).accounts.unlock


@pytest.mark.parametrize(
    "made, rerun, message",
    [
        (preset_options(1), DevnetOptions(validators=1, ports=PORTS), "add --preset travis"),
        (DevnetOptions(validators=1, ports=PORTS), preset_options(1), "made without --preset"),
        (preset_options(1), preset_options(1, block_time=3), "block time of 1 s"),
    ],
)
def test_an_existing_devnet_stays_what_it_was_made_as(
    tmp_path: Path, made: DevnetOptions, rerun: DevnetOptions, message: str
) -> None:
    prepare_devnet(tmp_path, made)
    with pytest.raises(DevnetError, match=message):
        prepare_devnet(tmp_path, rerun)


def test_reset_deletes_the_keystores_the_preset_wrote(tmp_path: Path) -> None:
    home = tmp_path / "devnet"
    claim_devnet_home(home)
    nodes = prepare_devnet(home, preset_options(1))
    assert keystore_dir(nodes[0].layout.home).is_dir()
    reset_devnet_home(home)
    assert not (home / "node0").exists()
    prepare_devnet(home, preset_options(1))  # and the same accounts can be written again


# ------------------------------------------------------------------------ the command line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--chain-id", "5"], "error: --preset travis runs chain id 1234; drop --chain-id 5\n"),
        (
            ["--evm-profile", "cvm"],
            "error: --preset travis runs the lity profile; drop --evm-profile cvm\n",
        ),
        (
            ["--block-time", "0"],
            "error: --preset travis makes blocks continuously: --block-time must be > 0 "
            "(default 1 s)\n",
        ),
        (
            ["--block-time", "7200"],
            "error: --block-time must be between 0.001 and 3600 s with --preset travis, got 7200\n",
        ),
    ],
)
def test_flags_that_contradict_the_preset_are_refused_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    home = tmp_path / "devnet"
    result = CliRunner().invoke(main, ["devnet", "--preset", "travis", "--home", str(home), *args])
    assert result.exit_code == 1
    assert result.output == message
    assert not home.exists()  # refused before anything is written


def test_flags_that_agree_with_the_preset_pass_the_checks(tmp_path: Path) -> None:
    # --chain-id 1234 and --evm-profile lity say what the preset says; the home check is the
    # first thing after the flag checks, so a file as HOME shows they were passed.
    home = tmp_path / "file"
    home.write_text("")
    result = CliRunner().invoke(
        main,
        ["devnet", "--preset", "travis", "--chain-id", "1234", "--evm-profile", "lity",
         "--block-time", "2", "--home", str(home)],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {home} is not a directory")
