"""Attacks through execution, against a real node process (issue #8 parts 1 and 2).

- A transaction below the EIP-7623 calldata floor, from a sender who cannot pay the floor, used
  to be admitted and then crash block building. It is refused at admission, naming the floor.
- eth_call with gas 2^63 over an infinite loop used to pin the event loop forever: the node
  stopped producing blocks and ignored SIGTERM. Now the call is answered with a clear error at
  its wall-clock limit, the node keeps serving and committing meanwhile, and SIGTERM stops it
  within a few seconds even while such calls run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    MIN_GAS_PRICE,
    Devnet,
    dev_keys,
    fresh_account,
    send_signed,
    sign_transfer,
    wait_for,
    wait_receipt,
)

pytestmark = pytest.mark.e2e

INFINITE_LOOP_INITCODE = "0x5b600056"  # JUMPDEST PUSH1 0 JUMP, run as contract creation
HUGE_GAS = hex(2**63)
EVM_TIMEOUT_S = 5.0  # rpc.evm_timeout's default
# The infinite calls must meet the time limit, not the gas cap: the interpreter burns geth's
# default cap (50M gas of a 12-gas loop) in under 5 s on a quiet machine.
UNCAPPED = {"rpc": {"gas_cap": 10**15}}


def infinite_call(net: Devnet) -> dict[str, Any]:
    return net.rpc("eth_call", [{"data": INFINITE_LOOP_INITCODE, "gas": HUGE_GAS}, "latest"])


def in_background(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except Exception as exc:  # the node went away mid-call (the SIGTERM test)
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_transaction_below_the_calldata_floor_is_refused_naming_the_floor(devnet: Devnet) -> None:
    poor = fresh_account(8001)
    w3 = devnet.w3()
    funder = dev_keys(1)[0]
    nonce = w3.eth.get_transaction_count(funder.address, "pending")
    fund = sign_transfer(funder, nonce, poor.address, 74_000 * 10**9)
    wait_receipt(w3, send_signed(w3, fund))
    data = b"\x01" * 2000  # floor 21000 + 10 x 8000 tokens = 101,000; intrinsic 53,000
    raw = poor.sign_transaction(
        {
            "chainId": devnet.chain_id,
            "nonce": 0,
            "to": funder.address,
            "value": 0,
            "gas": 60_000,
            "gasPrice": MIN_GAS_PRICE,
            "data": data,
        }
    ).raw_transaction
    head = devnet.block_number()
    answer = devnet.rpc("eth_sendRawTransaction", ["0x" + bytes(raw).hex()])
    error = answer["error"]
    assert "intrinsic gas too low" in error["message"] and "101000" in error["message"]
    assert "calldata floor" in error["message"]
    assert devnet.result("eth_getTransactionCount", [poor.address, "pending"]) == "0x0"
    # The node goes on: a normal transfer is still mined.
    transfer = sign_transfer(funder, nonce + 1, poor.address, 1)
    receipt = wait_receipt(w3, send_signed(w3, transfer))
    assert receipt["status"] == 1 and receipt["blockNumber"] > head


def test_an_unbounded_eth_call_is_stopped_and_the_node_keeps_serving(devnet_factory: Any) -> None:
    devnet: Devnet = devnet_factory(name="uncapped", config=UNCAPPED)
    w3 = devnet.w3()
    funder = dev_keys(2)[1]
    started = time.monotonic()
    thread, answers = in_background(lambda: infinite_call(devnet))
    # While the call spins: reads answer promptly and transactions are still mined.
    latencies = []
    while thread.is_alive() and time.monotonic() - started < 2.0:
        t = time.monotonic()
        devnet.result("eth_blockNumber")
        latencies.append(time.monotonic() - t)
    nonce = w3.eth.get_transaction_count(funder.address, "pending")
    tx_hash = send_signed(w3, sign_transfer(funder, nonce, fresh_account(8002).address, 7))
    assert wait_receipt(w3, tx_hash)["status"] == 1
    assert thread.is_alive(), "the call ended before its limit: the test proves nothing"
    thread.join(timeout=30)
    elapsed = time.monotonic() - started
    error = answers[0]["error"]
    assert error["code"] == -32000
    assert error["message"] == f"execution aborted (timeout = {EVM_TIMEOUT_S:g}s)"
    assert EVM_TIMEOUT_S <= elapsed < EVM_TIMEOUT_S + 3
    latencies.sort()
    assert len(latencies) >= 10 and latencies[len(latencies) // 2] < 0.2, latencies


def hashing_loop(iterations: int) -> str:
    """Initcode that hashes 32 KiB `iterations` times (6,222 gas each), then stops."""
    loop = "5b801560175761800060002050600190036003565b00"
    return "0x61" + iterations.to_bytes(2, "big").hex() + loop


def test_the_gas_of_a_call_is_capped_at_50_million(devnet: Devnet) -> None:
    # 6,430 iterations need 40M gas: above the block gas limit (30M) but under the cap.
    fits = devnet.rpc("eth_call", [{"data": hashing_loop(6_430), "gas": HUGE_GAS}, "latest"])
    assert fits["result"] == "0x"
    # 9,643 iterations need 60M: the gas asked for (2^63) is lowered to the cap, not refused.
    over = devnet.rpc("eth_call", [{"data": hashing_loop(9_643), "gas": HUGE_GAS}, "latest"])
    assert over["error"] == {"code": -32000, "message": "out of gas"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (an idle devnet uses almost none)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_sigterm_stops_the_node_while_unbounded_calls_run(devnet_factory: Any) -> None:
    net: Devnet = devnet_factory(name="sigterm", config=UNCAPPED)
    assert net.proc is not None
    before = cpu_seconds(net.proc.pid)
    threads = [in_background(lambda: infinite_call(net))[0] for _ in range(3)]
    # The calls are spinning in the node once it burns CPU (they run for 5 s each).
    wait_for(lambda: cpu_seconds(net.proc.pid) - before > 0.5, timeout=5, what="EVM busy")
    assert all(t.is_alive() for t in threads)
    started = time.monotonic()
    code = net.stop(signal.SIGTERM, timeout=10)
    assert code == 0
    assert time.monotonic() - started < 4.0
