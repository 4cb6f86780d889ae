"""Dev state methods on a real one-node devnet, through JSON-RPC and web3.py: balances, code,
nonces and storage set at once; an impersonated send whose receipt and transaction carry the
impersonated `from`; eth_createAccessList as `cast access-list` asks for it; edits kept across a
restart; `--dump-state` written on SIGTERM and loaded with `--load-state` into a fresh home
(same balances, code, storage and state root); a malformed state file refused in one line."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from tests.e2e.harness import (
    MIN_GAS_PRICE,
    Devnet,
    cybermiles_executable,
    send_signed,
    sign_transfer,
    wait_receipt,
)

pytestmark = pytest.mark.e2e

STRANGER = "0x" + "5a" * 20  # nobody holds its key
TARGET = "0x" + "42" * 20
OTHER = "0x" + "77" * 20
RUNTIME = "0x6005545f5260205ff3"  # returns storage slot 5
ACCESSOR = "0x6005545073" + "77" * 20 + "315000"  # SLOAD 5, BALANCE(OTHER), STOP
WORD_7 = "0x" + "00" * 31 + "07"


def word(value: int) -> str:
    return f"0x{value:064x}"


def test_edits_impersonation_and_access_lists_through_json_rpc(devnet: Devnet) -> None:
    w3 = devnet.w3()
    head = devnet.block_number()
    assert devnet.result("anvil_setBalance", [STRANGER, hex(5 * 10**18)]) is None
    assert w3.eth.get_balance(Web3.to_checksum_address(STRANGER)) == 5 * 10**18
    assert devnet.block_number() == head + 1  # an edit is a block of its own, sealed at once
    assert devnet.result("hardhat_setCode", [TARGET, RUNTIME]) is True
    assert devnet.result("anvil_setStorageAt", [TARGET, "0x5", WORD_7]) is True
    assert devnet.result("anvil_setNonce", [TARGET, "0x9"]) is None
    assert devnet.result("eth_call", [{"to": TARGET}, "latest"]) == WORD_7
    assert devnet.result("eth_getTransactionCount", [TARGET, "latest"]) == "0x9"
    bad = devnet.rpc("anvil_setStorageAt", [TARGET, "0x5", "0x07"])["error"]
    assert bad["code"] == -32602 and "value" in bad["message"]

    # Impersonation: web3's own eth_sendTransaction, no key anywhere.
    stranger = Web3.to_checksum_address(STRANGER)
    tx = {"from": stranger, "to": Web3.to_checksum_address(OTHER), "value": 1234}
    refused = devnet.rpc("eth_sendTransaction", [{**tx, "value": hex(1234)}])["error"]
    assert refused["message"].startswith("unknown account")
    assert devnet.result("hardhat_impersonateAccount", [STRANGER]) is True
    tx_hash = w3.eth.send_transaction(tx)  # type: ignore[arg-type]
    receipt = wait_receipt(w3, tx_hash)
    assert receipt["status"] == 1 and receipt["from"] == stranger
    assert w3.eth.get_transaction(tx_hash)["from"] == stranger
    assert w3.eth.get_balance(Web3.to_checksum_address(OTHER)) == 1234
    raw = devnet.result("eth_getRawTransactionByHash", [tx_hash.to_0x_hex()])
    replay = devnet.rpc("eth_sendRawTransaction", [raw])["error"]
    assert "invalid sender" in replay["message"]
    devnet.result("anvil_stopImpersonatingAccount", [STRANGER])
    again = devnet.rpc("eth_sendTransaction", [{**tx, "value": hex(1)}])["error"]
    assert again["message"].startswith("unknown account")

    # What `cast access-list --rpc-url URL TARGET` sends: {from, to, data} at "latest".
    devnet.result("anvil_setCode", [TARGET, ACCESSOR])
    found = devnet.result(
        "eth_createAccessList", [{"from": STRANGER, "to": TARGET, "data": "0x"}, "latest"]
    )
    assert found["accessList"] == [
        {"address": TARGET, "storageKeys": [word(5)]},
        {"address": OTHER, "storageKeys": []},
    ]
    # Base, the listed address and slot (EIP-2930), then PUSH1 + warm SLOAD + POP and PUSH20 +
    # warm BALANCE + POP.
    assert int(found["gasUsed"], 16) == 21_000 + 2 * 2_400 + 1_900 + (3 + 100 + 2) * 2
    assert devnet.result("txpool_inspect") == {"pending": {}, "queued": {}}


def test_edits_survive_a_restart_and_a_dump_loads_into_a_fresh_devnet(
    devnet_factory: Callable[..., Devnet], tmp_path: Path, accounts: list[LocalAccount]
) -> None:
    dump_file = tmp_path / "state.json"
    node = devnet_factory("first", extra_args=["--dump-state", str(dump_file)])
    node.result("anvil_setBalance", [TARGET, hex(77)])
    node.result("anvil_setCode", [TARGET, RUNTIME])
    node.result("anvil_setStorageAt", [TARGET, "0x5", WORD_7])
    node.result("anvil_impersonateAccount", [TARGET])
    node.result("anvil_setBalance", [TARGET, hex(10**18)])
    sent = node.result(
        "eth_sendTransaction", [{"from": TARGET, "to": OTHER, "value": "0x3", "gas": "0x5208"}]
    )
    wait_receipt(node.w3(), sent)
    before = node.result("eth_getBlockByNumber", ["latest", False])
    node.restart()  # SIGTERM: the state is dumped on the way out
    assert node.result("eth_getBlockByNumber", ["latest", False])["hash"] == before["hash"]
    assert node.result("eth_getStorageAt", [TARGET, "0x5", "latest"]) == WORD_7
    assert node.result("eth_getCode", [TARGET, "latest"]) == RUNTIME
    receipt = node.result("eth_getTransactionReceipt", [sent])
    assert receipt["from"] == TARGET and receipt["status"] == "0x1"
    dump = json.loads(dump_file.read_text())
    assert dump["version"] == 1 and dump["block"]["stateRoot"] == before["stateRoot"]
    code = node.stop()
    assert code == 0

    loaded = devnet_factory("second", extra_args=["--load-state", str(dump_file)])
    genesis = loaded.result("eth_getBlockByNumber", ["0x0", False])
    assert genesis["stateRoot"] == before["stateRoot"]
    for address in (TARGET, OTHER, accounts[1].address):
        for method, extra in (
            ("eth_getBalance", []),
            ("eth_getCode", []),
            ("eth_getTransactionCount", []),
            ("eth_getStorageAt", ["0x5"]),
        ):
            params: list[Any] = [address, *extra]
            assert loaded.result(method, [*params, "latest"]) == dump_value(
                dump, method, address
            ), (method, address)
    # The loaded chain runs on: a transfer signed by a funded account is mined.
    w3 = loaded.w3()
    nonce = w3.eth.get_transaction_count(accounts[1].address)
    tx_hash = send_signed(w3, sign_transfer(accounts[1], nonce, OTHER, 1, price=MIN_GAS_PRICE))
    assert wait_receipt(w3, tx_hash)["status"] == 1


def dump_value(dump: dict[str, Any], method: str, address: str) -> str:
    """What the dump says `method` should answer for `address`."""
    account = dump["accounts"].get(address.lower(), {"balance": "0"})
    if method == "eth_getBalance":
        return hex(int(account["balance"]))
    if method == "eth_getCode":
        return str(account.get("code", "0x"))
    if method == "eth_getTransactionCount":
        return hex(int(account.get("nonce", 0)))
    return str(account.get("storage", {}).get(word(5), word(0)))


def test_a_malformed_state_file_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "chain_id": 1234, "accounts": {"0x12": {}}}))
    home = tmp_path / "home"
    run = subprocess.run(
        [str(cybermiles_executable()), "devnet", "--home", str(home), "--load-state", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --load-state {bad}: accounts.0x12")
    assert not home.exists()
