"""Peer scores and bans: sans-I/O bookkeeping the switch consults (time comes from a clock).

Every node id starts at `INITIAL_SCORE`. Misbehaviour subtracts a penalty; at zero the switch
bans the node id and its IP for `ban_seconds` and the score starts afresh after the ban.
Scores outlive connections (a peer cannot reconnect to wipe its record) but the table is
bounded: the least recently touched entries are forgotten first.

Loopback addresses are never IP-banned: every node of a local devnet shares 127.0.0.1, and one
misbehaving node must not cut the others off. Node-id bans still apply to them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from p2p.netaddr import is_loopback

INITIAL_SCORE = 100


class ScoreBoard:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._scores: OrderedDict[str, int] = OrderedDict()
        self._max_entries = max_entries

    def score(self, node_id: str) -> int:
        return self._scores.get(node_id, INITIAL_SCORE)

    def penalize(self, node_id: str, penalty: int) -> int:
        score = self.score(node_id) - max(penalty, 0)
        self._scores[node_id] = score
        self._scores.move_to_end(node_id)
        while len(self._scores) > self._max_entries:
            self._scores.popitem(last=False)
        return score

    def reset(self, node_id: str) -> None:
        self._scores.pop(node_id, None)


class BanList:
    """Node ids and IPs refused until a deadline."""

    def __init__(self, clock: Callable[[], float], max_entries: int = 100_000) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._max_entries = max_entries

    def ban(self, key: str, seconds: float) -> None:
        self._until[key] = max(self._until.get(key, 0.0), self._clock() + seconds)
        if len(self._until) > self._max_entries:
            self._prune()

    def ban_ip(self, ip: str, seconds: float) -> bool:
        """Ban an IP unless it is loopback; returns whether it was banned."""
        if is_loopback(ip):
            return False
        self.ban(ip, seconds)
        return True

    def is_banned(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until <= self._clock():
            del self._until[key]
            return False
        return True

    def _prune(self) -> None:
        now = self._clock()
        self._until = {k: t for k, t in self._until.items() if t > now}
        # Still too many live bans (an attacker burning IPs): forget those ending soonest.
        excess = len(self._until) - self._max_entries
        if excess > 0:
            for key, _ in sorted(self._until.items(), key=lambda kv: (kv[1], kv[0]))[:excess]:
                del self._until[key]
