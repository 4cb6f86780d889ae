"""Freegas: the called contract pays (SPEC §4), with the Lity FreeGasDemo of the fixtures on a
`lity` chain, through `ChainApp` admission, block building and validation.

- a contract without balance: price 0 is refused, a low price with a high gas limit is
  refused (102), the full price is accepted;
- a funded contract: the non-freegas function fails without charging anyone (status 0,
  gasUsed 0, the contract's balance untouched, only the sender's nonce moves); the freegas
  function succeeds and only the contract pays, exactly gas_price x gasUsed (burned).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.fees import GasTooHighForLowPrice, PriceTooLow
from evm.db import MemoryDB
from evm.executor import contract_address_of
from genesis import dev_accounts, devnet_genesis
from tests.shared import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "lity"

GENESIS = replace(
    devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000),
    evm_profile="lity",
)
GAS_PRICE = GENESIS.params.gas_price
OWNER, USER = dev_accounts(3)[1], dev_accounts(3)[2]
SELECTORS = {"free": "e615f35b", "paid": "03be5ce9"}


def sign(account, nonce: int, *, to: bytes | None, data: bytes, gas: int, price: int,
         value: int = 0) -> bytes:  # fmt: skip
    fields = {
        "value": value,
        "gas": gas,
        "gasPrice": price,
        "nonce": nonce,
        "chainId": GENESIS.chain_id,
        "data": data,
    }
    if to is not None:
        fields["to"] = to_checksum_address(to)
    return bytes(Account.sign_transaction(fields, account.private_key).raw_transaction)


def call_data(which: str, arg: int = 7) -> bytes:
    return bytes.fromhex(SELECTORS[which]) + arg.to_bytes(32, "big")


class Node:
    def __init__(self) -> None:
        self.app = ChainApp(Chain(MemoryDB(), GENESIS))
        self.time = 1_700_000_100

    def mine(self, *raws: bytes) -> list:
        for raw in raws:
            self.app.check_tx(raw)
        self.time += 1
        block = self.app.build_block(
            self.app.next_context(
                time=self.time,
                coinbase=b"\x05" * 20,
                randomness=b"\x00" * 32,
                extra_data=b"\x00" * 32,
            )
        )
        assert not block.skipped, block.skipped
        self.app.commit(block)
        return list(block.result.receipts)

    def balance(self, address: bytes) -> int:
        return self.app.query().get_balance(address)

    def nonce(self, address: bytes) -> int:
        return self.app.query().get_nonce(address)


def deploy(node: Node) -> bytes:
    code = bytes.fromhex((FIXTURES / "FreeGas.bin").read_text().strip())
    raw = sign(OWNER, 0, to=None, data=code, gas=3_000_000, price=GAS_PRICE)
    (receipt,) = node.mine(raw)
    assert receipt.state_root == b"\x01"
    tx = node.app.chain.transactions(node.app.chain.head_number)[0]
    address = contract_address_of(tx)
    assert address is not None
    return address


def test_an_unfunded_contract_pays_for_nobody() -> None:
    node = Node()
    contract = deploy(node)
    with pytest.raises(PriceTooLow):
        node.app.check_tx(sign(USER, 0, to=contract, data=call_data("free"), gas=1_000_000,
                               price=0))  # fmt: skip
    with pytest.raises(GasTooHighForLowPrice):
        node.app.check_tx(sign(USER, 0, to=contract, data=call_data("free"), gas=1_000_000,
                               price=GAS_PRICE - 1))  # fmt: skip
    (receipt,) = node.mine(
        sign(USER, 0, to=contract, data=call_data("free"), gas=1_000_000, price=GAS_PRICE)
    )
    assert receipt.state_root == b"\x01"


def test_a_funded_contract_pays_exactly_for_its_freegas_function() -> None:
    node = Node()
    contract = deploy(node)
    node.mine(sign(OWNER, 1, to=contract, data=b"", gas=100_000, price=GAS_PRICE, value=10**18))
    funded = node.balance(contract)
    user_before = node.balance(USER.address)
    proposer_before = node.balance(b"\x05" * 20)

    (failed,) = node.mine(sign(USER, 0, to=contract, data=call_data("paid"), gas=1_000_000,
                               price=0))  # fmt: skip
    assert failed.state_root == b"" and failed.gas_used == 0 and failed.logs == ()
    assert node.balance(contract) == funded
    assert node.balance(USER.address) == user_before
    assert node.nonce(USER.address) == 1

    (paid,) = node.mine(sign(USER, 1, to=contract, data=call_data("free"), gas=1_000_000,
                             price=0))  # fmt: skip
    assert paid.state_root == b"\x01" and 21_000 < paid.gas_used < 1_000_000
    assert node.balance(contract) == funded - paid.gas_used * GAS_PRICE
    assert node.balance(USER.address) == user_before
    assert node.nonce(USER.address) == 2
    assert node.balance(b"\x05" * 20) == proposer_before  # burned, not paid to the proposer


def test_validators_agree_with_the_builder_on_freegas_blocks() -> None:
    builder, validator = Node(), Node()
    for node in (builder, validator):
        contract = deploy(node)
        node.mine(sign(OWNER, 1, to=contract, data=b"", gas=100_000, price=GAS_PRICE,
                       value=10**18))  # fmt: skip
    raws = [
        sign(USER, 0, to=contract, data=call_data("paid"), gas=1_000_000, price=0),
        sign(OWNER, 2, to=contract, data=call_data("free", 3), gas=1_200_000, price=0),
    ]
    builder.app.check_tx(raws[0])
    builder.app.check_tx(raws[1])
    block = builder.app.build_block(
        builder.app.next_context(
            time=builder.time + 1,
            coinbase=b"\x05" * 20,
            randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )
    )
    assert [r.state_root for r in block.result.receipts] == [b"", b"\x01"]
    assert (
        validator.app.validate_block(
            validator.app.chain.context_of(block.header), block.header, raws
        ).hash
        == block.hash
    )
