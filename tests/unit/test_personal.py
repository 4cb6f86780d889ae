"""personal_*, eth_sign and eth_signTypedData_v4 (rpc/personal.py) through the Dispatcher, over
the node's backend (cybermiles_node/accounts/backend.py) on a real tmp keystore.

Signatures are checked client-side with eth_account. The Travis fixture key file (scrypt
n = 2^18, ~1 s per decrypt) is used where its passphrase matters; the other tests use keys stored
with LIGHT_SCRYPT_N. Unlock expiry runs on a fake clock.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from cybermiles_node.accounts.backend import NodeAccounts
from cybermiles_node.accounts.keyfile import LIGHT_SCRYPT_N
from cybermiles_node.accounts.keystore import Keystore
from cybermiles_node.accounts.unlock import Unlocker
from cybermiles_node.operator.config import (
    RpcConfig,
    is_loopback_host,
    load_config,
    unlock_allowed,
)
from genesis import dev_accounts
from rpc import Dispatcher
from rpc.personal import PersonalApi
from tests.dispatch_calls import DispatcherCalls
from tests.shared import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "keystore"
TRAVIS_FILE = (
    FIXTURES / "UTC--2016-10-21T22-30-03.071787745Z--7eff122b94897ea5b0e2a9abf47b86337fafebdc"
)
TRAVIS = "0x7eff122b94897ea5b0e2a9abf47b86337fafebdc"
LIGHT_KEY = bytes.fromhex("11" * 32)
LIGHT = Account.from_key(LIGHT_KEY).address.lower()
DEV = dev_accounts(1)[0]
MESSAGE = "0x" + b"hello cybermiles".hex()

TYPED_DATA: dict[str, Any] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Mail": [
            {"name": "from", "type": "address"},
            {"name": "to", "type": "address"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 18,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826",
        "to": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB",
        "contents": "Hello, Bob!",
    },
}


@dataclass
class Node(DispatcherCalls):
    home: Path
    allowed: bool = True
    now: list[float] = field(default_factory=lambda: [1000.0])

    def __post_init__(self) -> None:
        self.keystore = Keystore(self.home / "keystore", scrypt_n=LIGHT_SCRYPT_N)
        self.keystore.import_key(LIGHT_KEY, "light-pw")
        unlocker = Unlocker(self.keystore, clock=lambda: self.now[0])
        backend = NodeAccounts(self.keystore, unlocker, {DEV.address: DEV.private_key})
        self.dispatcher = Dispatcher()
        PersonalApi(backend, unlock_allowed=self.allowed).install(self.dispatcher)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def recovered(signature: str, message: str = MESSAGE) -> str:
    signable = encode_defunct(primitive=bytes.fromhex(message[2:]))
    return str(Account.recover_message(signable, signature=signature)).lower()


def test_travis_fixture_unlocks_with_1234_and_signs_all_three_ways(node: Node) -> None:
    node.keystore.import_keyfile(TRAVIS_FILE, None)  # form only: the unlock below decrypts
    # Keystore files in file-name order (named at import: creation order), then devnet keys.
    dev = "0x" + DEV.address.hex()
    assert node.result("personal_listAccounts") == [LIGHT, TRAVIS, dev]
    assert node.error("eth_sign", TRAVIS, MESSAGE)["code"] == -32000  # locked yet
    assert node.result("personal_unlockAccount", TRAVIS, "1234", None) is True

    signature = node.result("eth_sign", TRAVIS, MESSAGE)
    assert recovered(signature) == TRAVIS
    assert int(signature[-2:], 16) in (27, 28)  # geth's v
    assert node.result("personal_ecRecover", MESSAGE, signature) == TRAVIS

    typed = node.result("eth_signTypedData_v4", TRAVIS, TYPED_DATA)
    signer = Account.recover_message(encode_typed_data(full_message=TYPED_DATA), signature=typed)
    assert signer.lower() == TRAVIS
    as_text = node.result("eth_signTypedData_v4", TRAVIS, json.dumps(TYPED_DATA))
    assert as_text == typed  # MetaMask sends the typed data as JSON text

    node.result("personal_lockAccount", TRAVIS)
    assert node.error("personal_sign", MESSAGE, TRAVIS, "wrong")["message"].startswith(
        "wrong passphrase"
    )
    assert recovered(node.result("personal_sign", MESSAGE, TRAVIS, "1234")) == TRAVIS
    # personal_sign opens the key for one signature; the account stays locked.
    assert node.error("eth_sign", TRAVIS, MESSAGE)["message"].startswith("account locked")


def test_unlock_expires_on_the_clock_and_zero_means_until_locked(node: Node) -> None:
    assert node.result("personal_unlockAccount", LIGHT, "light-pw", 10) is True
    node.now[0] += 9.9
    assert recovered(node.result("eth_sign", LIGHT, MESSAGE)) == LIGHT
    node.now[0] += 0.1
    assert node.error("eth_sign", LIGHT, MESSAGE) == {
        "code": -32000,
        "message": f"account locked: {LIGHT} (unlock it first)",
    }
    node.result("personal_unlockAccount", LIGHT, "light-pw")  # null/absent: node default 300 s
    node.now[0] += 299
    node.result("eth_sign", LIGHT, MESSAGE)
    node.now[0] += 1
    assert node.error("eth_sign", LIGHT, MESSAGE)["code"] == -32000
    node.result("personal_unlockAccount", LIGHT, "light-pw", 0)
    node.now[0] += 10**9
    node.result("eth_sign", LIGHT, MESSAGE)
    assert node.result("personal_lockAccount", LIGHT) is True
    assert node.error("eth_signTypedData_v4", LIGHT, TYPED_DATA)["message"].startswith(
        "account locked"
    )


def test_wrong_passphrase_and_unknown_account_are_refused_and_change_nothing(node: Node) -> None:
    wrong = node.error("personal_unlockAccount", LIGHT, "nope", 0)
    assert wrong == {"code": -32000, "message": f"wrong passphrase for account {LIGHT}"}
    assert node.error("eth_sign", LIGHT, MESSAGE)["message"].startswith("account locked")
    stranger = "0x" + "42" * 20
    unknown = node.error("personal_unlockAccount", stranger, "x", 0)
    assert unknown["code"] == -32000 and unknown["message"].startswith("unknown account")
    assert node.error("eth_sign", stranger, MESSAGE)["message"].startswith("unknown account")
    assert str(node.home) not in json.dumps([wrong, unknown])  # no paths to clients
    bad = node.error("personal_unlockAccount", LIGHT, "light-pw", -1)
    assert bad["code"] == -32602
    assert node.error("eth_sign", LIGHT, MESSAGE)["message"].startswith("account locked")


def test_personal_sign_without_a_passphrase_uses_an_unlocked_key(node: Node) -> None:
    """MetaMask's and ethers' two-argument personal_sign: the account must be unlocked."""
    assert node.error("personal_sign", MESSAGE, LIGHT)["message"].startswith("account locked")
    assert node.error("personal_sign", MESSAGE, LIGHT, None)["message"].startswith("account")
    node.result("personal_unlockAccount", LIGHT, "light-pw", 0)
    assert recovered(node.result("personal_sign", MESSAGE, LIGHT)) == LIGHT


def test_new_account_is_stored_and_unlockable(node: Node) -> None:
    created = node.result("personal_newAccount", "fresh")
    assert created in node.result("personal_listAccounts")
    assert node.error("personal_newAccount", "")["code"] == -32602
    node.result("personal_unlockAccount", created, "fresh", 5)
    assert recovered(node.result("eth_sign", created, MESSAGE)) == created


def test_devnet_accounts_stay_unlocked(node: Node) -> None:
    dev = "0x" + DEV.address.hex()
    assert recovered(node.result("eth_sign", dev, MESSAGE)) == dev
    node.result("personal_lockAccount", dev)
    assert recovered(node.result("eth_sign", dev, MESSAGE)) == dev


def test_ec_recover_refuses_malformed_signatures(node: Node) -> None:
    signature = Account.sign_message(encode_defunct(primitive=b"x"), LIGHT_KEY).signature
    assert node.result("personal_ecRecover", "0x78", "0x" + bytes(signature).hex()) == LIGHT
    zero_v = bytes(signature[:64]) + bytes([signature[64] - 27])
    assert node.error("personal_ecRecover", "0x78", "0x" + zero_v.hex())["code"] == -32602
    assert node.error("personal_ecRecover", "0x78", "0x1234")["code"] == -32602


def test_unlock_is_refused_on_a_non_loopback_server_unless_allowed(tmp_path: Path) -> None:
    exposed = RpcConfig(host="0.0.0.0")
    assert not unlock_allowed(exposed)
    node = Node(tmp_path, allowed=unlock_allowed(exposed))
    refused = node.error("personal_unlockAccount", LIGHT, "light-pw", 0)
    assert refused["code"] == -32000 and "rpc.allow_insecure_unlock" in refused["message"]
    assert node.error("eth_sign", LIGHT, MESSAGE)["message"].startswith("account locked")
    shutil.rmtree(tmp_path / "keystore")
    allowed = Node(
        tmp_path, allowed=unlock_allowed(RpcConfig(host="0.0.0.0", allow_insecure_unlock=True))
    )
    assert allowed.result("personal_unlockAccount", LIGHT, "light-pw", 0) is True


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("node.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_allow_insecure_unlock_is_read_from_config_toml(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[rpc]\nhost = "0.0.0.0"\nallow_insecure_unlock = true\n')
    loaded = load_config(path).rpc
    assert loaded.allow_insecure_unlock and unlock_allowed(loaded)
    assert not RpcConfig().allow_insecure_unlock and unlock_allowed(RpcConfig())


def test_a_batch_runs_one_passphrase_call_and_refuses_the_rest(node: Node) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "personal_unlockAccount", "params": [LIGHT, "x", 0]}
        for i in range(3)
    ]
    body = trio.run(node.dispatcher.handle, json.dumps(batch), None)
    assert body is not None
    codes = [answer["error"]["code"] for answer in json.loads(body)]
    assert codes == [-32000, -32005, -32005]  # wrong passphrase, then over the batch budget
