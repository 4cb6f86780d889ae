"""The staking precompile (cybermiles_node/staking/precompile.py) through real blocks.

A chain built as the node builds it (`node.chain_modules()`, `node.chain_profile(genesis)`)
runs the Solidity contract `contracts/src/StakingUser.sol` (compiled artifacts in
contracts/build/: prague for `cvm`, byzantium for `lity`), deployed and funded by signed
transactions through admission, block building and commit. The staking state is read back
with the keeper, and through the contract's views with eth_call's code path (`run_call` on
the chain's profile, as rpc/execution.py runs it). Exact gas and the failure modes are read
off the precompile's own computation with the caller-contract helper of
test_cvm_precompiles.py, on the chain's genesis state.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth.exceptions import WriteProtection
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.node import chain_modules, chain_profile
from cybermiles_node.staking import keeper
from cybermiles_node.staking import precompile as sp
from cybermiles_node.staking.invariants import all_delegations
from cybermiles_node.staking.records import CandidateState, DelegationSource
from cybermiles_node.system.addresses import HOLD_ADDRESS, STAKING_ADDRESS
from evm import precompiles as pc
from evm.call import CallRequest, CallResult, decode_revert_reason, run_call
from evm.db import MemoryDB
from evm.executor import contract_address_of, execution_context
from evm.profiles import get_profile
from genesis import Genesis, dev_accounts, devnet_genesis
from genesis.schema import EvmProfile as ProfileName
from tests.unit.test_cvm_precompiles import (
    CALL,
    CHILD_GAS,
    DELEGATECALL,
    ORIGIN,
    STATICCALL,
    TARGET,
    call_precompile,
)

CMT = 10**18
T0 = 1_700_000_000
WAIT = 3  # unstake_waiting_period, in blocks, so a withdrawal matures within the test
BASE = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=T0)
OWNER, USER = dev_accounts(2)  # dev account 0 owns the genesis validator
BUILD = Path(__file__).resolve().parents[2] / "contracts" / "build"
ARTIFACTS = {"cvm": "StakingUser.json", "lity": "StakingUser.lity.json"}
PROFILES = pytest.mark.parametrize("profile", ["cvm", "lity"])
STAKED_TOPIC = int.from_bytes(keccak(b"stake/staked"), "big")
UNSTAKE_TOPIC = int.from_bytes(keccak(b"stake/unstake_requested"), "big")


def stake_principal(state: Any) -> int:
    settled = sum(d.award_amount for d in all_delegations(state))
    return int(state.get_balance(HOLD_ADDRESS)) - keeper.award_reserve(state) - settled


def genesis_for(profile: ProfileName) -> Genesis:
    params = replace(BASE.params, unstake_waiting_period=WAIT)
    return replace(BASE, evm_profile=profile, params=params)


def artifact(profile: str) -> dict[str, Any]:
    with (BUILD / ARTIFACTS[profile]).open() as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def call_data(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1 : -1].split(",") if args else []
    return selector(signature) + abi_encode(types, list(args))


class Node:
    """One chain as the node wires it, a deployed and funded StakingUser, and USER sending."""

    def __init__(self, profile: ProfileName, funding: int = 1_000 * CMT) -> None:
        self.genesis = genesis_for(profile)
        self.chain = Chain(
            MemoryDB(), self.genesis, modules=chain_modules(), profile=chain_profile(self.genesis)
        )
        self.app = ChainApp(self.chain)
        self.time = T0 + 100
        self.nonce = 0
        self.delegated: Any = None  # the receipt of the fixture's delegation
        built = artifact(profile)
        (deployed,) = self.mine(self.sign(None, bytes.fromhex(built["bytecode"][2:])))
        assert deployed.state_root == b"\x01"
        address = contract_address_of(self.chain.transactions(self.chain.head_number)[0])
        assert address is not None
        self.contract: bytes = address
        (funded,) = self.mine(self.sign(self.contract, b"", value=funding))
        assert funded.state_root == b"\x01"

    def sign(self, to: bytes | None, data: bytes, *, value: int = 0) -> bytes:
        fields: dict[str, Any] = {
            "value": value, "gas": 3_000_000, "gasPrice": self.genesis.params.gas_price,
            "nonce": self.nonce, "chainId": self.genesis.chain_id, "data": data,
        }  # fmt: skip
        if to is not None:
            fields["to"] = to_checksum_address(to)
        self.nonce += 1
        return bytes(Account.sign_transaction(fields, USER.private_key).raw_transaction)

    def mine(self, *raws: bytes) -> list[Any]:
        for raw in raws:
            self.app.check_tx(raw)
        self.time += 1
        block = self.app.build_block(
            self.app.next_context(
                time=self.time, coinbase=b"\x05" * 20, randomness=b"\x00" * 32,
                extra_data=b"\x00" * 32,
            )
        )  # fmt: skip
        assert not block.skipped and not block.crashed, (block.skipped, block.crashed)
        self.app.commit(block)
        return list(block.result.receipts)

    def transact(self, signature: str, *args: Any) -> Any:
        """Call the contract in a block; its receipt."""
        (receipt,) = self.mine(self.sign(self.contract, call_data(signature, *args)))
        return receipt

    def eth_call(
        self, to: bytes, data: bytes, *, value: int = 0, gas: int = 1_000_000
    ) -> CallResult:
        head = self.chain.head
        request = CallRequest(USER.address, to, data, value=value, gas=gas)
        return run_call(
            self.chain.profile, self.chain.db, head.state_root, self.chain.env_of(head), request
        )

    def view(self, signature: str, output: list[str], *args: Any) -> tuple[Any, ...]:
        """A view of the contract through eth_call's path."""
        result = self.eth_call(self.contract, call_data(signature, *args))
        assert result.success, result
        return tuple(abi_decode(output, result.output))

    def staking_state(self) -> tuple[Any, ...]:
        """Everything a delegation by the contract could change. Each block's awards change
        Hold, the reserve and settled delegations' award_amount: the stake principal in Hold
        (Hold − reserve − every settled award) is what a delegation would move."""
        state = self.app.query()
        candidate = keeper.candidate(state, OWNER.address)
        assert candidate is not None
        return (
            keeper.delegation(state, OWNER.address, self.contract),
            candidate.num_of_delegators,
            stake_principal(state),
            state.get_balance(self.contract),
        )

    def evm_state(self) -> Any:
        """A py-evm state of the head, for computation-level calls."""
        head = self.chain.head
        state = self.chain.profile.state_class(
            self.chain.db, execution_context(self.chain.env_of(head)), head.state_root
        )
        state.begin_transaction()
        return state


@pytest.fixture(scope="module", params=["cvm", "lity"])
def node(request: pytest.FixtureRequest) -> Node:
    """A node after one delegation of 100 CMT by the contract, shared by the read-only tests."""
    made = Node(request.param)
    made.delegated = made.transact("delegate(address,uint256)", OWNER.address, 100 * CMT)
    assert made.delegated.state_root == b"\x01"
    return made


# -- wiring ----------------------------------------------------------------------------------------
@PROFILES
def test_the_node_profile_has_the_staking_precompile_and_keeps_the_genesis(
    profile: ProfileName,
) -> None:
    genesis = genesis_for(profile)
    wired = chain_profile(genesis)
    assert wired.name == profile
    assert STAKING_ADDRESS in wired.injected_precompile_addresses  # governance's is beside it
    assert STAKING_ADDRESS not in get_profile(profile).precompile_addresses
    assert chain_profile(genesis) == wired  # one class, however often the root builds it
    # Genesis already gave 0x…c0de05 its stub as a system storage account: same genesis block,
    # so existing homes open under the new profile.
    plain = Chain(MemoryDB(), genesis, modules=chain_modules())
    assert Chain(MemoryDB(), genesis, profile=wired).genesis_header == plain.genesis_header


# -- delegate and withdraw through a contract ------------------------------------------------------
def test_a_contract_delegates_its_own_balance(node: Node) -> None:
    state = node.app.query()
    record = keeper.delegation(state, OWNER.address, node.contract)
    assert record is not None
    assert record.delegate_amount == record.shares == 100 * CMT
    assert record.source is DelegationSource.WALLET
    assert state.get_balance(node.contract) == 900 * CMT
    candidate = keeper.candidate(state, OWNER.address)
    genesis_shares = node.genesis.validators[0].shares * CMT
    own = keeper.delegation(state, OWNER.address, OWNER.address)
    assert candidate is not None and own is not None
    assert candidate.shares == own.shares + 100 * CMT  # awards settled into the owner's own
    assert stake_principal(state) == genesis_shares + 100 * CMT
    assert keeper.delegation(state, OWNER.address, USER.address) is None  # not the sender's


def test_the_delegation_is_logged_by_the_staking_address(node: Node) -> None:
    logs = node.delegated.logs
    assert {log.address for log in logs} == {STAKING_ADDRESS}
    assert [log.topics for log in logs] == [(STAKED_TOPIC,)]
    event = json.loads(logs[0].data)
    assert event["event"] == "stake/staked"
    assert event["delegator"] == "0x" + node.contract.hex()
    assert event["candidate"] == "0x" + OWNER.address.hex()
    assert int(event["amount"]) == 100 * CMT


def test_another_chain_validates_the_block(node: Node) -> None:
    """The precompile runs the same way when a validator re-executes the blocks."""
    validator = Chain(
        MemoryDB(), node.genesis, modules=chain_modules(), profile=chain_profile(node.genesis)
    )
    for number in range(1, node.chain.head_number + 1):
        header = node.chain.header_by_number(number)
        assert header is not None
        ctx = validator.next_context(
            time=header.timestamp, coinbase=header.coinbase, randomness=header.mix_hash,
            extra_data=header.extra_data,
        )  # fmt: skip
        block = validator.execute_block(ctx, header, node.chain.transactions(number))
        validator.commit(block)
    assert validator.head.state_root == node.chain.head.state_root


@PROFILES
def test_withdraw_unbonds_and_pays_back_after_the_waiting_period(profile: ProfileName) -> None:
    node = Node(profile)
    node.transact("delegate(address,uint256)", OWNER.address, 100 * CMT)
    receipt = node.transact("withdraw(address,uint256,bool)", OWNER.address, 30 * CMT, False)
    assert receipt.state_root == b"\x01"
    assert [log.topics for log in receipt.logs] == [(UNSTAKE_TOPIC,)]
    record = keeper.delegation(node.app.query(), OWNER.address, node.contract)
    assert record is not None
    assert (record.shares, record.pending_withdraw_amount) == (70 * CMT, 30 * CMT)
    assert node.view("myDelegation(address)", ["bool", "uint256", "uint256"], OWNER.address) == (
        True, 70 * CMT, 30 * CMT,
    )  # fmt: skip
    node.transact("withdraw(address,uint256,bool)", OWNER.address, 1, True)  # the rest
    for _ in range(WAIT):
        node.mine()
    state = node.app.query()
    assert keeper.delegation(state, OWNER.address, node.contract) is None
    assert state.get_balance(node.contract) == 1_000 * CMT


# -- a reverting caller undoes it ------------------------------------------------------------------
@PROFILES
def test_a_reverting_caller_undoes_the_delegation(profile: ProfileName) -> None:
    node = Node(profile)
    before = node.staking_state()
    # The transaction succeeds; its inner call delegated, then reverted.
    receipt = node.transact("delegateInRevertedCall(address,uint256)", OWNER.address, 100 * CMT)
    assert receipt.state_root == b"\x01" and receipt.logs == ()
    assert node.view("attempts()", ["uint256"]) == (1,)  # the outer call's own write stayed
    assert node.staking_state() == before
    # Delegating and reverting at the top: the transaction fails, nothing staked.
    receipt = node.transact("delegateThenRevert(address,uint256)", OWNER.address, 100 * CMT)
    assert receipt.state_root == b""
    assert node.staking_state() == before
    reverted = node.eth_call(
        node.contract, call_data("delegateThenRevert(address,uint256)", OWNER.address, CMT)
    )
    assert decode_revert_reason(reverted.output) == "StakingUser: reverted after delegating"


# -- static context --------------------------------------------------------------------------------
@PROFILES
def test_a_delegation_under_staticcall_fails_and_changes_nothing(profile: ProfileName) -> None:
    node = Node(profile)
    before = node.staking_state()
    receipt = node.transact("delegateStatic(address,uint256)", OWNER.address, 100 * CMT)
    assert receipt.state_root == b"\x01"
    assert node.view("lastStaticOk()", ["bool"]) == (False,)
    assert node.staking_state() == before


@PROFILES
def test_staticcall_of_a_write_is_write_protection_and_views_work(profile: ProfileName) -> None:
    node = Node(profile)
    data = call_data("delegate(address,uint256)", OWNER.address, CMT)
    outcome = call_precompile(
        node.chain.profile, STAKING_ADDRESS, data, op=STATICCALL, state=node.evm_state()
    )
    assert not outcome.success and outcome.gas == CHILD_GAS
    assert isinstance(outcome.child.error, WriteProtection)
    view = call_data("candidate(address)", OWNER.address)
    outcome = call_precompile(
        node.chain.profile, STAKING_ADDRESS, view, op=STATICCALL, state=node.evm_state()
    )
    assert outcome.success and abi_decode(sp.CANDIDATE_OUTPUT, outcome.returndata)[0] is True


# -- the views -------------------------------------------------------------------------------------
def test_views_through_the_contract(node: Node) -> None:
    assert node.view("myDelegation(address)", ["bool", "uint256", "uint256"], OWNER.address) == (
        True, 100 * CMT, 0,
    )  # fmt: skip
    assert node.view("myDelegation(address)", ["bool", "uint256", "uint256"], USER.address) == (
        False, 0, 0,
    )  # fmt: skip
    record = keeper.candidate(node.app.query(), OWNER.address)
    assert record is not None and record.state is CandidateState.VALIDATOR
    shares = record.shares  # the stakes and the awards settled into them
    assert shares > (node.genesis.validators[0].shares + 100) * CMT
    assert node.view("candidateShares(address)", ["bool", "uint256", "uint8"], OWNER.address) == (
        True, shares, 1,  # 1: Validator
    )  # fmt: skip
    assert node.view("allCandidates()", ["address[]"]) == (("0x" + OWNER.address.hex(),),)


def test_views_called_directly_match_the_keeper(node: Node) -> None:
    state = node.app.query()
    candidate = keeper.candidate(state, OWNER.address)
    delegation = keeper.delegation(state, OWNER.address, node.contract)
    result = node.eth_call(STAKING_ADDRESS, call_data("candidate(address)", OWNER.address))
    assert result.success
    assert abi_decode(sp.CANDIDATE_OUTPUT, result.output) == sp.candidate_values(candidate)
    got = abi_decode(sp.CANDIDATE_OUTPUT, result.output)
    assert got[1] == node.genesis.validators[0].pub_key and got[4:6] == (1, 2)  # comp_rate 1/2
    result = node.eth_call(
        STAKING_ADDRESS, call_data("delegation(address,address)", OWNER.address, node.contract)
    )
    assert abi_decode(sp.DELEGATION_OUTPUT, result.output) == sp.delegation_values(delegation)
    for missing in (
        call_data("candidate(address)", USER.address),
        call_data("delegation(address,address)", OWNER.address, USER.address),
    ):
        result = node.eth_call(STAKING_ADDRESS, missing)
        assert result.success and set(result.output) == {0}  # exists false, all zero


# -- gas -------------------------------------------------------------------------------------------
def test_the_prices_are_the_documented_ones() -> None:
    """docs/PRECOMPILES.md's table and contracts' gas budgets rely on these numbers."""
    assert (sp.GAS_WRITE, sp.GAS_VIEW) == (50_000, 5_000)
    assert (sp.GAS_CANDIDATES, sp.GAS_CANDIDATES_PER_CANDIDATE) == (2_000, 2_000)


@pytest.mark.parametrize(
    ("data", "gas"),
    [
        (call_data("delegate(address,uint256)", OWNER.address, CMT), sp.GAS_WRITE),
        (call_data("withdraw(address,uint256,bool)", OWNER.address, CMT, False), sp.GAS_WRITE),
        (call_data("candidate(address)", OWNER.address), sp.GAS_VIEW),
        (call_data("delegation(address,address)", OWNER.address, TARGET), sp.GAS_VIEW),
        (call_data("candidates()"), sp.GAS_CANDIDATES + sp.GAS_CANDIDATES_PER_CANDIDATE),
    ],
    ids=["delegate", "withdraw", "candidate", "delegation", "candidates"],
)
def test_each_function_charges_its_fixed_gas(node: Node, data: bytes, gas: int) -> None:
    state = node.evm_state()
    state.set_balance(TARGET, 10 * CMT)
    if data.startswith(selector("withdraw(address,uint256,bool)")):
        call_precompile(node.chain.profile, STAKING_ADDRESS, call_data(
            "delegate(address,uint256)", OWNER.address, 2 * CMT), state=state)  # fmt: skip
    outcome = call_precompile(node.chain.profile, STAKING_ADDRESS, data, state=state)
    assert outcome.success, outcome.child.error
    assert outcome.gas == gas


# -- refusals --------------------------------------------------------------------------------------
def test_a_rule_violation_reverts_with_the_modules_reason(node: Node) -> None:
    """The staker's refusal text (`{staker}`: the contract, or the account calling directly)."""
    stranger = "0x" + "42" * 20
    cases = [
        (stranger, CMT, f"stake/delegate: no candidate owned by {stranger}"),
        (OWNER.address, 0, "stake/delegate: amount must be > 0, got 0"),
        (OWNER.address, 10**6 * CMT, "stake/delegate: {staker} has "),
    ]
    for candidate, amount, reason in cases:
        data = call_data("delegate(address,uint256)", candidate, amount)
        # Through the contract: the revert bubbles up as Error(string).
        result = node.eth_call(node.contract, data)
        expected = reason.format(staker="0x" + node.contract.hex())
        assert result.reverted and (decode_revert_reason(result.output) or "").startswith(expected)
        # Called directly: a revert, so the gas left is returned.
        direct = node.eth_call(STAKING_ADDRESS, data, gas=1_000_000)
        expected = reason.format(staker="0x" + USER.address.hex())
        assert direct.reverted and (decode_revert_reason(direct.output) or "").startswith(expected)
        assert direct.gas_used < 100_000
    if node.genesis.evm_profile == "cvm":  # try/catch: solc's catch decoding trips Lity's ADD
        result = node.eth_call(
            node.contract, call_data("tryDelegate(address,uint256)", stranger, CMT)
        )
        assert result.success
        assert abi_decode(["string"], result.output) == (cases[0][2],)


def test_a_rule_violation_inside_a_block_leaves_the_state(node: Node) -> None:
    before = node.staking_state()
    receipt = node.transact("delegate(address,uint256)", OWNER.address, 0)
    assert receipt.state_root == b"" and receipt.logs == ()
    assert node.staking_state() == before


def test_value_sent_with_a_call_is_refused(node: Node) -> None:
    for data in (
        call_data("delegate(address,uint256)", OWNER.address, CMT),
        call_data("candidate(address)", OWNER.address),
    ):
        result = node.eth_call(STAKING_ADDRESS, data, value=CMT)
        assert result.reverted
        assert (decode_revert_reason(result.output) or "").startswith("staking: send no value")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x5c\x19",  # shorter than a selector
        selector("nope()"),
        selector("random()"),  # another precompile's function
        call_data("delegate(address,uint256)", OWNER.address, CMT)[:-1],  # one byte short
        call_data("delegate(address,uint256)", OWNER.address, CMT) + b"\x00",  # one byte more
        selector("delegate(address,uint256)")
        + b"\x01"
        + bytes(11)
        + OWNER.address
        + CMT.to_bytes(32, "big"),  # dirty address word
        selector("withdraw(address,uint256,bool)")
        + bytes(12)
        + OWNER.address
        + CMT.to_bytes(32, "big")
        + (2).to_bytes(32, "big"),  # a bool of 2
    ],
    ids=["empty", "short", "unknown", "other", "truncated", "trailing", "dirty", "bool2"],
)
def test_bad_calldata_fails_with_all_gas_like_every_precompile(node: Node, data: bytes) -> None:
    state = node.evm_state()
    outcome = call_precompile(node.chain.profile, STAKING_ADDRESS, data, state=state)
    assert not outcome.success and outcome.returndata == b""
    assert outcome.gas == CHILD_GAS
    assert isinstance(outcome.child.error, pc.PrecompileInputError)


# -- who stakes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", [CALL, DELEGATECALL], ids=["call", "delegatecall"])
def test_the_staker_is_the_calling_contract(node: Node, op: int) -> None:
    """Under DELEGATECALL the code runs as TARGET, not as its caller ORIGIN: TARGET stakes.
    (msg.sender there would be ORIGIN, whose balance any contract it calls could then stake.)"""
    state = node.evm_state()
    state.set_balance(TARGET, 10 * CMT)
    state.set_balance(ORIGIN, 10 * CMT)
    data = call_data("delegate(address,uint256)", OWNER.address, CMT)
    outcome = call_precompile(node.chain.profile, STAKING_ADDRESS, data, op=op, state=state)
    assert outcome.success, outcome.child.error
    assert keeper.delegation(state, OWNER.address, TARGET) is not None
    assert keeper.delegation(state, OWNER.address, ORIGIN) is None
    assert (state.get_balance(TARGET), state.get_balance(ORIGIN)) == (9 * CMT, 10 * CMT)
