"""`cybermiles devnet --param NAME=VALUE`: chain parameters in a new devnet's genesis.

The values are parsed by genesis.params (`parse_param_overrides`), land in the genesis of both
devnet kinds, and an existing devnet home refuses a parameter with another value than its genesis
holds. The CLI checks here stop before any node process starts (a refusal, or a bad value).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cybermiles_node.operator.cli import init_home, main
from cybermiles_node.operator.config import HomeLayout, NodeConfig
from cybermiles_node.operator.devnet import (
    DevnetError,
    DevnetOptions,
    Ports,
    node_home,
    prepare_devnet,
)
from cybermiles_node.operator.devnet_home import mark
from genesis import (
    ParamError,
    default_params,
    devnet_genesis,
    load_genesis,
    parse_param_overrides,
)

PORTS = Ports(rpc=9100, p2p=30000, status=30001, metrics=30004)
SHORT_UNSTAKE = (("unstake_waiting_period", 5), ("max_slash_blocks", 10))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_assignments_are_parsed_as_genesis_reads_parameters() -> None:
    parsed = parse_param_overrides(
        [
            "unstake_waiting_period=5",
            "self_staking_ratio=0.2",
            "slash_enabled=true",
            "foundation_address=0x77beb894fc9b0ed41231e51f128a347043960a9d",
            " max_vals = 0x7 ",
        ]
    )
    assert parsed == {
        "unstake_waiting_period": 5,
        "self_staking_ratio": Fraction(1, 5),
        "slash_enabled": True,
        "foundation_address": bytes.fromhex("77beb894fc9b0ed41231e51f128a347043960a9d"),
        "max_vals": 7,
    }
    assert parse_param_overrides([]) == {}


@pytest.mark.parametrize(
    ("assignment", "field", "words"),
    [
        ("no_such_param=1", "params.no_such_param", "unknown parameter"),
        ("max_vals=0", "params.max_vals", "must be >= 1"),
        ("unstake_waiting_period=-1", "params.unstake_waiting_period", "non-negative"),
        ("slash_enabled=yes", "params.slash_enabled", "true or false"),
        ("self_staking_ratio=3/2", "params.self_staking_ratio", "<= 1"),
        ("max_vals", "params", "expected NAME=VALUE"),
        ("=5", "params", "expected NAME=VALUE"),
    ],
)
def test_a_bad_assignment_names_the_parameter(assignment: str, field: str, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_param_overrides([assignment])
    assert f"{field}: " in str(caught.value) and words in str(caught.value)


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(ParamError, match="params.max_vals: given more than once"):
        parse_param_overrides(["max_vals=5", "max_vals=6"])


def test_devnet_genesis_takes_the_overrides_and_keeps_the_other_defaults() -> None:
    genesis = devnet_genesis(
        validator_pub_keys=[b"\x01" * 32], genesis_time=0, params=dict(SHORT_UNSTAKE)
    )
    expected = default_params("devnet")
    assert genesis.params.unstake_waiting_period == 5 and genesis.params.max_slash_blocks == 10
    assert genesis.params.max_vals == expected.max_vals
    assert genesis.params.gas_price == expected.gas_price
    with pytest.raises(ParamError, match="params.nope: unknown parameter"):
        devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=0, params={"nope": 1})


def test_a_multi_validator_devnet_writes_them_into_every_genesis(tmp_path: Path) -> None:
    prepare_devnet(tmp_path, DevnetOptions(validators=3, ports=PORTS, params=SHORT_UNSTAKE))
    for i in range(3):
        params = load_genesis(HomeLayout(node_home(tmp_path, i)).genesis_file).params
        assert (params.unstake_waiting_period, params.max_slash_blocks) == (5, 10)


def test_an_existing_devnet_keeps_its_genesis_parameters(tmp_path: Path) -> None:
    prepare_devnet(tmp_path, DevnetOptions(validators=2, ports=PORTS, params=SHORT_UNSTAKE))
    # Naming the same values, or none, continues the chain.
    prepare_devnet(tmp_path, DevnetOptions(validators=2, ports=PORTS, params=SHORT_UNSTAKE[:1]))
    prepare_devnet(tmp_path, DevnetOptions(validators=2, ports=PORTS))
    other = (("unstake_waiting_period", 7),)
    with pytest.raises(DevnetError, match="unstake_waiting_period=5; .* --reset for unstake_wai"):
        prepare_devnet(tmp_path, DevnetOptions(validators=2, ports=PORTS, params=other))


def test_cli_reports_a_bad_param_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "net"
    for args in (("--param", "max_vals=0"), ("--validators", "2", "--param", "bogus=1")):
        result = invoke("devnet", "--home", str(home), *args)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --param params."), result.output
        assert not home.exists()


def test_cli_refuses_another_value_for_an_existing_multi_validator_devnet(
    tmp_path: Path,
) -> None:
    prepare_devnet(tmp_path, DevnetOptions(validators=2, ports=PORTS, params=SHORT_UNSTAKE))
    mark(tmp_path, "devnet")
    result = invoke(
        "devnet", "--home", str(tmp_path), "--validators", "2", "--param", "max_slash_blocks=11"
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {tmp_path} holds a chain with max_slash_blocks=10; the genesis cannot change: "
        "use --reset for max_slash_blocks=11"
    )


def test_cli_refuses_another_value_for_an_existing_single_node_devnet(tmp_path: Path) -> None:
    mark(tmp_path, "devnet")
    init_home(
        tmp_path, chain_id=1234, genesis_file=None, accounts=2, config=NodeConfig(),
        params=SHORT_UNSTAKE,
    )  # fmt: skip
    assert load_genesis(HomeLayout(tmp_path).genesis_file).params.unstake_waiting_period == 5
    result = invoke("devnet", "--home", str(tmp_path), "--param", "unstake_waiting_period=6")
    assert result.exit_code == 1
    assert "holds a chain with unstake_waiting_period=5" in result.output
