"""The chain parameters (SPEC §3) kept in state, so every block reads the rules in force at it.

Genesis writes them (`write_params`), each block and admission read them (`read_params`), a
governance `change_param` proposal is checked when made (`check_change`) and, once approved,
rewrites one parameter (`change_param`). The parameter table
itself — names, types, defaults, bounds, parsing, which ones governance may change — is
`genesis.params`; this module only decides where each value sits in storage, so a parameter added
to `genesis.Params` gets its slot here without an edit.

Slot layout (account PARAMS_ADDRESS = 0x…c0de07, module "params"; derivation in
cybermiles_node/system/storage.py)

| name                   | codec                           | word(s)                              |
|------------------------|---------------------------------|--------------------------------------|
| written                | uint: 1 once genesis wrote them | keccak("params/written")             |
| every uint parameter   | uint                            | keccak("params/<name>")              |
| every rat parameter    | rational: numerator, denominator | keccak("params/<name>") and + 1     |
| slash_enabled          | bool                            | keccak("params/slash_enabled")       |
| foundation_address     | address                         | keccak("params/foundation_address")  |
| cube_pub_keys          | str (the JSON text, UTF-8)      | s = keccak("params/cube_pub_keys"):  |
|                        |                                 | length at s, text at keccak(s) + j   |

Rationals are kept exactly (numerator and denominator in lowest terms), never as decimals, so
what governance set is what every node reads back. The `written` marker exists because zero is a
legitimate value of several parameters (backup_vals 0, slash_enabled false): without it an
unwritten state would read back as a plausible but wrong parameter set. Its value is the layout
version, so a future change of layout can be recognised.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Protocol

from eth_typing import Address

from cybermiles_node.system.addresses import PARAMS_ADDRESS
from cybermiles_node.system.errors import StorageError, SystemStateError
from cybermiles_node.system.storage import (
    ADDRESS,
    BOOL,
    RATIONAL,
    STRING,
    UINT,
    Codec,
    Item,
    Layout,
    MemoryStorage,
    SystemStorage,
)
from genesis import (
    PARAM_SPEC_BY_NAME,
    PARAM_SPECS,
    ParamError,
    Params,
    ParamSpec,
    ParamValue,
    parse_param,
)
from genesis import change_param as change_param_value

LAYOUT_VERSION = 1

LAYOUT = Layout(PARAMS_ADDRESS, "params")
WRITTEN = LAYOUT.item("written", UINT)


class ParamsNotInState(SystemStateError):
    """The state holds no chain parameters: genesis never wrote them."""


class _ParamCodec(Codec[ParamValue]):
    """The codec of one parameter kind, seen through the union type `ParamValue`.

    Each kind has a concrete codec (uint → UINT, …); this adapter lets one table hold all of
    them while mypy still checks each value's type at the boundary.
    """

    def __init__(self, spec: ParamSpec) -> None:
        self.kind = spec.kind
        self.name = f"param {spec.name} ({spec.kind})"
        self.width = RATIONAL.width if spec.kind == "rat" else 1
        self.zero = _KIND_ZERO[spec.kind]

    def read(self, storage: SystemStorage, account: Address, slot: int) -> ParamValue:
        if self.kind == "uint":
            return UINT.read(storage, account, slot)
        if self.kind == "rat":
            return RATIONAL.read(storage, account, slot)
        if self.kind == "bool":
            return BOOL.read(storage, account, slot)
        if self.kind == "address":
            return ADDRESS.read(storage, account, slot)
        return STRING.read(storage, account, slot)

    def write(self, storage: SystemStorage, account: Address, slot: int, value: ParamValue) -> None:
        # `Params` has already type-checked the value; the isinstance checks narrow it for mypy
        # and make a value of the wrong kind fail loudly instead of being stored as another type.
        if self.kind == "uint" and isinstance(value, int) and not isinstance(value, bool):
            UINT.write(storage, account, slot, value)
        elif self.kind == "rat" and isinstance(value, Fraction):
            RATIONAL.write(storage, account, slot, value)
        elif self.kind == "bool" and isinstance(value, bool):
            BOOL.write(storage, account, slot, value)
        elif self.kind == "address" and isinstance(value, bytes):
            ADDRESS.write(storage, account, slot, value)
        elif self.kind == "json" and isinstance(value, str):
            STRING.write(storage, account, slot, value)
        else:
            raise TypeError(f"{self.name}: cannot store a {type(value).__name__}")


_KIND_ZERO: Mapping[str, ParamValue] = {
    "uint": 0,
    "rat": Fraction(0),
    "bool": False,
    "address": bytes(20),
    "json": "",
}

# One item per parameter, in the order of SPEC §3 (genesis.PARAM_SPECS).
PARAM_ITEMS: Mapping[str, Item[ParamValue]] = {
    spec.name: LAYOUT.item(spec.name, _ParamCodec(spec)) for spec in PARAM_SPECS
}


def write_params(storage: SystemStorage, params: Params) -> None:
    """Store every parameter (genesis does this once; a chain without them cannot run)."""
    for name, item in PARAM_ITEMS.items():
        item.set(storage, params.get(name))
    WRITTEN.set(storage, LAYOUT_VERSION)


def read_params(storage: SystemStorage) -> Params:
    """The parameters in force in this state; `ParamsNotInState` if genesis never wrote them.

    The values are re-validated by `Params`, so a state holding an out-of-range value (which no
    writer here produces) raises `genesis.ParamError` rather than running the chain on it.
    """
    version = WRITTEN.get(storage)
    if version != LAYOUT_VERSION:
        where = f"0x{bytes(PARAMS_ADDRESS).hex()}"
        if version == 0:
            raise ParamsNotInState(
                f"no chain parameters in state at {where}: genesis must write them"
            )
        raise ParamsNotInState(f"chain parameters at {where} have unknown layout {version}")
    values = {name: item.get(storage) for name, item in PARAM_ITEMS.items()}
    return Params(**values)  # type: ignore[arg-type]  # each item's codec gives its field's type


class RootedStorage(SystemStorage, Protocol):
    """Storage that can say when an account's storage root describes its slots (StateDB)."""

    def storage_root_if_unwritten(self, address: Address, /) -> bytes | None: ...


# Decoded parameters by the params account's storage root: content-addressed (one root, one
# parameter set, on any chain), so whichever thread fills or clears it, a hit is right. Plain
# dict operations, each atomic under the GIL: the block pipeline and RPC threads share it.
_BY_STORAGE_ROOT: dict[bytes, Params] = {}
_BY_STORAGE_ROOT_SIZE = 16


def read_state_params(state: RootedStorage) -> Params:
    """`read_params`, decoded once per params storage root. The parameters are a function of
    that root, which moves only when governance changes one; every other block finds them
    decoded already: one account read instead of ~60 slot reads. While the state holds
    unrooted writes to the params account, it is read as `read_params` reads it."""
    root = state.storage_root_if_unwritten(PARAMS_ADDRESS)
    if root is None:
        return read_params(state)
    params = _BY_STORAGE_ROOT.get(root)
    if params is None:
        params = read_params(state)
        if len(_BY_STORAGE_ROOT) >= _BY_STORAGE_ROOT_SIZE:
            _BY_STORAGE_ROOT.clear()  # roots change only with governance: rarely refilled
        _BY_STORAGE_ROOT[root] = params
    return params


def check_change(name: str, value_text: str) -> ParamValue:
    """The typed value a governance `change_param` would set; `genesis.ParamError` if refused.

    Refused: an unknown or non-governable parameter (foundation_address, SPEC §3/§7), a value that
    does not parse for the parameter's type or breaks its bounds (genesis.parse_param), and a
    value too large for its storage words (e.g. a rational with a 300-bit numerator, which the
    parser accepts). Governance calls this when a proposal is made, so an accepted proposal can
    always be applied.
    """
    value = parse_param(name, value_text)  # unknown names and bad values raise here
    if not PARAM_SPEC_BY_NAME[name].governable:
        raise ParamError(name, "cannot be changed by governance")
    try:
        PARAM_ITEMS[name].set(MemoryStorage(), value)  # a scratch store: does it fit?
    except StorageError as error:
        raise ParamError(name, f"value does not fit in state ({error})") from None
    return value


def change_param(storage: SystemStorage, name: str, value_text: str) -> Params:
    """Apply a governance change (checked by `check_change`) and return the parameters now in force.

    Raises `genesis.ParamError` (nothing written) for a refused change and `ParamsNotInState`
    if genesis never wrote the parameters. Only the changed parameter's words are rewritten.
    """
    check_change(name, value_text)
    current = read_params(storage)
    changed = change_param_value(current, name, value_text)  # genesis' rule, re-checked
    PARAM_ITEMS[name].set(storage, changed.get(name))
    return changed


def params_slots() -> Mapping[str, int]:
    """The first storage word of each parameter, for eth_getProof users and debugging."""
    return {name: item.slot for name, item in PARAM_ITEMS.items()}


__all__ = [
    "LAYOUT",
    "PARAM_ITEMS",
    "ParamsNotInState",
    "change_param",
    "check_change",
    "params_slots",
    "read_params",
    "write_params",
]
