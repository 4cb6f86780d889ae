"""An in-process node for the trace methods' unit tests: a real ChainApp (MemoryDB, the node's
modules) on either EVM profile, `EthApi` and `DebugApi` on one Dispatcher as node.py wires
them, transactions signed with eth_account and a block made for each `send`."""

from __future__ import annotations

from typing import Any

from eth._utils.address import generate_contract_address
from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.node import chain_modules
from cybermiles_node.operator.config import RpcConfig
from evm.db import MemoryDB
from genesis import dev_accounts, devnet_genesis
from rpc import Dispatcher
from rpc.debug import DebugApi
from tests.dispatch_calls import DispatcherCalls
from tests.eth_api import eth_api

PRICE = 2 * 10**9
OWNER, SENDER = dev_accounts(2)


def init_code(runtime: bytes) -> bytes:
    """Creation code that deploys `runtime` as it is (CODECOPY it, RETURN it)."""
    size = len(runtime).to_bytes(2, "big")
    # PUSH2 size PUSH1 14 PUSH1 0 CODECOPY PUSH2 size PUSH1 0 RETURN: 14 bytes, then the code.
    head = b"\x61" + size + bytes([0x60, 14, 0x60, 0, 0x39]) + b"\x61" + size
    return head + bytes([0x60, 0, 0xF3]) + runtime


class TraceNode(DispatcherCalls):
    def __init__(
        self,
        profile: str = "cvm",
        *,
        debug_api: bool = True,
        max_response_bytes: int | None = None,
        evm_timeout: float | None = None,
    ) -> None:
        self.genesis = devnet_genesis(
            validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000, evm_profile=profile
        )
        self.app = ChainApp(Chain(MemoryDB(), self.genesis, modules=chain_modules()))
        defaults = RpcConfig()
        limit = max_response_bytes or defaults.max_response_bytes
        self.eth = eth_api(
            self.app, evm_timeout=evm_timeout or defaults.evm_timeout, max_response_bytes=limit
        )
        self.dispatcher = Dispatcher()
        self.eth.install(self.dispatcher)
        self.debug = DebugApi(self.eth, self.app.chain, max_response_bytes=limit)
        self.debug.install(self.dispatcher, enabled=debug_api)
        self.nonce = 0
        self.time = 1_700_000_100

    def sign(self, fields: dict[str, Any], account: Any = SENDER) -> bytes:
        full = {"gasPrice": PRICE, "chainId": self.genesis.chain_id, "value": 0, **fields}
        return bytes(Account.sign_transaction(full, account.private_key).raw_transaction)

    def submit(self, fields: dict[str, Any]) -> str:
        """Admit one transaction from SENDER (next nonce); its hash."""
        tx = self.app.check_tx(self.sign({"nonce": self.nonce, **fields}))
        self.nonce += 1
        return "0x" + tx.hash.hex()

    def produce(self) -> None:
        self.time += 1
        ctx = self.app.next_context(
            time=self.time, coinbase=OWNER.address, randomness=b"\x07" * 32, extra_data=b"\x00" * 32
        )
        self.app.commit(self.app.build_block(ctx))

    def send(self, fields: dict[str, Any]) -> str:
        """One transaction from SENDER in a block of its own; its hash."""
        tx_hash = self.submit(fields)
        self.produce()
        return tx_hash

    def deploy(self, runtime: bytes, gas: int = 200_000) -> str:
        nonce = self.nonce
        tx_hash = self.send({"data": init_code(runtime), "gas": gas})
        assert self.receipt(tx_hash)["status"] == "0x1"
        return to_checksum_address(generate_contract_address(SENDER.address, nonce))

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        receipt: dict[str, Any] = self.result("eth_getTransactionReceipt", tx_hash)
        return receipt
