"""State dumps: a whole account state as one versioned JSON document.

`anvil_dumpState` answers one, `cybermiles devnet --dump-state FILE` writes one when the devnet
stops, and `anvil_loadState` / `--load-state FILE` read one back:

    {
      "version": 1,
      "chain_id": 1234,
      "evm_profile": "cvm",
      "block": {"number": "0x2a", "hash": "0x…", "timestamp": "0x…", "stateRoot": "0x…"},
      "accounts": {
        "0x…": {"balance": "1000", "nonce": 3, "code": "0x60…",
                "storage": {"0x00…00": "0x00…01"}}
      }
    }

- `version`: 1; a document of another version is refused (nothing is guessed).
- `chain_id`, `evm_profile`: of the chain the state was dumped from (a devnet made with
  `--load-state` takes them).
- `block`: where the state was taken (number, hash, timestamp as 0x quantities, the state root);
  informational, optional when reading.
- `accounts`: EVERY account of the state, system accounts included, in genesis alloc's format
  (genesis/schema.py: balance as a decimal string, nonce a number, code and 32-byte storage
  words as 0x-hex; defaults left out; zero words are dropped when reading, as the trie has no
  such entries). Loading the accounts of a dump into an empty state gives back the dumped state
  root.

Reading is strict like the genesis parser: every problem is a `GenesisError` naming its field
(`accounts.0x….storage.0x1`, `version`), or `<file>` for unreadable or non-JSON input.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import cast

from genesis._codec import parse_uint, type_name
from genesis.errors import GenesisError
from genesis.schema import (
    EVM_PROFILES,
    AllocAccount,
    EvmProfile,
    alloc_to_json,
    loads_genesis_json,
    parse_alloc,
    read_genesis_file,
    write_atomically,
)

STATE_DUMP_VERSION = 1
_ROOT = "<state dump>"
_REQUIRED = ("version", "chain_id", "accounts")
_OPTIONAL = ("evm_profile", "block")
_BLOCK_FIELDS = ("number", "hash", "timestamp", "stateRoot")


@dataclass(frozen=True)
class DumpedAt:
    """The block whose state a dump holds."""

    number: int
    hash: bytes
    timestamp: int
    state_root: bytes


@dataclass(frozen=True)
class StateDump:
    chain_id: int
    evm_profile: EvmProfile
    block: DumpedAt | None
    accounts: tuple[tuple[bytes, AllocAccount], ...]  # sorted by address, unique


def state_dump_to_json(dump: StateDump) -> dict[str, object]:
    out: dict[str, object] = {
        "version": STATE_DUMP_VERSION,
        "chain_id": dump.chain_id,
        "evm_profile": dump.evm_profile,
    }
    if dump.block is not None:
        b = dump.block
        out["block"] = {
            "number": hex(b.number),
            "hash": "0x" + b.hash.hex(),
            "timestamp": hex(b.timestamp),
            "stateRoot": "0x" + b.state_root.hex(),
        }
    out["accounts"] = alloc_to_json(dump.accounts)
    return out


def dumps_state_dump(dump: StateDump) -> str:
    """Canonical text: sorted keys, indent 2, trailing newline."""
    return json.dumps(state_dump_to_json(dump), sort_keys=True, indent=2) + "\n"


def parse_state_dump(obj: object) -> StateDump:
    """Decode a state dump JSON value strictly."""
    if not isinstance(obj, dict):
        raise GenesisError(_ROOT, f"expected a JSON object, got {type_name(obj)}")
    # The version first: a document of another version may have other fields.
    version = obj.get("version")
    if version != STATE_DUMP_VERSION or isinstance(version, bool):
        got = "none" if version is None else repr(version)
        raise GenesisError(
            "version", f"unsupported state dump version {got:.40} (this node reads 1)"
        )
    missing = [key for key in _REQUIRED if key not in obj]
    if missing:
        raise GenesisError(_ROOT, f"missing {', '.join(missing)}")
    unknown = sorted(set(obj) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise GenesisError(unknown[0], "unknown field of a state dump")
    profile = obj.get("evm_profile", "cvm")
    if profile not in EVM_PROFILES:
        raise GenesisError("evm_profile", f'must be "cvm" or "lity", got {profile!r}')
    return StateDump(
        chain_id=parse_uint(obj["chain_id"], "chain_id", maximum=2**64 - 1),
        evm_profile=cast(EvmProfile, profile),
        block=_block(obj["block"]) if "block" in obj else None,
        accounts=parse_alloc(obj["accounts"], "accounts"),
    )


def _block(value: object) -> DumpedAt:
    if not isinstance(value, dict):
        raise GenesisError("block", f"expected an object, got {type_name(value)}")
    missing = [key for key in _BLOCK_FIELDS if key not in value]
    if missing:
        raise GenesisError("block", f"missing {', '.join(missing)}")
    unknown = sorted(set(value) - set(_BLOCK_FIELDS))
    if unknown:
        raise GenesisError(f"block.{unknown[0]}", "unknown field")
    return DumpedAt(
        number=parse_uint(value["number"], "block.number", maximum=2**64 - 1),
        hash=_hash32(value["hash"], "block.hash"),
        timestamp=parse_uint(value["timestamp"], "block.timestamp", maximum=2**64 - 1),
        state_root=_hash32(value["stateRoot"], "block.stateRoot"),
    )


def _hash32(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 66:
        raise GenesisError(where, "expected 0x + 64 hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise GenesisError(where, "expected 0x + 64 hex digits") from None


def loads_state_dump(raw: bytes | str) -> StateDump:
    return parse_state_dump(loads_genesis_json(raw))


def load_state_dump(path: str | os.PathLike[str]) -> StateDump:
    return loads_state_dump(read_genesis_file(path))


def write_state_dump(dump: StateDump, path: str | os.PathLike[str]) -> None:
    """Write the canonical text atomically: a reader sees the old file or the whole new one."""
    write_atomically(path, dumps_state_dump(dump).encode("utf-8"))
