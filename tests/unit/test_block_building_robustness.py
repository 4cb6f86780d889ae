"""No transaction can stop a proposer: the EIP-7623 calldata floor and failures nobody foresaw.

A transaction whose gas limit is below Prague's calldata floor (21000 + 10 per token) used to be
admitted, charged the floor after execution (above its own limit), and, when its sender could
not pay, crash block building on every proposer in turn. It is now refused at admission, in
block building and in block validation. Block building is also robust by construction: a
transaction whose execution raises anything unexpected is left out with the state as before it
and evicted from the mempool. The property test throws random transactions at the builder.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import BlockRejected, Chain, PendingBlock
from cybermiles_node.errors import IntrinsicGasTooLow
from evm.db import MemoryDB
from evm.profiles import CvmComputation, CvmState, get_profile
from evm.transactions import (
    SignedTx,
    data_floor_gas,
    decode_transaction,
    load_stored_transaction,
)
from genesis import AllocAccount, dev_accounts, devnet_genesis

GWEI = 10**9
BASE = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
SENDERS = [Account.from_key(bytes([i + 1]) * 32) for i in range(6)]
# From broke to rich: the attack needed a sender that cannot pay the floor.
BALANCES = [0, 1, 10**5, 74_000 * GWEI, 10**18, 10**24]
FUNDED = {
    bytes.fromhex(a.address[2:]): AllocAccount(balance=b)
    for a, b in zip(SENDERS, BALANCES, strict=True)
}
GENESIS = dataclasses.replace(BASE, alloc=tuple(sorted((dict(BASE.alloc) | FUNDED).items())))
COINBASE = dev_accounts(1)[0].address
RECIPIENT = bytes([7]) * 20


def sign(account: Any, **fields: Any) -> bytes:
    tx = {"chainId": GENESIS.chain_id, "nonce": 0, "value": 0, "data": b"", **fields}
    tx.setdefault("to", to_checksum_address(RECIPIENT))
    if "maxFeePerGas" not in tx:
        tx.setdefault("gasPrice", 2 * GWEI)
    return bytes(Account.sign_transaction(tx, account.key).raw_transaction)


def unchecked(raw: bytes, account: Any) -> SignedTx:
    """A transaction as a block builder could meet it if admission had let it through."""
    return load_stored_transaction(raw, bytes.fromhex(account.address[2:]))


def build(chain: Chain, txs: list[SignedTx]) -> PendingBlock:
    return chain.build_block(chain.next_context(time=1_700_000_010, coinbase=COINBASE), txs)


FLOOR_DATA = b"\x01" * 64  # 256 tokens: floor 23,560, intrinsic 22,024
BELOW_FLOOR = data_floor_gas(FLOOR_DATA) - 1


def test_the_floor_is_eip_7623s() -> None:
    assert data_floor_gas(b"") == 21_000
    assert data_floor_gas(b"\x00" * 10) == 21_000 + 10 * 10
    assert data_floor_gas(FLOOR_DATA) == 21_000 + 10 * 4 * 64


def test_admission_refuses_a_gas_limit_below_the_calldata_floor() -> None:
    raw = sign(SENDERS[3], gas=BELOW_FLOOR, data=FLOOR_DATA)
    with pytest.raises(IntrinsicGasTooLow, match="want 23560 .*EIP-7623 calldata floor"):
        decode_transaction(raw, chain_id=GENESIS.chain_id, block_gas_limit=GENESIS.gas_limit)
    app = ChainApp(Chain(MemoryDB(), GENESIS))
    with pytest.raises(IntrinsicGasTooLow):
        app.check_tx(raw)
    assert len(app.mempool) == 0
    at_floor = sign(SENDERS[4], gas=BELOW_FLOOR + 1, data=FLOOR_DATA)
    assert app.check_tx(at_floor).gas == data_floor_gas(FLOOR_DATA)


@pytest.mark.parametrize("sender", [SENDERS[3], SENDERS[5]], ids=["cannot-pay", "can-pay"])
def test_building_leaves_a_below_floor_transaction_out_and_goes_on(sender: Any) -> None:
    chain = Chain(MemoryDB(), GENESIS)
    bad = unchecked(sign(sender, gas=BELOW_FLOOR, data=FLOOR_DATA), sender)
    good = unchecked(sign(SENDERS[4], gas=21_000, value=5), SENDERS[4])
    block = build(chain, [bad, good])
    assert [tx.hash for tx in block.result.transactions] == [good.hash]
    assert [tx.hash for tx, _ in block.skipped] == [bad.hash]
    assert "calldata floor" in block.skipped[0][1]
    chain.commit(block)
    assert chain.state_at().get_balance(RECIPIENT) == 5


def test_validation_refuses_a_block_holding_a_below_floor_transaction() -> None:
    proposer, validator = Chain(MemoryDB(), GENESIS), Chain(MemoryDB(), GENESIS)
    bad = unchecked(sign(SENDERS[5], gas=BELOW_FLOOR, data=FLOOR_DATA), SENDERS[5])
    header = build(proposer, []).header  # any header on the head: the tx is refused first
    with pytest.raises(BlockRejected, match="calldata floor"):
        validator.execute_block(validator.context_of(header), header, [bad])


# -- a failure no rule foresees -------------------------------------------------------------
class _Boom:
    """An opcode that raises what no rule expects, standing in for an undiscovered bug."""

    mnemonic = "BOOM"
    gas_cost = 0

    def __call__(self, computation: Any) -> None:
        raise RuntimeError("boom")


class _BoomComputation(CvmComputation):
    opcodes = {**CvmComputation.opcodes, 0xFE: _Boom()}


class _BoomState(CvmState):
    computation_class = _BoomComputation


BOOM_PROFILE = dataclasses.replace(get_profile("cvm"), name="boom", state_class=_BoomState)


def _boom_chain() -> Chain:
    return Chain(MemoryDB(), GENESIS, profile=BOOM_PROFILE)


def test_a_crashing_transaction_is_left_out_evicted_and_the_block_still_built() -> None:
    app = ChainApp(_boom_chain())
    rich, other = SENDERS[5], SENDERS[4]
    crash = app.check_tx(sign(rich, to=None, gas=100_000, data=b"\xfe"))  # create runs 0xfe
    follower = app.check_tx(sign(rich, nonce=1, gas=21_000, value=1))
    transfer = app.check_tx(sign(other, gas=21_000, value=3))
    block = app.build_block(
        app.next_context(
            time=1_700_000_010, coinbase=COINBASE, randomness=b"\x00" * 32, extra_data=b"\x00" * 32
        )
    )
    assert [tx.hash for tx in block.result.transactions] == [transfer.hash]
    assert [tx.hash for tx, _ in block.crashed] == [crash.hash]
    assert "RuntimeError('boom')" in block.crashed[0][1]
    assert crash.hash not in app.mempool and follower.hash not in app.mempool
    app.mempool.check_invariants()
    app.commit(block)
    state = app.chain.state_at()
    sender = bytes.fromhex(rich.address[2:])
    assert state.get_nonce(sender) == 0 and state.get_balance(sender) == 10**24


def test_a_block_holding_a_crashing_transaction_is_refused_by_validators() -> None:
    honest = Chain(MemoryDB(), GENESIS)
    crash = unchecked(sign(SENDERS[5], to=None, gas=100_000, data=b"\xfe"), SENDERS[5])
    header = build(honest, [crash]).header  # on a stock profile 0xfe is INVALID: status 0
    boom = _boom_chain()
    with pytest.raises(BlockRejected, match="boom"):
        boom.execute_block(boom.context_of(header), header, [crash])


# -- property: random transactions never crash building or break gas limits ----------------
tx_fields = st.fixed_dictionaries(
    {
        "sender": st.integers(0, len(SENDERS) - 1),
        "type": st.sampled_from([0, 1, 2]),
        "to": st.sampled_from([RECIPIENT, None, bytes(19) + b"\x01", bytes(17) + b"\xc0\xde\x01"]),
        "data": st.one_of(
            st.binary(max_size=300), st.sampled_from([b"\xfe", b"\x5b\x60\x00\x56", b"\x00" * 200])
        ),
        "gas": st.one_of(st.integers(0, 60_000), st.integers(21_000, 3_000_000)),
        "price": st.sampled_from([0, 1, GWEI, 2 * GWEI, 10**12]),
        "value": st.sampled_from([0, 1, 10**5, 10**18, 10**30]),
        "nonce": st.sampled_from([0, 0, 0, 1, 5]),
    }
)


def _random_tx(fields: dict[str, Any]) -> SignedTx:
    account = SENDERS[fields["sender"]]
    common: dict[str, Any] = {
        "gas": fields["gas"],
        "value": fields["value"],
        "data": fields["data"],
        "nonce": fields["nonce"],
        "to": None if fields["to"] is None else to_checksum_address(fields["to"]),
    }
    if fields["type"] == 2:
        common |= {"maxFeePerGas": fields["price"], "maxPriorityFeePerGas": fields["price"]}
    else:
        common["gasPrice"] = fields["price"]
        if fields["type"] == 1:
            common["accessList"] = []
    return unchecked(sign(account, **common), account)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(tx_fields, min_size=1, max_size=6), st.sampled_from(["cvm", "lity"]))
def test_random_transactions_never_crash_building_nor_exceed_gas_limits(
    fields: list[dict[str, Any]], profile_name: str
) -> None:
    genesis = dataclasses.replace(GENESIS, evm_profile=profile_name, gas_limit=3_000_000)
    proposer, validator = Chain(MemoryDB(), genesis), Chain(MemoryDB(), genesis)
    txs = [_random_tx(f) for f in fields]
    block = build(proposer, txs)
    included = block.result.transactions
    assert len(included) + len(block.skipped) + len(block.crashed) == len(txs)
    assert block.header.gas_used <= block.header.gas_limit
    previous = 0
    for tx, receipt in zip(included, block.result.receipts, strict=True):
        assert receipt.gas_used - previous <= tx.gas
        previous = receipt.gas_used
    assert (
        validator.execute_block(validator.context_of(block.header), block.header, included).hash
        == block.hash
    )
