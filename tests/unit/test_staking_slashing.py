"""Absence and double-sign punishment (SPEC §6) through the chain: who missed
`max_slash_blocks` commits in a row is deactivated (and slashed when `slash_enabled`), a
double signer is slashed and deactivated whatever the switch says, slashed CMT is burned, and
the supply and Hold invariants hold after every block (`Net.check_invariants`).
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import floor

from cybermiles_node.staking import keeper
from cybermiles_node.staking.records import CandidateState
from cybermiles_node.system import ledger
from cybermiles_node.system.context import Misbehaviour
from tests.unit.test_staking_rewards import PARAMS, SIGNERS, V0, V1, V2, Net

EVERYONE = tuple(SIGNERS)
WITHOUT_V2 = (SIGNERS[0], SIGNERS[1])


def short_memory(**changes: object) -> Net:
    return Net(replace(PARAMS, max_slash_blocks=3, **changes))  # type: ignore[arg-type]


def test_a_validator_missing_too_many_commits_in_a_row_is_deactivated_not_slashed() -> None:
    net = short_memory()
    net.block()
    burned = ledger.read_supply(net.state).burned
    net.block(signers=WITHOUT_V2, validators=EVERYONE)
    net.block(signers=WITHOUT_V2, validators=EVERYONE)
    assert keeper.absences(net.state, V2) == 2
    net.block(signers=EVERYONE, validators=EVERYONE)  # signing again starts the count afresh
    assert keeper.absences(net.state, V2) == 0
    for _ in range(2):
        net.block(signers=WITHOUT_V2, validators=EVERYONE)
    record = keeper.candidate(net.state, V2)
    assert record is not None and record.active
    net.block(signers=WITHOUT_V2, validators=EVERYONE)  # the third miss in a row
    record = keeper.candidate(net.state, V2)
    assert record is not None and not record.active
    assert record.state is CandidateState.CANDIDATE  # this block's election took it out
    assert V2 not in keeper.consensus_set_owners(net.state)
    assert ledger.read_supply(net.state).burned == burned  # slashing is off by default
    own = keeper.delegation(net.state, V2, V2)
    assert own is not None and own.slash_amount == 0
    for _ in range(4):  # still in consensus for two blocks: not punished twice
        net.block(signers=WITHOUT_V2, validators=EVERYONE)
    assert keeper.absences(net.state, V2) == 0


def test_with_slashing_on_every_delegation_loses_the_ratio_and_it_is_burned() -> None:
    net = short_memory(slash_enabled=True, slash_ratio=Fraction(12, 1000))
    net.block()
    before = keeper.delegation(net.state, V1, V1)
    assert before is not None
    burned = ledger.read_supply(net.state).burned
    for _ in range(3):
        net.block(signers=(SIGNERS[0], SIGNERS[2]), validators=EVERYONE)
    after = keeper.delegation(net.state, V1, V1)
    record = keeper.candidate(net.state, V1)
    assert after is not None and record is not None and not record.active
    assert after.slash_amount > 0
    assert after.slash_amount == floor((after.shares + after.slash_amount) * Fraction(12, 1000))
    assert ledger.read_supply(net.state).burned - burned == after.slash_amount
    assert record.shares == after.shares


def test_a_double_signer_is_slashed_and_deactivated_even_with_slashing_off() -> None:
    net = Net()
    net.block()
    burned = ledger.read_supply(net.state).burned
    evidence = (Misbehaviour(SIGNERS[0], 1, 2),)
    net.block(signers=EVERYONE, validators=EVERYONE, misbehaviour=evidence)
    record = keeper.candidate(net.state, V0)
    own = keeper.delegation(net.state, V0, V0)
    assert record is not None and own is not None and not record.active
    assert own.slash_amount == floor((own.shares + own.slash_amount) * PARAMS.slash_ratio) > 0
    assert ledger.read_supply(net.state).burned - burned == own.slash_amount
    assert V0 not in keeper.consensus_set_owners(net.state)


def test_unknown_addresses_in_commits_and_evidence_change_nothing() -> None:
    net = short_memory()
    net.block()
    stranger = b"\x99" * 20
    for _ in range(4):
        net.block(signers=EVERYONE, validators=(*EVERYONE, stranger),
                  misbehaviour=(Misbehaviour(stranger, 1, 2),))  # fmt: skip
    assert all(c.active for c in keeper.candidates(net.state) if c.owner in (V0, V1, V2))
