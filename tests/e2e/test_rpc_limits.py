"""Resource exhaustion through RPC and cross-origin access (issue #8, parts 4 and 7), performed
against real node processes through their real interfaces.

`limited` is one devnet node (blocks every 0.5 s) whose config.toml sets small caps, so each
attack reaches its limit quickly; `devnet` is a plain `cybermiles devnet` (the origins a devnet
home allows).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from tests.conformance import OpenRpcValidator
from tests.e2e.harness import Devnet, fresh_account, sign_transfer, wait_for

pytestmark = pytest.mark.e2e

MAX_CONNECTIONS = 16
READ_TIMEOUT_S = 2.0
WS_QUEUE_BYTES = 16 * 2**10
PER_CONNECTION_SUBS = 20
NODE_SUBS = 60
MAX_RESPONSE_BYTES = 64 * 2**10
LIMITS = {
    "rpc": {
        "max_connections": MAX_CONNECTIONS,
        "read_timeout": READ_TIMEOUT_S,
        "ws_queue_bytes": WS_QUEUE_BYTES,
        "max_subscriptions_per_connection": PER_CONNECTION_SUBS,
        "max_subscriptions": NODE_SUBS,
        "max_response_bytes": MAX_RESPONSE_BYTES,
    }
}


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, validator: OpenRpcValidator
) -> Iterator[Devnet]:
    base = tmp_path_factory.mktemp("limited")
    net = Devnet(base / "home", validator=validator, block_time=0.5, config=LIMITS).start()
    try:
        yield net
    finally:
        if net.running:
            code = net.stop()
            assert code == 0, f"node exit code {code} on SIGTERM\n{net.log_tail()}"


def open_fds(net: Devnet) -> int:
    assert net.proc is not None
    return len(os.listdir(f"/proc/{net.proc.pid}/fd"))


def rss_bytes(net: Devnet) -> int:
    assert net.proc is not None
    for line in Path(f"/proc/{net.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def error_of(answer: dict[str, Any], code: int, fragment: str) -> None:
    error = answer.get("error")
    assert error is not None and "result" not in answer, answer
    assert error["code"] == code and fragment in error["message"], error


# ---------------------------------------------------------------------- connections


def slow_post(port: int) -> socket.socket:
    """A POST whose headers announce a body that never comes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def test_slow_posts_are_capped_and_timed_out_while_the_node_serves(limited: Devnet) -> None:
    baseline_fds = open_fds(limited)
    start_height = limited.block_number()
    attackers = [slow_post(limited.port) for _ in range(2 * MAX_CONNECTIONS)]
    try:
        # While twice the cap of slow connections is open, the node's descriptors stay within
        # the cap (the rest wait in the kernel backlog), a normal client is answered, and
        # blocks keep coming.
        peak = open_fds(limited)
        began = time.monotonic()
        assert limited.block_number() >= start_height
        answered_after = time.monotonic() - began
        wait_for(
            lambda: limited.block_number() >= start_height + 3,
            timeout=30,
            what="blocks during the attack",
        )
        peak = max(peak, open_fds(limited))
        assert peak <= baseline_fds + MAX_CONNECTIONS + 2, (baseline_fds, peak)
        # Served within two rounds of body timeouts, not never.
        assert answered_after < 4 * READ_TIMEOUT_S + 5, answered_after
        # Every slow connection is answered 408 and closed by the body timeout.
        replies = [read_until_closed(sock) for sock in attackers]
        assert all(r.startswith(b"HTTP/1.1 408") for r in replies), replies[:3]
        assert b"request body not received within 2 s" in replies[0]
    finally:
        for sock in attackers:
            sock.close()
    limited.assert_alive()


# ---------------------------------------------------------------------- WebSocket


def ws_call(ws: ClientConnection, method: str, params: list[Any]) -> dict[str, Any]:
    """One request on a WebSocket, skipping notifications."""
    ws.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}))
    while True:
        message = json.loads(ws.recv(timeout=20))
        if message.get("id") == 7:
            return dict(message)


def slow_reader(url: str) -> ClientConnection:
    """A WebSocket client with a tiny receive buffer that will stop reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.removeprefix("ws://").rstrip("/").split(":")
    sock.connect((host, int(port)))
    return connect(url, sock=sock, open_timeout=10, max_size=2**24)


def send_transfers(net: Devnet, accounts: list[LocalAccount], per_account: int) -> int:
    calls = []
    for n, sender in enumerate(accounts):
        nonce = int(net.result("eth_getTransactionCount", [sender.address, "pending"]), 16)
        for i in range(per_account):
            signed = sign_transfer(sender, nonce + i, fresh_account(500 + n).address, 1)
            calls.append(("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()]))
    answers = net.batch(calls)
    assert all("result" in a for a in answers), [a for a in answers if "error" in a][:2]
    return len(calls)


def test_websocket_subscriber_that_never_reads_is_disconnected(
    limited: Devnet, accounts: list[LocalAccount]
) -> None:
    rss_before = rss_bytes(limited)
    ws = slow_reader(limited.ws_url)
    with ws:
        for _ in range(PER_CONNECTION_SUBS):
            assert "result" in ws_call(ws, "eth_subscribe", ["newPendingTransactions"])
        # It stops reading; each transfer now queues 20 notifications for it.
        sent = 0
        for _ in range(3):
            sent += send_transfers(limited, accounts, per_account=40)
        limited.assert_alive()
        received = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=30)
                received += 1
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, closed.value
    # The node dropped what did not fit instead of buffering it.
    assert received < sent * PER_CONNECTION_SUBS
    assert rss_bytes(limited) - rss_before < 64 * 2**20
    limited.assert_alive()


def test_subscription_flood_hits_the_caps_and_the_node_stays_responsive(limited: Devnet) -> None:
    # Subscriptions of the previous test's closed connection are gone.
    with ExitStack() as stack:
        first, *others, last = [
            stack.enter_context(connect(limited.ws_url, open_timeout=10))
            for _ in range(NODE_SUBS // PER_CONNECTION_SUBS + 1)
        ]
        for _ in range(PER_CONNECTION_SUBS):
            assert "result" in ws_call(first, "eth_subscribe", ["logs", {}])
        error_of(
            ws_call(first, "eth_subscribe", ["newHeads"]),
            -32005,
            f"too many subscriptions on this connection (limit {PER_CONNECTION_SUBS})",
        )
        for ws in others:
            for _ in range(PER_CONNECTION_SUBS):
                assert "result" in ws_call(ws, "eth_subscribe", ["newHeads"])
        error_of(
            ws_call(last, "eth_subscribe", ["newHeads"]),
            -32005,
            f"too many subscriptions on this node (limit {NODE_SUBS})",
        )
        began = time.monotonic()
        limited.assert_alive()
        assert time.monotonic() - began < 2.0


# ---------------------------------------------------------------------- batches and sizes


def test_batch_of_100_get_logs_answers_the_tail_with_budget_errors(limited: Devnet) -> None:
    calls = [("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}])] * 100
    began = time.monotonic()
    answers = limited.batch(calls)
    assert time.monotonic() - began < 10
    # eth_getLogs costs 50 of the batch's 1,000 units: 20 run, the rest are refused unrun.
    assert all(isinstance(a.get("result"), list) for a in answers[:20])
    for answer in answers[20:]:
        error_of(answer, -32005, "batch budget exhausted")
    limited.assert_alive()


def test_fee_history_with_1000_percentiles_is_refused(limited: Devnet) -> None:
    error_of(
        limited.rpc("eth_feeHistory", ["0x40", "latest", list(range(1000))]),
        -32602,
        "rewardPercentiles: 1000 percentiles, at most 100",
    )
    error_of(
        limited.rpc("eth_feeHistory", ["0x4", "latest", [50, 10]]),
        -32602,
        "rewardPercentiles[1]",
    )
    ok = limited.result("eth_feeHistory", ["0x4", "latest", [10, 50, 90]])
    assert all(len(rewards) == 3 for rewards in ok["reward"])


def test_txpool_content_too_large_is_refused_before_building(
    limited: Devnet, accounts: list[LocalAccount]
) -> None:
    # Transactions behind a nonce gap stay queued: 3 x 60 x >= 450 bytes > 64 KiB.
    calls = []
    for n, sender in enumerate(accounts[:3]):
        nonce = int(limited.result("eth_getTransactionCount", [sender.address, "pending"]), 16)
        for i in range(2, 62):
            signed = sign_transfer(sender, nonce + i, fresh_account(600 + n).address, 1)
            calls.append(("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()]))
    assert all("result" in a for a in limited.batch(calls))
    error_of(
        limited.rpc("txpool_content"),
        -32005,
        f"response too large: the pool's transactions (see txpool_status) would exceed "
        f"{MAX_RESPONSE_BYTES} bytes",
    )
    assert int(limited.result("txpool_status")["queued"], 16) >= 180


# ---------------------------------------------------------------------- origins


def test_devnet_allows_localhost_origins_only(devnet: Devnet) -> None:
    config = (devnet.home / "config" / "config.toml").read_text()
    assert 'cors_origins = [\n    "http://localhost:*",' in config, config
    body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
    foreign = devnet.post_raw(body, {"Origin": "http://evil.example"})
    assert foreign.status_code == 200  # answered, but the browser may not read it
    assert "access-control-allow-origin" not in foreign.headers
    preflight = devnet._session.options(
        devnet.url,
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in preflight.headers
    local = devnet.post_raw(body, {"Origin": "http://localhost:5173"})
    assert local.headers["access-control-allow-origin"] == "http://localhost:5173"

    with pytest.raises(InvalidStatus) as refused:
        with connect(devnet.ws_url, origin=Origin("http://evil.example"), open_timeout=10):
            pass
    assert refused.value.response.status_code == 403
    for origin in (Origin("http://127.0.0.1:3000"), None):  # a local page; a non-browser
        with connect(devnet.ws_url, origin=origin, open_timeout=10) as ws:
            assert ws_call(ws, "eth_chainId", [])["result"] == hex(devnet.chain_id)
    devnet.assert_alive()
