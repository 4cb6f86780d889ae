"""The Travis-compatibility devnet preset: `cybermiles devnet --preset travis` (issue #11).

Existing CyberMiles tools (web3-cmt.js DApps, Travis's test suites) expect a Travis devnet:
chain id 1234, Lity bytecode rules, Travis's parameters, a block every block time whether or not
transactions wait, and a node keystore whose accounts are unlocked with `1234` in a known
order. The preset is a multi-validator BFT devnet (cybermiles_node.operator.devnet, default 4
validators; `--validators 1` for laptops) with:

- genesis (`preset_genesis`): chain id 1234, profile `lity`, our SPEC §3 defaults (Travis's;
  docs/DECISIONS.md "Travis-compatibility preset" lists where Travis's last code differs),
  `timeouts.commit_ms` = the block time (Tendermint's timeout_commit: the BFT pace; an idle
  chain makes an empty block every commit_ms), validator #k owned by keystore account [k]
  (#1 by 0x7eff…, the foundation), the mnemonic accounts and Travis dev accounts funded as on
  every devnet.
- every node home's keystore (`write_preset_keystore`), in `eth_accounts` order (key files are
  listed by name, geth names sort by time, so file k is stamped genesis time + k seconds):

  | index | account | role | balance |
  |---|---|---|---|
  | [0] | 0x7eff…ebdc (the fixture key file) | foundation, owner of validator #1 | 1e16 CMT |
  | [1] | preset account 0 | plain user (Travis suites' second user) | 1e6 CMT |
  | [2]..[max(4, N)] | preset accounts 1.. | owner of validator #k (plain when k > N) | 1e6 CMT |
  | next 4 | preset accounts | plain | 1e6 CMT |

  "preset account i" is m/44'/60'/1'/0/i of the devnet mnemonic (`genesis.preset_accounts`):
  public test keys, so the addresses are the same on every machine (README lists them). All
  files open with `1234`; generated ones use geth's light scrypt cost (n = 4096) so that
  unlocking at start stays fast; the foundation's is the Travis fixture as it is (n = 2^18).
  Validator owners self-stake 10,000 CMT of their balance.
- every node's config (`accounts_config`): `[accounts] unlock` = all of them, `password_file` =
  HOME/nodeI/config/password.txt (`1234`), so any node's RPC signs for them from the start.

The mnemonic accounts of the devnet (`--accounts`, funded, never candidates) still follow the
keystore accounts in `eth_accounts` (NodeAccounts lists keystore first): the last account is
then a mnemonic one, funded and owning no candidate, and so is the last keystore account.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cybermiles_node.accounts.keyfile import LIGHT_SCRYPT_N
from cybermiles_node.accounts.keystore import Keystore, keystore_dir, write_private_file
from cybermiles_node.errors import DevnetError
from cybermiles_node.operator.config import AccountsConfig
from genesis import (
    CMT,
    ConsensusTimeouts,
    EvmProfile,
    Genesis,
    ParamValue,
    devnet_genesis,
)
from genesis.presets import DEVNET_BALANCE, preset_accounts
from genesis.schema import MAX_TIMEOUT_MS

TRAVIS: Final = "travis"
CHAIN_ID: Final = 1234
EVM_PROFILE: Final[EvmProfile] = "lity"
PASSPHRASE: Final = "1234"
DEFAULT_VALIDATORS: Final = 4
DEFAULT_BLOCK_TIME_S: Final = 1.0  # our BFT devnet's pace; Travis's networks ran 10 s
OWNER_SLOTS: Final = 4  # accounts [1 + 1 .. 4] exist as "owners of validators 2-4" for any N
PLAIN_TAIL: Final = 4  # funded plain accounts after the owners
PASSWORD_FILE: Final = "config/password.txt"  # relative to the node home
FOUNDATION: Final = bytes.fromhex("7eff122b94897ea5b0e2a9abf47b86337fafebdc")
FOUNDATION_BALANCE: Final = 10**16 * CMT
# The Travis fixture key file of FOUNDATION (../shared/fixtures/keystore, passphrase 1234),
# public test data; kept here so that an installed node needs no fixtures directory.
FOUNDATION_KEYFILE_NAME: Final = (
    "UTC--2016-10-21T22-30-03.071787745Z--7eff122b94897ea5b0e2a9abf47b86337fafebdc"
)
FOUNDATION_KEYFILE: Final = (
    '{"address":"7eff122b94897ea5b0e2a9abf47b86337fafebdc","id":"f86a62b4-0621-4616-99af-'
    'c4b7f38fcc48","version":3,"crypto":{"cipher":"aes-128-ctr","ciphertext":"19de8a919e2f4c'
    'bdde2b7352ebd0be8ead2c87db35fc8e4c9acaf74aaaa57dad","cipherparams":{"iv":"ba2bd370d6c9d5'
    '845e92fbc6f951c792"},"kdf":"scrypt","kdfparams":{"dklen":32,"n":262144,"p":1,"r":8,"salt'
    '":"c7cc2380a96adc9eb31d20bd8d8a7827199e8b16889582c0b9089da6a9f58e84"},"mac":"ff2c0caf051c'
    'a15d8c43b6f321ec10bd99bd654ddcf12dd1a28f730cc3c13730"}}'
)


@dataclass(frozen=True)
class PresetAccount:
    """One keystore account of the preset, in `eth_accounts` order."""

    address: bytes
    role: str  # for banners and docs
    balance: int  # wei in genesis (validator owners stake part of it)
    validator: int | None = None  # the 1-based genesis validator it owns
    private_key: bytes | None = None  # None: the fixture key file (FOUNDATION)

    def __repr__(self) -> str:  # keep keys out of logs, as DevAccount
        return f"PresetAccount(0x{self.address.hex()}, {self.role!r})"


def account_plan(validators: int) -> tuple[PresetAccount, ...]:
    """The keystore accounts of a preset devnet of `validators` validators, in order."""
    if validators < 1:
        raise DevnetError(f"--validators must be at least 1, got {validators}")
    owners = max(OWNER_SLOTS, validators)  # validator #1's owner is the foundation
    keys = preset_accounts(1 + (owners - 1) + PLAIN_TAIL)
    plan = [
        PresetAccount(
            FOUNDATION, "foundation, owner of validator #1", FOUNDATION_BALANCE, validator=1
        ),
        PresetAccount(keys[0].address, "user", DEVNET_BALANCE, private_key=keys[0].private_key),
    ]
    for number in range(2, owners + 1):
        key = keys[number - 1]
        owns = number <= validators
        role = f"owner of validator #{number}" + ("" if owns else f" (with --validators {number})")
        plan.append(
            PresetAccount(
                key.address,
                role,
                DEVNET_BALANCE,
                validator=number if owns else None,
                private_key=key.private_key,
            )
        )
    for key in keys[owners:]:
        plan.append(PresetAccount(key.address, "user", DEVNET_BALANCE, private_key=key.private_key))
    return tuple(plan)


def commit_ms(block_time_s: float) -> int:
    """The genesis `timeouts.commit_ms` of a block time in seconds (DevnetError if out of range)."""
    ms = round(block_time_s * 1000)
    if not 1 <= ms <= MAX_TIMEOUT_MS:
        raise DevnetError(
            f"--block-time must be between 0.001 and {MAX_TIMEOUT_MS // 1000} s with --preset "
            f"{TRAVIS}, got {block_time_s:g}"
        )
    return ms


def preset_genesis(
    *,
    validator_pub_keys: Sequence[bytes],
    genesis_time: int,
    mnemonic_accounts: int,
    block_time_s: float,
    params: dict[str, ParamValue],
) -> Genesis:
    """The genesis of a new preset devnet (module docstring)."""
    plan = account_plan(len(validator_pub_keys))
    owners = sorted((a.validator, a.address) for a in plan if a.validator is not None)
    return devnet_genesis(
        validator_pub_keys=validator_pub_keys,
        genesis_time=genesis_time,
        chain_id=CHAIN_ID,
        accounts=mnemonic_accounts,
        evm_profile=EVM_PROFILE,
        params=params,
        owners=[address for _, address in owners],
        extra_alloc={account.address: account.balance for account in plan},
        timeouts=ConsensusTimeouts(commit_ms=commit_ms(block_time_s)),
    )


def is_preset_genesis(genesis: Genesis) -> bool:
    """Was `genesis` made by the preset? (Its validator #1 is the foundation's; a plain devnet's
    is mnemonic account 0's.)"""
    return bool(genesis.validators) and genesis.validators[0].owner == FOUNDATION


def accounts_config(validators: int) -> AccountsConfig:
    """`[accounts]` of every node home: unlock the whole keystore with PASSWORD_FILE."""
    return AccountsConfig(
        unlock=tuple(f"0x{account.address.hex()}" for account in account_plan(validators)),
        password_file=PASSWORD_FILE,
    )


def write_preset_keystore(home: Path, validators: int, created: datetime) -> None:
    """Write the preset's keystore and password file into the node home `home`; file k is
    stamped `created` + k seconds, so every home gets the same names, in plan order."""
    stamps = (created.astimezone(UTC) + timedelta(seconds=k) for k in itertools.count())
    keystore = Keystore(keystore_dir(home), scrypt_n=LIGHT_SCRYPT_N, clock=lambda: next(stamps))
    for account in account_plan(validators):
        if account.private_key is None:
            # Checked for form only: the fixture opens with 1234 (a unit test proves it), and
            # a node unlocks it at start anyway.
            keystore.import_keyfile_text(
                FOUNDATION_KEYFILE.encode(), FOUNDATION_KEYFILE_NAME, passphrase=None
            )
        else:
            keystore.import_key(account.private_key, PASSPHRASE)
    password_file = home / PASSWORD_FILE
    password_file.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(password_file, f"{PASSPHRASE}\n".encode())


def genesis_datetime(genesis: Genesis) -> datetime:
    return datetime.fromtimestamp(genesis.genesis_time, UTC)


def banner_lines(validators: int) -> list[str]:
    """The accounts part of the devnet banner."""
    lines = [
        f"Keystore accounts (eth_accounts order; all unlocked, passphrase '{PASSPHRASE}'):",
    ]
    for index, account in enumerate(account_plan(validators)):
        cmt = account.balance // CMT
        lines.append(f"  [{index}] 0x{account.address.hex()}  {account.role}, {cmt:,} CMT")
    lines.append("  then the mnemonic accounts below")
    return lines
