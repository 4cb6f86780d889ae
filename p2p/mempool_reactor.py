"""Transaction gossip (channel MEMPOOL).

```
pool.on_pending(txs) ──▶ outbox ──▶ run(): per peer, the txs it is not known to have,
                                     in batches of at most MAX_BATCH_BYTES ──▶ peer.send
peer ──[raw, raw, ...]──▶ receive(): validate shape ─▶ mark known for that peer
                          ─▶ drop txs this node already checked ─▶ pool.check_txs in chunks
```
Per peer we remember (bounded LRU) the hashes it sent us and the ones we sent it, so a tx is
never sent back to the peer it came from nor twice to the same peer. Node-wide we remember the
hashes already handed to `check_txs` (accepted or not), so a tx arriving from several peers is
checked once, and the pool's rejections are never gossiped (only txs the pool reports pending
are). Rejections are not misbehaviour (peers race each other: "already known", "nonce too low"
are normal); only an undecodable message is, and a tx that breaks admission itself (the pool
raises instead of rejecting it). Such a tx is judged alone: the chunk it came in is checked
again tx by tx, so its neighbours are still admitted, and the peer is penalised once per
message, after the rest of the message has been admitted.

Admission is synchronous CPU work; it runs in chunks of `check_chunk` txs with a trio
checkpoint between them, so one large batch cannot starve consensus (64 txs, ~10 ms: every
scheduler pass runs one chunk per peer, and consensus inputs wait for the pass to end). A tx
hash is keccak256 of its raw bytes, computed before decoding.

Not done: a newly connected peer is not sent the txs that were already pending.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import trio
from eth_hash.auto import keccak

from p2p.abc import MEMPOOL, PRIORITY_MEMPOOL, ChannelDescriptor, Peer, PendingTx, TxPool
from p2p.errors import PeerMisbehaved

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 1 << 20
MAX_TX_BYTES = 128 * 1024
MAX_TXS_PER_MESSAGE = 10_000
_PACKET_OVERHEAD = 16  # msgpack array + channel headers
_ITEM_OVERHEAD = 5  # msgpack bin32 header, the worst case
PENALTY_MALFORMED = 20
MEMPOOL_CHANNEL = ChannelDescriptor(
    MEMPOOL,
    priority=PRIORITY_MEMPOOL,
    send_queue_capacity=64,  # x 1 MiB batches: bounds the memory one slow peer can pin
    max_message_bytes=MAX_BATCH_BYTES + _PACKET_OVERHEAD,
)


class BoundedSet:
    """A set that forgets its least recently added/touched members beyond `capacity`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: bytes) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)


@dataclass
class MempoolStats:
    received: int = 0  # txs in messages from peers
    duplicates: int = 0  # of those, already checked by this node
    admitted: int = 0
    rejected: int = 0
    sent: int = 0  # tx copies enqueued to peers
    dropped: int = 0  # tx copies not sent because a peer's queue was full


def _parse_batch(message: Any) -> list[bytes]:
    if not isinstance(message, list) or not 0 < len(message) <= MAX_TXS_PER_MESSAGE:
        raise PeerMisbehaved("mempool message is not a list of txs", PENALTY_MALFORMED)
    for raw in message:
        if not isinstance(raw, bytes) or not 0 < len(raw) <= MAX_TX_BYTES:
            raise PeerMisbehaved("mempool message holds a non-tx item", PENALTY_MALFORMED)
    return message


def batches(
    txs: Sequence[PendingTx], max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[list[PendingTx]]:
    """Split txs into consecutive batches whose encoded size stays within `max_bytes`."""
    batch: list[PendingTx] = []
    size = 0
    for tx in txs:
        cost = len(tx.raw) + _ITEM_OVERHEAD
        if cost > max_bytes:
            log.warning("mempool: tx %s too large to gossip", tx.hash.hex())
            continue
        if batch and size + cost > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(tx)
        size += cost
    if batch:
        yield batch


class MempoolReactor:
    name = "mempool"

    def __init__(
        self,
        pool: TxPool,
        *,
        known_per_peer: int = 8192,
        seen_capacity: int = 65536,
        check_chunk: int = 64,
    ) -> None:
        self.channels: Sequence[ChannelDescriptor] = (MEMPOOL_CHANNEL,)
        self.pool = pool
        self.known_per_peer = known_per_peer
        self.check_chunk = check_chunk
        self.stats = MempoolStats()
        self._checked = BoundedSet(seen_capacity)  # hashes this node has already admitted/judged
        self._peers: dict[str, Peer] = {}
        self._outbox: list[PendingTx] = []
        self._wake = trio.Event()
        pool.on_pending.append(self._on_pending)

    # ----------------------------------------------------------------- Reactor protocol

    def add_peer(self, peer: Peer) -> None:
        peer.state[self.name] = BoundedSet(self.known_per_peer)
        self._peers[peer.node_id] = peer

    def remove_peer(self, peer: Peer, reason: str) -> None:
        if self._peers.get(peer.node_id) is peer:
            del self._peers[peer.node_id]

    async def receive(self, channel: int, peer: Peer, message: Any) -> None:
        raws = _parse_batch(message)
        known: BoundedSet = peer.state[self.name]
        fresh: list[bytes] = []
        for raw in raws:
            tx_hash = keccak(raw)
            known.add(tx_hash)  # before admission: pending notifications must skip this peer
            if tx_hash in self._checked:
                self.stats.duplicates += 1
                continue
            self._checked.add(tx_hash)
            fresh.append(raw)
        self.stats.received += len(raws)
        broke_admission = 0
        shipped = self._ship_senders(fresh)
        for n, start in enumerate(range(0, len(fresh), self.check_chunk)):
            senders = await self._senders(shipped, n)
            outcomes, broken = self._admit_chunk(fresh[start : start + self.check_chunk], senders)
            broke_admission += broken
            rejected = sum(1 for o in outcomes if isinstance(o, BaseException))
            self.stats.rejected += rejected
            self.stats.admitted += len(outcomes) - rejected
            await trio.lowlevel.checkpoint()
        if broke_admission:
            raise PeerMisbehaved(f"{broke_admission} txs broke admission", PENALTY_MALFORMED)

    def _ship_senders(self, raws: list[bytes]) -> Sequence[Future[Any]]:
        """The pool's worker processes recover the senders of every chunk of `raws`, in
        order, while the event loop (which runs consensus too) goes on; empty: check_txs
        recovers them (no workers, few txs, or shipping failed)."""
        try:
            return self.pool.ship_senders(raws, self.check_chunk)
        except Exception:
            log.exception("mempool: shipping the senders of %d txs failed", len(raws))
            return []

    @staticmethod
    async def _senders(shipped: Sequence[Future[Any]], n: int) -> Sequence[object] | None:
        """Chunk n's shipped senders, waited for in a thread; None: check_txs recovers them."""
        if not shipped:
            return None
        try:
            return await trio.to_thread.run_sync(shipped[n].result)
        except Exception:
            log.exception("mempool: a recovery worker failed; recovering on the loop")
            return None

    def _admit_chunk(
        self, raws: list[bytes], senders: Sequence[object] | None = None
    ) -> tuple[list[object], int]:
        """Per raw tx its outcome, and how many txs made the pool raise."""
        try:
            outcomes = list(self.pool.check_txs(raws, senders))
            if len(outcomes) == len(raws):
                return outcomes, 0
            log.error("mempool: pool answered %d txs with %d outcomes", len(raws), len(outcomes))
        except Exception:
            log.exception("mempool: admission of a chunk of %d txs failed", len(raws))
        # Judge each tx alone, so the one that broke the chunk cannot cost the others.
        singles = [self._admit_one(raw) for raw in raws]
        return [outcome for outcome, _ in singles], sum(broke for _, broke in singles)

    def _admit_one(self, raw: bytes) -> tuple[object, bool]:
        """(outcome, whether the pool raised on it)."""
        try:
            (outcome,) = self.pool.check_txs([raw])
        except Exception as exc:
            log.warning("mempool: tx %s broke admission: %r", keccak(raw).hex(), exc)
            return exc, True
        return outcome, False

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            unique: dict[bytes, PendingTx] = {}  # the pool may report a tx twice
            for tx in self._outbox:
                unique.setdefault(tx.hash, tx)
            self._outbox = []
            self._gossip(list(unique.values()))

    # ----------------------------------------------------------------- gossip

    def _on_pending(self, txs: Sequence[Any]) -> None:
        """Pool listener: runs synchronously inside the pool; only queues work."""
        for tx in txs:
            self._checked.add(tx.hash)  # a peer echoing our own tx must not re-check it
        self._outbox.extend(txs)
        self._wake.set()

    def _gossip(self, txs: Sequence[PendingTx]) -> None:
        for node_id in sorted(self._peers):
            peer = self._peers[node_id]
            known: BoundedSet = peer.state[self.name]
            for batch in batches([tx for tx in txs if tx.hash not in known]):
                if not peer.send(MEMPOOL, [tx.raw for tx in batch]):
                    self.stats.dropped += len(batch)
                    continue
                self.stats.sent += len(batch)
                for tx in batch:
                    known.add(tx.hash)
