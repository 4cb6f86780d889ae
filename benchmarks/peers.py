"""What the benchmark scripts share: a JSON-RPC client, legacy transaction signing, the devnets
(this node, anvil, Hardhat) and how to install and start them, a block follower, and tables.

Nothing here measures anything; the scripts beside it (side_by_side.py, latency_under_load.py,
devnet_ux.py, transfers.py, bft_cluster.py) do. The pure parts (signing, RLP, percentiles, table
layout) are unit-tested in tests/unit/test_bench_helpers.py; the rest talks to processes.

The peers come from npm (`@foundry-rs/anvil-linux-amd64` and `hardhat`, the versions the e2e
clients use) and are installed into a cache folder (default ~/.cache/cybermiles-bench) when
missing. A peer that cannot be installed or started is skipped by the caller, with the reason.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp
from coincurve import PrivateKey
from eth_hash.auto import keccak

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path.home() / ".cache" / "cybermiles-bench"
# The versions the e2e clients use (tests/js/package.json): Hardhat 2, Foundry 1.7.
NPM_PACKAGES = {"@foundry-rs/anvil-linux-amd64": "1.7.1", "hardhat": "2.29.1"}
OUTPUT = "devnet-output.txt"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# JSON-RPC over one keep-alive HTTP/1.1 connection
# --------------------------------------------------------------------------------------------


class Rpc:
    """Minimal JSON-RPC client over one keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.next_id = 1

    def post(self, payload: object) -> Any:
        """POST `payload` (bytes as they are, anything else as JSON); the decoded answer."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        for attempt in range(2):
            try:
                self.conn.request(
                    "POST", "/", body=body, headers={"Content-Type": "application/json"}
                )
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
                return json.loads(data)
            except (http.client.HTTPException, ConnectionError):
                # a server may close an idle keep-alive connection: reconnect once
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, *params: object) -> Any:
        reply = self.post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        if not isinstance(reply, dict):
            raise RuntimeError(f"{method}: unexpected reply {reply!r:.300}")
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """The results of `calls` as one batch, in order; raises when any failed."""
        payload = []
        for method, params in calls:
            request = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
            payload.append(request)
            self.next_id += 1
        answer = self.post(payload)
        if not isinstance(answer, list):
            raise RuntimeError(f"batch refused: {answer!r:.300}")
        by_id = {item.get("id"): item for item in answer}
        results = []
        for request in payload:
            item = by_id.get(request["id"], {})
            if "error" in item or "result" not in item:
                raise RuntimeError(f"{request['method']}: {item.get('error', item)}")
            results.append(item["result"])
        return results

    def close(self) -> None:
        self.conn.close()


def send_raw_batch_body(raws: Sequence[bytes], first_id: int = 0) -> bytes:
    """One JSON-RPC batch of eth_sendRawTransaction, ids first_id, first_id + 1, ..."""
    return json.dumps(
        [
            {
                "jsonrpc": "2.0",
                "id": first_id + i,
                "method": "eth_sendRawTransaction",
                "params": ["0x" + raw.hex()],
            }
            for i, raw in enumerate(raws)
        ]
    ).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    """Whether eth_blockNumber succeeds on a new connection now."""
    try:
        rpc = Rpc(port, timeout=2.0)
        try:
            rpc.call("eth_blockNumber")
            return True
        finally:
            rpc.close()
    except (OSError, RuntimeError, ValueError, http.client.HTTPException):
        return False


# --------------------------------------------------------------------------------------------
# Signing (done before any timing): legacy EIP-155 transactions, signed with coincurve directly
# --------------------------------------------------------------------------------------------


def address_of(key: PrivateKey) -> bytes:
    return keccak(key.public_key.format(compressed=False)[1:])[12:]


def sign_legacy(
    key: PrivateKey,
    *,
    chain_id: int,
    nonce: int,
    gas_price: int,
    gas: int,
    to: bytes,
    value: int = 0,
    data: bytes = b"",
) -> bytes:
    """Raw RLP of a signed legacy EIP-155 transaction (`to` b"" creates a contract)."""
    unsigned = [nonce, gas_price, gas, to, value, data]
    sig = key.sign_recoverable(keccak(rlp.encode([*unsigned, chain_id, 0, 0])), hasher=None)
    r = int.from_bytes(sig[0:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    v = sig[64] + 35 + 2 * chain_id
    return rlp.encode([*unsigned, v, r, s])


def tx_hash(raw: bytes) -> str:
    return "0x" + keccak(raw).hex()


def erc20_transfer_data(to: bytes, amount: int) -> bytes:
    """Calldata of `transfer(address,uint256)`."""
    selector = keccak(b"transfer(address,uint256)")[:4]
    return selector + to.rjust(32, b"\0") + amount.to_bytes(32, "big")


# --------------------------------------------------------------------------------------------
# The devnets
# --------------------------------------------------------------------------------------------


@dataclass
class Devnet:
    name: str
    start_command: Callable[[int, Path], list[str]]  # (port, scratch dir) -> argv
    help_command: list[str]
    cwd: Path = REPO
    env: dict[str, str] = field(default_factory=dict)
    persistent: bool = False  # keeps its chain in the scratch dir (start-up twice)

    def spawn(self, port: int, scratch: Path) -> subprocess.Popen[bytes]:
        """Start on `port`; the output goes to OUTPUT beside `scratch` (`last_words`)."""
        scratch.parent.mkdir(parents=True, exist_ok=True)
        with (scratch.parent / OUTPUT).open("wb") as output:
            return subprocess.Popen(
                self.start_command(port, scratch),
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )


def last_words(scratch: Path, lines: int = 1) -> str:
    try:
        text = (scratch.parent / OUTPUT).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_answering(
    proc: subprocess.Popen[bytes], port: int, name: str, scratch: Path, timeout: float = 60.0
) -> None:
    """Block until `port` answers eth_blockNumber; raise with the devnet's last words if not."""
    deadline = time.monotonic() + timeout
    while not answers(port):
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {proc.returncode} while starting: {last_words(scratch)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer within {timeout:g} s")
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (Linux /proc), children not included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user+system) of `pid`, its live descendants, and its reaped children."""
    stats: dict[int, tuple[int, float, float]] = {}  # pid -> (ppid, own cpu, reaped-children cpu)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        own = (int(fields[11]) + int(fields[12])) / CLK_TCK
        reaped = (int(fields[13]) + int(fields[14])) / CLK_TCK
        stats[int(entry)] = (ppid, own, reaped)
    if pid not in stats:
        return float("nan")
    total, frontier = 0.0, [pid]
    while frontier:
        p = frontier.pop()
        total += stats[p][1] + stats[p][2]
        frontier.extend(c for c, (pp, _, _) in stats.items() if pp == p)
    return total


def cybermiles_devnet(
    executable: Path, extra: Sequence[str] = (), name: str = "cybermiles"
) -> Devnet:
    return Devnet(
        name=name,
        start_command=lambda port, home: [
            str(executable),
            "devnet",
            "--home",
            str(home),
            "--rpc-port",
            str(port),
            *extra,
        ],  # fmt: skip
        help_command=[str(executable), "--help"],
        persistent=True,
    )


def install_peers(cache: Path, wanted: Sequence[str], say: Callable[[str], None]) -> None:
    """npm-install the peers' packages into `cache` unless they are there."""
    missing = [
        f"{name}@{version}"
        for name, version in NPM_PACKAGES.items()
        if any(peer.split("-")[0] in name for peer in wanted)
        and not (cache / "node_modules" / name / "package.json").exists()
    ]
    if not missing:
        return
    if shutil.which("npm") is None:
        say("npm not found: cannot install " + ", ".join(missing))
        return
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / "package.json").exists():
        (cache / "package.json").write_text('{"name": "cybermiles-bench", "private": true}\n')
    say(f"installing {', '.join(missing)} into {cache} ...")
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *missing],
        cwd=cache,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        say(f"npm install failed: {result.stderr.strip()[-500:]}")


def anvil_devnet(cache: Path, extra: Sequence[str] = (), name: str = "anvil") -> Devnet | str:
    """anvil from the cache, or why not."""
    binary = cache / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not binary.exists():
        found = list((cache / "node_modules" / "@foundry-rs").glob("anvil-*/**/anvil"))
        if not found:
            return f"{name}: no binary under {cache / 'node_modules'}"
        binary = found[0]
    return Devnet(
        name=name,
        start_command=lambda port, _scratch: [str(binary), "--port", str(port), *extra],
        help_command=[str(binary), "--help"],
    )


def hardhat_devnet(cache: Path, name: str = "hardhat") -> Devnet | str:
    """`hardhat node` (automine) from the cache, or why not."""
    binary = cache / "node_modules" / ".bin" / "hardhat"
    if not binary.exists():
        return f"{name}: no {binary}"
    project = cache / "hardhat-project"
    project.mkdir(exist_ok=True)
    config = project / "hardhat.config.js"
    if not config.exists():
        config.write_text("module.exports = {};\n")
    return Devnet(
        name=name,
        start_command=lambda port, _scratch: [
            str(binary),
            "node",
            "--hostname",
            "127.0.0.1",
            "--port",
            str(port),
        ],  # fmt: skip
        help_command=[str(binary), "--help"],
        cwd=project,
        env={"HARDHAT_DISABLE_TELEMETRY_PROMPT": "true", "NO_COLOR": "1"},
    )


# --------------------------------------------------------------------------------------------
# Following blocks
# --------------------------------------------------------------------------------------------


class Poller(threading.Thread):
    """Follows new blocks and records, for every one of our transactions, when it was committed.

    `hash_batch` maps each expected transaction hash (lower case) to the batch it was sent in.
    """

    def __init__(
        self,
        port: int,
        start_block: int,
        hash_batch: dict[str, int],
        poll_interval: float = 0.005,
    ) -> None:
        super().__init__(daemon=True)
        self.poll_interval = poll_interval
        self.rpc = Rpc(port)
        self.next_block = start_block + 1
        self.hash_batch = hash_batch
        self.expected = len(hash_batch)  # lowered by the sender for rejected transactions
        self.lock = threading.Lock()
        self.batch_commit: dict[int, float] = {}  # batch -> time its latest tx was seen committed
        self.tx_commit: dict[str, float] = {}  # tx hash -> time it was seen committed
        self.committed = 0
        self.block_sizes: list[int] = []
        self.last_commit = 0.0
        self.last_progress = time.perf_counter()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                head = int(str(self.rpc.call("eth_blockNumber")), 16)
                now = time.perf_counter()
                if head < self.next_block:
                    if self.committed >= self.expected:
                        return
                    time.sleep(self.poll_interval)
                    continue
                # at most 500 blocks a request: an automine peer makes one block per transaction
                numbers = range(self.next_block, min(head, self.next_block + 499) + 1)
                replies = self.rpc.post(
                    [
                        {
                            "jsonrpc": "2.0",
                            "id": n,
                            "method": "eth_getBlockByNumber",
                            "params": [hex(n), False],
                        }
                        for n in numbers
                    ]
                )
                assert isinstance(replies, list)
                for reply in sorted(replies, key=lambda r: r["id"]):
                    block = reply.get("result")
                    if block is None:
                        raise RuntimeError(f"eth_getBlockByNumber({reply['id']}): {reply}")
                    ours = 0
                    for tx_hash in block["transactions"]:
                        batch = self.hash_batch.get(tx_hash.lower())
                        if batch is not None:
                            ours += 1
                            self.batch_commit[batch] = now
                            self.tx_commit[tx_hash.lower()] = now
                    if ours:
                        self.block_sizes.append(len(block["transactions"]))
                        self.committed += ours
                        self.last_commit = now
                        self.last_progress = now
                self.next_block = numbers[-1] + 1
                if self.committed >= self.expected:
                    return
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.rpc.close()


# --------------------------------------------------------------------------------------------
# Funded senders (untimed set-up)
# --------------------------------------------------------------------------------------------

# Account 0 of the "test ... junk" mnemonic: funded on this node's devnet, anvil and Hardhat.
DEV_KEY_0 = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
MIN_GAS_PRICE = 10 * 10**9
SENDER_ETHER = 10**18
FUNDING_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Chain:
    chain_id: int
    gas_price: int  # a legacy price every block of the run accepts

    @classmethod
    def of(cls, rpc: Rpc) -> Chain:
        """The devnet's chain id, and max(10 gwei, 4 x eth_gasPrice): above anvil's and
        Hardhat's base fee while it rises under full blocks, above our devnet's minimum."""
        price = int(rpc.call("eth_gasPrice"), 16)
        return cls(int(rpc.call("eth_chainId"), 16), max(MIN_GAS_PRICE, 4 * price))


class Account:
    """A key and the next nonce we will sign with."""

    def __init__(self, key: PrivateKey, nonce: int = 0) -> None:
        self.key = key
        self.address = address_of(key)
        self.nonce = nonce

    def sign(
        self, chain: Chain, *, to: bytes, gas: int, value: int = 0, data: bytes = b""
    ) -> bytes:
        raw = sign_legacy(
            self.key, chain_id=chain.chain_id, nonce=self.nonce, gas_price=chain.gas_price,
            gas=gas, to=to, value=value, data=data,
        )  # fmt: skip
        self.nonce += 1
        return raw


def receipts_of(rpc: Rpc, hashes: Sequence[str], batch: int) -> list[Any]:
    """Every receipt of `hashes` (None where missing), batched."""
    out: list[Any] = []
    for offset in range(0, len(hashes), batch):
        chunk = hashes[offset : offset + batch]
        out.extend(rpc.batch([("eth_getTransactionReceipt", [h]) for h in chunk]))
    return out


def send_and_wait(rpc: Rpc, raws: Sequence[bytes]) -> list[Any]:
    """Send one at a time (in nonce order: a peer may run a batch's requests concurrently), in
    chunks of 100 each waited for (our mempool holds at most 256 per sender); the receipts."""
    receipts: list[Any] = []
    for offset in range(0, len(raws), 100):
        hashes = [
            rpc.call("eth_sendRawTransaction", "0x" + raw.hex())
            for raw in raws[offset : offset + 100]
        ]
        deadline = time.monotonic() + FUNDING_TIMEOUT_S
        while True:
            got = receipts_of(rpc, hashes, 100)
            if all(r is not None for r in got):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"set-up transactions not mined within {FUNDING_TIMEOUT_S:g} s")
            time.sleep(0.05)
        failed = [r["transactionHash"] for r in got if int(r["status"], 16) != 1]
        if failed:
            raise RuntimeError(f"set-up transaction failed: {failed[0]}")
        receipts.extend(got)
    return receipts


def dev_funder(rpc: Rpc) -> Account:
    funder = Account(PrivateKey(bytes.fromhex(DEV_KEY_0)))
    address = "0x" + funder.address.hex()
    funder.nonce = int(rpc.call("eth_getTransactionCount", address, "pending"), 16)
    return funder


def funding(chain: Chain, funder: Account, senders: Sequence[Account]) -> list[bytes]:
    """SENDER_ETHER from `funder` to each sender, signed."""
    return [funder.sign(chain, to=s.address, gas=21_000, value=SENDER_ETHER) for s in senders]


def fresh_senders(label: bytes, count: int) -> list[Account]:
    """`count` deterministic fresh keys (nonce 0, no balance until funded)."""
    return [Account(PrivateKey(keccak(label + b" %d" % i))) for i in range(count)]


# --------------------------------------------------------------------------------------------
# Numbers and tables
# --------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile of already sorted values (nan when empty)."""
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[idx]


def median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        rest = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in rest]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def git_commit(repo: Path = REPO) -> str:
    """`git rev-parse --short HEAD` of `repo` (with "+dirty" for uncommitted changes), or "?"."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+dirty" if dirty else "")
