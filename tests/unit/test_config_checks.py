"""Range checks of config.toml at load: every bad value is refused with the file and key named."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from cybermiles_node.operator.config import (
    CONFIG_RULES,
    ConfigError,
    NodeConfig,
    check_config,
    load_config,
    setting,
)

NODE_ID = "ab" * 20


def write(tmp_path: Path, key: str, value: object) -> Path:
    """A config.toml that sets the dotted `key` to `value` and leaves the rest at defaults."""
    section, _, name = key.rpartition(".")
    body: dict[str, object] = {name: value} if not section else {section: {name: value}}
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(body))
    return path


REFUSED = [
    # key, value, what the message says after "<file>: <key> "
    ("rpc.max_body_bytes", -1, "must be > 0, got -1"),
    ("rpc.max_body_bytes", 0, "must be > 0, got 0"),
    ("rpc.max_batch", 0, "must be > 0, got 0"),
    ("rpc.gas_cap", 0, "must be > 0, got 0"),
    ("rpc.evm_timeout", 0.0, "must be > 0, got 0.0"),
    ("rpc.evm_timeout", -5, "must be > 0, got -5"),
    ("rpc.port", 70000, "must be in 0..65535, got 70000"),
    ("rpc.port", -1, "must be in 0..65535, got -1"),
    ("p2p.listen_port", 65536, "must be in 0..65535, got 65536"),
    ("status.port", 99999, "must be in 0..65535, got 99999"),
    ("metrics.port", -80, "must be in 0..65535, got -80"),
    ("rpc.host", "", "must not be empty"),
    ("status.host", " ", "must not be empty"),
    ("metrics.host", "", "must not be empty"),
    ("p2p.listen_host", "", "must not be empty"),
    ("consensus.engine", "pow", "must be one of bft | automine, got 'pow'"),
    ("consensus.max_clock_drift_ms", 0, "must be > 0, got 0"),
    ("log.level", "loud", "must be one of debug | info | warning | error, got 'loud'"),
    ("log.format", "xml", "must be one of text | json, got 'xml'"),
    ("mempool.max_txs", 0, "must be > 0, got 0"),
    ("mempool.max_bytes", -1, "must be > 0, got -1"),
    ("mempool.max_per_sender", 0, "must be > 0, got 0"),
    ("mempool.max_nonce_gap", -1, "must be >= 0, got -1"),
    ("p2p.max_inbound", -1, "must be >= 0, got -1"),
    ("p2p.max_outbound", -3, "must be >= 0, got -3"),
    ("p2p.max_frame_bytes", 0, "must be > 0, got 0"),
    ("p2p.send_queue_size", 0, "must be > 0, got 0"),
    ("p2p.ban_seconds", -1, "must be >= 0, got -1"),
    ("devnet.block_time", -0.5, "must be >= 0, got -0.5"),
    ("devnet.batch_window_ms", -1, "must be >= 0, got -1"),
    ("devnet.accounts", 0, "must be in 1..1000, got 0"),
    ("recovery_workers", -1, "must be >= 0, got -1"),
    ("p2p.persistent_peers", ["abc@1.2.3.4:26656"], "(entry 0), got 'abc@1.2.3.4:26656'"),
    ("p2p.persistent_peers", [f"{NODE_ID}@1.2.3.4:26656", f"{NODE_ID}@host"], "(entry 1)"),
    ("p2p.persistent_peers", [f"{NODE_ID}@1.2.3.4:0"], "(entry 0)"),
    ("p2p.seeds", [f"{NODE_ID}1.2.3.4:26656"], "must be node_id@host:port"),
    ("p2p.external_address", "1.2.3.4", "must be host:port, got '1.2.3.4'"),
]


@pytest.mark.parametrize("key, value, message", REFUSED)
def test_a_bad_value_is_refused_naming_file_and_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    path = write(tmp_path, key, value)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    text = str(refused.value)
    assert text.startswith(f"{path}: {key} "), text
    assert message in text
    assert "\n" not in text


ACCEPTED = [
    ("rpc.port", 0),  # the OS picks a port
    ("rpc.port", 65535),
    ("p2p.listen_port", 0),
    ("rpc.host", "0.0.0.0"),  # every interface, said on purpose
    ("rpc.evm_timeout", 1),  # an int where a float is expected
    ("devnet.block_time", 0.0),  # automine
    ("mempool.max_nonce_gap", 0),
    ("p2p.max_inbound", 0),
    ("p2p.external_address", ""),  # not set
    ("p2p.external_address", "example.com:26656"),
    ("p2p.persistent_peers", [f"{NODE_ID}@[::1]:26656", f"{NODE_ID}@node-1.example:1"]),
    ("consensus.engine", "automine"),
    ("log.level", "WARNING"),  # configure_logging takes any case
]


@pytest.mark.parametrize("key, value", ACCEPTED)
def test_a_good_value_loads(tmp_path: Path, key: str, value: object) -> None:
    config = load_config(write(tmp_path, key, value))
    assert setting(config, key) == (tuple(value) if isinstance(value, list) else value)


def test_the_defaults_pass_every_rule() -> None:
    check_config(NodeConfig())


def test_errors_of_the_table_name_the_first_broken_setting_only() -> None:
    config = dataclasses.replace(
        NodeConfig(),
        rpc=dataclasses.replace(NodeConfig().rpc, port=-1, max_batch=0),
    )
    with pytest.raises(ConfigError, match=r"^rpc\.port must be in 0\.\.65535, got -1$"):
        check_config(config)


def leaves(obj: object, prefix: str = "") -> Iterator[tuple[str, object]]:
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def test_every_numeric_setting_has_a_range_rule() -> None:
    # A new int or float setting must get a line in CONFIG_RULES (most: POSITIVE).
    numeric = {
        key
        for key, value in leaves(NodeConfig())
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    missing = sorted(numeric - set(CONFIG_RULES))
    assert not missing, (
        f"add these to CONFIG_RULES in cybermiles_node/operator/config.py: {missing}"
    )


def test_every_rule_names_an_existing_setting() -> None:
    keys = {key for key, _ in leaves(NodeConfig())}
    assert set(CONFIG_RULES) <= keys, sorted(set(CONFIG_RULES) - keys)


def test_unknown_keys_name_the_file_too(tmp_path: Path) -> None:
    path = write(tmp_path, "rpc.max_bodybytes", 5)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: rpc.max_bodybytes: unknown")):
        load_config(path)
