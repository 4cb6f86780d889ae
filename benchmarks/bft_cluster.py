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
`--profile DIR` records every validator with py-spy during the load (collapsed stacks per node);
the CPU seconds the validators (with their sender-recovery workers) spent while loaded are
printed either way.

`--blocksync N`: blocks/s of blocksync instead. The validators make a chain of N blocks with
`skip_timeout_commit` (as fast as consensus goes; `--blocksync-transfers T` sends T transfers
meanwhile so the blocks are full), then the last validator's store and WAL are deleted and all
nodes restart with the default timeouts; the emptied node catches up from its peers: printed is
blocks/s from its first synced block to the height the chain had, and its CPU per block.

This is a script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
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
    deadline = time.monotonic() + timeout
    while True:
        try:
            rpc = Rpc(port, timeout=5.0)
            try:
                if int(str(rpc.call("eth_blockNumber")), 16) >= height:
                    return
            finally:
                rpc.close()
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise RuntimeError(f"node on {port} did not reach height {height}")
        time.sleep(0.1)


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


# After the last submission, how long the poller waits for a commit of ours before it stops.
# A refused transaction strands its sender's later nonces in the pool for good (a nonce gap:
# the node is right to keep them queued), so with refusals `expected` is never reached; the
# CPU window ends here, so waiting longer would bill idle blocks and polls as load.
QUIET_TAIL_S = 5.0


def wait_for_commits(poller: Poller, limit_s: float = 180.0) -> None:
    started = time.perf_counter()
    while poller.is_alive() and time.perf_counter() < started + limit_s:
        poller.join(timeout=0.2)
        if time.perf_counter() - max(poller.last_progress, started) > QUIET_TAIL_S:
            poller.stop.set()
    poller.join(timeout=5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its child processes (the sender-recovery worker),
    on Linux: the measure least disturbed by a busy machine."""
    total = _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))
    for child in _children(pid):
        try:
            total += _stat_cpu_seconds(Path(f"/proc/{child}/stat"))
        except OSError:
            continue  # ended meanwhile
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return sorted(found)


def _stat_cpu_seconds(stat: Path) -> float:
    """utime + stime from a /proc stat file (a process's or one thread's)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """Thread id -> (name now, utime + stime) of a process's threads (Linux). By id, not name:
    trio renames its worker thread for every job."""
    out: dict[int, tuple[str, float]] = {}
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        try:
            out[int(task.name)] = ((task / "comm").read_text().strip(),
                                   _stat_cpu_seconds(task / "stat"))  # fmt: skip
        except OSError:
            continue  # the thread ended meanwhile
    return out


class Profilers:
    """`py-spy record` on every validator process for the loaded phase (--profile DIR): one
    collapsed-stacks file per node (flamegraph.pl / speedscope read them)."""

    def __init__(self, pids: list[int], out: Path | None) -> None:
        self.procs: list[subprocess.Popen] = []
        if out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(REPO / ".venv" / "bin" / "py-spy")
        for i, pid in enumerate(pids):
            cmd = [spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
                   "--output", str(out / f"node{i}.txt"), "--nonblocking", "--threads"]  # fmt: skip
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            proc.wait(timeout=60)


@dataclass
class Measured:
    idle_gaps: list[float]
    committed: int
    wall: float
    blocks: list[int]
    latencies: list[float]
    rejected: list[str]
    cpu: list[float]  # CPU seconds per validator process during the loaded phase
    stranded: int = 0  # accepted, never committed (behind a refused nonce)

    @property
    def rate(self) -> float:
        return self.committed / self.wall

    def report(self, label: str, offered: float) -> None:
        gaps = self.idle_gaps
        print(f"[{label}]")
        print(
            f"  block interval, no load: mean {statistics.mean(gaps):.3f}s  "
            f"p50 {percentile(gaps, 0.5):.3f}s  max {max(gaps):.3f}s  ({len(gaps)} blocks)"
        )
        print(
            f"  offered {offered:.0f} tx/s: committed {self.committed} transfers in "
            f"{self.wall:.2f}s = {self.rate:,.0f} tx/s in {len(self.blocks)} blocks "
            f"(avg {statistics.mean(self.blocks):.0f}); {len(self.rejected)} rejected"
            + (f" ({self.rejected[0]})" if self.rejected else "")
        )
        if self.stranded:
            print(
                f"  {self.stranded} accepted but never committed: queued behind a refused "
                "nonce of their sender"
            )
        print(
            f"  latency submission -> final: p50 {percentile(self.latencies, 0.5):.3f}s  "
            f"p95 {percentile(self.latencies, 0.95):.3f}s  max {max(self.latencies):.3f}s"
        )
        per_k = 1000 * sum(self.cpu) / max(1, self.committed)
        print(
            f"  CPU while loaded: {sum(self.cpu):.1f}s over {len(self.cpu)} nodes "
            f"({' '.join(f'{c:.1f}' for c in self.cpu)}) = {per_k:.2f} CPU-s per 1,000 tx"
        )


def measure(ports: list[int], pids: list[int], args: argparse.Namespace) -> Measured:
    batches, hash_batch = build_batches(args.senders, args.transfers, args.batch, len(ports))
    for port in ports:
        wait_height(port, 2)
    gaps = idle_interval(ports[0], args.idle_blocks)
    rpc = Rpc(ports[0])
    start_block = int(str(rpc.call("eth_blockNumber")), 16)
    rpc.close()
    # Every 20 ms, not the 5 ms of the single-node scripts: 200 polls a second cost node 0 a
    # few per cent of a core that the 4 validators share; commits are seen <= 20 ms late.
    poller = Poller(ports[0], start_block, hash_batch, poll_interval=0.02)
    sent_at: dict[str, float] = {}
    rejected: list[str] = []
    interval = args.batch / (args.rate / len(ports))
    start = time.perf_counter() + 0.2
    threads = [
        threading.Thread(
            target=submit, args=(port, node_batches, interval, start, sent_at, rejected)
        )
        for port, node_batches in zip(ports, batches, strict=True)
    ]
    profilers = Profilers(pids, args.profile)
    cpu_before = [cpu_seconds(pid) for pid in pids]
    poller.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with poller.lock:
        poller.expected -= len(rejected)
    wait_for_commits(poller)
    cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
    profilers.stop()
    if poller.error:
        raise poller.error
    latencies = [t - sent_at[h] for h, t in poller.tx_commit.items() if h in sent_at]
    return Measured(
        gaps,
        poller.committed,
        poller.last_commit - start,
        poller.block_sizes,
        latencies,
        rejected,
        cpu,
        stranded=len(sent_at) - len(rejected) - poller.committed,
    )


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_ours(work: Path, args: argparse.Namespace) -> Measured:
    """The devnet exactly as `cybermiles devnet --validators N` runs it."""
    proc, manifest = start_cluster(work / "ours", args.validators, args.senders)
    try:
        nodes = manifest["nodes"]
        return measure([rpc_port(n) for n in nodes], [int(n["pid"]) for n in nodes], args)
    finally:
        stop([proc])


def run_tendermint_timing(work: Path, args: argparse.Namespace) -> Measured:
    """The same devnet with `consensus.early_height_start = false`: every height waits the
    whole timeout_commit, as Tendermint does (the nodes are started directly, since the
    devnet supervisor rewrites their configs)."""
    home = work / "baseline"
    proc, manifest = start_cluster(home, args.validators, args.senders)
    stop([proc])
    nodes = []
    for node in manifest["nodes"]:
        config = Path(node["home"]) / "config" / "config.toml"
        text = config.read_text().replace("early_height_start = true", "early_height_start = false")
        config.write_text(text)
        log = open(Path(node["home"]) / "node.log", "ab")
        cmd = [str(REPO / ".venv" / "bin" / "cybermiles"), "node", "start", "--home", node["home"]]
        nodes.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    try:
        ports = [rpc_port(n) for n in manifest["nodes"]]
        return measure(ports, [p.pid for p in nodes], args)
    finally:
        stop(nodes)


def start_nodes(manifest: dict, indices: list[int]) -> list[subprocess.Popen]:
    procs = []
    for i in indices:
        home = manifest["nodes"][i]["home"]
        log = open(Path(home) / "node.log", "ab")
        cmd = [str(REPO / ".venv" / "bin" / "cybermiles"), "node", "start", "--home", home]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    return procs


def set_config(manifest: dict, old: str, new: str) -> None:
    for node in manifest["nodes"]:
        config = Path(node["home"]) / "config" / "config.toml"
        config.write_text(config.read_text().replace(old, new))


def head_of(port: int) -> int:
    rpc = Rpc(port, timeout=5.0)
    try:
        return int(str(rpc.call("eth_blockNumber")), 16)
    finally:
        rpc.close()


def make_chain(manifest: dict, args: argparse.Namespace) -> int:
    """The validators make at least `--blocksync` blocks; returns the head they reached."""
    makers = list(range(len(manifest["nodes"])))
    ports = [rpc_port(manifest["nodes"][i]) for i in makers]
    set_config(manifest, "skip_timeout_commit = false", "skip_timeout_commit = true")
    procs = start_nodes(manifest, makers)
    try:
        for port in ports:
            wait_height(port, 1)
        if args.blocksync_transfers:
            batches, _ = build_batches(
                args.senders, args.blocksync_transfers, args.batch, len(ports)
            )
            rate_per_node = args.rate / len(ports)
            start = time.perf_counter()
            threads = [
                threading.Thread(
                    target=submit, args=(port, b, args.batch / rate_per_node, start, {}, [])
                )
                for port, b in zip(ports, batches, strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        wait_height(ports[0], args.blocksync, timeout=3600)
        return head_of(ports[0])
    finally:
        stop(procs)
        set_config(manifest, "skip_timeout_commit = true", "skip_timeout_commit = false")


def run_blocksync(work: Path, args: argparse.Namespace) -> None:
    proc, manifest = start_cluster(work / "sync", args.validators, args.senders)
    stop([proc])  # the homes exist; the nodes are started directly from here on
    target = make_chain(manifest, args)
    print(f"chain of {target} blocks made; starting the last node again with an empty store")
    fresh = manifest["nodes"][-1]
    # (its signing record stays: it only refuses heights it signed, which the chain passes).
    data = Path(fresh["home"]) / "data"
    shutil.rmtree(data / "chain")
    for wal in data.glob("cs.wal*"):
        wal.unlink()
    procs = start_nodes(manifest, list(range(len(manifest["nodes"]))))
    port = rpc_port(fresh)
    profilers = Profilers([], None)
    try:
        first: tuple[float, int, float] | None = None
        pid = procs[-1].pid
        while True:
            try:
                height = head_of(port)
            except OSError:
                height = 0
            now = time.perf_counter()
            if height > 0 and first is None:
                first = (now, height, cpu_seconds(pid))
                peers_cpu0 = [cpu_seconds(p.pid) for p in procs[:-1]]
                threads0 = thread_cpu_seconds(pid)
                profilers = Profilers([pid], args.profile)  # the catching up, not the start
            if height >= target:
                break
            # Every 50 ms: polling the syncing node at 20 ms took ~3 % of its CPU (160
            # requests/s); the finish is seen at most 50 ms late (counted against us).
            time.sleep(0.05)
        assert first is not None
        t0, h0, cpu0 = first
        blocks = height - h0
        wall = now - t0
        cpu = cpu_seconds(pid) - cpu0
        peers_cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs[:-1], peers_cpu0, strict=True)]
        threads = {
            f"{name} ({tid})": used - threads0.get(tid, ("", 0.0))[1]
            for tid, (name, used) in sorted(thread_cpu_seconds(pid).items())
        }
        print(
            f"[blocksync, {target} blocks] synced {blocks} blocks in {wall:.2f}s = "
            f"{blocks / wall:,.0f} blocks/s; fresh node CPU {cpu:.2f}s = "
            f"{1000 * cpu / max(1, blocks):.2f} ms per block; the serving peers' CPU "
            f"{' + '.join(f'{c:.2f}' for c in peers_cpu)} s"
        )
        busy = {name: used for name, used in threads.items() if used >= 0.05}
        print("  fresh node CPU by thread: " + ", ".join(f"{n} {u:.2f}s" for n, u in busy.items()))
    finally:
        profilers.stop()
        stop(procs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--transfers", type=int, default=12000)
    parser.add_argument("--rate", type=float, default=1200.0, help="offered tx/s in total")
    parser.add_argument("--senders", type=int, default=40)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--idle-blocks", type=int, default=10)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the devnet homes and logs")
    parser.add_argument(
        "--profile", type=Path, help="py-spy every validator while loaded; stacks go to DIR"
    )
    parser.add_argument("--blocksync", type=int, default=0, help="measure blocksync of N blocks")
    parser.add_argument("--blocksync-transfers", type=int, default=0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cmt-bft-bench-"))
    try:
        if args.blocksync:
            run_blocksync(work, args)
            return
        print(
            f"{args.validators} validators, {args.transfers} transfers offered at {args.rate:.0f}/s"
        )
        ours = run_ours(work, args)
        ours.report("this node (default config)", args.rate)
        if not args.skip_baseline:
            base = run_tendermint_timing(work, args)
            base.report("baseline: Tendermint timing (early_height_start = false)", args.rate)
            p50 = percentile(ours.latencies, 0.5) / percentile(base.latencies, 0.5)
            print(
                f"ratio this/baseline: throughput {ours.rate / base.rate:.2f}x, "
                f"p50 latency {p50:.2f}x"
            )
    finally:
        if args.keep:
            print(f"devnet homes and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
