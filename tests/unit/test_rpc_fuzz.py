"""Seeded JSON-RPC fuzzing of every registered method, in process, against a real node stack.

The stack is what `cybermiles_node.node` serves: a `ChainApp` over LevelDB with a devnet genesis
and one committed block, `EthApi`, `SendTransactionApi`, `CmtApi`, `CmtTxApi`, `CmtChainApi`,
`PersonalApi` (an empty light-scrypt keystore beside the devnet keys), `DebugApi` (traces, as
on a devnet) and the subscription hub on one `Dispatcher`, called with a session as a WebSocket
connection would be. Inputs come from `tests.rpc_fuzzing` (client mistakes only). Properties:
the dispatcher never raises, no answer is -32603, each request is answered on its own, and the
head, the funded balances and nonces and the transaction pool are unchanged.

Hypothesis runs derandomized with a fixed example budget per method (about 25 s on 2 cores).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cybermiles_node.accounts.backend import NodeAccounts
from cybermiles_node.accounts.keyfile import LIGHT_SCRYPT_N
from cybermiles_node.accounts.keystore import Keystore
from cybermiles_node.accounts.unlock import Unlocker
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import Chain
from cybermiles_node.application.queries import CmtQueries
from cybermiles_node.application.staking_txs import CmtTransactions
from cybermiles_node.node import chain_modules
from cybermiles_node.operator.config import RpcConfig
from evm.db import LevelDB
from genesis import dev_accounts
from rpc import Dispatcher, MemorySession
from rpc.cmt import CmtApi
from rpc.cmt_chain import CmtChainApi
from rpc.cmt_tx import CmtTxApi, CommitSignal
from rpc.debug import DebugApi
from rpc.eth import MAX_PROOF_KEYS
from rpc.node_signing import SendTransactionApi, TransactionSigner
from rpc.personal import PersonalApi
from tests.eth_api import eth_api
from tests.rpc_fuzzing import (
    Known,
    chain_snapshot,
    check_answer,
    mixed_batches,
    params_for,
    request,
    sweep,
)
from tests.unit.test_app import GENESIS, SENDER, produce, raw_transfer

FUZZ = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Stack:
    app: ChainApp
    dispatcher: Dispatcher
    session: MemorySession
    known: Known

    def answer(self, payload: Any) -> bytes | None:
        return trio.run(self.dispatcher.handle, json.dumps(payload), self.session)

    def result(self, method: str, params: list[Any]) -> Any:
        body = self.answer(request(method, params, 1))
        assert body is not None
        return json.loads(body)["result"]

    def snapshot(self) -> Any:
        accounts = [self.known.funded, self.known.other]
        accounts += ["0x" + a.address.hex() for a in dev_accounts(3)]
        return chain_snapshot(self.result, accounts)


RPC_DEFAULTS = RpcConfig()


def build_stack(home: Path) -> tuple[Stack, LevelDB]:
    db = LevelDB(home / "chain")
    app = ChainApp(Chain(db, GENESIS, modules=chain_modules()))
    app.check_tx(raw_transfer(0))  # SENDER spends nonce 0: fuzzed eth_sendTransaction reuse it
    block = produce(app)
    dispatcher = Dispatcher()
    keys = dev_accounts(3)
    api = eth_api(app, client_version="cybermiles/fuzz", accounts=lambda: [k.address for k in keys])
    api.install(dispatcher)
    keystore = Keystore(home / "keystore", scrypt_n=LIGHT_SCRYPT_N)
    accounts = NodeAccounts(
        keystore, Unlocker(keystore, lambda: 0.0), {k.address: k.private_key for k in keys}
    )
    signer = TransactionSigner(accounts)
    SendTransactionApi(api, signer).install(dispatcher)
    CmtApi(CmtQueries(app.chain)).install(dispatcher)
    CmtTxApi(CmtTransactions(app), signer, CommitSignal()).install(dispatcher)
    CmtChainApi(api, CmtTransactions(app), chain_name="cybermiles-fuzz").install(dispatcher)
    PersonalApi(accounts, unlock_allowed=True).install(dispatcher)
    DebugApi(api, app.chain, max_response_bytes=RPC_DEFAULTS.max_response_bytes).install(
        dispatcher, enabled=True
    )
    known = Known(
        funded="0x" + SENDER.address.hex(),
        other="0x" + bytes([9]).hex() * 20,
        block_hash="0x" + block.header.hash.hex(),
        tx_hash="0x" + block.result.transactions[0].hash.hex(),
    )
    assert SENDER.address in {k.address for k in keys}  # unlocked: sendTransaction gets far
    return Stack(app, dispatcher, MemorySession(), known), db


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    built, db = build_stack(tmp_path_factory.mktemp("fuzz"))
    try:
        yield built
    finally:
        built.app.close()
        db.close()


@pytest.fixture(scope="module")
def before(stack: Stack) -> Any:
    return stack.snapshot()


def _registered() -> list[str]:
    """Every method the stack registers, enumerated from the dispatcher itself."""
    with tempfile.TemporaryDirectory() as home:
        built, db = build_stack(Path(home))
        built.app.close()
        db.close()
        return built.dispatcher.methods()


METHODS = _registered()


def test_every_method_is_fuzzed() -> None:
    """The list below is the dispatcher's own: a new method is fuzzed without being named."""
    assert len(METHODS) > 40 and "eth_sendRawTransaction" in METHODS


@pytest.mark.parametrize("method", METHODS)
def test_every_value_in_every_place_is_a_client_error(
    stack: Stack, before: Any, method: str
) -> None:
    """The deterministic sweep: one bad value at a time, everywhere in valid params."""
    for params in sweep(method, stack.known):
        check_answer(request(method, params, 1), stack.answer(request(method, params, 1)))
    assert stack.snapshot() == before


@pytest.mark.parametrize("method", METHODS)
def test_hostile_params_are_answered_without_internal_errors(
    stack: Stack, before: Any, method: str
) -> None:
    @FUZZ
    @given(params=params_for(method, stack.known))
    def run(params: Any) -> None:
        check_answer(request(method, params, 1), stack.answer(request(method, params, 1)))

    run()
    assert stack.snapshot() == before


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_mixed_batches_answer_each_entry_on_its_own(stack: Stack, before: Any, data: Any) -> None:
    batch = data.draw(mixed_batches(METHODS, stack.known))
    check_answer(batch, stack.answer(batch))
    assert stack.snapshot() == before


def test_a_proof_of_too_many_storage_keys_is_refused_before_any_work(stack: Stack) -> None:
    keys = [hex(i) for i in range(MAX_PROOF_KEYS + 1)]
    answer = json.loads(
        stack.answer(request("eth_getProof", [stack.known.funded, keys, "latest"], 1)) or b""
    )
    assert answer["error"]["code"] == -32005
    assert f"{MAX_PROOF_KEYS + 1} > {MAX_PROOF_KEYS}" in answer["error"]["message"]
    fits = stack.result("eth_getProof", [stack.known.funded, keys[:-1], "latest"])
    assert len(fits["storageProof"]) == MAX_PROOF_KEYS


def test_an_unrecoverable_signature_is_a_client_error_in_ec_recover(stack: Stack) -> None:
    unrecoverable = "0x" + "11" * 64 + "1b"  # r = s = 0x11..11, v = 27: no public key
    sent = request("personal_ecRecover", ["0x68656c6c6f", unrecoverable], 1)
    check_answer(sent, stack.answer(sent))
