"""The chain store: genesis identity, commit and reopen, validation of foreign blocks."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles_node.application.chain import BlockRejected, Chain, GenesisMismatch
from evm.db import LevelDB, MemoryDB
from evm.transactions import decode_transaction
from genesis import dev_accounts, devnet_genesis

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
ACCOUNTS = dev_accounts(3)


def transfers(count: int, *, start_nonce: int = 0) -> list:
    key = ACCOUNTS[1].private_key
    return [
        decode_transaction(
            bytes(
                Account.sign_transaction(
                    {
                        "to": to_checksum_address(bytes([7]) * 20),
                        "value": 10 + n,
                        "gas": 21000,
                        "gasPrice": 2 * 10**9,
                        "nonce": start_nonce + n,
                        "chainId": GENESIS.chain_id,
                    },
                    key,
                ).raw_transaction
            ),
            chain_id=GENESIS.chain_id,
            block_gas_limit=GENESIS.gas_limit,
        )
        for n in range(count)
    ]


def build(chain: Chain, txs: list, timestamp: int = 1_700_000_010):
    return chain.build_block(chain.next_context(time=timestamp, coinbase=ACCOUNTS[0].address), txs)


def test_commit_survives_reopening_the_database(tmp_path) -> None:
    db = LevelDB(tmp_path / "chain")
    chain = Chain(db, GENESIS)
    block = build(chain, transfers(3))
    chain.commit(block)
    db.close()
    db = LevelDB(tmp_path / "chain")
    reopened = Chain(db, GENESIS)
    assert reopened.head.hash == block.hash
    assert [tx.hash for tx in reopened.transactions(1)] == [tx.hash for tx in transfers(3)]
    assert reopened.state_at().get_balance(bytes([7]) * 20) == 10 + 11 + 12
    assert reopened.tx_location(transfers(3)[2].hash) == (1, 2)
    assert reopened.header_by_number(2) is None and reopened.header_by_number(2**70) is None
    db.close()


def test_a_changed_genesis_file_is_refused() -> None:
    db = MemoryDB()
    Chain(db, GENESIS)
    Chain(db, GENESIS)  # same file: fine
    with pytest.raises(GenesisMismatch, match="genesis file"):
        Chain(db, dataclasses.replace(GENESIS, chain_id=4321))
    with pytest.raises(GenesisMismatch, match="genesis block"):
        Chain(db, dataclasses.replace(GENESIS, gas_limit=GENESIS.gas_limit + 1))


def test_a_block_built_elsewhere_validates_and_commits_identically() -> None:
    proposer, validator = Chain(MemoryDB(), GENESIS), Chain(MemoryDB(), GENESIS)
    block = build(proposer, transfers(4))
    checked = validator.execute_block(
        validator.context_of(block.header), block.header, block.result.transactions
    )
    assert checked.hash == block.hash
    validator.commit(checked)
    proposer.commit(block)
    assert validator.head.state_root == proposer.head.state_root


def test_a_block_whose_header_lies_is_rejected() -> None:
    proposer, validator = Chain(MemoryDB(), GENESIS), Chain(MemoryDB(), GENESIS)
    block = build(proposer, transfers(2))
    lying = block.header.copy(gas_used=block.header.gas_used + 1)
    with pytest.raises(BlockRejected, match="does not match"):
        validator.execute_block(validator.context_of(lying), lying, block.result.transactions)
    with pytest.raises(BlockRejected, match="invalid transaction"):
        validator.execute_block(
            validator.context_of(block.header), block.header, transfers(1, start_nonce=5)
        )
    assert validator.head_number == 0
