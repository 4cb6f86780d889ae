"""One client script against this node, anvil and Hardhat: transfers and ERC-20 transfers.

Run: `make bench`, or `.venv/bin/python benchmarks/side_by_side.py [--runs N] [--txs 5000]
[--senders 200] [--batch 100] [--only node,anvil,anvil-automine,hardhat]
[--workloads transfers,erc20] [--cybermiles PATH] [--cache DIR] [--stall 30]`.

The devnets, each started fresh for every workload and run:
- node: `cybermiles devnet --quiet` (automine), from this checkout or --cybermiles PATH;
- anvil: anvil 1.7.1 with `--block-time 1` (1 s blocks, as in issue #13's table);
- anvil-automine: the same anvil in its default automine mode (it is known to stall with a few
  thousand transactions pending; a stall is reported, not waited out);
- hardhat: `hardhat node` (Hardhat 2, automine: one block per transaction).
anvil and Hardhat come from npm into --cache (peers.py); a peer that cannot be installed or
started is skipped with the reason.

Per devnet and workload, untimed first: dev account 0 of the "test ... junk" mnemonic (funded on
all three) sends --senders fresh accounts 1 ether each (and, for ERC-20, deploys TestToken from
contracts/build/TestToken.json and sends each sender tokens), one request at a time. Then --txs
transactions are signed with coincurve (tx i: sender i mod S, its nonce i div S; to a fresh
random address: value 1 wei, or an ERC-20 `transfer` of 1 unit), gas price max(10 gwei, 4 x
eth_gasPrice), chain id from eth_chainId. Timed:
- send rate: accepted transactions / time to post all batches of --batch eth_sendRawTransaction
  over one keep-alive HTTP connection (blocks execute meanwhile);
- committed/s: transactions / (first send -> the poller sees the block holding the last one;
  a second connection polls eth_blockNumber and eth_getBlockByNumber);
- end to end: transactions / (first send -> every receipt fetched);
- receipts/s: transactions / time to fetch every receipt with batched eth_getTransactionReceipt
  (batches of --batch), after all are committed;
- server CPU: the devnet process tree's utime+stime from the first send to the last commit.
Every receipt must have status 1. Ratios are this node / peer, on medians over --runs: above 1
is better for this node on every row but CPU. This is a script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (  # noqa: E402
    DEFAULT_CACHE,
    REPO,
    Account,
    Chain,
    Devnet,
    Poller,
    Rpc,
    anvil_devnet,
    cybermiles_devnet,
    dev_funder,
    erc20_transfer_data,
    format_table,
    free_port,
    fresh_senders,
    funding,
    git_commit,
    hardhat_devnet,
    install_peers,
    process_tree_cpu,
    receipts_of,
    send_and_wait,
    send_raw_batch_body,
    stop,
    tx_hash,
    wait_answering,
)

PEERS = ("node", "anvil", "anvil-automine", "hardhat")
LABELS = {
    "node": "this node",
    "anvil": "anvil 1s",
    "anvil-automine": "anvil automine",
    "hardhat": "hardhat",
}
WORKLOADS = ("transfers", "erc20")
TOKEN_ARTIFACT = REPO / "contracts" / "build" / "TestToken.json"
TOKEN_SUPPLY = 10**30
SENDER_TOKENS = 10**24


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    txs: int
    sent: int
    committed: int
    blocks: int
    send_s: float
    commit_s: float | None  # None: stalled
    e2e_s: float | None
    fetch_s: float | None
    cpu_s: float
    first_error: str = ""

    def rate(self, seconds: float | None, count: int | None = None) -> float | None:
        return (count if count is not None else self.txs) / seconds if seconds else None


# (row label, how to read it from a Result, format) for each workload
Metric = tuple[str, Callable[[Result], float | None], str]
METRICS: tuple[Metric, ...] = (
    ("send rate while blocks execute", lambda r: r.rate(r.send_s, r.sent), "/s"),
    ("committed/s", lambda r: r.rate(r.commit_s), "/s"),
    ("end to end (send, all receipts)", lambda r: r.rate(r.e2e_s), "/s"),
    ("receipts fetched/s (batched)", lambda r: r.rate(r.fetch_s), "/s"),
    ("avg txs per block", lambda r: r.committed / r.blocks if r.blocks else None, "n"),
    ("server CPU s, send->commit", lambda r: r.cpu_s, "s"),
)


def fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "s":
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_ratio(mine: float | None, theirs: float | None) -> str:
    if mine is None or theirs is None or theirs == 0 or math.isnan(mine) or math.isnan(theirs):
        return "-"
    return f"{mine / theirs:.2f}x"


def build_table(
    results: dict[tuple[str, str], list[Result | str]],
    peers: Sequence[str],
    workloads: Sequence[str],
) -> str:
    """Rows = workload metrics, columns = devnets (runs joined by " / "), then the ratios of
    this node's median to anvil's (1 s blocks) and Hardhat's."""
    ratio_peers = [p for p in ("anvil", "hardhat") if p in peers and "node" in peers]
    header = ["", *(LABELS[p] for p in peers), *(f"node / {LABELS[p]}" for p in ratio_peers)]
    rows = []
    for workload in workloads:
        for label, read, unit in METRICS:
            medians: dict[str, float | None] = {}
            cells = []
            for peer in peers:
                runs = results.get((peer, workload), [])
                values = [read(r) if isinstance(r, Result) else None for r in runs]
                known = [v for v in values if v is not None]
                medians[peer] = statistics.median(known) if known else None
                cells.append(" / ".join(fmt(v, unit) for v in values) or "-")
            ratios = [fmt_ratio(medians["node"], medians[p]) for p in ratio_peers]
            rows.append([f"{workload}: {label}", *cells, *ratios])
    return format_table(header, rows)


# --------------------------------------------------------------------------------------------
# Setting a devnet up (untimed)
# --------------------------------------------------------------------------------------------


def token_creation_code() -> bytes:
    artifact = json.loads(TOKEN_ARTIFACT.read_text())
    code = bytes.fromhex(artifact["bytecode"].removeprefix("0x"))
    return code + TOKEN_SUPPLY.to_bytes(32, "big")  # constructor(uint256 initialSupply)


def estimate(rpc: Rpc, sender: bytes, to: bytes | None, data: bytes) -> int:
    call: dict[str, str] = {"from": "0x" + sender.hex(), "data": "0x" + data.hex()}
    if to is not None:
        call["to"] = "0x" + to.hex()
    return int(rpc.call("eth_estimateGas", call), 16)


def set_up(
    rpc: Rpc, workload: str, senders: list[Account], txs: int, seed: int
) -> tuple[Chain, list[bytes]]:
    """Fund the senders (and deploy and hand out the token); the pre-signed workload."""
    chain = Chain.of(rpc)
    funder = dev_funder(rpc)
    deploy: list[bytes] = []
    if workload == "erc20":
        code = token_creation_code()
        gas = estimate(rpc, funder.address, None, code) * 6 // 5
        deploy.append(funder.sign(chain, to=b"", gas=gas, data=code))
    receipts = send_and_wait(rpc, [*deploy, *funding(chain, funder, senders)])
    rnd = random.Random(seed)
    if workload == "transfers":
        return chain, [
            senders[i % len(senders)].sign(chain, to=rnd.randbytes(20), gas=21_000, value=1)
            for i in range(txs)
        ]
    token = bytes.fromhex(receipts[0]["contractAddress"][2:])
    send_and_wait(
        rpc,
        [
            funder.sign(
                chain, to=token, gas=100_000, data=erc20_transfer_data(s.address, SENDER_TOKENS)
            )
            for s in senders
        ],
    )
    gas = estimate(rpc, senders[0].address, token, erc20_transfer_data(rnd.randbytes(20), 1))
    gas = gas * 11 // 10
    return chain, [
        senders[i % len(senders)].sign(
            chain, to=token, gas=gas, data=erc20_transfer_data(rnd.randbytes(20), 1)
        )
        for i in range(txs)
    ]


# --------------------------------------------------------------------------------------------
# The timed part
# --------------------------------------------------------------------------------------------


def measure(rpc: Rpc, port: int, pid: int, raws: list[bytes], args: argparse.Namespace) -> Result:
    hashes = [tx_hash(raw) for raw in raws]
    bodies = [
        send_raw_batch_body(raws[o : o + args.batch], first_id=o)
        for o in range(0, len(raws), args.batch)
    ]
    hash_batch = {h: i // args.batch for i, h in enumerate(hashes)}
    poller = Poller(port, int(rpc.call("eth_blockNumber"), 16), hash_batch)
    sent, first_error = 0, ""
    cpu0 = process_tree_cpu(pid)
    start = time.perf_counter()
    poller.start()
    for body in bodies:
        replies = rpc.post(body)
        if not isinstance(replies, list):
            raise RuntimeError(f"batch refused: {replies!r:.300}")
        errors = [r["error"] for r in replies if "error" in r]
        if errors:
            first_error = first_error or str(errors[0])
            with poller.lock:
                poller.expected -= len(errors)
        sent += len(replies) - len(errors)
    send_s = time.perf_counter() - start
    while poller.is_alive():
        poller.join(0.2)
        if time.perf_counter() - max(poller.last_progress, start + send_s) > args.stall:
            poller.stop.set()
            poller.join(5)
            break
    if poller.error is not None:
        raise RuntimeError(f"poller failed: {poller.error!r}") from poller.error
    cpu_s = process_tree_cpu(pid) - cpu0
    complete = poller.committed == len(raws)
    commit_s = poller.last_commit - start if complete else None
    e2e_s = fetch_s = None
    if complete:
        fetch_start = time.perf_counter()
        receipts = receipts_of(rpc, hashes, args.batch)
        fetch_end = time.perf_counter()
        bad = [r for r in receipts if r is None or int(r["status"], 16) != 1]
        if bad:
            raise RuntimeError(f"{len(bad)} transactions without a successful receipt: {bad[0]}")
        e2e_s, fetch_s = fetch_end - start, fetch_end - fetch_start
    return Result(
        txs=len(raws), sent=sent, committed=poller.committed, blocks=len(poller.block_sizes),
        send_s=send_s, commit_s=commit_s, e2e_s=e2e_s, fetch_s=fetch_s, cpu_s=cpu_s,
        first_error=first_error,
    )  # fmt: skip


def run_one(devnet: Devnet, workload: str, run: int, args: argparse.Namespace) -> Result:
    senders = fresh_senders(b"side-by-side sender", args.senders)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"sbs-{devnet.name}-") as scratch:
        home = Path(scratch) / "home"
        proc = devnet.spawn(port, home)
        try:
            wait_answering(proc, port, devnet.name, home)
            rpc = Rpc(port, timeout=300.0)
            try:
                _, raws = set_up(rpc, workload, senders, args.txs, seed=run)
                result = measure(rpc, port, proc.pid, raws, args)
            finally:
                rpc.close()
            if proc.poll() is not None:
                raise RuntimeError(f"{devnet.name} exited with {proc.returncode} during the run")
            return result
        finally:
            stop(proc)


def describe(result: Result) -> str:
    parts = [f"sent {result.sent}/{result.txs}", f"committed {result.committed}"]
    if result.commit_s is None:
        parts.append("STALLED")
    else:
        parts.append(f"{result.txs / result.commit_s:,.0f} committed/s")
    if result.fetch_s:
        parts.append(f"{result.txs / result.fetch_s:,.0f} receipts/s")
    if result.first_error:
        parts.append(f"first rejection: {result.first_error[:200]}")
    return ", ".join(parts)


def devnets(
    args: argparse.Namespace, wanted: Sequence[str], say: Callable[[str], None]
) -> dict[str, Devnet]:
    install_peers(args.cache, [p for p in wanted if p != "node"], say)
    makers: dict[str, Callable[[], Devnet | str]] = {
        "node": lambda: cybermiles_devnet(args.cybermiles, ["--quiet"], name="node"),
        "anvil": lambda: anvil_devnet(args.cache, ["--block-time", "1"], name="anvil"),
        "anvil-automine": lambda: anvil_devnet(args.cache, name="anvil-automine"),
        "hardhat": lambda: hardhat_devnet(args.cache, name="hardhat"),
    }
    out: dict[str, Devnet] = {}
    for peer in wanted:
        made = makers[peer]()
        if isinstance(made, str):
            say(f"skipped {made}")
        else:
            out[peer] = made
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--txs", type=int, default=5000, help="timed transactions per workload")
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="requests per JSON-RPC batch")
    parser.add_argument(
        "--only", default=",".join(PEERS), help="comma-separated: " + ", ".join(PEERS)
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=", ".join(WORKLOADS))
    parser.add_argument(
        "--cybermiles",
        type=Path,
        default=REPO / ".venv" / "bin" / "cybermiles",
        help="the cybermiles executable (another checkout's venv, to compare commits)",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where peers live")
    parser.add_argument(
        "--stall", type=float, default=30.0, help="seconds without a commit = stalled"
    )
    args = parser.parse_args(argv)
    wanted = [p for p in args.only.split(",") if p]
    workloads = [w for w in args.workloads.split(",") if w]
    if set(wanted) - set(PEERS) or set(workloads) - set(WORKLOADS) or not wanted or not workloads:
        parser.error(f"--only takes {', '.join(PEERS)}; --workloads takes {', '.join(WORKLOADS)}")

    def say(line: str) -> None:
        print(line, flush=True)

    commit = git_commit(args.cybermiles.resolve().parent.parent.parent)
    say(
        f"side by side: commit {commit}, {args.txs} txs from {args.senders} senders, "
        f"batches of {args.batch}"
    )
    nets = devnets(args, wanted, say)
    results: dict[tuple[str, str], list[Result | str]] = {}
    for run in range(args.runs):
        for workload in workloads:
            for peer, devnet in nets.items():
                say(f"run {run + 1}/{args.runs} {workload} on {LABELS[peer]} ...")
                outcome: Result | str
                try:
                    outcome = run_one(devnet, workload, run, args)
                    say(f"    {describe(outcome)}")
                except (RuntimeError, OSError, KeyError, ValueError) as exc:
                    outcome = f"{exc}"
                    say(f"    skipped: {exc}")
                results.setdefault((peer, workload), []).append(outcome)
    shown = [p for p in wanted if p in nets]
    print()
    print(
        f"side by side, commit {commit}: {args.txs} pre-signed txs from {args.senders} senders, "
        f"batches of {args.batch}, {args.runs} run(s) (values per run, ratios of medians)"
    )
    print(build_table(results, shown, workloads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
