"""The staking state: genesis validators as candidates with their stake in Hold, records that
round-trip through storage, and the consensus set that ISVALIDATOR and consensus read from state.
"""

from __future__ import annotations

import dataclasses
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from cybermiles_node.application.chain import Chain
from cybermiles_node.staking import keeper
from cybermiles_node.staking.records import (
    Candidate,
    CandidateState,
    Delegation,
    DelegationSource,
    Description,
)
from cybermiles_node.system import MemoryStorage
from cybermiles_node.system.addresses import HOLD_ADDRESS
from evm.db import MemoryDB
from genesis import devnet_genesis

GENESIS = devnet_genesis(
    validator_pub_keys=[bytes([i + 1]) * 32 for i in range(3)], genesis_time=1_700_000_000
)
CMT = 10**18


def test_genesis_validators_are_elected_candidates_with_their_stake_in_hold() -> None:
    chain = Chain(MemoryDB(), GENESIS)
    state = chain.state_at()
    alloc = dict(GENESIS.alloc)
    staked = 0
    expected_order = sorted(
        GENESIS.validators, key=lambda v: (-v.shares, hashlib.sha256(v.pub_key).digest()[:20])
    )
    for rank, validator in enumerate(expected_order):
        record = keeper.candidate(state, validator.owner)
        assert record is not None
        assert (record.pub_key, record.active) == (validator.pub_key, True)
        assert keeper.rank_of(state, validator.owner) == rank
        assert record.state is CandidateState.VALIDATOR
        assert record.shares == validator.shares * CMT
        assert record.max_shares == validator.max_amount * CMT
        own = keeper.delegation(state, validator.owner, validator.owner)
        assert own is not None and own.source is DelegationSource.CUBE
        assert own.shares == validator.shares * CMT
        balance = alloc[validator.owner].balance - validator.shares * CMT
        assert state.get_balance(validator.owner) == balance
        staked += validator.shares * CMT
    assert state.get_balance(HOLD_ADDRESS) == staked
    owners = {v.owner for v in GENESIS.validators}
    assert keeper.consensus_set_owners(state) == owners
    assert chain.validator_owners_at(chain.head) == owners


def test_the_consensus_set_follows_the_records() -> None:
    storage = MemoryStorage()
    for address, account in GENESIS.alloc:
        storage.set_balance(address, account.balance)
    keeper.init_genesis(storage, GENESIS)
    first = GENESIS.validators[0].owner
    record = keeper.candidate(storage, first)
    assert record is not None
    keeper.put_candidate(storage, dataclasses.replace(record, active=False))
    assert first not in keeper.consensus_set_owners(storage)
    keeper.put_candidate(storage, dataclasses.replace(record, state=CandidateState.BACKUP))
    assert first in keeper.consensus_set_owners(storage)
    keeper.put_candidate(storage, dataclasses.replace(record, state=CandidateState.CANDIDATE))
    assert first not in keeper.consensus_set_owners(storage)
    assert [c.owner for c in keeper.consensus_set(storage)] == sorted(
        v.owner for v in GENESIS.validators[1:]
    )


amounts = st.integers(0, 2**200)
rates = st.fractions(min_value=0, max_value=1, max_denominator=10**6)
text = st.text(max_size=40)


@settings(max_examples=150, derandomize=True)
@given(
    st.builds(
        Candidate,
        owner=st.binary(min_size=20, max_size=20),
        pub_key=st.binary(min_size=32, max_size=32),
        shares=st.integers(0, keeper.SHARES_LIMIT - 1),
        max_shares=amounts,
        comp_rate=rates,
        description=st.builds(Description, text, text, text, text, text),
        verified=st.booleans(),
        active=st.booleans(),
        state=st.sampled_from(CandidateState),
        voting_power=st.integers(0, keeper.POWER_LIMIT - 1),
        pending_voting_power=amounts,
        num_of_delegators=st.integers(0, 10**6),
        block_height=st.integers(0, 2**63),
        created_at=st.integers(0, 2**40),
        withdrawn=st.booleans(),
    ),
    st.builds(
        Delegation,
        delegator=st.binary(min_size=20, max_size=20),
        candidate=st.binary(min_size=20, max_size=20),
        delegate_amount=amounts,
        award_amount=amounts,
        withdraw_amount=amounts,
        pending_withdraw_amount=amounts,
        slash_amount=amounts,
        comp_rate=rates,
        voting_power=amounts,
        active=st.booleans(),
        source=st.sampled_from(DelegationSource),
        completely_withdraw=st.booleans(),
    ),
)
def test_records_round_trip_through_storage(candidate: Candidate, delegation: Delegation) -> None:
    # The writers remember each record under its encoding (rlp_codec.MemoisedDecoder): that
    # is right only if decoding the encoding gives the record back exactly, field types too.
    for record, encode, decoder in (
        (candidate, keeper._encode_candidate, keeper._decode_candidate),
        (delegation, keeper._encode_delegation, keeper._decode_delegation),
    ):
        decoded = decoder.decoder(encode(record))
        assert decoded == record
        assert [type(getattr(decoded, f.name)) for f in dataclasses.fields(decoded)] == [
            type(getattr(record, f.name)) for f in dataclasses.fields(record)
        ]
    storage = MemoryStorage()
    keeper.put_candidate(storage, candidate)
    keeper.put_delegation(storage, delegation)
    assert keeper.candidate(storage, candidate.owner) == candidate
    assert keeper.delegation(storage, delegation.candidate, delegation.delegator) == delegation
    assert keeper.candidate(storage, b"\x00" * 19 + b"\x01") in (None, candidate)
