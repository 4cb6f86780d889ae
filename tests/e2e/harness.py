"""The `Devnet` process harness and small transaction helpers shared by the e2e tests.

A `Devnet` is one real `cybermiles devnet` process on 127.0.0.1 with its own home directory. It is
used only the way a wallet or an operator would: JSON-RPC over HTTP/WebSocket and signals. Every
wait is a condition polled against a deadline (never a bare sleep as synchronisation), and the
process output is captured to a log file whose tail is attached to failing test reports.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import requests
import tomli_w
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.middleware import SignAndSendRawMiddlewareBuilder
from web3.types import TxReceipt

from genesis import dev_accounts
from tests.conformance import OpenRpcValidator, check_raw_response, install_conformance_check

__all__ = [
    "CHAIN_ID",
    "GWEI",
    "INITIAL_BALANCE",
    "MIN_GAS_PRICE",
    "Devnet",
    "RpcResponse",
    "active_devnets",
    "dev_keys",
    "fresh_account",
    "free_port",
    "load_token_artifact",
    "deploy_token",
    "send_signed",
    "sign_transfer",
    "staking_raw",
    "token_contract",
    "wait_for",
    "wait_receipt",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAIN_ID = 1234
GWEI = 10**9
MIN_GAS_PRICE = 2 * GWEI
INITIAL_BALANCE = 10**24
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
RPC_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 60

RpcResponse = dict[str, Any]
T = TypeVar("T")

_ACTIVE: list[Devnet] = []


def active_devnets() -> list[Devnet]:
    """Devnets currently running in this process (for failure reports)."""
    return list(_ACTIVE)


def cybermiles_executable() -> Path:
    beside = Path(sys.executable).parent / "cybermiles"
    if beside.exists():
        return beside
    return REPO_ROOT / ".venv" / "bin" / "cybermiles"


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Devnet:
    """One `cybermiles devnet` process with a home directory that survives restarts.

    `home` is the node's home; the process output goes to `log_path` (beside the home, so that
    `--reset` cannot delete it). Each start picks a fresh free port, so `url`/`ws_url` (and any
    `w3()` made before) change across restarts: make new clients after `restart()`.

    With `config` (config.toml tables, e.g. {"rpc": {"max_connections": 8}}), the home is made
    by `cybermiles init` and the node runs as `cybermiles node start` with those settings on top
    of a one-node automine devnet's (`cybermiles devnet` rewrites config.toml on every start).
    """

    def __init__(
        self,
        home: Path,
        *,
        validator: OpenRpcValidator,
        chain_id: int = CHAIN_ID,
        accounts: int = 10,
        block_time: float | None = None,
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.home = home
        self.config = config
        self.validator = validator
        self.chain_id = chain_id
        self.accounts = accounts
        self.block_time = block_time
        self.extra_args = list(extra_args)
        self.log_path = log_path or home.parent / f"{home.name}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._session = requests.Session()

    # ------------------------------------------------------------------ process control

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self, reset: bool = False) -> list[str]:
        if self.config is not None:
            return [str(cybermiles_executable()), "node", "start", "--home", str(self.home)]
        cmd = [
            str(cybermiles_executable()),
            "devnet",
            "--home",
            str(self.home),
            "--rpc-port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(self.accounts),
        ]
        if self.block_time is not None:
            cmd += ["--block-time", f"{self.block_time:g}"]
        if reset:
            cmd.append("--reset")
        return cmd + self.extra_args

    def start(self, *, reset: bool = False) -> Devnet:
        assert not self.running, "devnet already running"
        self.home.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.starts += 1
        if self.config is not None:
            self._write_node_home()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command(reset))}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(reset),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(REPO_ROOT),
                env=env,
            )
        _ACTIVE.append(self)
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            if self.proc.returncode != -signal.SIGKILL and self._lost_port_race():
                return self.start(reset=reset)  # the free port was taken meanwhile: next one
            raise
        return self

    def _write_node_home(self) -> None:
        """`cybermiles init` (once), then config.toml: an automine devnet node plus `config`."""
        config_file = self.home / "config" / "config.toml"
        if not config_file.exists():
            subprocess.run(
                [
                    str(cybermiles_executable()),
                    "init",
                    "--home",
                    str(self.home),
                    "--chain-id",
                    str(self.chain_id),
                ],
                check=True,
                capture_output=True,
                cwd=str(REPO_ROOT),
            )
        values = tomllib.loads(config_file.read_text())
        tables: dict[str, dict[str, Any]] = {
            "rpc": {"port": self.port},
            "consensus": {"engine": "automine"},
            "devnet": {
                "enabled": True,
                "accounts": self.accounts,
                "block_time": float(self.block_time or 0.0),
            },
        }
        for name, table in (self.config or {}).items():
            tables.setdefault(name, {}).update(table)
        for name, table in tables.items():
            values.setdefault(name, {}).update(table)
        config_file.write_text(tomli_w.dumps(values))

    def _lost_port_race(self) -> bool:
        tail = self.log_tail(10).lower()
        return "address already in use" in tail and self.starts < 5

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last_error: object = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(
                    f"devnet exited with code {code} during start-up\n{self.log_tail()}"
                )
            try:
                answer = self._post({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, 2.0)
                if answer.get("result") == hex(self.chain_id):
                    return
                last_error = answer
            except (requests.RequestException, ValueError) as exc:
                last_error = exc
            time.sleep(0.1)
        raise AssertionError(
            f"devnet not ready after {timeout:.0f}s (last: {last_error!r})\n{self.log_tail()}"
        )

    def _forget(self) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send `sig` (SIGTERM by default) and wait for exit; SIGKILL after `timeout` s.

        Returns the exit code; raises if the process had to be killed.
        """
        if self.proc is None:
            return 0
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self._forget()
                raise AssertionError(
                    f"devnet ignored signal {sig} for {timeout:.0f}s\n{self.log_tail()}"
                ) from None
        self._forget()
        return int(proc.returncode)

    def kill(self) -> None:
        """SIGKILL, no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._forget()

    def restart(self, *, reset: bool = False) -> Devnet:
        if self.running:
            code = self.stop()
            assert code == 0, f"devnet exited with code {code} on SIGTERM\n{self.log_tail()}"
        return self.start(reset=reset)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    # ------------------------------------------------------------------ clients

    def w3(self, signer: LocalAccount | None = None) -> Web3:
        """A web3 client with the OpenRPC conformance check (innermost middleware).

        With `signer`, `eth_sendTransaction` from its address is signed locally and sent raw, the
        way a wallet does (web3 fills nonce, gas and fees from the node).
        """
        w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
        if signer is not None:
            w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(signer), layer=0)
        install_conformance_check(w3, self.validator)
        return w3

    def _post(self, payload: Any, timeout: float = RPC_TIMEOUT_S) -> Any:
        response = self._session.post(self.url, json=payload, timeout=timeout)
        return response.json()

    def post_raw(
        self, body: bytes, headers: dict[str, str] | None = None, timeout: float = RPC_TIMEOUT_S
    ) -> requests.Response:
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        return self._session.post(self.url, data=body, headers=hdrs, timeout=timeout)

    def rpc(
        self,
        method: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        *,
        check: bool = True,
    ) -> RpcResponse:
        """One raw JSON-RPC call; the whole response (validated against the spec) is returned.

        `check=False` skips the spec check, for answers the spec cannot express (a pending
        transaction from eth_getTransactionByHash has null block fields, as geth reports it).
        """
        payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params or [])}
        if isinstance(params, dict):
            payload["params"] = params
        response = self._post(payload)
        if check:
            check_raw_response(method, response, self.validator)
        assert response.get("id") == 1, response
        return dict(response)

    def result(
        self, method: str, params: Sequence[Any] | None = None, *, check: bool = True
    ) -> Any:
        """`rpc` that must succeed: returns `result`."""
        response = self.rpc(method, params, check=check)
        assert "error" not in response, f"{method}{list(params or [])} -> {response}"
        return response["result"]

    def batch(self, calls: Iterable[tuple[str, Sequence[Any]]]) -> list[RpcResponse]:
        """A JSON-RPC batch; responses are returned in request order (matched by id)."""
        requests_ = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in enumerate(calls)
        ]
        answer = self._post(requests_)
        assert isinstance(answer, list), answer
        by_id = {item.get("id"): item for item in answer}
        assert len(by_id) == len(requests_), answer
        out = []
        for req in requests_:
            item = by_id[req["id"]]
            check_raw_response(str(req["method"]), item, self.validator)
            out.append(item)
        return out

    def block_number(self) -> int:
        return int(self.result("eth_blockNumber"), 16)

    def assert_alive(self) -> None:
        """The node still answers after a bad input."""
        assert self.running, f"devnet died\n{self.log_tail()}"
        assert self.block_number() >= 0


# ---------------------------------------------------------------------- accounts and txs


def dev_keys(n: int = 10) -> list[LocalAccount]:
    return [Account.from_key(acct.private_key) for acct in dev_accounts(n)]


def fresh_account(seed: int) -> LocalAccount:
    """A deterministic unfunded account (keccak of the seed as key)."""
    return Account.from_key(Web3.keccak(text=f"cybermiles-e2e-{seed}"))


def sign_transfer(
    sender: LocalAccount,
    nonce: int,
    to: str,
    value: int,
    *,
    tx_type: int = 2,
    gas: int = 21_000,
    price: int = MIN_GAS_PRICE,
    chain_id: int = CHAIN_ID,
    data: bytes = b"",
    **extra: Any,
) -> Any:
    """A signed transaction (`.raw_transaction`, `.hash`) that pays `price` per gas: an
    EIP-1559 one has fee cap `price` (and tip `price`), so it pays exactly that whatever the
    base fee (unless `maxFeePerGas` is given)."""
    tx: dict[str, Any] = {
        "chainId": chain_id,
        "nonce": nonce,
        "to": to,
        "value": value,
        "gas": gas,
        "data": data,
    }
    if tx_type == 0:
        tx["gasPrice"] = price
    elif tx_type == 1:
        tx.update(type=1, gasPrice=price, accessList=extra.pop("accessList", []))
    else:
        tx.update(
            type=tx_type,
            maxFeePerGas=extra.pop("maxFeePerGas", price),
            maxPriorityFeePerGas=price,
        )
    tx.update(extra)
    return sender.sign_transaction(tx)


def staking_raw(
    account: LocalAccount,
    nonce: int,
    kind: str,
    data: Mapping[str, object],
    *,
    chain_id: int = CHAIN_ID,
) -> str:
    """A signed SPEC §5 staking/governance envelope as 0x hex for eth_sendRawTransaction: a
    legacy EIP-155 transaction with no recipient, value, price or gas, and the JSON
    `{"type": kind, "data": data}` as its data."""
    body = json.dumps({"type": kind, "data": dict(data)}).encode()
    fields: dict[str, Any] = {
        "to": b"", "value": 0, "gas": 0, "gasPrice": 0, "nonce": nonce, "data": body,
        "chainId": chain_id,
    }  # fmt: skip
    signed = account.sign_transaction(fields)
    return "0x" + bytes(signed.raw_transaction).hex()


def send_signed(w3: Web3, signed: Any) -> HexBytes:
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert HexBytes(tx_hash) == HexBytes(signed.hash)
    return HexBytes(tx_hash)


def wait_receipt(w3: Web3, tx_hash: bytes, timeout: float = 30.0) -> TxReceipt:
    return w3.eth.wait_for_transaction_receipt(
        HexBytes(tx_hash), timeout=timeout, poll_latency=0.05
    )


def load_token_artifact(profile: str = "cvm") -> dict[str, Any]:
    """TestToken built for the `cvm` profile (prague) or the `lity` one (byzantium)."""
    name = "TestToken.json" if profile == "cvm" else f"TestToken.{profile}.json"
    with (REPO_ROOT / "contracts" / "build" / name).open() as handle:
        artifact: dict[str, Any] = json.load(handle)
    return artifact


def token_contract(w3: Web3, address: str | None = None) -> Any:
    """The TestToken contract object (a factory when `address` is None)."""
    artifact = load_token_artifact()
    if address is None:
        return w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact["abi"])


def deploy_token(w3: Web3, owner: LocalAccount, supply: int) -> tuple[str, TxReceipt]:
    """Deploy TestToken from `owner` with a raw signed EIP-1559 tx (gas from eth_estimateGas)."""
    factory = token_contract(w3)
    tx = factory.constructor(supply).build_transaction(
        {
            "from": owner.address,
            "nonce": w3.eth.get_transaction_count(owner.address, "pending"),
            "chainId": CHAIN_ID,
            "maxFeePerGas": MIN_GAS_PRICE + GWEI,
            "maxPriorityFeePerGas": MIN_GAS_PRICE,
        }
    )
    receipt = wait_receipt(w3, send_signed(w3, owner.sign_transaction(tx)))
    assert receipt["status"] == 1, receipt
    address = receipt["contractAddress"]
    assert address is not None
    return str(address), receipt


Json = dict[str, Any]


def q(value: str) -> int:
    """A JSON-RPC quantity as an int (asserting it is one)."""
    assert isinstance(value, str) and value.startswith("0x"), value
    return int(value, 16)
