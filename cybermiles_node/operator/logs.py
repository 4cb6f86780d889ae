"""The node's log output: one line per event, as text for people or JSON for log collectors.

`configure_logging(config)` installs one stderr handler on the root logger with the format and
level of the node's `[log]` settings (`--log-level` overrides the level). With `[log] activity`
the `chain` logger's block and transaction lines (operator/activity.py) pass at info whatever
the level.

Text:  `2026-11-21T10:00:00.123Z INFO consensus: committed block height=5 txs=3`
JSON:  `{"ts": "2026-11-21T10:00:00.123Z", "level": "INFO", "logger": "consensus",
        "msg": "committed block", "height": 5, "txs": 3}`

Structured fields come from `extra={"fields": {...}}` or, shorter, `log_fields(logger, level,
msg, **fields)`; they keep the order they were given in. Timestamps are UTC with milliseconds.
An exception's traceback follows the text line (indented lines) or is the `exc` key in JSON.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import IO, Any, Final

from cybermiles_node.operator.config import LOG_FORMATS, LOG_LEVELS, ConfigError, LogConfig

__all__ = [
    "ACTIVITY_LOGGER",
    "LEVELS",
    "FORMATS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "log_fields",
]

LEVELS: Final = LOG_LEVELS
FORMATS: Final = LOG_FORMATS
_BASE_KEYS: Final = ("ts", "level", "logger", "msg", "exc")
# The per-block and per-transaction lines (operator/activity.py): at info whatever the level
# when `LogConfig.activity` is on.
ACTIVITY_LOGGER: Final = "chain"


# The last whole second formatted, as one (second, text) pair replaced whole, so a thread
# never pairs one second with another's text: a busy devnet logs thousands of lines in one
# second, and strftime was a tenth of each line's cost.
_last_second: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    global _last_second
    second, text = _last_second
    if second != int(record.created):
        second = int(record.created)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, text)
    return f"{text}.{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> Mapping[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


_NEEDS_QUOTES: Final = re.compile(r'[\s"=]')


def _text_value(value: Any) -> str:
    """A field value for a text line: bare when unambiguous, JSON-quoted when it has spaces,
    quotes or `=` (so `key=value` pairs always split back apart)."""
    if type(value) is int:  # the common case, and json.dumps(int) is str(int)
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or _NEEDS_QUOTES.search(text):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger>: <message> key=value ...`, traceback lines after it."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, f"{record.name}:", record.getMessage()]
        parts.extend(f"{k}={_text_value(v)}" for k, v in _fields(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, the fields, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            # A field may not overwrite the record's own keys; it is kept under another name.
            entry[f"field_{key}" if key in _BASE_KEYS else key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


_FORMATTERS: Final = {"text": TextFormatter, "json": JsonFormatter}


def _level(name: str) -> int:
    if name.lower() not in LEVELS:
        raise ConfigError(f"log.level: expected one of {', '.join(LEVELS)}, got {name!r}")
    return int(logging.getLevelName(name.upper()))


def configure_logging(
    config: LogConfig,
    *,
    override_level: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Route all logging to `stream` (stderr) in `config`'s format; returns the handler.

    Calling it again replaces the previous configuration (the CLI configures a default first and
    the node's own settings once its home is known). Raises ConfigError for an unknown level or
    format.
    """
    if config.format not in _FORMATTERS:
        raise ConfigError(
            f"log.format: expected one of {', '.join(FORMATS)}, got {config.format!r}"
        )
    level = _level(override_level or config.level)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_FORMATTERS[config.format]())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    activity = logging.getLogger(ACTIVITY_LOGGER)
    activity.setLevel(min(level, logging.INFO) if config.activity else logging.NOTSET)
    return handler


def log_fields(logger: logging.Logger, level: int | str, msg: str, /, **fields: Any) -> None:
    """`logger.log(level, msg)` with structured `fields` (`level` as 20 or "info"). The first
    three are positional-only, so a field may be called `msg` or `level`."""
    numeric = level if isinstance(level, int) else _level(level)
    if not logger.isEnabledFor(numeric):
        return
    # Made here rather than by logger.log, which walks the stack for the caller's file and line
    # (a fifth of a line's cost); no formatter of ours prints them.
    record = logger.makeRecord(logger.name, numeric, "", 0, msg, (), None, extra={"fields": fields})
    logger.handle(record)
