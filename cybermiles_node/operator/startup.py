"""Everything a node checks before it starts: the one place that refuses to start a home.

A home can be unfit to run in several ways: a key file open to other users or malformed, a bad
genesis, a corrupt consensus WAL, a corrupt private-validator state. `open_node_files` reads all
of them before the node binds a port or logs a line, and each refusal is a `StartupRefused` (or
the `CyberMilesError` of the reader, e.g. `KeyFileError`) whose message names the file and says
what to do. The CLI prints it as one `error:` line; only bugs show a traceback.

Once the chain is open (the home's files are fine), `check_program_version` refuses a node whose
declared program version the chain no longer accepts (governance's upgrade_program or
retire_program halted it): the same `ChainHalted` as the halt itself, so the CLI prints the same
line and exits with the same status, still before a port is bound.

Also here, as small functions the trio shell (node.py) calls: how long until genesis time,
raising the open-files limit, and unlocking the accounts of `[accounts] unlock` with the
passphrases of `password_file` (geth's --unlock/--password; `unlock_configured_accounts`): an
account that is not in the keystore, or that its passphrase does not open, is a StartupRefused
naming the account.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from consensus.errors import WalCorrupted
from consensus.privval import FilePrivValidator, PrivValidatorStateError
from consensus.wal import FileWal
from cybermiles_node.accounts.keyfile import KeystoreError, WrongPassphrase
from cybermiles_node.accounts.keystore import UnknownAccount, read_small_file
from cybermiles_node.accounts.unlock import Unlocker
from cybermiles_node.application.app import ChainHalted, program_must_stop
from cybermiles_node.application.chain import Chain
from cybermiles_node.errors import CyberMilesError
from cybermiles_node.governance.versions import program_requirement
from cybermiles_node.operator.config import (
    AccountsConfig,
    HomeLayout,
    NodeConfig,
    password_file_path,
    unlock_allowed,
)
from cybermiles_node.operator.keys import Ed25519Key, check_private, read_key
from genesis import Genesis, GenesisError, load_genesis, parse_address

__all__ = [
    "ConsensusFiles",
    "NodeFiles",
    "OpenFilesLimit",
    "StartupRefused",
    "check_program_version",
    "open_node_files",
    "raise_open_files_limit",
    "seconds_until",
    "unlock_configured_accounts",
    "unlock_passphrases",
]

log = logging.getLogger(__name__)

# When the hard limit is "unlimited", the soft limit cannot be set to that (Linux caps it at
# fs.nr_open, 1,048,576 by default; macOS at OPEN_MAX): ask for this instead.
UNLIMITED_NOFILE_TARGET: Final = 1 << 20


class StartupRefused(CyberMilesError):
    """The home cannot be run as it is; the message names the file and what to do."""


@dataclass(frozen=True)
class ConsensusFiles:
    """What a BFT node keeps open: the WAL, and the signer over its last-signed state."""

    wal: FileWal
    signer: FilePrivValidator


@dataclass(frozen=True)
class NodeFiles:
    """The checked content of a home; `consensus` only for the BFT engine."""

    genesis: Genesis
    node_key: Ed25519Key
    validator_key: Ed25519Key
    consensus: ConsensusFiles | None

    def close(self) -> None:
        if self.consensus is not None:
            self.consensus.wal.close()


def open_node_files(layout: HomeLayout, *, bft: bool) -> NodeFiles:
    """Read and check everything the node needs from its home, or refuse (see module doc)."""
    genesis = _load_genesis(layout)
    node_key = read_key(layout.node_key_file)
    validator_key = read_key(layout.validator_key_file)
    consensus = _open_consensus_files(layout, validator_key) if bft else None
    return NodeFiles(genesis, node_key, validator_key, consensus)


def _load_genesis(layout: HomeLayout) -> Genesis:
    try:
        return load_genesis(layout.genesis_file)
    except GenesisError as exc:
        raise StartupRefused(
            f"{layout.genesis_file}: {exc}; fix it, or copy the network's genesis.json again"
        ) from None


def _open_consensus_files(layout: HomeLayout, validator_key: Ed25519Key) -> ConsensusFiles:
    # The signer first: it holds no file open, so a refusal leaves nothing to close.
    signer = _open_signer(layout, validator_key)
    return ConsensusFiles(_open_wal(layout), signer)


def _open_signer(layout: HomeLayout, key: Ed25519Key) -> FilePrivValidator:
    state = layout.validator_state_file
    try:
        return FilePrivValidator(key, state)
    except PrivValidatorStateError as exc:
        # Never advise deleting it: a fresh state would let this key sign again at a height,
        # round and step it already signed, which is a double sign.
        raise StartupRefused(
            f"{exc}; restore {state} from a backup. Do not delete it: without it this "
            "validator could sign twice at a height it already signed"
        ) from None


def _open_wal(layout: HomeLayout) -> FileWal:
    wal = layout.wal_file
    try:
        return FileWal(wal)
    except WalCorrupted as exc:
        # True because consensus/driver.py treats a refused signature as "do not vote" and
        # consensus/privval.py refuses anything below or conflicting with its last signature:
        # without the WAL the node rejoins the current height from its peers and cannot sign
        # anything conflicting with what it signed before the corruption.
        raise StartupRefused(
            f"{exc}. To recover without double signing: move the WAL aside (`mv {wal} "
            f"{wal}.corrupt`, and {wal}.1 likewise if it is the file named) and restart, "
            f"keeping {layout.validator_state_file} in place: it still refuses any vote that "
            "conflicts with one this validator signed"
        ) from None


def check_program_version(chain: Chain, version: str) -> None:
    """Refuse to continue a chain whose program requirement, in force at the head, `version`
    does not satisfy (raises ChainHalted at the head)."""
    requirement = program_requirement(chain.state_at())
    if requirement is not None and program_must_stop(requirement, chain.head_number, version):
        raise ChainHalted(requirement.message, chain.head_number)


def seconds_until(moment: float, now: float) -> float:
    """How long to wait for `moment` (unix seconds) at `now`; 0 once it has come."""
    return max(0.0, moment - now)


@dataclass(frozen=True)
class OpenFilesLimit:
    before: int
    after: int


def raise_open_files_limit() -> OpenFilesLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit: every peer, RPC client and LevelDB file
    is a descriptor, and distributions' soft default (1,024) is reached by ordinary load."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_NOFILE_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, target, exc)
    return OpenFilesLimit(soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


# ---------------------------------------------------------------------------- [accounts] unlock


def unlock_passphrases(accounts: AccountsConfig, text: str, source: str) -> list[tuple[bytes, str]]:
    """(address, passphrase) for each account of `accounts.unlock`, from the password file's
    `text` (`source` names it) as geth reads --password: line i for account i, the last line
    for any account beyond (so one line serves all); a trailing "\r" is not part of a
    passphrase."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "" and len(lines) > 1:
        lines.pop()  # the file's final newline ends the last line; it does not add one
    if lines == [""]:
        raise StartupRefused(f"{source}: the password file is empty")
    return [
        (parse_address(account, "accounts.unlock"), lines[min(index, len(lines) - 1)])
        for index, account in enumerate(accounts.unlock)
    ]


def unlock_configured_accounts(
    unlocker: Unlocker | None, config: NodeConfig, home: Path
) -> int:
    """Unlock `[accounts] unlock` until the node stops (duration 0); returns how many. Every
    refusal is a StartupRefused in one line naming the account or the file. `unlocker` is None
    when the node serves no accounts (`rpc.node_accounts` off on a node that is no devnet)."""
    accounts = config.accounts
    if not accounts.unlock:
        return 0
    if unlocker is None:
        raise StartupRefused(
            "accounts.unlock: the node's accounts are off; set rpc.node_accounts = true to "
            "serve (and unlock) keystore accounts"
        )
    if not unlock_allowed(config.rpc):
        raise StartupRefused(
            f"accounts.unlock: refusing to unlock accounts while rpc.host is {config.rpc.host} "
            "(not a loopback address): anyone who reaches the RPC could sign with them; set "
            "rpc.allow_insecure_unlock = true if that is intended"
        )
    if not accounts.password_file:
        raise StartupRefused(
            "accounts.unlock needs accounts.password_file (the passphrases, one a line)"
        )
    path = password_file_path(accounts, home)
    check_private(path)
    try:
        text = read_small_file(path).decode()
    except (KeystoreError, UnicodeDecodeError) as exc:
        raise StartupRefused(f"accounts.password_file: {exc}") from None
    plan = unlock_passphrases(accounts, text, str(path))
    for address, passphrase in plan:
        _unlock_one(unlocker, address, passphrase, path)
    return len(plan)


def _unlock_one(unlocker: Unlocker, address: bytes, passphrase: str, password_file: Path) -> None:
    who = f"0x{address.hex()}"
    try:
        unlocker.unlock(address, passphrase, 0)
    except UnknownAccount:
        raise StartupRefused(
            f"accounts.unlock: {who} is not in the node's keystore (HOME/keystore)"
        ) from None
    except WrongPassphrase:
        raise StartupRefused(
            f"accounts.unlock: the passphrase in {password_file} does not open {who}"
        ) from None
    except KeystoreError as exc:
        raise StartupRefused(f"accounts.unlock: cannot unlock {who}: {exc}") from None
