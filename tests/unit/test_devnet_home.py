"""Which directories a devnet may take, and what `--reset` may delete (devnet_home.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cybermiles_node.errors import DevnetError
from cybermiles_node.operator.cli import init_home, main
from cybermiles_node.operator.config import DevnetConfig, NodeConfig, write_config
from cybermiles_node.operator.devnet import DevnetOptions, Ports, prepare_devnet
from cybermiles_node.operator.devnet_home import (
    MARKER_NAME,
    DevnetMarker,
    claim_devnet_home,
    mark,
    read_marker,
    reset_devnet_home,
    reset_targets,
)

DEVNET = DevnetMarker("devnet")
NODE = DevnetMarker("devnet-node")
OPTIONS = DevnetOptions(validators=2, ports=Ports(rpc=9100, p2p=30000, status=30001, metrics=30004))


def make_init_home(home: Path) -> None:
    init_home(home, chain_id=None, genesis_file=None, accounts=2, config=NodeConfig())


def make_legacy_single_devnet(home: Path) -> None:
    """What `cybermiles devnet` wrote before markers existed."""
    config = NodeConfig(devnet=DevnetConfig(enabled=True))
    init_home(home, chain_id=None, genesis_file=None, accounts=2, config=config)
    (home / "data" / "chain").mkdir(parents=True)


def make_legacy_multi_devnet(home: Path) -> None:
    prepare_devnet(home, OPTIONS)
    for index in range(2):
        (home / f"node{index}" / MARKER_NAME).unlink()
        (home / f"node{index}" / "node.log").write_text("log\n")
    (home / "devnet.json").write_text("{}")


# ---------------------------------------------------------------------------- claiming


def test_a_missing_directory_is_created_and_marked(tmp_path: Path) -> None:
    home = tmp_path / "a" / "devnet"
    claim_devnet_home(home)
    assert read_marker(home) == DEVNET
    assert json.loads((home / MARKER_NAME).read_text()) == {"kind": "devnet", "version": 1}


def test_an_empty_directory_is_marked(tmp_path: Path) -> None:
    claim_devnet_home(tmp_path)
    assert read_marker(tmp_path) == DEVNET


def test_an_unmarked_directory_with_files_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(DevnetError, match=r"is not empty and is not a devnet home"):
        claim_devnet_home(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_an_init_home_is_refused_in_one_line(tmp_path: Path) -> None:
    make_init_home(tmp_path)
    with pytest.raises(DevnetError) as refused:
        claim_devnet_home(tmp_path)
    assert str(refused.value).startswith(
        f"{tmp_path} is not a devnet home (made by `cybermiles init`); refusing to use it"
    )
    assert "\n" not in str(refused.value)
    assert read_marker(tmp_path) is None


def test_a_node_home_of_a_devnet_is_refused(tmp_path: Path) -> None:
    claim_devnet_home(tmp_path)
    prepare_devnet(tmp_path, OPTIONS)
    with pytest.raises(DevnetError, match="is a node home of the devnet in"):
        claim_devnet_home(tmp_path / "node0")


def test_a_file_is_not_a_home(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(DevnetError, match="is not a directory"):
        claim_devnet_home(tmp_path / "f")


@pytest.mark.parametrize(
    "content", ["", "{", '{"kind": "other", "version": 1}', '{"kind": "devnet", "version": 9}']
)
def test_a_malformed_marker_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / MARKER_NAME).write_text(content)
    with pytest.raises(DevnetError, match=re.escape(str(tmp_path / MARKER_NAME))):
        claim_devnet_home(tmp_path)


def test_a_devnet_made_before_markers_is_adopted(tmp_path: Path) -> None:
    make_legacy_single_devnet(tmp_path)
    claim_devnet_home(tmp_path)
    assert read_marker(tmp_path) == DEVNET


def test_a_multi_validator_devnet_made_before_markers_is_adopted(tmp_path: Path) -> None:
    make_legacy_multi_devnet(tmp_path)
    claim_devnet_home(tmp_path)
    assert read_marker(tmp_path) == DEVNET
    assert read_marker(tmp_path / "node0") == read_marker(tmp_path / "node1") == NODE


@pytest.mark.parametrize("extra", ["notes.txt", "node0/notes.txt", "backup"])
def test_a_devnet_like_directory_with_anything_else_is_not_adopted(
    tmp_path: Path, extra: str
) -> None:
    make_legacy_multi_devnet(tmp_path)
    (tmp_path / extra).write_text("mine")
    with pytest.raises(DevnetError, match="not a devnet home"):
        claim_devnet_home(tmp_path)
    assert read_marker(tmp_path) is None


def test_a_legacy_looking_home_whose_config_is_not_a_devnet_is_not_adopted(
    tmp_path: Path,
) -> None:
    make_legacy_single_devnet(tmp_path)
    write_config(tmp_path / "config" / "config.toml", NodeConfig())  # devnet.enabled = false
    with pytest.raises(DevnetError, match="made by `cybermiles init`"):
        claim_devnet_home(tmp_path)


# ---------------------------------------------------------------------------- --reset


def test_reset_deletes_only_what_the_devnet_wrote(tmp_path: Path) -> None:
    claim_devnet_home(tmp_path)
    prepare_devnet(tmp_path, OPTIONS)
    (tmp_path / "devnet.json").write_text("{}")
    (tmp_path / "node0" / "node.log").write_text("log\n")
    mine = [tmp_path / "notes.txt", tmp_path / "node1" / "keep.txt"]
    for path in mine:
        path.write_text("mine")
    (tmp_path / "node7").mkdir()  # named like a node home, but never marked by the devnet
    (tmp_path / "node7" / "config").mkdir()

    deleted = reset_devnet_home(tmp_path)

    assert tmp_path / "node0" / "config" in deleted
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        MARKER_NAME,
        "node1",
        "node7",
        "notes.txt",
    ]
    assert sorted(p.name for p in (tmp_path / "node1").iterdir()) == ["keep.txt"]
    assert (tmp_path / "node7" / "config").is_dir()
    assert all(path.read_text() == "mine" for path in mine)
    assert read_marker(tmp_path) == DEVNET  # still a devnet home, with the user's files


def test_reset_of_a_single_node_devnet(tmp_path: Path) -> None:
    claim_devnet_home(tmp_path)
    make_init_home(tmp_path)
    (tmp_path / "data" / "chain").mkdir(parents=True)
    assert reset_targets(tmp_path) == [tmp_path / "config", tmp_path / "data"]
    reset_devnet_home(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [MARKER_NAME]


def test_reset_deletes_a_symlink_not_its_target(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("mine")
    claim_devnet_home(home)
    (home / "data").symlink_to(elsewhere)
    reset_devnet_home(home)
    assert not (home / "data").exists() and (elsewhere / "precious").read_text() == "mine"


def test_reset_refuses_an_unmarked_or_node_home(tmp_path: Path) -> None:
    make_init_home(tmp_path / "init")
    with pytest.raises(DevnetError, match="not a marked devnet home"):
        reset_devnet_home(tmp_path / "init")
    mark(tmp_path / "node0", "devnet-node")
    with pytest.raises(DevnetError, match="not a marked devnet home"):
        reset_devnet_home(tmp_path / "node0")
    assert (tmp_path / "init" / "config" / "config.toml").exists()


# ---------------------------------------------------------------------------- the command


def test_devnet_reset_on_a_foreign_directory_refuses_and_deletes_nothing(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    result = CliRunner().invoke(main, ["devnet", "--home", str(tmp_path), "--reset"])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {tmp_path} is not empty")
    assert result.output.count("\n") == 1
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_derived_ports_beyond_65535_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    options = DevnetOptions(validators=3, ports=Ports(p2p=65520))
    with pytest.raises(DevnetError, match=r"^node0: .*@127\.0\.0\.1:65540'.*lower base ports"):
        prepare_devnet(tmp_path, options)
    assert list(tmp_path.iterdir()) == []
