"""A four-validator chain under hostile clients, all at once (issue #8, "How it is proven").

While transfers are sent to every node, attackers:
- submit a transaction below the EIP-7623 calldata floor from a sender who cannot pay the floor
  (it used to crash every proposer in turn);
- run eth_calls with gas 2^63 over an infinite loop on one validator, again and again (one such
  call used to pin a validator's event loop: it stopped voting);
- open a thousand slow HTTP connections to another validator, headers sent and the body never
  (they used to exhaust its file descriptors: it exited);
- flood a third validator with WebSocket log subscriptions they never read.

The nodes run with an open-file limit of 1024 (soft and hard), as on a stock Linux account, and
the slow connections outnumber it, so they are a real threat to the descriptors consensus, p2p
and the status endpoint need. Transfers must
keep committing on every node, all nodes must agree on every block, and all must be alive.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from contextlib import ExitStack
from urllib.parse import urlparse

import pytest
import requests
from websockets.sync.client import connect

from tests.e2e.cluster import Cluster
from tests.e2e.harness import MIN_GAS_PRICE, dev_keys, fresh_account, sign_transfer, wait_for

pytestmark = pytest.mark.e2e

COMMIT_TIMEOUT_S = 90.0
FD_LIMIT = 1024
SLOW_CONNECTIONS = 1100  # more than the fd limit: without a cap they would take them all
SUBSCRIBERS = 20
SUBSCRIPTIONS_EACH = 1000
TRANSFERS = 24


class Attack:
    """A hostile client running in a thread until the test stops it. Its body sets `ready`
    once the attack is in full swing, and returns when `stop` is set."""

    def __init__(self, name: str, body: Callable[[Attack], None]) -> None:
        self.name = name
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(body,), daemon=True, name=name)

    def _run(self, body: Callable[[Attack], None]) -> None:
        try:
            body(self)
        except BaseException as exc:  # reported by the test, never lost in a thread
            self.errors.append(exc)
        finally:
            self.ready.set()

    def __enter__(self) -> Attack:
        self.thread.start()
        assert self.ready.wait(timeout=120), f"{self.name} never got going"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def floor_transaction(cluster: Cluster) -> None:
    """A sender who can pay gas x price (what admission used to check) but not the floor."""
    poor = fresh_account(9100)
    price, gas = MIN_GAS_PRICE, 60_000  # floor for 2000 nonzero bytes: 101,000 gas
    funder = dev_keys(5)[4]
    fund = sign_transfer(funder, 0, poor.address, gas * price)
    answer = cluster.rpc(0, "eth_sendRawTransaction", ["0x" + fund.raw_transaction.hex()])
    wait_for(
        lambda: cluster.rpc(0, "eth_getTransactionReceipt", [answer["result"]])["result"],
        timeout=COMMIT_TIMEOUT_S,
        what="the attacker funded",
        interval=0.2,
    )
    raw = poor.sign_transaction(
        {
            "chainId": cluster.chain_id,
            "nonce": 0,
            "to": poor.address,
            "value": 0,
            "gas": gas,
            "gasPrice": price,
            "data": b"\x01" * 2000,
        }
    ).raw_transaction
    for node in range(4):
        answer = cluster.rpc(node, "eth_sendRawTransaction", ["0x" + bytes(raw).hex()])
        assert "calldata floor" in answer["error"]["message"], answer


def unbounded_calls(cluster: Cluster, node: int) -> Callable[[Attack], None]:
    def body(attack: Attack) -> None:
        attack.ready.set()  # each call spins the node's EVM for its whole time limit
        while not attack.stop.is_set():
            answer = cluster.rpc(
                node, "eth_call", [{"data": "0x5b600056", "gas": hex(2**63)}, "latest"]
            )
            assert answer["error"]["code"] == -32000, answer

    return body


def slow_connections(cluster: Cluster, node: int) -> Callable[[Attack], None]:
    url = urlparse(cluster.nodes[node].rpc_url)
    request = (
        f"POST / HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n{"
    ).encode()

    def body(attack: Attack) -> None:
        with ExitStack() as stack:
            for _ in range(SLOW_CONNECTIONS):
                try:
                    sock = stack.enter_context(
                        socket.create_connection((url.hostname, url.port), timeout=5)
                    )
                    sock.sendall(request)
                except OSError:
                    continue  # refused, reset or not accepted at the cap: the node's defence
            attack.ready.set()
            attack.stop.wait()

    return body


def subscription_flood(cluster: Cluster, node: int) -> Callable[[Attack], None]:
    subscribe = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["logs", {}]}
    )

    def body(attack: Attack) -> None:
        with ExitStack() as stack:
            for _ in range(SUBSCRIBERS):
                try:
                    ws = stack.enter_context(connect(cluster.nodes[node].ws_url, open_timeout=10))
                except OSError:
                    continue
                for _ in range(SUBSCRIPTIONS_EACH):
                    try:
                        ws.send(subscribe)  # never read: answers pile up at the node
                    except Exception:
                        break  # the node closed us: a slow consumer, or over a cap
            attack.ready.set()
            attack.stop.wait()

    return body


def fresh_status_height(cluster: Cluster, i: int) -> int:
    """Node i's height from /status over a new TCP connection (not a pooled one)."""
    response = requests.get(
        f"{cluster.nodes[i].status_url}/status", headers={"Connection": "close"}, timeout=10
    )
    return int(response.json()["result"]["sync_info"]["latest_block_height"])


def test_hostile_clients_do_not_stop_a_four_validator_chain(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(
        validators=4, wrapper=["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}", "--"]
    )
    cluster.wait_height(0, 1, timeout=COMMIT_TIMEOUT_S)
    floor_transaction(cluster)
    senders = dev_keys(4)
    recipient = fresh_account(9101).address
    sent: list[tuple[int, str]] = []
    with (
        Attack("unbounded eth_call", unbounded_calls(cluster, 1)) as calls,
        Attack("slow connections", slow_connections(cluster, 2)) as slow,
        Attack("subscription flood", subscription_flood(cluster, 3)) as flood,
    ):
        start_height = cluster.height(0)
        for n in range(TRANSFERS):
            node = (0, 1, 3)[n % 3]  # node 2's RPC may be full of slow connections
            tx = sign_transfer(senders[node], n // 3, recipient, 1 + n)
            answer = cluster.rpc(node, "eth_sendRawTransaction", ["0x" + tx.raw_transaction.hex()])
            assert "result" in answer, answer
            sent.append((node, answer["result"]))
        for _node, tx_hash in sent:
            receipt = wait_for(
                lambda h=tx_hash: cluster.rpc(0, "eth_getTransactionReceipt", [h])["result"],
                timeout=COMMIT_TIMEOUT_S,
                what=f"receipt of {tx_hash}",
                interval=0.2,
            )
            assert receipt["status"] == "0x1"
        top = cluster.height(0)
        assert top > start_height
        for i in (1, 3):
            cluster.wait_height(i, top, timeout=COMMIT_TIMEOUT_S)
        # Node 2's consensus went on while its RPC was besieged, and it still has descriptors
        # for new connections: its status endpoint answers a fresh connection.
        wait_for(
            lambda: fresh_status_height(cluster, 2) >= top,
            timeout=COMMIT_TIMEOUT_S,
            what="node2 at the head",
        )
        assert all(cluster.alive(i) for i in range(4))
    for attack in (calls, slow, flood):
        assert not attack.errors, (attack.name, attack.errors)
    cluster.wait_height(2, top, timeout=COMMIT_TIMEOUT_S)  # its RPC is back
    hashes = {
        i: [
            cluster.rpc(i, "eth_getBlockByNumber", [hex(h), False])["result"]["hash"]
            for h in range(1, top + 1)
        ]
        for i in range(4)
    }
    assert hashes[0] == hashes[1] == hashes[2] == hashes[3]
    assert int(cluster.rpc(0, "eth_getBalance", [recipient, "latest"])["result"], 16) == sum(
        1 + n for n in range(TRANSFERS)
    )
