"""What the cmt_* methods read (rpc/cmt.py's `CmtBackend`), over the chain and its state.

The chain answers headers and parameters itself; staking and governance records are read from
the state after the asked block and formatted by `staking/query.py` and `governance/query.py`.
"""

from __future__ import annotations

from eth.abc import BlockHeaderAPI

from cybermiles_node.application.chain import Chain
from cybermiles_node.governance import query as governance_query
from cybermiles_node.staking import query
from genesis import Params


class CmtQueries:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain

    @property
    def head_number(self) -> int:
        return self.chain.head_number

    def header_by_number(self, number: int) -> BlockHeaderAPI | None:
        return self.chain.header_by_number(number)

    def params_at(self, header: BlockHeaderAPI) -> Params:
        return self.chain.params_at(header)

    def validators_json(self, header: BlockHeaderAPI) -> list[dict[str, object]]:
        return query.validators_json(self.chain.state_at(header))

    def validator_json(self, header: BlockHeaderAPI, owner: bytes) -> dict[str, object] | None:
        return query.validator_json(self.chain.state_at(header), owner)

    def delegator_json(
        self, header: BlockHeaderAPI, delegator: bytes
    ) -> list[dict[str, object]] | None:
        return query.delegator_json(self.chain.state_at(header), delegator)

    def award_infos_json(self, header: BlockHeaderAPI) -> list[dict[str, object]]:
        return query.award_infos_json(self.chain.state_at(header))

    def proposals_json(self, header: BlockHeaderAPI) -> list[dict[str, object]]:
        return governance_query.proposals_json(self.chain.state_at(header))
