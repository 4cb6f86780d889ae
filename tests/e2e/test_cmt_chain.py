"""A cmt_* transaction blocks only its own request, and the cmt_* chain helpers, on a real
one-node devnet making a block every 2 s (`--block-time 2`).

cmt_delegate (signed by the node for an unlocked devnet account) waits for the block holding
it. Sent over a WebSocket right after a block, it waits ~2 s; meanwhile eth_blockNumber is
answered over the same WebSocket and over HTTP, each with a height below the one the delegation
then reports: they were answered before its block existed. The helpers are then read for that
block and transaction as web3-cmt.js reads them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conformance import OpenRpcValidator
from tests.e2e.harness import Devnet, dev_keys, wait_for

pytestmark = pytest.mark.e2e

CMT = 10**18
WS_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def slow_devnet(
    tmp_path_factory: pytest.TempPathFactory, validator: OpenRpcValidator
) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("cmt-chain") / "home", validator=validator, block_time=2)
    net.start()
    try:
        yield net
    finally:
        if net.running:
            assert net.stop() == 0, net.log_tail()


def ws_send(ws: ClientConnection, rid: int, method: str, params: list[Any]) -> None:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))


def ws_receive(ws: ClientConnection) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(ws.recv(timeout=WS_TIMEOUT_S))
    return answer


def next_block(net: Devnet) -> int:
    """Wait for the next block and return its number: the one after it is ~2 s away."""
    start = net.block_number()

    def advanced() -> int | None:
        now = net.block_number()
        return now if now > start else None

    return wait_for(advanced, timeout=10, what="the next block")


def test_a_waiting_cmt_tx_blocks_only_its_own_request(slow_devnet: Devnet) -> None:
    net = slow_devnet
    owner, delegator = dev_keys(8)[0], dev_keys(8)[7]
    delegate = {
        "from": delegator.address,
        "validatorAddress": owner.address.lower(),
        "amount": hex(3 * CMT),
    }
    with connect(net.ws_url, open_timeout=10) as ws:
        next_block(net)
        ws_send(ws, 1, "cmt_delegate", [delegate])
        ws_send(ws, 2, "eth_blockNumber", [])
        same_connection = ws_receive(ws)
        over_http = net.result("eth_blockNumber", [])
        delegated = ws_receive(ws)
    assert same_connection["id"] == 2, same_connection  # answered first, while id 1 waited
    assert delegated["id"] == 1 and "error" not in delegated, delegated
    height = delegated["result"]["height"]
    assert delegated["result"]["deliver_tx"]["code"] == 0, delegated
    # both were answered before the delegation's block was committed
    assert int(same_connection["result"], 16) < height
    assert int(over_http, 16) < height

    # the helpers, as web3-cmt.js calls them, for that transaction and block
    tx_hash = delegated["result"]["hash"]
    tx = net.result("cmt_getTransactionByHash", [tx_hash], check=False)
    assert tx["blockNumber"] == hex(height) and tx["from"] == delegator.address.lower()
    assert tx["cmtInput"]["type"] == "stake/delegate"
    assert tx["txResult"] == delegated["result"]["deliver_tx"]
    index = int(tx["transactionIndex"], 16)
    assert net.result("cmt_getTransactionFromBlock", [height, index], check=False) == tx
    block = net.result("cmt_getBlockByNumber", [height, True], check=False)
    header = block["block"]["header"]
    assert header["height"] == height and header["num_txs"] >= 1
    decoded = [json.loads(base64.b64decode(t)) for t in block["block"]["data"]["txs"]]
    assert tx in decoded
    syncing = net.result("cmt_syncing", [None], check=False)  # null-padded, as web3-cmt.js pads
    assert syncing["latest_block_height"] >= height and syncing["catching_up"] is False
    assert net.result("cmt_pendingTransactionCount", [], check=False) == "0x0"
    assert net.result("cmt_getPendingTransactions", [0], check=False) is None
