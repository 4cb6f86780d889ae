"""RPC latency while blocks of ~2,000 transfers execute back to back (issue #13: p99 of
eth_blockNumber and eth_getBalance under 50 ms).

Run: `make bench`, or `.venv/bin/python benchmarks/latency_under_load.py [--duration 20]
[--block-txs 2000] [--senders 2000] [--txs N] [--batch N] [--interval 0.005]
[--only node,anvil,hardhat] [--cybermiles PATH] [--cache DIR]`.

Per devnet (default: this node only; anvil runs with 1 s blocks, Hardhat automines):
1. Untimed: the block gas limit is raised to --block-txs transfers (evm_setBlockGasLimit), dev
   account 0 funds --senders fresh accounts, and --txs transfers are signed with coincurve
   (default: 2,500 per second of --duration).
2. A loader thread (its own connection) posts JSON-RPC batches of --batch (default --block-txs,
   at most 1,000: this node's batch limit) eth_sendRawTransaction whenever fewer than 3 blocks'
   worth are uncommitted, so the mempool never runs dry, and follows the committed blocks
   (eth_getBlockTransactionCountByNumber).
3. Once the first loaded block is committed, a prober on another connection calls
   eth_blockNumber and eth_getBalance alternately, one call at a time, every --interval s, for
   --duration s. Printed: p50/p95/p99/max latency per method, committed tx/s in the window,
   blocks and their average size, and whether the loader ran out of transactions.
This is a script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (  # noqa: E402
    DEFAULT_CACHE,
    REPO,
    Chain,
    Devnet,
    Rpc,
    anvil_devnet,
    cybermiles_devnet,
    dev_funder,
    format_table,
    free_port,
    fresh_senders,
    funding,
    git_commit,
    hardhat_devnet,
    install_peers,
    percentile,
    send_and_wait,
    send_raw_batch_body,
    stop,
    wait_answering,
)

PEERS = ("node", "anvil", "hardhat")
METHODS = ("eth_blockNumber", "eth_getBalance")
MAX_BATCH = 1000  # this node's default rpc max_batch


class Loader(threading.Thread):
    """Keeps about `backlog` transactions uncommitted; logs (time seen, txs) per new block."""

    def __init__(self, port: int, bodies: list[tuple[bytes, int]], backlog: int) -> None:
        super().__init__(daemon=True)
        self.rpc = Rpc(port, timeout=120.0)
        self.bodies = bodies  # (batch body, transactions in it)
        self.backlog = backlog
        self.next_block = int(self.rpc.call("eth_blockNumber"), 16) + 1
        self.sent = self.committed = 0
        self.blocks: list[tuple[float, int]] = []
        self.dry_at: float | None = None
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            queue = list(reversed(self.bodies))
            while not self.stop.is_set():
                if queue and self.sent - self.committed < self.backlog:
                    body, count = queue.pop()
                    replies = self.rpc.post(body)
                    if not isinstance(replies, list):
                        raise RuntimeError(f"batch refused: {replies!r:.300}")
                    errors = [r["error"] for r in replies if "error" in r]
                    if errors:
                        raise RuntimeError(f"rejected: {errors[0]}")
                    self.sent += count
                    if not queue:
                        self.dry_at = time.perf_counter()
                if not self.follow() and (not queue or self.sent - self.committed >= self.backlog):
                    time.sleep(0.005)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.rpc.close()

    def follow(self) -> bool:
        """Count the transactions of blocks committed since the last look; whether any were."""
        head = int(self.rpc.call("eth_blockNumber"), 16)
        if head < self.next_block:
            return False
        now = time.perf_counter()
        numbers = range(self.next_block, head + 1)
        counts = self.rpc.batch(
            [("eth_getBlockTransactionCountByNumber", [hex(n)]) for n in numbers]
        )
        for count in counts:
            self.blocks.append((now, int(count, 16)))
            self.committed += int(count, 16)
        self.next_block = head + 1
        return True


@dataclass
class Probe:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    window: tuple[float, float] = (0.0, 0.0)


def probe(port: int, accounts: Sequence[str], duration: float, interval: float) -> Probe:
    """One call at a time on its own connection, every `interval` s, for `duration` s."""
    rpc = Rpc(port, timeout=60.0)
    rnd = random.Random(7)
    out = Probe()
    try:
        start = time.perf_counter()
        tick = start
        n = 0
        while (now := time.perf_counter()) < start + duration:
            method = METHODS[n % 2]
            params: list[object] = [] if n % 2 == 0 else [rnd.choice(accounts), "latest"]
            rpc.call(method, *params)
            out.latencies[method].append(time.perf_counter() - now)
            n += 1
            tick += interval
            time.sleep(max(0.0, tick - time.perf_counter()))
        out.window = (start, time.perf_counter())
    finally:
        rpc.close()
    return out


@dataclass(frozen=True)
class Outcome:
    latencies: dict[str, list[float]]
    committed_per_s: float
    blocks: int
    avg_block: float
    ran_dry: bool


def run_one(devnet: Devnet, args: argparse.Namespace, say: Callable[[str], None]) -> Outcome:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"lat-{devnet.name}-") as scratch:
        home = Path(scratch) / "home"
        proc = devnet.spawn(port, home)
        try:
            wait_answering(proc, port, devnet.name, home)
            rpc = Rpc(port, timeout=300.0)
            try:
                rpc.call("evm_setBlockGasLimit", hex(args.block_txs * 21_000 + 21_000))
                chain = Chain.of(rpc)
                senders = fresh_senders(b"latency sender", args.senders)
                send_and_wait(rpc, funding(chain, dev_funder(rpc), senders))
            finally:
                rpc.close()
            say(f"    signing {args.txs} transfers ...")
            rnd = random.Random(3)
            raws = [
                senders[i % len(senders)].sign(chain, to=rnd.randbytes(20), gas=21_000, value=1)
                for i in range(args.txs)
            ]
            bodies = [
                (send_raw_batch_body(raws[o : o + args.batch]), len(raws[o : o + args.batch]))
                for o in range(0, len(raws), args.batch)
            ]
            loader = Loader(port, bodies, backlog=3 * args.block_txs)
            loader.start()
            while loader.committed == 0 and loader.is_alive():
                time.sleep(0.01)
            accounts = ["0x" + s.address.hex() for s in senders]
            result = probe(port, accounts, args.duration, args.interval)
            loader.stop.set()
            loader.join(30)
            if loader.error is not None:
                raise RuntimeError(f"loader failed: {loader.error!r}") from loader.error
            start, end = result.window
            inside = [n for t, n in loader.blocks if start <= t <= end]
            return Outcome(
                latencies=result.latencies,
                committed_per_s=sum(inside) / (end - start),
                blocks=len(inside),
                avg_block=sum(inside) / len(inside) if inside else 0.0,
                ran_dry=loader.dry_at is not None and loader.dry_at < end,
            )
        finally:
            stop(proc)


def report(outcomes: dict[str, Outcome]) -> str:
    header = ["", *outcomes]
    rows = []
    for method in METHODS:
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
            cells = [
                f"{percentile(sorted(o.latencies[method]), q) * 1000:.1f}"
                for o in outcomes.values()
            ]
            rows.append([f"{method} {label} ms", *cells])
        rows.append(
            [f"{method} calls", *(str(len(o.latencies[method])) for o in outcomes.values())]
        )
    rows.append(
        ["committed tx/s meanwhile", *(f"{o.committed_per_s:,.0f}" for o in outcomes.values())]
    )
    rows.append(["blocks meanwhile", *(str(o.blocks) for o in outcomes.values())])
    rows.append(["avg txs per block", *(f"{o.avg_block:,.0f}" for o in outcomes.values())])
    rows.append(["loader ran dry", *("yes" if o.ran_dry else "no" for o in outcomes.values())])
    return format_table(header, rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of probing")
    parser.add_argument("--block-txs", type=int, default=2000, help="transfers per block (gas)")
    parser.add_argument("--senders", type=int, default=2000)
    parser.add_argument("--txs", type=int, default=0, help="default: 2,500 per --duration second")
    parser.add_argument(
        "--batch", type=int, default=0, help="requests per loader batch (default: --block-txs)"
    )
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between probes")
    parser.add_argument("--only", default="node", help="comma-separated: " + ", ".join(PEERS))
    parser.add_argument(
        "--cybermiles",
        type=Path,
        default=REPO / ".venv" / "bin" / "cybermiles",
        help="the cybermiles executable (another checkout's venv, to compare commits)",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where peers live")
    args = parser.parse_args(argv)
    args.txs = args.txs or int(2500 * args.duration)
    # an automine node builds a block from what has arrived when the last one is done: a batch
    # the size of a block makes blocks of that size, where the node allows such batches
    args.batch = args.batch or min(args.block_txs, MAX_BATCH)
    if args.batch > args.senders:
        # Hardhat runs a batch's requests concurrently and cannot queue a nonce gap
        parser.error("--batch must not exceed --senders (one nonce per sender in a batch)")
    wanted = [p for p in args.only.split(",") if p]
    if not wanted or set(wanted) - set(PEERS):
        parser.error(f"--only takes {', '.join(PEERS)}")

    def say(line: str) -> None:
        print(line, flush=True)

    commit = git_commit(args.cybermiles.resolve().parent.parent.parent)
    install_peers(args.cache, [p for p in wanted if p != "node"], say)
    makers: dict[str, Callable[[], Devnet | str]] = {
        "node": lambda: cybermiles_devnet(args.cybermiles, ["--quiet"], name="this node"),
        "anvil": lambda: anvil_devnet(args.cache, ["--block-time", "1"], name="anvil 1s"),
        "hardhat": lambda: hardhat_devnet(args.cache, name="hardhat"),
    }
    outcomes: dict[str, Outcome] = {}
    for peer in wanted:
        devnet = makers[peer]()
        if isinstance(devnet, str):
            say(f"skipped {devnet}")
            continue
        say(f"{devnet.name}: blocks of {args.block_txs} transfers, probing {args.duration:g} s ...")
        try:
            outcomes[devnet.name] = run_one(devnet, args, say)
        except (RuntimeError, OSError, KeyError, ValueError) as exc:
            say(f"skipped {devnet.name}: {exc}")
    print()
    print(
        f"RPC latency under load, commit {commit}: blocks of up to {args.block_txs} transfers "
        f"back to back, one probe call every {args.interval * 1000:g} ms for {args.duration:g} s"
    )
    print(report(outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
