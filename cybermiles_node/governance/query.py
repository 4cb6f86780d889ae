"""Governance records as cmt_queryProposals answers them (SPEC §7, §8: Travis's field names).

One object per proposal, in creation order:

| field             | value                                                                  |
|-------------------|------------------------------------------------------------------------|
| Id                | base64 of the proposing transaction's 32-byte hash (what cmt_vote and  |
|                   | the proposal's deliver_tx.data carry)                                  |
| Type              | "transfer_fund", "change_param", "deploy_libeni", "retire_program",    |
|                   | "upgrade_program"                                                      |
| Proposer          | lowercase 0x address                                                   |
| BlockHeight       | the block that recorded the proposal                                   |
| ExpireTimestamp   | unix seconds, 0 when the proposal expires by height                    |
| ExpireBlockHeight | 0 when it expires by time; for deploy / retire / upgrade the point the |
|                   | decision takes effect at                                               |
| Result            | "" while open, else "Approved", "Rejected" or "Expired"                |
| ResultMsg         | why an approved change could not be applied, else ""                   |
| ResultBlockHeight | the block that decided it, 0 while open                                |
| Detail            | the proposing message's fields, snake_case as on the wire              |
|                   | (`msgs.message_data`: amounts decimal strings, addresses lowercase 0x, |
|                   | file_url / md5 canonical JSON text, omitted optional fields left out)  |
| Votes             | voter (lowercase 0x) → "Y" / "N", by voter; {} when nobody voted       |

Numbers are JSON integers. Travis kept more bookkeeping (CreatedAt, ResultAt as wall-clock
strings); wall-clock times are not chain state here, so they are left out.
"""

from __future__ import annotations

import base64

from cybermiles_node.governance import keeper
from cybermiles_node.governance.msgs import message_data
from cybermiles_node.governance.records import Proposal
from cybermiles_node.system.storage import SystemStorage

__all__ = ["proposal_json", "proposals_json"]

Json = dict[str, object]


def _address(value: bytes) -> str:
    return "0x" + value.hex()


def proposal_json(record: Proposal, votes: dict[bytes, bool]) -> Json:
    """One proposal with its votes (voter → True for "Y")."""
    return {
        "Id": base64.b64encode(record.id).decode(),
        "Type": record.type_name,
        "Proposer": _address(record.proposer),
        "BlockHeight": record.block_height,
        "ExpireTimestamp": record.expire_timestamp,
        "ExpireBlockHeight": record.expire_block_height,
        "Result": record.result.value,
        "ResultMsg": record.result_msg,
        "ResultBlockHeight": record.result_block_height,
        "Detail": message_data(record.msg),
        "Votes": {_address(voter): "Y" if yes else "N" for voter, yes in sorted(votes.items())},
    }


def proposals_json(storage: SystemStorage) -> list[Json]:
    """cmt_queryProposals: every proposal, in creation order."""
    return [
        proposal_json(record, keeper.votes(storage, record.id))
        for record in keeper.proposals(storage)
    ]
