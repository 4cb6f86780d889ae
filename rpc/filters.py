"""Log filters and polled filters (eth_newFilter & co.). Pure: no I/O, no clock of its own.

`LogFilter` is the parsed filter object of eth_getLogs / eth_newFilter / logs subscriptions:
a block range (or one block hash), a set of addresses and up to four topic positions, each a
wildcard (None) or a set of alternatives. `parse_log_filter` builds one from JSON and rejects
malformed input with `InvalidParams`. Three predicates answer "does this log match?":
`log_matches` on raw bytes, `log_json_matches` on a log in its eth JSON form, and
`bloom_may_match` on a block's logsBloom, so the node can skip blocks that cannot contain a match.

`FilterRegistry` holds the installed filters of eth_newFilter, eth_newBlockFilter and
eth_newPendingTransactionFilter. The node pushes what happens (`push_block` after each commit,
`push_pending` after mempool admission); each filter accumulates what concerns it (bounded,
oldest dropped) until the client polls `changes`; `rewind` forgets what came from blocks a
devnet deleted (evm_revert). Filters not polled for `timeout_s` (by the
injected clock) are dropped, as geth does after five minutes.

Quotas: at most `max_filters` filters on the node and `max_per_owner` per owner, so one client
cannot deny filters to everyone. The owner is whatever the caller names (the RPC layer uses the
WebSocket connection, or the address of an HTTP client); `drop_owner` uninstalls an owner's
filters at once (a closed WebSocket connection).
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from eth_bloom.bloom import get_bloom_bits

from rpc.errors import InvalidInput, InvalidParams, LimitExceeded
from rpc.params import BlockRef, BlockTag, address, block_tag, hash32, quantity

__all__ = [
    "FilterRegistry",
    "LogFilter",
    "bloom_may_match",
    "log_json_matches",
    "log_matches",
    "parse_log_filter",
]

MAX_TOPIC_POSITIONS: Final = 4
MAX_ALTERNATIVES: Final = 1000  # addresses, or topics in one position


def _bloom_mask(item: bytes) -> int:
    mask = 0
    for bit in get_bloom_bits(item):
        mask |= bit
    return mask


@dataclass(frozen=True)
class LogFilter:
    """A log filter; an empty `addresses` or a None topic position matches anything."""

    from_block: int | BlockTag = "latest"
    to_block: int | BlockTag = "latest"
    addresses: tuple[bytes, ...] = ()
    topics: tuple[tuple[bytes, ...] | None, ...] = ()
    block_hash: bytes | None = None

    # Derived once, for the predicates.
    _address_set: frozenset[bytes] = field(init=False, repr=False, compare=False)
    _address_hex: frozenset[str] = field(init=False, repr=False, compare=False)
    _topic_sets: tuple[frozenset[bytes] | None, ...] = field(init=False, repr=False, compare=False)
    _topic_hex: tuple[frozenset[str] | None, ...] = field(init=False, repr=False, compare=False)
    _address_masks: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _topic_masks: tuple[tuple[int, ...] | None, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.topics) > MAX_TOPIC_POSITIONS:
            raise ValueError(f"at most {MAX_TOPIC_POSITIONS} topic positions")
        topics = tuple(t if t else None for t in self.topics)  # () is a wildcard too
        object.__setattr__(self, "topics", topics)
        setattr_ = object.__setattr__
        setattr_(self, "_address_set", frozenset(self.addresses))
        setattr_(self, "_address_hex", frozenset("0x" + a.hex() for a in self.addresses))
        setattr_(self, "_topic_sets", tuple(None if t is None else frozenset(t) for t in topics))
        setattr_(
            self,
            "_topic_hex",
            tuple(None if t is None else frozenset("0x" + x.hex() for x in t) for t in topics),
        )
        setattr_(self, "_address_masks", tuple(_bloom_mask(a) for a in self.addresses))
        setattr_(
            self,
            "_topic_masks",
            tuple(None if t is None else tuple(_bloom_mask(x) for x in t) for t in topics),
        )


def _range_bound(v: object, name: str) -> int | BlockTag:
    bound = block_tag(v, name)
    if isinstance(bound, BlockRef):
        raise InvalidParams(f"invalid {name}: expected a block number or tag")
    return bound


def _as_list(v: object) -> list[Any]:
    return v if isinstance(v, list) else [v]


def parse_log_filter(obj: object, name: str = "filter") -> LogFilter:
    """Parse the filter object of eth_getLogs / eth_newFilter."""
    if not isinstance(obj, dict):
        raise InvalidParams(f"invalid {name}: expected an object, got {type(obj).__name__}")
    block_hash_v = obj.get("blockHash")
    from_v = obj.get("fromBlock")
    to_v = obj.get("toBlock")
    block_hash = None
    if block_hash_v is not None:
        if from_v is not None or to_v is not None:
            raise InvalidParams(
                f"invalid {name}: cannot specify both blockHash and fromBlock/toBlock"
            )
        block_hash = hash32(block_hash_v, f"{name}.blockHash")
    from_block = "latest" if from_v is None else _range_bound(from_v, f"{name}.fromBlock")
    to_block = "latest" if to_v is None else _range_bound(to_v, f"{name}.toBlock")

    addresses_v = obj.get("address")
    addresses: tuple[bytes, ...] = ()
    if addresses_v is not None:
        items = _as_list(addresses_v)
        if len(items) > MAX_ALTERNATIVES:
            raise InvalidParams(f"invalid {name}.address: more than {MAX_ALTERNATIVES} addresses")
        addresses = tuple(dict.fromkeys(address(a, f"{name}.address") for a in items))

    topics_v = obj.get("topics")
    topics: list[tuple[bytes, ...] | None] = []
    if topics_v is not None:
        if not isinstance(topics_v, list):
            raise InvalidParams(f"invalid {name}.topics: expected an array")
        if len(topics_v) > MAX_TOPIC_POSITIONS:
            raise InvalidParams(
                f"invalid {name}.topics: more than {MAX_TOPIC_POSITIONS} topic positions"
            )
        for i, position in enumerate(topics_v):
            topics.append(_parse_topic_position(position, f"{name}.topics[{i}]"))
    return LogFilter(
        from_block=from_block,
        to_block=to_block,
        addresses=addresses,
        topics=tuple(topics),
        block_hash=block_hash,
    )


def _parse_topic_position(v: object, name: str) -> tuple[bytes, ...] | None:
    if v is None:
        return None
    items = _as_list(v)
    if len(items) > MAX_ALTERNATIVES:
        raise InvalidParams(f"invalid {name}: more than {MAX_ALTERNATIVES} alternatives")
    if any(t is None for t in items):  # geth: a null alternative matches anything
        for t in items:
            if t is not None:
                hash32(t, name)
        return None
    return tuple(dict.fromkeys(hash32(t, name) for t in items)) or None


def log_matches(f: LogFilter, address: bytes, topics: Sequence[bytes]) -> bool:
    """Whether a log emitted by `address` with `topics` matches the address/topic criteria.

    As in geth, a log with fewer topics than the filter has positions never matches.
    """
    if f._address_set and address not in f._address_set:
        return False
    wanted = f._topic_sets
    if len(topics) < len(wanted):
        return False
    for i, alternatives in enumerate(wanted):
        if alternatives is not None and topics[i] not in alternatives:
            return False
    return True


def log_json_matches(f: LogFilter, log: Mapping[str, Any]) -> bool:
    """`log_matches` on a log in eth JSON form ("address", "topics" as hex strings)."""
    if f._address_hex and str(log.get("address", "")).lower() not in f._address_hex:
        return False
    wanted = f._topic_hex
    if not wanted:
        return True
    topics = log.get("topics") or ()
    if len(topics) < len(wanted):
        return False
    for i, alternatives in enumerate(wanted):
        if alternatives is not None and str(topics[i]).lower() not in alternatives:
            return False
    return True


def bloom_may_match(f: LogFilter, bloom: int) -> bool:
    """False only if a block with this logsBloom certainly has no matching log."""
    if f._address_masks and not any(bloom & m == m for m in f._address_masks):
        return False
    for masks in f._topic_masks:
        if masks is not None and not any(bloom & m == m for m in masks):
            return False
    return True


def _in_range(f: LogFilter, log: Mapping[str, Any]) -> bool:
    if f.block_hash is not None:
        return str(log.get("blockHash", "")).lower() == "0x" + f.block_hash.hex()
    lo, hi = f.from_block, f.to_block
    if type(lo) is not int and type(hi) is not int:
        return True
    try:
        number = quantity(log.get("blockNumber"), "blockNumber")
    except InvalidParams:
        return True
    if type(lo) is int and number < lo:
        return False
    return not (type(hi) is int and number > hi)


FilterKind = Literal["logs", "blocks", "pending"]


@dataclass(slots=True)
class _Installed:
    kind: FilterKind
    log_filter: LogFilter | None
    items: deque[Any]
    last_poll: float
    owner: str


def new_id(hex_digits: int) -> str:
    """A random id of exactly `hex_digits` hex digits without leading zero (a valid quantity,
    so clients that treat ids as numbers round-trip them)."""
    low = 16 ** (hex_digits - 1)
    return f"0x{low + secrets.randbelow(15 * low):x}"


class FilterRegistry:
    """The polled filters of one node."""

    def __init__(
        self,
        clock: Callable[[], float],
        timeout_s: float = 300.0,
        *,
        max_filters: int = 1000,
        max_per_owner: int = 100,
        max_items: int = 10_000,
    ) -> None:
        self._clock = clock
        self.timeout_s = timeout_s
        self.max_filters = max_filters
        self.max_per_owner = max_per_owner
        self.max_items = max_items
        self._filters: dict[str, _Installed] = {}
        self._per_owner: dict[str, int] = {}
        self._next_sweep = float("inf")

    def __len__(self) -> int:
        return len(self._filters)

    def __contains__(self, filter_id: object) -> bool:
        return isinstance(filter_id, str) and filter_id.lower() in self._filters

    # -- install / poll / uninstall -----------------------------------------------------------

    def install_log_filter(self, log_filter: LogFilter, owner: str = "") -> str:
        return self._install("logs", log_filter, owner)

    def install_block_filter(self, owner: str = "") -> str:
        return self._install("blocks", None, owner)

    def install_pending_filter(self, owner: str = "") -> str:
        return self._install("pending", None, owner)

    def owned(self, owner: str) -> int:
        """Filters `owner` has installed (and not yet uninstalled or expired)."""
        return self._per_owner.get(owner, 0)

    def _install(self, kind: FilterKind, log_filter: LogFilter | None, owner: str) -> str:
        now = self._clock()
        self.expire(now)
        if self.owned(owner) >= self.max_per_owner:
            raise LimitExceeded(
                f"too many filters for this client (limit {self.max_per_owner}); "
                "eth_uninstallFilter some first"
            )
        if len(self._filters) >= self.max_filters:
            raise LimitExceeded(f"too many filters on this node (limit {self.max_filters})")
        filter_id = new_id(16)
        while filter_id in self._filters:
            filter_id = new_id(16)
        items: deque[Any] = deque(maxlen=self.max_items)
        self._filters[filter_id] = _Installed(kind, log_filter, items, now, owner)
        self._per_owner[owner] = self.owned(owner) + 1
        self._next_sweep = min(self._next_sweep, now + self.timeout_s)
        return filter_id

    def _remove(self, filter_id: str) -> bool:
        installed = self._filters.pop(filter_id, None)
        if installed is None:
            return False
        left = self._per_owner[installed.owner] - 1
        if left:
            self._per_owner[installed.owner] = left
        else:
            del self._per_owner[installed.owner]
        return True

    def drop_owner(self, owner: str) -> int:
        """Uninstall every filter of `owner`; returns how many there were."""
        ids = [fid for fid, f in self._filters.items() if f.owner == owner]
        for fid in ids:
            self._remove(fid)
        return len(ids)

    def _get(self, filter_id: object, now: float) -> _Installed:
        self.expire(now)
        installed = self._filters.get(filter_id.lower()) if isinstance(filter_id, str) else None
        if installed is None or now - installed.last_poll > self.timeout_s:
            raise InvalidInput("filter not found")
        return installed

    def changes(self, filter_id: object) -> list[Any]:
        """What the filter collected since the last poll: block hashes, tx hashes or logs."""
        now = self._clock()
        installed = self._get(filter_id, now)
        installed.last_poll = now
        items = list(installed.items)
        installed.items.clear()
        return items

    def kind(self, filter_id: object) -> FilterKind:
        return self._get(filter_id, self._clock()).kind

    def log_filter(self, filter_id: object) -> LogFilter:
        """The criteria of a log filter (for eth_getFilterLogs); polling time is refreshed."""
        now = self._clock()
        installed = self._get(filter_id, now)
        if installed.log_filter is None:
            raise InvalidInput("filter not found")
        installed.last_poll = now
        return installed.log_filter

    def uninstall(self, filter_id: object) -> bool:
        self.expire(self._clock())
        if not isinstance(filter_id, str):
            return False
        return self._remove(filter_id.lower())

    def expire(self, now: float | None = None) -> int:
        """Drop filters not polled for `timeout_s`; returns how many were dropped."""
        if now is None:
            now = self._clock()
        if now < self._next_sweep:
            return 0
        deadline = now - self.timeout_s
        stale = [fid for fid, f in self._filters.items() if f.last_poll < deadline]
        for fid in stale:
            self._remove(fid)
        self._next_sweep = (
            min(f.last_poll for f in self._filters.values()) + self.timeout_s
            if self._filters
            else float("inf")
        )
        return len(stale)

    # -- what the node pushes -------------------------------------------------------------------

    def push_block(self, block_hash_hex: str, logs_json: Iterable[Mapping[str, Any]] = ()) -> None:
        """A block was committed: its hash to block filters, its matching logs to log filters."""
        self.expire(self._clock())
        logs: list[Mapping[str, Any]] | None = None
        for installed in self._filters.values():
            if installed.kind == "blocks":
                installed.items.append(block_hash_hex)
            elif installed.kind == "logs":
                if logs is None:
                    logs = list(logs_json)
                f = installed.log_filter
                assert f is not None
                installed.items.extend(
                    log for log in logs if log_json_matches(f, log) and _in_range(f, log)
                )

    def rewind(self, removed_block_hashes: Iterable[str]) -> None:
        """Blocks were deleted (a devnet's evm_revert or reset): what filters collected from
        them and not yet handed out is forgotten, their hashes and their logs. Pending
        transaction hashes stay: they were announced, whatever became of them."""
        removed = {h.lower() for h in removed_block_hashes}
        if not removed:
            return
        for installed in self._filters.values():
            if installed.kind == "blocks":
                kept = [h for h in installed.items if h not in removed]
            elif installed.kind == "logs":
                kept = [log for log in installed.items if log.get("blockHash") not in removed]
            else:
                continue
            installed.items.clear()
            installed.items.extend(kept)

    def push_pending(self, tx_hashes: Iterable[str]) -> None:
        """Transactions entered the mempool: their hashes to pending-transaction filters."""
        self.expire(self._clock())
        hashes: list[str] | None = None
        for installed in self._filters.values():
            if installed.kind == "pending":
                if hashes is None:
                    hashes = list(tx_hashes)
                installed.items.extend(hashes)
