"""The `stake/*` transactions of SPEC §5 as frozen messages, with their stateless checks.

`parse_staking_msg(kind, data)` turns the envelope's `data` object (`SystemTxMessage.data`) into
one of the message classes below, or refuses with `MalformedStakingTx` naming the field
("stake/delegate: data.amount: must be non-negative, got '-5'"). It checks only what the bytes
alone decide; whatever depends on state (candidates, balances, parameters in force, the sender)
is `rules.py`'s. `gas_of_kind(kind, params)` is each kind's fee in gas (SPEC §5).

Decoding is strict, like the genesis parser, and reuses its codecs (`genesis._codec`):
- unknown fields are refused (a misspelt `completly_withdraw` must not silently mean false);
- amounts are JSON strings, decimal wei or "0x" hex (SPEC §5), 0 <= amount < 2^256; a JSON
  number is refused, because most JSON readers have already rounded a wei amount written as one;
- rationals are JSON strings, "a/b" or a decimal ("0.2"), never floats;
- addresses are "0x" + 40 hex digits, lowercase or a valid EIP-55 checksum;
- pub_key is the base64 of a 32-byte ed25519 key (the genesis decoder's rule);
- booleans are JSON booleans; the request id is a JSON integer (Travis's int64).

Field by field (omitted optional fields take the default shown):

| kind                         | fields                                | stateless checks     |
|------------------------------|---------------------------------------|----------------------|
| declareCandidacy             | pub_key, max_amount, comp_rate,       | max_amount > 0,      |
|                              | description? = {}                     | 0 < comp_rate < 1    |
| updateCandidacy              | pub_key?, max_amount?, comp_rate?,    | max_amount > 0 if    |
|                              | description? (all optional: omitted   | given; 0 <= comp_rate|
|                              | or "" keeps the value, as Travis)     | < 1                  |
| withdrawCandidacy, activate- | none: `{}`                            |                      |
| and deactivateCandidacy      |                                       |                      |
| verifyCandidacy              | candidate_address, verified           |                      |
| delegate                     | validator_address, amount,            | amount > 0; sig hex  |
|                              | cube_batch? "", sig? ""               |                      |
| withdraw                     | validator_address, amount,            | amount > 0           |
|                              | completely_withdraw? false            |                      |
| setCompRate                  | delegator_address, comp_rate          | 0 < comp_rate < 1    |
| updateCandidacyAccount       | new_candidate_account                 | not the zero address |
| acceptCandidacyAccountUpdate | account_update_request_id             | 0 <= id <= 2^63 - 1  |

In `UpdateCandidacy`, None means "keep": SPEC §6 makes comp_rate 0 mean "keep the candidate's
default", so a given "0" is also None there. Description fields are free text; in an update an
empty field keeps the old one (SPEC §6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar, TypeVar

from cybermiles_node.staking.cube import parse_cube_sig
from cybermiles_node.staking.errors import MalformedStakingTx
from cybermiles_node.staking.records import Description
from cybermiles_node.system.txdata import TxData
from genesis import (
    Params,
    parse_pub_key,
    type_name,
)

__all__ = [
    "FREE_KINDS",
    "STAKING_KINDS",
    "AcceptCandidacyAccountUpdate",
    "ActivateCandidacy",
    "DeactivateCandidacy",
    "DeclareCandidacy",
    "Delegate",
    "SetCompRate",
    "StakingMsg",
    "UpdateCandidacy",
    "UpdateCandidacyAccount",
    "VerifyCandidacy",
    "Withdraw",
    "WithdrawCandidacy",
    "gas_of_kind",
    "parse_staking_msg",
]

T = TypeVar("T")

INT64_MAX = 2**63 - 1
ZERO_ADDRESS = bytes(20)
_DESCRIPTION_FIELDS = ("name", "website", "location", "email", "profile")


# -- the messages ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeclareCandidacy:
    KIND: ClassVar[str] = "stake/declareCandidacy"
    pub_key: bytes  # 32-byte ed25519 consensus key
    max_amount: int  # wei, > 0
    comp_rate: Fraction  # 0 < comp_rate < 1
    description: Description = Description()


@dataclass(frozen=True)
class UpdateCandidacy:
    KIND: ClassVar[str] = "stake/updateCandidacy"
    pub_key: bytes | None = None  # None: keep the current key
    max_amount: int | None = None  # wei, > 0; None: keep
    comp_rate: Fraction | None = None  # 0 < comp_rate < 1; None (or "0" on the wire): keep
    description: Description = Description()  # empty fields keep the old ones


@dataclass(frozen=True)
class WithdrawCandidacy:
    KIND: ClassVar[str] = "stake/withdrawCandidacy"


@dataclass(frozen=True)
class ActivateCandidacy:
    KIND: ClassVar[str] = "stake/activateCandidacy"


@dataclass(frozen=True)
class DeactivateCandidacy:
    KIND: ClassVar[str] = "stake/deactivateCandidacy"


@dataclass(frozen=True)
class VerifyCandidacy:
    KIND: ClassVar[str] = "stake/verifyCandidacy"
    candidate_address: bytes
    verified: bool


@dataclass(frozen=True)
class Delegate:
    KIND: ClassVar[str] = "stake/delegate"
    validator_address: bytes  # the candidate's owner
    amount: int  # wei, > 0
    cube_batch: str = ""  # as given; checked against cube_pub_keys by cube.py
    sig: str = ""  # as given (hex, "0x" optional); "" = no Cube signature (source cmt_wallet)


@dataclass(frozen=True)
class Withdraw:
    KIND: ClassVar[str] = "stake/withdraw"
    validator_address: bytes
    amount: int  # wei, > 0
    completely_withdraw: bool = False


@dataclass(frozen=True)
class SetCompRate:
    KIND: ClassVar[str] = "stake/setCompRate"
    delegator_address: bytes
    comp_rate: Fraction  # 0 < comp_rate < 1


@dataclass(frozen=True)
class UpdateCandidacyAccount:
    KIND: ClassVar[str] = "stake/updateCandidacyAccount"
    new_candidate_account: bytes  # non-zero


@dataclass(frozen=True)
class AcceptCandidacyAccountUpdate:
    KIND: ClassVar[str] = "stake/acceptCandidacyAccountUpdate"
    account_update_request_id: int


StakingMsg = (
    DeclareCandidacy
    | UpdateCandidacy
    | WithdrawCandidacy
    | ActivateCandidacy
    | DeactivateCandidacy
    | VerifyCandidacy
    | Delegate
    | Withdraw
    | SetCompRate
    | UpdateCandidacyAccount
    | AcceptCandidacyAccountUpdate
)


# -- fees ----------------------------------------------------------------------------------------
_GAS_PARAM: Mapping[str, Callable[[Params], int]] = {
    DeclareCandidacy.KIND: lambda p: p.declare_candidacy_gas,
    UpdateCandidacy.KIND: lambda p: p.update_candidacy_gas,
    SetCompRate.KIND: lambda p: p.set_comp_rate_gas,
    UpdateCandidacyAccount.KIND: lambda p: p.update_candidate_account_gas,
    AcceptCandidacyAccountUpdate.KIND: lambda p: p.accept_candidate_account_update_request_gas,
}
FREE_KINDS: frozenset[str] = frozenset(
    kind.KIND
    for kind in (
        WithdrawCandidacy,
        ActivateCandidacy,
        DeactivateCandidacy,
        VerifyCandidacy,
        Delegate,
        Withdraw,
    )
)
STAKING_KINDS: frozenset[str] = frozenset(_GAS_PARAM) | FREE_KINDS


def gas_of_kind(kind: str, params: Params) -> int:
    """The gas a `kind` is charged (SPEC §5): its *_gas parameter, or 0 for the free kinds.

    The fee is this × `params.gas_price`. An unknown kind is MalformedStakingTx.
    """
    if kind in FREE_KINDS:
        return 0
    gas = _GAS_PARAM.get(kind)
    if gas is None:
        raise MalformedStakingTx(f"unknown staking transaction kind {kind!r}")
    return gas(params)


# -- decoding ------------------------------------------------------------------------------------
class _Data(TxData):
    """The `data` object of one staking kind (system/txdata.py), plus the staking fields."""

    def __init__(
        self,
        kind: str,
        data: Mapping[str, object],
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> None:
        super().__init__(MalformedStakingTx, kind, data, required, optional)

    def pub_key(self, name: str) -> bytes:
        return self._codec(name, parse_pub_key)

    def description(self, name: str) -> Description:
        value = self.data.get(name, {})
        if not isinstance(value, Mapping):
            self.fail(name, f"expected an object, got {type_name(value)}")
        for key in value:
            if key not in _DESCRIPTION_FIELDS:
                expected = ", ".join(_DESCRIPTION_FIELDS)
                self.fail(f"{name}.{key}", f"unknown field (expected {expected})")
        texts: dict[str, str] = {}
        for key in _DESCRIPTION_FIELDS:
            text = value.get(key, "")
            if not isinstance(text, str):
                self.fail(f"{name}.{key}", f"expected a string, got {type_name(text)}")
            texts[key] = text
        return Description(**texts)

    def sig(self, name: str) -> str:
        sig = self.string(name)
        if sig:
            parse_cube_sig(sig)  # the one rule for its form (cube.py)
        return sig


def _declare(d: _Data) -> DeclareCandidacy:
    return DeclareCandidacy(
        pub_key=d.pub_key("pub_key"),
        max_amount=d.amount("max_amount"),
        comp_rate=d.rate("comp_rate"),
        description=d.description("description"),
    )


def _update(d: _Data) -> UpdateCandidacy:
    def given(name: str) -> bool:
        return d.data.get(name, "") != ""

    comp_rate = d.rate("comp_rate", zero_allowed=True) if given("comp_rate") else None
    return UpdateCandidacy(
        pub_key=d.pub_key("pub_key") if given("pub_key") else None,
        max_amount=d.amount("max_amount") if given("max_amount") else None,
        comp_rate=comp_rate or None,  # SPEC §6: 0 keeps the candidate's default
        description=d.description("description"),
    )


def _verify(d: _Data) -> VerifyCandidacy:
    return VerifyCandidacy(d.address("candidate_address"), d.boolean("verified"))


def _delegate(d: _Data) -> Delegate:
    return Delegate(
        validator_address=d.address("validator_address"),
        amount=d.amount("amount"),
        cube_batch=d.string("cube_batch"),
        sig=d.sig("sig"),
    )


def _withdraw(d: _Data) -> Withdraw:
    return Withdraw(
        validator_address=d.address("validator_address"),
        amount=d.amount("amount"),
        completely_withdraw=d.boolean("completely_withdraw", False),
    )


def _set_comp_rate(d: _Data) -> SetCompRate:
    return SetCompRate(d.address("delegator_address"), d.rate("comp_rate"))


def _update_account(d: _Data) -> UpdateCandidacyAccount:
    address = d.address("new_candidate_account")
    if address == ZERO_ADDRESS:
        d.fail("new_candidate_account", "must not be the zero address")
    return UpdateCandidacyAccount(address)


def _accept_update(d: _Data) -> AcceptCandidacyAccountUpdate:
    return AcceptCandidacyAccountUpdate(d.integer("account_update_request_id"))


_DESC = ("description",)
# kind -> (required fields, optional fields, decoder)
_DECODERS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...], Callable[[_Data], StakingMsg]]] = {
    DeclareCandidacy.KIND: (("pub_key", "max_amount", "comp_rate"), _DESC, _declare),
    UpdateCandidacy.KIND: ((), ("pub_key", "max_amount", "comp_rate", *_DESC), _update),
    WithdrawCandidacy.KIND: ((), (), lambda d: WithdrawCandidacy()),
    ActivateCandidacy.KIND: ((), (), lambda d: ActivateCandidacy()),
    DeactivateCandidacy.KIND: ((), (), lambda d: DeactivateCandidacy()),
    VerifyCandidacy.KIND: (("candidate_address", "verified"), (), _verify),
    Delegate.KIND: (("validator_address", "amount"), ("cube_batch", "sig"), _delegate),
    Withdraw.KIND: (("validator_address", "amount"), ("completely_withdraw",), _withdraw),
    SetCompRate.KIND: (("delegator_address", "comp_rate"), (), _set_comp_rate),
    UpdateCandidacyAccount.KIND: (("new_candidate_account",), (), _update_account),
    AcceptCandidacyAccountUpdate.KIND: (("account_update_request_id",), (), _accept_update),
}
assert frozenset(_DECODERS) == STAKING_KINDS


def parse_staking_msg(kind: str, data: Mapping[str, object]) -> StakingMsg:
    """Decode the `data` object of a `stake/*` transaction (stateless checks only).

    Raises MalformedStakingTx (check_tx code 1) naming the field at fault.
    """
    entry = _DECODERS.get(kind)
    if entry is None:
        raise MalformedStakingTx(f"unknown staking transaction kind {kind!r}")
    required, optional, decode = entry
    return decode(_Data(kind, data, required, optional))
