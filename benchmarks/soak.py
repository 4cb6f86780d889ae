"""Memory over time on a long chain: RSS of a devnet under a bounded wallet-like load.

Run: `.venv/bin/python benchmarks/soak.py [--home DIR] [--blocks 100000] [--rate R]
[--minutes 30] [--senders 200] [--starts 3] [--port P] [--build-only]`.

1. Home: --home DIR is reused when it holds a chain (its head is topped up to --blocks);
   otherwise a devnet is made there (or in a temporary folder) with --senders funded accounts,
   --state-accounts transfers to fresh addresses (a big state), and empty blocks from
   `anvil_mine` up to --blocks.
2. Start-up on that existing home, --starts times: spawn to the first eth_blockNumber answer
   (polled every 5 ms on a new connection), and the node's CPU time (utime + stime) by then,
   which a busy machine disturbs less than wall time.
3. Saturation: unless --rate is given, --probe pre-signed transfers as JSON-RPC batches of 100,
   as fast as they are accepted; rate = transfers / (last commit - first send).
4. Soak: half that rate for --minutes. A sender thread signs and sends transfers from every
   sender to a fixed set of recipients, one in ten a call to a contract that logs an event;
   a wallet thread reads like a wallet (eth_blockNumber, eth_getBlockByNumber of the head and of
   an old block with its transactions, a receipt of a recent transaction, eth_getLogs over the
   last blocks, eth_getBalance, a log filter and a block filter polled and replaced now and
   then, and an abandoned filter a minute, which the node must expire); a subscriber thread
   holds a WebSocket with newHeads and logs subscriptions and reconnects every minute.
   Every --sample seconds: the node's RSS (VmRSS of /proc/PID/status) and its parts RssAnon
   (heaps) and RssFile (mapped files, LevelDB's tables among them), head, pending count.
5. Prints the samples and, for each of the three, first/last/max and whether the mean of the
   last window stays within 10 % of the first window's (a window is ten minutes, or a third of
   a shorter run). The verdict is RssAnon's: VmRSS also counts the LevelDB table pages that
   reads map in, page cache the kernel reclaims (see `judge`).
A reused home whose dev accounts are not all funded (made with fewer --accounts) gets its
senders funded by the first.

A script that prints numbers, not a test. The node runs with --quiet (no line per transaction).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp
from coincurve import PrivateKey
from eth_hash.auto import keccak

REPO = Path(__file__).resolve().parent.parent
CHAIN_ID = 1234  # a devnet's default chain id
GAS_PRICE = 2 * 10**9  # the devnet's minimum gas price
TRANSFER_GAS = 21_000
CALL_GAS = 40_000
DEPLOY_GAS = 200_000
RECIPIENTS = 1_000
MINE_CHUNK = 10_000  # rpc/dev_chain.py MAX_MINED_BLOCKS
BATCH = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
EVENT_TOPIC = keccak(b"Ping(address)")
# Runtime: LOG1(topic, the caller as data). Init code: copy the runtime and return it.
RUNTIME = (
    bytes.fromhex("33600052")  # CALLER PUSH1 0 MSTORE
    + b"\x7f"
    + EVENT_TOPIC  # PUSH32 topic
    + bytes.fromhex("60206000a100")  # PUSH1 32 PUSH1 0 LOG1 STOP
)
INIT = bytes([0x60, len(RUNTIME), 0x80, 0x60, 11, 0x60, 0, 0x39, 0x60, 0, 0xF3]) + RUNTIME


# --------------------------------------------------------------------------------------------
# JSON-RPC and signing
# --------------------------------------------------------------------------------------------


class Rpc:
    """JSON-RPC over one keep-alive HTTP connection."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.port, self.timeout = port, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def post(self, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        try:
            self.conn.request("POST", "/", body, {"Content-Type": "application/json"})
            return json.loads(self.conn.getresponse().read())
        except (OSError, http.client.HTTPException):
            self.conn.close()  # one retry on a fresh connection (the server may close idle ones)
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request("POST", "/", body, {"Content-Type": "application/json"})
            return json.loads(self.conn.getresponse().read())

    def call(self, method: str, *params: Any) -> Any:
        answer = self.post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Each call's answer ({"result"} or {"error"}), in order."""
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        answer = self.post(payload) if payload else []
        if not isinstance(answer, list):
            raise RuntimeError(f"batch refused: {answer}")
        by_id = {item.get("id"): item for item in answer}
        return [by_id.get(i, {"error": "no answer"}) for i in range(len(calls))]

    def close(self) -> None:
        self.conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def address_of(key: PrivateKey) -> bytes:
    return keccak(key.public_key.format(False)[1:])[12:]


def sign(
    key: PrivateKey, nonce: int, to: bytes, gas: int, value: int = 0, data: bytes = b""
) -> bytes:
    """Raw RLP of a signed legacy EIP-155 transaction at the devnet's minimum gas price."""
    unsigned = [nonce, GAS_PRICE, gas, to, value, data]
    sig = key.sign_recoverable(keccak(rlp.encode([*unsigned, CHAIN_ID, 0, 0])), hasher=None)
    v = sig[64] + 35 + 2 * CHAIN_ID
    return rlp.encode(
        [*unsigned, v, int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")]
    )


def raw_call(raw: bytes) -> tuple[str, list[Any]]:
    return ("eth_sendRawTransaction", ["0x" + raw.hex()])


def contract_address(sender: bytes, nonce: int) -> bytes:
    return keccak(rlp.encode([sender, nonce]))[12:]


# --------------------------------------------------------------------------------------------
# The node process
# --------------------------------------------------------------------------------------------


@dataclass
class Node:
    home: Path
    port: int
    senders: int
    cybermiles: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Spawn and wait for the first eth_blockNumber answer; returns the seconds it took."""
        log = (self.home.parent / f"{self.home.name}-node.log").open("ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [
                str(self.cybermiles),
                "devnet",
                "--home",
                str(self.home),
                "--rpc-port",
                str(self.port),
                "--accounts",
                str(self.senders),
                "--quiet",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = t0 + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}; see its log")
            if self.answers():
                return time.monotonic() - t0
            time.sleep(0.005)
        raise RuntimeError("node did not answer within 300 s")

    def answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            body = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
            conn.request("POST", "/", body, {"Content-Type": "application/json"})
            ok = "result" in json.loads(conn.getresponse().read())
            conn.close()
            return ok
        except (OSError, ValueError, http.client.HTTPException):
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_kib(self) -> int:
        return self.memory_kib()["VmRSS"]

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and its parts: RssAnon (heaps: Python's, LevelDB's caches) and RssFile
        (mapped files: libraries, and the LevelDB table files LevelDB reads through mmap)."""
        with open(f"/proc/{self.pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if line.startswith(("VmRSS", "Rss")))
        return {name: int(value.split()[0]) for name, value in fields.items()}

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# --------------------------------------------------------------------------------------------
# 1. The home
# --------------------------------------------------------------------------------------------


def head(rpc: Rpc) -> int:
    return int(rpc.call("eth_blockNumber"), 16)


def nonces(rpc: Rpc, addresses: Sequence[bytes], tag: str = "pending") -> list[int]:
    out: list[int] = []
    for i in range(0, len(addresses), BATCH):
        chunk = addresses[i : i + BATCH]
        answers = rpc.batch([("eth_getTransactionCount", ["0x" + a.hex(), tag]) for a in chunk])
        out += [int(a["result"], 16) for a in answers]
    return out


def send_all(rpc: Rpc, raws: Sequence[bytes]) -> int:
    """Send in batches of BATCH; returns how many were refused."""
    refused = 0
    for i in range(0, len(raws), BATCH):
        answers = rpc.batch([raw_call(r) for r in raws[i : i + BATCH]])
        refused += sum(1 for a in answers if "error" in a)
    return refused


def wait_nonces(
    rpc: Rpc, addresses: Sequence[bytes], wanted: Sequence[int], timeout: float
) -> float:
    """Poll until every address's committed nonce reaches `wanted`; returns when it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(n >= w for n, w in zip(nonces(rpc, addresses, "latest"), wanted, strict=True)):
            return time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError("transactions were not committed in time")


SENDER_FUNDS = 100 * 10**18


def fund_senders(rpc: Rpc, keys: Sequence[PrivateKey]) -> None:
    """A reused home may have fewer funded dev accounts than --senders: the first pays the
    others SENDER_FUNDS each."""
    addresses = [address_of(k) for k in keys]
    balances = rpc.batch([("eth_getBalance", ["0x" + a.hex(), "latest"]) for a in addresses])
    poor = [a for a, b in zip(addresses, balances, strict=True) if int(b["result"], 16) == 0]
    if not poor:
        return
    print(f"  funding {len(poor)} senders from the first ...", flush=True)
    first = nonces(rpc, addresses[:1])[0]
    raws = [
        sign(keys[0], first + i, a, TRANSFER_GAS, value=SENDER_FUNDS) for i, a in enumerate(poor)
    ]
    for i in range(0, len(raws), 200):  # the per-sender pool limit is 256
        send_all(rpc, raws[i : i + 200])
        wait_nonces(rpc, addresses[:1], [first + min(i + 200, len(raws))], 600)


def build_home(node: Node, keys: Sequence[PrivateKey], blocks: int, state_accounts: int) -> None:
    rpc = Rpc(node.port, timeout=900)
    addresses = [address_of(k) for k in keys]
    if head(rpc) == 0 and state_accounts:
        print(f"  {state_accounts} transfers to fresh addresses (a big state) ...", flush=True)
        rnd = random.Random(1)
        first = nonces(rpc, addresses)
        raws = [
            sign(
                keys[i % len(keys)],
                first[i % len(keys)] + i // len(keys),
                rnd.randbytes(20),
                TRANSFER_GAS,
                value=1,
            )
            for i in range(state_accounts)
        ]
        # The per-sender mempool limit (256) paces a sender: send in rounds.
        per_round = len(keys) * 200
        for i in range(0, len(raws), per_round):
            send_all(rpc, raws[i : i + per_round])
            wait_nonces(rpc, addresses, [n for n in nonces(rpc, addresses)], 600)
    fund_senders(rpc, keys)
    while (h := head(rpc)) < blocks:
        count = min(MINE_CHUNK, blocks - h)
        t0 = time.monotonic()
        rpc.call("anvil_mine", hex(count), "0x0")  # interval 0: no timestamps in the future
        print(
            f"  mined to block {h + count} ({count / (time.monotonic() - t0):.0f} blocks/s)",
            flush=True,
        )
    rpc.close()


# --------------------------------------------------------------------------------------------
# 3. Saturation
# --------------------------------------------------------------------------------------------


def saturation(
    rpc: Rpc, keys: Sequence[PrivateKey], count: int, recipients: Sequence[bytes]
) -> float:
    addresses = [address_of(k) for k in keys]
    first = nonces(rpc, addresses)
    n = len(keys)
    raws = [
        sign(
            keys[i % n],
            first[i % n] + i // n,
            recipients[i % len(recipients)],
            TRANSFER_GAS,
            value=1,
        )
        for i in range(count)
    ]
    wanted = [first[i] + len(range(i, count, n)) for i in range(n)]
    t0 = time.perf_counter()
    refused = send_all(rpc, raws)
    done = wait_nonces(rpc, addresses, wanted if not refused else nonces(rpc, addresses), 600)
    return (count - refused) / (done - t0)


# --------------------------------------------------------------------------------------------
# 4. The soak
# --------------------------------------------------------------------------------------------


@dataclass
class Counters:
    sent: int = 0
    refused: int = 0
    reads: int = 0
    read_errors: int = 0
    notifications: int = 0
    reconnects: int = 0
    last_error: str = ""
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=1000))  # recent tx hashes
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sender(threading.Thread):
    """Transfers (one in ten a logging contract call) at `rate` per second, in small batches."""

    def __init__(
        self,
        port: int,
        keys: Sequence[PrivateKey],
        rate: float,
        contract: bytes,
        recipients: Sequence[bytes],
        counters: Counters,
        stop: threading.Event,
    ) -> None:
        super().__init__(daemon=True)
        self.rpc, self.keys, self.rate = Rpc(port), keys, rate
        self.contract, self.recipients, self.counters, self.stop = (
            contract,
            recipients,
            counters,
            stop,
        )
        self.addresses = [address_of(k) for k in keys]
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _run(self) -> None:
        next_nonce = nonces(self.rpc, self.addresses)
        t0, sent, i = time.monotonic(), 0, 0
        while not self.stop.wait(0.1):
            due = int(self.rate * (time.monotonic() - t0)) - sent
            raws: list[tuple[int, bytes]] = []
            for _ in range(due):
                s = i % len(self.keys)
                if i % 10 == 9:
                    raw = sign(self.keys[s], next_nonce[s], self.contract, CALL_GAS)
                else:
                    raw = sign(
                        self.keys[s],
                        next_nonce[s],
                        self.recipients[i % RECIPIENTS],
                        TRANSFER_GAS,
                        value=1,
                    )
                next_nonce[s] += 1
                raws.append((s, raw))
                i += 1
            refused_senders = set()
            for j in range(0, len(raws), BATCH):
                chunk = raws[j : j + BATCH]
                answers = self.rpc.batch([raw_call(r) for _, r in chunk])
                with self.counters.lock:
                    for (s, _), a in zip(chunk, answers, strict=True):
                        if "error" in a:
                            self.counters.refused += 1
                            self.counters.last_error = str(a["error"])[:200]
                            refused_senders.add(s)
                        else:
                            self.counters.sent += 1
                            self.counters.recent.append(a["result"])
            sent += due
            if refused_senders:  # a refused transaction leaves a gap: ask the node again
                fresh = nonces(self.rpc, [self.addresses[s] for s in sorted(refused_senders)])
                for s, n in zip(sorted(refused_senders), fresh, strict=True):
                    next_nonce[s] = n


class Wallet(threading.Thread):
    """Reads as wallets and dapps do, about twice a second."""

    def __init__(
        self, port: int, contract: bytes, old_blocks: int, counters: Counters, stop: threading.Event
    ) -> None:
        super().__init__(daemon=True)
        self.rpc, self.contract, self.old_blocks = Rpc(port), "0x" + contract.hex(), old_blocks
        self.counters, self.stop = counters, stop
        self.rnd = random.Random(3)

    def run(self) -> None:
        log_filter = block_filter = None
        replaced_at = abandoned_at = time.monotonic()
        while not self.stop.wait(0.5):
            try:
                now = time.monotonic()
                if log_filter is None or now - replaced_at > 30:
                    if log_filter is not None:
                        self.rpc.batch(
                            [
                                ("eth_uninstallFilter", [log_filter]),
                                ("eth_uninstallFilter", [block_filter]),
                            ]
                        )
                    log_filter = self.rpc.call("eth_newFilter", {"address": self.contract})
                    block_filter = self.rpc.call("eth_newBlockFilter")
                    replaced_at = now
                if now - abandoned_at > 60:  # never polled nor uninstalled: the node expires it
                    self.rpc.call("eth_newFilter", {"topics": ["0x" + EVENT_TOPIC.hex()]})
                    abandoned_at = now
                number = head(self.rpc)
                with self.counters.lock:
                    recent = list(self.counters.recent)[-50:]
                calls: list[tuple[str, list[Any]]] = [
                    ("eth_getBlockByNumber", ["latest", False]),
                    ("eth_getBlockByNumber", [hex(self.rnd.randrange(1, self.old_blocks)), True]),
                    (
                        "eth_getLogs",
                        [
                            {
                                "fromBlock": hex(max(0, number - 10)),
                                "toBlock": hex(number),
                                "address": self.contract,
                            }
                        ],
                    ),
                    ("eth_getBalance", [self.contract, "latest"]),
                    ("eth_getFilterChanges", [log_filter]),
                    ("eth_getFilterChanges", [block_filter]),
                    ("eth_gasPrice", []),
                ]
                if recent:
                    calls.append(("eth_getTransactionReceipt", [self.rnd.choice(recent)]))
                    calls.append(("eth_getTransactionByHash", [self.rnd.choice(recent)]))
                answers = self.rpc.batch(calls)
                errors = [a["error"] for a in answers if "error" in a]
                with self.counters.lock:
                    self.counters.reads += len(calls) + 1
                    self.counters.read_errors += len(errors)
                    if errors:
                        self.counters.last_error = str(errors[0])[:200]
                if errors:  # e.g. a filter the node expired: make new ones
                    log_filter = None
            except (OSError, RuntimeError, ValueError, http.client.HTTPException) as exc:
                with self.counters.lock:
                    self.counters.read_errors += 1
                    self.counters.last_error = repr(exc)[:200]


class Subscriber(threading.Thread):
    """newHeads and logs subscriptions on a WebSocket, reconnecting every minute."""

    def __init__(
        self, port: int, contract: bytes, counters: Counters, stop: threading.Event
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.contract = f"ws://127.0.0.1:{port}", "0x" + contract.hex()
        self.counters, self.stop = counters, stop

    def run(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        while not self.stop.is_set():
            try:
                with connect(self.url, max_size=2**24) as ws:
                    for i, params in enumerate(
                        [["newHeads"], ["logs", {"address": self.contract}]]
                    ):
                        ws.send(
                            json.dumps(
                                {
                                    "jsonrpc": "2.0",
                                    "id": i,
                                    "method": "eth_subscribe",
                                    "params": params,
                                }
                            )
                        )
                    until = time.monotonic() + 60
                    while not self.stop.is_set() and time.monotonic() < until:
                        try:
                            ws.recv(timeout=1.0)
                        except TimeoutError:
                            continue
                        with self.counters.lock:
                            self.counters.notifications += 1
                with self.counters.lock:
                    self.counters.reconnects += 1
            except (OSError, WebSocketException) as exc:
                with self.counters.lock:
                    self.counters.last_error = repr(exc)[:200]
                self.stop.wait(1.0)


@dataclass(frozen=True)
class Sample:
    at_s: float
    rss_kib: int
    anon_kib: int
    file_kib: int
    head: int
    pending: int
    sent: int


def soak(
    node: Node,
    keys: Sequence[PrivateKey],
    rate: float,
    minutes: float,
    every: float,
    recipients: Sequence[bytes],
    contract: bytes,
    old_blocks: int,
) -> list[Sample]:
    counters, stop = Counters(), threading.Event()
    threads = [
        Sender(node.port, keys, rate, contract, recipients, counters, stop),
        Wallet(node.port, contract, old_blocks, counters, stop),
        Subscriber(node.port, contract, counters, stop),
    ]
    rpc = Rpc(node.port)
    samples: list[Sample] = []
    t0 = time.monotonic()
    for t in threads:
        t.start()
    print(
        f"{'t':>6} {'RSS MiB':>8} {'anon':>6} {'file':>6} {'head':>8} {'pending':>8} "
        f"{'sent':>9} {'refused':>7} {'reads':>7} {'read err':>8} {'notif':>7}",
        flush=True,
    )
    try:
        while (elapsed := time.monotonic() - t0) < minutes * 60:
            status = rpc.call("txpool_status")
            memory = node.memory_kib()
            with counters.lock:
                sample = Sample(
                    elapsed,
                    memory["VmRSS"],
                    memory["RssAnon"],
                    memory["RssFile"],
                    head(rpc),
                    int(status["pending"], 16) + int(status["queued"], 16),
                    counters.sent,
                )
                refused, reads, errs, notif = (
                    counters.refused,
                    counters.reads,
                    counters.read_errors,
                    counters.notifications,
                )
            samples.append(sample)
            print(
                f"{elapsed:6.0f} {sample.rss_kib / 1024:8.1f} {sample.anon_kib / 1024:6.1f} "
                f"{sample.file_kib / 1024:6.1f} {sample.head:8d} {sample.pending:8d} "
                f"{sample.sent:9d} {refused:7d} {reads:7d} {errs:8d} {notif:7d}",
                flush=True,
            )
            sender = threads[0]
            if isinstance(sender, Sender) and sender.error is not None:
                raise RuntimeError(f"sender failed: {sender.error!r}")
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"node exited with {node.proc.returncode}")
            time.sleep(max(0.0, t0 + len(samples) * every - time.monotonic()))
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        rpc.close()
    if counters.last_error:
        print(f"last error seen: {counters.last_error}")
    return samples


def judge(samples: Sequence[Sample], minutes: float) -> bool:
    """First/last/max of each series, and whether the last window's mean is within 10 % of
    the first's. The verdict is RssAnon's, the node's own memory (Python's heap, malloc's
    arenas, LevelDB's block cache and memtables). VmRSS adds RssFile, pages of mapped files:
    LevelDB reads its tables through mmap, so the chain's pages that reads touch count there:
    clean page cache the kernel drops under pressure, which moves by tens of MiB between
    samples with the blocks a reader asks for (DECISIONS "Native memory: arenas and
    trimming"). It is printed and judged beside, for the issue's figure."""
    window = min(10.0, minutes / 3) * 60
    end = samples[-1].at_s
    flat: dict[str, bool] = {}
    for name, kib in (
        ("VmRSS", [s.rss_kib for s in samples]),
        ("RssAnon", [s.anon_kib for s in samples]),
        ("RssFile", [s.file_kib for s in samples]),
    ):
        mib = [k / 1024 for k in kib]
        level0 = statistics.mean(m for m, s in zip(mib, samples, strict=True) if s.at_s <= window)
        level1 = statistics.mean(
            m for m, s in zip(mib, samples, strict=True) if s.at_s >= end - window
        )
        change = (level1 - level0) / level0
        flat[name] = abs(change) <= 0.10
        verdict = "flat (within 10 %)" if flat[name] else "NOT flat (more than 10 %)"
        print(
            f"{name} MiB: first {mib[0]:.1f}, last {mib[-1]:.1f}, max {max(mib):.1f}; mean of "
            f"the first {window / 60:.3g} min {level0:.1f}, of the last {window / 60:.3g} min "
            f"{level1:.1f}: {change:+.1%} -> {verdict}"
        )
    print(f"verdict (RssAnon, the node's own memory): {'flat' if flat['RssAnon'] else 'NOT flat'}")
    return flat["RssAnon"]


# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--home", type=Path, help="a devnet home to reuse (made when absent)")
    p.add_argument("--blocks", type=int, default=100_000, help="chain length before the soak")
    p.add_argument(
        "--state-accounts",
        type=int,
        default=20_000,
        help="transfers to fresh addresses when a home is made",
    )
    p.add_argument("--senders", type=int, default=200)
    p.add_argument("--rate", type=float, help="transfers/s of the soak (default: half saturation)")
    p.add_argument("--probe", type=int, default=6_000, help="transfers of the saturation probe")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    p.add_argument("--starts", type=int, default=3, help="start-ups measured on the home")
    p.add_argument("--build-only", action="store_true", help="make the home (--home) and stop")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cybermiles", type=Path, default=REPO / ".venv" / "bin" / "cybermiles")
    args = p.parse_args(argv)

    from genesis import dev_accounts  # the node's package: the funded senders' keys

    keys = [PrivateKey(a.private_key) for a in dev_accounts(args.senders)]
    scratch = None
    home = args.home
    if home is None:
        scratch = Path(tempfile.mkdtemp(prefix="cmt-soak-"))
        home = scratch / "home"
    node = Node(home.resolve(), args.port or free_port(), args.senders, args.cybermiles)
    rnd = random.Random(2)
    recipients = [rnd.randbytes(20) for _ in range(RECIPIENTS)]
    try:
        print(f"home {node.home}: making it {args.blocks} blocks long ...", flush=True)
        node.start()
        build_home(node, keys, args.blocks, args.state_accounts)
        node.stop()
        if args.build_only:
            return 0

        print(f"start-up on the existing home ({args.starts} starts):", flush=True)
        for _ in range(args.starts):
            ready = node.start()
            print(
                f"  RPC answered {ready:.3f} s after spawn; node CPU by then "
                f"{node.cpu_s():.2f} s; RSS {node.rss_kib() / 1024:.0f} MiB",
                flush=True,
            )
            node.stop()
        node.start()
        rpc = Rpc(node.port)
        old_blocks = head(rpc)
        owner = keys[0]
        nonce = nonces(rpc, [address_of(owner)])[0]
        contract = contract_address(address_of(owner), nonce)
        send_all(rpc, [sign(owner, nonce, b"", DEPLOY_GAS, data=INIT)])
        wait_nonces(rpc, [address_of(owner)], [nonce + 1], 120)
        if rpc.call("eth_getCode", "0x" + contract.hex(), "latest") != "0x" + RUNTIME.hex():
            raise RuntimeError("the logging contract was not deployed")
        rate = args.rate
        if rate is None:
            rate = saturation(rpc, keys, args.probe, recipients)
            print(
                f"saturation: {rate:.0f} transfers/s ({args.probe} transfers); soak at half",
                flush=True,
            )
            rate /= 2
        rpc.close()
        print(
            f"soak: {rate:.0f} transfers/s for {args.minutes:g} min, RSS every "
            f"{args.sample:g} s (node pid {node.pid}, {os.cpu_count()} cores; load average "
            f"{os.getloadavg()[0]:.1f} at the start)",
            flush=True,
        )
        samples = soak(
            node, keys, rate, args.minutes, args.sample, recipients, contract, old_blocks
        )
        judge(samples, args.minutes)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        node.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
