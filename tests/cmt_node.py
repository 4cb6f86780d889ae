"""An in-process node for the cmt_* transaction methods' unit tests: a real ChainApp (MemoryDB,
the node's own modules), the methods installed on a Dispatcher as node.py wires them, and blocks
made on demand.

`call` sends one request, lets it park on the commit signal (`wait_all_tasks_blocked`), makes a
block and returns the answer, so the waits are deterministic; a refusal at admission answers
before any block is made.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import trio
import trio.testing

from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain, PendingBlock
from cybermiles_node.application.queries import CmtQueries
from cybermiles_node.application.staking_txs import CmtTransactions
from cybermiles_node.node import chain_modules
from evm.db import MemoryDB
from genesis import DevAccount, Genesis
from rpc import Dispatcher
from rpc.cmt import CmtApi
from rpc.cmt_tx import CmtTxApi, CommitSignal
from rpc.node_signing import TransactionSigner
from tests.node_accounts import devnet_accounts

__all__ = ["CmtNode"]


class CmtNode:
    """A ChainApp with the cmt_* methods installed; `accounts` are unlocked, the first one is
    the coinbase of the blocks made."""

    def __init__(
        self,
        genesis: Genesis,
        accounts: Sequence[DevAccount],
        commit_timeout: float = 30.0,
    ) -> None:
        self.app = ChainApp(Chain(MemoryDB(), genesis, modules=chain_modules()))
        self.coinbase = accounts[0].address
        commits = CommitSignal()
        self.app.on_commit.append(lambda _block: commits.notify())
        self.dispatcher = Dispatcher()
        api = CmtTxApi(
            CmtTransactions(self.app),
            TransactionSigner(devnet_accounts(accounts)),
            commits,
            commit_timeout=commit_timeout,
        )
        api.install(self.dispatcher)
        CmtApi(CmtQueries(self.app.chain)).install(self.dispatcher)

    def produce(self) -> PendingBlock:
        ctx = self.app.next_context(
            time=int(self.app.head.timestamp) + 1,
            coinbase=self.coinbase,
            randomness=b"\x00" * 32,
            extra_data=b"\x00" * 32,
        )
        block = self.app.build_block(ctx)
        self.app.commit(block)
        return block

    async def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.ask_list(method, [params])

    async def ask_list(self, method: str, params: list[Any]) -> dict[str, Any]:
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        answer = await self.dispatcher.handle(payload, None)
        assert answer is not None
        return dict(json.loads(answer))

    def query(self, method: str, *params: object) -> dict[str, Any]:
        """A query method (no block is made)."""
        return trio.run(self.ask_list, method, list(params))

    def call(
        self, method: str, params: dict[str, Any], before_block: Callable[[], object] = lambda: None
    ) -> dict[str, Any]:
        """Send, let the request park on the commit signal, make a block, return the answer."""
        return self.call_list(method, [params], before_block)

    def call_list(
        self, method: str, params: list[Any], before_block: Callable[[], object] = lambda: None
    ) -> dict[str, Any]:
        """`call` with positional params."""
        answers: list[dict[str, Any]] = []

        async def scenario() -> None:
            async with trio.open_nursery() as nursery:

                async def ask() -> None:
                    answers.append(await self.ask_list(method, params))

                nursery.start_soon(ask)
                await trio.testing.wait_all_tasks_blocked()
                if not answers:
                    before_block()
                    self.produce()

        trio.run(scenario)
        return answers[0]
