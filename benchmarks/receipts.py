"""Receipt and transaction lookups in process: no HTTP, only the node's JSON-RPC dispatch.

Run: `.venv/bin/python benchmarks/receipts.py [--transfer-blocks 3] [--per-block 1000]
[--erc20-blocks 2] [--batch 100] [--rounds 3] [--profile receipts|tx|...] [--cold]`.

The chain (a LevelDB in a temporary folder, the node's modules): --transfer-blocks blocks of
--per-block value transfers from 20 senders, then --erc20-blocks blocks of TestToken transfers
(one Transfer log each) as many as fit in a block. Then, each timed as a rate over every
transaction of the chain through `Dispatcher.handle` in JSON batches of --batch:
eth_getTransactionReceipt, eth_getTransactionByHash, and per block eth_getLogs(blockHash),
eth_getBlockByNumber(n, true), eth_getBlockReceipts. `--cold` reopens the database before each
round (empty caches: what a restarted node or a block outside the cache costs). `--profile NAME`
runs that measurement once under cProfile and prints the top functions by cumulative and own
time. CPU time (process time) and wall time are both printed; this is a script that prints
numbers, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rlp
import trio
from coincurve import PrivateKey
from eth_hash.auto import keccak

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cybermiles_node.application.app import ChainApp  # noqa: E402
from cybermiles_node.application.chain import Chain  # noqa: E402
from cybermiles_node.node import chain_modules  # noqa: E402
from cybermiles_node.operator.config import RpcConfig  # noqa: E402
from evm.db import LevelDB  # noqa: E402
from evm.transactions import SignedTx, decode_transaction  # noqa: E402
from genesis import DevAccount, dev_accounts, devnet_genesis  # noqa: E402
from rpc import Dispatcher, FilterRegistry, SubscriptionHub  # noqa: E402
from rpc.eth import EthApi  # noqa: E402
from rpc.execution import EvmWorker  # noqa: E402

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
SENDERS = 10  # the devnet genesis funds ten accounts
PRICE = 2 * 10**9
TOKEN = json.loads((REPO / "contracts" / "build" / "TestToken.json").read_text())
TRANSFER_SELECTOR = keccak(b"transfer(address,uint256)")[:4]
ERC20_GAS = 60_000


def sign(key: bytes, nonce: int, to: bytes, value: int, data: bytes, gas: int) -> bytes:
    """A legacy EIP-155 transaction, signed with coincurve (fast enough for thousands)."""
    unsigned = [nonce, PRICE, gas, to, value, data]
    digest = keccak(rlp.encode([*unsigned, GENESIS.chain_id, 0, 0]))
    sig = PrivateKey(key).sign_recoverable(digest, hasher=None)
    v = sig[64] + 35 + 2 * GENESIS.chain_id
    r, s = int.from_bytes(sig[0:32], "big"), int.from_bytes(sig[32:64], "big")
    return rlp.encode([*unsigned, v, r, s])


class Builder:
    """Blocks of signed transactions committed straight through the chain (no mempool)."""

    def __init__(self, app: ChainApp, accounts: list[DevAccount]) -> None:
        self.app = app
        self.accounts = accounts
        self.nonces = [0] * len(accounts)
        self.time = GENESIS.genesis_time

    def tx(self, i: int, to: bytes, value: int, data: bytes, gas: int) -> SignedTx:
        account = self.accounts[i % len(self.accounts)]
        nonce = self.nonces[i % len(self.accounts)]
        self.nonces[i % len(self.accounts)] += 1
        raw = sign(account.private_key, nonce, to, value, data, gas)
        return decode_transaction(raw, chain_id=GENESIS.chain_id, block_gas_limit=GENESIS.gas_limit)

    def block(self, txs: list[SignedTx]) -> None:
        self.time += 1
        chain = self.app.chain
        ctx = chain.next_context(time=self.time, coinbase=self.accounts[0].address)
        block = chain.build_block(ctx, txs)
        if len(block.result.transactions) != len(txs):
            raise RuntimeError(f"block left out {block.skipped[:1]}")
        self.app.commit(block)


def build_chain(path: Path, transfer_blocks: int, per_block: int, erc20_blocks: int) -> None:
    app = ChainApp(Chain(LevelDB(path), GENESIS, modules=chain_modules()))
    builder = Builder(app, dev_accounts(SENDERS))
    for _ in range(transfer_blocks):
        builder.block(
            [
                builder.tx(i, keccak(i.to_bytes(4, "big"))[:20], 1, b"", 21_000)
                for i in range(per_block)
            ]
        )
    if erc20_blocks:
        init = bytes.fromhex(TOKEN["bytecode"].removeprefix("0x")) + (10**30).to_bytes(32, "big")
        deployer = builder.tx(0, b"", 0, init, 3_000_000)
        builder.block([deployer])
        token = keccak(rlp.encode([builder.accounts[0].address, 0]))[12:]
        # Every sender needs tokens: sender 0 pays them out in one block.
        builder.block(
            [
                builder.tx(
                    0,
                    token,
                    0,
                    TRANSFER_SELECTOR + bytes(12) + a.address + (10**24).to_bytes(32, "big"),
                    ERC20_GAS,
                )
                for a in builder.accounts[1:]
            ]
        )
        fit = GENESIS.gas_limit // ERC20_GAS
        for _ in range(erc20_blocks):
            builder.block(
                [
                    builder.tx(
                        i,
                        token,
                        0,
                        TRANSFER_SELECTOR
                        + bytes(12)
                        + keccak(i.to_bytes(4, "big"))[:20]
                        + (1).to_bytes(32, "big"),
                        ERC20_GAS,
                    )
                    for i in range(fit)
                ]
            )
    app.chain.db.close()


class Api:
    def __init__(self, path: Path) -> None:
        self.db = LevelDB(path)
        self.app = ChainApp(Chain(self.db, GENESIS, modules=chain_modules()))
        config = RpcConfig()
        api = EthApi(
            self.app,
            filters=FilterRegistry(clock=lambda: 0.0),
            hub=SubscriptionHub(),
            client_version="bench",
            evm=EvmWorker(timeout=config.evm_timeout),
            gas_cap=config.gas_cap,
            max_response_bytes=config.max_response_bytes,
        )
        self.dispatcher = Dispatcher()
        api.install(self.dispatcher)

    def batches(self, calls: list[tuple[str, list[Any]]], batch: int) -> None:
        async def run() -> None:
            for offset in range(0, len(calls), batch):
                payload = json.dumps(
                    [
                        {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                        for i, (m, p) in enumerate(calls[offset : offset + batch])
                    ]
                )
                body = await self.dispatcher.handle(payload, None)
                assert body is not None and b'"error"' not in body, body[body.find(b'"error"') :][
                    :300
                ]

        trio.run(run)

    def close(self) -> None:
        self.db.close()


def workloads(api: Api) -> dict[str, list[tuple[str, list[Any]]]]:
    chain = api.app.chain
    hashes = [
        "0x" + tx.hash.hex()
        for n in range(1, chain.head_number + 1)
        for tx in chain.transactions(n)
    ]
    blocks = [hex(n) for n in range(1, chain.head_number + 1)]
    block_hashes = [
        "0x" + bytes(chain.header_by_number(n).hash).hex() for n in range(1, chain.head_number + 1)
    ]  # type: ignore[union-attr]
    return {
        "receipts": [("eth_getTransactionReceipt", [h]) for h in hashes],
        "tx": [("eth_getTransactionByHash", [h]) for h in hashes],
        "logs": [("eth_getLogs", [{"blockHash": h}]) for h in block_hashes],
        "block_full": [("eth_getBlockByNumber", [n, True]) for n in blocks],
        "block_receipts": [("eth_getBlockReceipts", [n]) for n in blocks],
    }


def cpu_and_wall(api: Api, calls: list[tuple[str, list[Any]]], batch: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    api.batches(calls, batch)
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfer-blocks", type=int, default=3)
    parser.add_argument("--per-block", type=int, default=1000)
    parser.add_argument("--erc20-blocks", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="reopen the database each round")
    parser.add_argument("--profile", help="profile one workload once (receipts, tx, logs, ...)")
    parser.add_argument("--only", help="comma-separated workloads to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="receipts-bench-") as scratch:
        path = Path(scratch) / "db"
        started = time.perf_counter()
        build_chain(path, args.transfer_blocks, args.per_block, args.erc20_blocks)
        print(f"chain built in {time.perf_counter() - started:.1f} s", flush=True)
        api = Api(path)
        calls = workloads(api)
        print(
            f"{len(calls['receipts'])} transactions in {len(calls['logs'])} blocks; "
            f"batches of {args.batch}"
        )
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            api.batches(calls[args.profile], args.batch)
            profile.disable()
            stats = pstats.Stats(profile)
            stats.sort_stats("cumulative").print_stats(30)
            stats.sort_stats("tottime").print_stats(25)
            return
        names = args.only.split(",") if args.only else list(calls)
        for name in names:
            rates = []
            for _ in range(args.rounds):
                if args.cold:
                    api.close()
                    api = Api(path)
                cpu, wall = cpu_and_wall(api, calls[name], args.batch)
                rates.append((len(calls[name]) / cpu, len(calls[name]) / wall))
            best_cpu = max(r[0] for r in rates)
            best_wall = max(r[1] for r in rates)
            print(
                f"{name:15s} {len(calls[name]):6d} calls  best {best_cpu:9.0f}/s CPU "
                f"{best_wall:9.0f}/s wall  (rounds CPU: "
                + ", ".join(f"{r[0]:.0f}" for r in rates)
                + ")",
                flush=True,
            )
        api.close()


if __name__ == "__main__":
    main()
