"""Committed ERC-20 transfers per second, in process: block building + commit, no RPC.

Run: `.venv/bin/python benchmarks/erc20_block.py [--profile-evm cvm|lity|both] [--transfers 5000]
[--block 1000] [--senders 200] [--leveldb] [--profile] [--repeat N]`.

What it does, outside the timed region: a devnet-like `Chain` (the node's modules and
precompiles, `chain_profile`), over a MemoryDB or a LevelDB in a temp dir; deploys
contracts/build/TestToken.json (or TestToken.lity.json under lity) from a dev account, hands
tokens to `--senders` funded accounts, pre-signs `--transfers` ERC-20 `transfer(to, 1)` calls
(round robin over the senders, each to a fresh random recipient, so every transfer writes a new
storage slot as a side-by-side client script would) and decodes them (sender recovery is the
admission's job, not timed here).

Timed: `Chain.build_block` of `--block` transactions then `Chain.commit`, until all are in.
Printed: transfers/s of wall time and of CPU time (process utime+stime), per profile. The block
gas limit is raised (`--gas-limit`, default 100M) so a block of 1,000 first-time transfers
(~52k gas each) fits; a block's cost is per transaction, so this does not change the rate.
`--profile` prints cProfile's top 40 functions by total time for the timed region.

This is a script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from coincurve import PrivateKey
from eth_hash.auto import keccak

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cybermiles_node.application.chain import Chain  # noqa: E402
from cybermiles_node.node import chain_modules, chain_profile  # noqa: E402
from evm.db import LevelDB, MemoryDB  # noqa: E402
from evm.executor import contract_address_of  # noqa: E402
from evm.transactions import SignedTx, decode_transaction  # noqa: E402
from genesis import dev_accounts, devnet_genesis  # noqa: E402
from genesis.schema import Genesis  # noqa: E402

ARTIFACTS = {"cvm": "TestToken.json", "lity": "TestToken.lity.json"}
TRANSFER_SELECTOR = keccak(b"transfer(address,uint256)")[:4]
TRANSFER_GAS = 100_000
SETUP_TIME = 1_700_000_000


@dataclass(frozen=True)
class Result:
    profile: str
    transfers: int
    wall: float
    cpu: float

    def line(self) -> str:
        return (
            f"{self.profile:5s} {self.transfers} ERC-20 transfers: "
            f"wall {self.wall:.2f} s = {self.transfers / self.wall:,.0f}/s, "
            f"CPU {self.cpu:.2f} s = {self.transfers / self.cpu:,.0f}/s"
        )


class Signer:
    """Legacy EIP-155 transactions signed with coincurve (fast enough for tens of thousands)."""

    def __init__(self, chain_id: int, gas_price: int) -> None:
        self.chain_id = chain_id
        self.gas_price = gas_price

    def sign(self, key: PrivateKey, nonce: int, to: bytes, data: bytes, gas: int) -> bytes:
        unsigned = [nonce, self.gas_price, gas, to, 0, data]
        digest = keccak(rlp.encode([*unsigned, self.chain_id, 0, 0]))
        sig = key.sign_recoverable(digest, hasher=None)
        v = sig[64] + 35 + 2 * self.chain_id
        return rlp.encode(
            [*unsigned, v, int.from_bytes(sig[0:32], "big"), int.from_bytes(sig[32:64], "big")]
        )


def transfer_data(to: bytes, amount: int) -> bytes:
    return TRANSFER_SELECTOR + to.rjust(32, b"\x00") + amount.to_bytes(32, "big")


def address_of(key: PrivateKey) -> bytes:
    return keccak(key.public_key.format(compressed=False)[1:])[12:]


class Bench:
    """One chain of one profile, set up to the point where the timed transfers start."""

    def __init__(self, profile: str, args: argparse.Namespace, db: Any) -> None:
        self.senders = [
            PrivateKey(keccak(b"erc20-bench-sender" + i.to_bytes(4, "big")))
            for i in range(args.senders)
        ]
        owner = dev_accounts(1)[0]
        self.owner_key = PrivateKey(bytes(owner.private_key))
        self.owner = bytes(owner.address)
        genesis = self._genesis(profile, args.gas_limit)
        self.chain = Chain(db, genesis, modules=chain_modules(), profile=chain_profile(genesis))
        self.signer = Signer(genesis.chain_id, genesis.params.gas_price)
        self.block_size = args.block
        self.time = SETUP_TIME
        self.nonces: dict[bytes, int] = {}
        self.token = self._deploy(profile)
        self._hand_out_tokens()

    def _genesis(self, profile: str, gas_limit: int) -> Genesis:
        funded = {address_of(key): 10**24 for key in self.senders}
        return devnet_genesis(
            validator_pub_keys=[b"\x01" * 32],
            genesis_time=SETUP_TIME,
            evm_profile=profile,  # type: ignore[arg-type]
            gas_limit=gas_limit,
            extra_alloc=funded,
        )

    def _next_nonce(self, address: bytes) -> int:
        nonce = self.nonces.get(address, 0)
        self.nonces[address] = nonce + 1
        return nonce

    def decode(self, raws: Sequence[bytes]) -> list[SignedTx]:
        return [
            decode_transaction(
                raw, chain_id=self.chain.chain_id, block_gas_limit=self.chain.gas_limit
            )
            for raw in raws
        ]

    def mine(self, txs: Sequence[SignedTx]) -> None:
        self.time += 1
        ctx = self.chain.next_context(time=self.time, coinbase=b"\x05" * 20)
        block = self.chain.build_block(ctx, txs)
        if block.skipped or block.crashed:
            raise SystemExit(f"block {block.number} left out transactions: {block.skipped[:3]}")
        failed = sum(1 for r in block.result.receipts if r.state_root != b"\x01")
        if failed:
            raise SystemExit(f"block {block.number}: {failed} transactions failed")
        self.chain.commit(block)

    def _deploy(self, profile: str) -> bytes:
        artifact = json.loads((REPO / "contracts" / "build" / ARTIFACTS[profile]).read_text())
        supply = 10**30
        code = bytes.fromhex(artifact["bytecode"].removeprefix("0x")) + supply.to_bytes(32, "big")
        raw = self.signer.sign(self.owner_key, self._next_nonce(self.owner), b"", code, 3_000_000)
        (tx,) = self.decode([raw])
        self.mine([tx])
        address = contract_address_of(tx)
        assert address is not None
        return address

    def _hand_out_tokens(self) -> None:
        raws = [
            self.signer.sign(
                self.owner_key,
                self._next_nonce(self.owner),
                self.token,
                transfer_data(address_of(key), 10**24),
                TRANSFER_GAS,
            )
            for key in self.senders
        ]
        for block in chunks(self.decode(raws), self.block_size):
            self.mine(block)

    def transfers(self, count: int, seed: int) -> list[SignedTx]:
        rnd = random.Random(seed)
        raws = []
        for i in range(count):
            key = self.senders[i % len(self.senders)]
            data = transfer_data(rnd.randbytes(20), 1)
            nonce = self._next_nonce(address_of(key))
            raws.append(self.signer.sign(key, nonce, self.token, data, TRANSFER_GAS))
        return self.decode(raws)


def chunks(items: Sequence[SignedTx], size: int) -> Iterator[Sequence[SignedTx]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


@contextmanager
def database(leveldb: bool) -> Iterator[Any]:
    if not leveldb:
        yield MemoryDB()
        return
    folder = tempfile.mkdtemp(prefix="erc20-bench-")
    db = LevelDB(Path(folder) / "chain")
    try:
        yield db
    finally:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)


def run(profile: str, args: argparse.Namespace, seed: int) -> Result:
    with database(args.leveldb) as db:
        bench = Bench(profile, args, db)
        txs = bench.transfers(args.transfers, seed)
        profiler = cProfile.Profile() if args.profile else None
        wall, cpu = time.perf_counter(), cpu_seconds()
        if profiler is not None:
            profiler.enable()
        for block in chunks(txs, args.block):
            bench.mine(block)
        if profiler is not None:
            profiler.disable()
        result = Result(profile, len(txs), time.perf_counter() - wall, cpu_seconds() - cpu)
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile-evm", choices=("cvm", "lity", "both"), default="both")
    parser.add_argument("--transfers", type=int, default=5000)
    parser.add_argument("--block", type=int, default=1000, help="transactions per block")
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--gas-limit", type=int, default=100_000_000)
    parser.add_argument("--leveldb", action="store_true", help="LevelDB in a temp dir")
    parser.add_argument("--repeat", type=int, default=1, help="runs per profile")
    parser.add_argument("--profile", action="store_true", help="cProfile top 40 (tottime)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    profiles = ("cvm", "lity") if args.profile_evm == "both" else (args.profile_evm,)
    report: Callable[[str], None] = print
    for n in range(args.repeat):
        for profile in profiles:
            report(run(profile, args, args.seed + n).line())


if __name__ == "__main__":
    main()
