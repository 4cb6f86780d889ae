"""The genesis file: typed model, strict JSON parsing, cross-field validation, canonical output.

A genesis file (SPEC §10) fixes everything a chain starts from:

    {
      "chain_id": 1234,                      EIP-155 id (presets: mainnet 18, testnet 19, ...)
      "network": "devnet",                   a name; selects the parameter defaults
      "genesis_time": "2026-11-21T00:00:00Z",RFC 3339, whole seconds
      "evm_profile": "cvm",                  "cvm" (default) or "lity"
      "gas_limit": 30000000,                 block gas limit
      "timeouts": {"propose_ms": 3000, ...}, consensus timeouts (all optional)
      "params": {"max_vals": 4, ...},        SPEC §3 parameters (missing ones take defaults)
      "alloc": {"0x…": {"balance": "1000000000000000000", "nonce": 0, "code": "0x…",
                        "storage": {"0x0": "0x1"}}},
      "validators": [{"pub_key": "<base64 ed25519>", "owner": "0x…", "shares": 10000,
                      "max_amount": 100000, "comp_rate": "1/2", "name": "", "website": "",
                      "location": "", "email": "", "profile": ""}]
    }

Three layers:
1. `parse_genesis(obj)` / `load_genesis(path)` decode untrusted JSON strictly: unknown keys,
   duplicate keys, wrong JSON types, floats for amounts, malformed addresses or keys are all
   `GenesisError`s whose `field` is the dotted path of the culprit.
2. `Genesis.__post_init__` runs `validate_genesis`, the semantic and cross-field rules (ranges,
   sorted unique alloc, unique validator keys and owners, owners able to fund their self-stake).
   So every `Genesis` that exists, however it was built, is one a node can start from.
3. `genesis_to_json` / `dumps_genesis` / `dump_genesis` write the canonical form (sorted keys,
   indent 2, decimal-string balances, lowercase addresses, "a/b" rationals); parsing it gives back
   an equal `Genesis`, and dumping that gives the same bytes.

A genesis made from a state dump (`"from_state_dump": true`, written by `cybermiles devnet
--load-state`, genesis/state_dump.py) is different: its alloc is the COMPLETE genesis state,
system accounts (Hold, staking, parameters, precompile stubs) included, exactly as dumped; the
chain adds nothing to it (no stubs, no parameters, no staking records), so its state root is a
function of the alloc alone. Its validators still say who produces blocks, but their stakes are
already in the dumped state: owners need no alloc balance for them, and Hold may be listed.

Genesis validators start as "Validator"s self-delegated (source "cube") by their owner: the stake
`shares` CMT is taken from the owner's alloc balance when the genesis state is built (by the chain
application, not here). Dev-only settings (automine, unlocked accounts) never live in genesis.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Literal, cast

from genesis._codec import (
    UINT256_MAX,
    format_address,
    format_rational,
    parse_address,
    parse_address_text,
    parse_hex_bytes,
    parse_rational,
    parse_uint,
    type_name,
)
from genesis.errors import GenesisError
from genesis.params import Params, params_from_json, params_to_json

EvmProfile = Literal["cvm", "lity"]
EVM_PROFILES: tuple[EvmProfile, ...] = ("cvm", "lity")

CMT = 10**18  # wei per CMT
MINT_ADDRESS = bytes(20)  # source of minted CMT (SPEC §2)
HOLD_ADDRESS = b"\xff" * 20  # holds all staked CMT and governance escrow (SPEC §2)

# The public networks' chain ids are reserved for them, in both directions: a devnet signing with
# chain id 18 would produce transactions replayable on mainnet.
PUBLIC_CHAIN_IDS: Mapping[str, int] = {"mainnet": 18, "testnet": 19, "staging": 20}

MAX_CHAIN_ID = 2**63 - 1  # chain_id < 2**63 (fits every client's int64)
MIN_GAS_LIMIT = 21000  # one plain transfer must fit in a block
MAX_GAS_LIMIT = 2**63 - 1
MAX_NONCE = 2**64 - 2  # EIP-2681: nonces are below 2**64 - 1
MAX_TIMEOUT_MS = 3_600_000  # an hour: anything longer is a unit mistake (seconds vs ms)
MAX_GENESIS_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last RFC 3339 second
_NETWORK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RFC3339_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)
_QUANTITY_RE = re.compile(r"0x[0-9a-fA-F]{1,64}")
_ROOT = "<genesis>"
_FILE = "<file>"


@dataclass(frozen=True)
class AllocAccount:
    """A prefunded account. `storage` is (slot, value) pairs sorted by slot, values non-zero."""

    balance: int  # wei
    nonce: int = 0
    code: bytes = b""
    storage: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class GenesisValidator:
    """A validator present from block 1, self-delegating `shares` CMT from its owner's alloc."""

    pub_key: bytes  # 32-byte ed25519 consensus key
    owner: bytes  # 20-byte account address
    shares: int  # whole CMT
    max_amount: int  # whole CMT (the candidate's max_shares)
    comp_rate: Fraction  # the owner's cut of its delegators' awards, 0 < comp_rate < 1
    name: str = ""
    website: str = ""
    location: str = ""
    email: str = ""
    profile: str = ""


@dataclass(frozen=True)
class ConsensusTimeouts:
    """Tendermint round timeouts in milliseconds (each step's timeout grows by its delta per
    round)."""

    propose_ms: int = 3000
    propose_delta_ms: int = 500
    prevote_ms: int = 1000
    prevote_delta_ms: int = 500
    precommit_ms: int = 1000
    precommit_delta_ms: int = 500
    commit_ms: int = 1000


@dataclass(frozen=True)
class Genesis:
    """A validated genesis document (construction raises GenesisError if it is not valid)."""

    chain_id: int
    network: str
    genesis_time: int  # unix seconds, UTC
    alloc: tuple[tuple[bytes, AllocAccount], ...]  # sorted by address, unique
    validators: tuple[GenesisValidator, ...]  # file order
    evm_profile: EvmProfile = "cvm"
    gas_limit: int = 30_000_000
    timeouts: ConsensusTimeouts = field(default_factory=ConsensusTimeouts)
    params: Params = field(default_factory=Params)
    from_state_dump: bool = False  # alloc is the whole genesis state (module docstring)

    def __post_init__(self) -> None:
        validate_genesis(self)

    def account(self, address: bytes) -> AllocAccount | None:
        """The alloc entry of `address`, if any."""
        for candidate, account in self.alloc:
            if candidate == address:
                return account
        return None

    @property
    def total_supply(self) -> int:
        """Σ alloc balances in wei: the supply before any minting (stakes move into Hold)."""
        return sum(account.balance for _, account in self.alloc)


# --------------------------------------------------------------------------------------------
# Semantic validation of typed values


def validate_genesis(genesis: Genesis) -> None:
    """Check every rule a genesis must satisfy; raise GenesisError naming the first violation.

    Called by `Genesis.__post_init__`; also checks the Python types, because a `Genesis` may be
    built in code (presets, tests) without going through the JSON parser.
    """
    g = genesis
    _need_int(g.chain_id, "chain_id", 1, MAX_CHAIN_ID)
    if not isinstance(g.network, str) or not _NETWORK_RE.fullmatch(g.network):
        raise GenesisError(
            "network",
            "must be a name of 1-64 letters, digits, '.', '_' or '-' "
            f"starting with a letter or digit, got {g.network!r}",
        )
    public_id = PUBLIC_CHAIN_IDS.get(g.network)
    if public_id is not None and g.chain_id != public_id:
        raise GenesisError(
            "chain_id", f"network {g.network} uses chain id {public_id}, got {g.chain_id}"
        )
    for name, reserved in PUBLIC_CHAIN_IDS.items():
        if g.chain_id == reserved and g.network != name:
            raise GenesisError(
                "chain_id",
                f"chain id {reserved} is reserved for {name} "
                "(transactions would be replayable there)",
            )
    _need_int(g.genesis_time, "genesis_time", 0, MAX_GENESIS_TIME)
    if g.evm_profile not in EVM_PROFILES:
        raise GenesisError("evm_profile", f'must be "cvm" or "lity", got {g.evm_profile!r}')
    _need_int(g.gas_limit, "gas_limit", MIN_GAS_LIMIT, MAX_GAS_LIMIT)
    if not isinstance(g.timeouts, ConsensusTimeouts):
        raise GenesisError("timeouts", "expected ConsensusTimeouts")
    for f in dataclasses.fields(ConsensusTimeouts):
        _need_int(getattr(g.timeouts, f.name), f"timeouts.{f.name}", 1, MAX_TIMEOUT_MS)
    if not isinstance(g.params, Params):
        raise GenesisError("params", "expected Params")
    if not isinstance(g.from_state_dump, bool):
        raise GenesisError("from_state_dump", "expected a boolean")
    balances = _validate_alloc(g.alloc, dumped=g.from_state_dump)
    _validate_validators(g.validators, None if g.from_state_dump else balances, g.params)


def _need_int(value: object, where: str, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenesisError(where, f"expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise GenesisError(where, f"must be >= {minimum}, got {value}")
    if value > maximum:
        raise GenesisError(where, f"must be <= {maximum}, got {value}")


def _validate_alloc(alloc: object, *, dumped: bool = False) -> dict[bytes, int]:
    if not isinstance(alloc, tuple):
        raise GenesisError("alloc", "expected a tuple of (address, AllocAccount)")
    balances: dict[bytes, int] = {}
    previous: bytes | None = None
    for entry in alloc:
        if not (
            isinstance(entry, tuple)
            and len(entry) == 2
            and isinstance(entry[0], bytes)
            and len(entry[0]) == 20
            and isinstance(entry[1], AllocAccount)
        ):
            raise GenesisError("alloc", "entries must be (20-byte address, AllocAccount)")
        address, account = entry
        where = f"alloc.{format_address(address)}"
        # Sorted and unique, so state building and genesis hashing never depend on input order.
        if previous is not None and address <= previous:
            raise GenesisError(where, "alloc must be sorted by address without repeats")
        previous = address
        if address == HOLD_ADDRESS and not dumped:
            raise GenesisError(
                where, "the Hold address's balance is the staked CMT; it cannot be prefunded"
            )
        _need_int(account.balance, f"{where}.balance", 0, UINT256_MAX)
        _need_int(account.nonce, f"{where}.nonce", 0, MAX_NONCE)
        if not isinstance(account.code, bytes):
            raise GenesisError(f"{where}.code", "expected bytes")
        if not isinstance(account.storage, tuple):
            raise GenesisError(f"{where}.storage", "expected a tuple of (slot, value)")
        last_slot = -1
        for pair in account.storage:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise GenesisError(f"{where}.storage", "entries must be (slot, value) pairs")
            slot, value = pair
            slot_where = f"{where}.storage.{_format_word(slot) if isinstance(slot, int) else slot}"
            _need_int(slot, slot_where, 0, UINT256_MAX)
            if slot <= last_slot:
                raise GenesisError(slot_where, "storage must be sorted by slot without repeats")
            last_slot = slot
            # A zero word is "absent" in the state trie; keeping it would make two spellings of
            # the same state.
            _need_int(value, slot_where, 1, UINT256_MAX)
        balances[address] = account.balance
    if sum(balances.values()) > UINT256_MAX:
        raise GenesisError("alloc", "total supply exceeds 2**256 - 1 wei")
    return balances


def _validate_validators(
    validators: object, balances: Mapping[bytes, int] | None, params: Params
) -> None:
    """`balances`: the alloc's, to check owners fund their self-stake; None when the stakes are
    already in the state (a genesis from a state dump)."""
    if not isinstance(validators, tuple):
        raise GenesisError("validators", "expected a tuple of GenesisValidator")
    if not validators:
        raise GenesisError("validators", "at least one validator is needed to produce blocks")
    key_seen: dict[bytes, int] = {}
    owner_seen: dict[bytes, int] = {}
    for index, validator in enumerate(validators):
        where = f"validators[{index}]"
        if not isinstance(validator, GenesisValidator):
            raise GenesisError(where, "expected a GenesisValidator")
        v = validator
        if not isinstance(v.pub_key, bytes) or len(v.pub_key) != 32:
            raise GenesisError(f"{where}.pub_key", "must be a 32-byte ed25519 public key")
        if v.pub_key in key_seen:
            raise GenesisError(
                f"{where}.pub_key", f"repeats the key of validators[{key_seen[v.pub_key]}]"
            )
        key_seen[v.pub_key] = index
        if not isinstance(v.owner, bytes) or len(v.owner) != 20:
            raise GenesisError(f"{where}.owner", "must be a 20-byte address")
        owner = format_address(v.owner)
        if v.owner in (MINT_ADDRESS, HOLD_ADDRESS):
            raise GenesisError(f"{where}.owner", f"{owner} is a system address")
        if v.owner in owner_seen:
            raise GenesisError(
                f"{where}.owner", f"owner {owner} already owns validators[{owner_seen[v.owner]}]"
            )
        owner_seen[v.owner] = index
        _need_int(v.shares, f"{where}.shares", 1, UINT256_MAX // CMT)
        _need_int(v.max_amount, f"{where}.max_amount", 1, UINT256_MAX // CMT)
        if v.max_amount < v.shares:
            raise GenesisError(
                f"{where}.max_amount", f"must be >= shares ({v.shares} CMT), got {v.max_amount}"
            )
        if not isinstance(v.comp_rate, Fraction) or not 0 < v.comp_rate < 1:
            shown = (
                format_rational(v.comp_rate)
                if isinstance(v.comp_rate, Fraction)
                else repr(v.comp_rate)
            )
            raise GenesisError(f"{where}.comp_rate", f"must be > 0 and < 1, got {shown}")
        for name in ("name", "website", "location", "email", "profile"):
            if not isinstance(getattr(v, name), str):
                raise GenesisError(f"{where}.{name}", "expected a string")
        # Below min_staking_amount a delegation has no voting power (SPEC §6): a genesis made only
        # of such validators could never produce a block.
        if v.shares < params.min_staking_amount:
            raise GenesisError(
                f"{where}.shares",
                f"{v.shares} CMT is below min_staking_amount "
                f"({params.min_staking_amount} CMT): no voting power",
            )
        # The same self-stake rule declareCandidacy enforces; otherwise the owner could never
        # withdraw anything (withdrawals must keep floor(max × self_staking_ratio)).
        required = int(v.max_amount * CMT * params.self_staking_ratio)  # floor: both >= 0
        if v.shares * CMT < required:
            raise GenesisError(
                f"{where}.shares",
                f"self-stake {v.shares} CMT is below max_amount × "
                f"self_staking_ratio = {required} wei",
            )
        if balances is None:
            continue
        balance = balances.get(v.owner)
        stake = v.shares * CMT
        if balance is None or balance < stake:
            held = "has no alloc entry" if balance is None else f"holds {balance} wei in alloc"
            raise GenesisError(
                f"{where}.owner",
                f"owner {owner} {held} but self-delegating {v.shares} CMT needs {stake} wei",
            )


# --------------------------------------------------------------------------------------------
# Parsing untrusted JSON


class _JsonObject(dict[str, object]):
    """A decoded JSON object that remembers keys the file repeated (json keeps only the last)."""

    duplicates: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, object]]) -> _JsonObject:
    obj = _JsonObject()
    repeated: list[str] = []
    for key, value in pairs:
        if key in obj:
            repeated.append(key)
        obj[key] = value
    obj.duplicates = tuple(repeated)
    return obj


def _join(parent: str, key: str) -> str:
    return key if parent == _ROOT else f"{parent}.{key}"


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise GenesisError(where, f"expected an object, got {type_name(value)}")
    repeated = getattr(value, "duplicates", ())
    if repeated:
        raise GenesisError(_join(where, repeated[0]), "duplicate key")
    return cast(Mapping[str, object], value)


def _check_keys(
    obj: Mapping[str, object], where: str, required: Iterable[str], optional: Iterable[str]
) -> None:
    required = tuple(required)
    allowed = (*required, *optional)
    for key in obj:
        if not isinstance(key, str) or key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GenesisError(_join(where, str(key)), "unknown key" + hint)
    for key in required:
        if key not in obj:
            raise GenesisError(_join(where, key), "missing")


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise GenesisError(where, f"expected a string, got {type_name(value)}")
    return value


_TOP_REQUIRED = ("chain_id", "network", "genesis_time", "alloc", "validators")
_TOP_OPTIONAL = ("evm_profile", "gas_limit", "timeouts", "params", "from_state_dump")
_VALIDATOR_REQUIRED = ("pub_key", "owner", "shares", "max_amount", "comp_rate")
_DESCRIPTION = ("name", "website", "location", "email", "profile")


def parse_genesis(obj: object) -> Genesis:
    """Decode a genesis JSON value (as from json.load) strictly and validate it."""
    top = _object(obj, _ROOT)
    _check_keys(top, _ROOT, _TOP_REQUIRED, _TOP_OPTIONAL)
    network = _string(top["network"], "network")
    # The value is checked against EVM_PROFILES by validate_genesis.
    evm_profile = _string(top.get("evm_profile", "cvm"), "evm_profile")
    params_obj = _object(top.get("params", {}), "params")
    return Genesis(
        chain_id=parse_uint(top["chain_id"], "chain_id"),
        network=network,
        genesis_time=parse_genesis_time(top["genesis_time"]),
        evm_profile=cast(EvmProfile, evm_profile),
        gas_limit=(parse_uint(top["gas_limit"], "gas_limit") if "gas_limit" in top else 30_000_000),
        timeouts=_parse_timeouts(top.get("timeouts", {})),
        params=params_from_json(params_obj, network=network),
        alloc=parse_alloc(top["alloc"]),
        validators=_parse_validators(top["validators"]),
        from_state_dump=_flag(top.get("from_state_dump", False), "from_state_dump"),
    )


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise GenesisError(where, f"expected true or false, got {type_name(value)}")
    return value


def parse_genesis_time(value: object, where: str = "genesis_time") -> int:
    """Unix seconds from an RFC 3339 timestamp ("2026-11-21T00:00:00Z"; offsets allowed).

    Fractional seconds are accepted only when zero (Tendermint writes ".000000000"): the chain
    counts whole seconds, and silently truncating would let two files mean one genesis.
    """
    text = _string(value, where)
    match = _RFC3339_RE.fullmatch(text)
    if not match:
        raise GenesisError(where, f'not an RFC 3339 time like "2026-11-21T00:00:00Z": {text!r}')
    date, clock, fraction, zone = match.groups()
    if fraction and fraction.strip(".0"):
        raise GenesisError(where, f"fractional seconds are not supported: {text!r}")
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}{zone}")
    except ValueError as error:
        raise GenesisError(where, f"invalid time {text!r}: {error}") from None
    return int(moment.timestamp())


def format_genesis_time(seconds: int) -> str:
    """RFC 3339 UTC with a Z suffix, whole seconds."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timeouts(value: object) -> ConsensusTimeouts:
    obj = _object(value, "timeouts")
    names = [f.name for f in dataclasses.fields(ConsensusTimeouts)]
    _check_keys(obj, "timeouts", (), names)
    return ConsensusTimeouts(
        **{name: parse_uint(obj[name], f"timeouts.{name}") for name in names if name in obj}
    )


def parse_alloc(value: object, name: str = "alloc") -> tuple[tuple[bytes, AllocAccount], ...]:
    """Accounts by address, as genesis alloc (and state dumps, genesis/state_dump.py) write
    them; errors name the field under `name`."""
    obj = _object(value, name)
    accounts: dict[bytes, AllocAccount] = {}
    for key, entry in obj.items():
        address = parse_address_text(key, f"{name}.{key}")
        where = f"{name}.{format_address(address)}"
        if address in accounts:
            raise GenesisError(where, "listed twice (addresses differing only in case)")
        accounts[address] = _parse_account(entry, where)
    return tuple(sorted(accounts.items()))


def _parse_account(value: object, where: str) -> AllocAccount:
    obj = _object(value, where)
    _check_keys(obj, where, ("balance",), ("nonce", "code", "storage"))
    code = b""
    if "code" in obj:
        code = parse_hex_bytes(obj["code"], f"{where}.code")
    return AllocAccount(
        balance=parse_uint(obj["balance"], f"{where}.balance"),
        nonce=parse_uint(obj["nonce"], f"{where}.nonce") if "nonce" in obj else 0,
        code=code,
        storage=_parse_storage(obj.get("storage", {}), f"{where}.storage"),
    )


def _parse_word(value: object, where: str) -> int:
    text = _string(value, where)
    if not _QUANTITY_RE.fullmatch(text):
        raise GenesisError(where, f"expected 0x + 1 to 64 hex digits, got {text!r}")
    return int(text, 16)


def _format_word(value: int) -> str:
    return f"0x{value:064x}"


def _parse_storage(value: object, where: str) -> tuple[tuple[int, int], ...]:
    obj = _object(value, where)
    slots: dict[int, int] = {}
    for key, word in obj.items():
        slot = _parse_word(key, f"{where}.{key}")
        if slot in slots:
            raise GenesisError(f"{where}.{key}", "slot listed twice (different spellings)")
        slots[slot] = _parse_word(word, f"{where}.{key}")
    # Zero words are how other tools write "empty"; the trie has no such entry, so drop them.
    return tuple(sorted((slot, word) for slot, word in slots.items() if word))


def _parse_validators(value: object) -> tuple[GenesisValidator, ...]:
    if not isinstance(value, list):
        raise GenesisError("validators", f"expected an array, got {type_name(value)}")
    return tuple(_parse_validator(item, f"validators[{i}]") for i, item in enumerate(value))


def _parse_validator(value: object, where: str) -> GenesisValidator:
    obj = _object(value, where)
    _check_keys(obj, where, _VALIDATOR_REQUIRED, _DESCRIPTION)
    description = {name: _string(obj.get(name, ""), f"{where}.{name}") for name in _DESCRIPTION}
    return GenesisValidator(
        pub_key=parse_pub_key(obj["pub_key"], f"{where}.pub_key"),
        owner=parse_address(obj["owner"], f"{where}.owner"),
        shares=parse_uint(obj["shares"], f"{where}.shares"),
        max_amount=parse_uint(obj["max_amount"], f"{where}.max_amount"),
        comp_rate=parse_rational(obj["comp_rate"], f"{where}.comp_rate"),
        **description,
    )


def parse_pub_key(value: object, where: str) -> bytes:
    text = _string(value, where)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise GenesisError(where, "not base64") from None
    if len(key) != 32:
        raise GenesisError(where, f"an ed25519 public key is 32 bytes, got {len(key)}")
    return key


def read_genesis_file(path: str | os.PathLike[str]) -> bytes:
    """A genesis (or state dump) file's bytes; unreadable → GenesisError, field "<file>"."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise GenesisError(
            _FILE, f"cannot read {os.fspath(path)}: {error.strerror or error}"
        ) from None


def load_genesis(path: str | os.PathLike[str]) -> Genesis:
    """Read, decode and validate a genesis file. Unreadable or invalid JSON → field "<file>"."""
    return parse_genesis(loads_genesis_json(read_genesis_file(path)))


def loads_genesis_json(raw: bytes | str) -> object:
    """Decode genesis JSON text, keeping duplicate keys detectable and refusing NaN/Infinity."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as error:
        raise GenesisError(_FILE, f"not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise GenesisError(
            _FILE,
            f"invalid JSON at line {error.lineno} column {error.colno} "
            f"(char {error.pos}): {error.msg}",
        ) from None
    except RecursionError:
        raise GenesisError(_FILE, "JSON nested too deeply") from None


def _no_constant(name: str) -> object:
    raise GenesisError(_FILE, f"{name} is not valid JSON")


# --------------------------------------------------------------------------------------------
# Canonical output


def genesis_to_json(genesis: Genesis) -> dict[str, object]:
    """The canonical JSON value: balances as decimal strings (exact in every JSON reader),
    whole-CMT amounts and small integers as numbers, every parameter written out."""
    g = genesis
    return {
        "chain_id": g.chain_id,
        "network": g.network,
        "genesis_time": format_genesis_time(g.genesis_time),
        "evm_profile": g.evm_profile,
        "gas_limit": g.gas_limit,
        "timeouts": dataclasses.asdict(g.timeouts),
        "params": params_to_json(g.params),
        "alloc": alloc_to_json(g.alloc),
        "validators": [_validator_to_json(v) for v in g.validators],
        # Written only when set: every other genesis keeps its bytes (and its stored digest).
        **({"from_state_dump": True} if g.from_state_dump else {}),
    }


def alloc_to_json(alloc: Iterable[tuple[bytes, AllocAccount]]) -> dict[str, object]:
    """The canonical JSON of accounts by address (genesis alloc, state dumps)."""
    return {format_address(address): _account_to_json(account) for address, account in alloc}


def _account_to_json(account: AllocAccount) -> dict[str, object]:
    out: dict[str, object] = {"balance": str(account.balance)}
    # Defaults are left out so a plain prefunded account reads as just its balance.
    if account.nonce:
        out["nonce"] = account.nonce
    if account.code:
        out["code"] = "0x" + account.code.hex()
    if account.storage:
        out["storage"] = {_format_word(slot): _format_word(word) for slot, word in account.storage}
    return out


def _validator_to_json(v: GenesisValidator) -> dict[str, object]:
    return {
        "pub_key": base64.b64encode(v.pub_key).decode("ascii"),
        "owner": format_address(v.owner),
        "shares": v.shares,
        "max_amount": v.max_amount,
        "comp_rate": format_rational(v.comp_rate),
        "name": v.name,
        "website": v.website,
        "location": v.location,
        "email": v.email,
        "profile": v.profile,
    }


def dumps_genesis(genesis: Genesis) -> str:
    """Canonical text: sorted keys, indent 2, trailing newline. Same genesis → same bytes."""
    return json.dumps(genesis_to_json(genesis), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def dump_genesis(genesis: Genesis, path: str | os.PathLike[str]) -> None:
    """Write the canonical text atomically (a crash never leaves half a genesis file)."""
    # mkstemp makes the file private; a genesis file is public.
    write_atomically(path, dumps_genesis(genesis).encode("utf-8"), mode=0o644)


def write_atomically(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to `path` so a reader sees the old file or the whole new one (temporary
    file beside it, fsync, rename). `mode`: the file's permissions; None keeps mkstemp's 0600."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
