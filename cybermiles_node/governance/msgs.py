"""The `governance/*` transactions of SPEC §5 as frozen messages, with their stateless checks.

`parse_governance_msg(kind, data)` turns the envelope's `data` object into one of the classes
below or refuses with `MalformedGovernanceTx` naming the field. Only what the bytes decide is
checked here; everything that depends on state (validators, balances, parameters, enabled
versions, heights and times) is `rules.py`'s. Fields are decoded by `system/txdata.py` as the
staking ones are (amounts as decimal or 0x strings, addresses 0x hex, no unknown fields).

| kind                    | fields                                 | stateless checks         |
|-------------------------|----------------------------------------|--------------------------|
| propose/transfer_fund   | transfer_from, transfer_to, amount,    | amount > 0               |
|                         | reason?, expire_timestamp?,            |                          |
|                         | expire_block_height?                   |                          |
| propose/change_param    | name, value (string), reason?,         |                          |
|                         | expire_timestamp?, expire_block_height?|                          |
| propose/deploy_libeni   | name, version, file_url, md5, reason?, | NAME_RE, VERSION_RE;     |
|                         | deploy_timestamp?, deploy_block_height?| file_url, md5 objects    |
| propose/retire_program  | preserved_validators?, reason?,        |                          |
|                         | retired_block_height?                  |                          |
| propose/upgrade_program | name, version, file_url, md5, reason?, | as deploy_libeni         |
|                         | upgrade_block_height?                  |                          |
| vote                    | proposal_id, answer                    | id: base64 (Travis) or   |
|                         |                                        | 0x hex of 32 bytes;      |
|                         |                                        | answer "Y" or "N"        |

Heights and timestamps are JSON integers (0 .. 2^63 - 1); an omitted one is None. `file_url`
and `md5` are JSON objects, given as an object or as a string holding one (Travis clients send
strings); they are kept as canonical JSON text. The fee of every propose kind is its
`*_proposal_gas` parameter × gas_price; a vote is free (SPEC §5).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from cybermiles_node.governance.errors import MalformedGovernanceTx
from cybermiles_node.system.txdata import TxData
from genesis import Params, type_name

__all__ = [
    "GOVERNANCE_KINDS",
    "GovernanceMsg",
    "ProposalMsg",
    "ProposeChangeParam",
    "ProposeDeployLibEni",
    "ProposeRetireProgram",
    "ProposeTransferFund",
    "ProposeUpgradeProgram",
    "Vote",
    "gas_of_kind",
    "message_data",
    "parse_governance_msg",
]

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z_]*[A-Za-z]$")
VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class ProposeTransferFund:
    KIND: ClassVar[str] = "governance/propose/transfer_fund"
    transfer_from: bytes
    transfer_to: bytes
    amount: int
    reason: str
    expire_timestamp: int | None
    expire_block_height: int | None


@dataclass(frozen=True)
class ProposeChangeParam:
    KIND: ClassVar[str] = "governance/propose/change_param"
    name: str
    value: str
    reason: str
    expire_timestamp: int | None
    expire_block_height: int | None


@dataclass(frozen=True)
class ProposeDeployLibEni:
    KIND: ClassVar[str] = "governance/propose/deploy_libeni"
    name: str
    version: str
    file_url: str  # canonical JSON text of an object
    md5: str
    reason: str
    deploy_timestamp: int | None
    deploy_block_height: int | None


@dataclass(frozen=True)
class ProposeRetireProgram:
    KIND: ClassVar[str] = "governance/propose/retire_program"
    preserved_validators: str
    reason: str
    retired_block_height: int | None


@dataclass(frozen=True)
class ProposeUpgradeProgram:
    KIND: ClassVar[str] = "governance/propose/upgrade_program"
    name: str
    version: str
    file_url: str
    md5: str
    reason: str
    upgrade_block_height: int | None


@dataclass(frozen=True)
class Vote:
    KIND: ClassVar[str] = "governance/vote"
    proposal_id: bytes  # the proposing transaction's hash
    answer: bool  # True: "Y"


ProposalMsg = (
    ProposeTransferFund
    | ProposeChangeParam
    | ProposeDeployLibEni
    | ProposeRetireProgram
    | ProposeUpgradeProgram
)
GovernanceMsg = ProposalMsg | Vote

_GAS_PARAM: Mapping[str, Callable[[Params], int]] = {
    ProposeTransferFund.KIND: lambda p: p.transfer_fund_proposal_gas,
    ProposeChangeParam.KIND: lambda p: p.change_params_proposal_gas,
    ProposeDeployLibEni.KIND: lambda p: p.deploy_libeni_proposal_gas,
    ProposeRetireProgram.KIND: lambda p: p.retire_program_proposal_gas,
    ProposeUpgradeProgram.KIND: lambda p: p.upgrade_program_proposal_gas,
}
GOVERNANCE_KINDS: frozenset[str] = frozenset(_GAS_PARAM) | {Vote.KIND}


def gas_of_kind(kind: str, params: Params) -> int:
    """The gas a `kind` is charged (SPEC §5): its *_proposal_gas parameter; 0 for a vote."""
    if kind == Vote.KIND:
        return 0
    gas = _GAS_PARAM.get(kind)
    if gas is None:
        raise MalformedGovernanceTx(f"unknown governance transaction kind {kind!r}")
    return gas(params)


class _Data(TxData):
    """The `data` object of one governance kind, plus the governance fields."""

    def __init__(
        self,
        kind: str,
        data: Mapping[str, object],
        required: tuple[str, ...],
        optional: tuple[str, ...],
    ) -> None:
        super().__init__(MalformedGovernanceTx, kind, data, required, optional)

    def optional_int(self, name: str) -> int | None:
        return None if self.data.get(name) is None else self.integer(name)

    def pattern(self, name: str, pattern: re.Pattern[str], what: str) -> str:
        text = self.string(name)
        if not pattern.fullmatch(text):
            self.fail(name, f"{text!r} is not {what}")
        return text

    def json_object(self, name: str) -> str:
        """A JSON object (or a string holding one), as canonical JSON text."""
        value = self.data[name]
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                self.fail(name, "expected a JSON object (or a string holding one)")
        if not isinstance(value, dict):
            self.fail(name, f"expected a JSON object, got {type_name(value)}")
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def proposal_id(self, name: str) -> bytes:
        text = self.string(name)
        raw: bytes | None = None
        if text.startswith("0x") and len(text) == 66:
            try:
                raw = bytes.fromhex(text[2:])
            except ValueError:
                raw = None
        else:
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raw = None
        if raw is None or len(raw) != 32:
            self.fail(name, "expected the base64 (or 0x hex) of a 32-byte transaction hash")
        return raw

    def answer(self, name: str) -> bool:
        text = self.string(name)
        if text not in ("Y", "N"):
            self.fail(name, f'expected "Y" or "N", got {text!r}')
        return text == "Y"


_EXPIRY = ("reason", "expire_timestamp", "expire_block_height")
_RELEASE = ("name", "version", "file_url", "md5")


def _transfer_fund(d: _Data) -> ProposeTransferFund:
    return ProposeTransferFund(
        transfer_from=d.address("transfer_from"),
        transfer_to=d.address("transfer_to"),
        amount=d.amount("amount"),
        reason=d.string("reason"),
        expire_timestamp=d.optional_int("expire_timestamp"),
        expire_block_height=d.optional_int("expire_block_height"),
    )


def _change_param(d: _Data) -> ProposeChangeParam:
    return ProposeChangeParam(
        name=d.string("name"),
        value=d.string("value"),
        reason=d.string("reason"),
        expire_timestamp=d.optional_int("expire_timestamp"),
        expire_block_height=d.optional_int("expire_block_height"),
    )


def _release(d: _Data) -> tuple[str, str, str, str]:
    return (
        d.pattern(
            "name",
            NAME_RE,
            "a library name (letters and underscores, ^[A-Za-z][A-Za-z_]*[A-Za-z]$)",
        ),
        d.pattern("version", VERSION_RE, "a version vX.Y.Z"),
        d.json_object("file_url"),
        d.json_object("md5"),
    )


def _deploy_libeni(d: _Data) -> ProposeDeployLibEni:
    name, version, file_url, md5 = _release(d)
    return ProposeDeployLibEni(
        name, version, file_url, md5, d.string("reason"),
        d.optional_int("deploy_timestamp"), d.optional_int("deploy_block_height"),
    )  # fmt: skip


def _retire_program(d: _Data) -> ProposeRetireProgram:
    return ProposeRetireProgram(
        d.string("preserved_validators"), d.string("reason"), d.optional_int("retired_block_height")
    )


def _upgrade_program(d: _Data) -> ProposeUpgradeProgram:
    name, version, file_url, md5 = _release(d)
    return ProposeUpgradeProgram(
        name, version, file_url, md5, d.string("reason"), d.optional_int("upgrade_block_height")
    )


def _vote(d: _Data) -> Vote:
    return Vote(d.proposal_id("proposal_id"), d.answer("answer"))


_Decoder = tuple[tuple[str, ...], tuple[str, ...], Callable[[_Data], GovernanceMsg]]
# kind -> (required fields, optional fields, decoder)
_DECODERS: Mapping[str, _Decoder] = {
    ProposeTransferFund.KIND: (("transfer_from", "transfer_to", "amount"), _EXPIRY, _transfer_fund),
    ProposeChangeParam.KIND: (("name", "value"), _EXPIRY, _change_param),
    ProposeDeployLibEni.KIND: (
        _RELEASE, ("reason", "deploy_timestamp", "deploy_block_height"), _deploy_libeni,
    ),
    ProposeRetireProgram.KIND: (
        (), ("preserved_validators", "reason", "retired_block_height"), _retire_program,
    ),
    ProposeUpgradeProgram.KIND: (_RELEASE, ("reason", "upgrade_block_height"), _upgrade_program),
    Vote.KIND: (("proposal_id", "answer"), (), _vote),
}  # fmt: skip
assert frozenset(_DECODERS) == GOVERNANCE_KINDS


def message_data(msg: GovernanceMsg) -> dict[str, object]:
    """The `data` object that parses back into `msg` (addresses 0x hex, amounts decimal
    strings, omitted optional integers left out, the proposal id in base64)."""
    data: dict[str, object] = {}
    for field in dataclasses.fields(msg):
        value = getattr(msg, field.name)
        if value is None:
            continue
        if field.name == "proposal_id":
            data[field.name] = base64.b64encode(value).decode()
        elif field.name == "answer":
            data[field.name] = "Y" if value else "N"
        elif isinstance(value, bytes):
            data[field.name] = "0x" + value.hex()
        elif field.name == "amount":
            data[field.name] = str(value)
        else:
            data[field.name] = value
    return data


def parse_governance_msg(kind: str, data: Mapping[str, object]) -> GovernanceMsg:
    """Decode the `data` object of a `governance/*` transaction (stateless checks only)."""
    entry = _DECODERS.get(kind)
    if entry is None:
        raise MalformedGovernanceTx(f"unknown governance transaction kind {kind!r}")
    required, optional, decode = entry
    return decode(_Data(kind, data, required, optional))
