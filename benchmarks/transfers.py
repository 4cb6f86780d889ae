"""Committed value transfers per second: stock py-evm block building vs the node via JSON-RPC.

Run: `make bench`, or `.venv/bin/python benchmarks/transfers.py [--transfers 20000] [--batch 500]
[--senders N] [--baseline-transfers 5000] [--skip-baseline] [--port P]`.

1. Baseline: an in-process py-evm `MiningChain` (PragueVM from block 0, `AtomicDB`, 30M gas blocks,
   base fee 0) builds, seals and persists full blocks of pre-signed transfers with `mine_all`
   (the fastest stock way: one `apply_all_transactions` per block, roots once per block).
   Sender recovery happens inside the timed region, as it does in the node.
2. Node: a real `cybermiles devnet` process (automine) receives the same kind of pre-signed
   transfers as JSON-RPC batches of `eth_sendRawTransaction` over one keep-alive HTTP connection;
   a poller thread follows `eth_blockNumber` / `eth_getBlockByNumber` and timestamps the block in
   which every transaction is committed. Rate = transfers / (last commit seen - first send).

This is a script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coincurve import PrivateKey
from eth_hash.auto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (  # noqa: E402  (bft_cluster.py imports REPO, Poller, Rpc, free_port from here)
    REPO,
    Poller,
    Rpc,
    free_port,
    percentile,
    process_tree_cpu,
    send_raw_batch_body,
    sign_legacy,
)

CHAIN_ID = 1234  # devnet chain id (genesis.presets.DEVNET_CHAIN_ID)
BLOCK_GAS_LIMIT = 30_000_000  # devnet block gas limit (genesis.presets.DEVNET_GAS_LIMIT)
GAS_PRICE = 2 * 10**9  # devnet minimum gas price
TRANSFER_GAS = 21_000
MEMPOOL_PER_SENDER = 256  # node's default per-sender mempool limit


# --------------------------------------------------------------------------------------------
# Signing (done before any timing): legacy EIP-155 transfers, signed with coincurve directly.
# --------------------------------------------------------------------------------------------


def sign_transfer(key: PrivateKey, nonce: int, to: bytes, value: int = 1) -> bytes:
    """Raw RLP of a signed legacy EIP-155 value transfer at the devnet's minimum gas price."""
    return sign_legacy(
        key, chain_id=CHAIN_ID, nonce=nonce, gas_price=GAS_PRICE, gas=TRANSFER_GAS, to=to,
        value=value,
    )  # fmt: skip


def presign(keys: Sequence[PrivateKey], count: int, seed: int) -> list[bytes]:
    """`count` transfers spread round-robin over `keys` (tx i: sender i % S, nonce i // S), each
    to a fresh random recipient, in the order they should be submitted."""
    rnd = random.Random(seed)
    n = len(keys)
    return [sign_transfer(keys[i % n], i // n, rnd.randbytes(20)) for i in range(count)]


# --------------------------------------------------------------------------------------------
# 1. Baseline: stock py-evm
# --------------------------------------------------------------------------------------------


@dataclass
class BaselineResult:
    transfers: int
    blocks: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.transfers / self.seconds


def run_baseline(transfers: int, senders: int) -> BaselineResult:
    from eth.chains.base import MiningChain
    from eth.db.atomic import AtomicDB
    from eth.vm.forks import PragueVM

    keys = [PrivateKey(keccak(b"baseline-sender-%d" % i)) for i in range(senders)]
    state: dict[Any, Any] = {
        keccak(k.public_key.format(compressed=False)[1:])[12:]: {
            "balance": 10**24,
            "nonce": 0,
            "code": b"",
            "storage": {},
        }
        for k in keys
    }
    chain_class = MiningChain.configure(
        __name__="PragueBenchChain", vm_configuration=((0, PragueVM),), chain_id=CHAIN_ID
    )
    genesis_params: dict[str, Any] = {
        "difficulty": 0,
        "gas_limit": BLOCK_GAS_LIMIT,
        "timestamp": int(time.time()),
        "base_fee_per_gas": 0,
        "coinbase": b"\x01" * 20,
    }
    chain: Any = chain_class.from_genesis(AtomicDB(), genesis_params, state)

    # Decode outside the timer, but do not touch `.sender`: recovery stays inside the timed part.
    builder = PragueVM.get_transaction_builder()
    txs = [builder.decode(raw) for raw in presign(keys, transfers, seed=1)]
    per_block = BLOCK_GAS_LIMIT // TRANSFER_GAS

    blocks = 0
    start = time.perf_counter()
    for offset in range(0, len(txs), per_block):
        # Keep the node's constant 30M gas limit (py-evm's default would drift it every block).
        chain.header = chain.header.copy(gas_limit=BLOCK_GAS_LIMIT)
        result, _, computations = chain.mine_all(txs[offset : offset + per_block])
        block = result.imported_block
        if len(block.transactions) != len(txs[offset : offset + per_block]) or any(
            not c.is_success for c in computations
        ):
            raise RuntimeError(f"baseline block {block.number} did not apply every transfer")
        blocks += 1
    elapsed = time.perf_counter() - start
    return BaselineResult(transfers=len(txs), blocks=blocks, seconds=elapsed)


# --------------------------------------------------------------------------------------------
# 2. The node through JSON-RPC
# --------------------------------------------------------------------------------------------


@dataclass
class NodeRun:
    sent: int = 0
    rejected: int = 0
    first_errors: list[str] = field(default_factory=list)
    committed: int = 0
    blocks: int = 0
    block_sizes: list[int] = field(default_factory=list)
    first_send: float = 0.0
    last_send_done: float = 0.0
    last_commit: float = 0.0
    batch_latencies: list[float] = field(default_factory=list)
    node_cpu: float = float("nan")
    client_cpu: float = 0.0
    timed_out: bool = False

    @property
    def wall(self) -> float:
        return self.last_commit - self.first_send

    @property
    def rate(self) -> float:
        return self.committed / self.wall if self.wall > 0 else 0.0


def start_node(home: Path, port: int, accounts: int, extra: Sequence[str], log_path: Path):
    cmd = [
        str(REPO / ".venv" / "bin" / "cybermiles"), "devnet",
        "--home", str(home), "--rpc-port", str(port), "--accounts", str(accounts), "--reset",
        *extra,
    ]  # fmt: skip
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(home.parent))
    log.close()
    return proc, cmd


def wait_ready(proc: subprocess.Popen, port: int, log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node exited with code {proc.returncode} before serving RPC")
        try:
            rpc = Rpc(port, timeout=2.0)
            try:
                chain_id = int(str(rpc.call("eth_chainId")), 16)
            finally:
                rpc.close()
            if chain_id != CHAIN_ID:
                raise RuntimeError(f"node chain id is {chain_id}, expected {CHAIN_ID}")
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
    raise RuntimeError(f"node did not answer eth_chainId within {timeout:.0f}s")


def run_node(args: argparse.Namespace) -> NodeRun:
    from genesis import dev_accounts

    senders = args.senders
    print(f"deriving {senders} dev accounts and pre-signing {args.transfers} transfers ...")
    keys = [PrivateKey(a.private_key) for a in dev_accounts(senders)]
    raws = presign(keys, args.transfers, seed=2)
    hashes = ["0x" + keccak(raw).hex() for raw in raws]
    batches: list[tuple[bytes, list[str]]] = []
    hash_batch: dict[str, int] = {}
    for b, offset in enumerate(range(0, len(raws), args.batch)):
        chunk = raws[offset : offset + args.batch]
        body = send_raw_batch_body(chunk, first_id=offset)
        batches.append((body, hashes[offset : offset + args.batch]))
        for h in hashes[offset : offset + args.batch]:
            hash_batch[h] = b

    workdir = Path(tempfile.mkdtemp(prefix="cmt-bench-"))
    home = workdir / "home"
    log_path = workdir / "node.log"
    port = args.port or free_port()
    proc = None
    result = NodeRun()
    try:
        proc, cmd = start_node(home, port, senders, args.node_arg, log_path)
        print(f"starting node: {' '.join(cmd)}")
        t0 = time.monotonic()
        wait_ready(proc, port, log_path)
        print(
            f"node ready on http://127.0.0.1:{port} after {time.monotonic() - t0:.1f}s "
            f"(pid {proc.pid})"
        )

        rpc = Rpc(port)
        start_block = int(str(rpc.call("eth_blockNumber")), 16)
        # every sender must be funded with a fresh nonce, or the measurement is meaningless
        nonce = int(
            str(
                rpc.call(
                    "eth_getTransactionCount",
                    "0x" + keccak(keys[-1].public_key.format(False)[1:])[12:].hex(),
                    "latest",
                )
            ),
            16,
        )
        if nonce != 0:
            raise RuntimeError(
                f"sender {senders - 1} already has nonce {nonce}; not a fresh devnet"
            )

        poller = Poller(port, start_block, hash_batch)
        cpu0 = process_tree_cpu(proc.pid)
        client_cpu0 = time.process_time()
        poller.start()
        submitted_at: list[float] = []
        result.first_send = time.perf_counter()
        for b, (body, batch_hashes) in enumerate(batches):
            submitted_at.append(time.perf_counter())
            replies = rpc.post(body)
            assert isinstance(replies, list)
            rejected = [r for r in replies if "error" in r]
            for r in rejected:
                if len(result.first_errors) < 5:
                    result.first_errors.append(f"tx #{r.get('id')}: {r['error']}")
            for r in replies:
                if "result" in r and r["result"].lower() != batch_hashes[r["id"] - b * args.batch]:
                    raise RuntimeError(f"node returned hash {r['result']} for tx #{r['id']}")
            result.sent += len(replies) - len(rejected)
            result.rejected += len(rejected)
            if rejected:
                with poller.lock:
                    poller.expected -= len(rejected)
        result.last_send_done = time.perf_counter()

        # wait for every accepted transfer to be committed (stall timeout: no progress for 60 s)
        while poller.is_alive():
            poller.join(0.5)
            if time.perf_counter() - max(poller.last_progress, result.last_send_done) > 60.0:
                result.timed_out = True
                poller.stop.set()
                poller.join(5)
                break
        result.node_cpu = process_tree_cpu(proc.pid) - cpu0
        result.client_cpu = time.process_time() - client_cpu0
        rpc.close()
        if poller.error is not None:
            raise RuntimeError(f"poller failed: {poller.error!r}") from poller.error

        result.committed = poller.committed
        result.block_sizes = poller.block_sizes
        result.blocks = len(poller.block_sizes)
        result.last_commit = poller.last_commit
        result.batch_latencies = sorted(
            poller.batch_commit[b] - submitted_at[b]
            for b in range(len(batches))
            if b in poller.batch_commit
        )
        if proc.poll() is not None:
            raise RuntimeError(f"node exited with code {proc.returncode} during the run")
        return result
    except BaseException:
        if log_path.exists():
            tail = log_path.read_bytes()[-3000:].decode(errors="replace")
            print(f"--- last lines of the node log ({log_path}) ---\n{tail}\n---", file=sys.stderr)
        raise
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--transfers", type=int, default=20_000, help="transfers sent to the node")
    p.add_argument("--batch", type=int, default=500, help="eth_sendRawTransaction per HTTP batch")
    p.add_argument(
        "--senders",
        type=int,
        default=0,
        help="funded senders used for the node run (default: enough for at most 200 "
        "txs each, minimum 50)",
    )
    p.add_argument(
        "--baseline-transfers",
        type=int,
        default=5_000,
        help="transfers applied by stock py-evm (it is slow; the result is a rate)",
    )
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--skip-node", action="store_true")
    p.add_argument("--port", type=int, default=0, help="node RPC port (default: a free one)")
    p.add_argument(
        "--node-arg",
        action="append",
        default=[],
        help="extra argument passed to `cybermiles devnet` (repeatable)",
    )
    args = p.parse_args(argv)
    if not args.senders:
        args.senders = max(50, math.ceil(args.transfers / 200))
    if math.ceil(args.transfers / args.senders) > MEMPOOL_PER_SENDER:
        print(
            f"warning: {math.ceil(args.transfers / args.senders)} txs per sender exceeds the "
            f"mempool's default per-sender limit ({MEMPOOL_PER_SENDER}); some may be rejected"
        )

    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    base: BaselineResult | None = None
    if not args.skip_baseline:
        print(
            f"\n[1] stock py-evm: {args.baseline_transfers} transfers, "
            f"{BLOCK_GAS_LIMIT // TRANSFER_GAS} per block (PragueVM, AtomicDB, mine_all)"
        )
        base = run_baseline(args.baseline_transfers, senders=100)
        print(
            f"    {base.transfers} transfers in {base.blocks} blocks, {base.seconds:.2f}s "
            f"-> {base.rate:,.0f} tx/s"
        )

    node: NodeRun | None = None
    if not args.skip_node:
        print(
            f"\n[2] node via JSON-RPC: {args.transfers} transfers from {args.senders} senders, "
            f"batches of {args.batch}"
        )
        node = run_node(args)
        lat = node.batch_latencies
        print(
            f"    accepted {node.sent}, rejected {node.rejected}, committed {node.committed}"
            + ("  (TIMED OUT waiting for commits)" if node.timed_out else "")
        )
        for err in node.first_errors:
            print(f"    rejection: {err}")
        print(
            f"    submission took {node.last_send_done - node.first_send:.2f}s "
            f"({node.sent / max(1e-9, node.last_send_done - node.first_send):,.0f} tx/s admitted); "
            f"last commit at {node.wall:.2f}s"
        )
        if node.block_sizes:
            print(
                f"    {node.blocks} blocks, avg {sum(node.block_sizes) / node.blocks:.0f} tx/block "
                f"(min {min(node.block_sizes)}, max {max(node.block_sizes)})"
            )
        print(
            f"    batch submit->commit latency: p50 {percentile(lat, 0.5) * 1000:.0f} ms, "
            f"p95 {percentile(lat, 0.95) * 1000:.0f} ms, max {percentile(lat, 1.0) * 1000:.0f} ms"
        )
        print(
            f"    node CPU {node.node_cpu:.1f}s over wall {node.wall:.1f}s "
            f"(= {node.node_cpu / node.wall if node.wall else 0:.2f} cores); "
            f"bench client CPU {node.client_cpu:.1f}s"
        )

    print("\n" + "=" * 78)
    if base:
        print(
            f"stock py-evm (Prague, in-process): {base.rate:,.0f} tx/s   "
            f"({base.transfers} transfers, {base.blocks} blocks)"
        )
    if node:
        print(
            f"node via JSON-RPC batches:         {node.rate:,.0f} tx/s   "
            f"({node.blocks} blocks, avg "
            f"{(sum(node.block_sizes) / node.blocks) if node.blocks else 0:.0f} tx/block, "
            f"node CPU {node.node_cpu:.1f} s over wall {node.wall:.1f} s; "
            f"{node.committed} transfers)"
        )
        if node.node_cpu > 0:
            print(f"node per CPU-second:               {node.committed / node.node_cpu:,.0f} tx/s")
    if base and node and base.rate:
        print(f"ratio node / stock:                {node.rate / base.rate:.1f} x")
    print("=" * 78)
    ok = node is None or (node.committed == args.transfers and not node.timed_out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
