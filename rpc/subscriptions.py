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
connection before any notification of the new subscription can be.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from rpc.dispatch import Dispatcher
from rpc.errors import InvalidParams, LimitExceeded, MethodNotSupported
from rpc.filters import LogFilter, log_json_matches, new_id, parse_log_filter
from rpc.params import bool_param
from rpc.session import Session

__all__ = ["SubscriptionHub"]

log = logging.getLogger(__name__)

Kind = Literal["newHeads", "logs", "newPendingTransactions"]
KINDS: Final[tuple[Kind, ...]] = ("newHeads", "logs", "newPendingTransactions")

_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


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

    def __init__(self, max_per_session: int = 1000) -> None:
        self.max_per_session = max_per_session
        self._by_kind: dict[Kind, dict[str, _Subscription]] = {k: {} for k in KINDS}
        self._by_session: dict[int, dict[str, _Subscription]] = {}

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
        if len(own) >= self.max_per_session:
            raise LimitExceeded(f"too many subscriptions (limit {self.max_per_session})")
        sub_id = new_id(32)
        while sub_id in self._by_kind[kind]:
            sub_id = new_id(32)
        sub = _Subscription(sub_id, session, kind, log_filter, full_tx)
        own[sub_id] = sub
        self._by_kind[kind][sub_id] = sub
        return sub_id

    def eth_unsubscribe(self, session: Session | None, sub_id: object) -> bool:
        if session is None:
            raise MethodNotSupported("notifications not supported")
        if not isinstance(sub_id, str):
            raise InvalidParams("invalid subscription id: expected a string")
        own = self._by_session.get(session.id)
        sub = own.pop(sub_id.lower(), None) if own else None
        if sub is None:
            return False
        del self._by_kind[sub.kind][sub.id]
        return True

    def drop_session(self, session_id: int) -> None:
        """Forget every subscription of a session (called when it closes)."""
        for sub in self._by_session.pop(session_id, {}).values():
            self._by_kind[sub.kind].pop(sub.id, None)

    # -- publishing ---------------------------------------------------------------------------

    async def publish_new_head(self, header_json: Mapping[str, Any]) -> None:
        subs = list(self._by_kind["newHeads"].values())
        if subs:
            payload = _encode(header_json)
            for sub in subs:
                await self._send(sub, payload)

    async def publish_logs(self, logs_json: Sequence[Mapping[str, Any]]) -> None:
        subs = list(self._by_kind["logs"].values())
        if not subs or not logs_json:
            return
        encoded: list[str | None] = [None] * len(logs_json)
        for sub in subs:
            assert sub.log_filter is not None
            for i, entry in enumerate(logs_json):
                if log_json_matches(sub.log_filter, entry):
                    payload = encoded[i]
                    if payload is None:
                        payload = encoded[i] = _encode(entry)
                    await self._send(sub, payload)

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
        for sub in subs:
            for payload in full if (sub.full_tx and full is not None) else hashes:
                await self._send(sub, payload)

    async def _send(self, sub: _Subscription, payload: str) -> None:
        if sub.id not in self._by_kind[sub.kind]:
            return  # unsubscribed or closed while we were publishing
        try:
            await sub.session.send(_notification(sub.id, payload))
        except Exception:
            log.exception("notification to session %d failed; dropping it", sub.session.id)
            self.drop_session(sub.session.id)
