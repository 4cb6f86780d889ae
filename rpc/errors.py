"""JSON-RPC error objects.

Every error the RPC layer reports is an `RpcError`: an exception that carries the JSON-RPC
`code`, a human `message` and optional `data`, and turns itself into the wire form with
`to_json()`. The subclasses fix the codes of JSON-RPC 2.0 (-32700..-32603) and of the Ethereum
execution-apis (-32000..-32005); `ExecutionReverted` is geth's code 3 with the revert data as hex.

Handlers raise these; the dispatcher (`rpc.dispatch`) catches them and builds the response.
Errors from other packages need not derive from `RpcError`: any exception with an integer `code`
and a string `message` attribute (and optionally `data`) is reported the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RpcError(Exception):
    """A JSON-RPC error: `code`, `message` and optional `data`."""

    def __init__(self, code: int, message: str, data: object | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        """The JSON-RPC `error` member: {"code", "message"[, "data"]}."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r})"


class _FixedCodeError(RpcError):
    """An `RpcError` whose code is fixed by the class."""

    CODE: ClassVar[int] = -32603
    DEFAULT_MESSAGE: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, data: object | None = None) -> None:
        super().__init__(self.CODE, self.DEFAULT_MESSAGE if message is None else message, data)


class ParseError(_FixedCodeError):
    CODE = -32700
    DEFAULT_MESSAGE = "parse error"


class InvalidRequest(_FixedCodeError):
    CODE = -32600
    DEFAULT_MESSAGE = "invalid request"


class MethodNotFound(_FixedCodeError):
    CODE = -32601
    DEFAULT_MESSAGE = "method not found"


class InvalidParams(_FixedCodeError):
    CODE = -32602
    DEFAULT_MESSAGE = "invalid params"


class InternalError(_FixedCodeError):
    CODE = -32603
    DEFAULT_MESSAGE = "internal error"


class InvalidInput(_FixedCodeError):
    CODE = -32000
    DEFAULT_MESSAGE = "invalid input"


class ResourceNotFound(_FixedCodeError):
    CODE = -32001
    DEFAULT_MESSAGE = "resource not found"


class ResourceUnavailable(_FixedCodeError):
    CODE = -32002
    DEFAULT_MESSAGE = "resource unavailable"


class TransactionRejected(_FixedCodeError):
    CODE = -32003
    DEFAULT_MESSAGE = "transaction rejected"


class MethodNotSupported(_FixedCodeError):
    CODE = -32004
    DEFAULT_MESSAGE = "method not supported"


class LimitExceeded(_FixedCodeError):
    CODE = -32005
    DEFAULT_MESSAGE = "limit exceeded"


class ExecutionReverted(RpcError):
    """geth's revert error: code 3, "execution reverted[: reason]", data = revert data as hex."""

    CODE: ClassVar[int] = 3

    def __init__(self, reason: str | None = None, revert_data: bytes = b"") -> None:
        message = f"execution reverted: {reason}" if reason else "execution reverted"
        super().__init__(self.CODE, message, "0x" + bytes(revert_data).hex())
        self.reason = reason
        self.revert_data = bytes(revert_data)
