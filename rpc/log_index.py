"""An index of log filters by address and topic: which filters may match a given log.

Matching every published log against every filter pair by pair costs logs x filters on the
event loop (20 WebSocket clients x 1,000 logs subscriptions stalled a node for 7 s). Instead,
each filter is filed under the alternatives of ONE of its constraints, the one with the fewest
alternatives: its address set, or one constrained topic position. A log then looks up its address
and each of its topics (at most five dictionary lookups), and only the filters filed under one of
those (plus the filters without any constraint) are checked with the exact matcher
(`log_json_matches`). A filter's chosen constraint holds exactly one value per log, so no filter
is checked twice, and the answer is exactly the pairwise one (a property test checks this).

Cost of one log: O(filters whose chosen constraint the log satisfies), not O(all filters).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Final, Generic, TypeVar

from rpc.filters import LogFilter, log_json_matches

__all__ = ["LogIndex"]

K = TypeVar("K", bound=Hashable)

_ADDRESS: Final = -1  # the "position" of the address in an index key
_Key = tuple[int, str]  # (topic position or _ADDRESS, lower-case hex)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _index_keys(log_filter: LogFilter) -> list[_Key]:
    """The keys of the filter's constraint with the fewest alternatives; [] if it has none."""
    constraints: list[list[_Key]] = []
    if log_filter.addresses:
        constraints.append([(_ADDRESS, _hex(a)) for a in log_filter.addresses])
    for position, alternatives in enumerate(log_filter.topics):
        if alternatives is not None:
            constraints.append([(position, _hex(t)) for t in alternatives])
    if not constraints:
        return []
    fewest = min(constraints, key=lambda keys: len(keys))
    return list(dict.fromkeys(fewest))  # a filter may repeat an alternative


class LogIndex(Generic[K]):
    """Log filters under caller-chosen keys (e.g. subscription ids)."""

    def __init__(self) -> None:
        self._filters: dict[K, LogFilter] = {}
        self._filed_under: dict[K, list[_Key]] = {}
        self._postings: dict[_Key, dict[K, None]] = {}  # dicts: ordered sets
        self._unconstrained: dict[K, None] = {}

    def __len__(self) -> int:
        return len(self._filters)

    def __contains__(self, key: object) -> bool:
        return key in self._filters

    def add(self, key: K, log_filter: LogFilter) -> None:
        """File `log_filter` under `key` (replacing what `key` had)."""
        self.remove(key)
        self._filters[key] = log_filter
        index_keys = _index_keys(log_filter)
        self._filed_under[key] = index_keys
        if not index_keys:
            self._unconstrained[key] = None
        for index_key in index_keys:
            self._postings.setdefault(index_key, {})[key] = None

    def remove(self, key: K) -> bool:
        if self._filters.pop(key, None) is None:
            return False
        self._unconstrained.pop(key, None)
        for index_key in self._filed_under.pop(key):
            posting = self._postings[index_key]
            del posting[key]
            if not posting:
                del self._postings[index_key]
        return True

    def _candidates(self, log: Mapping[str, Any]) -> list[K]:
        candidates = list(self._unconstrained)
        address = self._postings.get((_ADDRESS, str(log.get("address", "")).lower()))
        if address:
            candidates.extend(address)
        for position, topic in enumerate(log.get("topics") or ()):
            posting = self._postings.get((position, str(topic).lower()))
            if posting:
                candidates.extend(posting)
        return candidates

    def matching(self, log: Mapping[str, Any]) -> list[K]:
        """The keys of the filters that match `log` (eth JSON form)."""
        filters = self._filters
        return [k for k in self._candidates(log) if log_json_matches(filters[k], log)]
