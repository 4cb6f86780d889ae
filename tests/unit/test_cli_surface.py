"""The first contact with the command: what `cybermiles` loads to answer --help, --version, and
which flags `devnet --help` lists. Speed itself is measured by benchmarks/devnet_ux.py; what is
checked here is the cause of a slow --help: a heavy package imported with the CLI module."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from click.testing import CliRunner

from cybermiles_node.operator.cli import DISTRIBUTION, LogOverrides, main
from cybermiles_node.operator.config import LogConfig

# Packages that take tenths of a second to import: none may load with the CLI module.
HEAVY = (
    "trio",
    "eth",
    "eth_utils",
    "eth_account",
    "eth_abi",
    "py_ecc",
    "hypercorn",
    "rlp",
    "trie",
    "plyvel",
    "coincurve",
    "genesis",
    "consensus",
    "p2p",
    "rpc",
    "evm.executor",
    "cybermiles_node.node",
    "cybermiles_node.application",
)


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules for h in HEAVY if m == h or m.startswith(h + "."))


def test_importing_the_cli_loads_no_heavy_package() -> None:
    assert _heavy(_modules_after("import cybermiles_node.operator.cli")) == []


def test_help_and_version_run_without_heavy_packages() -> None:
    for argv in (["--help"], ["--version"], ["devnet", "--help"], ["node", "start", "--help"]):
        code = (
            "from cybermiles_node.operator.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass"
        )
        assert _heavy(_modules_after(code)) == [], argv


def test_version_is_the_installed_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"cybermiles {version(DISTRIBUTION)}\n"


@pytest.mark.parametrize("command", [["devnet"], ["node", "start"]])
def test_node_commands_list_the_log_flags(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    for flag in ("--log-level", "--log-format", "--quiet"):
        assert flag in result.output


def test_log_overrides_keep_the_home_settings_they_do_not_name() -> None:
    home = LogConfig(level="warning", format="json", activity=True)
    assert LogOverrides().apply(home) == home
    assert LogOverrides(level="debug").apply(home) == LogConfig("debug", "json", True)
    assert LogOverrides(quiet=True).apply(home) == LogConfig("warning", "json", False)
    # --quiet never turns the lines on for a home that has them off.
    assert LogOverrides(quiet=None).apply(LogConfig()).activity is False


def test_a_bad_log_level_on_devnet_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["devnet", "--log-level", "loud"])
    assert result.exit_code == 2
    assert "--log-level" in result.output
