"""Existing Lity contracts run unchanged on a `lity` devnet (`cybermiles devnet --evm-profile
lity`), deployed and called through JSON-RPC with web3.py: Reverse (ENI), every JsonTest case
(ENI json library), and the FreeGas sequence of SPEC §4.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from web3 import Web3

from tests.e2e.harness import (
    MIN_GAS_PRICE,
    Devnet,
    dev_keys,
    send_signed,
    sign_transfer,
    wait_receipt,
)
from tests.shared import FIXTURES as SHARED_FIXTURES

pytestmark = pytest.mark.e2e

FIXTURES = SHARED_FIXTURES / "lity"
JSON_CASES = {
    "testAsBool": ("[true, false]", "[true, false]"),
    "testArrayGet": ('["hello", "world"]', "world"),
    "testAsInt": ('"-123"', "-123"),
    "testAsString": ('"a"', "a"),
    "testGetType": (
        '[true, 12345, "hello", [1,2,3], {"a": "b"}]',
        '[true, 12345, "hello", [1,2,3], {"a": "b"}]',
    ),
    "testNestedArrayGet": ('["foo", ["nested"]]', "nested"),
    "testObjectGet": ('{"hello": "world"}', "world"),
}


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text().strip()


@pytest.fixture(scope="module")
def lity(tmp_path_factory: pytest.TempPathFactory, validator: Any) -> Any:
    net = Devnet(
        tmp_path_factory.mktemp("lity") / "node", validator=validator,
        extra_args=["--evm-profile", "lity"],
    )  # fmt: skip
    net.start()
    yield net
    net.stop()


def deploy(net: Devnet, name: str, sender_index: int = 0) -> Any:
    w3 = net.w3()
    sender = dev_keys(10)[sender_index]
    nonce = w3.eth.get_transaction_count(sender.address)
    signed = sign_transfer(sender, nonce, "", 0, gas=5_000_000,
                           data=bytes.fromhex(fixture(f"{name}.bin")))  # fmt: skip
    receipt = wait_receipt(w3, send_signed(w3, signed))
    assert receipt["status"] == 1, receipt
    return w3.eth.contract(address=receipt["contractAddress"], abi=json.loads(fixture(
        f"{name}.abi.json")))  # fmt: skip


def test_the_devnet_says_it_is_lity(lity: Devnet) -> None:
    assert "/lity/" in lity.w3().client_version


def test_reverse(lity: Devnet) -> None:
    contract = deploy(lity, "Reverse")
    assert contract.functions.reverse("hello").call() == "olleh"
    assert contract.functions.reverse("Hello World!").call() == "!dlroW olleH"


@pytest.mark.parametrize("function", sorted(JSON_CASES))
def test_json_library(lity: Devnet, function: str, json_test: Callable[[], Any]) -> None:
    argument, expected = JSON_CASES[function]
    assert getattr(json_test(), function)(argument).call() == expected


@pytest.fixture(scope="module")
def json_test(lity: Devnet) -> Callable[[], Any]:
    contract = deploy(lity, "JsonTest", sender_index=1)
    return lambda: contract.functions


def test_freegas_sequence(lity: Devnet) -> None:
    w3 = lity.w3()
    contract = deploy(lity, "FreeGas", sender_index=2)
    user = dev_keys(10)[3]
    free = contract.encode_abi("testFreeGas", args=[7])
    paid = contract.encode_abi("testNonFreeGas", args=[7])
    gas = 1_000_000

    def send(nonce: int, data: str, price: int) -> dict[str, Any]:
        signed = sign_transfer(user, nonce, contract.address, 0, tx_type=0, price=price, gas=gas,
                               data=bytes.fromhex(data[2:]))  # fmt: skip
        return lity.rpc("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])

    nonce = w3.eth.get_transaction_count(user.address)
    # The contract holds nothing: price 0 is refused, a low price with a high limit too.
    assert "freegas" in send(nonce, free, 0)["error"]["message"]
    assert send(nonce, free, MIN_GAS_PRICE - 1)["error"]["code"] == 102
    full = send(nonce, free, MIN_GAS_PRICE)
    assert wait_receipt(w3, bytes.fromhex(full["result"][2:]))["status"] == 1

    owner = dev_keys(10)[2]
    fund = sign_transfer(owner, w3.eth.get_transaction_count(owner.address), contract.address,
                         10**18, gas=100_000)  # fmt: skip
    wait_receipt(w3, send_signed(w3, fund))
    funded = w3.eth.get_balance(contract.address)
    before = w3.eth.get_balance(user.address)

    failed = wait_receipt(w3, bytes.fromhex(send(nonce + 1, paid, 0)["result"][2:]))
    assert failed["status"] == 0 and failed["gasUsed"] == 0
    assert w3.eth.get_balance(contract.address) == funded
    ok = wait_receipt(w3, bytes.fromhex(send(nonce + 2, free, 0)["result"][2:]))
    assert ok["status"] == 1
    assert w3.eth.get_balance(contract.address) == funded - ok["gasUsed"] * MIN_GAS_PRICE
    assert w3.eth.get_balance(user.address) == before
    assert Web3.to_checksum_address(ok["to"]) == contract.address
