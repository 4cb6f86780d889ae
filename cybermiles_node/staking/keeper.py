"""The staking state in storage: the ONLY module that knows where staking records live.

Everything is kept in the storage of the staking account (0x…c0de05, `STAKING_ADDRESS`), so one
state root covers it and `eth_getProof` proves it. Records are stored whole, as the canonical RLP
of their fields (`_encode_*` below) in a `BYTES` value: one read gives a record, the encoding
depends only on the record, and a new field is one more list item.

Slot layout (module "staking"; derivations in cybermiles_node/system/storage.py)

| name          | kind                         | key → value                                     |
|---------------|------------------------------|-------------------------------------------------|
| candidates    | map address → bytes          | owner → RLP of `Candidate`                      |
| candidate_set | sorted index of address      | every owner that ever declared (withdrawn too)  |
| delegations   | map bytes(40) → bytes        | candidate ‖ delegator → RLP of `Delegation`     |
| consensus_set | sorted index of address      | owners of the current validators and backups    |

`consensus_set` is what the EVM's ISVALIDATOR / isValidator and consensus read every block, so
it is kept apart: reading it costs O(validators), never O(candidates).

Genesis (`init_genesis`): each genesis validator becomes a candidate in state "Validator",
active, with its owner's self-delegation (source "cube") of `shares` CMT moved from the owner's
balance into the Hold account through the ledger.
"""

from __future__ import annotations

from fractions import Fraction

import rlp

from cybermiles_node.staking.records import (
    Candidate,
    CandidateState,
    Delegation,
    DelegationSource,
    Description,
)
from cybermiles_node.system import ledger
from cybermiles_node.system.addresses import HOLD_ADDRESS, STAKING_ADDRESS
from cybermiles_node.system.errors import StorageError
from cybermiles_node.system.storage import ADDRESS_KEY, BYTES, BYTES_KEY, Layout, SystemStorage
from genesis import Genesis

__all__ = [
    "candidate",
    "consensus_set",
    "consensus_set_owners",
    "delegation",
    "init_genesis",
    "put_candidate",
    "put_delegation",
]

WEI_PER_CMT = 10**18

LAYOUT = Layout(STAKING_ADDRESS, "staking")
CANDIDATES = LAYOUT.map("candidates", ADDRESS_KEY, BYTES)
CANDIDATE_SET = LAYOUT.sorted_index("candidate_set", ADDRESS_KEY)
DELEGATIONS = LAYOUT.map("delegations", BYTES_KEY, BYTES)
CONSENSUS_SET = LAYOUT.sorted_index("consensus_set", ADDRESS_KEY)

_IN_CONSENSUS = (CandidateState.VALIDATOR, CandidateState.BACKUP)


# -- records ------------------------------------------------------------------------------------
def candidate(storage: SystemStorage, owner: bytes) -> Candidate | None:
    encoded = CANDIDATES.get(storage, owner)
    return _decode_candidate(encoded) if encoded else None


def put_candidate(storage: SystemStorage, record: Candidate) -> None:
    """Store `record`, keeping the candidate and consensus-set indices in step with it."""
    CANDIDATES.set(storage, record.owner, _encode_candidate(record))
    CANDIDATE_SET.insert(storage, record.owner)
    if record.state in _IN_CONSENSUS and record.active and not record.withdrawn:
        CONSENSUS_SET.insert(storage, record.owner)
    else:
        CONSENSUS_SET.remove(storage, record.owner)


def delegation(
    storage: SystemStorage, candidate_owner: bytes, delegator: bytes
) -> Delegation | None:
    encoded = DELEGATIONS.get(storage, candidate_owner + delegator)
    return _decode_delegation(encoded) if encoded else None


def put_delegation(storage: SystemStorage, record: Delegation) -> None:
    DELEGATIONS.set(storage, record.candidate + record.delegator, _encode_delegation(record))


def consensus_set_owners(storage: SystemStorage) -> frozenset[bytes]:
    """Owners of the current validators and backups: what ISVALIDATOR answers."""
    return frozenset(CONSENSUS_SET.keys(storage))


def consensus_set(storage: SystemStorage) -> tuple[Candidate, ...]:
    """The current validators and backups, by owner address."""
    members = []
    for owner in CONSENSUS_SET.keys(storage):
        record = candidate(storage, owner)
        if record is None:
            raise StorageError(f"staking: consensus set names 0x{owner.hex()}, no candidate")
        members.append(record)
    return tuple(members)


# -- genesis ------------------------------------------------------------------------------------
def init_genesis(storage: SystemStorage, genesis: Genesis) -> None:
    """The genesis validators as elected candidates with their self-stake in Hold."""
    for rank, validator in enumerate(genesis.validators):
        stake = validator.shares * WEI_PER_CMT
        ledger.transfer(storage, validator.owner, HOLD_ADDRESS, stake)
        description = Description(
            validator.name, validator.website, validator.location, validator.email,
            validator.profile,
        )  # fmt: skip
        put_candidate(
            storage,
            Candidate(
                owner=validator.owner,
                pub_key=validator.pub_key,
                shares=stake,
                max_shares=validator.max_amount * WEI_PER_CMT,
                comp_rate=validator.comp_rate,
                description=description,
                verified=False,
                active=True,
                state=CandidateState.VALIDATOR,
                rank=rank,
                voting_power=validator.shares,
                pending_voting_power=validator.shares,
                num_of_delegators=1,
                block_height=0,
                created_at=genesis.genesis_time,
            ),
        )
        put_delegation(
            storage,
            Delegation(
                delegator=validator.owner,
                candidate=validator.owner,
                delegate_amount=stake,
                award_amount=0,
                withdraw_amount=0,
                pending_withdraw_amount=0,
                slash_amount=0,
                comp_rate=validator.comp_rate,
                voting_power=validator.shares,
                active=True,
                source=DelegationSource.CUBE,
            ),
        )


# -- codecs ---------------------------------------------------------------------------------------
def _uint(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _flag(value: bool) -> int:
    return int(value)


def _rational(value: Fraction) -> list[int]:
    return [value.numerator, value.denominator]


def _fraction(items: list[bytes]) -> Fraction:
    return Fraction(_uint(items[0]), _uint(items[1]))


def _encode_candidate(c: Candidate) -> bytes:
    d = c.description
    return bytes(
        rlp.encode(
            [
                c.owner, c.pub_key, c.shares, c.max_shares, _rational(c.comp_rate),
                [d.name.encode(), d.website.encode(), d.location.encode(), d.email.encode(),
                 d.profile.encode()],
                _flag(c.verified), _flag(c.active), c.state.value.encode(), c.rank,
                c.voting_power, c.pending_voting_power, c.num_of_delegators, c.block_height,
                c.created_at, _flag(c.withdrawn),
            ]
        )
    )  # fmt: skip


def _decode_candidate(encoded: bytes) -> Candidate:
    f = rlp.decode(encoded)
    return Candidate(
        owner=f[0],
        pub_key=f[1],
        shares=_uint(f[2]),
        max_shares=_uint(f[3]),
        comp_rate=_fraction(f[4]),
        description=Description(*(part.decode() for part in f[5])),
        verified=bool(_uint(f[6])),
        active=bool(_uint(f[7])),
        state=CandidateState(f[8].decode()),
        rank=_uint(f[9]),
        voting_power=_uint(f[10]),
        pending_voting_power=_uint(f[11]),
        num_of_delegators=_uint(f[12]),
        block_height=_uint(f[13]),
        created_at=_uint(f[14]),
        withdrawn=bool(_uint(f[15])),
    )


def _encode_delegation(d: Delegation) -> bytes:
    return bytes(
        rlp.encode(
            [
                d.delegator, d.candidate, d.delegate_amount, d.award_amount, d.withdraw_amount,
                d.pending_withdraw_amount, d.slash_amount, _rational(d.comp_rate),
                d.voting_power, _flag(d.active), d.source.value.encode(),
                _flag(d.completely_withdraw),
            ]
        )
    )  # fmt: skip


def _decode_delegation(encoded: bytes) -> Delegation:
    f = rlp.decode(encoded)
    return Delegation(
        delegator=f[0],
        candidate=f[1],
        delegate_amount=_uint(f[2]),
        award_amount=_uint(f[3]),
        withdraw_amount=_uint(f[4]),
        pending_withdraw_amount=_uint(f[5]),
        slash_amount=_uint(f[6]),
        comp_rate=_fraction(f[7]),
        voting_power=_uint(f[8]),
        active=bool(_uint(f[9])),
        source=DelegationSource(f[10].decode()),
        completely_withdraw=bool(_uint(f[11])),
    )
