"""Traces: debug_traceTransaction, debug_traceCall, debug_traceBlockByNumber/ByHash and
trace_transaction, in geth's (and OpenEthereum's) JSON.

How a trace runs. A mined transaction is traced by replaying its block through the chain's
own block pipeline (`TraceChain.replay`: the parent's state, the modules' begin_block, the
earlier transactions as the block ran them) and running it under a tracer (evm/tracing.py);
a call is traced like eth_call, with the same gas cap. Both run in the RPC's EVM worker
thread under eth_call's deadline (rpc.evm_timeout; a `timeout` option may only shorten it),
the replayed transactions included. A trace can dwarf its transaction (a step per opcode),
so the tracers charge a lower bound of each record's JSON size as they go and the request
is refused with -32005 (rpc.max_response_bytes) once the sum passes it, before more is built.

Tracers: the default struct logger (`{gas, failed, returnValue, structLogs}`),
`callTracer` (nested frames; `tracerConfig.onlyTopCall`) and `flatCallTracer` (the
OpenEthereum flat list that trace_transaction answers). Any other tracer is -32602 naming it.

Staking and governance transactions run no EVM: their struct log is empty and their call
frame a CALL from the sender to the module's address (0x…c0de05 staking, 0x…c0de06
governance) carrying the transaction's data, with the gas the receipt charged.

Availability: tracing is expensive, so these methods are served by devnets and, elsewhere,
only with `rpc.debug_api = true`; otherwise each answers -32601 naming the switch.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from eth.abc import BlockHeaderAPI, ReceiptAPI

from evm.call import (
    CallError,
    CallRequest,
    Deadline,
    ExecutionTimeout,
    call_gas_limit,
    decode_revert_reason,
    run_call,
    use_deadline,
)
from evm.executor import BlockEnv, BlockExecutor
from evm.tracing import CallFrame, CallTracer, StructLogConfig, StructLogger, StructStep, Tracer
from evm.transactions import SignedTx
from rpc import formatting as fmt
from rpc.budget import ResponseBudget
from rpc.devnet_only import install_devnet_only
from rpc.errors import InvalidInput, InvalidParams, MethodNotFound
from rpc.eth import EthApi
from rpc.params import bool_param, hash32, json_object

__all__ = ["DebugApi", "DebugApiOff", "TraceOptions", "parse_trace_options"]

T = TypeVar("T")

STRUCT_LOGGER = ""
CALL_TRACER = "callTracer"
FLAT_CALL_TRACER = "flatCallTracer"
TRACERS = (CALL_TRACER, FLAT_CALL_TRACER)
# Options geth's TraceConfig takes that change nothing here: re-execution depth (we keep
# every state), and the legacy switches for what is already off by default.
_IGNORED_OPTIONS = frozenset({"reexec", "disableMemory", "disableReturnData", "debug"})
_FLAG_OPTIONS = {
    "disableStack": "disable_stack",
    "disableStorage": "disable_storage",
    "enableMemory": "enable_memory",
    "enableReturnData": "enable_return_data",
}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PARITY_ERRORS = {
    "execution reverted": "Reverted",
    "out of gas": "Out of gas",
    "invalid jump destination": "Bad jump destination",
    "stack underflow": "Stack underflow",
}


class DebugApiOff(MethodNotFound):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"method not available: {name} is served by devnets, or with rpc.debug_api = true"
        )


# --- options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceOptions:
    """geth's TraceConfig, checked."""

    tracer: str = STRUCT_LOGGER
    struct: StructLogConfig = StructLogConfig()
    only_top_call: bool = False
    timeout: float | None = None  # seconds; never above rpc.evm_timeout


def parse_trace_options(value: object, name: str = "options") -> TraceOptions:
    """The options object; -32602 naming the field for anything malformed or unknown."""
    if value is None:
        return TraceOptions()
    obj = json_object(value, name)
    known = {"tracer", "tracerConfig", "timeout", "limit", *_FLAG_OPTIONS, *_IGNORED_OPTIONS}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise InvalidParams(f"invalid {name}: unknown field {unknown[0]!r}")
    tracer = obj.get("tracer") or STRUCT_LOGGER
    if not isinstance(tracer, str) or (tracer and tracer not in TRACERS):
        raise InvalidParams(
            f"invalid {name}.tracer: tracer {tracer!r} is not supported; use {CALL_TRACER}, "
            f"{FLAT_CALL_TRACER} or none (the struct logger)"
        )
    flags = {
        field: bool_param(obj[key], f"{name}.{key}")
        for key, field in _FLAG_OPTIONS.items()
        if obj.get(key) is not None
    }
    limit = obj.get("limit")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise InvalidParams(f"invalid {name}.limit: expected a non-negative integer")
    struct = StructLogConfig(**flags, limit=limit or 0)
    only_top_call = _tracer_config(tracer, obj.get("tracerConfig"), f"{name}.tracerConfig")
    timeout = obj.get("timeout")
    return TraceOptions(
        tracer=tracer,
        struct=struct,
        only_top_call=only_top_call,
        timeout=None if timeout is None else _duration(timeout, f"{name}.timeout"),
    )


def _tracer_config(tracer: str, value: object, name: str) -> bool:
    """callTracer's onlyTopCall; the other tracers take no configuration."""
    if value is None:
        return False
    config = json_object(value, name)
    allowed = {"onlyTopCall"} if tracer == CALL_TRACER else set()
    unknown = sorted(set(config) - allowed)
    if unknown:
        what = "withLog is not supported" if unknown[0] == "withLog" else "unknown field"
        raise InvalidParams(f"invalid {name}: {what} {unknown[0]!r}")
    only_top = config.get("onlyTopCall")
    return False if only_top is None else bool_param(only_top, f"{name}.onlyTopCall")


def _duration(value: object, name: str) -> float:
    """A Go duration string ("5s", "500ms", "1m30s"), in seconds."""
    if type(value) is str and value and _DURATION.sub("", value) == "":
        seconds = sum(float(n) * _SECONDS[unit] for n, unit in _DURATION.findall(value))
        if seconds > 0:
            return seconds
    raise InvalidParams(f'invalid {name}: expected a positive duration such as "5s" or "500ms"')


# --- what the methods need from the node -------------------------------------------------


class Replay(Protocol):
    """A committed block re-executed through the block pipeline (Chain.replay)."""

    transactions: list[SignedTx]

    def start(self) -> BlockExecutor: ...  # its `state` takes the deadline
    def apply(self, tx: SignedTx, tracer: Tracer | None = None) -> ReceiptAPI: ...
    def system_target(self, tx: SignedTx) -> bytes | None: ...


class TraceChain(Protocol):
    """The chain's reads the trace methods use (cybermiles_node.application.chain.Chain)."""

    def header_by_number(self, number: int) -> BlockHeaderAPI | None: ...
    def header_by_hash(self, block_hash: bytes) -> BlockHeaderAPI | None: ...
    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None: ...
    def replay(self, header: BlockHeaderAPI) -> Replay: ...


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Traced:
    """One traced execution: how it ended, and what the tracer saw."""

    gas_used: int  # the receipt's (a call's: eth_call's gasUsed)
    gas_limit: int
    success: bool
    frame: CallFrame | None  # None: no EVM ran (a staking/governance transaction)
    steps: tuple[StructStep, ...]


def _stack_word(value: int) -> str:
    return hex(value)


def struct_step_json(step: StructStep) -> dict[str, Any]:
    """geth's legacy struct log entry: numbers as JSON numbers, stack words as short hex,
    memory as 32-byte words and storage slots as 64 hex digits, both without 0x."""
    out: dict[str, Any] = {
        "pc": step.pc,
        "op": step.op,
        "gas": step.gas,
        "gasCost": step.gas_cost,
        "depth": step.depth,
    }
    if step.error is not None:
        out["error"] = step.error
    if step.stack is not None:
        out["stack"] = [_stack_word(word) for word in step.stack]
    if step.return_data:
        out["returnData"] = fmt.d(step.return_data)
    if step.memory:
        memory = step.memory
        out["memory"] = [memory[i : i + 32].hex() for i in range(0, len(memory), 32)]
    if step.storage:
        out["storage"] = {f"{key:064x}": f"{value:064x}" for key, value in step.storage}
    if step.refund:
        out["refund"] = step.refund
    return out


def struct_log_json(traced: Traced) -> dict[str, Any]:
    # A frame keeps its output when it succeeded or reverted (the revert data), as geth.
    output = traced.frame.output if traced.frame is not None else b""
    return {
        "gas": traced.gas_used,
        "failed": not traced.success,
        "returnValue": fmt.d(output),
        "structLogs": [struct_step_json(step) for step in traced.steps],
    }


def call_frame_json(frame: CallFrame) -> dict[str, Any]:
    """geth's callTracer frame."""
    out: dict[str, Any] = {"type": frame.type, "from": fmt.d(frame.sender)}
    if frame.to is not None:
        out["to"] = fmt.d(frame.to)
    if frame.value is not None:
        out["value"] = fmt.q(frame.value)
    out["gas"] = fmt.q(frame.gas)
    out["gasUsed"] = fmt.q(frame.gas_used)
    out["input"] = fmt.d(frame.input)
    if frame.output:
        out["output"] = fmt.d(frame.output)
    if frame.error is not None:
        out["error"] = frame.error
    if frame.revert_reason is not None:
        out["revertReason"] = frame.revert_reason
    if frame.calls:
        out["calls"] = [call_frame_json(call) for call in frame.calls]
    return out


@dataclass(frozen=True)
class TxPosition:
    """Where a traced transaction is, for OpenEthereum's flat traces (None for calls)."""

    block_hash: bytes | None = None
    block_number: int | None = None
    tx_hash: bytes | None = None
    index: int | None = None


def flat_traces(frame: CallFrame, where: TxPosition) -> list[dict[str, Any]]:
    """OpenEthereum's flat list (trace_transaction, geth's flatCallTracer): every frame in
    call order, with its path of call indices (`traceAddress`)."""
    out: list[dict[str, Any]] = []

    def visit(node: CallFrame, path: list[int]) -> None:
        out.append(_flat_trace(node, path, where))
        for i, child in enumerate(node.calls):
            visit(child, [*path, i])

    visit(frame, [])
    return out


def _flat_trace(frame: CallFrame, path: list[int], where: TxPosition) -> dict[str, Any]:
    create = frame.type in ("CREATE", "CREATE2")
    action: dict[str, Any] = {"from": fmt.d(frame.sender), "gas": fmt.q(frame.gas)}
    if create:
        action["init"] = fmt.d(frame.input)
        action["value"] = fmt.q(frame.value or 0)
        action["creationMethod"] = frame.type.lower()
    else:
        action["callType"] = frame.type.lower()
        action["input"] = fmt.d(frame.input)
        action["to"] = fmt.d(frame.to or b"")
        action["value"] = fmt.q(frame.value or 0)
    result: dict[str, Any] | None = None
    if frame.error is None:
        result = {"gasUsed": fmt.q(frame.gas_used)}
        if create:
            result["address"] = fmt.d(frame.to or b"")
            result["code"] = fmt.d(frame.output)
        else:
            result["output"] = fmt.d(frame.output)
    trace: dict[str, Any] = {
        "action": action,
        "blockHash": None if where.block_hash is None else fmt.d(where.block_hash),
        "blockNumber": where.block_number,
        "result": result,
        "subtraces": len(frame.calls),
        "traceAddress": path,
        "transactionHash": None if where.tx_hash is None else fmt.d(where.tx_hash),
        "transactionPosition": where.index,
        "type": "create" if create else "call",
    }
    if frame.error is not None:
        trace["error"] = _PARITY_ERRORS.get(frame.error, frame.error)
    return trace


# --- the methods -------------------------------------------------------------------------


def _tracer_for(options: TraceOptions, budget: ResponseBudget) -> CallTracer:
    if options.tracer == STRUCT_LOGGER:
        return StructLogger(options.struct, charge=budget.charge)
    return CallTracer(
        only_top_call=options.only_top_call and options.tracer == CALL_TRACER,
        charge=budget.charge,
    )


def _frame_with_totals(frame: CallFrame, traced: Traced) -> CallFrame:
    """geth shows the transaction's frame with its gas limit and the receipt's gasUsed (the
    frame itself ran with what intrinsic gas left, and before refunds)."""
    return dataclasses.replace(frame, gas=traced.gas_limit, gas_used=traced.gas_used)


def _steps(tracer: CallTracer) -> tuple[StructStep, ...]:
    return tracer.steps if isinstance(tracer, StructLogger) else ()


class DebugApi:
    """The trace methods over the chain, sharing eth_call's worker, gas cap and deadline."""

    def __init__(self, eth: EthApi, chain: TraceChain, *, max_response_bytes: int) -> None:
        self.eth = eth
        self.chain = chain
        self.max_response_bytes = max_response_bytes

    def install(self, dispatcher: Any, *, enabled: bool) -> None:
        methods: dict[str, Callable[..., Any]] = {
            "debug_traceBlockByHash": self.debug_traceBlockByHash,
            "debug_traceBlockByNumber": self.debug_traceBlockByNumber,
            "debug_traceCall": self.debug_traceCall,
            "debug_traceTransaction": self.debug_traceTransaction,
            "trace_transaction": self.trace_transaction,
        }
        install_devnet_only(dispatcher, methods, enabled=enabled, refusal=DebugApiOff)

    def _budget(self) -> ResponseBudget:
        return ResponseBudget(self.max_response_bytes, "the trace")

    async def _in_worker(self, job: Callable[[Deadline], T], options: TraceOptions) -> T:
        try:
            return await self.eth.evm.run(job, timeout=options.timeout)
        except (CallError, ExecutionTimeout) as exc:
            raise InvalidInput(str(exc)) from None

    # -- mined transactions -------------------------------------------------------------
    def _located(self, tx_hash: object) -> tuple[BlockHeaderAPI, int]:
        location = self.chain.tx_location(hash32(tx_hash, "transaction hash"))
        header = None if location is None else self.chain.header_by_number(location[0])
        if location is None or header is None:
            raise InvalidInput("transaction not found")
        return header, location[1]

    def _replay_and_trace(
        self,
        replay: Replay,
        wanted: Sequence[int],
        make_tracer: Callable[[], CallTracer],
        deadline: Deadline,
    ) -> list[Traced]:
        """Replay the block's transactions up to the last of `wanted`, tracing those."""
        executor = replay.start()
        use_deadline(executor.state, deadline)
        traced: list[Traced] = []
        traced_indices = set(wanted)
        last = max(wanted, default=-1)
        for index, tx in enumerate(replay.transactions[: last + 1]):
            deadline.tick()  # the transfers of a block run no gas meter
            if index not in traced_indices:
                replay.apply(tx)
                continue
            tracer = make_tracer()
            gas_before = executor.gas_used
            receipt = replay.apply(tx, tracer)
            gas_used = executor.gas_used - gas_before
            success = receipt.state_root == b"\x01"
            frame = tracer.frames(decode_revert_reason)
            if frame is None:  # no EVM ran: a staking/governance transaction
                target = replay.system_target(tx)
                frame = _bare_frame(tx.sender, target, tx.value, tx.data, gas_used, success)
            traced.append(
                Traced(
                    gas_used=gas_used,
                    gas_limit=tx.gas or gas_used,  # a system transaction's gas field is 0
                    success=success,
                    frame=frame,
                    steps=_steps(tracer),
                )
            )
        return traced

    def _result(self, traced: Traced, options: TraceOptions, where: TxPosition) -> Any:
        if options.tracer == STRUCT_LOGGER:
            return struct_log_json(traced)
        assert traced.frame is not None
        if options.tracer == FLAT_CALL_TRACER:
            # OpenEthereum's numbers: what the execution had and used, intrinsic gas aside.
            return flat_traces(traced.frame, where)
        return call_frame_json(_frame_with_totals(traced.frame, traced))

    async def _trace_block_txs(
        self, header: BlockHeaderAPI, wanted: Sequence[int] | None, options: TraceOptions
    ) -> list[tuple[SignedTx, Any]]:
        """(transaction, result) of the block's transactions at `wanted` (all when None)."""
        if int(header.block_number) == 0:
            return []  # genesis holds no transactions
        replay = self.chain.replay(header)
        indices = list(range(len(replay.transactions))) if wanted is None else list(wanted)
        budget = self._budget()
        traced = await self._in_worker(
            lambda deadline: self._replay_and_trace(
                replay, indices, lambda: _tracer_for(options, budget), deadline
            ),
            options,
        )
        out = []
        for index, result in zip(indices, traced, strict=True):
            tx = replay.transactions[index]
            where = TxPosition(bytes(header.hash), int(header.block_number), tx.hash, index)
            out.append((tx, self._result(result, options, where)))
        return out

    async def debug_traceTransaction(self, tx_hash: object, options: object = None) -> Any:
        opts = parse_trace_options(options)
        header, index = self._located(tx_hash)
        [(_tx, result)] = await self._trace_block_txs(header, [index], opts)
        return result

    async def trace_transaction(self, tx_hash: object) -> Any:
        header, index = self._located(tx_hash)
        opts = TraceOptions(tracer=FLAT_CALL_TRACER)
        [(_tx, result)] = await self._trace_block_txs(header, [index], opts)
        return result

    async def _trace_block(self, header: BlockHeaderAPI | None, options: object) -> Any:
        opts = parse_trace_options(options)
        if header is None:
            raise InvalidInput("block not found")
        results = await self._trace_block_txs(header, None, opts)
        return [{"txHash": fmt.d(tx.hash), "result": result} for tx, result in results]

    async def debug_traceBlockByNumber(self, number: object, options: object = None) -> Any:
        header = self.eth._require_header(number, "block number")  # numbers and tags
        return await self._trace_block(header, options)

    async def debug_traceBlockByHash(self, block_hash: object, options: object = None) -> Any:
        header = self.chain.header_by_hash(hash32(block_hash, "block hash"))
        return await self._trace_block(header, options)

    # -- calls ----------------------------------------------------------------------------
    async def debug_traceCall(
        self, call: object, block: object = "latest", options: object = None
    ) -> Any:
        opts = parse_trace_options(options)
        inputs = self.eth._call_inputs(call, block, None)
        budget = self._budget()
        traced: Traced = await self._in_worker(
            lambda deadline: self._trace_call(*inputs, opts, budget, deadline), opts
        )
        return self._result(traced, opts, TxPosition())

    def _trace_call(
        self,
        profile: Any,
        db: Any,
        state_root: bytes,
        env: BlockEnv,
        request: CallRequest,
        options: TraceOptions,
        budget: ResponseBudget,
        deadline: Deadline,
    ) -> Traced:
        tracer = _tracer_for(options, budget)
        gas_cap = self.eth.gas_cap
        result = run_call(
            profile,
            db,
            state_root,
            env,
            request,
            gas_cap=gas_cap,
            deadline=deadline,
            tracer=tracer,
        )
        frame = tracer.frames(decode_revert_reason) or _bare_frame(
            request.sender, request.to, request.value, request.data, result.gas_used, False
        )
        return Traced(
            gas_used=result.gas_used,
            gas_limit=call_gas_limit(request, env, gas_cap),
            success=result.success,
            frame=frame,
            steps=_steps(tracer),
        )


def _bare_frame(
    sender: bytes, to: bytes | None, value: int, data: bytes, gas_used: int, success: bool
) -> CallFrame:
    """The frame of an execution no message showed: a staking/governance transaction's (to
    its module), or a creation refused before it ran (an address collision)."""
    return CallFrame(
        type="CALL" if to else "CREATE",
        sender=sender,
        to=to or None,
        value=value,
        gas=gas_used,
        gas_used=gas_used,
        input=data,
        output=b"",
        error=None if success else "execution failed",
        revert_reason=None,
        calls=(),
    )
