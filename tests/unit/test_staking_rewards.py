"""Block awards through the chain (SPEC §6): the pool is the block award plus the block's fees,
shared by the validators that signed the previous commit and the backups, credited lazily to
delegations, and never paid to the coinbase.

Three genesis validators (dev accounts 0-2, 10,000 CMT self-stake, comp_rate 1/2, max_vals 2,
backup_vals 1: two validators and one backup) run blocks built with explicit last-commit
signers. Every block is followed by the supply invariant over every account the test knows
(Σ balances = genesis supply + minted − burned) and the Hold invariant (Hold = Σ stakes +
pending withdrawals + unsettled awards + nothing else).
"""

from __future__ import annotations

import json
from dataclasses import replace
from fractions import Fraction

from eth_account import Account

from consensus.keys import Ed25519Key
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.modules import ModuleSet
from cybermiles_node.staking import keeper, rewards
from cybermiles_node.staking.awards import block_award
from cybermiles_node.staking.invariants import all_delegations
from cybermiles_node.staking.module import StakingModule
from cybermiles_node.staking.power import consensus_address
from cybermiles_node.staking.records import CandidateState
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS
from cybermiles_node.system.context import Misbehaviour
from evm.db import MemoryDB
from evm.state import StateDB
from genesis import Params, dev_accounts, devnet_genesis

CMT = 10**18
T0 = 1_700_000_000
KEYS = [Ed25519Key.from_seed(bytes([i + 1]) * 32) for i in range(3)]
SIGNERS = [consensus_address(k.public_key) for k in KEYS]
BASE = devnet_genesis(validator_pub_keys=[k.public_key for k in KEYS], genesis_time=T0)
GENESIS = replace(BASE, params=replace(BASE.params, max_vals=2, backup_vals=1))
PARAMS = GENESIS.params
ACCOUNTS = dev_accounts(6)
V0, V1, V2 = (a.address for a in ACCOUNTS[:3])
STAKER, PAYER = ACCOUNTS[4], ACCOUNTS[5]
PROPOSER = b"\x05" * 20  # a coinbase that must never receive a fee
AWARD = block_award(PARAMS)


class Net:
    """One node's chain, driven block by block with chosen commit signers."""

    def __init__(self, params: Params = PARAMS) -> None:
        genesis = replace(GENESIS, params=params)
        self.app = ChainApp(Chain(MemoryDB(), genesis, modules=ModuleSet([StakingModule()])))
        self.known = {a for a, _ in GENESIS.alloc} | {HOLD_ADDRESS, PROPOSER}

    @property
    def state(self) -> StateDB:
        return self.app.chain.state_at()

    def block(
        self,
        signers: tuple[bytes, ...] = (),
        txs: tuple[bytes, ...] = (),
        validators: tuple[bytes, ...] = (),
        misbehaviour: tuple[Misbehaviour, ...] = (),
    ) -> int:
        for raw in txs:
            self.app.check_tx(raw)
        ctx = self.app.next_context(
            time=self.app.head.timestamp + 1, coinbase=PROPOSER, randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )  # fmt: skip
        ctx = replace(
            ctx,
            last_commit_signers=tuple(sorted(signers)),
            last_commit_validators=tuple(sorted(validators)),
            misbehaviour=misbehaviour,
        )
        block = self.app.build_block(ctx)
        assert len(block.result.transactions) == len(txs)
        self.app.commit(block)
        self.check_invariants()
        return self.app.chain.head_number

    def check_invariants(self) -> None:
        state = self.state
        counters = ledger.read_supply(state)
        total = sum(state.get_balance(a) for a in sorted(self.known))
        assert total == GENESIS.total_supply + counters.minted - counters.burned
        staked = sum(d.shares + d.pending_withdraw_amount for d in all_delegations(state))
        assert state.get_balance(HOLD_ADDRESS) == staked + keeper.award_reserve(state)

    def award_infos(self) -> dict[bytes, tuple[CandidateState, int]]:
        return {owner: (state, amount) for owner, state, amount in keeper.award_infos(self.state)}


def nonce_of(net: Net, address: bytes) -> int:
    return net.app.mempool.pending_nonce(address)


def staking_tx(net: Net, account: object, kind: str, data: dict[str, object]) -> bytes:
    body = json.dumps({"type": kind, "data": data}).encode()
    sender = account.address  # type: ignore[attr-defined]
    fields = {"to": b"", "value": 0, "gas": 0, "gasPrice": 0, "nonce": nonce_of(net, sender),
              "data": body, "chainId": GENESIS.chain_id}  # fmt: skip
    key = account.private_key  # type: ignore[attr-defined]
    return bytes(Account.sign_transaction(fields, key).raw_transaction)


def delegate(net: Net, candidate: bytes, cmt: int) -> bytes:
    data = {"validator_address": "0x" + candidate.hex(), "amount": str(cmt * CMT)}
    return staking_tx(net, STAKER, "stake/delegate", data)


def transfer(net: Net, price: int) -> bytes:
    fields = {"to": "0x" + "42" * 20, "value": 1, "gas": 21_000, "gasPrice": price,
              "nonce": nonce_of(net, PAYER.address), "chainId": GENESIS.chain_id}  # fmt: skip
    net.known.add(b"\x42" * 20)
    return bytes(Account.sign_transaction(fields, PAYER.private_key).raw_transaction)


def test_the_present_validators_and_the_backup_share_the_pool_by_the_ratio() -> None:
    net = Net()
    net.block()  # block 1: the first election makes V2 the backup
    assert {o: s for o, (s, _) in net.award_infos().items()} == {
        V0: CandidateState.VALIDATOR,
        V1: CandidateState.VALIDATOR,
        V2: CandidateState.VALIDATOR,
    }
    net.block(signers=tuple(SIGNERS))
    infos = net.award_infos()
    assert infos[V2][0] is CandidateState.BACKUP
    validators = AWARD * 9 // 10
    assert infos[V0][1] + infos[V1][1] == validators and infos[V2][1] == AWARD - validators
    assert abs(infos[V0][1] - infos[V1][1]) <= 1  # equal power


def test_an_absent_validator_earns_nothing_and_the_sum_is_the_block_award() -> None:
    net = Net()
    net.block()
    net.block(signers=(SIGNERS[0], SIGNERS[2]))  # V1 did not sign
    infos = net.award_infos()
    assert infos[V1][1] == 0
    assert sum(amount for _, amount in infos.values()) == AWARD


def test_fees_join_the_pool_and_never_reach_the_coinbase() -> None:
    net = Net()
    net.block()
    minted = ledger.read_supply(net.state).minted
    price = 3 * 10**9
    rate = "1/5"
    net.block(
        signers=tuple(SIGNERS),
        txs=(transfer(net, price), staking_tx(net, ACCOUNTS[0], "stake/setCompRate",
                                             {"delegator_address": "0x" + V0.hex(),
                                              "comp_rate": rate})),
    )  # fmt: skip
    fees = 21_000 * price + PARAMS.set_comp_rate_gas * PARAMS.gas_price
    assert sum(amount for _, amount in net.award_infos().values()) == AWARD + fees
    assert net.state.get_balance(PROPOSER) == 0
    assert ledger.read_supply(net.state).minted - minted == AWARD  # fees are moved, not minted
    own = keeper.delegation(net.state, V0, V0)
    assert own is not None and own.comp_rate == Fraction(1, 5)


def test_lazy_awards_equal_the_naive_split_within_a_wei_per_block() -> None:
    """A delegator earns its share of V0's award minus the owner's comp_rate, block after
    block, without any per-delegation work; settling it writes the same amount. (Size
    threshold 1: no factor, so powers stay put and nothing settles in between.)"""
    net = Net(replace(PARAMS, validator_size_threshold=Fraction(1)))
    net.block()
    net.block(txs=(delegate(net, V0, 5_000),))
    # That block's election gave the delegation its voting power: it earns from the next.
    delegation = keeper.delegation(net.state, V0, STAKER.address)
    assert delegation is not None and delegation.voting_power > 0
    owner = keeper.candidate(net.state, V0)
    assert owner is not None
    naive = Fraction(0)
    blocks = 20
    for _ in range(blocks):
        net.block(signers=tuple(SIGNERS))
        paid = net.award_infos()[V0][1]
        share = Fraction(paid * delegation.voting_power, owner.voting_power)
        naive += share * (1 - delegation.comp_rate)
    assert keeper.delegation(net.state, V0, STAKER.address) == delegation  # untouched
    pending = rewards.unsettled_award(net.state, delegation)
    assert naive > 0 and abs(pending.delegator_award - naive) <= blocks
    own = keeper.delegation(net.state, V0, V0)
    assert own is not None
    data = {"delegator_address": "0x" + STAKER.address.hex(), "comp_rate": "1/5"}
    rate = staking_tx(net, ACCOUNTS[0], "stake/setCompRate", data)
    net.block(signers=tuple(SIGNERS), txs=(rate,))  # settles before the rate changes
    # ... and the block's election settles it again: the settled awards raised its power.
    # So it holds what it had earned plus this block's share at the new rate.
    this_block = Fraction(net.award_infos()[V0][1] * delegation.voting_power, owner.voting_power)
    settled = keeper.delegation(net.state, V0, STAKER.address)
    assert settled is not None and settled.comp_rate == Fraction(1, 5)
    expected = pending.delegator_award + this_block * Fraction(4, 5)
    assert abs(settled.award_amount - expected) <= 1
    own_after = keeper.delegation(net.state, V0, V0)
    assert own_after is not None
    # the owner's cut, plus its own delegation's earnings, settled as its power changed
    assert own_after.award_amount >= own.award_amount + pending.owner_award


def test_an_unstaking_amount_keeps_earning_until_maturity_and_a_complete_withdrawal_pays_it() -> (
    None
):
    net = Net(replace(PARAMS, unstake_waiting_period=5))
    net.block()
    net.block(txs=(delegate(net, V1, 2_000),))
    net.block()
    balance = net.state.get_balance(STAKER.address)
    request = net.block(txs=(staking_tx(net, STAKER, "stake/withdraw",
                                        {"validator_address": "0x" + V1.hex(),
                                         "amount": str(2_000 * CMT),
                                         "completely_withdraw": True}),))  # fmt: skip
    while net.app.chain.head_number < request + 5 - 1:
        net.block(signers=tuple(SIGNERS))
        pending = keeper.delegation(net.state, V1, STAKER.address)
        assert pending is not None and pending.voting_power > 0  # still earning
    net.block(signers=tuple(SIGNERS))  # maturity
    paid = net.state.get_balance(STAKER.address) - balance
    assert paid > 2_000 * CMT  # the stake and the awards it earned while waiting
    assert keeper.delegation(net.state, V1, STAKER.address) is None


def test_nothing_is_minted_when_no_member_signed_and_the_fees_are_burned() -> None:
    net = Net()
    net.block()
    before = ledger.read_supply(net.state)
    stranger = consensus_address(Ed25519Key.from_seed(b"\x09" * 32).public_key)
    net.block(signers=(stranger,), txs=(transfer(net, 2 * 10**9),))
    after = ledger.read_supply(net.state)
    assert after.minted == before.minted
    assert after.burned - before.burned == 21_000 * 2 * 10**9
    assert sum(amount for _, amount in net.award_infos().values()) == 0
