"""Start-up refusals (cybermiles_node.operator.startup), the CLI's one-line errors, the genesis
wait and the open-files limit."""

from __future__ import annotations

import json
import re
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing
from click.testing import CliRunner

from consensus.messages import EndHeight, encode_message
from consensus.wal import frame
from cybermiles_node import node as node_module
from cybermiles_node.operator.cli import init_home, main
from cybermiles_node.operator.config import HomeLayout, NodeConfig
from cybermiles_node.operator.startup import (
    StartupRefused,
    open_node_files,
    raise_open_files_limit,
    seconds_until,
)


@pytest.fixture
def layout(tmp_path: Path) -> HomeLayout:
    return init_home(
        tmp_path / "home", chain_id=None, genesis_file=None, accounts=2, config=NodeConfig()
    )


def corrupt_wal(path: Path) -> None:
    """A valid frame, garbage, a valid frame: corruption in the middle, not a torn tail."""
    good = frame(encode_message(EndHeight(0)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(good + b"\x00\x00\x00\x05garbage!" + good)


def test_a_sound_home_opens(layout: HomeLayout) -> None:
    files = open_node_files(layout, bft=True)
    try:
        assert files.consensus is not None
        assert files.genesis.chain_id == 1234
    finally:
        files.close()
    assert open_node_files(layout, bft=False).consensus is None  # automine: no WAL, no signer


def test_a_corrupt_wal_is_refused_with_safe_recovery_advice(layout: HomeLayout) -> None:
    corrupt_wal(layout.wal_file)
    with pytest.raises(StartupRefused) as refused:
        open_node_files(layout, bft=True)
    message = str(refused.value)
    assert message.startswith(f"{layout.wal_file}: WAL frame at byte")
    assert f"`mv {layout.wal_file} {layout.wal_file}.corrupt`" in message
    assert f"keeping {layout.validator_state_file} in place" in message
    assert "\n" not in message


def test_an_automine_node_does_not_read_the_wal(layout: HomeLayout) -> None:
    corrupt_wal(layout.wal_file)
    open_node_files(layout, bft=False)  # the WAL is BFT's; automine never writes one


def test_a_corrupt_validator_state_is_refused_and_never_advised_away(layout: HomeLayout) -> None:
    layout.validator_state_file.write_text('{"height": 3')
    with pytest.raises(StartupRefused) as refused:
        open_node_files(layout, bft=True)
    message = str(refused.value)
    assert message.startswith(f"{layout.validator_state_file}: not valid JSON")
    assert f"restore {layout.validator_state_file} from a backup. Do not delete it" in message


def test_a_bad_genesis_is_refused_naming_the_file(layout: HomeLayout) -> None:
    layout.genesis_file.write_text(json.dumps({"chain_id": 1}))
    with pytest.raises(StartupRefused, match=f"^{re.escape(str(layout.genesis_file))}: "):
        open_node_files(layout, bft=False)


@pytest.mark.parametrize(
    "moment, now, wait", [(100.0, 97.5, 2.5), (100.0, 100.0, 0.0), (100.0, 250.0, 0.0)]
)
def test_seconds_until(moment: float, now: float, wait: float) -> None:
    assert seconds_until(moment, now) == wait


def test_the_node_sleeps_until_genesis_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    wall_at_start = 1_000_000.0
    monkeypatch.setattr(node_module.time, "time", lambda: wall_at_start + trio.current_time())

    async def wait() -> float:
        started = trio.current_time()
        await node_module.wait_for_genesis(int(wall_at_start) + 42)
        return trio.current_time() - started

    assert trio.run(wait, clock=clock) == pytest.approx(42.0)
    assert trio.run(lambda: node_module.wait_for_genesis(0), clock=clock) is None  # the past


@pytest.fixture
def low_soft_nofile() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, hard, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(low_soft_nofile: int) -> None:
    limit = raise_open_files_limit()
    assert limit.before <= 256
    expected = low_soft_nofile if low_soft_nofile != resource.RLIM_INFINITY else limit.after
    assert limit.after == expected == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------- the CLI


def test_a_refusal_is_one_error_line_and_exit_1(
    layout: HomeLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*args: object, **kwargs: object) -> None:
        raise StartupRefused("/h/data/cs.wal: corrupt; move it aside")

    monkeypatch.setattr(node_module, "run_node", refuse)
    result = CliRunner().invoke(main, ["node", "start", "--home", str(layout.home)])
    assert result.exit_code == 1
    assert result.output == "error: /h/data/cs.wal: corrupt; move it aside\n"


def test_a_bug_keeps_its_traceback(layout: HomeLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    async def crash(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(node_module, "run_node", crash)
    result = CliRunner().invoke(main, ["node", "start", "--home", str(layout.home)])
    assert isinstance(result.exception, KeyError)  # re-raised, not turned into "error: ..."
