"""The low-price and free-transaction rules of SPEC §4 at admission, in block building and in
block validation (`cybermiles_node.application.fees` through `ChainApp` and `Chain`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import BlockRejected, Chain
from cybermiles_node.application.fees import (
    FeeRules,
    GasTooHighForLowPrice,
    LowPriceCapacityReached,
    PriceTooLow,
)
from evm.db import MemoryDB
from evm.state import StateDB
from evm.transactions import decode_transaction
from genesis import Params, dev_accounts, devnet_genesis

BASE = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
GENESIS = replace(BASE, params=replace(BASE.params, low_price_tx_slots_cap=3))
SENDERS = dev_accounts(6)
GWEI = 10**9


def raw(sender: int, nonce: int, *, to: int = 9, price: int = 0, gas: int = 21000,
        data: bytes = b"") -> bytes:  # fmt: skip
    fields = {
        "to": to_checksum_address(bytes([to]) * 20),
        "value": 7,
        "gas": gas,
        "gasPrice": price,
        "nonce": nonce,
        "chainId": GENESIS.chain_id,
        "data": data,
    }
    signed = Account.sign_transaction(fields, SENDERS[sender].private_key)
    return bytes(signed.raw_transaction)


def make_app() -> ChainApp:
    return ChainApp(Chain(MemoryDB(), GENESIS))


def commit_next(app: ChainApp) -> None:
    block = app.build_block(
        app.next_context(
            time=1_700_000_100,
            coinbase=b"\x05" * 20,
            randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )
    )
    app.commit(block)


def test_a_zero_price_transfer_runs_free() -> None:
    app = make_app()
    sender = SENDERS[1].address
    before = app.query().get_balance(sender)
    app.check_tx(raw(1, 0))
    commit_next(app)
    assert app.chain.head_number == 1
    assert app.query().get_balance(sender) == before - 7  # the value, no fee
    assert app.query().get_balance(bytes([9]) * 20) == 7


def test_one_low_price_transaction_per_pair_per_block() -> None:
    app = make_app()
    app.check_tx(raw(1, 0, to=9))
    with pytest.raises(PriceTooLow) as err:
        app.check_tx(raw(1, 1, to=9))
    assert err.value.message.startswith("The gas price is too low for transaction (101)")
    app.check_tx(raw(1, 1, to=10))  # another recipient is another pair
    app.check_tx(raw(1, 2, to=9, price=2 * GWEI))  # full price is never limited
    commit_next(app)
    assert app.chain.head_number == 1 and app.pending_count == 0
    app.check_tx(raw(1, 3, to=9))  # a new block, a new slot for the pair


def test_gas_limit_of_low_price_transactions() -> None:
    app = make_app()
    app.check_tx(raw(1, 0, gas=500_000))
    for price in (0, GWEI):
        with pytest.raises(GasTooHighForLowPrice) as err:
            app.check_tx(raw(2, 0, gas=500_001, price=price))
        assert "(102)" in err.value.message
    # The freegas shape (price 0, a call with data) is the exception: the called contract must
    # be able to prepay (test_freegas.py has the whole story).
    with pytest.raises(PriceTooLow, match="freegas"):
        app.check_tx(raw(2, 0, gas=600_000, data=b"\x01\x02"))
    app.check_tx(raw(2, 0, gas=600_000, price=2 * GWEI))


def test_low_price_capacity_of_a_block() -> None:
    app = make_app()
    for sender in range(3):
        app.check_tx(raw(sender, 0))
    with pytest.raises(LowPriceCapacityReached) as err:
        app.check_tx(raw(3, 0))
    assert "(103)" in err.value.message
    outcomes = app.check_txs([raw(4, 0), raw(4, 0, price=2 * GWEI)])
    assert isinstance(outcomes[0], LowPriceCapacityReached)
    assert not isinstance(outcomes[1], Exception)
    commit_next(app)
    app.check_tx(raw(3, 0))  # slots are per block


def decoded(*raws: bytes) -> list:
    return [decode_transaction(r, chain_id=GENESIS.chain_id, block_gas_limit=GENESIS.gas_limit)
            for r in raws]  # fmt: skip


def test_block_building_leaves_out_what_the_rules_forbid() -> None:
    chain = Chain(MemoryDB(), GENESIS)
    txs = decoded(raw(1, 0, to=9), raw(1, 1, to=9), raw(2, 0), raw(3, 0), raw(4, 0))
    block = chain.build_block(chain.next_context(time=1_700_000_100, coinbase=b"\x05" * 20), txs)
    assert [tx.hash for tx in block.result.transactions] == [txs[i].hash for i in (0, 2, 3)]
    reasons = [reason for _, reason in block.skipped]
    assert "(101)" in reasons[0] and "(103)" in reasons[1]


class LooseChain(Chain):
    """A proposer that reads a larger low-price slot cap than the chain's state holds."""

    def params_at(self, header: Any) -> Params:
        return replace(super().params_at(header), low_price_tx_slots_cap=10)

    def fee_rules_in(self, state: StateDB) -> FeeRules:
        return replace(super().fee_rules_in(state), low_price_slots=10)


def test_validators_reject_blocks_that_break_the_rules() -> None:
    builder, validator = Chain(MemoryDB(), GENESIS), Chain(MemoryDB(), GENESIS)
    cheater = LooseChain(MemoryDB(), GENESIS)
    txs = decoded(*(raw(s, 0) for s in range(5)))
    block = cheater.build_block(
        cheater.next_context(time=1_700_000_100, coinbase=b"\x05" * 20), txs
    )
    assert len(block.result.transactions) == 5
    with pytest.raises(BlockRejected, match="103"):
        validator.execute_block(
            validator.context_of(block.header), block.header, list(block.result.transactions)
        )
    fair = builder.build_block(builder.next_context(time=1_700_000_100, coinbase=b"\x05" * 20), txs)
    assert (
        validator.execute_block(
            validator.context_of(fair.header), fair.header, list(fair.result.transactions)
        ).hash
        == fair.hash
    )


def test_the_pair_rule_holds_within_one_batch() -> None:
    app = make_app()
    outcomes = app.check_txs([raw(1, 0, to=9), raw(1, 1, to=9), raw(1, 1, to=10)])
    assert not isinstance(outcomes[0], Exception)
    assert isinstance(outcomes[1], PriceTooLow)
    assert not isinstance(outcomes[2], Exception)


# -- low-price slots belong to executable transactions only (issue #12) -------------------------


def included_nonces(app: ChainApp) -> list[int]:
    return [tx.nonce for tx in app.chain.transactions(app.chain.head_number)]


def test_a_queued_low_price_transaction_does_not_hold_its_pair() -> None:
    """Nonce N+1 arriving before nonce N (same pair, both low-price) used to hold the pair's
    slot, and N was refused with 101. N+1 now takes no slot while queued; when N fills the gap
    N+1 waits for the next block's slot: one low-price transaction per pair per block."""
    app = make_app()
    later = app.check_tx(raw(1, 1, to=9))
    assert not app.low_price.holds(later.hash)
    first = app.check_tx(raw(1, 0, to=9))
    assert app.low_price.holds(first.hash) and not app.low_price.holds(later.hash)
    assert app.pending_count == 2  # both executable; the later one waits for a slot
    commit_next(app)
    assert included_nonces(app) == [0]
    assert app.low_price.holds(later.hash)  # the block freed the pair: it takes the slot
    commit_next(app)
    assert included_nonces(app) == [1] and app.pending_count == 0


def test_queued_low_price_transactions_do_not_count_against_the_block_capacity() -> None:
    app = make_app()  # 3 low-price slots per block
    for sender in (0, 1, 2):
        app.check_tx(raw(sender, 1))  # queued: no slot
    for sender in (3, 4, 5):
        app.check_tx(raw(sender, 0))  # executable: the 3 slots (refused with 103 before)
    commit_next(app)
    assert sorted(tx.sender for tx in app.chain.transactions(1)) == sorted(
        SENDERS[s].address for s in (3, 4, 5)
    )
    for sender in (0, 1, 2):  # full price fills the gaps: the queued ones take the slots
        app.check_tx(raw(sender, 0, to=10, price=2 * GWEI))
    with pytest.raises(LowPriceCapacityReached):
        app.check_tx(raw(3, 1, to=11))
    commit_next(app)
    assert len(app.chain.transactions(2)) == 6 and app.pending_count == 0


def test_a_batch_with_the_later_nonce_first_admits_both() -> None:
    app = make_app()
    outcomes = app.check_txs([raw(1, 1, to=9), raw(1, 0, to=9)])
    assert not any(isinstance(o, Exception) for o in outcomes)
    commit_next(app)
    commit_next(app)
    assert app.chain.head_number == 2 and app.pending_count == 0


def test_replacing_a_low_price_transaction_keeps_its_slot() -> None:
    app = make_app()
    app.check_tx(raw(1, 0, to=9))
    replacement = app.check_tx(raw(1, 0, to=9, price=GWEI))  # still low-price, bumped
    assert app.low_price.holds(replacement.hash)
    commit_next(app)
    assert [tx.hash for tx in app.chain.transactions(1)] == [replacement.hash]


def test_block_building_keeps_one_low_price_transaction_per_pair_with_waiting_ones() -> None:
    """The builder, not the pool's bookkeeping, enforces the rule: a block built from a pool
    holding several executable low-price transactions of one pair includes one."""
    app = make_app()
    for nonce in (3, 2, 1, 0):
        app.check_tx(raw(1, nonce, to=9))
    for height in range(1, 5):
        commit_next(app)
        assert included_nonces(app) == [height - 1]
