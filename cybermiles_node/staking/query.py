"""Staking records as the cmt_* queries answer them (SPEC §6, §8: Travis's field names).

snake_case fields; addresses lowercase 0x hex; amounts (shares, max_shares, the delegation
amounts) decimal strings of wei; rates "a/b"; flags "Y"/"N"; voting powers and counters JSON
numbers; the consensus key as {"type", "value" (base64)}, as the status endpoint shows it.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from fractions import Fraction

from cybermiles_node.staking import keeper, rewards
from cybermiles_node.staking.records import Candidate, Delegation
from cybermiles_node.system.errors import StorageError
from cybermiles_node.system.storage import SystemStorage

__all__ = [
    "award_infos_json",
    "candidate_json",
    "delegation_json",
    "delegator_json",
    "members_voting_power",
    "validator_json",
    "validators_json",
]

PUB_KEY_TYPE = "tendermint/PubKeyEd25519"
Json = dict[str, object]


def _flag(value: bool) -> str:
    return "Y" if value else "N"


def _rate(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _address(value: bytes) -> str:
    return "0x" + value.hex()


def candidate_json(c: Candidate, rank: int) -> Json:
    """`rank`: its position in the ranking (`keeper.rank_of`), computed when asked."""
    d = c.description
    return {
        "owner_address": _address(c.owner),
        "pub_key": {"type": PUB_KEY_TYPE, "value": base64.b64encode(c.pub_key).decode()},
        "shares": str(c.shares),
        "max_shares": str(c.max_shares),
        "comp_rate": _rate(c.comp_rate),
        "description": {
            "name": d.name, "website": d.website, "location": d.location, "email": d.email,
            "profile": d.profile,
        },
        "verified": _flag(c.verified),
        "active": _flag(c.active),
        "state": c.state.value,
        "rank": rank,
        "voting_power": c.voting_power,
        "pending_voting_power": c.pending_voting_power,
        "num_of_delegators": c.num_of_delegators,
        "block_height": c.block_height,
        "created_at": c.created_at,
    }  # fmt: skip


def delegation_json(d: Delegation) -> Json:
    return {
        "delegator_address": _address(d.delegator),
        "validator_address": _address(d.candidate),
        "delegate_amount": str(d.delegate_amount),
        "award_amount": str(d.award_amount),
        "withdraw_amount": str(d.withdraw_amount),
        "pending_withdraw_amount": str(d.pending_withdraw_amount),
        "slash_amount": str(d.slash_amount),
        "shares": str(d.shares),
        "comp_rate": _rate(d.comp_rate),
        "voting_power": d.voting_power,
        "state": _flag(d.active),
        "source": d.source.value,
        "completely_withdraw": _flag(d.completely_withdraw),
    }


def validators_json(storage: SystemStorage) -> list[Json]:
    """cmt_queryValidators: the active candidates, by rank (one walk of the ranking)."""
    found = []
    for entry in keeper.ranked(storage):
        if not entry.eligible:
            continue
        owner = keeper.owner_of_address(storage, entry.consensus_address)
        record = None if owner is None else keeper.candidate(storage, owner)
        if record is None:
            raise StorageError(
                f"staking: rank {entry.rank} names consensus address "
                f"0x{entry.consensus_address.hex()}, no candidate"
            )
        found.append(candidate_json(record, entry.rank))
    return found


def validator_json(storage: SystemStorage, owner: bytes) -> Json | None:
    """cmt_queryValidator: one candidate by owner address; None if it never was one."""
    record = keeper.candidate(storage, owner)
    if record is None:
        return None
    return candidate_json(record, keeper.rank_of(storage, owner) or 0)


def delegator_json(storage: SystemStorage, delegator: bytes) -> list[Json] | None:
    """cmt_queryDelegator: every delegation of `delegator`, by candidate; None when none.
    award_amount (and so shares) include the delegator's part of what the delegation earned
    since it was last settled, as if settled now (the owner's cut of others' delegations shows
    when those are settled)."""
    found = []
    for c in keeper.candidates(storage):
        record = keeper.delegation(storage, c.owner, delegator)
        if record is not None:
            found.append(delegation_json(_as_settled(storage, record)))
    return found or None


def _as_settled(storage: SystemStorage, record: Delegation) -> Delegation:
    earned = rewards.unsettled_award(storage, record)
    own = earned.total if record.delegator == record.candidate else earned.delegator_award
    return replace(record, award_amount=record.award_amount + own)


def members_voting_power(storage: SystemStorage) -> dict[bytes, int]:
    """Owner → voting power of every current validator and backup validator: the electorate
    governance tallies with (governance/module.py `Electorate`)."""
    return {c.owner: c.voting_power for c in keeper.consensus_set(storage)}


def award_infos_json(storage: SystemStorage) -> list[Json]:
    """cmt_queryAwardInfos: what each validator and backup's delegations earned in the block
    (validators first, then backups, each by address); the amounts sum to the block award
    plus the block's fees (0 each when nobody present had voting power)."""
    return [
        {"address": _address(owner), "state": state.value, "amount": str(amount)}
        for owner, state, amount in keeper.award_infos(storage)
    ]
