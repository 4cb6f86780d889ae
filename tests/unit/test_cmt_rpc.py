"""cmt_queryParams answers the parameters in force after a block, read from its state, in
Travis's `{"height", "data"}` shape with SPEC §3's JSON forms."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import trio

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.queries import CmtQueries
from cybermiles_node.modules import BlockOutcome, ModuleSet
from cybermiles_node.params import change_param
from cybermiles_node.system.context import BlockContext
from evm.db import MemoryDB
from evm.state import StateDB
from genesis import devnet_genesis
from rpc import Dispatcher
from rpc.cmt import CmtApi

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)


@dataclass
class RaiseAtTwo:
    name: str = "raise-at-two"
    kinds: frozenset[str] = frozenset()
    fee_recipient: bytes | None = None

    def begin_block(self, ctx: BlockContext, storage: StateDB) -> None:
        pass

    def end_block(self, ctx: BlockContext, storage: StateDB, fees: int) -> BlockOutcome:
        if ctx.height == 2:
            change_param(storage, "gas_price", "3000000000")
        return BlockOutcome()


def call(dispatcher: Dispatcher, method: str, params: list[Any]) -> Any:
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    answer = trio.run(dispatcher.handle, payload, None)
    assert answer is not None
    return json.loads(answer)


def test_params_are_answered_per_height_from_state() -> None:
    app = ChainApp(Chain(MemoryDB(), GENESIS, modules=ModuleSet([RaiseAtTwo()])))
    for _ in range(3):
        ctx = app.next_context(
            time=app.head.timestamp + 1,
            coinbase=b"\x05" * 20,
            randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )
        app.commit(app.build_block(ctx))
    dispatcher = Dispatcher()
    CmtApi(CmtQueries(app.chain)).install(dispatcher)
    at_one = call(dispatcher, "cmt_queryParams", [1])["result"]
    assert at_one["height"] == 1 and at_one["data"]["gas_price"] == 2_000_000_000
    assert at_one["data"]["inflation_rate"] == "2/25"  # SPEC §3: rationals as "a/b"
    assert at_one["data"]["foundation_address"] == "0x7eff122b94897ea5b0e2a9abf47b86337fafebdc"
    latest = call(dispatcher, "cmt_queryParams", [])["result"]
    assert latest["height"] == 3 and latest["data"]["gas_price"] == 3_000_000_000
    assert call(dispatcher, "cmt_queryParams", [0])["result"] == latest
    assert call(dispatcher, "cmt_queryParams", [9])["error"]["code"] == -32000
    assert call(dispatcher, "cmt_queryParams", ["0x1"])["error"]["code"] == -32602


def test_staking_queries_answer_travis_shaped_records() -> None:
    app = ChainApp(Chain(MemoryDB(), GENESIS))
    dispatcher = Dispatcher()
    CmtApi(CmtQueries(app.chain)).install(dispatcher)
    (validator,) = GENESIS.validators
    owner = "0x" + validator.owner.hex()
    (listed,) = call(dispatcher, "cmt_queryValidators", [])["result"]["data"]
    assert listed["owner_address"] == owner and listed["state"] == "Validator"
    assert listed["shares"] == str(validator.shares * 10**18) and listed["active"] == "Y"
    assert (
        listed["comp_rate"] == f"{validator.comp_rate.numerator}/{validator.comp_rate.denominator}"
    )
    assert listed["pub_key"]["type"] == "tendermint/PubKeyEd25519"
    one = call(dispatcher, "cmt_queryValidator", [owner, 0])["result"]
    assert one == {"height": 0, "data": listed}
    assert call(dispatcher, "cmt_queryValidator", ["0x" + "42" * 20])["error"]["code"] == -32000
    (own,) = call(dispatcher, "cmt_queryDelegator", [owner])["result"]["data"]
    assert own["validator_address"] == owner and own["source"] == "cube"
    assert own["shares"] == str(validator.shares * 10**18)
    assert call(dispatcher, "cmt_queryDelegator", ["0x" + "42" * 20])["result"]["data"] is None
    assert call(dispatcher, "cmt_queryDelegator", ["0x12"])["error"]["code"] == -32602
