"""The address book: peers we may dial, learned from NodeInfo and peer exchange.

One entry per node id (`node_id@host:port`), validated on the way in, never our own id. An
address heard from a third party never overwrites a known entry; only the node itself (its
NodeInfo when it connects) may move its address. The book is bounded: when full, a new address
may only push out an entry that has been failing.

Dialing is throttled per entry: every attempt puts the entry aside for a cooldown chosen by
the caller, `n` consecutive failures for at least `min(2**n, MAX_BACKOFF)` seconds, and
`MAX_FAILURES` drop it. Times come from the
caller's clock (trio's, monotonic), so they are not persisted: a restarted node retries every
entry once.

The file is JSON, written atomically (temporary file, fsync, rename), entries sorted so the
same book always produces the same bytes. A missing or corrupt file is an empty book.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

from p2p.netaddr import NetAddress, is_unspecified, parse_address

log = logging.getLogger(__name__)

MAX_BACKOFF = 600.0
MAX_FAILURES = 10
FILE_VERSION = 1


@dataclass
class _Entry:
    address: NetAddress
    failures: int = 0
    retry_at: float = 0.0  # monotonic; 0 = dial any time


class AddressBook:
    def __init__(self, self_id: str, path: Path | None = None, *, max_size: int = 1000) -> None:
        self.self_id = self_id
        self.path = path
        self.max_size = max_size
        self._entries: dict[str, _Entry] = {}
        self._dirty = False
        if path is not None:
            self._load(path)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._entries

    def addresses(self) -> list[str]:
        return [str(self._entries[k].address) for k in sorted(self._entries)]

    def get(self, node_id: str) -> NetAddress | None:
        entry = self._entries.get(node_id)
        return entry.address if entry else None

    # ----------------------------------------------------------------- learning

    def add(self, text: str, *, authoritative: bool = False) -> bool:
        """Add `node_id@host:port`; ValueError if malformed. Returns whether the book changed.

        `authoritative`: the address comes from the node itself (its NodeInfo), so it may
        replace the one we have."""
        address = parse_address(text)
        if address.node_id == self.self_id or is_unspecified(address.host):
            return False
        existing = self._entries.get(address.node_id)
        if existing is not None:
            if not authoritative or existing.address == address:
                return False
        elif not self._make_room():
            return False
        self._entries[address.node_id] = _Entry(address)
        self._dirty = True
        return True

    def _make_room(self) -> bool:
        if len(self._entries) < self.max_size:
            return True
        worst = max(self._entries.values(), key=lambda e: (e.failures, e.address.node_id))
        if worst.failures == 0:
            return False
        del self._entries[worst.address.node_id]
        return True

    def remove(self, node_id: str) -> None:
        if self._entries.pop(node_id, None) is not None:
            self._dirty = True

    # ----------------------------------------------------------------- dial bookkeeping

    def mark_attempt(self, node_id: str, now: float, cooldown: float) -> None:
        """We are dialing it: do not offer it again for `cooldown` seconds, whatever the
        outcome (a peer that accepts and drops us at once must not be redialled in a loop)."""
        entry = self._entries.get(node_id)
        if entry is not None:
            entry.retry_at = max(entry.retry_at, now + cooldown)

    def mark_good(self, node_id: str) -> None:
        entry = self._entries.get(node_id)
        if entry is not None and entry.failures:
            entry.failures = 0
            self._dirty = True

    def mark_failed(self, node_id: str, now: float) -> None:
        entry = self._entries.get(node_id)
        if entry is None:
            return
        entry.failures += 1
        if entry.failures >= MAX_FAILURES:
            del self._entries[node_id]
        else:
            entry.retry_at = max(entry.retry_at, now + min(2.0**entry.failures, MAX_BACKOFF))
        self._dirty = True

    def pick(self, n: int, *, exclude: set[str], now: float, rng: random.Random) -> list[str]:
        """Up to `n` dialable addresses, fewest failures first, random among equals."""
        ready = [
            e for k, e in sorted(self._entries.items()) if k not in exclude and e.retry_at <= now
        ]
        rng.shuffle(ready)
        ready.sort(key=lambda e: e.failures)  # stable: keeps the shuffle within a failure count
        return [str(e.address) for e in ready[:n]]

    def sample(self, n: int, *, exclude: set[str], rng: random.Random) -> list[str]:
        """Up to `n` addresses to share with a peer, healthy entries preferred."""
        pool = [e for k, e in sorted(self._entries.items()) if k not in exclude]
        healthy = [e for e in pool if e.failures == 0]
        chosen = rng.sample(healthy, min(n, len(healthy)))
        if len(chosen) < n:
            rest = [e for e in pool if e.failures]
            chosen += rng.sample(rest, min(n - len(chosen), len(rest)))
        return [str(e.address) for e in chosen]

    # ----------------------------------------------------------------- persistence

    def save(self) -> None:
        """Write the book if it changed (atomic replace)."""
        if self.path is None or not self._dirty:
            return
        body = {
            "version": FILE_VERSION,
            "addresses": [
                {"addr": str(e.address), "failures": e.failures}
                for _, e in sorted(self._entries.items())
            ],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(body, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._dirty = False

    def _load(self, path: Path) -> None:
        try:
            body = json.loads(path.read_text())
            items = body["addresses"]
            if not isinstance(items, list):
                raise ValueError("addresses is not a list")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("address book %s unreadable, starting empty: %s", path, exc)
            return
        for item in items[: self.max_size]:
            try:
                self.add(item["addr"])
                failures = item.get("failures", 0)
                entry = self._entries.get(parse_address(item["addr"]).node_id)
                if entry is not None and isinstance(failures, int) and failures > 0:
                    entry.failures = min(failures, MAX_FAILURES - 1)
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("address book %s: skipping bad entry %r", path, item)
        self._dirty = False
