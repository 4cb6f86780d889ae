"""The governance state in storage: with versions.py, the only code that knows where governance
records live (the storage of GOVERNANCE_ADDRESS = 0x…c0de06, module "governance").

| name               | kind                      | key → value                                   |
|--------------------|---------------------------|-----------------------------------------------|
| proposals          | map bytes32 → bytes       | id (tx hash) → RLP of the `Proposal` (below)  |
| proposal_seqs      | map uint → bytes32        | creation number (from 1) → id                 |
| next_seq           | uint                      | the number the next proposal gets             |
| open_proposals     | sorted index of uint      | numbers of the undecided proposals            |
| scheduled          | sorted index of uint      | numbers of approved deploy_libeni /           |
|                    |                           | retire_program / upgrade_program proposals    |
|                    |                           | whose effect has not run yet                  |
| votes              | map bytes → uint          | id ‖ voter → 2 for "Y", 1 for "N"             |
| voters/<id hex>    | sorted index of address   | (one per proposal) who voted on it            |
| escrow             | uint                      | wei in Hold for undecided transfer_fund       |
|                    |                           | proposals                                     |
| (versions.py)      |                           | eni_versions, eni_names, program_requirement  |

A proposal's RLP: [seq, id, kind, detail, proposer, block_height, expire_block_height,
expire_timestamp, result, result_msg, result_block_height, executed], where `detail` is the
canonical JSON of the proposing message's data (`msgs.message_data`), decoded again with the
message parser: one definition of each kind's fields. `put_proposal` keeps `open_proposals`
and `scheduled` in step with the record (callers cannot forget), so end_block reads only those
two small indices each block, never every proposal.
"""

from __future__ import annotations

import json

import rlp

from cybermiles_node.governance.msgs import (
    ProposalMsg,
    Vote,
    message_data,
    parse_governance_msg,
)
from cybermiles_node.governance.records import Proposal, Result
from cybermiles_node.governance.versions import LAYOUT
from cybermiles_node.system import rlp_codec
from cybermiles_node.system.addresses import GOVERNANCE_ADDRESS
from cybermiles_node.system.errors import StorageError
from cybermiles_node.system.storage import (
    ADDRESS_KEY,
    BYTES,
    BYTES32,
    BYTES32_KEY,
    BYTES_KEY,
    UINT,
    UINT_KEY,
    SortedIndex,
    SystemStorage,
)

__all__ = [
    "escrow",
    "new_proposal",
    "open_proposals",
    "proposal",
    "proposals",
    "put_escrow",
    "put_proposal",
    "put_vote",
    "scheduled_proposals",
    "votes",
]

PROPOSALS = LAYOUT.map("proposals", BYTES32_KEY, BYTES)
PROPOSAL_SEQS = LAYOUT.map("proposal_seqs", UINT_KEY, BYTES32)
NEXT_SEQ = LAYOUT.item("next_seq", UINT)
OPEN = LAYOUT.sorted_index("open_proposals", UINT_KEY)
SCHEDULED = LAYOUT.sorted_index("scheduled", UINT_KEY)
VOTES = LAYOUT.map("votes", BYTES_KEY, UINT)
ESCROW = LAYOUT.item("escrow", UINT)

_YES, _NO = 2, 1
_SCHEDULED_KINDS = frozenset(
    {
        "governance/propose/deploy_libeni",
        "governance/propose/retire_program",
        "governance/propose/upgrade_program",
    }
)


# -- proposals ------------------------------------------------------------------------------------
def proposal(storage: SystemStorage, proposal_id: bytes) -> Proposal | None:
    encoded = PROPOSALS.get(storage, proposal_id)
    return _decode(encoded) if encoded else None


def new_proposal(
    storage: SystemStorage,
    proposal_id: bytes,
    msg: ProposalMsg,
    proposer: bytes,
    height: int,
    expire_block_height: int,
    expire_timestamp: int,
) -> Proposal:
    """Record a new open proposal under the next creation number."""
    if PROPOSALS.get(storage, proposal_id):
        raise StorageError(f"governance: proposal 0x{proposal_id.hex()} exists already")
    seq = NEXT_SEQ.get(storage) or 1
    NEXT_SEQ.set(storage, seq + 1)
    record = Proposal(
        proposal_id, seq, msg, proposer, height, expire_block_height, expire_timestamp
    )
    PROPOSAL_SEQS.set(storage, seq, proposal_id)
    put_proposal(storage, record)
    return record


def put_proposal(storage: SystemStorage, record: Proposal) -> None:
    """Store `record`, listed as open while undecided and as scheduled while an approved
    proposal's effect is still to run."""
    PROPOSALS.set(storage, record.id, _encode(record))
    _listed(OPEN, storage, record.seq, record.result is Result.OPEN)
    waiting = (
        record.result is Result.APPROVED and not record.executed and record.kind in _SCHEDULED_KINDS
    )
    _listed(SCHEDULED, storage, record.seq, waiting)


def _listed(index: SortedIndex[int], storage: SystemStorage, seq: int, member: bool) -> None:
    if member:
        index.insert(storage, seq)
    else:
        index.remove(storage, seq)


def proposals(storage: SystemStorage) -> tuple[Proposal, ...]:
    """Every proposal, in creation order."""
    return tuple(_by_seq(storage, seq) for seq in range(1, NEXT_SEQ.get(storage) or 1))


def open_proposals(storage: SystemStorage) -> tuple[Proposal, ...]:
    """The undecided proposals, in creation order."""
    return tuple(_by_seq(storage, seq) for seq in OPEN.keys(storage))


def scheduled_proposals(storage: SystemStorage) -> tuple[Proposal, ...]:
    """Approved proposals whose effect is still to run, in creation order."""
    return tuple(_by_seq(storage, seq) for seq in SCHEDULED.keys(storage))


def _by_seq(storage: SystemStorage, seq: int) -> Proposal:
    proposal_id = PROPOSAL_SEQS.get(storage, seq)
    record = proposal(storage, proposal_id)
    if record is None:
        raise StorageError(f"governance: proposal number {seq} names a missing proposal")
    return record


# -- votes ----------------------------------------------------------------------------------------
def votes(storage: SystemStorage, proposal_id: bytes) -> dict[bytes, bool]:
    """voter → answer (True: "Y") of every vote on the proposal, by voter."""
    return {
        voter: VOTES.get(storage, proposal_id + voter) == _YES
        for voter in _voters(proposal_id).keys(storage)
    }


def put_vote(storage: SystemStorage, proposal_id: bytes, voter: bytes, answer: bool) -> None:
    """Record (or replace) `voter`'s answer."""
    VOTES.set(storage, proposal_id + voter, _YES if answer else _NO)
    _voters(proposal_id).insert(storage, voter)


def _voters(proposal_id: bytes) -> SortedIndex[bytes]:
    if len(proposal_id) != 32:
        raise StorageError(f"governance: a proposal id is 32 bytes, got {proposal_id!r}")
    return SortedIndex(GOVERNANCE_ADDRESS, f"governance/voters/{proposal_id.hex()}", ADDRESS_KEY)


# -- escrow ---------------------------------------------------------------------------------------
def escrow(storage: SystemStorage) -> int:
    """Wei held in Hold for undecided transfer_fund proposals."""
    return ESCROW.get(storage)


def put_escrow(storage: SystemStorage, value: int) -> None:
    if value < 0:
        raise StorageError(f"governance: the escrow would be negative ({value})")
    ESCROW.set(storage, value)


# -- codec ----------------------------------------------------------------------------------------
def _encode(p: Proposal) -> bytes:
    detail = json.dumps(message_data(p.msg), sort_keys=True, separators=(",", ":"))
    return rlp_codec.encode(
        [
            p.seq, p.id, p.kind.encode(), detail.encode(), p.proposer, p.block_height,
            p.expire_block_height, p.expire_timestamp, p.result.value.encode(),
            p.result_msg.encode(), p.result_block_height, int(p.executed),
        ]
    )  # fmt: skip


@rlp_codec.memoised_decoder
def _decode(encoded: bytes) -> Proposal:
    f = rlp.decode(encoded)
    msg = parse_governance_msg(f[2].decode(), json.loads(f[3].decode()))
    if isinstance(msg, Vote):
        raise StorageError("governance: a stored proposal holds a vote")
    return Proposal(
        id=f[1],
        seq=_uint(f[0]),
        msg=msg,
        proposer=f[4],
        block_height=_uint(f[5]),
        expire_block_height=_uint(f[6]),
        expire_timestamp=_uint(f[7]),
        result=Result(f[8].decode()),
        result_msg=f[9].decode(),
        result_block_height=_uint(f[10]),
        executed=bool(_uint(f[11])),
    )


def _uint(value: bytes) -> int:
    return int.from_bytes(value, "big")
