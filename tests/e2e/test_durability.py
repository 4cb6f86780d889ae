"""Durability of a real devnet: clean restarts keep everything, a SIGKILL under load loses nothing
that was reported committed, and --reset starts over from genesis.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from eth_account.signers.local import LocalAccount

from tests.conformance import OpenRpcValidator
from tests.e2e.harness import (
    INITIAL_BALANCE,
    Devnet,
    Json,
    deploy_token,
    fresh_account,
    q,
    send_signed,
    sign_transfer,
    token_contract,
    wait_for,
    wait_receipt,
)

pytestmark = pytest.mark.e2e


def log_since_last_start(net: Devnet) -> str:
    text = net.log_path.read_text(errors="replace")
    return text[text.rfind("===== start #") :]


def test_restart_keeps_chain_state_receipts_and_logs(
    devnet_factory: Any, accounts: list[LocalAccount]
) -> None:
    net: Devnet = devnet_factory("restart")
    w3 = net.w3()
    owner, payer = accounts[1], accounts[2]
    token, _ = deploy_token(w3, owner, 10**21)
    contract = token_contract(w3, token)
    hashes = []
    nonce = w3.eth.get_transaction_count(owner.address)
    for i in range(3):
        data = contract.encode_abi("transfer", args=[fresh_account(400 + i).address, 100 + i])
        signed = sign_transfer(
            owner, nonce + i, token, 0, gas=100_000, data=bytes.fromhex(data[2:])
        )
        hashes.append(send_signed(w3, signed))
    nonce = w3.eth.get_transaction_count(payer.address)
    for i in range(3):
        hashes.append(
            send_signed(w3, sign_transfer(payer, nonce + i, fresh_account(410).address, i + 1))
        )
    for h in hashes:
        assert wait_receipt(w3, h)["status"] == 1

    def snapshot() -> Json:
        head = net.block_number()
        return {
            "head": head,
            "head_block": net.result("eth_getBlockByNumber", [hex(head), True]),
            "receipts": [
                net.result("eth_getTransactionReceipt", ["0x" + bytes(h).hex()]) for h in hashes
            ],
            "txs": [
                net.result("eth_getTransactionByHash", ["0x" + bytes(h).hex()]) for h in hashes
            ],
            "logs": net.result("eth_getLogs", [{"address": token, "fromBlock": "0x0"}]),
            "balances": [
                net.result("eth_getBalance", [a, "latest"])
                for a in (owner.address, payer.address, fresh_account(410).address)
            ],
            "nonces": [
                net.result("eth_getTransactionCount", [a, "latest"])
                for a in (owner.address, payer.address)
            ],
            "code": net.result("eth_getCode", [token, "latest"]),
            "token_balance": contract.functions.balanceOf(fresh_account(401).address).call(),
        }

    before = snapshot()
    assert len(before["logs"]) == 4  # mint + 3 transfers

    code = net.stop(signal.SIGTERM)
    assert code == 0, f"exit code {code} on SIGTERM\n{net.log_tail()}"
    assert "Traceback" not in log_since_last_start(net), net.log_tail()

    net.start()
    w3 = net.w3()
    contract = token_contract(w3, token)
    after = snapshot()
    assert after == before

    # the chain goes on from where it was
    receipt = wait_receipt(
        w3, send_signed(w3, sign_transfer(payer, nonce + 3, fresh_account(410).address, 4))
    )
    assert receipt["status"] == 1 and receipt["blockNumber"] == before["head"] + 1
    assert w3.eth.get_balance(fresh_account(410).address) == 1 + 2 + 3 + 4

    # Ctrl-C stops cleanly too, and that last block survives it
    code = net.stop(signal.SIGINT)
    assert code in (0, 130), f"exit code {code} on SIGINT\n{net.log_tail()}"
    assert "Traceback" not in log_since_last_start(net), net.log_tail()
    net.start()
    assert net.block_number() == before["head"] + 1
    assert net.w3().eth.get_transaction_receipt(receipt["transactionHash"]) == receipt


@dataclass
class LoadState:
    """What the load thread has seen; read by the test after the thread stopped."""

    seen: dict[str, Json] = field(default_factory=dict)  # tx hash -> receipt seen committed
    max_block_seen: int = 0
    sent: int = 0
    rejected: list[Json] = field(default_factory=list)
    stopped_by: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


def load_stream(
    url: str,
    senders: list[LocalAccount],
    nonces: list[int],
    state: LoadState,
    stop: threading.Event,
    per_sender: int = 5,
) -> None:
    """Batches of eth_sendRawTransaction from several senders, then receipt polls, until stopped
    or the node disappears. Only receipts actually returned by the node count as seen."""
    session = requests.Session()
    outstanding: list[str] = []
    request_id = 0
    recipients = [fresh_account(500 + i).address for i in range(len(senders))]
    try:
        while not stop.is_set():
            batch: list[Any] = []
            for i, sender in enumerate(senders):
                for _ in range(per_sender):
                    signed = sign_transfer(sender, nonces[i], recipients[i], 1 + nonces[i] % 7)
                    nonces[i] += 1
                    request_id += 1
                    batch.append(
                        {
                            "jsonrpc": "2.0",
                            "id": request_id,
                            "method": "eth_sendRawTransaction",
                            "params": ["0x" + bytes(signed.raw_transaction).hex()],
                        }
                    )
                    outstanding.append("0x" + bytes(signed.hash).hex())
            answers = session.post(url, json=batch, timeout=30).json()
            with state.lock:
                state.sent += len(batch)
                state.rejected.extend(a for a in answers if "error" in a)
            if state.rejected:
                state.stopped_by = "rejection"
                return
            polls: list[Any] = [
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "eth_getTransactionReceipt",
                    "params": [h],
                }
                for i, h in enumerate(outstanding)
            ]
            receipts = {
                a["id"]: a.get("result") for a in session.post(url, json=polls, timeout=30).json()
            }
            still = []
            with state.lock:
                for i, h in enumerate(outstanding):
                    receipt = receipts.get(i)
                    if receipt is None:
                        still.append(h)
                        continue
                    state.seen[h] = receipt
                    state.max_block_seen = max(state.max_block_seen, q(receipt["blockNumber"]))
            outstanding = still
        state.stopped_by = "stop event"
    except (requests.RequestException, ValueError) as exc:
        state.stopped_by = f"node gone: {type(exc).__name__}"


def test_sigkill_under_load_loses_nothing_committed_then_reset(
    devnet_factory: Any, accounts: list[LocalAccount], validator: OpenRpcValidator
) -> None:
    net: Devnet = devnet_factory("crash")
    senders = accounts[1:5]
    w3 = net.w3()
    nonces = [w3.eth.get_transaction_count(s.address) for s in senders]
    state = LoadState()
    stop = threading.Event()
    thread = threading.Thread(
        target=load_stream, args=(net.url, senders, nonces, state, stop), daemon=True
    )
    thread.start()
    try:
        wait_for(
            lambda: len(state.seen) >= 150 or not thread.is_alive(),
            timeout=90,
            what="150 committed transfers",
        )
        assert not state.rejected, state.rejected[:3]
        assert thread.is_alive(), state.stopped_by
        net.kill()  # SIGKILL while the stream is still going
        thread.join(timeout=60)
        assert not thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=60)
    assert state.stopped_by.startswith("node gone"), state.stopped_by
    seen = dict(state.seen)
    assert len(seen) >= 150

    net.start()
    assert net.block_number() >= state.max_block_seen
    hashes = sorted(seen)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        answers = net.batch([("eth_getTransactionReceipt", [h]) for h in chunk])
        for h, answer in zip(chunk, answers, strict=True):
            assert answer.get("result") == seen[h], (h, answer, seen[h])
    blocks = sorted({(r["blockNumber"], r["blockHash"]) for r in seen.values()})
    answers = net.batch([("eth_getBlockByNumber", [n, False]) for n, _ in blocks])
    for (number, block_hash), answer in zip(blocks, answers, strict=True):
        assert answer["result"]["hash"] == block_hash, number
    for sender in senders:
        mined = [r for r in seen.values() if r["from"] == sender.address.lower()]
        top = max(
            q(net.result("eth_getTransactionByHash", [r["transactionHash"]])["nonce"])
            for r in mined
        )
        assert q(net.result("eth_getTransactionCount", [sender.address, "latest"])) > top

    # the node serves and accepts new transactions from every sender
    w3 = net.w3()
    for sender in senders:
        nonce = w3.eth.get_transaction_count(sender.address, "pending")
        receipt = wait_receipt(
            w3, send_signed(w3, sign_transfer(sender, nonce, fresh_account(600).address, 1))
        )
        assert receipt["status"] == 1
    height = net.block_number()
    assert height > state.max_block_seen

    # --reset: back to genesis
    code = net.stop()
    assert code == 0, f"exit code {code} on SIGTERM\n{net.log_tail()}"
    net.start(reset=True)
    assert net.block_number() == 0
    w3 = net.w3()
    for sender in senders:
        assert w3.eth.get_balance(sender.address) == INITIAL_BALANCE
        assert w3.eth.get_transaction_count(sender.address) == 0
    assert net.result("eth_getTransactionReceipt", [hashes[0]]) is None
    assert w3.eth.get_balance(fresh_account(600).address) == 0


def test_conformance_coverage(validator: OpenRpcValidator) -> None:
    assert not validator.violations
    assert len(validator.checked) >= 8, sorted(validator.checked)
