"""Run the clients of tests/js against a real node: ethers.js v6 scripts, Foundry's `cast` (the npm
package's binary) and the Hardhat 2 project tests/js/hardhat.

`make test` installs them from the lockfile (tests/js/package-lock.json, `npm ci`). A test that
needs them fails, never skips, when Node.js or the packages are missing, saying how to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from tests.e2e.harness import (
    REPO_ROOT,
    Devnet,
    fresh_account,
    send_signed,
    sign_transfer,
    wait_receipt,
)

JS_DIR = REPO_ROOT / "tests" / "js"
TIMEOUT_S = 120.0


def run_js(script: str, *args: str) -> dict[str, Any]:
    """Run tests/js/`script` with `args`; its last stdout line is a JSON object, returned."""
    node = shutil.which("node")
    assert node is not None, "Node.js (`node`) is not on PATH: install nodejs and npm"
    assert (JS_DIR / "node_modules" / "ethers").is_dir(), (
        f"the JavaScript clients are not installed: run `make test` or `cd {JS_DIR} && npm ci`"
    )
    done = subprocess.run(
        [node, str(JS_DIR / script), *args],
        cwd=JS_DIR, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------- cast and Hardhat

NODE_MODULES = JS_DIR / "node_modules"
CAST = NODE_MODULES / "@foundry-rs" / "cast-linux-amd64" / "bin" / "cast"
HARDHAT_DIR = JS_DIR / "hardhat"
HARDHAT = NODE_MODULES / ".bin" / "hardhat"


def _assert_installed(path: Path) -> None:
    assert path.exists(), (
        f"{path.name} is not installed: run `make test` or `cd {JS_DIR} && npm ci`"
    )


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object a client printed on its last stdout line."""
    lines = stdout.strip().splitlines()
    assert lines, "the client printed nothing"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def cast(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Foundry's `cast` (the npm package's binary) with `args`, run in tests/js (no
    foundry.toml there, so only the arguments configure it)."""
    _assert_installed(CAST)
    done = subprocess.run(
        [str(CAST), *args], cwd=JS_DIR, capture_output=True, text=True, timeout=TIMEOUT_S,
        check=False,
    )  # fmt: skip
    if check:
        shown = " ".join(arg if len(arg) <= 80 else arg[:60] + "..." for arg in args)
        assert done.returncode == 0, f"cast {shown} failed:\n{done.stdout}\n{done.stderr}"
    return done


class HardhatProject:
    """tests/js/hardhat with its cache and artifacts in `build` (compile once, then run its
    scripts and tests with --no-compile against any devnet URL)."""

    def __init__(self, build: Path) -> None:
        self.build = build

    def _hardhat(self, args: list[str], url: str, **env: str) -> subprocess.CompletedProcess[str]:
        _assert_installed(HARDHAT)
        environment = dict(os.environ)
        # CI: no telemetry prompt, no update check, no banner (all of them reach the network).
        # Hardhat's global folders (compiler downloads, telemetry consent) go under `build`.
        environment.update({f"XDG_{kind}_HOME": str(self.build / f"xdg-{kind.lower()}")
                            for kind in ("CACHE", "CONFIG", "DATA")})  # fmt: skip
        environment.update(
            CI="true", HARDHAT_DISABLE_TELEMETRY_PROMPT="true",
            CYBERMILES_HARDHAT_BUILD=str(self.build), CYBERMILES_RPC_URL=url, **env,
        )  # fmt: skip
        return subprocess.run(
            [str(HARDHAT), *args], cwd=HARDHAT_DIR, env=environment, capture_output=True,
            text=True, timeout=TIMEOUT_S, check=False,
        )  # fmt: skip

    def _checked(self, args: list[str], url: str) -> str:
        done = self._hardhat(args, url)
        assert done.returncode == 0, (
            f"hardhat {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        )
        return done.stdout

    def compile(self) -> None:
        """Compile with the npm solc (the config's subtask): nothing is downloaded."""
        self._checked(["compile", "--quiet"], "http://127.0.0.1:1")
        downloads = sorted(self.build.glob("xdg-*/**/compilers*"))
        assert not downloads, f"Hardhat fetched a compiler: {downloads}"
        assert (self.build / "artifacts" / "contracts").is_dir(), "hardhat compiled nothing"

    def run(self, script: str, url: str, network: str = "cybermiles") -> dict[str, Any]:
        """`hardhat run --network <network> scripts/<script>`: its JSON report."""
        args = ["run", "--no-compile", "--network", network, f"scripts/{script}"]
        return last_json(self._checked(args, url))

    def test(self, url: str, report: Path) -> dict[str, Any]:
        """`hardhat test --network cybermiles`: mocha's JSON report, failed tests included."""
        done = self._hardhat(
            ["test", "--no-compile", "--network", "cybermiles"], url,
            CYBERMILES_MOCHA_JSON=str(report),
        )  # fmt: skip
        assert report.exists(), f"hardhat test wrote no report:\n{done.stdout}\n{done.stderr}"
        result: dict[str, Any] = json.loads(report.read_text())
        return result


def make_cheap_blocks(net: Devnet, sender: LocalAccount) -> list[int]:
    """Two blocks of low-price transactions, the second one the latest block: price 0 (free),
    then 1 wei. Default fee estimates that follow fee history fell below the minimum price after
    such blocks (issue #12). Returns the two block numbers."""
    w3 = net.w3()
    to = fresh_account(1212).address
    blocks = []
    for tx_type, price in ((0, 0), (2, 1)):
        nonce = w3.eth.get_transaction_count(sender.address, "pending")
        extra = {"maxFeePerGas": price} if tx_type == 2 else {}
        signed = sign_transfer(sender, nonce, to, 1, tx_type=tx_type, price=price, **extra)
        receipt = wait_receipt(w3, send_signed(w3, signed))
        assert receipt["status"] == 1 and receipt["effectiveGasPrice"] == price, receipt
        blocks.append(int(receipt["blockNumber"]))
    assert net.block_number() == blocks[-1], "another block came after the cheap ones"
    return blocks
