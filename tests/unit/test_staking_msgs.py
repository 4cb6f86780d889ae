"""The `stake/*` messages (SPEC §5): every kind decodes to its record, every stateless refusal
is MalformedStakingTx (check_tx 1, JSON-RPC -32000) naming the field, fees follow SPEC §5, and
no JSON object whatever makes the parser raise anything but a StakingRejected."""

from __future__ import annotations

import base64
import dataclasses
from fractions import Fraction

import pytest
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cybermiles_node.staking.errors import (
    InsufficientStakingFunds,
    MalformedStakingTx,
    StakingRejected,
    StakingRuleViolation,
    UnknownCandidate,
    check_tx_code_of,
)
from cybermiles_node.staking.msgs import (
    FREE_KINDS,
    STAKING_KINDS,
    AcceptCandidacyAccountUpdate,
    ActivateCandidacy,
    DeactivateCandidacy,
    DeclareCandidacy,
    Delegate,
    SetCompRate,
    StakingMsg,
    UpdateCandidacy,
    UpdateCandidacyAccount,
    VerifyCandidacy,
    Withdraw,
    WithdrawCandidacy,
    gas_of_kind,
    parse_staking_msg,
)
from cybermiles_node.staking.records import Description
from evm.errors import InsufficientFunds, InvalidTransaction, NonceTooHigh, NonceTooLow, TxRejected
from genesis import Params

KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()
ADDR = bytes.fromhex("7eff122b94897ea5b0e2a9abf47b86337fafebdc")
ADDR_HEX = "0x" + ADDR.hex()
ADDR_EIP55 = to_checksum_address(ADDR_HEX)
CMT = 10**18

DECLARE: dict[str, object] = {
    "pub_key": KEY_B64,
    "max_amount": "10000000000000000000000",
    "comp_rate": "1/5",
}
DELEGATE: dict[str, object] = {"validator_address": ADDR_HEX, "amount": "1000"}
WITHDRAW: dict[str, object] = {"validator_address": ADDR_HEX, "amount": "0x3e8"}

# (kind, data, expected record)
VALID: list[tuple[str, dict[str, object], StakingMsg]] = [
    ("stake/declareCandidacy", DECLARE, DeclareCandidacy(KEY, 10_000 * CMT, Fraction(1, 5))),
    (
        "stake/declareCandidacy",
        {**DECLARE, "comp_rate": "0.25", "description": {"name": "n", "email": "e@x"}},
        DeclareCandidacy(KEY, 10_000 * CMT, Fraction(1, 4), Description(name="n", email="e@x")),
    ),
    ("stake/updateCandidacy", {}, UpdateCandidacy()),
    (
        "stake/updateCandidacy",
        {"pub_key": "", "max_amount": "", "comp_rate": "0", "description": {}},
        UpdateCandidacy(),
    ),
    (
        "stake/updateCandidacy",
        {
            "pub_key": KEY_B64,
            "max_amount": "0x10",
            "comp_rate": "3/10",
            "description": {"website": "w", "location": "l", "profile": "p"},
        },
        UpdateCandidacy(
            KEY, 16, Fraction(3, 10), Description(website="w", location="l", profile="p")
        ),
    ),
    ("stake/withdrawCandidacy", {}, WithdrawCandidacy()),
    ("stake/activateCandidacy", {}, ActivateCandidacy()),
    ("stake/deactivateCandidacy", {}, DeactivateCandidacy()),
    (
        "stake/verifyCandidacy",
        {"candidate_address": ADDR_EIP55, "verified": True},
        VerifyCandidacy(ADDR, True),
    ),
    ("stake/delegate", DELEGATE, Delegate(ADDR, 1000)),
    (
        "stake/delegate",
        {**DELEGATE, "cube_batch": "01", "sig": "0xABcd"},
        Delegate(ADDR, 1000, "01", "0xABcd"),
    ),
    ("stake/withdraw", WITHDRAW, Withdraw(ADDR, 1000)),
    (
        "stake/withdraw",
        {**WITHDRAW, "completely_withdraw": True},
        Withdraw(ADDR, 1000, completely_withdraw=True),
    ),
    (
        "stake/setCompRate",
        {"delegator_address": ADDR_HEX, "comp_rate": "0.1"},
        SetCompRate(ADDR, Fraction(1, 10)),
    ),
    (
        "stake/updateCandidacyAccount",
        {"new_candidate_account": ADDR_HEX},
        UpdateCandidacyAccount(ADDR),
    ),
    (
        "stake/acceptCandidacyAccountUpdate",
        {"account_update_request_id": 3},
        AcceptCandidacyAccountUpdate(3),
    ),
]


@pytest.mark.parametrize(("kind", "data", "expected"), VALID, ids=[v[0] for v in VALID])
def test_valid_messages_parse(kind: str, data: dict[str, object], expected: StakingMsg) -> None:
    msg = parse_staking_msg(kind, data)
    assert msg == expected
    assert type(msg).KIND == kind


def test_every_kind_has_a_valid_example() -> None:
    assert {kind for kind, _, _ in VALID} == STAKING_KINDS
    assert len(STAKING_KINDS) == 11


def test_messages_are_frozen() -> None:
    msg = parse_staking_msg("stake/delegate", DELEGATE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.amount = 1  # type: ignore[misc, union-attr]


# (kind, data, field the message must name or None, fragment of the message)
BAD: list[tuple[str, str, dict[str, object], str | None, str]] = [
    ("unknown kind", "stake/foo", {}, None, "unknown staking transaction kind 'stake/foo'"),
    ("governance kind", "governance/vote", {}, None, "unknown staking"),
    ("unknown field", "stake/delegate", {**DELEGATE, "amout": "1"}, "data.amout", "unknown field"),
    ("field on empty kind", "stake/activateCandidacy", {"x": 1}, "data.x", "unknown field"),
    ("missing field", "stake/delegate", {"amount": "1"}, "data.validator_address", "missing"),
    (
        "missing max",
        "stake/declareCandidacy",
        {**DECLARE, "max_amount": None},
        "data.max_amount",
        "null",
    ),
    (
        "negative amount",
        "stake/delegate",
        {**DELEGATE, "amount": "-5"},
        "data.amount",
        "non-negative",
    ),
    ("zero amount", "stake/delegate", {**DELEGATE, "amount": "0"}, "data.amount", "greater than 0"),
    (
        "zero withdraw",
        "stake/withdraw",
        {**WITHDRAW, "amount": "0x0"},
        "data.amount",
        "greater than 0",
    ),
    (
        "amount 2^256",
        "stake/withdraw",
        {**WITHDRAW, "amount": str(2**256)},
        "data.amount",
        "at most",
    ),
    (
        "amount 2^256 hex",
        "stake/delegate",
        {**DELEGATE, "amount": hex(2**256)},
        "data.amount",
        "at most",
    ),
    (
        "amount huge",
        "stake/delegate",
        {**DELEGATE, "amount": "1" * 5000},
        "data.amount",
        "too long",
    ),
    ("amount number", "stake/delegate", {**DELEGATE, "amount": 1000}, "data.amount", "as strings"),
    ("amount float", "stake/delegate", {**DELEGATE, "amount": 1e21}, "data.amount", "float"),
    (
        "amount words",
        "stake/delegate",
        {**DELEGATE, "amount": "ten"},
        "data.amount",
        "not a decimal",
    ),
    (
        "amount decimal",
        "stake/delegate",
        {**DELEGATE, "amount": "1.5"},
        "data.amount",
        "not a decimal",
    ),
    (
        "zero max",
        "stake/declareCandidacy",
        {**DECLARE, "max_amount": "0"},
        "data.max_amount",
        "greater than 0",
    ),
    (
        "zero max update",
        "stake/updateCandidacy",
        {"max_amount": "0"},
        "data.max_amount",
        "greater than 0",
    ),
    (
        "negative max update",
        "stake/updateCandidacy",
        {"max_amount": "-1"},
        "data.max_amount",
        "non-negative",
    ),
    (
        "comp_rate 0",
        "stake/declareCandidacy",
        {**DECLARE, "comp_rate": "0"},
        "data.comp_rate",
        "0 < rate < 1",
    ),
    (
        "comp_rate 1",
        "stake/declareCandidacy",
        {**DECLARE, "comp_rate": "1/1"},
        "data.comp_rate",
        "0 < rate < 1",
    ),
    (
        "comp_rate 3/2",
        "stake/declareCandidacy",
        {**DECLARE, "comp_rate": "1.5"},
        "data.comp_rate",
        "0 < rate < 1",
    ),
    (
        "comp_rate negative",
        "stake/declareCandidacy",
        {**DECLARE, "comp_rate": "-1/5"},
        "data.comp_rate",
        "non-negative",
    ),
    (
        "comp_rate 1/0",
        "stake/declareCandidacy",
        {**DECLARE, "comp_rate": "1/0"},
        "data.comp_rate",
        "zero denominator",
    ),
    (
        "comp_rate float",
        "stake/declareCandidacy",
        {**DECLARE, "comp_rate": 0.2},
        "data.comp_rate",
        "float",
    ),
    (
        "comp_rate words",
        "stake/declareCandidacy",
        {**DECLARE, "comp_rate": "a fifth"},
        "data.comp_rate",
        "not a rational",
    ),
    (
        "update comp_rate 1",
        "stake/updateCandidacy",
        {"comp_rate": "1"},
        "data.comp_rate",
        "0 <= rate < 1",
    ),
    (
        "setCompRate 0",
        "stake/setCompRate",
        {"delegator_address": ADDR_HEX, "comp_rate": "0"},
        "data.comp_rate",
        "0 < rate < 1",
    ),
    (
        "setCompRate 1",
        "stake/setCompRate",
        {"delegator_address": ADDR_HEX, "comp_rate": "1"},
        "data.comp_rate",
        "0 < rate < 1",
    ),
    (
        "pub_key not base64",
        "stake/declareCandidacy",
        {**DECLARE, "pub_key": "!!"},
        "data.pub_key",
        "not base64",
    ),
    (
        "pub_key 31 bytes",
        "stake/declareCandidacy",
        {**DECLARE, "pub_key": base64.b64encode(KEY[:31]).decode()},
        "data.pub_key",
        "32 bytes",
    ),
    (
        "pub_key 33 bytes",
        "stake/updateCandidacy",
        {"pub_key": base64.b64encode(KEY + b"x").decode()},
        "data.pub_key",
        "32 bytes",
    ),
    (
        "pub_key number",
        "stake/declareCandidacy",
        {**DECLARE, "pub_key": 5},
        "data.pub_key",
        "string",
    ),
    (
        "description not object",
        "stake/declareCandidacy",
        {**DECLARE, "description": "x"},
        "data.description",
        "object",
    ),
    (
        "description unknown",
        "stake/declareCandidacy",
        {**DECLARE, "description": {"nam": "x"}},
        "data.description.nam",
        "unknown field",
    ),
    (
        "description number",
        "stake/updateCandidacy",
        {"description": {"name": 1}},
        "data.description.name",
        "string",
    ),
    (
        "address short",
        "stake/delegate",
        {**DELEGATE, "validator_address": "0x1234"},
        "data.validator_address",
        "not an address",
    ),
    (
        "address checksum",
        "stake/verifyCandidacy",
        {"candidate_address": ADDR_EIP55.swapcase().replace("0X", "0x"), "verified": True},
        "data.candidate_address",
        "checksum",
    ),
    (
        "address number",
        "stake/withdraw",
        {**WITHDRAW, "validator_address": 1},
        "data.validator_address",
        "address string",
    ),
    (
        "verified string",
        "stake/verifyCandidacy",
        {"candidate_address": ADDR_HEX, "verified": "true"},
        "data.verified",
        "true or false",
    ),
    (
        "completely_withdraw 1",
        "stake/withdraw",
        {**WITHDRAW, "completely_withdraw": 1},
        "data.completely_withdraw",
        "true or false",
    ),
    (
        "cube_batch number",
        "stake/delegate",
        {**DELEGATE, "cube_batch": 1},
        "data.cube_batch",
        "string",
    ),
    (
        "sig not hex",
        "stake/delegate",
        {**DELEGATE, "cube_batch": "01", "sig": "xyz"},
        "data.sig",
        "not a hex",
    ),
    (
        "sig too long",
        "stake/delegate",
        {**DELEGATE, "cube_batch": "01", "sig": "a" * 1025},
        "data.sig",
        "longer than",
    ),
    (
        "zero new account",
        "stake/updateCandidacyAccount",
        {"new_candidate_account": "0x" + "00" * 20},
        "data.new_candidate_account",
        "zero address",
    ),
    (
        "request id string",
        "stake/acceptCandidacyAccountUpdate",
        {"account_update_request_id": "3"},
        "data.account_update_request_id",
        "integer",
    ),
    (
        "request id bool",
        "stake/acceptCandidacyAccountUpdate",
        {"account_update_request_id": True},
        "data.account_update_request_id",
        "integer",
    ),
    (
        "request id negative",
        "stake/acceptCandidacyAccountUpdate",
        {"account_update_request_id": -1},
        "data.account_update_request_id",
        "between",
    ),
    (
        "request id 2^63",
        "stake/acceptCandidacyAccountUpdate",
        {"account_update_request_id": 2**63},
        "data.account_update_request_id",
        "between",
    ),
]


@pytest.mark.parametrize(
    ("kind", "data", "field", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD],
)
def test_stateless_refusals(
    kind: str, data: dict[str, object], field: str | None, fragment: str
) -> None:
    with pytest.raises(MalformedStakingTx) as caught:
        parse_staking_msg(kind, data)
    error = caught.value
    assert (error.check_tx_code, error.code) == (1, -32000)
    assert error.field == field
    assert error.message.startswith(f"{kind}: " if field else "unknown staking")
    if field:
        assert field in error.message
    assert fragment in error.message


def test_update_comp_rate_zero_means_keep() -> None:
    msg = parse_staking_msg("stake/updateCandidacy", {"comp_rate": "0/7"})
    assert isinstance(msg, UpdateCandidacy) and msg.comp_rate is None


# -- fees ----------------------------------------------------------------------------------------
def test_gas_of_kind_follows_the_parameters() -> None:
    params = Params(
        declare_candidacy_gas=11,
        update_candidacy_gas=12,
        set_comp_rate_gas=13,
        update_candidate_account_gas=14,
        accept_candidate_account_update_request_gas=15,
    )
    charged = {
        "stake/declareCandidacy": 11,
        "stake/updateCandidacy": 12,
        "stake/setCompRate": 13,
        "stake/updateCandidacyAccount": 14,
        "stake/acceptCandidacyAccountUpdate": 15,
    }
    for kind in STAKING_KINDS:
        assert gas_of_kind(kind, params) == charged.get(kind, 0), kind
    assert FREE_KINDS == STAKING_KINDS - set(charged)
    assert gas_of_kind("stake/declareCandidacy", Params()) == 1_000_000
    assert gas_of_kind("stake/setCompRate", Params()) == 21_000
    with pytest.raises(MalformedStakingTx):
        gas_of_kind("stake/nope", params)


# -- the error tree ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "check_tx", "code"),
    [
        (MalformedStakingTx("m"), 1, -32000),
        (UnknownCandidate("m"), 5, 2005),
        (InsufficientStakingFunds("m"), 20, 2020),
        (StakingRuleViolation("m"), 21, 2021),
    ],
)
def test_error_codes(error: StakingRejected, check_tx: int, code: int) -> None:
    assert isinstance(error, TxRejected)
    assert (error.check_tx_code, error.code, check_tx_code_of(error)) == (check_tx, code, check_tx)


def test_check_tx_code_of_pool_refusals() -> None:
    assert check_tx_code_of(NonceTooLow("n")) == 6
    assert check_tx_code_of(NonceTooHigh("n")) == 6
    assert check_tx_code_of(InsufficientFunds("f")) == 20
    assert check_tx_code_of(InvalidTransaction("x")) == 1
    assert check_tx_code_of(TxRejected("other")) == 21


# -- property: nothing but StakingRejected ---------------------------------------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["0", "1/2", "0x10", KEY_B64, ADDR_HEX, "-1", "1/0", "", "0x", "01"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(
    [
        "pub_key", "max_amount", "comp_rate", "description", "candidate_address", "verified",
        "validator_address", "amount", "cube_batch", "sig", "completely_withdraw",
        "delegator_address", "new_candidate_account", "account_update_request_id",
    ]
) | st.text(max_size=8)  # fmt: skip


@st.composite
def kind_and_data(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """Half the time a valid example with fields dropped, replaced or added at random (so the
    decoders run deep); otherwise any kind name with any object."""
    if draw(st.booleans()):
        kind, base, _ = draw(st.sampled_from(VALID))
        dropped = draw(st.sets(st.sampled_from(sorted(base)))) if base else set()
        data = {k: v for k, v in base.items() if k not in dropped}
        data.update(draw(st.dictionaries(field_names, json_values, max_size=3)))
        return kind, data
    kind = draw(st.sampled_from(sorted(STAKING_KINDS)) | st.text(max_size=20))
    return kind, draw(st.dictionaries(field_names, json_values, max_size=5))


@settings(
    derandomize=True, max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(case=kind_and_data())
def test_random_json_raises_only_staking_rejected(case: tuple[str, dict[str, object]]) -> None:
    kind, data = case
    try:
        msg = parse_staking_msg(kind, data)
    except StakingRejected as error:
        assert error.check_tx_code == 1
        return
    assert type(msg).KIND == kind
