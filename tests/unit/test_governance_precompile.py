"""The governance precompile (cybermiles_node/governance/precompile.py) through real blocks.

A chain built as the node builds it (`node.chain_modules()`, `node.chain_profile(genesis)`)
runs the Solidity contract `contracts/src/GovernanceUser.sol` (artifacts in contracts/build/:
prague for `cvm`, byzantium for `lity`), deployed by a signed transaction. To take part in
governance the contract must own a validator: the genesis makes its address (known before it
is deployed: USER's first contract) the owner of the one validator (staking caps each
validator's voting power, so with a second one every decision would need both), so the
contract's vote alone decides. A second deployment owns nothing: the non-validator.
Governance state is read back with the keeper and through the contract's views with
eth_call's code path; gas and failure modes off the precompile's own computation with the
caller helper of test_cvm_precompiles.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth.exceptions import WriteProtection
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_hash.auto import keccak
from eth_utils import function_signature_to_4byte_selector as selector
from eth_utils import to_checksum_address

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.governance import keeper, versions
from cybermiles_node.governance import precompile as gp
from cybermiles_node.governance.records import Result
from cybermiles_node.node import chain_modules, chain_profile
from cybermiles_node.params import read_params
from cybermiles_node.staking import keeper as staking_keeper
from cybermiles_node.staking.awards import block_award
from cybermiles_node.staking.query import members_voting_power
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import GOVERNANCE_ADDRESS, HOLD_ADDRESS, STAKING_ADDRESS
from evm import precompiles as pc
from evm.call import CallRequest, CallResult, decode_revert_reason, run_call
from evm.db import MemoryDB
from evm.executor import contract_address_of, execution_context
from evm.profiles import get_profile
from genesis import AllocAccount, Genesis, dev_accounts, devnet_genesis
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
OWNER, USER = dev_accounts(2)  # OWNER: an account that owns nothing; USER deploys and sends
MEMBER = keccak(rlp.encode([USER.address, 0]))[12:]  # USER's first contract: owns validator 1
OUTSIDER = keccak(rlp.encode([USER.address, 1]))[12:]  # its second: owns nothing
BUILD = Path(__file__).resolve().parents[2] / "contracts" / "build"
ARTIFACTS = {"cvm": "GovernanceUser.json", "lity": "GovernanceUser.lity.json"}
PROFILES = pytest.mark.parametrize("profile", ["cvm", "lity"])
PROPOSED_TOPIC = int.from_bytes(keccak(b"governance/proposed"), "big")
FEE_TOPIC = int.from_bytes(keccak(b"governance/fee_paid"), "big")
VOTED_TOPIC = int.from_bytes(keccak(b"governance/voted"), "big")
DESCRIBE = ["bool", "string", "address", "uint8"]


def genesis_for(profile: ProfileName) -> Genesis:
    base = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=T0)
    (first,) = base.validators
    member = replace(first, owner=MEMBER)
    alloc = tuple(sorted((*base.alloc, (MEMBER, AllocAccount(balance=10 * member.shares * CMT)))))
    return replace(base, evm_profile=profile, validators=(member,), alloc=alloc)


def artifact(profile: str) -> dict[str, Any]:
    with (BUILD / ARTIFACTS[profile]).open() as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def call_data(signature: str, *args: Any) -> bytes:
    types = signature[signature.index("(") + 1 : -1].split(",") if args else []
    return selector(signature) + abi_encode(types, list(args))


def retire_data(preserved: bytes, reason: bytes, height: int) -> bytes:
    """proposeRetireProgram's calldata with raw string bytes (a string encodes as bytes)."""
    return selector("proposeRetireProgram(string,string,uint256)") + abi_encode(
        ["bytes", "bytes", "uint256"], [preserved, reason, height]
    )


def derived_id(tx_hash: bytes, caller: bytes, n: int) -> bytes:
    return keccak(tx_hash + caller + n.to_bytes(32, "big"))


class Node:
    """One chain as the node wires it, GovernanceUser deployed at MEMBER (a validator owner)
    and at OUTSIDER (not one), USER sending."""

    def __init__(self, profile: ProfileName) -> None:
        self.genesis = genesis_for(profile)
        self.chain = Chain(
            MemoryDB(), self.genesis, modules=chain_modules(), profile=chain_profile(self.genesis)
        )
        self.app = ChainApp(self.chain)
        self.time = T0 + 100
        self.nonce = 0
        code = bytes.fromhex(artifact(profile)["bytecode"][2:])
        for expected in (MEMBER, OUTSIDER):
            (deployed,) = self.mine(self.sign(None, code))
            assert deployed.state_root == b"\x01"
            last = self.chain.transactions(self.chain.head_number)[0]
            assert contract_address_of(last) == expected
        self.last_hash = b""
        self.proposed: Any = None  # the fixture's proposal receipt, and its transaction's hash
        self.proposal_hash = b""

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

    def transact(self, signature: str, *args: Any, to: bytes = MEMBER) -> Any:
        """Call a contract in a block; its receipt (the tx hash in `last_hash`)."""
        (receipt,) = self.mine(self.sign(to, call_data(signature, *args)))
        self.last_hash = bytes(self.chain.transactions(self.chain.head_number)[0].hash)
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
        result = self.eth_call(MEMBER, call_data(signature, *args))
        assert result.success, result
        return tuple(abi_decode(output, result.output))

    def last_id(self) -> bytes:
        (value,) = self.view("lastId()", ["bytes32"])
        return bytes(value)

    def governance_state(self) -> tuple[Any, ...]:
        """Everything a proposal by the contract could change."""
        state = self.app.query()
        return (
            keeper.proposals(state),
            keeper.escrow(state),
            state.get_balance(MEMBER),
            read_params(state),
        )

    def evm_state(self) -> Any:
        head = self.chain.head
        state = self.chain.profile.state_class(
            self.chain.db, execution_context(self.chain.env_of(head)), head.state_root
        )
        state.begin_transaction()
        return state


@pytest.fixture(scope="module", params=["cvm", "lity"])
def node(request: pytest.FixtureRequest) -> Node:
    """A node after one change_param proposal by the contract, shared by read-only tests."""
    made = Node(request.param)
    made.proposed = made.transact("proposeChangeParam(string,string)", "max_vals", "7")
    made.proposal_hash = made.last_hash
    return made


# -- wiring ----------------------------------------------------------------------------------------
@PROFILES
def test_the_node_profile_has_both_module_precompiles(profile: ProfileName) -> None:
    genesis = genesis_for(profile)
    wired = chain_profile(genesis)
    assert wired.injected_precompile_addresses == {STAKING_ADDRESS, GOVERNANCE_ADDRESS}
    assert GOVERNANCE_ADDRESS not in get_profile(profile).precompile_addresses
    assert chain_profile(genesis) == wired  # one class, however often the root builds it
    plain = Chain(MemoryDB(), genesis, modules=chain_modules())
    assert Chain(MemoryDB(), genesis, profile=wired).genesis_header == plain.genesis_header


def test_the_genesis_makes_the_contract_the_electorate() -> None:
    members = members_voting_power(Node("cvm").app.query())
    assert set(members) == {MEMBER} and members[MEMBER] > 0


# -- proposing -------------------------------------------------------------------------------------
def test_a_contract_proposes_and_gets_the_derived_id(node: Node) -> None:
    proposal_id = node.last_id()
    assert proposal_id == derived_id(node.proposal_hash, MEMBER, 0)
    record = keeper.proposal(node.app.query(), proposal_id)
    assert record is not None and record.result is Result.OPEN
    assert (record.proposer, record.type_name, record.seq) == (MEMBER, "change_param", 1)
    assert (record.msg.name, record.msg.value, record.msg.reason) == (  # type: ignore[union-attr]
        "max_vals", "7", "from a contract",
    )  # fmt: skip
    params = node.genesis.params
    assert record.expire_block_height == record.block_height + params.proposal_expire_period


def test_the_proposal_is_logged_by_the_governance_address(node: Node) -> None:
    logs = node.proposed.logs
    assert {log.address for log in logs} == {GOVERNANCE_ADDRESS}
    assert [log.topics for log in logs] == [(FEE_TOPIC,), (PROPOSED_TOPIC,)]
    fee, proposed = (json.loads(log.data) for log in logs)
    params = node.genesis.params
    assert int(fee["amount"]) == params.change_params_proposal_gas * params.gas_price
    assert fee["account"] == proposed["account"] == "0x" + MEMBER.hex()
    assert proposed["proposal_id"] in ("0x" + node.last_id().hex(), node.last_id().hex())


@PROFILES
def test_every_kind_of_proposal_from_a_contract(profile: ProfileName) -> None:
    node = Node(profile)
    height = node.chain.head_number
    hold = node.app.query().get_balance(HOLD_ADDRESS)
    calls = [
        ("proposeTransferFund(address,address,uint256,uint256)",
         (MEMBER, OWNER.address, 5 * CMT, height + 50), "transfer_fund"),
        ("proposeChangeParam(string,string)", ("max_vals", "9"), "change_param"),
        ("proposeDeployLibEni(string,string,uint256)", ("reverse", "v2.0.0", height + 50),
         "deploy_libeni"),
        ("proposeRetireProgram(uint256)", (height + 60,), "retire_program"),
        ("proposeUpgradeProgram(string,string,uint256)",
         (versions.PROGRAM_NAME, "v9.0.0", height + 70), "upgrade_program"),
    ]  # fmt: skip
    ids = []
    for signature, args, kind in calls:
        receipt = node.transact(signature, *args)
        assert receipt.state_root == b"\x01", kind
        ids.append(node.last_id())
        record = keeper.proposal(node.app.query(), ids[-1])
        assert record is not None and (record.type_name, record.proposer) == (kind, MEMBER)
        assert ids[-1] == derived_id(node.last_hash, MEMBER, 0)
    state = node.app.query()
    assert [p.id for p in keeper.proposals(state)] == ids
    assert keeper.escrow(state) == 5 * CMT  # transfer_fund escrowed the contract's own CMT
    assert node.view("count()", ["uint256"]) == (5,)
    assert [node.view("idAt(uint256)", ["bytes32"], seq)[0] for seq in range(1, 6)] == ids
    assert node.view("idAt(uint256)", ["bytes32"], 6) == (bytes(32),)
    assert node.view("idAt(uint256)", ["bytes32"], 0) == (bytes(32),)
    assert state.get_balance(HOLD_ADDRESS) > hold  # fees and the escrow reached Hold


@PROFILES
def test_two_proposals_in_one_transaction_get_distinct_ids(profile: ProfileName) -> None:
    node = Node(profile)
    receipt = node.transact("proposeTwice(string,string,string)", "max_vals", "7", "8")
    assert receipt.state_root == b"\x01"
    first = bytes(node.view("lastId()", ["bytes32"])[0])
    second = bytes(node.view("secondId()", ["bytes32"])[0])
    assert (first, second) == (
        derived_id(node.last_hash, MEMBER, 0), derived_id(node.last_hash, MEMBER, 1),
    )  # fmt: skip
    values = [p.msg.value for p in keeper.proposals(node.app.query())]  # type: ignore[union-attr]
    assert values == ["7", "8"]


# -- voting ----------------------------------------------------------------------------------------
@PROFILES
def test_the_contracts_vote_decides_and_the_param_changes(profile: ProfileName) -> None:
    node = Node(profile)
    node.transact("proposeChangeParam(string,string)", "max_vals", "7")
    proposal_id = node.last_id()
    assert node.view("myVote(bytes32)", ["bool", "bool"], proposal_id) == (False, False)
    receipt = node.transact("vote(bytes32,bool)", proposal_id, True)
    assert receipt.state_root == b"\x01"
    assert receipt.logs[0].topics == (VOTED_TOPIC,)
    state = node.app.query()
    record = keeper.proposal(state, proposal_id)
    assert record is not None and record.result is Result.APPROVED
    assert read_params(state).max_vals == 7
    assert node.view("myVote(bytes32)", ["bool", "bool"], proposal_id) == (True, True)
    assert node.view("describe(bytes32)", DESCRIBE, proposal_id) == (
        True, "change_param", "0x" + MEMBER.hex(), gp.RESULT_CODES[Result.APPROVED],
    )  # fmt: skip
    # Decided: a second vote is the module's refusal, as the revert reason.
    result = node.eth_call(MEMBER, call_data("vote(bytes32,bool)", proposal_id, False))
    assert result.reverted
    assert "is decided (Approved)" in (decode_revert_reason(result.output) or "")


@PROFILES
def test_a_no_vote_rejects_and_refunds_a_transfer(profile: ProfileName) -> None:
    node = Node(profile)
    before = node.app.query().get_balance(MEMBER)
    node.transact("proposeTransferFund(address,address,uint256,uint256)",
                  MEMBER, OWNER.address, 5 * CMT, 0)  # fmt: skip
    proposal_id = node.last_id()
    node.transact("vote(bytes32,bool)", proposal_id, False)
    state = node.app.query()
    record = keeper.proposal(state, proposal_id)
    assert record is not None and record.result is Result.REJECTED
    assert keeper.escrow(state) == 0
    params = node.genesis.params
    assert (
        state.get_balance(MEMBER) == before - params.transfer_fund_proposal_gas * params.gas_price
    )


# -- a reverting caller undoes it ------------------------------------------------------------------
@PROFILES
def test_a_reverting_caller_leaves_nothing(profile: ProfileName) -> None:
    node = Node(profile)
    before = node.governance_state()
    receipt = node.transact("proposeInRevertedCall()")
    assert receipt.state_root == b"\x01" and receipt.logs == ()
    assert node.view("attempts()", ["uint256"]) == (1,)  # the outer call's own write stayed
    assert node.governance_state() == before
    receipt = node.transact("proposeThenRevert()")
    assert receipt.state_root == b""
    assert node.governance_state() == before
    reverted = node.eth_call(MEMBER, call_data("proposeThenRevert()"))
    assert decode_revert_reason(reverted.output) == "GovernanceUser: reverted after proposing"


# -- refusals --------------------------------------------------------------------------------------
def test_a_non_validator_contract_is_refused_with_the_reason(node: Node) -> None:
    proposal_id = node.last_id()
    cases = [
        call_data("proposeChangeParam(string,string)", "max_vals", "7"),
        call_data("vote(bytes32,bool)", proposal_id, True),
    ]
    for data in cases:
        result = node.eth_call(OUTSIDER, data)
        assert result.reverted
        reason = decode_revert_reason(result.output) or ""
        assert f"0x{OUTSIDER.hex()} owns no current validator or backup validator" in reason
    # An account calling directly is the actor itself: USER owns nothing either.
    direct = node.eth_call(GOVERNANCE_ADDRESS, call_data("vote(bytes32,bool)", proposal_id, True))
    assert direct.reverted and direct.gas_used < 100_000
    assert f"0x{USER.address.hex()} owns no" in (decode_revert_reason(direct.output) or "")
    before = node.governance_state()
    receipt = node.transact("proposeChangeParam(string,string)", "max_vals", "7", to=OUTSIDER)
    assert receipt.state_root == b"" and receipt.logs == ()
    assert node.governance_state() == before


def test_malformed_arguments_revert_with_the_parsers_reason(node: Node) -> None:
    cases = [
        ("proposeTransferFund(address,address,uint256,uint256)",
         (MEMBER, OWNER.address, 0, 0), "data.amount: must be greater than 0"),
        ("proposeDeployLibEni(string,string,uint256)", ("reverse", "2.0", 0),
         "is not a version vX.Y.Z"),
        ("proposeChangeParam(string,string)", ("no_such_param", "1"), "no_such_param"),
        ("proposeUpgradeProgram(string,string,uint256)", ("other", "v9.0.0", 0),
         "this chain runs"),
    ]  # fmt: skip
    for signature, args, reason in cases:
        result = node.eth_call(MEMBER, call_data(signature, *args))
        assert result.reverted, signature
        assert reason in (decode_revert_reason(result.output) or ""), signature
    expiry = call_data(
        "proposeChangeParam(string,string,string,uint256,uint256)", "max_vals", "7", "", 0, 2**63
    )
    result = node.eth_call(GOVERNANCE_ADDRESS, expiry)
    assert result.reverted and "between 0 and" in (decode_revert_reason(result.output) or "")


def test_value_sent_with_a_call_is_refused(node: Node) -> None:
    for data in (
        call_data("vote(bytes32,bool)", node.last_id(), True),
        call_data("proposalCount()"),
    ):
        result = node.eth_call(GOVERNANCE_ADDRESS, data, value=CMT)
        assert result.reverted
        assert (decode_revert_reason(result.output) or "").startswith("governance: send no value")


# -- views -----------------------------------------------------------------------------------------
def test_views_directly_match_the_records(node: Node) -> None:
    proposal_id = node.last_id()
    record = keeper.proposal(node.app.query(), proposal_id)
    result = node.eth_call(GOVERNANCE_ADDRESS, call_data("proposal(bytes32)", proposal_id))
    got = abi_decode(gp.PROPOSAL_OUTPUT, result.output)
    assert got == gp.proposal_values(record)
    assert got[2] == "change_param" and json.loads(got[7])["name"] == "max_vals"
    result = node.eth_call(GOVERNANCE_ADDRESS, call_data("proposalOutcome(bytes32)", proposal_id))
    assert abi_decode(gp.OUTCOME_OUTPUT, result.output) == (0, 0, "", False)
    missing = node.eth_call(GOVERNANCE_ADDRESS, call_data("proposal(bytes32)", b"\x07" * 32))
    assert missing.success  # exists false, all zero
    assert missing.output == abi_encode(gp.PROPOSAL_OUTPUT, gp.proposal_values(None))
    assert node.view("describe(bytes32)", DESCRIBE, b"\x07" * 32) == (
        False, "", "0x" + "00" * 20, 0,
    )  # fmt: skip
    assert node.view("count()", ["uint256"]) == (1,)
    vote = node.eth_call(
        GOVERNANCE_ADDRESS, call_data("voteOf(bytes32,address)", proposal_id, OWNER.address)
    )
    assert abi_decode(["bool", "bool"], vote.output) == (False, False)


def test_eth_call_of_a_proposal_returns_an_id_with_no_transaction_hash(node: Node) -> None:
    result = node.eth_call(MEMBER, call_data("proposeChangeParam(string,string)", "max_vals", "8"))
    assert result.success
    assert abi_decode(["bytes32"], result.output) == (derived_id(bytes(32), MEMBER, 0),)


def test_another_chain_validates_the_blocks(node: Node) -> None:
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


# -- the precompile's own computation --------------------------------------------------------------
def test_the_prices_are_the_documented_ones() -> None:
    assert (gp.GAS_PROPOSE, gp.GAS_PROPOSE_PER_WORD) == (50_000, 2_000)
    assert (gp.GAS_VOTE, gp.GAS_VIEW) == (20_000, 5_000)


@pytest.mark.parametrize(
    ("data", "gas"),
    [
        (call_data("proposalCount()"), gp.GAS_VIEW),
        (call_data("proposal(bytes32)", b"\x01" * 32), gp.GAS_VIEW),
        (call_data("proposalOutcome(bytes32)", b"\x01" * 32), gp.GAS_VIEW),
        (call_data("proposalId(uint256)", 1), gp.GAS_VIEW),
        (call_data("voteOf(bytes32,address)", b"\x01" * 32, TARGET), gp.GAS_VIEW),
    ],
    ids=["count", "proposal", "outcome", "id", "voteOf"],
)
def test_each_view_charges_its_fixed_gas(node: Node, data: bytes, gas: int) -> None:
    outcome = call_precompile(node.chain.profile, GOVERNANCE_ADDRESS, data, state=node.evm_state())
    assert outcome.success, outcome.child.error
    assert outcome.gas == gas


def test_writes_charge_their_gas_before_the_rules_refuse(node: Node) -> None:
    """TARGET owns no validator: the rules refuse, after the fixed and per-word gas was spent
    (a revert returns the rest)."""
    for data, gas in [
        (call_data("vote(bytes32,bool)", b"\x01" * 32, True), gp.GAS_VOTE),
        (
            retire_data(b"", b"why", 0),
            gp.GAS_PROPOSE + gp.GAS_PROPOSE_PER_WORD * 6,  # 3 heads, 2 lengths, 1 word of text
        ),
    ]:
        state = node.evm_state()
        outcome = call_precompile(node.chain.profile, GOVERNANCE_ADDRESS, data, state=state)
        assert not outcome.success and outcome.gas == gas
        assert "owns no current validator" in (decode_revert_reason(outcome.returndata) or "")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        selector("nope()"),
        selector("delegate(address,uint256)"),  # the staking precompile's function
        call_data("vote(bytes32,bool)", b"\x01" * 32, True)[:-1],
        call_data("vote(bytes32,bool)", b"\x01" * 32, True) + b"\x00",
        selector("vote(bytes32,bool)") + bytes(32) + (2).to_bytes(32, "big"),  # a bool of 2
        retire_data(b"\xff", b"", 0),  # not UTF-8
    ],
    ids=["empty", "unknown", "other", "truncated", "trailing", "bool2", "utf8"],
)
def test_bad_calldata_fails_with_all_gas_like_every_precompile(node: Node, data: bytes) -> None:
    outcome = call_precompile(node.chain.profile, GOVERNANCE_ADDRESS, data, state=node.evm_state())
    assert not outcome.success and outcome.returndata == b""
    assert outcome.gas == CHILD_GAS
    assert isinstance(outcome.child.error, pc.PrecompileInputError)


def test_staticcall_of_a_write_is_write_protection_and_views_work(node: Node) -> None:
    data = call_data("vote(bytes32,bool)", node.last_id(), True)
    outcome = call_precompile(
        node.chain.profile, GOVERNANCE_ADDRESS, data, op=STATICCALL, state=node.evm_state()
    )
    assert not outcome.success and outcome.gas == CHILD_GAS
    assert isinstance(outcome.child.error, WriteProtection)
    view = call_data("proposalCount()")
    outcome = call_precompile(
        node.chain.profile, GOVERNANCE_ADDRESS, view, op=STATICCALL, state=node.evm_state()
    )
    assert outcome.success and abi_decode(["uint256"], outcome.returndata) == (1,)


@pytest.mark.parametrize("op", [CALL, DELEGATECALL], ids=["call", "delegatecall"])
def test_the_actor_is_the_calling_contract(node: Node, op: int) -> None:
    """Under DELEGATECALL the code runs as TARGET, not as its caller ORIGIN: TARGET acts."""
    data = call_data("vote(bytes32,bool)", node.last_id(), True)
    outcome = call_precompile(
        node.chain.profile, GOVERNANCE_ADDRESS, data, op=op, state=node.evm_state()
    )
    reason = decode_revert_reason(outcome.returndata) or ""
    assert f"0x{bytes(TARGET).hex()} owns no" in reason
    assert ORIGIN.hex() not in reason


@PROFILES
def test_a_contract_s_proposal_fee_joins_the_block_award_pool(profile: ProfileName) -> None:
    """The fee is paid into Hold inside the call, where the executor does not see it: the
    ledger's record brings it to the award step, which shares it out with the block's."""
    node = Node(profile)
    receipt = node.transact("proposeChangeParam(string,string)", "max_vals", "9")
    assert receipt.state_root == b"\x01"
    state = node.app.query()
    params = node.genesis.params
    evm_fee = receipt.gas_used * params.gas_price
    proposal_fee = params.change_params_proposal_gas * params.gas_price
    paid = sum(amount for _, _, amount in staking_keeper.award_infos(state))
    assert paid == block_award(params) + evm_fee + proposal_fee
    assert ledger.POOL_FEES.get(state) == 0  # taken by the award step


@PROFILES
def test_a_reverted_proposal_leaves_no_fee_for_the_pool(profile: ProfileName) -> None:
    node = Node(profile)
    receipt = node.transact("proposeInRevertedCall()")
    state = node.app.query()
    params = node.genesis.params
    paid = sum(amount for _, _, amount in staking_keeper.award_infos(state))
    assert paid == block_award(params) + receipt.gas_used * params.gas_price
