"""eth_subscribe / eth_unsubscribe and the notifications they deliver.

`SubscriptionHub.install(dispatcher)` registers the two methods (they need a session, so they
work over WebSocket only; over HTTP they answer -32004 "notifications not supported"). The node
calls the publishing methods when something happens:

    publish_new_head(header_json)         after each committed block -> "newHeads"
    publish_logs(logs_json)               the block's logs -> "logs" (one notification per
                                          matching log, as geth sends them)
    publish_pending(tx_hashes, full_txs)  admitted transactions -> "newPendingTransactions"

Each notification is {"jsonrpc":"2.0","method":"eth_subscription",
"params":{"subscription":<id>,"result":<payload>}}; a payload is serialised once however many
subscribers receive it. Sessions never block a publisher (a WebSocket session with a full queue
closes itself), and a session's subscriptions are dropped when it closes.

Ordering: eth_subscribe is synchronous, so for a single request the response is queued on the
connection before any notification of the new subscription can be. Each subscription receives
its notifications in publishing order.

Limits: at most `max_per_session` subscriptions per connection and `max_total` on the node;
beyond either, eth_subscribe answers -32005 naming the limit. "logs" subscriptions are kept in a
`LogIndex`, so publishing a block's logs costs about logs x matching subscriptions, not
logs x all subscriptions; a long fan-out yields to the event loop every few milliseconds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import trio

from rpc.dispatch import Dispatcher
from rpc.errors import InvalidParams, LimitExceeded, MethodNotSupported
from rpc.filters import LogFilter, new_id, parse_log_filter
from rpc.log_index import LogIndex
from rpc.params import bool_param
from rpc.session import Session

__all__ = ["SubscriptionHub"]

log = logging.getLogger(__name__)

Kind = Literal["newHeads", "logs", "newPendingTransactions"]
KINDS: Final[tuple[Kind, ...]] = ("newHeads", "logs", "newPendingTransactions")

_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

_YIELD_EVERY_S: Final = 0.005  # publishing hands the event loop back this often


@dataclass(slots=True, frozen=True)
class _Subscription:
    id: str
    session: Session
    kind: Kind
    log_filter: LogFilter | None = None
    full_tx: bool = False


def _notification(sub_id: str, result_json: str) -> bytes:
    return (
        '{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"'
        + sub_id
        + '","result":'
        + result_json
        + "}}"
    ).encode()


class SubscriptionHub:
    """Subscriptions of all sessions, by kind; publishes notifications to them."""

    def __init__(self, max_per_session: int = 1000, max_total: int = 10_000) -> None:
        self.max_per_session = max_per_session
        self.max_total = max_total
        self._by_kind: dict[Kind, dict[str, _Subscription]] = {k: {} for k in KINDS}
        self._by_session: dict[int, dict[str, _Subscription]] = {}
        self._log_index = LogIndex[str]()

    def install(self, dispatcher: Dispatcher) -> None:
        """Register eth_subscribe and eth_unsubscribe on `dispatcher`."""
        dispatcher.register("eth_subscribe", self.eth_subscribe, wants_session=True)
        dispatcher.register("eth_unsubscribe", self.eth_unsubscribe, wants_session=True)

    def count(self, kind: Kind | None = None) -> int:
        """Live subscriptions (of one kind, or all)."""
        if kind is not None:
            return len(self._by_kind[kind])
        return sum(len(subs) for subs in self._by_kind.values())

    # -- the RPC methods ----------------------------------------------------------------------

    def eth_subscribe(self, session: Session | None, kind: object, arg: object = None) -> str:
        if session is None:
            raise MethodNotSupported("notifications not supported")
        log_filter = None
        full_tx = False
        if kind == "newHeads":
            if arg is not None:
                raise InvalidParams("invalid params: newHeads takes no argument")
        elif kind == "logs":
            # Only address and topics matter for live logs; a block range is accepted and ignored.
            log_filter = parse_log_filter({} if arg is None else arg, "filter")
        elif kind == "newPendingTransactions":
            full_tx = arg is not None and bool_param(arg, "fullTransactions")
        else:
            raise InvalidParams(f"invalid params: unsupported subscription {kind!r}")
        own = self._by_session.get(session.id)
        if own is None:
            own = self._by_session[session.id] = {}
            session_id = session.id
            session.on_close(lambda: self.drop_session(session_id))
            if session_id not in self._by_session:  # the session was already closed
                raise MethodNotSupported("notifications not supported: connection closed")
        self._check_room(len(own))
        sub_id = new_id(32)
        while sub_id in self._by_kind[kind]:
            sub_id = new_id(32)
        sub = _Subscription(sub_id, session, kind, log_filter, full_tx)
        own[sub_id] = sub
        self._by_kind[kind][sub_id] = sub
        if log_filter is not None:
            self._log_index.add(sub_id, log_filter)
        return sub_id

    def _check_room(self, own_count: int) -> None:
        if own_count >= self.max_per_session:
            raise LimitExceeded(
                f"too many subscriptions on this connection (limit {self.max_per_session}); "
                "eth_unsubscribe some first"
            )
        if self.count() >= self.max_total:
            raise LimitExceeded(
                f"too many subscriptions on this node (limit {self.max_total}); try again later"
            )

    def eth_unsubscribe(self, session: Session | None, sub_id: object) -> bool:
        if session is None:
            raise MethodNotSupported("notifications not supported")
        if not isinstance(sub_id, str):
            raise InvalidParams("invalid subscription id: expected a string")
        own = self._by_session.get(session.id)
        sub = own.pop(sub_id.lower(), None) if own else None
        if sub is None:
            return False
        self._forget(sub)
        return True

    def drop_session(self, session_id: int) -> None:
        """Forget every subscription of a session (called when it closes)."""
        for sub in self._by_session.pop(session_id, {}).values():
            self._forget(sub)

    def _forget(self, sub: _Subscription) -> None:
        self._by_kind[sub.kind].pop(sub.id, None)
        self._log_index.remove(sub.id)

    # -- publishing ---------------------------------------------------------------------------

    async def publish_new_head(self, header_json: Mapping[str, Any]) -> None:
        subs = list(self._by_kind["newHeads"].values())
        if subs:
            payload = _encode(header_json)
            pacer = _Pacer()
            for sub in subs:
                await self._send(sub, payload)
                await pacer.pause_if_due()

    async def publish_logs(self, logs_json: Sequence[Mapping[str, Any]]) -> None:
        live = self._by_kind["logs"]
        if not live:
            return
        pacer = _Pacer()
        for entry in logs_json:
            payload: str | None = None
            for sub_id in self._log_index.matching(entry):
                sub = live.get(sub_id)
                if sub is None:
                    continue  # dropped while we yielded
                if payload is None:
                    payload = _encode(entry)
                await self._send(sub, payload)
                await pacer.pause_if_due()

    async def publish_pending(
        self, tx_hashes: Sequence[str], full_txs: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """Hashes go to every subscriber; subscribers that asked for full transactions get
        `full_txs` (parallel to `tx_hashes`) when given, else the hashes."""
        subs = list(self._by_kind["newPendingTransactions"].values())
        if not subs or not tx_hashes:
            return
        hashes = [_encode(h) for h in tx_hashes]
        full = None
        if full_txs is not None and any(s.full_tx for s in subs):
            full = [_encode(t) for t in full_txs]
        pacer = _Pacer()
        for sub in subs:
            for payload in full if (sub.full_tx and full is not None) else hashes:
                await self._send(sub, payload)
            await pacer.pause_if_due()

    async def _send(self, sub: _Subscription, payload: str) -> None:
        if sub.id not in self._by_kind[sub.kind]:
            return  # unsubscribed or closed while we were publishing
        try:
            await sub.session.send(_notification(sub.id, payload))
        except Exception:
            log.exception("notification to session %d failed; dropping it", sub.session.id)
            self.drop_session(sub.session.id)


class _Pacer:
    """Hands the event loop back every `_YIELD_EVERY_S` during a long fan-out, so consensus and
    other clients are not starved by a flood of subscriptions."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    async def pause_if_due(self) -> None:
        if time.perf_counter() - self._last > _YIELD_EVERY_S:
            await trio.lowlevel.checkpoint()
            self._last = time.perf_counter()
