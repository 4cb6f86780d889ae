"""The base fee (DECISIONS "Fees for default clients"): on cvm every header carries the
gas_price parameter as baseFeePerGas, a transaction pays min(fee cap, base fee + tip), all of it
into the award pool (nothing burned), a fee cap below the base fee is low-price (not invalid);
BASEFEE answers the header's value, calls without a price run at base fee 0; lity blocks carry
none. The fee RPC methods agree. In process over a real ChainApp with the node's modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import BlockRejected, Chain, PendingBlock
from cybermiles_node.modules import NO_MODULES, ModuleSet
from cybermiles_node.node import chain_modules
from cybermiles_node.staking.invariants import check_hold_covers_stakes, check_supply
from cybermiles_node.system.addresses import (
    GOVERNANCE_ADDRESS,
    HOLD_ADDRESS,
    MINT_ADDRESS,
    PARAMS_ADDRESS,
    STAKING_ADDRESS,
    SUPPLY_ADDRESS,
)
from evm.call import CallRequest, run_call
from evm.db import MemoryDB
from genesis import Genesis, dev_accounts, devnet_genesis
from rpc import Dispatcher
from tests.dispatch_calls import DispatcherCalls
from tests.eth_api import eth_api

GWEI = 10**9
PRICE = 2 * GWEI  # the devnet's gas_price parameter
ACCOUNTS = dev_accounts(8)
COINBASE = b"\x05" * 20
RECIPIENT = b"\x09" * 20
# Init code storing BASEFEE in the new contract's slot 0 (BASEFEE PUSH1 0 SSTORE STOP).
STORE_BASEFEE = bytes.fromhex("4860005500")
# Init code returning BASEFEE (BASEFEE PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN).
RETURN_BASEFEE = bytes.fromhex("4860005260206000f3")


def genesis(profile: str = "cvm") -> Genesis:
    return devnet_genesis(
        validator_pub_keys=[b"\x01" * 32],
        genesis_time=1_700_000_000,
        evm_profile=profile,  # type: ignore[arg-type]
    )


@dataclass
class Node(DispatcherCalls):
    app: ChainApp
    dispatcher: Dispatcher
    nonces: dict[int, int]

    @property
    def chain(self) -> Chain:
        return self.app.chain

    def sign(self, index: int, **fields: Any) -> bytes:
        nonce = self.nonces.get(index, 0)
        self.nonces[index] = nonce + 1
        full = {
            "chainId": self.chain.chain_id,
            "nonce": nonce,
            "value": 0,
            "gas": 21_000,
            "to": to_checksum_address(RECIPIENT),
            **fields,
        }
        return bytes(Account.sign_transaction(full, ACCOUNTS[index].private_key).raw_transaction)

    def block(self, *raws: bytes) -> PendingBlock:
        for raw in raws:
            self.app.check_tx(raw)
        ctx = self.app.next_context(
            time=int(self.app.head.timestamp) + 1,
            coinbase=COINBASE,
            randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )
        block = self.app.build_block(ctx)
        assert not block.skipped, block.skipped
        self.app.commit(block)
        return block

    def balance(self, address: bytes) -> int:
        return int(self.chain.state_at().get_balance(address))


def make_node(profile: str = "cvm", modules: ModuleSet | None = None) -> Node:
    chosen = chain_modules() if modules is None else modules
    app = ChainApp(Chain(MemoryDB(), genesis(profile), modules=chosen))
    api = eth_api(app)
    dispatcher = Dispatcher()
    api.install(dispatcher)
    return Node(app, dispatcher, {})


def dynamic(fee_cap: int, tip: int) -> dict[str, int]:
    return {"type": 2, "maxFeePerGas": fee_cap, "maxPriorityFeePerGas": tip}


# (fields, price paid per gas at base fee = PRICE), one sender each
CASES = [
    ({"gasPrice": 3 * GWEI}, 3 * GWEI),  # legacy: its gas price
    (dynamic(10 * GWEI, GWEI), PRICE + GWEI),  # base fee + tip
    (dynamic(PRICE + GWEI // 2, GWEI), PRICE + GWEI // 2),  # capped by the fee cap
    (dynamic(5 * GWEI, 0), PRICE),  # no tip: exactly the base fee
    (dynamic(GWEI, GWEI), GWEI),  # fee cap below the base fee: low-price, pays its cap
    ({"gasPrice": 0}, 0),  # price 0: free
    (dynamic(0, 0), 0),  # fee cap 0: free
]


def test_every_header_carries_the_gas_price_as_its_base_fee() -> None:
    node = make_node()
    assert node.chain.genesis_header.base_fee_per_gas == PRICE
    block = node.block(node.sign(1, gasPrice=PRICE))
    assert block.header.base_fee_per_gas == PRICE
    empty = node.block()
    assert empty.header.base_fee_per_gas == PRICE


def test_fees_are_min_of_fee_cap_and_base_fee_plus_tip_and_all_reach_the_award_pool() -> None:
    node = make_node(modules=NO_MODULES)  # no fee recipient: fees stay with the coinbase
    senders = list(range(1, 1 + len(CASES)))
    before = {i: node.balance(ACCOUNTS[i].address) for i in senders}
    raws = [node.sign(i, **fields) for i, (fields, _) in zip(senders, CASES, strict=True)]
    block = node.block(*raws)
    assert len(block.result.transactions) == len(CASES)
    paid = {i: before[i] - node.balance(ACCOUNTS[i].address) for i in senders}
    assert paid == {i: 21_000 * price for i, (_, price) in zip(senders, CASES, strict=True)}
    # The base-fee part is not burned: the coinbase holds every wei the senders paid.
    assert node.balance(COINBASE) == sum(paid.values())
    receipts = [
        node.result("eth_getTransactionReceipt", "0x" + tx.hash.hex())
        for tx in block.result.transactions
    ]
    by_sender = {r["from"]: int(r["effectiveGasPrice"], 16) for r in receipts}
    assert by_sender == {
        "0x" + ACCOUNTS[i].address.hex(): price
        for i, (_, price) in zip(senders, CASES, strict=True)
    }


def known_accounts(node: Node) -> list[bytes]:
    params = node.chain.genesis.params
    return sorted(
        {address for address, _ in node.chain.genesis.alloc}
        | {params.foundation_address, HOLD_ADDRESS, MINT_ADDRESS, STAKING_ADDRESS}
        | {GOVERNANCE_ADDRESS, PARAMS_ADDRESS, SUPPLY_ADDRESS, COINBASE, RECIPIENT}
    )


def test_with_the_node_modules_base_fees_keep_supply_and_award_invariants() -> None:
    node = make_node()
    hold_before = node.balance(HOLD_ADDRESS)
    raws = [node.sign(i, **fields) for i, (fields, _) in enumerate(CASES, start=1)]
    node.block(*raws)
    state = node.chain.state_at()
    supply = sum(account.balance for _, account in node.chain.genesis.alloc)
    check_supply(sum(state.get_balance(a) for a in known_accounts(node)), state, supply)
    check_hold_covers_stakes(state)
    assert node.balance(COINBASE) == 0  # every fee went to the award pool, held by Hold
    assert node.balance(HOLD_ADDRESS) > hold_before


def test_basefee_opcode_answers_the_header_and_calls_without_a_price_run_at_zero() -> None:
    node = make_node()
    block = node.block(node.sign(1, to=b"", data=STORE_BASEFEE, gas=100_000, gasPrice=PRICE))
    created = node.chain.receipts(1)[0].contract_address
    assert created is not None
    assert node.chain.state_at().get_storage(created, 0) == block.header.base_fee_per_gas == PRICE
    head = node.chain.head
    env = node.chain.env_of(head)

    def call(price: int) -> int:
        request = CallRequest(
            sender=ACCOUNTS[2].address, to=b"", data=RETURN_BASEFEE, gas_price=price
        )
        result = run_call(node.chain.profile, node.chain.db, head.state_root, env, request)
        assert result.success, result
        return int.from_bytes(result.output, "big")

    assert call(0) == 0  # geth's NoBaseFee: an unfunded account can call
    assert call(PRICE) == PRICE
    # Through RPC: eth_call with no price from an empty account works.
    empty = "0x" + "77" * 20
    answer = node.result("eth_call", {"from": empty, "data": "0x" + RETURN_BASEFEE.hex()}, "latest")
    assert int(answer, 16) == 0


def test_a_block_with_another_base_fee_is_refused() -> None:
    builder, validator = make_node(), make_node()
    block = builder.block(builder.sign(1, gasPrice=PRICE))
    forged = block.header.copy(base_fee_per_gas=PRICE + 1)
    with pytest.raises(BlockRejected, match="base fee"):
        validator.chain.execute_block(
            validator.chain.context_of(forged), forged, list(block.result.transactions)
        )
    assert (
        validator.chain.execute_block(
            validator.chain.context_of(block.header), block.header, list(block.result.transactions)
        ).hash
        == block.hash
    )


def test_lity_blocks_carry_no_base_fee_and_fees_are_as_before() -> None:
    """Base fee 0 under lity: the tip carries the minimum, so every suggested tip (the
    priority fee method and fee history's rewards, empty and cheap blocks too) is gas_price."""
    node = make_node("lity")
    sender = ACCOUNTS[1].address
    before = node.balance(sender)
    block = node.block(node.sign(1, **dynamic(5 * GWEI, PRICE)))
    assert block.header.base_fee_per_gas == 0
    assert before - node.balance(sender) == 21_000 * PRICE  # min(fee cap, 0 + tip)
    node.block(node.sign(2, gasPrice=0))
    latest = node.result("eth_getBlockByNumber", "latest", False)
    assert latest["baseFeePerGas"] == "0x0"  # present: web3.py's default fill reads it
    assert int(node.result("eth_gasPrice"), 16) == PRICE
    assert int(node.result("eth_maxPriorityFeePerGas"), 16) == PRICE
    history = node.result("eth_feeHistory", "0x3", "latest", [0, 50, 100])
    assert history["baseFeePerGas"] == ["0x0"] * 4
    assert all(int(r, 16) >= PRICE for rewards in history["reward"] for r in rewards)


def test_fee_methods_agree_with_the_blocks() -> None:
    node = make_node()
    assert int(node.result("eth_gasPrice"), 16) == PRICE
    assert node.result("eth_maxPriorityFeePerGas") == "0x0"
    latest = node.result("eth_getBlockByNumber", "latest", False)  # genesis
    assert int(latest["baseFeePerGas"], 16) == PRICE
    # block 1: a price-0 tx alone; block 2: full price with a tip, and a low-price tx
    node.block(node.sign(1, gasPrice=0))
    node.block(node.sign(2, **dynamic(10 * GWEI, 3 * GWEI)), node.sign(3, **dynamic(GWEI, GWEI)))
    history = node.result("eth_feeHistory", "0x3", "latest", [0, 50, 100])
    assert history["oldestBlock"] == "0x0"
    assert [int(fee, 16) for fee in history["baseFeePerGas"]] == [PRICE] * 4  # + the next one
    assert len(history["gasUsedRatio"]) == 3
    rewards = [[int(r, 16) for r in block] for block in history["reward"]]
    # genesis empty; block 1 a price-0 tx (low-price: 0); block 2 tips 0 (low) and 3 gwei
    assert rewards == [[0, 0, 0], [0, 0, 0], [0, 0, 3 * GWEI]]
    block = node.result("eth_getBlockByNumber", "0x2", True)
    assert int(block["baseFeePerGas"], 16) == PRICE
    assert [int(tx["gasPrice"], 16) for tx in block["transactions"]] == [PRICE + 3 * GWEI, GWEI]
