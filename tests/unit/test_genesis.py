"""Tests of the genesis package: schema round trip, strict validation, params, presets."""

from __future__ import annotations

import base64
import copy
import json
import pickle
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis import (
    CMT,
    DEV_MNEMONIC,
    PARAM_SPEC_BY_NAME,
    PRESET_CHAIN_IDS,
    TRAVIS_DEV_ADDRESSES,
    AllocAccount,
    ConsensusTimeouts,
    Genesis,
    GenesisError,
    GenesisValidator,
    ParamError,
    Params,
    change_param,
    default_params,
    dev_accounts,
    devnet_genesis,
    dump_genesis,
    dumps_genesis,
    genesis_to_json,
    load_genesis,
    loads_genesis_json,
    params_from_json,
    params_to_json,
    parse_genesis,
    parse_param,
)
from tests.shared import FIXTURES as SHARED_FIXTURES

GENESIS_TIME = 1795219200  # 2026-11-21T00:00:00Z
KEYS = [bytes([i + 1]) * 32 for i in range(3)]
OWNER0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
OWNER1 = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
CHECKSUMMED0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
HOLD = "0x" + "ff" * 20


def _devnet(**kwargs: Any) -> Genesis:
    options: dict[str, Any] = {"validator_pub_keys": KEYS[:2], "genesis_time": GENESIS_TIME}
    options.update(kwargs)
    return devnet_genesis(**options)


@pytest.fixture
def doc() -> dict[str, Any]:
    """A valid genesis JSON document (two validators) to mutate."""
    return json.loads(dumps_genesis(_devnet()))


# --- round trip ---------------------------------------------------------------------------------


def test_devnet_round_trip_is_exact() -> None:
    genesis = _devnet()
    text = dumps_genesis(genesis)
    again = parse_genesis(loads_genesis_json(text))
    assert again == genesis
    assert dumps_genesis(again) == text
    assert json.loads(text)["genesis_time"] == "2026-11-21T00:00:00Z"


def test_full_featured_round_trip(tmp_path: Path) -> None:
    base = _devnet(evm_profile="lity", gas_limit=8_000_000, network="private", accounts=3)
    contract = bytes.fromhex("00" * 19 + "42")
    alloc = dict(base.alloc)
    alloc[contract] = AllocAccount(
        balance=5, nonce=7, code=bytes.fromhex("6001600055"), storage=((0, 1), (2**255, 3))
    )
    genesis = Genesis(
        chain_id=4321,
        network="private",
        genesis_time=GENESIS_TIME,
        alloc=tuple(sorted(alloc.items())),
        validators=base.validators,
        evm_profile="lity",
        gas_limit=8_000_000,
        timeouts=ConsensusTimeouts(propose_ms=1234, commit_ms=10),
        params=change_param(Params(), "slash_ratio", "0.5"),
    )
    path = tmp_path / "genesis.json"
    dump_genesis(genesis, path)
    loaded = load_genesis(path)
    assert loaded == genesis
    assert path.read_text() == dumps_genesis(loaded)
    stored = json.loads(path.read_text())
    assert stored["alloc"]["0x" + contract.hex()]["storage"] == {
        "0x" + "00" * 32: "0x" + "00" * 31 + "01",
        "0x8" + "0" * 63: "0x" + "00" * 31 + "03",
    }
    assert stored["params"]["slash_ratio"] == "1/2"


@settings(max_examples=40, derandomize=True, deadline=None, database=None)
@given(
    balances=st.dictionaries(
        st.binary(min_size=20, max_size=20).filter(lambda a: a != b"\xff" * 20),
        st.integers(min_value=0, max_value=2**200),
        max_size=5,
    ),
    nonce=st.integers(min_value=0, max_value=2**64 - 2),
    storage=st.dictionaries(st.integers(0, 2**256 - 1), st.integers(1, 2**256 - 1), max_size=4),
    comp_rate=st.fractions(min_value=Fraction(1, 10**9), max_value=Fraction(999, 1000)),
    name=st.text(max_size=20),
)
def test_round_trip_property(
    balances: dict[bytes, int],
    nonce: int,
    storage: dict[int, int],
    comp_rate: Fraction,
    name: str,
) -> None:
    owner = bytes.fromhex(OWNER0[2:])
    accounts = {a: AllocAccount(balance=b) for a, b in balances.items()}
    accounts[owner] = AllocAccount(
        balance=10**6 * CMT, nonce=nonce, storage=tuple(sorted(storage.items()))
    )
    genesis = Genesis(
        chain_id=99,
        network="private",
        genesis_time=GENESIS_TIME,
        alloc=tuple(sorted(accounts.items())),
        validators=(
            GenesisValidator(KEYS[0], owner, 1000, 10000, comp_rate, name=name, email="a@b"),
        ),
    )
    text = dumps_genesis(genesis)
    assert parse_genesis(loads_genesis_json(text)) == genesis
    assert dumps_genesis(parse_genesis(json.loads(text))) == text


def test_input_spellings_are_accepted_and_normalised(doc: dict[str, Any]) -> None:
    doc["alloc"][CHECKSUMMED0] = doc["alloc"].pop(OWNER0)  # EIP-55 mixed case is fine
    doc["alloc"][CHECKSUMMED0]["balance"] = hex(10**24)  # 0x-hex amount
    doc["alloc"][OWNER1]["balance"] = 10**24  # JSON integer amount
    doc["alloc"][OWNER1]["storage"] = {"0x1": "0x0", "0x02": "0x" + "00" * 31 + "07"}
    doc["genesis_time"] = "2026-11-21T02:00:00.000000000+02:00"
    doc["validators"][0]["shares"] = "10000"
    doc["validators"][0]["comp_rate"] = "0.25"
    doc["params"] = {"inflation_rate": "0.08", "max_vals": "0x7"}
    doc["chain_id"] = "0x4d2"
    del doc["timeouts"], doc["evm_profile"], doc["gas_limit"]
    genesis = parse_genesis(doc)
    out = genesis_to_json(genesis)
    assert genesis.genesis_time == GENESIS_TIME
    assert genesis.chain_id == 1234
    assert genesis.account(bytes.fromhex(OWNER1[2:])) == AllocAccount(
        balance=10**24,
        storage=((2, 7),),  # the zero word is dropped
    )
    assert out["alloc"][OWNER0]["balance"] == str(10**24)  # type: ignore[index]
    assert out["validators"][0]["comp_rate"] == "1/4"  # type: ignore[index]
    assert out["params"]["inflation_rate"] == "2/25"  # type: ignore[index]
    assert out["params"]["max_vals"] == 7  # type: ignore[index]
    assert genesis.timeouts == ConsensusTimeouts()
    assert genesis.evm_profile == "cvm" and genesis.gas_limit == 30_000_000


def test_mainnet_defaults_apply_when_params_missing(doc: dict[str, Any]) -> None:
    doc.update(network="mainnet", chain_id=18, params={})
    genesis = parse_genesis(doc)
    assert (genesis.params.max_vals, genesis.params.backup_vals) == (19, 5)
    assert genesis.params.max_slash_blocks == 12
    doc.update(network="staging", chain_id=20)
    assert parse_genesis(doc).params == Params()


# --- malformed fields ---------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: object) -> Mutation:
    """Set doc[a][b]... (path "a/b/0/c") to value."""

    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


def _rename_alloc(old: str, new: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        doc["alloc"][new] = doc["alloc"].pop(old)

    return mutate


def _add_alloc(address: str, account: object) -> Mutation:
    return _set(f"alloc/{address}", account)


def _copy_validator_field(name: str) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        doc["validators"][1][name] = doc["validators"][0][name]

    return mutate


BAD_CHECKSUM = "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
SHORT_KEY = base64.b64encode(b"\x01" * 31).decode()

MALFORMED: list[tuple[str, Mutation, str, str]] = [
    # (case, mutation, expected field, fragment of the message)
    ("bad address", _rename_alloc(OWNER0, "0x1234"), "alloc.0x1234", "40 hex"),
    ("address without 0x", _rename_alloc(OWNER0, OWNER0[2:]), f"alloc.{OWNER0[2:]}", "0x"),
    ("bad checksum", _rename_alloc(OWNER0, BAD_CHECKSUM), f"alloc.{BAD_CHECKSUM}", "EIP-55"),
    (
        "same address twice",
        _add_alloc(CHECKSUMMED0, {"balance": "1"}),
        f"alloc.{OWNER0}",
        "twice",
    ),
    ("negative balance", _set(f"alloc/{OWNER1}/balance", -1), f"alloc.{OWNER1}.balance", "non-neg"),
    (
        "negative string",
        _set(f"alloc/{OWNER1}/balance", "-5"),
        f"alloc.{OWNER1}.balance",
        "non-neg",
    ),
    ("float balance", _set(f"alloc/{OWNER1}/balance", 1e24), f"alloc.{OWNER1}.balance", "float"),
    ("fractional", _set(f"alloc/{OWNER1}/balance", "1.5"), f"alloc.{OWNER1}.balance", "1.5"),
    ("bool nonce", _set(f"alloc/{OWNER1}/nonce", True), f"alloc.{OWNER1}.nonce", "boolean"),
    ("balance missing", _delete(f"alloc/{OWNER1}/balance"), f"alloc.{OWNER1}.balance", "missing"),
    ("bad code hex", _set(f"alloc/{OWNER1}/code", "0x6g"), f"alloc.{OWNER1}.code", "hex"),
    (
        "bad storage key",
        _set(f"alloc/{OWNER1}/storage", {"slot1": "0x1"}),
        f"alloc.{OWNER1}.storage.slot1",
        "hex",
    ),
    ("alloc to Hold", _add_alloc(HOLD, {"balance": "1"}), f"alloc.{HOLD}", "Hold"),
    ("unknown account key", _set(f"alloc/{OWNER1}/bal", 1), f"alloc.{OWNER1}.bal", "unknown"),
    ("unknown top-level key", _set("chainId", 5), "chainId", "did you mean 'chain_id'"),
    ("missing chain_id", _delete("chain_id"), "chain_id", "missing"),
    ("chain_id zero", _set("chain_id", 0), "chain_id", ">= 1"),
    ("chain_id too big", _set("chain_id", 2**63), "chain_id", "<="),
    ("mainnet id on devnet", _set("chain_id", 18), "chain_id", "reserved for mainnet"),
    ("empty network", _set("network", ""), "network", "name"),
    ("network not a string", _set("network", 5), "network", "string"),
    ("bad genesis_time", _set("genesis_time", "2026-11-21 00:00:00"), "genesis_time", "RFC 3339"),
    ("genesis_time number", _set("genesis_time", GENESIS_TIME), "genesis_time", "string"),
    ("fractional time", _set("genesis_time", "2026-11-21T00:00:00.5Z"), "genesis_time", "fraction"),
    ("impossible date", _set("genesis_time", "2026-02-30T00:00:00Z"), "genesis_time", "invalid"),
    ("bad evm_profile", _set("evm_profile", "evm"), "evm_profile", "lity"),
    ("gas_limit too low", _set("gas_limit", 20999), "gas_limit", ">= 21000"),
    ("timeout zero", _set("timeouts/propose_ms", 0), "timeouts.propose_ms", ">= 1"),
    ("unknown timeout", _set("timeouts/vote_ms", 1), "timeouts.vote_ms", "unknown"),
    ("unknown param", _set("params/max_validators", 3), "params.max_validators", "unknown"),
    ("bad rational", _set("params/slash_ratio", "abc"), "params.slash_ratio", "rational"),
    ("float rational", _set("params/slash_ratio", 0.5), "params.slash_ratio", "strings"),
    ("ratio above 1", _set("params/slash_ratio", "3/2"), "params.slash_ratio", "<= 1,"),
    ("zero denominator", _set("params/inflation_rate", "1/0"), "params.inflation_rate", "zero"),
    ("max_vals zero", _set("params/max_vals", 0), "params.max_vals", ">= 1"),
    ("bad bool", _set("params/slash_enabled", "yes"), "params.slash_enabled", "true or false"),
    (
        "bad foundation",
        _set("params/foundation_address", "0x12"),
        "params.foundation_address",
        "40 hex",
    ),
    ("cube keys not JSON", _set("params/cube_pub_keys", "[{"), "params.cube_pub_keys", "JSON"),
    (
        "cube key not PEM",
        _set("params/cube_pub_keys", '[{"cube_batch":"01","pub_key":"x"}]'),
        "params.cube_pub_keys",
        "PEM",
    ),
    ("no validators", _set("validators", []), "validators", "at least one"),
    ("validators not array", _set("validators", {}), "validators", "array"),
    (
        "duplicate pub_key",
        _copy_validator_field("pub_key"),
        "validators[1].pub_key",
        "validators[0]",
    ),
    ("duplicate owner", _copy_validator_field("owner"), "validators[1].owner", "already owns"),
    (
        "bad base64 pub key",
        _set("validators/0/pub_key", "not base64!"),
        "validators[0].pub_key",
        "base64",
    ),
    ("wrong key length", _set("validators/0/pub_key", SHORT_KEY), "validators[0].pub_key", "32"),
    ("bad owner", _set("validators/0/owner", "alice"), "validators[0].owner", "40 hex"),
    (
        "owner cannot fund stake",
        _set(f"alloc/{OWNER1}/balance", str(9999 * CMT)),
        "validators[1].owner",
        f"owner {OWNER1} holds {9999 * CMT} wei",
    ),
    ("owner not in alloc", _delete(f"alloc/{OWNER0}"), "validators[0].owner", "no alloc entry"),
    ("comp_rate 1", _set("validators/0/comp_rate", "1/1"), "validators[0].comp_rate", "< 1"),
    ("comp_rate 0", _set("validators/0/comp_rate", "0"), "validators[0].comp_rate", "> 0"),
    ("shares zero", _set("validators/0/shares", 0), "validators[0].shares", ">= 1"),
    (
        "shares below min",
        _set("validators/0/shares", 999),
        "validators[0].shares",
        "min_staking_amount",
    ),
    (
        "max below shares",
        _set("validators/0/max_amount", 9999),
        "validators[0].max_amount",
        ">= shares",
    ),
    (
        "self-stake ratio",
        _set("validators/0/max_amount", 100001),
        "validators[0].shares",
        "self_staking_ratio",
    ),
    (
        "unknown validator key",
        _set("validators/1/moniker", "x"),
        "validators[1].moniker",
        "unknown",
    ),
    ("name not string", _set("validators/0/name", 7), "validators[0].name", "string"),
]


@pytest.mark.parametrize(
    ("mutation", "field", "fragment"),
    [pytest.param(m, f, frag, id=case) for case, m, f, frag in MALFORMED],
)
def test_malformed_field_is_named(
    doc: dict[str, Any], mutation: Mutation, field: str, fragment: str
) -> None:
    mutation(doc)
    with pytest.raises(GenesisError) as info:
        parse_genesis(doc)
    assert info.value.field == field, str(info.value)
    assert fragment in info.value.message, str(info.value)
    assert str(info.value) == f"{field}: {info.value.message}"


def test_root_must_be_object() -> None:
    with pytest.raises(GenesisError) as info:
        parse_genesis([1, 2])
    assert info.value.field == "<genesis>"


def test_duplicate_json_key_is_named(doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=1).replace('"network":', '"chain_id": 5,\n "network":', 1)
    with pytest.raises(GenesisError) as info:
        parse_genesis(loads_genesis_json(text))
    assert (info.value.field, info.value.message) == ("chain_id", "duplicate key")


def test_nested_duplicate_json_key_is_named(doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=1).replace('"max_vals": 4', '"max_vals": 4, "max_vals": 5', 1)
    with pytest.raises(GenesisError) as info:
        parse_genesis(loads_genesis_json(text))
    assert (info.value.field, info.value.message) == ("params.max_vals", "duplicate key")


def test_mainnet_requires_its_chain_id(doc: dict[str, Any]) -> None:
    doc["network"] = "mainnet"
    with pytest.raises(GenesisError, match="network mainnet uses chain id 18") as info:
        parse_genesis(doc)
    assert info.value.field == "chain_id"


def test_genesis_built_in_code_is_validated_too() -> None:
    genesis = _devnet()
    with pytest.raises(GenesisError) as info:
        Genesis(
            chain_id=1,
            network="x",
            genesis_time=0,
            alloc=tuple(reversed(genesis.alloc)),
            validators=genesis.validators,
        )
    assert "sorted" in info.value.message


# --- files --------------------------------------------------------------------------------------


def test_invalid_json_file(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text('{\n  "chain_id": 5,\n  "network": ,\n}\n')
    with pytest.raises(GenesisError) as info:
        load_genesis(path)
    assert info.value.field == "<file>"
    assert "line 3 column 14" in info.value.message


def test_missing_file_and_nan(tmp_path: Path) -> None:
    with pytest.raises(GenesisError) as info:
        load_genesis(tmp_path / "absent.json")
    assert info.value.field == "<file>"
    (tmp_path / "nan.json").write_text('{"chain_id": NaN}')
    with pytest.raises(GenesisError, match="NaN") as info:
        load_genesis(tmp_path / "nan.json")
    assert info.value.field == "<file>"


def test_genesis_error_pickles() -> None:
    for error in (GenesisError("alloc.0x1", "bad"), ParamError("max_vals", "bad")):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error)
        assert (again.field, again.message, str(again)) == (error.field, error.message, str(error))


# --- params -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "typed", "out"),
    [
        ("slash_ratio", "0.2", Fraction(1, 5), "1/5"),
        ("inflation_rate", "8/100", Fraction(2, 25), "2/25"),
        ("self_staking_ratio", 1, Fraction(1), "1/1"),
        ("inflation_rate", "0", Fraction(0), "0/1"),
        ("max_vals", "0x10", 16, 16),
        ("gas_price", "2000000000", 2_000_000_000, 2_000_000_000),
        ("slash_enabled", "true", True, True),
        ("slash_enabled", False, False, False),
        ("foundation_address", CHECKSUMMED0, bytes.fromhex(OWNER0[2:]), OWNER0),
    ],
)
def test_parse_param_normalises(name: str, value: object, typed: object, out: object) -> None:
    parsed = parse_param(name, value)
    assert parsed == typed and type(parsed) is type(typed)
    params = change_param(Params(), name, value) if name != "foundation_address" else None
    if params is not None:
        assert params_to_json(params)[name] == out


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("max_vals", -1, "non-negative"),
        ("max_vals", "12abc", "decimal"),
        ("max_vals", 2**63, "<="),
        ("gas_price", 1.5, "float"),
        ("slash_ratio", "-1/5", "non-negative"),
        ("slash_ratio", " 1/5", "rational"),
        ("inflation_rate", "1e-3", "rational"),
        ("validator_size_threshold", "0", "> 0"),
        ("cal_vp_interval", 0, ">= 1"),
        ("cube_pub_keys", [], "string"),
        ("cube_pub_keys", "{}", "array"),
        ("nope", 1, "unknown parameter"),
    ],
)
def test_parse_param_rejects(name: str, value: object, fragment: str) -> None:
    with pytest.raises(ParamError) as info:
        parse_param(name, value)
    assert info.value.param == name
    assert info.value.field == f"params.{name}"
    assert fragment in info.value.message, str(info.value)


def test_params_json_round_trip_and_defaults() -> None:
    for network in ("mainnet", "devnet"):
        params = default_params(network)
        assert params_from_json(params_to_json(params), network=network) == params
        assert params_from_json({}, network=network) == params
    encoded = params_to_json(Params())
    assert encoded["max_vals"] == 4 and encoded["backup_vals"] == 1
    assert encoded["max_slash_blocks"] == 120
    assert encoded["foundation_address"] == "0x7eff122b94897ea5b0e2a9abf47b86337fafebdc"
    assert encoded["slash_enabled"] is False
    assert encoded["validators_block_award_ratio"] == "9/10"
    assert isinstance(encoded["cube_pub_keys"], str)
    assert list(encoded) == list(PARAM_SPEC_BY_NAME)  # SPEC §3 order
    assert PARAM_SPEC_BY_NAME["max_vals"].default_for("mainnet") == 19
    assert [s.name for s in PARAM_SPEC_BY_NAME.values() if not s.governable] == [
        "foundation_address"
    ]
    with pytest.raises(ParamError, match="governance"):
        change_param(Params(), "foundation_address", OWNER0)


def test_default_cube_pub_keys_match_fixture() -> None:
    fixture = SHARED_FIXTURES / "cube_pub_keys.json"
    assert json.loads(Params().cube_pub_keys) == json.loads(fixture.read_text())


# --- presets ------------------------------------------------------------------------------------


def test_dev_accounts() -> None:
    accounts = dev_accounts(3)
    assert "0x" + accounts[0].address.hex() == OWNER0
    assert Account.from_key(accounts[1].private_key).address == (
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    )
    Account.enable_unaudited_hdwallet_features()
    reference = Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/2")
    assert accounts[2].private_key == bytes(reference.key)
    assert dev_accounts(2) == accounts[:2] and dev_accounts(0) == []
    assert accounts[0].private_key.hex() not in repr(accounts[0])


def test_devnet_genesis_contents() -> None:
    genesis = _devnet(validator_pub_keys=KEYS)
    assert genesis.chain_id == PRESET_CHAIN_IDS["devnet"] == 1234
    assert dict(PRESET_CHAIN_IDS) == {
        "mainnet": 18,
        "testnet": 19,
        "staging": 20,
        "private": 1234,
        "devnet": 1234,
    }
    funded = {address for address, _ in genesis.alloc}
    assert funded == {a.address for a in dev_accounts(10)} | set(TRAVIS_DEV_ADDRESSES)
    assert all(account.balance == 10**6 * CMT for _, account in genesis.alloc)
    assert [v.owner for v in genesis.validators] == [a.address for a in dev_accounts(3)]
    assert genesis.validators[2] == GenesisValidator(
        KEYS[2], dev_accounts(3)[2].address, 10_000, 100_000, Fraction(1, 2), name="validator-2"
    )
    assert genesis.params == Params()


def test_devnet_genesis_too_many_validators() -> None:
    with pytest.raises(GenesisError, match="3 validators") as info:
        _devnet(validator_pub_keys=KEYS, accounts=2)
    assert info.value.field == "validators"


def test_documents_are_not_shared_between_cases(doc: dict[str, Any]) -> None:
    # Guard for the table above: mutations work on a fresh copy each time.
    before = copy.deepcopy(doc)
    parse_genesis(doc)
    assert doc == before
