"""`cybermiles export` / `cybermiles import` (cybermiles_node.operator.chain_io) on real homes.

Homes are written as `cybermiles devnet` writes them (automine) and blocks are produced in this
process through ChainApp with real signed transactions; no node process runs. The refusals:
another genesis, the other engine, a gap before or inside the file, a block that does not
validate (the blocks before it stay, none after), damaged bytes. The BFT path is covered end to
end by tests/e2e/test_chain_io.py.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.producer import DevnetProducer
from cybermiles_node.application.randomness import VrfBeacon
from cybermiles_node.node import open_chain
from cybermiles_node.operator import chain_io
from cybermiles_node.operator.chain_io import BlockRecord, ChainFileError, FileInfo
from cybermiles_node.operator.cli import init_home, main
from cybermiles_node.operator.config import (
    ConsensusConfig,
    DevnetConfig,
    HomeLayout,
    NodeConfig,
    load_config,
    write_config,
)
from cybermiles_node.operator.keys import read_key
from genesis import dev_accounts, load_genesis

SENDER = dev_accounts(2)[1]
PRICE = 2 * 10**9
CONFIG = NodeConfig(devnet=DevnetConfig(enabled=True), consensus=ConsensusConfig(engine="automine"))


def _transfer(nonce: int, chain_id: int, to: bytes = bytes([9]) * 20) -> bytes:
    fields = {
        "to": to_checksum_address(to),
        "value": 1,
        "gas": 21_000,
        "gasPrice": PRICE,
        "nonce": nonce,
        "chainId": chain_id,
    }
    return bytes(Account.sign_transaction(fields, SENDER.private_key).raw_transaction)


def _create(nonce: int, chain_id: int) -> bytes:
    fields = {
        "data": "0x60006000f3",
        "value": 0,
        "gas": 100_000,
        "gasPrice": PRICE,
        "nonce": nonce,
        "chainId": chain_id,
    }
    return bytes(Account.sign_transaction(fields, SENDER.private_key).raw_transaction)


def make_home(home: Path, blocks: int) -> tuple[bytes, bytes]:
    """A devnet home with `blocks` blocks of two transactions each; (head hash, state root)."""
    init_home(home, chain_id=1234, genesis_file=None, accounts=3, config=CONFIG)
    layout = HomeLayout(home)
    genesis = load_genesis(layout.genesis_file)
    db, chain = open_chain(layout, CONFIG, genesis)
    app = ChainApp(chain)
    producer = DevnetProducer(
        app,
        coinbase=genesis.validators[0].owner,
        key=read_key(layout.validator_key_file),
        beacon=VrfBeacon(),
        wall_clock=lambda: float(genesis.genesis_time + 10),
    )
    try:
        for n in range(blocks):
            outcomes = app.check_txs(
                [_transfer(2 * n, genesis.chain_id), _create(2 * n + 1, genesis.chain_id)]
            )
            assert not any(isinstance(o, Exception) for o in outcomes), outcomes
            producer.produce(allow_empty=False)
        return bytes(app.head.hash), bytes(app.head.state_root)
    finally:
        app.close()
        db.close()


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


def fresh_copy(source: Path, target: Path) -> Path:
    """A fresh home with the genesis and config of `source` and no blocks."""
    (target / "config").mkdir(parents=True)
    for name in ("genesis.json", "config.toml"):
        shutil.copy(source / "config" / name, target / "config" / name)
    return target


def exported(home: Path, first: int | None = None, last: int | None = None) -> bytes:
    out = io.BytesIO()
    chain_io.export_home(home, out, first, last, lambda number, total: None)
    return out.getvalue()


def imported(home: Path, data: bytes) -> int:
    _, committed = chain_io.import_home(home, io.BytesIO(data), lambda number, total: None)
    return committed


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, bytes]:
    home = tmp_path_factory.mktemp("source") / "home"
    head_hash, state_root = make_home(home, blocks=3)
    return home, head_hash, state_root


def test_round_trip_gives_the_same_head_and_state(source, tmp_path: Path) -> None:
    home, head_hash, state_root = source
    target = fresh_copy(home, tmp_path / "target")
    assert imported(target, exported(home)) == 3
    assert head_of(target) == (3, head_hash, state_root)
    assert imported(target, exported(home)) == 0  # known blocks are checked and skipped


def test_a_shorter_home_continues_and_progress_counts_every_block(source, tmp_path: Path) -> None:
    home, head_hash, _ = source
    target = fresh_copy(home, tmp_path / "target")
    assert imported(target, exported(home, 1, 2)) == 2
    seen: list[tuple[int, int]] = []
    chain_io.import_home(target, io.BytesIO(exported(home)), lambda n, t: seen.append((n, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert head_of(target)[:2] == (3, head_hash)


def test_a_gap_before_the_file_is_refused(source, tmp_path: Path) -> None:
    home, _, _ = source
    target = fresh_copy(home, tmp_path / "target")
    with pytest.raises(ChainFileError, match="gap: the file starts at block 3, .* head is block 0"):
        imported(target, exported(home, 3, 3))
    assert head_of(target)[0] == 0


def test_another_genesis_is_refused(source, tmp_path: Path) -> None:
    home, _, _ = source
    other = tmp_path / "other"
    init_home(other, chain_id=1234, genesis_file=None, accounts=3, config=CONFIG)
    with pytest.raises(ChainFileError, match="a different chain"):
        imported(other, exported(home))


def test_the_other_engine_is_refused(source, tmp_path: Path) -> None:
    home, _, _ = source
    target = fresh_copy(home, tmp_path / "target")
    config_file = HomeLayout(target).config_file
    config = load_config(config_file)
    write_config(config_file, replace(config, consensus=ConsensusConfig(engine="bft")))
    with pytest.raises(ChainFileError, match="automine blocks; this home runs bft"):
        imported(target, exported(home))


def _records(data: bytes) -> tuple[FileInfo, list[BlockRecord]]:
    stream = io.BytesIO(data)
    info = chain_io.read_info(stream)
    return info, list(chain_io.read_blocks(stream, info))


def _file(info: FileInfo, records: list[BlockRecord]) -> bytes:
    return chain_io.file_start(info) + b"".join(chain_io.block_bytes(r) for r in records)


def test_a_bad_block_stops_the_import_after_the_blocks_before_it(source, tmp_path: Path) -> None:
    home, _, _ = source
    info, records = _records(exported(home))
    # Block 2 with block 3's transactions: a well-formed record that does not execute to its
    # header.
    records[1] = replace(records[1], raw_txs=records[2].raw_txs)
    target = fresh_copy(home, tmp_path / "target")
    with pytest.raises(ChainFileError, match="block 2 is refused"):
        imported(target, _file(info, records))
    assert head_of(target)[0] == 1


def test_a_gap_inside_the_file_is_refused_after_the_blocks_before_it(
    source, tmp_path: Path
) -> None:
    home, _, _ = source
    info, records = _records(exported(home))
    target = fresh_copy(home, tmp_path / "target")
    with pytest.raises(ChainFileError, match="gap in the file: block 3 follows 1"):
        imported(target, _file(info, [records[0], records[2]]))
    assert head_of(target)[0] == 1


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: b"NOTBLOCK" + data[8:], "not a block file"),
        (lambda data: data[:8] + b"\x00\x09" + data[10:], "version 9"),
        (lambda data: data[:-5], "ends inside a record"),
        (lambda data: data[:-60] + b"\xff" * 60, "malformed record|ends inside|over"),
    ],
)
def test_damaged_files_are_refused(source, tmp_path: Path, damage, message: str) -> None:
    home, _, _ = source
    target = fresh_copy(home, tmp_path / "target")
    with pytest.raises(ChainFileError, match=message):
        imported(target, damage(exported(home)))


def test_the_commands_print_one_line_and_plain_progress(source, tmp_path: Path) -> None:
    home, head_hash, _ = source
    blocks = tmp_path / "chain.blocks"
    result = CliRunner().invoke(main, ["export", "--home", str(home), "--to", "2", str(blocks)])
    assert result.exit_code == 0, result.output
    assert "exported blocks 1..2 of chain 1234" in result.output
    target = fresh_copy(home, tmp_path / "target")
    result = CliRunner().invoke(main, ["import", "--home", str(target), str(blocks)])
    assert result.exit_code == 0, result.output
    assert f"imported blocks 1..2 of chain 1234 into {target} (2 new)" in result.output
    bad = CliRunner().invoke(main, ["export", "--home", str(home), "--to", "9", str(blocks)])
    assert bad.exit_code == 1
    assert "error: --from 1 --to 9: the home holds blocks 1..3" in bad.output
    assert not blocks.exists()  # no half-written file


def test_export_refuses_a_home_whose_node_runs(source, tmp_path: Path) -> None:
    home, _, _ = source
    layout = HomeLayout(home)
    config = load_config(layout.config_file)
    db, _chain = open_chain(layout, config, load_genesis(layout.genesis_file))  # holds the lock
    try:
        with pytest.raises(ChainFileError, match="in use by another running node"):
            exported(home)
    finally:
        db.close()
