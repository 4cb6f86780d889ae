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

Also here, as small functions the trio shell (node.py) calls: how long until genesis time, and
raising the open-files limit.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass
from typing import Final

from consensus.errors import WalCorrupted
from consensus.privval import FilePrivValidator, PrivValidatorStateError
from consensus.wal import FileWal
from cybermiles_node.application.app import ChainHalted, program_must_stop
from cybermiles_node.application.chain import Chain
from cybermiles_node.errors import CyberMilesError
from cybermiles_node.governance.versions import program_requirement
from cybermiles_node.operator.config import HomeLayout
from cybermiles_node.operator.keys import Ed25519Key, read_key
from genesis import Genesis, GenesisError, load_genesis

__all__ = [
    "ConsensusFiles",
    "NodeFiles",
    "OpenFilesLimit",
    "StartupRefused",
    "check_program_version",
    "open_node_files",
    "raise_open_files_limit",
    "seconds_until",
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
