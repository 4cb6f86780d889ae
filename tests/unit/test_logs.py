"""Log output (cybermiles_node.operator.logs) and the CLI's --log-level / --log-format options.

Each test configures the root logger onto a StringIO and reads back the exact lines; the fixture
restores the root logger's handlers and level afterwards.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cybermiles_node.operator.cli import main
from cybermiles_node.operator.config import ConfigError, LogConfig
from cybermiles_node.operator.logs import configure_logging, log_fields

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def capture(config: LogConfig, override_level: str | None = None) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(config, override_level=override_level, stream=stream)
    return stream


def test_text_lines_carry_time_level_logger_message_and_fields() -> None:
    out = capture(LogConfig(level="info", format="text"))
    logging.getLogger("consensus").info(
        "committed block", extra={"fields": {"height": 5, "txs": 3}}
    )
    log_fields(logging.getLogger("p2p"), "warning", "peer banned", peer="ab12", reason="bad vote")
    first, second = out.getvalue().splitlines()
    assert re.fullmatch(rf"{TS} INFO consensus: committed block height=5 txs=3", first), first
    assert re.fullmatch(rf'{TS} WARNING p2p: peer banned peer=ab12 reason="bad vote"', second)


def test_text_values_are_quoted_only_when_needed() -> None:
    out = capture(LogConfig())
    log_fields(logging.getLogger("x"), logging.INFO, "m", a="", b="k=v", c=None, d=[1, 2], e=True)
    assert out.getvalue().rstrip().endswith('m a="" b="k=v" c=null d="[1, 2]" e=true')


def test_json_lines_are_one_object_each() -> None:
    out = capture(LogConfig(format="json"))
    logging.getLogger("consensus").info("committed %s", "block", extra={"fields": {"height": 5}})
    log_fields(logging.getLogger("rpc"), "error", "odd", msg="field named msg", value=b"\x01")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert re.fullmatch(TS, first.pop("ts"))
    assert first == {"level": "INFO", "logger": "consensus", "msg": "committed block", "height": 5}
    assert second["msg"] == "odd" and second["field_msg"] == "field named msg"
    assert second["value"] == "b'\\x01'"  # not JSON-native: its str()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_exceptions_are_included(fmt: str) -> None:
    out = capture(LogConfig(format=fmt))
    try:
        raise ValueError("kaboom")
    except ValueError:
        logging.getLogger("node").exception("failed")
    text = out.getvalue()
    if fmt == "json":
        entry = json.loads(text)
        assert entry["msg"] == "failed" and "ValueError: kaboom" in entry["exc"]
    else:
        assert "node: failed\nTraceback" in text and "ValueError: kaboom" in text


def test_level_from_config_and_override() -> None:
    out = capture(LogConfig(level="warning"))
    logging.getLogger("a").info("hidden")
    logging.getLogger("a").warning("shown")
    assert "hidden" not in out.getvalue() and "shown" in out.getvalue()
    out = capture(LogConfig(level="warning"), override_level="debug")
    logging.getLogger("a").debug("now shown")
    assert "now shown" in out.getvalue()


def test_reconfiguring_replaces_the_handler() -> None:
    first = capture(LogConfig())
    second = capture(LogConfig(format="json"))
    logging.getLogger("a").warning("once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["msg"] == "once"


def test_unknown_level_or_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="log.level"):
        configure_logging(LogConfig(level="loud"))
    with pytest.raises(ConfigError, match="log.format"):
        configure_logging(LogConfig(format="xml"))


def test_cli_log_options_override_the_default(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "home"
    assert runner.invoke(main, ["init", "--home", str(home)]).exit_code == 0
    assert logging.getLogger().level == logging.WARNING  # no home config yet: quiet
    result = runner.invoke(
        main, ["--log-level", "DEBUG", "--log-format", "json", "node", "info", "--home", str(home)]
    )
    assert result.exit_code == 0, result.output
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    assert type(root.handlers[0].formatter).__name__ == "JsonFormatter"
    assert runner.invoke(main, ["--log-format", "xml", "node", "info"]).exit_code == 2
