"""eth_sendRawTransaction batches are admitted in chunks with the event loop free between them
(issue #13: reads stay responsive while a client posts big batches), in order, so one
sender's nonces spread over several chunks all get in. Over a real ChainApp and Dispatcher."""

from __future__ import annotations

import json

import pytest
import trio
from eth_account import Account

import rpc.eth
from cybermiles_node.application.app import AppConfig, ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.node import chain_modules, chain_profile
from evm.db import MemoryDB
from genesis import dev_accounts, devnet_genesis
from rpc import Dispatcher
from tests.eth_api import eth_api

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
SENDER = dev_accounts(1)[0]


def _signed_batch(count: int) -> str:
    key = SENDER.private_key
    calls = []
    for nonce in range(count):
        tx = {
            "nonce": nonce,
            "gasPrice": 10 * 10**9,
            "gas": 21_000,
            "to": "0x" + "11" * 20,
            "value": 1,
            "chainId": GENESIS.chain_id,
        }
        raw = Account.sign_transaction(tx, key).raw_transaction
        calls.append(
            {
                "jsonrpc": "2.0",
                "id": nonce,
                "method": "eth_sendRawTransaction",
                "params": ["0x" + raw.hex()],
            }
        )
    return json.dumps(calls)


def test_a_big_batch_is_admitted_in_order_with_the_loop_free_between_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three chunks or more make the check below independent of trio's random order of runnable
    # tasks: whichever of the two runs first in a round, the pool is partly filled in the second.
    monkeypatch.setattr(rpc.eth, "ADMISSION_CHUNK", 50)
    chain = Chain(MemoryDB(), GENESIS, modules=chain_modules(), profile=chain_profile(GENESIS))
    app = ChainApp(chain)
    dispatcher = Dispatcher()
    eth_api(app).install(dispatcher)
    count = 133  # one sender: under its pool limit (256)
    batch = _signed_batch(count)
    chunks_seen: list[int] = []
    real_check_txs = app.check_txs

    def counting_check_txs(raws, senders=None):  # type: ignore[no-untyped-def]
        chunks_seen.append(len(raws))
        return real_check_txs(raws, senders)

    app.check_txs = counting_check_txs  # type: ignore[method-assign]
    ticks: list[int] = []  # pool size each time another task ran during the batch

    async def main() -> bytes | None:
        done = trio.Event()

        async def other_request() -> None:
            while not done.is_set():
                ticks.append(len(app.mempool))
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other_request)
            await trio.sleep(0)
            out = await dispatcher.handle(batch, None)
            done.set()
        return out

    body = trio.run(main)
    assert body is not None
    answers = json.loads(body)
    assert [a["id"] for a in answers] == list(range(count))
    assert all("result" in a for a in answers), [a for a in answers if "error" in a][:2]
    assert chunks_seen == [50, 50, 33]
    assert app.pending_count == count
    # Another task ran while the pool held some of the batch but not all of it.
    assert any(0 < size < count for size in ticks), ticks


def test_with_recovery_workers_the_senders_come_from_the_workers_and_bad_ones_are_named() -> None:
    chain = Chain(MemoryDB(), GENESIS, modules=chain_modules(), profile=chain_profile(GENESIS))
    app = ChainApp(chain, AppConfig(recovery_workers=1))
    app.recovery.start()
    try:
        dispatcher = Dispatcher()
        eth_api(app).install(dispatcher)
        calls = json.loads(_signed_batch(150))
        raw = bytes.fromhex(calls[100]["params"][0][2:])
        # s (the last 32 bytes of a legacy tx) above the curve order: no sender recovers.
        calls[100]["params"][0] = "0x" + (raw[:-32] + b"\xff" * 32).hex()
        shipped: list[int] = []
        real_ship = app.ship_senders

        def counting_ship(raws, piece):  # type: ignore[no-untyped-def]
            waits = real_ship(raws, piece)
            shipped.append(len(waits))
            return waits

        app.ship_senders = counting_ship  # type: ignore[method-assign]
        answers = json.loads(trio.run(dispatcher.handle, json.dumps(calls), None) or b"")
    finally:
        app.close()
    piece = rpc.eth.ADMISSION_CHUNK * rpc.eth.CHUNKS_PER_PIECE
    assert shipped == [len(range(0, 150, piece))]  # all of the batch shipped, in pieces
    assert all("result" in a for a in answers[:100]), answers[:100]
    assert "signature" in answers[100]["error"]["message"], answers[100]
    # The bad one breaks the sender's nonce sequence: the rest wait in the pool's queue.
    assert app.pending_count == 100
