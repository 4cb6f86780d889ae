"""Dev state methods (rpc/dev_state.py over application/dev_state.py): edits as blocks,
impersonation, dumps and loads; and eth_createAccessList, eth_getRawTransactionByHash,
txpool_inspect. Everything through JSON-RPC on an in-process chain with the node's modules."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from eth._utils.address import generate_contract_address
from eth_account import Account
from eth_hash.auto import keccak
from eth_typing import Address
from eth_utils import to_checksum_address

from cybermiles_node.accounts.backend import NodeAccounts
from cybermiles_node.accounts.keyfile import LIGHT_SCRYPT_N
from cybermiles_node.accounts.keystore import Keystore
from cybermiles_node.accounts.unlock import Unlocker
from cybermiles_node.application.app import ChainApp
from cybermiles_node.application.chain import BlockRejected, Chain, PendingBlock
from cybermiles_node.application.dev_state import (
    DevState,
    DevStateError,
    SetBalance,
    SetCode,
    SetNonce,
    SetStorage,
    decode_edits,
    dump_head_state,
    encode_edits,
    genesis_from_dump,
    state_root_of,
)
from cybermiles_node.node import chain_modules, chain_profile
from evm.db import MemoryDB
from genesis import (
    Genesis,
    GenesisError,
    dev_accounts,
    devnet_genesis,
    dumps_state_dump,
    genesis_to_json,
    loads_state_dump,
    parse_genesis,
    state_dump_to_json,
)
from rpc import Dispatcher
from rpc.dev_state import DevStateApi
from rpc.node_signing import SendTransactionApi, TransactionSigner
from tests.dispatch_calls import DispatcherCalls
from tests.eth_api import eth_api

GENESIS = devnet_genesis(validator_pub_keys=[b"\x01" * 32], genesis_time=1_700_000_000)
OWNER, ALICE = dev_accounts(2)
STRANGER = bytes.fromhex("5a" * 20)  # no key anywhere
TARGET = bytes.fromhex("42" * 20)
OTHER = bytes.fromhex("77" * 20)
RUNTIME = bytes.fromhex("6005545f5260205ff3")  # return storage slot 5
# Stores 7 at slot 5, then returns RUNTIME.
INITCODE = bytes.fromhex("6007600555" + "6009600f5f39" + "60095ff3") + RUNTIME
# SLOAD slot 5, BALANCE of OTHER, stop.
ACCESSOR = bytes.fromhex("6005545073" + OTHER.hex() + "315000")
WORD_7 = "0x" + "00" * 31 + "07"


def hexa(address: bytes) -> str:
    return "0x" + address.hex()


@dataclass
class Node(DispatcherCalls):
    chain: Chain
    app: ChainApp
    dispatcher: Dispatcher

    def mine(self) -> PendingBlock:
        ctx = self.app.next_context(
            time=int(self.app.head.timestamp) + 1,
            coinbase=OWNER.address,
            randomness=keccak(bytes(self.app.head.mix_hash)),
            extra_data=b"\x00" * 32,
        )
        block = self.app.build_block(ctx)
        self.app.commit(block)
        return block

    def head(self) -> int:
        return int(self.app.head.block_number)

    def code(self, address: bytes) -> str:
        return str(self.result("eth_getCode", hexa(address), "latest"))

    def storage(self, address: bytes, slot: int) -> str:
        return str(self.result("eth_getStorageAt", hexa(address), hex(slot), "latest"))

    def balance(self, address: bytes) -> int:
        return int(self.result("eth_getBalance", hexa(address), "latest"), 16)

    def send(self, **tx: Any) -> str:
        return str(self.result("eth_sendTransaction", tx))


def open_chain(db: MemoryDB, genesis: Genesis = GENESIS) -> Chain:
    return Chain(
        db,
        genesis,
        modules=chain_modules(),
        profile=chain_profile(genesis),
        record_preimages=True,
    )


def make_node(
    tmp_path: Path, *, db: MemoryDB | None = None, genesis: Genesis = GENESIS, bft: bool = False
) -> Node:
    chain = open_chain(db if db is not None else MemoryDB(), genesis)
    app = ChainApp(chain)
    api = eth_api(app)
    dispatcher = Dispatcher()
    api.install(dispatcher)
    backend = DevState(app, coinbase=OWNER.address, randomness=keccak)
    dev = DevStateApi(None if bft else backend)
    dev.install(dispatcher, enabled=True)
    keystore = Keystore(tmp_path / "keystore", scrypt_n=LIGHT_SCRYPT_N)
    accounts = NodeAccounts(
        keystore, Unlocker(keystore, lambda: 0.0), {a.address: a.private_key for a in (ALICE,)}
    )
    SendTransactionApi(api, TransactionSigner(accounts), dev).install(dispatcher)
    return Node(chain, app, dispatcher)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return make_node(tmp_path)


def deploy(node: Node) -> bytes:
    """A real contract (slot 5 = 7) deployed by ALICE; its address."""
    nonce = node.app.mempool.pending_nonce(ALICE.address)
    node.send(**{"from": hexa(ALICE.address), "data": "0x" + INITCODE.hex(), "gas": "0x30000"})
    node.mine()
    return bytes(generate_contract_address(Address(ALICE.address), nonce))


# -- edits ----------------------------------------------------------------------------------
def test_each_edit_is_a_block_of_its_own_visible_at_once(node: Node) -> None:
    assert node.result("anvil_setBalance", hexa(TARGET), "0x0de0b6b3a7640000") is None
    assert node.head() == 1 and node.balance(TARGET) == 10**18
    assert node.result("hardhat_setNonce", hexa(TARGET), "0x7") is True
    assert node.result("eth_getTransactionCount", hexa(TARGET), "latest") == "0x7"
    assert node.result("anvil_setCode", hexa(TARGET), "0x" + RUNTIME.hex()) is None
    assert node.result("anvil_setStorageAt", hexa(TARGET), "0x5", WORD_7) is True
    assert node.head() == 4
    assert node.result("eth_call", {"to": hexa(TARGET)}, "latest") == WORD_7
    block = node.result("eth_getBlockByNumber", "0x1", False)
    assert block["transactions"] == [] and block["timestamp"] == hex(GENESIS.genesis_time)
    assert node.chain.dev_edits(node.chain.header_by_number(1)) == (SetBalance(TARGET, 10**18),)


def test_set_balance_on_a_contract_keeps_its_code_and_storage(node: Node) -> None:
    contract = deploy(node)
    code, slot = node.code(contract), node.storage(contract, 5)
    assert code == "0x" + RUNTIME.hex() and slot == WORD_7
    node.result("hardhat_setBalance", hexa(contract), "0x1234")
    assert node.balance(contract) == 0x1234
    assert node.code(contract) == code and node.storage(contract, 5) == slot


def test_set_code_0x_removes_the_code_and_keeps_the_storage(node: Node) -> None:
    contract = deploy(node)
    node.result("anvil_setCode", hexa(contract), "0x")
    assert node.code(contract) == "0x" and node.storage(contract, 5) == WORD_7
    assert node.result("eth_call", {"to": hexa(contract)}, "latest") == "0x"


def test_storage_on_an_address_without_an_account_creates_it(node: Node) -> None:
    node.result("anvil_setStorageAt", hexa(OTHER), "0x" + "00" * 32, WORD_7)
    assert node.storage(OTHER, 0) == WORD_7


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("anvil_setStorageAt", [hexa(TARGET), "0x5", "0x" + "00" * 31], "invalid value"),
        ("anvil_setStorageAt", [hexa(TARGET), "0x5", "0x" + "00" * 33], "invalid value"),
        ("anvil_setStorageAt", [hexa(TARGET), "0x5", "0x7"], "invalid value"),
        ("anvil_setStorageAt", [hexa(TARGET), "0x" + "1" * 65, WORD_7], "invalid slot"),
        ("hardhat_setStorageAt", [hexa(TARGET), 5, WORD_7], "invalid slot"),
        ("anvil_setBalance", [hexa(TARGET), "0x1" + "0" * 64], "invalid balance"),
        ("anvil_setBalance", [hexa(TARGET), "-0x1"], "invalid balance"),
        ("anvil_setBalance", ["0x1234", "0x1"], "invalid address"),
        ("anvil_setNonce", [hexa(TARGET), hex(2**64 - 1)], "invalid nonce"),
        ("anvil_setCode", [hexa(TARGET), "0x" + "00" * (128 * 1024 + 1)], "invalid code"),
        ("anvil_setCode", [hexa(TARGET), "0x123"], "invalid code"),
        ("anvil_impersonateAccount", ["0x12"], "invalid address"),
        ("anvil_autoImpersonateAccount", ["yes"], "enabled"),
    ],
)
def test_bad_arguments_are_invalid_params_naming_the_field_and_change_nothing(
    node: Node, method: str, params: list[Any], field: str
) -> None:
    error = node.error(method, *params)
    assert error["code"] == -32602 and field in error["message"], error
    assert node.head() == 0


def test_the_leading_zeros_clients_write_are_accepted(node: Node) -> None:
    node.result("anvil_setBalance", hexa(TARGET), "0x00000000000000000000000000000000000001")
    node.result("anvil_setStorageAt", hexa(TARGET), "0x0005", WORD_7)
    assert node.balance(TARGET) == 1 and node.storage(TARGET, 5) == WORD_7


def test_edit_blocks_reexecute_and_survive_a_reopen(tmp_path: Path, node: Node) -> None:
    node.result("anvil_setBalance", hexa(TARGET), "0x5")
    contract = deploy(node)
    node.result("anvil_setStorageAt", hexa(contract), "0x9", WORD_7)
    replay = open_chain(MemoryDB())
    for number in range(1, node.head() + 1):
        header = node.chain.header_by_number(number)
        assert header is not None
        block = replay.execute_block(
            replay.context_of(header),
            header,
            node.chain.transactions(number),
            node.chain.dev_edits(header),
        )
        replay.commit(block)
    assert replay.head.hash == node.app.head.hash
    edit_block = node.chain.header_by_number(node.head())
    assert edit_block is not None
    other = open_chain(MemoryDB())
    for number in range(1, node.head()):
        header = node.chain.header_by_number(number)
        assert header is not None
        txs, edits = node.chain.transactions(number), node.chain.dev_edits(header)
        other.commit(other.execute_block(other.context_of(header), header, txs, edits))
    with pytest.raises(BlockRejected):  # the header commits to edits it is not given
        other.execute_block(other.context_of(edit_block), edit_block, [])
    reopened = make_node(tmp_path, db=node.chain.db)
    assert reopened.head() == node.head() and reopened.storage(contract, 9) == WORD_7


def test_the_edit_record_round_trips() -> None:
    edits = (
        SetBalance(TARGET, 2**256 - 1),
        SetNonce(TARGET, 3),
        SetCode(TARGET, b""),
        SetStorage(OTHER, 2**256 - 1, 1),
    )
    assert decode_edits(encode_edits(edits)) == edits


# -- not served -----------------------------------------------------------------------------
def test_off_a_devnet_every_method_is_not_available() -> None:
    dispatcher = Dispatcher()
    api = DevStateApi(None)
    api.install(dispatcher, enabled=False)
    names = sorted(api.methods())
    assert "anvil_setBalance" in names and "hardhat_impersonateAccount" in names
    for name in names:
        payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": name, "params": []})
        body = trio.run(dispatcher.handle, payload, None)
        assert body is not None
        error = json.loads(body)["error"]
        assert error["code"] == -32601 and "devnets only" in error["message"]


def test_a_bft_devnet_refuses_edits_and_impersonation(tmp_path: Path) -> None:
    node = make_node(tmp_path, bft=True)
    for method, params in [
        ("anvil_setBalance", [hexa(TARGET), "0x1"]),
        ("anvil_impersonateAccount", [hexa(STRANGER)]),
        ("anvil_dumpState", []),
    ]:
        error = node.error(method, *params)
        assert error["code"] == -32004 and "automine" in error["message"]
    assert node.head() == 0


# -- impersonation --------------------------------------------------------------------------
def test_an_impersonated_send_is_stored_with_its_from_and_cannot_be_replayed(node: Node) -> None:
    node.result("anvil_setBalance", hexa(STRANGER), hex(10**18))
    tx = {"from": hexa(STRANGER), "to": hexa(OTHER), "value": "0x5"}
    assert node.error("eth_sendTransaction", tx)["message"].startswith("unknown account")
    assert node.result("anvil_impersonateAccount", hexa(STRANGER)) is None
    legacy = node.send(**tx)
    dynamic = node.send(**tx, maxFeePerGas=hex(3 * 10**9), maxPriorityFeePerGas=hex(2 * 10**9))
    create = node.send(**{"from": hexa(STRANGER), "data": "0x" + INITCODE.hex()})
    node.mine()
    # Always EIP-1559: py-evm recovers the signer of the other kinds it runs.
    for tx_hash, kind in ((legacy, "0x2"), (dynamic, "0x2"), (create, "0x2")):
        receipt = node.result("eth_getTransactionReceipt", tx_hash)
        got = node.result("eth_getTransactionByHash", tx_hash)
        assert receipt["status"] == "0x1" and receipt["from"] == hexa(STRANGER)
        assert got["from"] == hexa(STRANGER) and got["type"] == kind and got["r"] == "0x5"
    receipt = node.result("eth_getTransactionReceipt", create)
    expected = generate_contract_address(Address(STRANGER), 2)
    assert receipt["contractAddress"] == hexa(bytes(expected))
    assert node.balance(OTHER) == 10
    for tx_hash in (legacy, dynamic):
        raw = node.result("eth_getRawTransactionByHash", tx_hash)
        refused = node.error("eth_sendRawTransaction", raw)
        assert "invalid sender" in refused["message"], refused
    assert node.error("eth_signTransaction", tx)["message"].startswith("unknown account")
    assert node.result("hardhat_stopImpersonatingAccount", hexa(STRANGER)) is True
    assert node.error("eth_sendTransaction", tx)["message"].startswith("unknown account")


def test_auto_impersonation_covers_everyone_and_node_accounts_still_sign(node: Node) -> None:
    node.result("anvil_setBalance", hexa(OTHER), hex(10**18))
    node.result("anvil_autoImpersonateAccount", True)
    stranger = node.send(**{"from": hexa(OTHER), "to": hexa(TARGET), "value": "0x1"})
    signed = node.send(**{"from": hexa(ALICE.address), "to": hexa(TARGET), "value": "0x1"})
    node.mine()
    assert node.result("eth_getTransactionByHash", stranger)["r"] == "0x5"
    assert node.result("eth_getTransactionByHash", signed)["r"] != "0x5"
    node.result("anvil_autoImpersonateAccount", False)
    tx = {"from": hexa(OTHER), "to": hexa(TARGET)}
    assert node.error("eth_sendTransaction", tx)["message"].startswith("unknown account")


# -- dumps and loads ------------------------------------------------------------------------
def test_a_dump_loaded_as_a_genesis_gives_the_identical_state_root(node: Node) -> None:
    contract = deploy(node)
    node.result("anvil_setBalance", hexa(contract), "0x99")
    node.result("anvil_setStorageAt", hexa(TARGET), "0x" + "ff" * 32, WORD_7)
    document = node.result("anvil_dumpState")
    assert document["version"] == 1 and document["chain_id"] == GENESIS.chain_id
    assert document["block"]["stateRoot"] == "0x" + node.app.head.state_root.hex()
    dump = loads_state_dump(json.dumps(document))
    assert dump == dump_head_state(node.chain)
    assert state_root_of(dump.accounts) == node.app.head.state_root
    genesis = genesis_from_dump(dump, GENESIS)
    # The genesis survives its file form (the --load-state home writes it).
    assert parse_genesis(json.loads(json.dumps(genesis_to_json(genesis)))) == genesis
    loaded = open_chain(MemoryDB(), genesis)
    assert loaded.genesis_header.state_root == node.app.head.state_root
    assert dump_head_state(loaded).accounts == dump.accounts  # and it dumps back the same
    # ... and runs: a block on it keeps the loaded contract.
    app = ChainApp(loaded)
    ctx = app.next_context(
        time=GENESIS.genesis_time + 9, coinbase=OWNER.address, randomness=b"\x00" * 32,
        extra_data=b"\x00" * 32,
    )  # fmt: skip
    app.commit(app.build_block(ctx))
    assert loaded.state_at().get_storage(contract, 5) == 7


def test_load_state_merges_into_the_current_state(tmp_path: Path, node: Node) -> None:
    contract = deploy(node)
    dump = node.result("anvil_dumpState")
    other = make_node(tmp_path / "other")
    other.result("anvil_setStorageAt", hexa(TARGET), "0x1", WORD_7)  # not in the dump
    assert other.result("anvil_loadState", dump) is True
    assert other.code(contract) == "0x" + RUNTIME.hex() and other.storage(contract, 5) == WORD_7
    assert other.balance(ALICE.address) == node.balance(ALICE.address)
    assert other.storage(TARGET, 1) == WORD_7
    # anvil's form: 0x-hex of the gzipped JSON text.
    packed = "0x" + gzip.compress(json.dumps(dump).encode()).hex()
    third = make_node(tmp_path / "third")
    assert third.result("hardhat_loadState", packed) is True
    assert third.code(contract) == "0x" + RUNTIME.hex()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.pop("accounts"), "missing accounts"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(accounts={"0x12": {"balance": "1"}}), "accounts.0x12"),
        (lambda d: d.update(accounts={hexa(TARGET): {"balance": 1.5}}), ".balance"),
        (
            lambda d: d.update(accounts={hexa(TARGET): {"balance": "1", "storage": {"0x1": "z"}}}),
            ".storage.0x1",
        ),
        (lambda d: d.update(block={"number": "0x1"}), "block"),
        (lambda d: d.update(evm_profile="geth"), "evm_profile"),
    ],
)
def test_malformed_dumps_are_refused_naming_the_field_and_change_nothing(
    node: Node, change: Any, field: str
) -> None:
    document = node.result("anvil_dumpState")
    change(document)
    error = node.error("anvil_loadState", document)
    assert error["code"] == -32602 and field in error["message"], error
    with pytest.raises(GenesisError, match=field.replace(".", r"\.")):
        loads_state_dump(json.dumps(document))
    assert node.head() == 0


@pytest.mark.parametrize("text", ["0x1f8b0000", "0x7b", "0x" + b"[1]".hex(), "not hex"])
def test_undecodable_load_state_text_is_invalid_params(node: Node, text: str) -> None:
    error = node.error("anvil_loadState", text)
    assert error["code"] == -32602 and "state" in error["message"]


def test_a_chain_that_records_no_preimages_cannot_be_dumped_and_says_why() -> None:
    chain = Chain(MemoryDB(), GENESIS, modules=chain_modules(), profile=chain_profile(GENESIS))
    with pytest.raises(DevStateError, match="no recorded preimage"):
        dump_head_state(chain)


def test_the_dump_text_is_canonical(node: Node) -> None:
    dump = dump_head_state(node.chain)
    text = dumps_state_dump(dump)
    assert loads_state_dump(text) == dump and json.loads(text) == state_dump_to_json(dump)


# -- eth_createAccessList, eth_getRawTransactionByHash, txpool_inspect ------------------------
def test_create_access_list_matches_a_real_transaction_with_that_list(node: Node) -> None:
    node.result("anvil_setCode", hexa(TARGET), "0x" + ACCESSOR.hex())
    call = {"from": hexa(ALICE.address), "to": hexa(TARGET)}
    found = node.result("eth_createAccessList", call)
    assert found["accessList"] == [
        {"address": hexa(TARGET), "storageKeys": ["0x" + "00" * 31 + "05"]},
        {"address": hexa(OTHER), "storageKeys": []},
    ]
    signed = Account.sign_transaction(
        {
            "to": to_checksum_address(TARGET), "value": 0, "gas": 60_000,
            "gasPrice": 2 * 10**9, "nonce": 0, "chainId": GENESIS.chain_id,
            "accessList": found["accessList"],
        },
        ALICE.private_key,
    )  # fmt: skip
    tx_hash = node.result("eth_sendRawTransaction", "0x" + bytes(signed.raw_transaction).hex())
    node.mine()
    receipt = node.result("eth_getTransactionReceipt", tx_hash)
    assert receipt["gasUsed"] == found["gasUsed"] and "error" not in found
    # The sender, and a recipient that is only called, are left out.
    node.result("anvil_setCode", hexa(OTHER), "0x" + ACCESSOR.hex())
    plain = node.result("eth_createAccessList", {"to": hexa(STRANGER)}, "latest")
    assert plain["accessList"] == [] and plain["gasUsed"] == "0x5208"


def test_create_access_list_of_a_failing_call_carries_the_error(node: Node) -> None:
    node.result("anvil_setCode", hexa(TARGET), "0x60055460006000fd")  # SLOAD 5, revert
    found = node.result("eth_createAccessList", {"to": hexa(TARGET)})
    assert found["error"] == "execution reverted"
    assert found["accessList"][0]["address"] == hexa(TARGET)


def raw_tx(nonce: int, to: bytes | None = TARGET) -> bytes:
    fields: dict[str, Any] = {
        "value": 3, "gas": 60_000, "gasPrice": 2 * 10**9, "nonce": nonce,
        "chainId": GENESIS.chain_id, "data": b"" if to else INITCODE,
    }  # fmt: skip
    if to is not None:
        fields["to"] = to_checksum_address(to)
    return bytes(Account.sign_transaction(fields, ALICE.private_key).raw_transaction)


def test_raw_transactions_by_hash_pending_mined_and_unknown(node: Node) -> None:
    raw = raw_tx(0)
    tx_hash = node.result("eth_sendRawTransaction", "0x" + raw.hex())
    assert node.result("eth_getRawTransactionByHash", tx_hash) == "0x" + raw.hex()
    node.mine()
    assert node.result("eth_getRawTransactionByHash", tx_hash) == "0x" + raw.hex()
    assert node.result("eth_getRawTransactionByHash", "0x" + "00" * 32) is None
    assert node.error("eth_getRawTransactionByHash", "0x12")["code"] == -32602


def test_txpool_inspect_has_geths_shape(node: Node) -> None:
    for raw in (raw_tx(0), raw_tx(1, to=None), raw_tx(5)):
        node.result("eth_sendRawTransaction", "0x" + raw.hex())
    sender = hexa(ALICE.address)
    assert node.result("txpool_inspect") == {
        "pending": {
            sender: {
                "0": f"{to_checksum_address(TARGET)}: 3 wei + 60000 gas × 2000000000 wei",
                "1": "contract creation: 3 wei + 60000 gas × 2000000000 wei",
            }
        },
        "queued": {
            sender: {"5": f"{to_checksum_address(TARGET)}: 3 wei + 60000 gas × 2000000000 wei"}
        },
    }
