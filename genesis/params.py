"""The chain parameters of SPEC §3 as data: names, types, defaults, bounds, JSON forms.

Parameters are set in genesis `params`, read with `cmt_queryParams` and changed by governance
`change_param` proposals. This module is the single table of them:

- `Params` is a frozen dataclass holding one typed value per parameter (uint → int, rat →
  `Fraction`, bool → bool, address → 20 bytes, JSON → the JSON text as a str). Its field defaults
  are the defaults of every network except mainnet; `default_params("mainnet")` applies the
  mainnet overrides (max_vals 19, backup_vals 5, max_slash_blocks 12). A `Params` validates itself
  on construction, so one that exists is always usable by staking and governance.
- `PARAM_SPECS` / `PARAM_SPEC_BY_NAME` describe each parameter (type, default, whether governance
  may change it, bounds).
- `parse_param` turns an untrusted JSON or governance string value into the typed value;
  `params_to_json` / `params_from_json` are the JSON forms (rationals as normalised "a/b" strings,
  addresses as lowercase hex, integers as JSON numbers).

Bounds beyond "non-negative" exist only where a value would stop the chain or break arithmetic
(no validators, modulo by zero, a ratio above 100 %); they are listed in `_BOUNDS`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from genesis._codec import (
    format_address,
    format_rational,
    parse_address,
    parse_rational,
    parse_uint,
    type_name,
)
from genesis._cube_keys import DEFAULT_CUBE_PUB_KEYS
from genesis.errors import GenesisError, ParamError

ParamKind = Literal["uint", "rat", "bool", "address", "json"]
ParamValue = int | Fraction | bool | bytes | str

# Travis stored these as Go int64/uint64; keeping every uint parameter within int64 means any
# value we accept is representable by Travis-era tooling and in JSON readers that use int64.
UINT_PARAM_MAX = 2**63 - 1

FOUNDATION_ADDRESS_DEFAULT = bytes.fromhex("7eff122b94897ea5b0e2a9abf47b86337fafebdc")


@dataclass(frozen=True)
class Params:
    """Every chain parameter, typed. Field order is the order of SPEC §3 and of JSON output."""

    max_vals: int = 4
    backup_vals: int = 1
    self_staking_ratio: Fraction = Fraction(1, 10)
    inflation_rate: Fraction = Fraction(8, 100)
    validator_size_threshold: Fraction = Fraction(12, 100)
    unstake_waiting_period: int = 60480  # blocks: 7 days of 10 s blocks
    proposal_expire_period: int = 60480
    declare_candidacy_gas: int = 1_000_000
    update_candidacy_gas: int = 1_000_000
    update_candidate_account_gas: int = 1_000_000
    accept_candidate_account_update_request_gas: int = 1_000_000
    set_comp_rate_gas: int = 21000
    transfer_fund_proposal_gas: int = 2_000_000
    change_params_proposal_gas: int = 2_000_000
    deploy_libeni_proposal_gas: int = 2_000_000
    retire_program_proposal_gas: int = 2_000_000
    upgrade_program_proposal_gas: int = 2_000_000
    gas_price: int = 2_000_000_000  # wei
    min_staking_amount: int = 1000  # whole CMT
    validators_block_award_ratio: Fraction = Fraction(90, 100)
    max_slash_blocks: int = 120
    slash_ratio: Fraction = Fraction(12, 1000)
    slash_enabled: bool = False
    cube_pub_keys: str = DEFAULT_CUBE_PUB_KEYS
    low_price_tx_gas_limit: int = 500_000
    low_price_tx_slots_cap: int = 100
    foundation_address: bytes = FOUNDATION_ADDRESS_DEFAULT
    cal_vp_interval: int = 1

    def __post_init__(self) -> None:
        for spec in PARAM_SPECS:
            _check_typed(spec, getattr(self, spec.name))

    def get(self, name: str) -> ParamValue:
        """The typed value of parameter `name` (ParamError if there is no such parameter)."""
        _spec(name)
        value: ParamValue = getattr(self, name)
        return value


@dataclass(frozen=True)
class ParamSpec:
    """One row of the SPEC §3 table."""

    name: str
    kind: ParamKind
    default: ParamValue  # every network but mainnet
    mainnet_default: ParamValue
    governable: bool  # may a change_param proposal change it? (all but foundation_address)
    minimum: int | Fraction = 0
    exclusive_minimum: bool = False
    maximum: int | Fraction | None = None

    def default_for(self, network: str) -> ParamValue:
        return self.mainnet_default if network == "mainnet" else self.default


_KINDS: dict[str, ParamKind] = {
    "self_staking_ratio": "rat",
    "inflation_rate": "rat",
    "validator_size_threshold": "rat",
    "validators_block_award_ratio": "rat",
    "slash_ratio": "rat",
    "slash_enabled": "bool",
    "cube_pub_keys": "json",
    "foundation_address": "address",
}  # everything else is a uint

# (minimum, exclusive_minimum, maximum) where the default rule (>= 0, uint <= int64) is not enough.
_BOUNDS: dict[str, tuple[int | Fraction, bool, int | Fraction | None]] = {
    "max_vals": (1, False, UINT_PARAM_MAX),  # zero validators halts the chain for good
    "max_slash_blocks": (1, False, UINT_PARAM_MAX),  # 0 would deactivate everyone at once
    "cal_vp_interval": (1, False, UINT_PARAM_MAX),  # used as a modulus
    "self_staking_ratio": (0, False, 1),
    # Voting power is scaled by threshold / p when p exceeds the threshold: 0 zeroes every
    # validator's power.
    "validator_size_threshold": (0, True, 1),
    "validators_block_award_ratio": (0, False, 1),
    "slash_ratio": (0, False, 1),
}

MAINNET_OVERRIDES: Mapping[str, ParamValue] = {
    "max_vals": 19,
    "backup_vals": 5,
    "max_slash_blocks": 12,
}


def _make_specs() -> tuple[ParamSpec, ...]:
    specs = []
    for f in dataclasses.fields(Params):
        kind = _KINDS.get(f.name, "uint")
        minimum, exclusive, maximum = _BOUNDS.get(
            f.name, (0, False, UINT_PARAM_MAX if kind == "uint" else None)
        )
        default: ParamValue = f.default  # type: ignore[assignment]
        specs.append(
            ParamSpec(
                name=f.name,
                kind=kind,
                default=default,
                mainnet_default=MAINNET_OVERRIDES.get(f.name, default),
                governable=f.name != "foundation_address",
                minimum=minimum,
                exclusive_minimum=exclusive,
                maximum=maximum,
            )
        )
    return tuple(specs)


PARAM_SPECS: tuple[ParamSpec, ...] = _make_specs()
PARAM_SPEC_BY_NAME: Mapping[str, ParamSpec] = {spec.name: spec for spec in PARAM_SPECS}
PARAM_NAMES: tuple[str, ...] = tuple(spec.name for spec in PARAM_SPECS)


def _spec(name: str) -> ParamSpec:
    spec = PARAM_SPEC_BY_NAME.get(name)
    if spec is None:
        raise ParamError(name, "unknown parameter")
    return spec


def default_params(network: str = "private") -> Params:
    """The defaults for `network` (only "mainnet" differs)."""
    if network == "mainnet":
        return dataclasses.replace(Params(), **MAINNET_OVERRIDES)  # type: ignore[arg-type]
    return Params()


def parse_param(name: str, value: object) -> ParamValue:
    """Decode an untrusted value (genesis JSON or a governance string) for parameter `name`.

    uint: JSON integer, decimal or 0x-hex string; rat: "a/b", decimal string ("0.2") or JSON
    integer; bool: JSON boolean or "true"/"false"; address: 0x + 40 hex (EIP-55 if mixed case);
    json: a string holding JSON. Raises ParamError naming the parameter.
    """
    spec = _spec(name)
    try:
        typed = _decode(spec, value)
    except ParamError:
        raise
    except GenesisError as error:
        raise ParamError(name, error.message) from None
    _check_typed(spec, typed)
    return typed


def _decode(spec: ParamSpec, value: object) -> ParamValue:
    field = f"params.{spec.name}"
    if spec.kind == "uint":
        return parse_uint(value, field)  # bounds are checked by _check_typed
    if spec.kind == "rat":
        return parse_rational(value, field)
    if spec.kind == "bool":
        # Governance carries values as strings, genesis as JSON booleans; accept both spellings.
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ParamError(spec.name, f"expected true or false, got {_show(value)}")
    if spec.kind == "address":
        return parse_address(value, field)
    if not isinstance(value, str):
        raise ParamError(spec.name, f"expected a string holding JSON, got {type_name(value)}")
    return value


def _check_typed(spec: ParamSpec, value: object) -> None:
    """Type and range check of an already-typed value (used by parse_param and Params)."""
    name = spec.name
    if spec.kind == "uint":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(name, f"expected an integer, got {type(value).__name__}")
    elif spec.kind == "rat":
        if not isinstance(value, Fraction):
            raise ParamError(name, f"expected a Fraction, got {type(value).__name__}")
    elif spec.kind == "bool":
        if not isinstance(value, bool):
            raise ParamError(name, f"expected a bool, got {type(value).__name__}")
        return
    elif spec.kind == "address":
        if not isinstance(value, bytes) or len(value) != 20:
            raise ParamError(name, "expected a 20-byte address")
        return
    else:
        if not isinstance(value, str):
            raise ParamError(name, f"expected a JSON string, got {type(value).__name__}")
        if name == "cube_pub_keys":
            _check_cube_pub_keys(value)
        else:  # pragma: no cover - cube_pub_keys is the only JSON parameter today
            _check_json(name, value)
        return
    number = value
    shown = format_rational(number) if isinstance(number, Fraction) else str(number)
    if number < spec.minimum or (spec.exclusive_minimum and number == spec.minimum):
        relation = ">" if spec.exclusive_minimum else ">="
        raise ParamError(name, f"must be {relation} {_show_bound(spec.minimum)}, got {shown}")
    if spec.maximum is not None and number > spec.maximum:
        raise ParamError(name, f"must be <= {_show_bound(spec.maximum)}, got {shown}")


def _check_json(name: str, text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ParamError(name, f"not valid JSON: {error}") from None


@lru_cache(maxsize=16)
def _check_cube_pub_keys(text: str) -> None:
    """cube_pub_keys must be a JSON array of {cube_batch, pub_key: PEM RSA public key}.

    Stricter than Travis (which accepted any JSON): a key that does not load would only surface
    when a Cube delegation arrives, as a failure nobody can fix without another proposal.
    Cached because every `Params` construction re-validates the same text.
    """
    name = "cube_pub_keys"
    entries = _check_json(name, text)
    if not isinstance(entries, list):
        raise ParamError(name, "must be a JSON array of {cube_batch, pub_key}")
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"entry {index}"
        if not isinstance(entry, dict) or set(entry) != {"cube_batch", "pub_key"}:
            raise ParamError(name, f"{where} must be an object with exactly cube_batch, pub_key")
        batch, pem = entry["cube_batch"], entry["pub_key"]
        if not isinstance(batch, str) or not batch:
            raise ParamError(name, f"{where}: cube_batch must be a non-empty string")
        if batch in seen:
            raise ParamError(name, f"{where}: cube_batch {batch!r} repeats")
        seen.add(batch)
        if not isinstance(pem, str):
            raise ParamError(name, f"{where}: pub_key must be a PEM string")
        try:
            key = load_pem_public_key(pem.encode())
        except (ValueError, TypeError) as error:
            raise ParamError(name, f"{where}: pub_key is not a PEM public key ({error})") from None
        if not isinstance(key, RSAPublicKey):
            raise ParamError(name, f"{where}: pub_key must be an RSA key")


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else type_name(value)


def _show_bound(bound: int | Fraction) -> str:
    return format_rational(bound) if isinstance(bound, Fraction) else str(bound)


def param_to_json(name: str, value: ParamValue) -> int | str | bool:
    """The JSON form of one typed parameter value."""
    spec = _spec(name)
    if spec.kind == "rat":
        assert isinstance(value, Fraction)
        return format_rational(value)
    if spec.kind == "address":
        assert isinstance(value, bytes)
        return format_address(value)
    assert isinstance(value, int | str)  # uint, bool (an int) and json
    return value


def params_to_json(params: Params) -> dict[str, int | str | bool]:
    """All parameters: numbers for uints, "a/b" for rationals, strings for address and JSON."""
    return {spec.name: param_to_json(spec.name, getattr(params, spec.name)) for spec in PARAM_SPECS}


def params_from_json(obj: Mapping[str, object], *, network: str = "private") -> Params:
    """Parse a `params` object; missing parameters take `network`'s defaults, unknown ones fail."""
    changes: dict[str, ParamValue] = {}
    for name, value in obj.items():
        changes[name] = parse_param(name, value)
    base = default_params(network)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def change_param(params: Params, name: str, value: object) -> Params:
    """Apply a governance change: `name` must be governable and `value` parse for its type."""
    spec = _spec(name)
    if not spec.governable:
        raise ParamError(name, "cannot be changed by governance")
    return dataclasses.replace(params, **{name: parse_param(name, value)})  # type: ignore[arg-type]
