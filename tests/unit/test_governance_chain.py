"""Governance decisions through the node's block pipeline (application/chain.py): an approved
change_param is in force for the very next transaction of the same block (SPEC §7, issue #10).

Three genesis validators of equal power (dev accounts 0-2): two "Y" approve. The vote that
approves gas_price 2 → 3 gwei and a transfer priced 2 gwei with a 600,000 gas limit go into one
block, in that order: the transfer, admitted against the old price, is now a low-price
transaction whose gas limit is above `low_price_tx_gas_limit`, so building leaves it out. Without
the approving vote in front of it, the same transfer is in the block.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain, PendingBlock
from cybermiles_node.node import chain_modules
from cybermiles_node.params import read_params
from evm.db import MemoryDB
from genesis import dev_accounts, devnet_genesis

T0 = 1_700_000_000
ACCOUNTS = dev_accounts(8)
GENESIS = devnet_genesis(
    validator_pub_keys=[bytes([i + 1]) * 32 for i in range(3)], genesis_time=T0
)
OLD_PRICE = GENESIS.params.gas_price


class Node:
    def __init__(self) -> None:
        self.app = ChainApp(Chain(MemoryDB(), GENESIS, modules=chain_modules()))
        self.time = T0 + 10
        self.nonces = {a.address: 0 for a in ACCOUNTS}

    def sign(self, index: int, fields: dict[str, Any]) -> bytes:
        account = ACCOUNTS[index]
        nonce = self.nonces[account.address]
        self.nonces[account.address] += 1
        full = {"chainId": GENESIS.chain_id, "nonce": nonce, "value": 0, **fields}
        return bytes(Account.sign_transaction(full, account.private_key).raw_transaction)

    def system(self, index: int, kind: str, data: dict[str, object]) -> bytes:
        body = json.dumps({"type": kind, "data": data}).encode()
        return self.sign(index, {"to": b"", "gas": 0, "gasPrice": 0, "data": body})

    def transfer(self) -> bytes:
        to = to_checksum_address(ACCOUNTS[7].address)
        return self.sign(6, {"to": to, "value": 1, "gas": 600_000, "gasPrice": OLD_PRICE})

    def block(self, *raws: bytes) -> PendingBlock:
        """A block of `raws` in this order (admitted first, as the pool admits them)."""
        for raw in raws:
            self.app.check_tx(raw)
        pending = {tx.raw: tx for tx in self.app.mempool.reap(max_gas=10**9, max_bytes=10**9)}
        self.time += 1
        ctx = self.app.next_context(
            time=self.time, coinbase=b"\x05" * 20, randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )  # fmt: skip
        block = self.app.chain.build_block(ctx, [pending[raw] for raw in raws])
        self.app.commit(block)
        return block

    def propose_price(self) -> str:
        data = {"name": "gas_price", "value": str(OLD_PRICE + 10**9), "reason": "spam"}
        raw = self.system(0, "governance/propose/change_param", data)
        block = self.block(raw)
        (tx,) = block.result.transactions
        return base64.b64encode(tx.hash).decode()


def vote(proposal_id: str) -> dict[str, object]:
    return {"proposal_id": proposal_id, "answer": "Y"}


def test_an_approved_price_applies_to_the_next_transaction_of_the_same_block() -> None:
    node = Node()
    pid = node.propose_price()
    node.block(node.system(0, "governance/vote", vote(pid)))
    approving, transfer = node.system(1, "governance/vote", vote(pid)), node.transfer()
    block = node.block(approving, transfer)
    assert [tx.raw for tx in block.result.transactions] == [approving]
    ((skipped, why),) = block.skipped
    assert skipped.raw == transfer and "low price" in why, why
    assert read_params(node.app.query()).gas_price == OLD_PRICE + 10**9


def test_without_the_approval_the_same_transfer_is_in_the_block() -> None:
    node = Node()
    pid = node.propose_price()
    undecided, transfer = node.system(0, "governance/vote", vote(pid)), node.transfer()
    block = node.block(undecided, transfer)
    assert [tx.raw for tx in block.result.transactions] == [undecided, transfer]


def test_the_base_fee_follows_an_approved_price_from_the_next_block() -> None:
    """The header's base fee is the gas_price in force when the block starts (cvm): the block
    approving a new price keeps the old base fee, every later block carries the new one, and
    the RPC's next base fee moves with it."""
    node = Node()
    pid = node.propose_price()
    assert node.app.chain.head.base_fee_per_gas == OLD_PRICE
    node.block(node.system(0, "governance/vote", vote(pid)))
    approving = node.block(node.system(1, "governance/vote", vote(pid)))
    assert approving.header.base_fee_per_gas == OLD_PRICE
    assert node.app.chain.next_base_fee() == OLD_PRICE + 10**9
    after = node.block()
    assert after.header.base_fee_per_gas == OLD_PRICE + 10**9
    assert node.app.chain.fee_rules_at_head().base_fee == OLD_PRICE + 10**9
