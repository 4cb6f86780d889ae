"""The application interface: admission, block building, commit, queries."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.fees import GasTooHighForLowPrice
from cybermiles_node.errors import NonceTooLow, TxRejected
from evm.db import MemoryDB
from genesis import dev_accounts, devnet_genesis

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
SENDER = dev_accounts(2)[1]
RECIPIENT = bytes([9]) * 20


def raw_transfer(nonce: int, price: int = 2 * 10**9, gas: int = 21000) -> bytes:
    fields = {
        "to": to_checksum_address(RECIPIENT),
        "value": 1,
        "gas": gas,
        "gasPrice": price,
        "nonce": nonce,
        "chainId": GENESIS.chain_id,
    }
    return bytes(Account.sign_transaction(fields, SENDER.private_key).raw_transaction)


def make_app() -> ChainApp:
    return ChainApp(Chain(MemoryDB(), GENESIS))


def produce(app: ChainApp):
    block = app.build_block(
        app.next_context(
            time=1_700_000_100,
            coinbase=dev_accounts(1)[0].address,
            randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )
    )
    app.commit(block)
    return block


def test_batch_admission_reports_each_transaction() -> None:
    app = make_app()
    outcomes = app.check_txs(
        [
            raw_transfer(0),
            b"\x01garbage",
            raw_transfer(1, price=1, gas=600_000),
            raw_transfer(1),
            raw_transfer(0),
        ]
    )
    assert [type(o).__name__ for o in outcomes] == [
        "SignedTx",
        "InvalidTransaction",
        "GasTooHighForLowPrice",
        "SignedTx",
        "AlreadyKnown",
    ]
    assert isinstance(outcomes[2], GasTooHighForLowPrice) and outcomes[2].code == 102
    assert "(102)" in outcomes[2].message
    assert app.pending_count == 2


def test_commit_includes_pending_and_rechecks_the_pool() -> None:
    app = make_app()
    seen: list[int] = []
    app.on_commit.append(lambda block: seen.append(block.number))
    app.check_txs([raw_transfer(n) for n in range(3)])
    block = produce(app)
    assert len(block.result.transactions) == 3 and seen == [1]
    assert app.pending_count == 0 and app.head.block_number == 1
    assert app.query().get_balance(RECIPIENT) == 3
    assert app.query(0).get_balance(RECIPIENT) == 0
    with pytest.raises(LookupError):
        app.query(5)
    with pytest.raises(NonceTooLow):
        app.check_tx(raw_transfer(2))


def test_a_failing_listener_does_not_stop_commits() -> None:
    app = make_app()

    def broken(_block: object) -> None:
        raise RuntimeError("listener bug")

    app.on_commit.append(broken)
    app.check_tx(raw_transfer(0))
    produce(app)
    assert app.head.block_number == 1
    assert not isinstance(app.check_txs([raw_transfer(1)])[0], TxRejected)
