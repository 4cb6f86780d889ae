"""The CyberMiles `cmt_*` methods (SPEC §8) over a backend protocol declared here.

Queries answer Travis's shape `{"height": N, "data": ...}`, where N is the block whose state was
read. A height argument of 0 or none means the latest block (Travis's convention); a height
above the head is an error. This module grows with staking and governance (validators,
delegators, award infos, proposals, the transaction methods); today it answers
`cmt_queryParams` (the parameters in force after a block, read from its state) and the staking
queries `cmt_queryValidators` (active candidates), `cmt_queryValidator` (one candidate; an
error if the address never was one), `cmt_queryDelegator` (a list, or null when none; never
an error; award_amount includes what is earned but not yet settled) and `cmt_queryAwardInfos`
(the block's award per validator and backup: {address, state, amount}), whose records the
backend formats (SPEC §6 field names), and the governance query `cmt_queryProposals` (every
proposal in creation order, Travis's field names: governance/query.py). Travis's
cmt_queryProposals took no argument and read the latest state; ours also takes the optional
height of the other queries.
"""

from __future__ import annotations

from typing import Any, Protocol

from eth.abc import BlockHeaderAPI

from genesis import Params, params_to_json
from rpc.errors import InvalidInput, InvalidParams
from rpc.params import address

__all__ = ["CmtApi", "CmtBackend"]


class CmtBackend(Protocol):
    """What the cmt methods read of the chain (`cybermiles_node.application.chain.Chain`)."""

    @property
    def head_number(self) -> int: ...

    def header_by_number(self, number: int) -> BlockHeaderAPI | None: ...

    def params_at(self, header: BlockHeaderAPI) -> Params: ...

    def validators_json(self, header: BlockHeaderAPI) -> list[dict[str, object]]: ...

    def validator_json(self, header: BlockHeaderAPI, owner: bytes) -> dict[str, object] | None: ...

    def delegator_json(
        self, header: BlockHeaderAPI, delegator: bytes
    ) -> list[dict[str, object]] | None: ...

    def award_infos_json(self, header: BlockHeaderAPI) -> list[dict[str, object]]: ...

    def proposals_json(self, header: BlockHeaderAPI) -> list[dict[str, object]]: ...


class CmtApi:
    def __init__(self, chain: CmtBackend) -> None:
        self.chain = chain

    def install(self, dispatcher: Any) -> None:
        for name in ("cmt_queryParams", "cmt_queryValidators", "cmt_queryValidator"):
            dispatcher.register(name, getattr(self, name))
        dispatcher.register("cmt_queryDelegator", self.cmt_queryDelegator)
        dispatcher.register("cmt_queryAwardInfos", self.cmt_queryAwardInfos)
        dispatcher.register("cmt_queryProposals", self.cmt_queryProposals)

    def _header(self, height: object) -> BlockHeaderAPI:
        if height is None or height == 0:
            number = self.chain.head_number
        elif isinstance(height, int) and not isinstance(height, bool) and height > 0:
            number = height
        else:
            raise InvalidParams(f"invalid height: expected a block number, got {height!r:.40}")
        header = self.chain.header_by_number(number)
        if header is None:
            raise InvalidInput(f"height {number} is above the head {self.chain.head_number}")
        return header

    def cmt_queryParams(self, height: object = None) -> dict[str, Any]:
        header = self._header(height)
        return _at(header, params_to_json(self.chain.params_at(header)))

    def cmt_queryValidators(self, height: object = None) -> dict[str, Any]:
        header = self._header(height)
        return _at(header, self.chain.validators_json(header))

    def cmt_queryValidator(self, owner: object, height: object = None) -> dict[str, Any]:
        wanted = address(owner, "address")
        header = self._header(height)
        record = self.chain.validator_json(header, wanted)
        if record is None:
            raise InvalidInput(f"0x{wanted.hex()} is not a candidate")
        return _at(header, record)

    def cmt_queryDelegator(self, delegator: object, height: object = None) -> dict[str, Any]:
        wanted = address(delegator, "address")
        header = self._header(height)
        return _at(header, self.chain.delegator_json(header, wanted))

    def cmt_queryAwardInfos(self, height: object = None) -> dict[str, Any]:
        header = self._header(height)
        return _at(header, self.chain.award_infos_json(header))

    def cmt_queryProposals(self, height: object = None) -> dict[str, Any]:
        header = self._header(height)
        return _at(header, self.chain.proposals_json(header))


def _at(header: BlockHeaderAPI, data: object) -> dict[str, Any]:
    return {"height": int(header.block_number), "data": data}
