"""The staking records (SPEC §6), as frozen values: what the keeper stores and the rules read.

Amounts are wei (ints); rates are exact `Fraction`s; addresses are 20 bytes; a candidate is
named by its owner's address. Changing a record means making a new one (`dataclasses.replace`)
and handing it to the keeper.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

__all__ = [
    "AccountUpdateRequest",
    "Candidate",
    "CandidateState",
    "Delegation",
    "Description",
    "DelegationSource",
    "RequestState",
    "UnstakeRequest",
]

WEI_PER_CMT = 10**18


class CandidateState(Enum):
    """What the last election made of a candidate (SPEC §6); the values are Travis's words."""

    CANDIDATE = "Candidate"
    VALIDATOR = "Validator"
    BACKUP = "Backup Validator"


class DelegationSource(Enum):
    CUBE = "cube"  # delegated with a valid CyberMiles Cube signature
    WALLET = "cmt_wallet"  # anything else: counts 0.8 in voting power


class RequestState(Enum):
    PENDING = "PENDING"
    DONE = "DONE"


@dataclass(frozen=True)
class Description:
    name: str = ""
    website: str = ""
    location: str = ""
    email: str = ""
    profile: str = ""


@dataclass(frozen=True)
class Candidate:
    owner: bytes  # its owner's address; also the candidate's name in every message
    pub_key: bytes  # ed25519 consensus key, 32 bytes
    shares: int  # wei delegated to it, its owner's self-stake included
    max_shares: int  # wei: the most it accepts
    comp_rate: Fraction  # default cut of its delegators' awards taken by the owner, 0 < c < 1
    description: Description
    verified: bool
    active: bool
    state: CandidateState
    voting_power: int  # 0 when inactive
    pending_voting_power: int  # the sum over its delegations, active or not
    num_of_delegators: int
    block_height: int  # where it declared
    created_at: int  # block time of the declaration, unix seconds
    withdrawn: bool = False  # withdrawCandidacy is final: the owner can never declare again


@dataclass(frozen=True)
class Delegation:
    delegator: bytes
    candidate: bytes  # the candidate's owner address
    delegate_amount: int
    award_amount: int
    withdraw_amount: int
    pending_withdraw_amount: int
    slash_amount: int
    comp_rate: Fraction  # the candidate owner's cut of this delegation's awards
    voting_power: int
    active: bool  # Travis's state Y/N
    source: DelegationSource
    completely_withdraw: bool = False
    # Not a SPEC field (queries leave it out): the candidate's award accumulator when this
    # delegation was last settled (staking/awards.py, lazy reward-per-power accounting).
    award_snapshot: int = 0

    @property
    def shares(self) -> int:
        """SPEC §6: what still counts for the candidate."""
        return (
            self.delegate_amount
            + self.award_amount
            - self.withdraw_amount
            - self.slash_amount
            - self.pending_withdraw_amount
        )


@dataclass(frozen=True)
class UnstakeRequest:
    id: int
    delegator: bytes
    candidate: bytes
    amount: int  # wei to pay from Hold at maturity
    initiated_at: int  # block height of the withdraw transaction
    matures_at: int  # first block height at which it is paid
    completely_withdraw: bool
    state: RequestState = RequestState.PENDING


@dataclass(frozen=True)
class AccountUpdateRequest:
    id: int
    candidate: bytes  # the current owner
    new_owner: bytes
    created_at: int  # block height
    state: RequestState = RequestState.PENDING
