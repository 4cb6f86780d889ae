"""First contact with a devnet: this node against anvil and Hardhat, in one run.

Run: `make bench`, or `.venv/bin/python benchmarks/devnet_ux.py [--runs 5] [--transfers 1000]
[--batch 100] [--rounds 5] [--peers anvil,hardhat] [--cybermiles PATH] [--cache DIR]`.

For each devnet (`cybermiles devnet`, `anvil`, `hardhat node`):
1. Start-up: the process is spawned and eth_blockNumber is posted every 5 ms on a new connection;
   the figure is the time from spawn to the first successful answer, median of --runs starts.
   cybermiles twice: a fresh home each start, and the same home started again (an existing
   home). anvil and Hardhat keep their chains in memory: one figure. Also the process's CPU
   time at that moment (utime + stime), which a busy machine disturbs less than wall time.
2. `--help`: the wall time of `<command> --help`, median of --runs.
3. Receipts: --transfers value transfers by eth_sendTransaction from the first unlocked account
   (one request at a time), waited for until the last is mined; then every receipt is
   fetched by eth_getTransactionReceipt in batches of --batch over one keep-alive connection,
   --rounds times; receipts per second, median of the rounds. A devnet that refuses batches is
   asked one request at a time (the table says so).
Every devnet runs with its default output (a line per transaction and block), sent nowhere.

anvil (npm `@foundry-rs/anvil-linux-amd64`) and Hardhat 2 (npm `hardhat`) are installed with npm
into --cache (default ~/.cache/cybermiles-bench) when missing; a peer that cannot be installed or
started is left out, and the output says why. The ratios are cybermiles ÷ peer: for times above
1 means slower, for receipts/s above 1 means faster. Nothing here judges the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (  # noqa: E402
    DEFAULT_CACHE,
    REPO,
    Devnet,
    Rpc,
    answers,
    anvil_devnet,
    cpu_seconds,
    cybermiles_devnet,
    free_port,
    git_commit,
    hardhat_devnet,
    install_peers,
    last_words,
    stop,
)

POLL_S = 0.005
START_TIMEOUT_S = 60.0
MINE_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------------------------
# The devnets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    wall_s: float  # spawn to the first answer
    cpu_s: float  # the devnet process's CPU time by then: steadier than wall on a busy machine


def time_to_first_answer(devnet: Devnet, scratch: Path) -> Start:
    port = free_port()
    started = time.perf_counter()
    proc = devnet.spawn(port, scratch)
    try:
        while time.perf_counter() - started < START_TIMEOUT_S:
            if answers(port):
                return Start(time.perf_counter() - started, cpu_seconds(proc.pid))
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{devnet.name} exited with {proc.returncode} while starting: "
                    + last_words(scratch)
                )
            time.sleep(POLL_S)
        raise RuntimeError(f"{devnet.name} did not answer within {START_TIMEOUT_S:g} s")
    finally:
        stop(proc)


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


@dataclass
class Figures:
    start_fresh: list[float] = field(default_factory=list)
    start_existing: list[float] = field(default_factory=list)
    start_cpu: list[float] = field(default_factory=list)
    help: list[float] = field(default_factory=list)
    receipts_per_s: list[float] = field(default_factory=list)
    note: str = ""


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measure_start(devnet: Devnet, runs: int, figures: Figures) -> None:
    with tempfile.TemporaryDirectory(prefix=f"ux-{devnet.name}-") as scratch:
        for run in range(runs):
            home = Path(scratch) / f"home{run}"
            fresh = time_to_first_answer(devnet, home)
            figures.start_fresh.append(fresh.wall_s)
            figures.start_cpu.append(fresh.cpu_s)
            if devnet.persistent:
                figures.start_existing.append(time_to_first_answer(devnet, home).wall_s)


def measure_help(devnet: Devnet, runs: int, figures: Figures) -> None:
    for _ in range(runs + 1):  # the first run warms the file cache and is not counted
        started = time.perf_counter()
        subprocess.run(
            devnet.help_command,
            cwd=devnet.cwd,
            env={**os.environ, **devnet.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        figures.help.append(time.perf_counter() - started)
    del figures.help[0]


def _send_transfers(rpc: Rpc, count: int) -> list[str]:
    sender, recipient = rpc.call("eth_accounts")[:2]
    # One request at a time, in nonce order: anvil runs a batch's requests concurrently, and
    # a transaction that arrives before its predecessor stays queued there.
    tx = {"from": sender, "to": recipient, "value": hex(1)}
    hashes = [rpc.call("eth_sendTransaction", tx) for _ in range(count)]
    deadline = time.monotonic() + MINE_TIMEOUT_S
    while rpc.call("eth_getTransactionReceipt", hashes[-1]) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} transfers not mined within {MINE_TIMEOUT_S:g} s")
        time.sleep(0.05)
    return hashes


def _fetch_receipts(rpc: Rpc, hashes: list[str], batch: int, batched: bool) -> None:
    if not batched:
        for tx_hash in hashes:
            rpc.call("eth_getTransactionReceipt", tx_hash)
        return
    for offset in range(0, len(hashes), batch):
        chunk = hashes[offset : offset + batch]
        receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in chunk])
        if any(r is None for r in receipts):
            raise RuntimeError("a mined transaction has no receipt")


def measure_receipts(
    devnet: Devnet, transfers: int, batch: int, rounds: int, figures: Figures
) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"ux-{devnet.name}-") as scratch:
        proc = devnet.spawn(port, Path(scratch) / "home")
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not answers(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{devnet.name} did not start")
                time.sleep(0.05)
            rpc = Rpc(port, timeout=120.0)
            try:
                hashes = _send_transfers(rpc, transfers)
                batched = True
                try:
                    _fetch_receipts(rpc, hashes[:batch], batch, batched=True)
                except RuntimeError as exc:
                    batched = False
                    figures.note = f"one request at a time ({exc})"
                for _ in range(rounds):
                    started = time.perf_counter()
                    _fetch_receipts(rpc, hashes, batch, batched)
                    figures.receipts_per_s.append(len(hashes) / (time.perf_counter() - started))
            finally:
                rpc.close()
        finally:
            stop(proc)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} /s" if unit == "/s" else f"{value:.3f} s"


def report(results: dict[str, Figures], args: argparse.Namespace) -> str:
    rows = [
        ("start-up, fresh home (median)", "start_fresh", "s"),
        ("start-up, existing home (median)", "start_existing", "s"),
        ("start-up CPU time, fresh home (median)", "start_cpu", "s"),
        ("--help (median)", "help", "s"),
        (f"receipts, batches of {args.batch} (median)", "receipts_per_s", "/s"),
    ]
    names = list(results)
    width = 40
    lines = [f"{'':{width}}" + "".join(f"{name:>16}" for name in names)]
    for label, attr, unit in rows:
        values = [median(getattr(results[name], attr)) for name in names]
        lines.append(f"{label:{width}}" + "".join(f"{_fmt(v, unit):>16}" for v in values))
    ours = results.get("cybermiles")
    for peer in (name for name in names if name != "cybermiles" and ours is not None):
        assert ours is not None
        theirs = results[peer]
        parts = []
        for label, attr, _unit in rows:
            # anvil and Hardhat start in memory: their one start-up figure is the comparison.
            other_attr = "start_fresh" if attr == "start_existing" else attr
            mine, other = median(getattr(ours, attr)), median(getattr(theirs, other_attr))
            if mine and other:
                parts.append(f"{label.split(' (')[0]} {mine / other:.2f}x")
        lines.append(f"cybermiles / {peer}: " + "; ".join(parts))
    for name, figures in results.items():
        if figures.note:
            lines.append(f"{name}: receipts {figures.note}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="starts and --help runs per devnet")
    parser.add_argument("--transfers", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="receipt-fetching rounds")
    parser.add_argument("--peers", default="anvil,hardhat", help="comma-separated; '' for none")
    parser.add_argument(
        "--cybermiles",
        type=Path,
        default=REPO / ".venv" / "bin" / "cybermiles",
        help="the cybermiles executable (another checkout's, for before/after figures)",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where peers live")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    wanted = [p for p in args.peers.split(",") if p]
    unknown = set(wanted) - {"anvil", "hardhat"}
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    install_peers(args.cache, wanted, say)
    devnets: list[Devnet] = [cybermiles_devnet(args.cybermiles)]
    makers = {"anvil": anvil_devnet, "hardhat": hardhat_devnet}
    for peer in wanted:
        made = makers[peer](args.cache)
        if isinstance(made, str):
            say(f"skipped {made}")
        else:
            devnets.append(made)

    results: dict[str, Figures] = {}
    for devnet in devnets:
        figures = Figures()
        say(f"{devnet.name}: start-up x{args.runs}, --help x{args.runs}, receipts ...")
        try:
            measure_start(devnet, args.runs, figures)
            measure_help(devnet, args.runs, figures)
            measure_receipts(devnet, args.transfers, args.batch, args.rounds, figures)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            say(f"skipped {devnet.name}: {exc}")
            continue
        results[devnet.name] = figures
    print()
    print(
        f"devnet first contact ({args.transfers} transfers, {args.rounds} rounds of receipts), "
        f"commit {git_commit(args.cybermiles.resolve().parent.parent.parent)}"
    )
    print(report(results, args))


if __name__ == "__main__":
    sys.exit(main())
