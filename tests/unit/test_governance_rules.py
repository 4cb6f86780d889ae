"""Governance (SPEC §5, §7): per message and per decision path, (state, message) → (proposal,
balances, parameters, versions, outcome) or (error class, code), with the same guard at
admission (`check_tx`) and in the block (`deliver_tx`); a refusal changes nothing.

States start from a devnet genesis with three validators owned by dev accounts 0-2, 10,000 CMT
self-staked each (equal voting power: two "Y" of three approve, 3·yes ≥ 2·total), through the
node's own modules (`node.chain_modules()`), so governance reads staking's electorate as a node
does. Every successful step also checks escrow conservation: Σ balances of the accounts involved
+ what Hold owes for escrow is constant, and Hold's escrow part equals `keeper.escrow`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node.application.chain import Chain
from cybermiles_node.governance import keeper, versions
from cybermiles_node.governance.errors import (
    GovernanceRejected,
    GovernanceRuleViolation,
    InsufficientGovernanceFunds,
    MalformedGovernanceTx,
    NotAValidator,
    UnknownProposal,
)
from cybermiles_node.governance.module import GovernanceModule
from cybermiles_node.governance.records import Result
from cybermiles_node.governance.tally import tally
from cybermiles_node.modules import BlockOutcome, SystemTxMessage
from cybermiles_node.node import chain_modules
from cybermiles_node.params import read_params
from cybermiles_node.staking.query import members_voting_power
from cybermiles_node.system.addresses import HOLD_ADDRESS
from cybermiles_node.system.context import BlockContext
from evm.db import MemoryDB
from evm.state import StateDB
from evm.system import SystemTxResult
from genesis import dev_accounts, devnet_genesis

CMT = 10**18
T0 = 1_700_000_000
ACCOUNTS = [a.address for a in dev_accounts(10)]
V0, V1, V2 = ACCOUNTS[:3]  # owners of the three genesis validators
OUTSIDER, FROM, TO = ACCOUNTS[5], ACCOUNTS[6], ACCOUNTS[7]
GENESIS = devnet_genesis(
    validator_pub_keys=[bytes([i + 1]) * 32 for i in range(3)], genesis_time=T0
)
PARAMS = GENESIS.params
FEE = PARAMS.transfer_fund_proposal_gas * PARAMS.gas_price
RELEASE = {"file_url": '{"linux": "https://example.invalid/x"}', "md5": '{"linux": "00"}'}


class Gov:
    """One chain's state, driven block by block through the governance module."""

    def __init__(self) -> None:
        chain = Chain(MemoryDB(), GENESIS, modules=chain_modules())
        self.state: StateDB = chain.state_at()
        self.module = GovernanceModule(members_voting_power)
        self.height = 1
        self.time = T0 + 10
        self.counter = itertools.count(1)
        self.accounts = sorted({*ACCOUNTS, HOLD_ADDRESS})
        self.total = self.balances_plus_nothing()

    # -- driving ---------------------------------------------------------------------------------
    def msg(self, sender: bytes, kind: str, data: Mapping[str, object]) -> SystemTxMessage:
        tx_hash = hashlib.sha256(f"tx-{next(self.counter)}".encode()).digest()
        return SystemTxMessage(sender, 0, tx_hash, kind, data)

    def send(self, sender: bytes, kind: str, data: Mapping[str, object]) -> SystemTxMessage:
        msg = self.msg(sender, kind, data)
        self.module.check_tx(msg, self.state, self.height, self.time)
        result: SystemTxResult = self.module.deliver_tx(msg, self.state, self.height, self.time)
        assert result.success and result.logs
        self.check_conservation()
        return msg

    def refused(
        self, sender: bytes, kind: str, data: Mapping[str, object], error: type[Exception]
    ) -> Exception:
        """Refused at admission and in the block alike, with nothing changed."""
        msg = self.msg(sender, kind, data)
        before = self.snapshot()
        with pytest.raises(error) as at_admission:
            self.module.check_tx(msg, self.state, self.height, self.time)
        with pytest.raises(error):
            self.module.deliver_tx(msg, self.state, self.height, self.time)
        assert self.snapshot() == before
        return at_admission.value

    def propose_transfer(self, amount: int = 100 * CMT, **extra: object) -> bytes:
        data = {"transfer_from": _hex(FROM), "transfer_to": _hex(TO), "amount": str(amount)}
        return self.send(V0, "governance/propose/transfer_fund", {**data, **extra}).tx_hash

    def vote(self, voter: bytes, proposal_id: bytes, answer: str) -> None:
        data = {"proposal_id": base64.b64encode(proposal_id).decode(), "answer": answer}
        self.send(voter, "governance/vote", data)

    def block(self, height: int, time: int | None = None) -> BlockOutcome:
        """Move to block `height` and run its begin_block and end_block."""
        self.height = height
        self.time = T0 + 10 * height if time is None else time
        ctx = BlockContext(height, self.time, bytes(20), bytes(32), b"", read_params(self.state))
        self.module.begin_block(ctx, self.state)
        outcome = self.module.end_block(ctx, self.state, 0)
        self.check_conservation()
        return outcome

    # -- reading ---------------------------------------------------------------------------------
    def balance(self, address: bytes) -> int:
        return self.state.get_balance(address)

    def result(self, proposal_id: bytes) -> Result:
        record = keeper.proposal(self.state, proposal_id)
        assert record is not None
        return record.result

    def balances_plus_nothing(self) -> int:
        return sum(self.balance(a) for a in self.accounts)

    def check_conservation(self) -> None:
        # CMT only moves between these accounts (fees and escrow go to Hold).
        assert self.balances_plus_nothing() == self.total
        open_escrow = sum(
            p.msg.amount  # type: ignore[union-attr]
            for p in keeper.open_proposals(self.state)
            if p.kind == "governance/propose/transfer_fund"
        )
        assert keeper.escrow(self.state) == open_escrow

    def snapshot(self) -> tuple[object, ...]:
        return (
            tuple(self.balance(a) for a in self.accounts),
            keeper.proposals(self.state),
            keeper.escrow(self.state),
            read_params(self.state),
            dict(versions.enabled_eni_versions(self.state)),
        )


def _hex(address: bytes) -> str:
    return "0x" + address.hex()


# -- transfer_fund: every path --------------------------------------------------------------------
def test_transfer_fund_escrows_at_once_and_pays_when_approved() -> None:
    gov = Gov()
    start = {a: gov.balance(a) for a in (V0, FROM, TO, HOLD_ADDRESS)}
    pid = gov.propose_transfer()
    assert gov.balance(FROM) == start[FROM] - 100 * CMT  # no consent of transfer_from needed
    assert gov.balance(V0) == start[V0] - FEE
    assert gov.balance(HOLD_ADDRESS) == start[HOLD_ADDRESS] + 100 * CMT + FEE
    assert keeper.escrow(gov.state) == 100 * CMT and gov.result(pid) is Result.OPEN
    gov.vote(V0, pid, "Y")
    assert gov.result(pid) is Result.OPEN  # 1 of 3
    gov.vote(V1, pid, "Y")
    assert gov.result(pid) is Result.APPROVED  # 3·2 ≥ 2·3
    assert gov.balance(TO) == start[TO] + 100 * CMT
    assert gov.balance(HOLD_ADDRESS) == start[HOLD_ADDRESS] + FEE and keeper.escrow(gov.state) == 0


def test_transfer_fund_rejected_is_refunded() -> None:
    gov = Gov()
    before = gov.balance(FROM)
    pid = gov.propose_transfer()
    gov.vote(V1, pid, "N")
    gov.vote(V2, pid, "N")
    assert gov.result(pid) is Result.REJECTED and gov.balance(FROM) == before


@pytest.mark.parametrize("by", ["height", "timestamp"])
def test_transfer_fund_expired_is_tallied_once_more_then_refunded(by: str) -> None:
    gov = Gov()
    before = gov.balance(FROM)
    expiry = {"expire_block_height": 10} if by == "height" else {"expire_timestamp": T0 + 100}
    pid = gov.propose_transfer(**expiry)
    gov.vote(V0, pid, "Y")
    gov.block(9, time=T0 + 90)
    assert gov.result(pid) is Result.OPEN
    gov.block(10, time=T0 + 100)
    record = keeper.proposal(gov.state, pid)
    assert record is not None and record.result is Result.EXPIRED
    assert record.result_block_height == 10 and gov.balance(FROM) == before


def test_the_electorate_is_read_only_for_a_block_that_settles_a_proposal() -> None:
    gov = Gov()
    reads: list[int] = []

    def counting(storage: StateDB) -> Mapping[bytes, int]:
        reads.append(gov.height)
        return members_voting_power(storage)

    gov.module = GovernanceModule(counting)
    gov.block(2)  # no proposals: nothing to tally
    pid = gov.propose_transfer(expire_block_height=5)
    reads.clear()
    gov.block(3)
    gov.block(4)
    assert reads == []  # open, not due: only the vote path reads the electorate
    gov.block(5)
    assert reads == [5] and gov.result(pid) is Result.EXPIRED


def test_votes_count_until_three_blocks_before_expiry() -> None:
    gov = Gov()
    pid = gov.propose_transfer(expire_block_height=10)
    gov.vote(V0, pid, "Y")
    gov.height = 7  # the last height votes are taken at (expire - 2 = 8 is refused)
    gov.vote(V1, pid, "Y")
    assert gov.result(pid) is Result.APPROVED


# -- change_param ---------------------------------------------------------------------------------
def test_an_approved_param_change_is_in_force_for_the_next_transaction() -> None:
    gov = Gov()
    data = {"name": "gas_price", "value": "5000000000", "reason": "spam"}
    pid = gov.send(V0, "governance/propose/change_param", data).tx_hash
    gov.vote(V0, pid, "Y")
    assert read_params(gov.state).gas_price == PARAMS.gas_price
    gov.vote(V1, pid, "Y")
    assert read_params(gov.state).gas_price == 5_000_000_000
    # The next proposal already pays the new price.
    before = gov.balance(V2)
    gov.send(V2, "governance/propose/change_param", {"name": "max_vals", "value": "7"})
    assert gov.balance(V2) == before - PARAMS.change_params_proposal_gas * 5_000_000_000


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("no_such_param", "1", "no_such_param"),
        ("gas_price", "cheap", "gas_price"),
        ("gas_price", "-1", "gas_price"),
        ("foundation_address", "0x" + "11" * 20, "cannot be changed by governance"),
        ("validator_size_threshold", "2/0", "validator_size_threshold"),
    ],
)
def test_bad_param_changes_are_refused(name: str, value: str, says: str) -> None:
    error = Gov().refused(
        V0, "governance/propose/change_param", {"name": name, "value": value},
        GovernanceRuleViolation,
    )  # fmt: skip
    assert says in str(error)


# -- who, when ------------------------------------------------------------------------------------
def test_non_validators_may_neither_propose_nor_vote() -> None:
    gov = Gov()
    data = {"transfer_from": _hex(FROM), "transfer_to": _hex(TO), "amount": "1"}
    error = gov.refused(OUTSIDER, "governance/propose/transfer_fund", data, NotAValidator)
    assert error.code == 3022 and error.check_tx_code == 21  # type: ignore[attr-defined]
    pid = gov.propose_transfer()
    vote = {"proposal_id": base64.b64encode(pid).decode(), "answer": "Y"}
    gov.refused(OUTSIDER, "governance/vote", vote, NotAValidator)


@pytest.mark.parametrize(
    ("expiry", "says"),
    [
        ({"expire_block_height": 20, "expire_timestamp": T0 + 999}, "not both"),
        ({"expire_block_height": 1}, "not after this block"),
        ({"expire_timestamp": T0 + 10}, "not after the block time"),
    ],
)
def test_bad_expiries_are_refused(expiry: dict[str, int], says: str) -> None:
    data = {"transfer_from": _hex(FROM), "transfer_to": _hex(TO), "amount": "1", **expiry}
    error = Gov().refused(V0, "governance/propose/transfer_fund", data, GovernanceRuleViolation)
    assert says in str(error)


def test_default_expiry_is_the_proposal_expire_period() -> None:
    gov = Gov()
    record = keeper.proposal(gov.state, gov.propose_transfer())
    assert record is not None
    assert record.expire_block_height == 1 + PARAMS.proposal_expire_period
    assert record.expire_timestamp == 0


def test_votes_replace_earlier_answers_and_close_two_blocks_before_expiry() -> None:
    gov = Gov()
    pid = gov.propose_transfer(expire_block_height=10)
    gov.vote(V0, pid, "N")
    gov.vote(V0, pid, "Y")
    assert keeper.votes(gov.state, pid) == {V0: True}
    gov.height = 8
    vote = {"proposal_id": base64.b64encode(pid).decode(), "answer": "Y"}
    error = gov.refused(V1, "governance/vote", vote, GovernanceRuleViolation)
    assert "closed at height 8" in str(error)


def test_votes_on_decided_or_unknown_proposals_are_refused() -> None:
    gov = Gov()
    pid = gov.propose_transfer()
    gov.vote(V1, pid, "N")
    gov.vote(V2, pid, "N")
    vote = {"proposal_id": base64.b64encode(pid).decode(), "answer": "Y"}
    assert "decided (Rejected)" in str(
        gov.refused(V0, "governance/vote", vote, GovernanceRuleViolation)
    )
    unknown = {"proposal_id": base64.b64encode(b"\x07" * 32).decode(), "answer": "Y"}
    error = gov.refused(V0, "governance/vote", unknown, UnknownProposal)
    assert error.code == 3005  # type: ignore[attr-defined]


def test_transfer_fund_needs_the_funds() -> None:
    gov = Gov()
    data = {
        "transfer_from": _hex(FROM),
        "transfer_to": _hex(TO),
        "amount": str(gov.balance(FROM) + 1),
    }
    gov.refused(V0, "governance/propose/transfer_fund", data, InsufficientGovernanceFunds)


DEPLOY = "governance/propose/deploy_libeni"
SOME_ID = base64.b64encode(b"1" * 32).decode()
NOT_OBJECTS = {"file_url": "[]", "md5": "{}"}


@pytest.mark.parametrize(
    ("kind", "data", "field"),
    [
        ("governance/propose/transfer_fund", {"transfer_from": "0x1", "transfer_to": "x"}, None),
        (DEPLOY, {"name": "1bad", "version": "v1.0.0", **RELEASE}, "name"),
        (DEPLOY, {"name": "reverse", "version": "1.0", **RELEASE}, "version"),
        (DEPLOY, {"name": "reverse", "version": "v1.0.0", **NOT_OBJECTS}, "file_url"),
        ("governance/vote", {"proposal_id": "not base64", "answer": "Y"}, "proposal_id"),
        ("governance/vote", {"proposal_id": SOME_ID, "answer": "yes"}, "answer"),
        ("governance/propose/nothing", {}, None),
    ],
)
def test_malformed_transactions_name_the_field(
    kind: str, data: dict[str, object], field: str | None
) -> None:
    error = Gov().refused(V0, kind, data, MalformedGovernanceTx)
    assert error.code == -32000  # type: ignore[attr-defined]
    if field is not None:
        assert f"data.{field}" in str(error)


# -- deploy_libeni, retire and upgrade ------------------------------------------------------------
def test_deploy_libeni_only_for_a_newer_version_this_node_carries() -> None:
    gov = Gov()
    kind = "governance/propose/deploy_libeni"
    not_carried = {"name": "reverse", "version": "v9.9.9", **RELEASE}
    assert "carries" in str(gov.refused(V0, kind, not_carried, GovernanceRuleViolation))
    unknown = {"name": "nosuchlib", "version": "v1.0.0", **RELEASE}
    assert "no ENI library" in str(gov.refused(V0, kind, unknown, GovernanceRuleViolation))
    current = versions.parse_version
    enabled = {"name": "reverse", "version": "v1.3.7", **RELEASE}
    assert current("v1.3.7") == (1, 3, 7)
    assert "not newer" in str(gov.refused(V0, kind, enabled, GovernanceRuleViolation))


@pytest.mark.parametrize("kind", ["upgrade", "retire"])
def test_an_approved_halt_stops_the_chain_after_its_height(kind: str) -> None:
    gov = Gov()
    if kind == "upgrade":
        data: dict[str, object] = {
            "name": "cybermiles", "version": "v9.0.0", "upgrade_block_height": 20, **RELEASE,
        }  # fmt: skip
        pid = gov.send(V0, "governance/propose/upgrade_program", data).tx_hash
        message = "upgrade needed: cybermiles v9.0.0"
    else:
        data = {"retired_block_height": 20, "reason": "sunset"}
        pid = gov.send(V0, "governance/propose/retire_program", data).tx_hash
        message = "program retired at height 20"
    gov.vote(V0, pid, "Y")
    gov.vote(V2, pid, "Y")
    assert gov.result(pid) is Result.APPROVED
    assert gov.block(19).halt is None and versions.program_requirement(gov.state) is None
    assert gov.block(20).halt == message
    requirement = versions.program_requirement(gov.state)
    assert requirement is not None and requirement.message == message
    assert requirement.height == 20
    assert requirement.satisfied_by("cybermiles", "v9.0.0") == (kind == "upgrade")
    assert not requirement.satisfied_by("cybermiles", "v8.9.9")
    assert gov.block(21).halt is None  # executed once


def test_upgrade_names_this_program() -> None:
    data = {"name": "other", "version": "v2.0.0", **RELEASE}
    error = Gov().refused(V0, "governance/propose/upgrade_program", data, GovernanceRuleViolation)
    assert "'cybermiles'" in str(error)


# -- the tally ------------------------------------------------------------------------------------
owners = st.lists(st.binary(min_size=20, max_size=20), min_size=1, max_size=6, unique=True)


@settings(max_examples=300, derandomize=True)
@given(data=st.data())
def test_tally_thresholds(data: st.DataObject) -> None:
    members = data.draw(owners)
    powers = {m: data.draw(st.integers(0, 10**6)) for m in members}
    voters = members + data.draw(owners)  # some voters are no longer members
    votes = {v: data.draw(st.booleans()) for v in data.draw(st.lists(st.sampled_from(voters)))}
    result = tally(votes, powers)
    total = sum(powers.values())
    yes = sum(p for m, p in powers.items() if votes.get(m) is True)
    no = sum(p for m, p in powers.items() if votes.get(m) is False)
    if total == 0:
        assert result is Result.OPEN
    elif 3 * yes >= 2 * total:
        assert result is Result.APPROVED
    elif 3 * no >= 2 * total:
        assert result is Result.REJECTED
    else:
        assert result is Result.OPEN
    # More "Y" never undoes an approval; yes and no cannot both reach the threshold.
    assert not (3 * yes >= 2 * total > 0 and 3 * no >= 2 * total)
    if result is Result.APPROVED:
        more = {**votes, **dict.fromkeys(members, True)}
        assert tally(more, powers) is Result.APPROVED


def test_governance_refusals_are_governance_rejections() -> None:
    for error in (GovernanceRuleViolation, NotAValidator, UnknownProposal):
        assert issubclass(error, GovernanceRejected)


def test_an_approved_deploy_enables_the_version_from_the_deploy_height_on() -> None:
    gov = Gov()
    data = {"name": "reverse", "version": "v2.0.0", "deploy_block_height": 10, **RELEASE}
    pid = gov.send(V0, DEPLOY, data).tx_hash
    again = {**data, "deploy_block_height": 12}
    assert "still undecided or undeployed" in str(
        gov.refused(V1, DEPLOY, again, GovernanceRuleViolation)
    )
    gov.vote(V0, pid, "Y")
    gov.vote(V1, pid, "Y")
    assert gov.result(pid) is Result.APPROVED
    assert "still undecided or undeployed" in str(
        gov.refused(V1, DEPLOY, again, GovernanceRuleViolation)
    )
    gov.block(8)
    assert versions.enabled_eni_versions(gov.state) == {}
    gov.block(9)  # its end writes the version: block 10 runs it (a block reads its parent's)
    assert versions.enabled_eni_versions(gov.state) == {"reverse": "v2.0.0"}
    record = keeper.proposal(gov.state, pid)
    assert record is not None and record.executed
    assert "not newer" in str(gov.refused(V1, DEPLOY, again, GovernanceRuleViolation))


def test_an_undecided_deploy_expires_at_the_block_before_its_height() -> None:
    gov = Gov()
    data = {"name": "reverse", "version": "v2.0.0", "deploy_block_height": 10, **RELEASE}
    pid = gov.send(V0, DEPLOY, data).tx_hash
    gov.vote(V0, pid, "Y")
    gov.block(9)
    assert gov.result(pid) is Result.EXPIRED
    assert versions.enabled_eni_versions(gov.state) == {}
