"""Dev chain control against a real one-node devnet over plain JSON-RPC (web3.py and raw calls):
snapshot, transactions, mining and revert (head, balances, nonces, deleted blocks, receipts and
filters as before), time travel seen in the next block's timestamp, automine off and interval
mining, the anvil client version, and a node that is not a devnet refusing every dev method.

One devnet for the module (started with `--client-version-compat anvil`); each test runs between
a snapshot and a revert (`clean` fixture), so the tests leave the chain as they found it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from rpc.dev_chain import DevChainApi
from tests.conformance import OpenRpcValidator
from tests.e2e.harness import (
    Devnet,
    fresh_account,
    send_signed,
    sign_transfer,
    wait_for,
    wait_receipt,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory, validator: OpenRpcValidator) -> Iterator[Devnet]:
    home = tmp_path_factory.mktemp("dev-chain") / "home"
    net = Devnet(home, validator=validator, extra_args=["--client-version-compat", "anvil"])
    net.start()
    try:
        yield net
    finally:
        if net.running:
            assert net.stop() == 0, net.log_tail()


@pytest.fixture
def clean(dev: Devnet) -> Iterator[Devnet]:
    """The test runs on top of a snapshot that is reverted afterwards (automine back on)."""
    snap = dev.result("evm_snapshot")
    yield dev
    dev.result("evm_setIntervalMining", [0])
    dev.result("evm_setAutomine", [True])
    assert dev.result("evm_revert", [snap]) is True


def block(dev: Devnet, number: int | str) -> dict[str, Any] | None:
    tag = hex(number) if isinstance(number, int) else number
    found: dict[str, Any] | None = dev.result("eth_getBlockByNumber", [tag, False])
    return found


def balances(w3: Web3, addresses: list[str]) -> list[int]:
    return [w3.eth.get_balance(Web3.to_checksum_address(a)) for a in addresses]


def test_revert_puts_back_head_balances_nonces_and_forgets_the_blocks(
    clean: Devnet, accounts: list[LocalAccount]
) -> None:
    dev, w3 = clean, clean.w3()
    alice, bob = accounts[1], accounts[2]
    carol = fresh_account(1201).address
    watched = [alice.address, bob.address, carol]
    w3.eth.send_transaction({"from": alice.address, "to": carol, "value": 5})  # node-signed
    wait_for(lambda: w3.eth.get_balance(carol) == 5, timeout=30, what="the first transfer")
    head = block(dev, "latest")
    assert head is not None
    before = (balances(w3, watched), w3.eth.get_transaction_count(alice.address))
    filter_id = dev.result("eth_newBlockFilter")
    snap = dev.result("evm_snapshot")

    hashes = [
        send_signed(w3, sign_transfer(alice, before[1], carol, 7)),
        send_signed(w3, sign_transfer(bob, w3.eth.get_transaction_count(bob.address), carol, 9)),
    ]
    receipts = [wait_receipt(w3, h) for h in hashes]
    assert dev.result("evm_mine") == "0x0"
    assert dev.result("hardhat_mine", ["0x2"]) is True
    top = dev.block_number()
    assert top >= int(head["number"], 16) + 4
    assert w3.eth.get_balance(carol) == 21

    assert dev.result("evm_revert", [snap]) is True
    after = block(dev, "latest")
    assert after is not None
    assert (after["number"], after["hash"]) == (head["number"], head["hash"])
    assert after["stateRoot"] == head["stateRoot"]
    assert (balances(w3, watched), w3.eth.get_transaction_count(alice.address)) == before
    for number in range(int(head["number"], 16) + 1, top + 1):
        assert block(dev, number) is None
    for receipt in receipts:
        block_hash, tx_hash = receipt["blockHash"].to_0x_hex(), receipt["transactionHash"]
        assert dev.result("eth_getBlockByHash", [block_hash, False]) is None
        assert dev.result("eth_getTransactionReceipt", [tx_hash.to_0x_hex()]) is None
        assert dev.result("eth_getTransactionByHash", [tx_hash.to_0x_hex()]) is None
    assert dev.result("eth_getFilterChanges", [filter_id]) == []  # its blocks are gone
    assert dev.result("evm_revert", [snap]) is False  # used up

    # The reverted nonce is free again; the chain goes on from the restored head.
    again = wait_receipt(w3, send_signed(w3, sign_transfer(alice, before[1], carol, 1)))
    assert again["blockNumber"] == int(head["number"], 16) + 1
    assert w3.eth.get_balance(carol) == 6


def test_time_travel_shows_in_the_next_blocks(clean: Devnet) -> None:
    dev = clean
    start = block(dev, "latest")
    assert start is not None
    t0 = int(start["timestamp"], 16)
    total = dev.result("evm_increaseTime", [3600])
    assert total >= 3600
    dev.result("evm_mine")
    t1 = int(block(dev, "latest")["timestamp"], 16)  # type: ignore[index]
    assert t1 >= t0 + 3600

    assert dev.result("evm_setNextBlockTimestamp", [hex(t1 + 86_400)]) is None
    dev.result("evm_mine")
    assert int(block(dev, "latest")["timestamp"], 16) == t1 + 86_400  # type: ignore[index]

    first = dev.block_number() + 1
    assert dev.result("anvil_mine", ["0x3", "0x3c"]) is None
    stamps = [int(block(dev, n)["timestamp"], 16) for n in range(first, first + 3)]  # type: ignore[index]
    assert stamps[1] - stamps[0] == stamps[2] - stamps[1] == 60

    past = dev.rpc("evm_setNextBlockTimestamp", [hex(t0)])["error"]
    assert past["code"] == -32602 and "not after the latest block's timestamp" in past["message"]


def test_automine_off_then_mine_then_interval_mining(
    clean: Devnet, accounts: list[LocalAccount]
) -> None:
    dev, w3 = clean, clean.w3()
    sender = accounts[3]
    assert dev.result("evm_setAutomine", [False]) is True
    assert dev.result("anvil_getAutomine") is False
    height = dev.block_number()
    tx = send_signed(
        w3, sign_transfer(sender, w3.eth.get_transaction_count(sender.address), sender.address, 1)
    )
    assert dev.result("txpool_status")["pending"] == "0x1"
    assert dev.result("eth_getTransactionReceipt", [tx.to_0x_hex()]) is None
    assert dev.block_number() == height
    dev.result("evm_mine")
    assert wait_receipt(w3, tx)["blockNumber"] == height + 1

    assert dev.result("evm_setIntervalMining", [200]) is True
    wait_for(lambda: dev.block_number() >= height + 4, timeout=30, what="interval blocks")
    dev.result("evm_setIntervalMining", [0])


def test_drop_transaction_and_block_gas_limit(clean: Devnet, accounts: list[LocalAccount]) -> None:
    dev, w3 = clean, clean.w3()
    sender = accounts[4]
    dev.result("evm_setAutomine", [False])
    tx = send_signed(
        w3, sign_transfer(sender, w3.eth.get_transaction_count(sender.address), sender.address, 1)
    )
    assert dev.result("hardhat_dropTransaction", [tx.to_0x_hex()]) is True
    assert dev.result("txpool_status")["pending"] == "0x0"
    assert dev.result("evm_setBlockGasLimit", [hex(1_000_000)]) is True
    dev.result("evm_mine")
    assert int(block(dev, "latest")["gasLimit"], 16) == 1_000_000  # type: ignore[index]
    error = dev.rpc("evm_setBlockGasLimit", ["0x1"])["error"]
    assert error["code"] == -32602 and "gasLimit" in error["message"]
    dev.result("evm_setBlockGasLimit", [block(dev, "earliest")["gasLimit"]])  # type: ignore[index]


def test_the_client_version_passes_the_network_helpers_check(dev: Devnet) -> None:
    version = dev.result("web3_clientVersion")
    assert version.lower().startswith("anvil") and "cybermiles devnet" in version


def test_a_node_that_is_not_a_devnet_serves_no_dev_method(
    devnet_factory: Callable[..., Devnet],
) -> None:
    node = devnet_factory("full", config={"devnet": {"enabled": False}})
    for method in sorted(DevChainApi.HANDLERS):
        error = node.rpc(method, [])["error"]
        assert error == {
            "code": -32601,
            "message": f"method not available: {method} is served by devnets only",
        }
    assert not node.result("web3_clientVersion").startswith("anvil")


def test_a_pending_impersonated_transaction_comes_back_after_a_revert(clean: Devnet) -> None:
    """The pool is restored with the senders admission found: an impersonated transaction,
    whose marker signature recovers to no one, is pending again after the revert."""
    dev = clean
    someone = "0x" + "ab" * 20
    dev.result("anvil_setBalance", [someone, hex(10**18)])
    dev.result("anvil_impersonateAccount", [someone])
    dev.result("evm_setAutomine", [False])
    tx_hash = dev.result("eth_sendTransaction", [{"from": someone, "to": "0x" + "cd" * 20,
                                                  "value": "0x1"}])  # fmt: skip
    snap = dev.result("evm_snapshot")
    dev.result("evm_mine")
    assert dev.result("eth_getTransactionReceipt", [tx_hash])["status"] == "0x1"
    assert dev.result("evm_revert", [snap]) is True
    assert dev.result("eth_getTransactionReceipt", [tx_hash]) is None
    assert dev.result("txpool_status")["pending"] == "0x1"
    dev.result("evm_mine")
    mined = dev.result("eth_getTransactionByHash", [tx_hash], check=False)
    assert mined["from"] == someone and mined["blockNumber"] is not None
