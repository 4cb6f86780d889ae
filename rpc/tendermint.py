"""The read-only Tendermint-style HTTP endpoint (default 127.0.0.1:26657) for validator tooling.

Routes (GET only; any other method gets 405):

```
/health                       {}  (the node is up)
/status                       {"node_info", "sync_info", "validator_info"}
/validators?height=H          the validator set that signs block H (latest when absent)
/net_info                     listeners and peers
/block?height=H               block H with its block id (latest when absent)
/commit?height=H              the signed header of block H and its commit
/consensus_state              the height, round and step consensus is at, with vote power
/                             the list of routes
```
Every answer is Tendermint-shaped JSON with HTTP 200, errors included, as Tendermint's own
URI endpoint does: `{"jsonrpc": "2.0", "id": -1, "result": ...}` or
`{"jsonrpc": "2.0", "id": -1, "error": {"code", "message", "data"}}`. A `height` that is not a
positive integer (Tendermint clients send it quoted, `height="5"`, or bare) is -32602 "Invalid
params"; a height above the chain's is -32603 "Internal error" with Tendermint's wording in `data`
("height 9 must be less than or equal to the current blockchain height 5"). An unknown path is
404 with -32601. Nothing in a path or query string can make the endpoint fail: the worst a request
gets is an error answer.

The endpoint owns only the HTTP shape. Its data comes from a `StatusSource`, which the node
implements over its block store, consensus state and peer set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

from rpc.server import GetApp, HttpResponse

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "ROUTES",
    "METHOD_NOT_FOUND",
    "StatusSource",
    "TendermintApp",
    "height_error",
]

log = logging.getLogger(__name__)

INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
METHOD_NOT_FOUND: Final = -32601
_ERROR_MESSAGES: Final = {
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    METHOD_NOT_FOUND: "Method not found",
}
MAX_HEIGHT: Final = 2**63 - 1  # heights are int64 in Tendermint; larger ones are malformed
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]

ROUTES: Final = (
    "/block?height=_",
    "/commit?height=_",
    "/consensus_state",
    "/health",
    "/net_info",
    "/status",
    "/validators?height=_",
)


class StatusSource(Protocol):
    """What the endpoint reads from the node. Values are already in Tendermint's JSON shape
    (heights, powers and priorities as decimal strings, keys and hashes as Tendermint writes
    them); the endpoint passes them through unchanged."""

    def node_info(self) -> dict[str, Any]:
        """{"id", "listen_addr", "network", "version", "moniker", "channels"}"""
        ...

    def sync_info(self) -> dict[str, Any]:
        """{"latest_block_hash", "latest_app_hash", "latest_block_height",
        "latest_block_time", "catching_up"}"""
        ...

    def validator_info(self) -> dict[str, Any]:
        """{"address", "pub_key": {"type", "value"}, "voting_power"}"""
        ...

    def validators(self, height: int | None) -> dict[str, Any]:
        """{"block_height", "validators": [{"address", "pub_key": {"type":
        "tendermint/PubKeyEd25519", "value": base64}, "voting_power": "10",
        "proposer_priority": "0"}], "count", "total"}; LookupError(message) if unknown."""
        ...

    def net_info(self) -> dict[str, Any]:
        """{"listening", "listeners", "n_peers", "peers": [...]}"""
        ...

    def block(self, height: int | None) -> dict[str, Any]:
        """{"block_id": ..., "block": {...}}; LookupError(message) if unknown."""
        ...

    def commit(self, height: int | None) -> dict[str, Any]:
        """{"signed_header": {"header", "commit"}, "canonical": true}; LookupError(message)."""
        ...

    def consensus_state(self) -> dict[str, Any]:
        """{"round_state": {"height/round/step", "proposer", "prevotes", "precommits", ...}}"""
        ...


def height_error(height: int, latest: int) -> LookupError:
    """The error a source raises for a height above its chain, in Tendermint's words."""
    return LookupError(
        f"height {height} must be less than or equal to the current blockchain height {latest}"
    )


class _ParamError(ValueError):
    """A query parameter is malformed (-32602)."""


def _parse_height(query: str) -> int | None:
    """The `height` parameter: None when absent or empty (latest), else a positive integer."""
    # keep_blank_values: `height=` means "latest", as in Tendermint, not "no such parameter".
    values = parse_qs(query, keep_blank_values=True, errors="replace").get("height")
    if not values:
        return None
    raw = values[0].strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if raw == "":
        return None
    # isdecimal admits other scripts' digits, which int() would accept; heights are ASCII.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_HEIGHT)):
        raise _ParamError(f"height must be a positive integer, got {raw[:40]!r}")
    height = int(raw)
    if height <= 0 or height > MAX_HEIGHT:
        raise _ParamError(f"height must be a positive integer, got {raw}")
    return height


def _latest_height(source: StatusSource) -> int:
    return int(source.sync_info()["latest_block_height"])


class TendermintApp(GetApp):
    """The ASGI app of the endpoint over a `StatusSource`."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source
        self._routes: dict[str, Callable[[str], Any]] = {
            "/": lambda query: {"routes": list(ROUTES)},
            "/health": lambda query: {},
            "/status": lambda query: self._status(),
            "/validators": self._validators,
            "/net_info": lambda query: self.source.net_info(),
            "/block": lambda query: self._at_height(self.source.block, query, 0),
            "/commit": lambda query: self._at_height(self.source.commit, query, 0),
            "/consensus_state": lambda query: self.source.consensus_state(),
        }

    def get(self, path: str, query: str) -> HttpResponse:
        route = self._routes.get(path)
        if route is None:
            return 404, _error(METHOD_NOT_FOUND, f"unknown path {path[:100]!r}"), _JSON_HEADERS
        try:
            return 200, _result(route(query)), _JSON_HEADERS
        except _ParamError as exc:
            return 200, _error(INVALID_PARAMS, str(exc)), _JSON_HEADERS
        except LookupError as exc:
            return 200, _error(INTERNAL_ERROR, _message(exc)), _JSON_HEADERS
        except Exception as exc:
            # A failing source is a node bug; the client gets an error and the endpoint lives on.
            log.exception("status endpoint: %s failed", path)
            return 200, _error(INTERNAL_ERROR, type(exc).__name__), _JSON_HEADERS

    def _status(self) -> dict[str, Any]:
        return {
            "node_info": self.source.node_info(),
            "sync_info": self.source.sync_info(),
            "validator_info": self.source.validator_info(),
        }

    def _validators(self, query: str) -> dict[str, Any]:
        # The set for the next height is already known (it signs the block being decided),
        # so Tendermint serves validators one height past the last block.
        return self._at_height(self.source.validators, query, 1)

    def _at_height(
        self, read: Callable[[int | None], dict[str, Any]], query: str, ahead: int
    ) -> dict[str, Any]:
        """`read(height)` after checking `height` against the chain (up to `ahead` past it)."""
        height = _parse_height(query)
        if height is not None:
            latest = _latest_height(self.source)
            if height > latest + ahead:
                raise height_error(height, latest + ahead)
        return read(height)


def _message(exc: LookupError) -> str:
    # KeyError's str() quotes its argument; the source's message is wanted verbatim.
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _result(result: Any) -> bytes:
    return _dumps({"jsonrpc": "2.0", "id": -1, "result": result})


def _error(code: int, data: str) -> bytes:
    error = {"code": code, "message": _ERROR_MESSAGES[code], "data": data}
    return _dumps({"jsonrpc": "2.0", "id": -1, "error": error})


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
