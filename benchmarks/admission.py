"""Transaction admission per second, in process: `ChainApp.check_txs` on batches, no RPC.

Run: `.venv/bin/python benchmarks/admission.py [--transactions 5000] [--senders 200]
[--batch 100] [--kinds legacy,1559,erc20] [--profile] [--repeat N]`.

Outside the timed region: a devnet `Chain` over a MemoryDB whose genesis funds `--senders`
random keys, and `--transactions` pre-signed transactions of each kind, round robin over the
senders: `legacy` (EIP-155 transfers), `1559` (dynamic-fee transfers) and `erc20`
(`transfer(to, 1)` calls with 68 bytes of calldata to a fixed address, as a dynamic-fee tx).
Timed, per kind on a fresh app: `check_txs` on batches of `--batch` until all are admitted
(decoding, sender recovery, stateless checks, mempool add). Printed: transactions/s of wall
time and of CPU time (process utime+stime), best of `--repeat`. `--profile` prints cProfile's
top 30 functions by total time of the last run.

This is a script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import rlp
from coincurve import PrivateKey
from eth_hash.auto import keccak

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cybermiles_node.application.app import ChainApp  # noqa: E402
from cybermiles_node.application.chain import Chain  # noqa: E402
from evm.db import MemoryDB  # noqa: E402
from genesis import devnet_genesis  # noqa: E402
from genesis.schema import Genesis  # noqa: E402

TOKEN = bytes.fromhex("5a" * 20)
TRANSFER_SELECTOR = keccak(b"transfer(address,uint256)")[:4]


def address_of(key: PrivateKey) -> bytes:
    return keccak(key.public_key.format(compressed=False)[1:])[12:]


def sign(key: PrivateKey, chain_id: int, kind: str, nonce: int, price: int, to: bytes) -> bytes:
    """One signed transaction of `kind` (coincurve signing: fast enough for tens of thousands)."""
    if kind == "legacy":
        unsigned = [nonce, price, 21_000, to, 1, b""]
        sig = key.sign_recoverable(keccak(rlp.encode([*unsigned, chain_id, 0, 0])), hasher=None)
        v = sig[64] + 35 + 2 * chain_id
        return rlp.encode([*unsigned, v, _int(sig[:32]), _int(sig[32:64])])
    data = b""
    gas = 21_000
    if kind == "erc20":
        data = TRANSFER_SELECTOR + to.rjust(32, b"\x00") + (1).to_bytes(32, "big")
        gas, to = 100_000, TOKEN
    unsigned = [chain_id, nonce, price, price, gas, to, 0 if data else 1, data, []]
    sig = key.sign_recoverable(keccak(b"\x02" + rlp.encode(unsigned)), hasher=None)
    return b"\x02" + rlp.encode([*unsigned, sig[64], _int(sig[:32]), _int(sig[32:64])])


def _int(b: bytes) -> int:
    return int.from_bytes(b, "big")


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--kinds", default="legacy,1559,erc20")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    rng = random.Random(13)
    keys = [PrivateKey(rng.randbytes(32)) for _ in range(args.senders)]
    genesis: Genesis = devnet_genesis(
        validator_pub_keys=[b"\x01" * 32],
        genesis_time=1_700_000_000,
        extra_alloc={address_of(k): 10**24 for k in keys},
    )
    price = genesis.params.gas_price
    for kind in args.kinds.split(","):
        raws = [
            sign(
                keys[i % len(keys)],
                genesis.chain_id,
                kind,
                i // len(keys),
                price,
                rng.randbytes(20),
            )
            for i in range(args.transactions)
        ]
        best_wall = best_cpu = float("inf")
        profiler = cProfile.Profile() if args.profile else None
        for _ in range(args.repeat):
            app = ChainApp(Chain(MemoryDB(), genesis))
            wall, cpu = time.perf_counter(), cpu_seconds()
            if profiler is not None:
                profiler.enable()
            for start in range(0, len(raws), args.batch):
                outcomes = app.check_txs(raws[start : start + args.batch])
                refused = [o for o in outcomes if isinstance(o, Exception)]
                if refused:
                    raise SystemExit(f"{kind}: refused {refused[0]!r}")
            if profiler is not None:
                profiler.disable()
            best_wall = min(best_wall, time.perf_counter() - wall)
            best_cpu = min(best_cpu, cpu_seconds() - cpu)
            if app.pending_count != len(raws):
                raise SystemExit(f"{kind}: {app.pending_count} pending of {len(raws)}")
        n = len(raws)
        print(
            f"{kind:>7}: {n / best_wall:8.0f} tx/s wall, {n / best_cpu:8.0f} tx/s CPU "
            f"({1e6 * best_cpu / n:.1f} us CPU per tx)"
        )
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
