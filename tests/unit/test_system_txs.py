"""System transactions (SPEC §5) are recognised at decoding and delivered by the module that owns
their kind, with the same guard at admission and in blocks (DESIGN.md §7, item 3).

A toy module owns the kind "test/add": it adds `n` to a counter in its own storage, up to a cap,
charges 30,000 gas and logs what it did. It stands in for staking and governance, which plug in
the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import BlockRejected, Chain, PendingBlock
from cybermiles_node.errors import IntrinsicGasTooLow, InvalidTransaction, TxRejected
from cybermiles_node.modules import BlockOutcome, ModuleSet, SystemTxMessage
from cybermiles_node.system.context import BlockContext
from evm.db import MemoryDB
from evm.precompiles import PRECOMPILE_GENESIS_CODE
from evm.state import StateDB
from evm.system import SystemTxResult
from evm.transactions import decode_transaction
from genesis import dev_accounts, devnet_genesis

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
SENDER = dev_accounts(2)[1]
COUNTER = min(PRECOMPILE_GENESIS_CODE)  # a module's state lives at its precompile address
CAP = 10
ADD_GAS = 30_000
ADDED_TOPIC = int.from_bytes(b"added".ljust(32, b"\x00"), "big")


@dataclass
class Adder:
    name: str = "adder"
    kinds: frozenset[str] = frozenset({"test/add"})
    fee_recipient: bytes | None = None

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        pass

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        return BlockOutcome()

    def _amount(self, msg: SystemTxMessage, storage: StateDB) -> int:
        n = msg.data.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise InvalidTransaction(f"test/add: n must be a positive integer, got {n!r}")
        if storage.get_storage(COUNTER, 0) + n > CAP:
            raise TxRejected(f"test/add: the counter would pass {CAP}")
        return n

    def check_tx(self, msg: SystemTxMessage, storage: StateDB, height: int, time: int) -> None:
        self._amount(msg, storage)

    def gas_of(self, msg: SystemTxMessage, storage: StateDB) -> int:
        return ADD_GAS

    def deliver_tx(
        self, msg: SystemTxMessage, storage: StateDB, height: int, time: int
    ) -> SystemTxResult:
        n = self._amount(msg, storage)
        storage.set_storage(COUNTER, 0, storage.get_storage(COUNTER, 0) + n)
        return SystemTxResult(True, ADD_GAS, [(COUNTER, (ADDED_TOPIC,), n.to_bytes(32, "big"))])


def envelope(nonce: int, body: Any, **overrides: Any) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    fields = {"to": b"", "value": 0, "gas": 0, "gasPrice": 0, "nonce": nonce, "data": data}
    fields |= {"chainId": GENESIS.chain_id, **overrides}
    return bytes(Account.sign_transaction(fields, SENDER.private_key).raw_transaction)


def add(nonce: int, n: object) -> bytes:
    return envelope(nonce, {"type": "test/add", "data": {"n": n}})


def app_with(*modules: Adder) -> ChainApp:
    return ChainApp(Chain(MemoryDB(), GENESIS, modules=ModuleSet(modules)))


def next_block(app: ChainApp) -> PendingBlock:
    ctx = app.next_context(
        time=app.head.timestamp + 1,
        coinbase=b"\x05" * 20,
        randomness=b"\x00" * 32,
        extra_data=b"\x00" * 32,
    )
    return app.build_block(ctx)


def decode(raw: bytes) -> Any:
    return decode_transaction(raw, chain_id=GENESIS.chain_id, block_gas_limit=GENESIS.gas_limit)


def test_the_envelope_is_recognised_by_its_four_header_fields() -> None:
    assert decode(add(0, 1)).is_system
    # Anything else with gas 0 is an EVM transaction, and refused for its intrinsic gas.
    for overrides in ({"value": 1}, {"gasPrice": 1}, {"to": "0x" + "09" * 20}):
        with pytest.raises(IntrinsicGasTooLow):
            decode(envelope(0, {"type": "test/add", "data": {"n": 1}}, **overrides))
    plain = Account.sign_transaction(
        {"to": "0x" + "09" * 20, "value": 0, "gas": 21_000, "gasPrice": 0, "nonce": 0,
         "chainId": GENESIS.chain_id},
        SENDER.private_key,
    )  # fmt: skip
    assert not decode(bytes(plain.raw_transaction)).is_system


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff not json", "malformed staking/governance transaction"),
        (b"[1, 2]", "malformed staking/governance transaction"),
        ({"type": "test/add"}, "malformed staking/governance transaction"),
        ({"type": 7, "data": {}}, "type must be a string"),
        ({"type": "stake/delegate", "data": {}}, "unknown staking/governance transaction kind"),
        ({"type": "test/add", "data": {"n": -1}}, "n must be a positive integer"),
    ],
)
def test_bad_system_transactions_are_refused_at_admission(body: Any, message: str) -> None:
    app = app_with(Adder())
    with pytest.raises(TxRejected, match=message):
        app.check_tx(envelope(0, body))
    assert len(app.mempool) == 0


def test_without_a_module_for_the_kind_it_is_refused_and_blocks_leave_it_out() -> None:
    app = app_with()
    with pytest.raises(TxRejected, match="unknown staking/governance transaction kind"):
        app.check_tx(add(0, 1))
    block = Chain(MemoryDB(), GENESIS).build_block(
        Chain(MemoryDB(), GENESIS).next_context(time=1_700_000_001, coinbase=b"\x05" * 20),
        [decode(add(0, 1))],
    )
    assert not block.result.transactions
    assert "unknown staking/governance transaction kind" in block.skipped[0][1]


def test_a_system_transaction_is_delivered_with_a_receipt_and_validates_elsewhere() -> None:
    app = app_with(Adder())
    tx = app.check_tx(add(0, 4))
    block = next_block(app)
    assert [t.hash for t in block.result.transactions] == [tx.hash]
    (receipt,) = block.result.receipts
    assert receipt.state_root == b"\x01" and receipt.gas_used == ADD_GAS
    assert block.header.gas_used == ADD_GAS
    assert [(log.address, log.topics) for log in receipt.logs] == [(COUNTER, (ADDED_TOPIC,))]
    assert block.result.contract_addresses == [None]
    validator = app_with(Adder())
    checked = validator.validate_block(
        validator.chain.context_of(block.header), block.header, [tx.raw]
    )
    assert checked.hash == block.hash
    app.commit(block)
    state = app.chain.state_at()
    assert state.get_storage(COUNTER, 0) == 4 and state.get_nonce(SENDER.address) == 1


def test_the_guard_runs_again_in_the_block_and_leaves_out_what_no_longer_holds() -> None:
    app = app_with(Adder())
    first = app.check_tx(add(0, 6))
    with pytest.raises(TxRejected, match="would pass 10"):  # judged on the pending state
        app.check_tx(add(1, 6))
    second = app.decode(add(1, 6))  # fits the head's state alone: a proposer might try it
    ctx = app.next_context(
        time=app.head.timestamp + 1, coinbase=b"\x05" * 20, randomness=b"\x00" * 32,
        extra_data=b"\x00" * 32,
    )  # fmt: skip
    block = app.chain.build_block(ctx, [first, second])
    assert [t.hash for t in block.result.transactions] == [first.hash]
    assert [t.hash for t, _ in block.skipped] == [second.hash]
    assert "would pass 10" in block.skipped[0][1]
    # A validator refuses a block that holds it.
    validator = app_with(Adder())
    with pytest.raises(BlockRejected, match="would pass 10"):
        validator.chain.execute_block(
            validator.chain.context_of(block.header), block.header, [first, second]
        )
