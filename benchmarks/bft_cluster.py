"""A 4-validator BFT devnet on loopback with the default timeouts: committed transfers per second,
commit latency from submission to finality (p50, p95), and the block interval with no load.

Run: `make bench` (after the single-node benchmark), or
`.venv/bin/python benchmarks/bft_cluster.py [--validators 4] [--transfers 12000] [--rate 1200]
[--senders 40] [--batch 100] [--idle-blocks 10]`.

1. `cybermiles devnet --validators N` starts N node processes (one per validator) on free
   loopback ports; we wait for block 2 everywhere.
2. Idle: the interval between consecutive blocks seen by a poller with no transactions.
3. Load: pre-signed transfers (signing is outside the timing) from `--senders` funded accounts;
   each sender's transactions go to one node (sender s -> node s mod N, so no node sees a nonce
   gap), in JSON-RPC batches offered open-loop at `--rate` transactions per second in total. A
   poller follows node 0's blocks and timestamps when each transaction is committed.
   Latency = commit seen - batch sent; rate = committed / (last commit seen - first send).

BFT finality is immediate: a block is final when it is committed, so "committed" is "final".
This is a script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from coincurve import PrivateKey
from eth_hash.auto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfers import REPO, Poller, Rpc, free_port, sign_transfer  # noqa: E402


def start_cluster(home: Path, validators: int, senders: int) -> tuple[subprocess.Popen, dict]:
    ports = [free_port() for _ in range(4)]
    base = 20000 + (ports[0] % 5000)
    cmd = [
        str(REPO / ".venv" / "bin" / "cybermiles"), "devnet", "--validators", str(validators),
        "--home", str(home), "--accounts", str(max(senders, validators)),
        "--rpc-port", str(base), "--p2p-port", str(base + 100),
        "--status-port", str(base + 101), "--metrics-port", str(base + 104),
    ]  # fmt: skip
    log = open(home.parent / "supervisor.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    manifest_path = home / "devnet.json"
    deadline = time.monotonic() + 180
    while not manifest_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"devnet did not start; see {home.parent / 'supervisor.log'}")
        time.sleep(0.2)
    return proc, json.loads(manifest_path.read_text())


def rpc_port(node: dict) -> int:
    return int(node["rpc_url"].rsplit(":", 1)[1])


def wait_height(port: int, height: int, timeout: float = 120.0) -> None:
    rpc = Rpc(port)
    deadline = time.monotonic() + timeout
    while int(str(rpc.call("eth_blockNumber")), 16) < height:
        if time.monotonic() > deadline:
            raise RuntimeError(f"node on {port} did not reach height {height}")
        time.sleep(0.05)
    rpc.close()


def idle_interval(port: int, blocks: int) -> list[float]:
    """Seconds between consecutive new heads seen by polling every 10 ms."""
    rpc = Rpc(port)
    seen: list[float] = []
    last = int(str(rpc.call("eth_blockNumber")), 16)
    while len(seen) <= blocks:
        head = int(str(rpc.call("eth_blockNumber")), 16)
        if head > last:
            seen.append(time.perf_counter())
            last = head
        time.sleep(0.01)
    rpc.close()
    return [b - a for a, b in zip(seen, seen[1:], strict=False)]


def build_batches(
    senders: int, transfers: int, batch: int, nodes: int
) -> tuple[list[list[tuple[bytes, list[str]]]], dict[str, int]]:
    from genesis import dev_accounts

    keys = [PrivateKey(a.private_key) for a in dev_accounts(senders)]
    per_node: list[list[bytes]] = [[] for _ in range(nodes)]
    nonces = [0] * senders
    for i in range(transfers):
        s = i % senders
        per_node[s % nodes].append(sign_transfer(keys[s], nonces[s], keccak(b"to%d" % i)[:20]))
        nonces[s] += 1
    batches: list[list[tuple[bytes, list[str]]]] = []
    hash_batch: dict[str, int] = {}
    for raws in per_node:
        node_batches = []
        for offset in range(0, len(raws), batch):
            chunk = raws[offset : offset + batch]
            hashes = ["0x" + keccak(r).hex() for r in chunk]
            body = json.dumps(
                [
                    {"jsonrpc": "2.0", "id": j, "method": "eth_sendRawTransaction",
                     "params": ["0x" + r.hex()]}
                    for j, r in enumerate(chunk)
                ]
            ).encode()  # fmt: skip
            for h in hashes:
                hash_batch[h] = len(hash_batch)
            node_batches.append((body, hashes))
        batches.append(node_batches)
    return batches, hash_batch


def submit(
    port: int,
    batches: list[tuple[bytes, list[str]]],
    interval: float,
    start: float,
    sent_at: dict[str, float],
    rejected: list[str],
) -> None:
    rpc = Rpc(port)
    for k, (body, hashes) in enumerate(batches):
        delay = start + k * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        now = time.perf_counter()
        for h in hashes:
            sent_at[h] = now
        replies = rpc.post(body)
        assert isinstance(replies, list)
        rejected.extend(str(r["error"]) for r in replies if "error" in r)
    rpc.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--transfers", type=int, default=12000)
    parser.add_argument("--rate", type=float, default=1200.0, help="offered tx/s in total")
    parser.add_argument("--senders", type=int, default=40)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--idle-blocks", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the devnet homes and logs")
    args = parser.parse_args()

    print(f"pre-signing {args.transfers} transfers from {args.senders} senders ...")
    batches, hash_batch = build_batches(args.senders, args.transfers, args.batch, args.validators)
    work = Path(tempfile.mkdtemp(prefix="cmt-bft-bench-"))
    proc, manifest = start_cluster(work / "devnet", args.validators, args.senders)
    ports = [rpc_port(n) for n in manifest["nodes"]]
    try:
        for port in ports:
            wait_height(port, 2)
        print(f"{args.validators} validators up (rpc ports {ports}); measuring idle blocks ...")
        gaps = idle_interval(ports[0], args.idle_blocks)
        print(
            f"block interval, no load: mean {statistics.mean(gaps):.3f}s  "
            f"p50 {percentile(gaps, 0.5):.3f}s  max {max(gaps):.3f}s  ({len(gaps)} blocks)"
        )

        rpc = Rpc(ports[0])
        start_block = int(str(rpc.call("eth_blockNumber")), 16)
        rpc.close()
        poller = Poller(ports[0], start_block, hash_batch)
        sent_at: dict[str, float] = {}
        rejected: list[str] = []
        per_node_rate = args.rate / args.validators
        start = time.perf_counter() + 0.2
        threads = [
            threading.Thread(
                target=submit,
                args=(port, node_batches, args.batch / per_node_rate, start, sent_at, rejected),
            )
            for port, node_batches in zip(ports, batches, strict=True)
        ]
        poller.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with poller.lock:
            poller.expected -= len(rejected)
        poller.join(timeout=180)
        if poller.error:
            raise poller.error
        committed = poller.committed
        wall = poller.last_commit - start
        latencies = [t - sent_at[h] for h, t in poller.tx_commit.items() if h in sent_at]
        print(
            f"load: offered {args.rate:.0f} tx/s, {args.transfers} transfers, "
            f"{len(rejected)} rejected{' (' + rejected[0] + ')' if rejected else ''}"
        )
        print(
            f"committed {committed} transfers in {wall:.2f}s = {committed / wall:,.0f} tx/s "
            f"in {len(poller.block_sizes)} blocks (avg {statistics.mean(poller.block_sizes):.0f})"
        )
        if latencies:
            print(
                f"latency submission -> final: p50 {percentile(latencies, 0.5):.3f}s  "
                f"p95 {percentile(latencies, 0.95):.3f}s  max {max(latencies):.3f}s"
            )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if args.keep:
            print(f"devnet homes and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
