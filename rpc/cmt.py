"""The CyberMiles `cmt_*` methods (SPEC §8) over a backend protocol declared here.

Queries answer Travis's shape `{"height": N, "data": ...}`, where N is the block whose state was
read. A height argument of 0 or none means the latest block (Travis's convention); a height
above the head is an error. This module grows with staking and governance (validators,
delegators, award infos, proposals, the transaction methods); today it answers
`cmt_queryParams`, the parameters in force after a block, read from that block's state.
"""

from __future__ import annotations

from typing import Any, Protocol

from eth.abc import BlockHeaderAPI

from genesis import Params, params_to_json
from rpc.errors import InvalidInput, InvalidParams

__all__ = ["CmtApi", "CmtBackend"]


class CmtBackend(Protocol):
    """What the cmt methods read of the chain (`cybermiles_node.application.chain.Chain`)."""

    @property
    def head_number(self) -> int: ...

    def header_by_number(self, number: int) -> BlockHeaderAPI | None: ...

    def params_at(self, header: BlockHeaderAPI) -> Params: ...


class CmtApi:
    def __init__(self, chain: CmtBackend) -> None:
        self.chain = chain

    def install(self, dispatcher: Any) -> None:
        dispatcher.register("cmt_queryParams", self.cmt_queryParams)

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
        return {
            "height": int(header.block_number),
            "data": params_to_json(self.chain.params_at(header)),
        }
