"""Staking admission against the pending state: the pool's admitted staking transactions are
applied, in order, before the next one is judged (application/pending_system.py)."""

from __future__ import annotations

import base64
import json

import pytest
from eth_account import Account

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.modules import ModuleSet
from cybermiles_node.staking import keeper
from cybermiles_node.staking.errors import StakingRuleViolation
from cybermiles_node.staking.module import StakingModule
from evm.db import MemoryDB
from genesis import DevAccount, dev_accounts, devnet_genesis

CMT = 10**18
T0 = 1_700_000_000
GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=T0)
OWNER, ALICE, BOB = dev_accounts(3)
KEY = base64.b64encode(b"\x0a" * 32).decode()


def app() -> ChainApp:
    return ChainApp(Chain(MemoryDB(), GENESIS, modules=ModuleSet([StakingModule()])))


def staking_tx(node: ChainApp, account: DevAccount, kind: str, data: dict[str, object]) -> bytes:
    body = json.dumps({"type": kind, "data": data}).encode()
    fields = {"to": b"", "value": 0, "gas": 0, "gasPrice": 0, "data": body,
              "nonce": node.mempool.pending_nonce(account.address),
              "chainId": GENESIS.chain_id}  # fmt: skip
    return bytes(Account.sign_transaction(fields, account.private_key).raw_transaction)


def declare(node: ChainApp, account: DevAccount) -> bytes:
    data = {"pub_key": KEY, "max_amount": str(20_000 * CMT), "comp_rate": "1/5"}
    return staking_tx(node, account, "stake/declareCandidacy", data)


def delegate(node: ChainApp, account: DevAccount, candidate: DevAccount) -> bytes:
    data = {"validator_address": "0x" + candidate.address.hex(), "amount": str(100 * CMT)}
    return staking_tx(node, account, "stake/delegate", data)


def commit_next(node: ChainApp) -> list[bytes]:
    ctx = node.next_context(
        time=node.head.timestamp + 1, coinbase=b"\x05" * 20, randomness=b"\x00" * 32,
        extra_data=b"\x00" * 32,
    )  # fmt: skip
    block = node.build_block(ctx)
    node.commit(block)
    return [tx.hash for tx in block.result.transactions]


def test_a_delegation_to_a_candidate_declared_in_the_pool_is_admitted_and_both_land() -> None:
    node = app()
    declared = node.check_tx(declare(node, ALICE))
    delegated = node.check_tx(delegate(node, BOB, ALICE))  # ALICE is only a pending candidate
    assert commit_next(node) == [declared.hash, delegated.hash]
    record = keeper.delegation(node.chain.state_at(), ALICE.address, BOB.address)
    assert record is not None and record.delegate_amount == 100 * CMT


def test_a_second_declaration_of_a_pending_key_is_refused_at_admission() -> None:
    node = app()
    node.check_tx(declare(node, ALICE))
    with pytest.raises(StakingRuleViolation, match="already used") as refused:
        node.check_tx(declare(node, BOB))
    assert refused.value.check_tx_code == 21
    assert len(node.mempool) == 1


def test_the_same_checks_in_a_batch_and_after_a_block() -> None:
    node = app()
    first, second = declare(node, ALICE), declare(node, BOB)
    outcomes = node.check_txs([first, second])
    assert not isinstance(outcomes[0], Exception)
    assert isinstance(outcomes[1], StakingRuleViolation)
    commit_next(node)
    # After the block the overlay starts again from the new head: the key is taken there.
    with pytest.raises(StakingRuleViolation, match="already used"):
        node.check_tx(declare(node, BOB))
    node.check_tx(delegate(node, BOB, ALICE))
    assert len(node.mempool) == 1
