"""Operator mistakes against the real `cybermiles` executable (issue #8, parts 3, 6 and 7).

Every refusal must be ONE `error:` line on stderr that names the file at fault, exit status 1,
no traceback, and the node must not have started (it never opened its chain database). The
homes are copies of one made by `cybermiles init`, with every port set to 0 so that a node that
wrongly starts cannot collide with anything.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import tomli_w

from consensus.messages import EndHeight, encode_message
from consensus.wal import frame
from cybermiles_node.operator.config import HomeLayout
from cybermiles_node.operator.devnet_home import MARKER_NAME
from genesis.presets import DEV_MNEMONIC
from genesis.schema import format_genesis_time
from tests.e2e.harness import REPO_ROOT, Devnet, cybermiles_executable, free_port, wait_for

pytestmark = pytest.mark.e2e

CLI_TIMEOUT_S = 60.0
GENESIS_AHEAD_S = 8  # start-up (imports) must fit before it, on a loaded 2-core machine
NO_PORTS = {"rpc.port": 0, "p2p.listen_port": 0, "status.port": 0, "metrics.port": 0}


def cybermiles(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cybermiles_executable()), *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )


def set_config(home: Path, values: dict[str, object]) -> None:
    path = HomeLayout(home).config_file
    body = tomllib.loads(path.read_text())
    for key, value in values.items():
        section, name = key.split(".")
        body[section][name] = value
    path.write_text(tomli_w.dumps(body))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("template") / "home"
    made = cybermiles("init", "--home", str(home))
    assert made.returncode == 0, made.stderr
    set_config(home, NO_PORTS)
    return home


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(template, copy)  # copy2: the key files keep their 0600
    return copy


def start(home: Path) -> subprocess.CompletedProcess[str]:
    return cybermiles("node", "start", "--home", str(home))


def assert_refused(result: subprocess.CompletedProcess[str], culprit: Path) -> str:
    """One `error:` line naming `culprit` on stderr, nothing else, exit 1; returns the line."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert result.returncode == 1, result.returncode
    assert lines[0].startswith("error: "), lines[0]
    assert str(culprit) in lines[0], lines[0]
    assert "node running" not in result.stdout
    return lines[0]


def assert_not_started(home: Path) -> None:
    assert not HomeLayout(home).chain_db.exists(), "the node opened its chain before refusing"


# ---------------------------------------------------------------------------- devnet homes


def test_devnet_reset_refuses_an_unmarked_directory_and_its_files_survive(tmp_path: Path) -> None:
    precious = tmp_path / "work" / "thesis.tex"
    precious.parent.mkdir()
    precious.write_text("years of work")
    line = assert_refused(
        cybermiles("devnet", "--home", str(precious.parent), "--reset"), precious.parent
    )
    assert "not a devnet home" in line
    assert precious.read_text() == "years of work"
    assert sorted(p.name for p in precious.parent.iterdir()) == ["thesis.tex"]


def test_devnet_marks_its_home_and_reset_keeps_the_users_files(
    devnet_factory: Callable[..., Devnet],
) -> None:
    net = devnet_factory(block_time=0.2)
    assert json.loads((net.home / MARKER_NAME).read_text()) == {"kind": "devnet", "version": 1}
    wait_for(lambda: net.block_number() >= 2, timeout=30, what="a few blocks")
    genesis_hash = net.result("eth_getBlockByNumber", ["0x0", False])["hash"]
    assert net.stop() == 0
    notes = net.home / "notes.txt"
    notes.write_text("mine")
    net.start(reset=True)
    # A new chain: new keys and genesis time, so a new genesis block.
    assert net.result("eth_getBlockByNumber", ["0x0", False])["hash"] != genesis_hash
    assert notes.read_text() == "mine"


def test_devnet_refuses_a_validator_home_made_by_init(home: Path) -> None:
    config_before = HomeLayout(home).config_file.read_bytes()
    line = assert_refused(cybermiles("devnet", "--home", str(home)), home)
    assert "made by `cybermiles init`" in line
    assert HomeLayout(home).config_file.read_bytes() == config_before  # not rewritten
    assert not (home / MARKER_NAME).exists()
    assert_not_started(home)


def test_devnet_reset_refuses_a_validator_home_made_by_init(home: Path) -> None:
    assert_refused(cybermiles("devnet", "--home", str(home), "--reset"), home)
    assert HomeLayout(home).validator_key_file.exists()


# ---------------------------------------------------------------------------- node start


def test_a_corrupt_wal_is_refused_with_safe_recovery_advice(home: Path) -> None:
    wal = HomeLayout(home).wal_file
    good = frame(encode_message(EndHeight(0)))
    wal.write_bytes(good + b"\x00\x00\x00\x05garbage!" + good)  # corrupt in the middle
    line = assert_refused(start(home), wal)
    assert f"mv {wal} {wal}.corrupt" in line
    assert "double signing" in line and "priv_validator_state.json in place" in line
    assert_not_started(home)


def test_a_corrupt_validator_state_is_refused(home: Path) -> None:
    state = HomeLayout(home).validator_state_file
    state.write_text('{"height": 12, "round"')
    line = assert_refused(start(home), state)
    assert "restore" in line and "Do not delete it" in line
    assert_not_started(home)


@pytest.mark.parametrize("key_file", ["node_key.json", "priv_validator_key.json"])
def test_a_key_file_readable_by_others_is_refused(home: Path, key_file: str) -> None:
    path = HomeLayout(home).config_dir / key_file
    path.chmod(0o644)
    line = assert_refused(start(home), path)
    assert line == f"error: {path} is readable by others (mode 0644); run `chmod 600 {path}`"
    assert_not_started(home)


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("rpc.host", "", "rpc.host must not be empty"),
        ("rpc.port", 70000, "rpc.port must be in 0..65535, got 70000"),
        ("p2p.persistent_peers", ["nodeid@127.0.0.1:26656"], "p2p.persistent_peers must be"),
        ("rpc.max_body_bytes", -1, "rpc.max_body_bytes must be > 0, got -1"),
        ("consensus.engine", "pow", "consensus.engine must be one of bft | automine"),
    ],
)
def test_a_bad_config_value_is_refused(home: Path, key: str, value: object, says: str) -> None:
    set_config(home, {key: value})
    config = HomeLayout(home).config_file
    line = assert_refused(start(home), config)
    assert line.startswith(f"error: {config}: {says}"), line
    assert_not_started(home)


def test_a_bad_genesis_is_refused(home: Path) -> None:
    genesis = HomeLayout(home).genesis_file
    body = json.loads(genesis.read_text())
    del body["validators"]
    genesis.write_text(json.dumps(body))
    line = assert_refused(start(home), genesis)
    assert "validators" in line
    assert_not_started(home)


# ---------------------------------------------------------------------------- init


def test_init_warns_that_the_test_mnemonic_is_public(tmp_path: Path) -> None:
    result = cybermiles("init", "--home", str(tmp_path / "n"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("WARNING: ")
    assert len(result.stderr.strip().splitlines()) == 1  # one paragraph
    assert f'"{DEV_MNEMONIC}"' in result.stderr
    assert "anyone can spend" in result.stderr and "local testing only" in result.stderr


# ---------------------------------------------------------------------------- genesis time


def head(port: int) -> int | None:
    """The node's block number, or None while its RPC does not answer."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    try:
        reply = requests.post(f"http://127.0.0.1:{port}", json=body, timeout=2)
        return int(reply.json()["result"], 16)
    except (requests.RequestException, ValueError, KeyError):
        return None


def block_timestamp(port: int, number: int) -> int:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_getBlockByNumber",
        "params": [hex(number), False],
    }
    return int(
        requests.post(f"http://127.0.0.1:{port}", json=body, timeout=5).json()["result"][
            "timestamp"
        ],
        16,
    )


def test_a_future_genesis_time_is_waited_for(home: Path, tmp_path: Path) -> None:
    port = free_port()
    set_config(home, {"rpc.port": port})
    genesis_time = int(time.time()) + GENESIS_AHEAD_S
    genesis = HomeLayout(home).genesis_file
    body = json.loads(genesis.read_text())
    body["genesis_time"] = format_genesis_time(genesis_time)
    genesis.write_text(json.dumps(body))
    log = tmp_path / "node.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(cybermiles_executable()), "node", "start", "--home", str(home)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
        )
    try:
        wait_for(lambda: head(port) is not None, timeout=GENESIS_AHEAD_S, what="RPC to answer")
        assert time.time() < genesis_time, "RPC answered only after genesis time"
        assert head(port) == 0
        waiting = f"waiting for genesis time {format_genesis_time(genesis_time)} (in "
        wait_for(lambda: waiting in log.read_text(), timeout=5, what="the waiting log line")

        wait_for(lambda: (head(port) or 0) >= 1, timeout=GENESIS_AHEAD_S + 30, what="block 1")
        assert time.time() >= genesis_time, "block 1 was decided before genesis time"
        assert block_timestamp(port, 1) >= genesis_time
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
