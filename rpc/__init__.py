"""JSON-RPC for the node: the package interface.

- `Dispatcher` (rpc.dispatch): transport-agnostic JSON-RPC 2.0; method modules register handlers
  on it.
- `serve` (rpc.server): HTTP + WebSocket on one port (hypercorn on trio), around a Dispatcher.
- `Session` (rpc.session): what a WebSocket connection offers handlers that push notifications.
- errors (rpc.errors): `RpcError` and its fixed-code subclasses; parsers and formatters for
  params and results live in `rpc.params`.
- `FilterRegistry`, `LogFilter`, `parse_log_filter`, the matchers (rpc.filters): polled filters
  and log matching, pure.
- `SubscriptionHub` (rpc.subscriptions): eth_subscribe / eth_unsubscribe and the publishing API
  the node calls after each commit and mempool admission.
"""

from rpc.dispatch import Dispatcher
from rpc.errors import (
    ExecutionReverted,
    InternalError,
    InvalidInput,
    InvalidParams,
    InvalidRequest,
    LimitExceeded,
    MethodNotFound,
    MethodNotSupported,
    ParseError,
    ResourceNotFound,
    ResourceUnavailable,
    RpcError,
    TransactionRejected,
)
from rpc.filters import (
    FilterRegistry,
    LogFilter,
    bloom_may_match,
    log_json_matches,
    log_matches,
    parse_log_filter,
)
from rpc.params import BlockRef
from rpc.server import serve
from rpc.session import MemorySession, Session
from rpc.subscriptions import SubscriptionHub

__all__ = [
    "BlockRef",
    "Dispatcher",
    "ExecutionReverted",
    "FilterRegistry",
    "InternalError",
    "InvalidInput",
    "InvalidParams",
    "InvalidRequest",
    "LimitExceeded",
    "LogFilter",
    "MemorySession",
    "MethodNotFound",
    "MethodNotSupported",
    "ParseError",
    "ResourceNotFound",
    "ResourceUnavailable",
    "RpcError",
    "Session",
    "SubscriptionHub",
    "TransactionRejected",
    "bloom_may_match",
    "log_json_matches",
    "log_matches",
    "parse_log_filter",
    "serve",
]
