"""Transport-agnostic JSON-RPC 2.0 dispatch.

`Dispatcher.handle(payload, session)` takes the raw bytes of one JSON-RPC message (a request, a
notification or a batch) and returns the raw bytes of the response, or None when nothing must be
sent (notifications). The HTTP and WebSocket transports (`rpc.server`) and in-process callers all
go through it; it knows nothing about sockets.

Handlers are plain functions (sync or async) registered by method name. They take the request's
positional params as positional arguments; the signature is inspected once at registration, so
missing or surplus arguments are answered with -32602 before the handler runs (trailing arguments
with defaults are optional). Trailing nulls beyond what a handler takes are dropped first, as
web3-cmt.js pads params with nulls up to the arity it declares; a surplus non-null value is
still -32602. Params given as a JSON object are passed as one dict argument, but
only to methods registered with `named_params=True` (Ethereum methods take arrays). A handler
registered with `wants_session=True` receives the `Session` (None over HTTP) first.

Ids are echoed with their JSON type and value (numbers of any size, floats, strings, null);
an id of another type (bool, array, object, a non-finite number) is -32600 with a null id.

Errors never escape `handle`: a handler's `RpcError`, or any exception with an int `code` and a
str `message` (duck-typed, e.g. the node's `TxRejected`), is reported with its own code, message
and data; any other exception becomes -32603 "internal error" (exception type in `data`) and is
logged with its traceback. The exception types in `fatal` are the one exception: they propagate,
so the node can stop on a broken invariant.

Batches run their calls one after another, in order, yielding to the event loop every few
milliseconds, under a `BatchBudget` (rpc.budget: cost units per method and a time budget): from
the first call that does not fit, the rest of the batch is answered with -32005 and not run.
A method may also register a `batch` handler that receives all of its calls in one
batch at once (e.g. eth_sendRawTransaction, to recover signatures in one pool round trip); the
JSON-RPC spec allows a server to process batch members in any order, and responses keep the
request order regardless. Should a batch handler raise, each of its calls is run again alone
through the single handler: one bad entry is never its neighbours' error.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, Final

import trio

from rpc.budget import DEFAULT_BATCH_BUDGET, BatchBudget, BatchMeter
from rpc.errors import (
    InternalError,
    InvalidParams,
    InvalidRequest,
    LimitExceeded,
    MethodNotFound,
    ParseError,
    RpcError,
)
from rpc.session import Session

__all__ = ["BatchHandler", "Dispatcher", "Handler", "Session"]

log = logging.getLogger(__name__)

Handler = Callable[..., Any]
"""A method implementation: `f(*params)` or `f(session, *params)`, sync or async."""

BatchHandler = Callable[..., Any]
"""`f(calls)` or `f(session, calls)` (sync or async): `calls` is a list of positional-param
lists, already checked against the single handler's signature; returns one result or exception
instance per call, in order."""

_NO_PARAMS: Final[list[Any]] = []
_UNBOUNDED: Final = sys.maxsize
_YIELD_EVERY_S: Final = 0.005


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_json_decode = json.JSONDecoder(parse_constant=_reject_constant).decode

# py-evm raises the interpreter's recursion limit to 100,000 (EVM call depth needs it). json's
# C decoder recurses on the C stack up to that limit, so a hostile "[[[[..." body would
# overflow it and crash the process. Decoding runs under a small limit instead: no
# JSON-RPC request nests anywhere near this deep.
_MAX_JSON_RECURSION: Final = 2000


def _decode(text: str) -> Any:
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(min(previous, _MAX_JSON_RECURSION))
    try:
        return _json_decode(text)
    finally:
        sys.setrecursionlimit(previous)


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _error_bytes(error: RpcError, rid: object = None) -> bytes:
    return _encode({"jsonrpc": "2.0", "id": rid, "error": error.to_json()}).encode()


_PARSE_ERROR: Final = _error_bytes(ParseError("parse error"))
_EMPTY_BATCH: Final = _error_bytes(InvalidRequest("empty batch"))


@dataclass(slots=True, frozen=True)
class _Method:
    name: str
    func: Handler
    is_async: bool
    wants_session: bool
    named_params: bool
    min_args: int
    max_args: int
    batch: BatchHandler | None


# A request that passed validation: (method, positional args, id, has_id).
_Call = tuple[_Method, Sequence[Any], Any, bool]


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    # A callable object whose __call__ is async.
    return not inspect.isroutine(func) and inspect.iscoroutinefunction(type(func).__call__)


def _arity(func: Callable[..., Any], wants_session: bool) -> tuple[int, int]:
    """(required, maximum) number of positional JSON params `func` takes."""
    params = list(inspect.signature(func).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if wants_session:
        if not params or params[0].kind not in positional + (inspect.Parameter.VAR_POSITIONAL,):
            raise TypeError(f"{func!r} wants a session but takes no positional argument")
        if params[0].kind in positional:
            params = params[1:]
    required = maximum = 0
    for p in params:
        if p.kind in positional:
            maximum += 1
            if p.default is inspect.Parameter.empty:
                required = maximum
        elif p.kind is inspect.Parameter.VAR_POSITIONAL:
            maximum = _UNBOUNDED
        elif p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty:
            raise TypeError(f"{func!r} has a required keyword-only argument {p.name!r}")
    return required, maximum


def _valid_id(rid: object) -> bool:
    t = type(rid)
    if t is float:
        return math.isfinite(rid)  # type: ignore[arg-type]  # 1e999 parses as inf
    return t is str or t is int or rid is None


class Dispatcher:
    """A registry of JSON-RPC methods and the JSON-RPC 2.0 request/response machinery."""

    def __init__(
        self,
        max_batch: int = 1000,
        max_response_bytes: int = 25 * 2**20,
        *,
        fatal: tuple[type[BaseException], ...] = (),
        batch_budget: BatchBudget = DEFAULT_BATCH_BUDGET,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.max_batch = max_batch
        self.max_response_bytes = max_response_bytes
        self.fatal = fatal
        self.batch_budget = batch_budget
        self._clock = clock
        self._methods: dict[str, _Method] = {}
        self.requests_handled = 0  # JSON-RPC messages answered (a batch counts once), for metrics

    # -- registry -------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        handler: Handler,
        *,
        wants_session: bool = False,
        named_params: bool = False,
        batch: BatchHandler | None = None,
    ) -> None:
        """Serve `name` with `handler` (replacing any previous handler of that name)."""
        required, maximum = _arity(handler, wants_session)
        self._methods[name] = _Method(
            name=name,
            func=handler,
            is_async=_is_async(handler),
            wants_session=wants_session,
            named_params=named_params,
            min_args=required,
            max_args=maximum,
            batch=batch,
        )

    def unregister(self, name: str) -> bool:
        return self._methods.pop(name, None) is not None

    def methods(self) -> list[str]:
        """The registered method names, sorted."""
        return sorted(self._methods)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    # -- handling -------------------------------------------------------------------------------

    async def handle(self, payload: bytes | str, session: Session | None) -> bytes | None:
        """Answer one JSON-RPC message; None when no response is due (only notifications)."""
        self.requests_handled += 1
        try:
            text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
            request = _decode(text)
        except (ValueError, RecursionError, TypeError, AttributeError):
            return _PARSE_ERROR
        try:
            if type(request) is list:
                if not request:
                    return _EMPTY_BATCH
                if len(request) > self.max_batch:
                    return _error_bytes(
                        LimitExceeded(f"batch too large (limit {self.max_batch} requests)")
                    )
                responses = await self._handle_batch(request, session)
                return self._encode_batch(responses) if responses else None
            prepared = self._prepare(request)
            if prepared is None:
                return None
            if isinstance(prepared, dict):
                return self._encode_one(prepared)
            method, args, rid, has_id = prepared
            response = await self._execute(method, args, rid, has_id, session)
            return None if response is None else self._encode_one(response)
        except Exception as exc:  # a bug of ours; handler errors never get here
            if self.fatal and isinstance(exc, self.fatal):
                raise
            log.exception("JSON-RPC dispatch failed")
            return _error_bytes(InternalError("internal error", type(exc).__name__))

    def _prepare(self, request: object) -> _Call | dict[str, Any] | None:
        """Validate one request object: a ready call, an error response, or None (a
        notification that cannot be executed: it gets no response)."""
        if type(request) is not dict:
            return _error_response(None, InvalidRequest("invalid request: not an object"))
        has_id = "id" in request
        rid = request.get("id")
        if has_id and not _valid_id(rid):
            return _error_response(None, InvalidRequest("invalid request: invalid id"))
        if request.get("jsonrpc") != "2.0":
            return _error_response(rid, InvalidRequest('invalid request: jsonrpc must be "2.0"'))
        name = request.get("method")
        if type(name) is not str:
            return _error_response(rid, InvalidRequest("invalid request: method must be a string"))
        params = request.get("params", _NO_PARAMS)
        if params is None:
            params = _NO_PARAMS
        elif type(params) is not list and type(params) is not dict:
            return _error_response(
                rid, InvalidRequest("invalid request: params must be an array or an object")
            )
        method = self._methods.get(name)
        if method is None:
            if not has_id:
                return None  # a notification gets no response, not even an error
            return _error_response(
                rid, MethodNotFound(f"the method {name} does not exist/is not available")
            )
        if type(params) is dict:
            if not method.named_params:
                if not has_id:
                    return None
                return _error_response(
                    rid, InvalidParams(f"invalid params: {name} takes an array of params")
                )
            params = [params]
        if len(params) > method.max_args:
            params = _without_surplus_nulls(params, method.max_args)
        n = len(params)
        if not has_id and (n < method.min_args or n > method.max_args):
            return None
        if n < method.min_args:
            return _error_response(rid, InvalidParams(f"missing value for required argument {n}"))
        if n > method.max_args:
            return _error_response(
                rid, InvalidParams(f"too many arguments, want at most {method.max_args}")
            )
        return (method, params, rid, has_id)

    async def _execute(
        self,
        method: _Method,
        args: Sequence[Any],
        rid: Any,
        has_id: bool,
        session: Session | None,
    ) -> dict[str, Any] | None:
        try:
            if method.wants_session:
                result = method.func(session, *args)
            else:
                result = method.func(*args)
            if method.is_async or type(result) is CoroutineType:
                result = await result
        except Exception as exc:
            if self.fatal and isinstance(exc, self.fatal):
                raise
            error = self._to_rpc_error(exc, method.name)
            return _error_response(rid, error) if has_id else None
        if not has_id:
            return None
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    async def _handle_batch(
        self, requests: list[Any], session: Session | None
    ) -> list[dict[str, Any]]:
        prepared = [self._prepare(r) for r in requests]
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(prepared):
            if isinstance(p, tuple) and p[0].batch is not None:
                groups.setdefault(p[0].name, []).append(i)
        results: list[dict[str, Any] | None] = [None] * len(prepared)
        meter = BatchMeter(self.batch_budget, self._clock)
        last_yield = time.perf_counter()
        for i, p in enumerate(prepared):
            if p is None or isinstance(p, dict):
                results[i] = p
                continue
            method, args, rid, has_id = p
            group = groups.get(method.name) if method.batch is not None else None
            members = group if group is not None and len(group) > 1 else [i]
            if members[0] != i:
                continue  # answered with its group, at the group's first member
            refusal = meter.refusal(method.name, len(members))
            if refusal is not None:
                for j in members:
                    results[j] = _refused(prepared[j], refusal)
            elif len(members) > 1:
                await self._execute_group(method, members, prepared, results, session)
            else:
                results[i] = await self._execute(method, args, rid, has_id, session)
            now = time.perf_counter()
            if now - last_yield > _YIELD_EVERY_S:
                await trio.lowlevel.checkpoint()
                last_yield = time.perf_counter()
        return [r for r in results if r is not None]

    async def _execute_group(
        self,
        method: _Method,
        indices: list[int],
        prepared: list[_Call | dict[str, Any] | None],
        results: list[dict[str, Any] | None],
        session: Session | None,
    ) -> None:
        calls: list[_Call] = [prepared[i] for i in indices]  # type: ignore[misc]
        outcomes = await self._run_batch_handler(method, calls, session)
        if outcomes is None:
            # The batch form failed as a whole: answer each call on its own, so whatever one
            # entry triggered is that entry's error and never its neighbours'.
            for i, (_, args, rid, has_id) in zip(indices, calls, strict=True):
                results[i] = await self._execute(method, args, rid, has_id, session)
            return
        for i, (_, _, rid, has_id), outcome in zip(indices, calls, outcomes, strict=True):
            if not has_id:
                continue
            if isinstance(outcome, BaseException):
                if self.fatal and isinstance(outcome, self.fatal):
                    raise outcome
                error = (
                    outcome
                    if isinstance(outcome, RpcError)
                    else self._to_rpc_error(outcome, method.name)
                )
                results[i] = _error_response(rid, error)
            else:
                results[i] = {"jsonrpc": "2.0", "id": rid, "result": outcome}

    async def _run_batch_handler(
        self, method: _Method, calls: list[_Call], session: Session | None
    ) -> list[Any] | None:
        """One result or exception per call, or None when the batch handler itself failed."""
        assert method.batch is not None
        arg_lists = [list(c[1]) for c in calls]
        try:
            if method.wants_session:
                out = method.batch(session, arg_lists)
            else:
                out = method.batch(arg_lists)
            if inspect.isawaitable(out):
                out = await out
            outcomes = list(out)
            if len(outcomes) != len(calls):
                raise ValueError(
                    f"batch handler returned {len(outcomes)} results for {len(calls)} calls"
                )
        except Exception as exc:
            if self.fatal and isinstance(exc, self.fatal):
                raise
            log.error("batch handler of %s failed", method.name, exc_info=exc)
            return None
        return outcomes

    @staticmethod
    def _to_rpc_error(exc: BaseException, method: str) -> RpcError:
        if isinstance(exc, RpcError):
            return exc
        code = getattr(exc, "code", None)
        message = getattr(exc, "message", None)
        if type(code) is int and isinstance(message, str):
            return RpcError(code, message, getattr(exc, "data", None))
        log.error("RPC method %s failed", method, exc_info=exc)
        return InternalError("internal error", type(exc).__name__)

    # -- encoding -------------------------------------------------------------------------------

    def _encode_one(self, response: dict[str, Any]) -> bytes:
        text = self._encode_item(response)
        if len(text) > self.max_response_bytes:
            text = _encode(_too_large(response.get("id"), self.max_response_bytes))
        return text.encode()

    def _encode_item(self, response: dict[str, Any]) -> str:
        try:
            return _encode(response)
        except (TypeError, ValueError, RecursionError) as exc:
            log.error("RPC response is not JSON-serialisable", exc_info=exc)
            error = InternalError("internal error", f"unserialisable result: {type(exc).__name__}")
            try:
                return _encode(_error_response(response.get("id"), error))
            except (TypeError, ValueError):
                return _encode(_error_response(None, error))

    def _encode_batch(self, responses: list[dict[str, Any]]) -> bytes:
        try:
            text = _encode(responses)
        except (TypeError, ValueError, RecursionError):
            pass
        else:
            if len(text) <= self.max_response_bytes:
                return text.encode()
        # Slow path: encode item by item, replacing what does not fit (as geth does).
        parts: list[str] = []
        total = 2
        limit = self.max_response_bytes
        for response in responses:
            part = self._encode_item(response) if total <= limit else ""
            if not part or total + len(part) + 1 > limit:
                part = _encode(_too_large(response.get("id"), limit))
                total = limit + 1
            else:
                total += len(part) + 1
            parts.append(part)
        return ("[" + ",".join(parts) + "]").encode()


def _without_surplus_nulls(params: list[Any], keep: int) -> list[Any]:
    """`params` without the trailing nulls past its first `keep` values (web3-cmt.js pads a
    call with nulls up to the arity it declares, which may exceed the handler's)."""
    end = len(params)
    while end > keep and params[end - 1] is None:
        end -= 1
    return params[:end]


def _error_response(rid: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": error.to_json()}


def _refused(call: _Call | dict[str, Any] | None, error: RpcError) -> dict[str, Any] | None:
    """The answer to a batch member that was not run: `error`, unless it is a notification."""
    assert isinstance(call, tuple)
    _, _, rid, has_id = call
    return _error_response(rid, error) if has_id else None


def _too_large(rid: Any, limit: int) -> dict[str, Any]:
    return _error_response(rid, LimitExceeded(f"response too large (limit {limit} bytes)"))
