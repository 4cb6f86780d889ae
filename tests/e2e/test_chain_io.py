"""`cybermiles export` and `cybermiles import` between real homes: a devnet (automine) and a
one-validator BFT devnet make blocks with transactions, stop, export their blocks, and a fresh
home made from the same genesis imports them: same head hash, same state root. Then the file is
tampered with and a second fresh home stops at the bad block."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from web3 import Web3

from cybermiles_node.node import open_chain
from cybermiles_node.operator.config import HomeLayout, load_config
from genesis import load_genesis
from tests.e2e.cluster import Cluster
from tests.e2e.harness import REPO_ROOT, Devnet, cybermiles_executable, wait_receipt

pytestmark = pytest.mark.e2e

INIT_EMPTY = "0x60006000f3"  # init code returning empty runtime code


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cybermiles_executable()), *args],
        capture_output=True,
        text=True,
        cwd=str(REPO_ROOT),
        timeout=120,
    )


def head_of(home: Path) -> tuple[int, bytes, bytes]:
    layout = HomeLayout(home)
    config = load_config(layout.config_file)
    db, chain = open_chain(layout, config, load_genesis(layout.genesis_file))
    try:
        head = chain.header_by_number(chain.head_number)
        assert head is not None
        return chain.head_number, bytes(head.hash), bytes(head.state_root)
    finally:
        db.close()


def fresh_home_like(source: Path, target: Path) -> Path:
    """A home with `source`'s genesis and config, and no blocks."""
    (target / "config").mkdir(parents=True)
    for name in ("genesis.json", "config.toml"):
        shutil.copy(source / "config" / name, target / "config" / name)
    return target


def send_some(w3: Web3) -> None:
    """Transfers and a contract creation through the client's default fee path."""
    sender, recipient = w3.eth.accounts[:2]
    hashes = [
        w3.eth.send_transaction({"from": sender, "to": recipient, "value": n + 1}) for n in range(3)
    ]
    hashes.append(w3.eth.send_transaction({"from": sender, "data": INIT_EMPTY}))
    for tx_hash in hashes:
        assert wait_receipt(w3, tx_hash)["status"] == 1


def round_trip(home: Path, work: Path) -> Path:
    """Export `home`, import into a fresh copy; asserts the heads match; returns the file."""
    blocks = work / "chain.blocks"
    exported = cli("export", "--home", str(home), str(blocks))
    assert exported.returncode == 0, exported.stderr
    target = fresh_home_like(home, work / "imported")
    imported = cli("import", "--home", str(target), str(blocks))
    assert imported.returncode == 0, imported.stderr
    # No terminal: plain progress lines at most, never a bar's carriage returns.
    assert "\r" not in imported.stderr
    assert head_of(target) == head_of(home)
    return blocks


def test_a_devnet_exported_and_imported_has_the_same_head_and_state(
    devnet_factory: Callable[..., Devnet], tmp_path: Path
) -> None:
    net = devnet_factory("source")
    send_some(net.w3())
    assert net.stop() == 0
    blocks = round_trip(net.home, tmp_path)
    assert head_of(net.home)[0] >= 2

    # A byte flipped inside the last block's record: the import stops there, the blocks
    # before it are committed.
    data = bytearray(blocks.read_bytes())
    data[-40] ^= 0xFF
    blocks.write_bytes(bytes(data))
    target = fresh_home_like(net.home, tmp_path / "tampered")
    result = cli("import", "--home", str(target), str(blocks))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: block ")
    assert head_of(target)[0] == head_of(net.home)[0] - 1


def test_a_bft_chain_round_trips_with_its_commits(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_factory(validators=1)
    send_some(cluster.web3(0))
    cluster.wait_height(0, cluster.height(0) + 2)
    cluster.stop()
    home = cluster.nodes[0].home
    assert load_config(HomeLayout(home).config_file).consensus.engine == "bft"
    round_trip(home, tmp_path)
