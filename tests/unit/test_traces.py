"""Traces (rpc/debug.py, evm/tracing.py) in process over a real ChainApp on both EVM profiles.

Hand-checked struct logs of a tiny contract (costs, stack, storage, refund, the STOP at the end
of code), callTracer frames of nested calls that revert with a reason and of a precompile call,
the lity profile's ENI opcode and checked-ADD overflow, debug_traceCall against eth_call and
against the mined transaction, gas against receipts, block traces against transaction traces,
staking transactions, OpenEthereum's flat traces, the size and time limits, the switch, and
malformed options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth._utils.address import generate_contract_address
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from cybermiles_node.operator.config import NodeConfig, debug_api_enabled, replace
from evm.cvm import CvmArithmeticError
from tests.trace_node import OWNER, SENDER, TraceNode, init_code
from tests.unit.test_lity_profile import ENI_TAIL, eni_setup

BUILD = Path(__file__).resolve().parents[2] / "contracts" / "build"
RECIPIENT = "0x" + "09" * 20
UINT_MAX = 2**256 - 1
CMT = 10**18


def selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


def proxy(target: str) -> bytes:
    """Runtime code forwarding its calldata to `target` with all gas, answering what the call
    returned, or reverting with it."""
    code = (
        bytes.fromhex("36600060003760006000366000600073")  # calldata to memory, CALL's args
        + bytes.fromhex(target[2:])
        + bytes.fromhex("5af13d600060003e603357")  # GAS CALL, copy return data, JUMPI ok
        + bytes.fromhex("3d6000fd")  # REVERT with it
        + bytes.fromhex("5b3d6000f3")  # ok (0x33): RETURN it
    )
    assert code[0x33] == 0x5B
    return code


def token_artifact(profile: str) -> dict[str, Any]:
    name = "TestToken.json" if profile == "cvm" else "TestToken.lity.json"
    artifact: dict[str, Any] = json.loads((BUILD / name).read_text())
    return artifact


def deploy_token(node: TraceNode, profile: str) -> str:
    code = bytes.fromhex(token_artifact(profile)["bytecode"].removeprefix("0x"))
    nonce = node.nonce
    tx_hash = node.send({"data": code + abi_encode(["uint256"], [10**6]), "gas": 3_000_000})
    assert node.receipt(tx_hash)["status"] == "0x1"
    return to_checksum_address(generate_contract_address(SENDER.address, nonce))


def fail_with(reason: str) -> bytes:
    return selector("failWith(string)") + abi_encode(["string"], [reason])


def transfer_call(to: str, amount: int) -> bytes:
    return selector("transfer(address,uint256)") + abi_encode(["address", "uint256"], [to, amount])


def revert_data(reason: str) -> str:
    return "0x" + (bytes.fromhex("08c379a0") + abi_encode(["string"], [reason])).hex()


# --- struct logs ---------------------------------------------------------------------------

# PUSH1 0 CALLDATALOAD PUSH1 0 SSTORE PUSH1 0 SLOAD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN:
# stores the first calldata word in slot 0 and returns what slot 0 holds.
STORE_AND_RETURN = bytes.fromhex("60003560005560005460005260206000f3")
SLOT0 = "00" * 32


def word(n: int) -> str:
    return f"{n:064x}"


def test_struct_logs_of_a_small_contract_are_the_hand_checked_sequence() -> None:
    node = TraceNode()
    contract = node.deploy(STORE_AND_RETURN)
    set_one = node.send({"to": contract, "data": (1).to_bytes(32, "big"), "gas": 100_000})
    clear = node.send({"to": contract, "data": bytes(32), "gas": 100_000})

    trace = node.result("debug_traceTransaction", set_one)
    # 100,000 - 21,000 - 32 calldata bytes (31 zero x 4 + 1 non-zero x 16 = 140).
    gas = 100_000 - 21_000 - 140
    costs = [3, 3, 3, 22_100, 3, 100, 3, 6, 3, 3, 0]  # SSTORE: cold slot, 0 -> 1; SLOAD warm
    ops = ["PUSH1", "CALLDATALOAD", "PUSH1", "SSTORE", "PUSH1", "SLOAD"]
    ops += ["PUSH1", "MSTORE", "PUSH1", "PUSH1", "RETURN"]
    stacks = [[], ["0x0"], ["0x1"], ["0x1", "0x0"], [], ["0x0"], ["0x1"], ["0x1", "0x0"], []]
    stacks += [["0x20"], ["0x20", "0x0"]]
    expected = []
    pcs = [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 16]
    for pc, op, cost, stack in zip(pcs, ops, costs, stacks, strict=True):
        step: dict[str, Any] = {"pc": pc, "op": op, "gas": gas, "gasCost": cost, "depth": 1}
        step["stack"] = stack
        if op in ("SSTORE", "SLOAD"):
            step["storage"] = {SLOT0: word(1)}
        expected.append(step)
        gas -= cost
    assert trace["structLogs"] == expected
    assert trace["failed"] is False
    assert trace["returnValue"] == "0x" + word(1)
    assert trace["gas"] == int(node.receipt(set_one)["gasUsed"], 16)

    # Clearing the slot: SSTORE 1 -> 0 costs 2,100 + 2,900 and earns 4,800, shown on every
    # later step; the receipt is charged after the (capped) refund.
    logs = node.result("debug_traceTransaction", clear)["structLogs"]
    sstore = logs[3]
    assert (sstore["op"], sstore["gasCost"], sstore["storage"]) == (
        "SSTORE",
        5_000,
        {SLOT0: word(0)},
    )
    assert "refund" not in sstore and all(step["refund"] == 4_800 for step in logs[4:])
    used = 21_000 + 128 + sum(step["gasCost"] for step in logs)
    assert int(node.receipt(clear)["gasUsed"], 16) == used - min(4_800, used // 5)


def test_a_stop_at_the_end_of_code_is_a_step_and_a_transfer_has_none() -> None:
    node = TraceNode()
    contract = node.deploy(bytes.fromhex("6001600055"))  # PUSH1 1 PUSH1 0 SSTORE, no STOP
    logs = node.result("debug_traceTransaction", node.send({"to": contract, "gas": 100_000}))
    assert [(s["pc"], s["op"]) for s in logs["structLogs"]][-2:] == [(4, "SSTORE"), (5, "STOP")]
    transfer = node.send({"to": RECIPIENT, "value": 5, "gas": 21_000})
    assert node.result("debug_traceTransaction", transfer) == {
        "gas": 21_000,
        "failed": False,
        "returnValue": "0x",
        "structLogs": [],
    }
    frame = node.result("debug_traceTransaction", transfer, {"tracer": "callTracer"})
    assert frame == {
        "type": "CALL",
        "from": "0x" + SENDER.address.hex(),
        "to": RECIPIENT,
        "value": "0x5",
        "gas": hex(21_000),
        "gasUsed": hex(21_000),
        "input": "0x",
    }


def test_struct_logger_options() -> None:
    node = TraceNode()
    contract = node.deploy(STORE_AND_RETURN)
    tx = node.send({"to": contract, "data": (7).to_bytes(32, "big"), "gas": 100_000})
    options = {"disableStack": True, "disableStorage": True, "enableMemory": True, "limit": 9}
    logs = node.result("debug_traceTransaction", tx, options)["structLogs"]
    assert len(logs) == 9
    assert all("stack" not in step and "storage" not in step for step in logs)
    assert "memory" not in logs[7] and logs[8]["memory"] == [word(7)]  # after the MSTORE


# --- call frames ---------------------------------------------------------------------------


def test_a_creation_is_a_create_frame_with_its_init_code_and_deployed_code() -> None:
    node = TraceNode()
    nonce = node.nonce
    contract = node.deploy(STORE_AND_RETURN)
    [tx] = node.result("eth_getBlockByNumber", "latest", False)["transactions"]
    assert node.receipt(tx)["contractAddress"] == contract.lower()
    frame = node.result("debug_traceTransaction", tx, {"tracer": "callTracer"})
    assert (frame["type"], frame["to"], frame["gas"]) == ("CREATE", contract.lower(), hex(200_000))
    assert frame["input"] == "0x" + init_code(STORE_AND_RETURN).hex()
    assert frame["output"] == "0x" + STORE_AND_RETURN.hex()
    assert frame["gasUsed"] == node.receipt(tx)["gasUsed"] and nonce == 0
    struct = node.result("debug_traceTransaction", tx)
    assert struct["returnValue"] == frame["output"] and struct["structLogs"][-1]["op"] == "RETURN"


@pytest.mark.parametrize("profile", ["cvm", "lity"])
def test_nested_calls_that_revert_with_a_reason(profile: str) -> None:
    node = TraceNode(profile)
    token = deploy_token(node, profile)
    inner = node.deploy(proxy(token))
    outer = node.deploy(proxy(inner))
    tx = node.send({"to": outer, "data": fail_with("boom"), "gas": 300_000})
    receipt = node.receipt(tx)
    assert receipt["status"] == "0x0"
    frame = node.result("debug_traceTransaction", tx, {"tracer": "callTracer"})
    reason = revert_data("boom")
    sender = "0x" + SENDER.address.hex()
    addresses = [sender, outer.lower(), inner.lower(), token.lower()]
    node_frame = frame
    for depth in range(3):
        assert node_frame["type"] == "CALL"
        assert (node_frame["from"], node_frame["to"]) == (addresses[depth], addresses[depth + 1])
        assert node_frame["input"] == "0x" + fail_with("boom").hex()
        assert node_frame["output"] == reason
        assert node_frame["error"] == "execution reverted"
        assert node_frame["revertReason"] == "boom"
        calls = node_frame.get("calls", [])
        assert len(calls) == (0 if depth == 2 else 1)
        if calls:
            child = calls[0]
            assert int(child["gasUsed"], 16) < int(child["gas"], 16) < int(node_frame["gas"], 16)
            node_frame = child
    assert frame["gas"] == hex(300_000) and frame["gasUsed"] == receipt["gasUsed"]

    only_top = node.result(
        "debug_traceTransaction",
        tx,
        {"tracer": "callTracer", "tracerConfig": {"onlyTopCall": True}},
    )
    assert "calls" not in only_top and only_top["revertReason"] == "boom"

    struct = node.result("debug_traceTransaction", tx)
    assert struct["failed"] is True and struct["returnValue"] == reason
    assert struct["gas"] == int(receipt["gasUsed"], 16)
    depths = [step["depth"] for step in struct["structLogs"]]
    assert max(depths) == 3 and depths[0] == depths[-1] == 1
    reverts = [step for step in struct["structLogs"] if step["op"] == "REVERT"]
    assert [step["depth"] for step in reverts] == [3, 2, 1]
    assert all("error" not in step for step in reverts)  # a revert is no error of its step (geth)

    flat = node.result("trace_transaction", tx)
    assert [t["traceAddress"] for t in flat] == [[], [0], [0, 0]]
    assert [t["subtraces"] for t in flat] == [1, 1, 0]
    assert all(t["error"] == "Reverted" and t["result"] is None for t in flat)
    assert flat[2]["action"]["to"] == token.lower()
    assert flat[0]["transactionHash"] == tx and flat[0]["blockNumber"] == int(
        receipt["blockNumber"], 16
    )


@pytest.mark.parametrize("profile", ["cvm", "lity"])
def test_a_precompile_call_is_a_frame(profile: str) -> None:
    node = TraceNode(profile)
    randomness = "0x" + "00" * 17 + "c0de02"
    caller = node.deploy(proxy(randomness))
    tx = node.send({"to": caller, "data": selector("random()"), "gas": 200_000})
    assert node.receipt(tx)["status"] == "0x1"
    frame = node.result("debug_traceTransaction", tx, {"tracer": "callTracer"})
    [call] = frame["calls"]
    assert (call["type"], call["from"], call["to"]) == ("CALL", caller.lower(), randomness)
    assert call["input"] == "0x" + selector("random()").hex()
    assert len(call["output"]) == 66 and call["output"] == frame["output"]
    assert "error" not in call and int(call["gasUsed"], 16) > 0
    # In the struct log a precompile runs no opcodes: the CALL step is followed by the
    # caller's next step, and the CALL's cost is what it passed on plus its own charges.
    logs = node.result("debug_traceTransaction", tx)["structLogs"]
    [at] = [i for i, step in enumerate(logs) if step["op"] == "CALL"]
    assert logs[at + 1]["depth"] == 1
    assert logs[at]["gasCost"] >= int(call["gas"], 16)
    passed_back = int(call["gas"], 16) - int(call["gasUsed"], 16)
    assert logs[at + 1]["gas"] == logs[at]["gas"] - logs[at]["gasCost"] + passed_back


@pytest.mark.parametrize("profile", ["cvm", "lity"])
def test_cvm_opcodes_appear_by_their_names(profile: str) -> None:
    node = TraceNode(profile)
    # RAND PUSH1 1 PUSH1 2 SADD PUSH1 9 FREEGAS ISVALIDATOR STOP
    contract = node.deploy(bytes.fromhex("f9600160020c6009f8f600"))
    tx = node.send({"to": contract, "gas": 100_000})
    assert node.receipt(tx)["status"] == "0x1"
    logs = node.result("debug_traceTransaction", tx)["structLogs"]
    ops = ["RAND", "PUSH1", "PUSH1", "SADD", "PUSH1", "FREEGAS", "ISVALIDATOR", "STOP"]
    assert [step["op"] for step in logs] == ops
    assert [step["gasCost"] for step in logs] == [5, 3, 3, 3, 3, 3, 3, 0]
    assert logs[4]["stack"][-1] == "0x3"  # SADD: 2 + 1


def test_lity_eni_opcode_and_checked_add_overflow() -> None:
    node = TraceNode("lity")
    eni = node.deploy(eni_setup(b"reverse", b"hello") + b"\xf5" + ENI_TAIL, gas=400_000)
    tx = node.send({"to": eni, "gas": 200_000})
    assert node.receipt(tx)["status"] == "0x1"
    trace = node.result("debug_traceTransaction", tx)
    [step] = [s for s in trace["structLogs"] if s["op"] == "ENI"]
    # ENI's own 400, the library's 10 per character, and the 9 of the memory its result took.
    assert step["gasCost"] == 400 + 10 * len("hello") + 9
    assert step["stack"][-1] == hex(int.from_bytes(b"reverse".ljust(32, b"\x00"), "big"))
    assert trace["failed"] is False and "olleh" in bytes.fromhex(trace["returnValue"][2:]).decode(
        "latin-1"
    )

    # PUSH32 2**256-1 PUSH1 1 ADD: lity's checked ADD fails the frame, burning its gas.
    overflow = node.deploy(b"\x7f" + UINT_MAX.to_bytes(32, "big") + bytes.fromhex("600101"))
    tx = node.send({"to": overflow, "gas": 100_000})
    receipt = node.receipt(tx)
    assert receipt["status"] == "0x0" and receipt["gasUsed"] == hex(100_000)
    trace = node.result("debug_traceTransaction", tx)
    message = str(CvmArithmeticError("unsigned result out of 256 bits"))
    last = trace["structLogs"][-1]
    assert (last["op"], last["error"], last["stack"]) == ("ADD", message, [hex(UINT_MAX), "0x1"])
    assert trace == {**trace, "failed": True, "returnValue": "0x", "gas": 100_000}
    frame = node.result("debug_traceTransaction", tx, {"tracer": "callTracer"})
    assert frame["error"] == message and "output" not in frame
    assert frame["gasUsed"] == hex(100_000)


# --- calls, blocks, system transactions ----------------------------------------------------


def test_trace_call_agrees_with_eth_call_and_with_the_mined_transaction() -> None:
    node = TraceNode()
    token = deploy_token(node, "cvm")
    call = {
        "from": "0x" + SENDER.address.hex(),
        "to": token,
        "data": "0x" + transfer_call(RECIPIENT, 5).hex(),
        "gas": hex(90_000),
        "gasPrice": hex(2 * 10**9),
    }
    answer = node.result("eth_call", call)
    traced = node.result("debug_traceCall", call, "latest")
    assert traced["returnValue"] == answer and traced["failed"] is False
    frame = node.result("debug_traceCall", call, "latest", {"tracer": "callTracer"})
    assert frame["output"] == answer and frame["gas"] == hex(90_000)
    assert frame["gasUsed"] == hex(traced["gas"])

    tx = node.send({"to": token, "data": transfer_call(RECIPIENT, 5), "gas": 90_000})
    mined = node.result("debug_traceTransaction", tx)
    assert mined == traced  # same state, same inputs: the same steps, gas and answer
    assert mined["gas"] == int(node.receipt(tx)["gasUsed"], 16)

    failing = {**call, "data": "0x" + fail_with("nope").hex()}
    error = node.error("eth_call", failing)
    traced = node.result("debug_traceCall", failing, "latest")
    assert traced["failed"] is True and traced["returnValue"] == error["data"]
    assert (
        node.result("debug_traceCall", failing, "latest", {"tracer": "callTracer"})["revertReason"]
        == "nope"
    )


def delegation(node: TraceNode) -> bytes:
    body = {
        "type": "stake/delegate",
        "data": {"validator_address": "0x" + OWNER.address.hex(), "amount": str(10 * CMT)},
    }
    fields = {"to": b"", "gas": 0, "gasPrice": 0, "nonce": node.nonce, "data": json.dumps(body)}
    node.nonce += 1
    return node.sign({**fields, "data": json.dumps(body).encode()})


def test_a_block_trace_is_its_transactions_traces_staking_included() -> None:
    node = TraceNode()
    contract = node.deploy(STORE_AND_RETURN)
    hashes = [node.submit({"to": RECIPIENT, "value": 1, "gas": 21_000})]
    hashes.append(node.submit({"to": contract, "data": (3).to_bytes(32, "big"), "gas": 90_000}))
    hashes.append("0x" + node.app.check_tx(delegation(node)).hash.hex())
    hashes.append(node.submit({"to": contract, "data": (4).to_bytes(32, "big"), "gas": 90_000}))
    node.produce()
    number = node.receipt(hashes[0])["blockNumber"]
    assert {node.receipt(h)["blockNumber"] for h in hashes} == {number}
    block_hash = node.receipt(hashes[0])["blockHash"]
    for options in (None, {"tracer": "callTracer"}):
        one_by_one = [node.result("debug_traceTransaction", h, options) for h in hashes]
        expected = [{"txHash": h, "result": r} for h, r in zip(hashes, one_by_one, strict=True)]
        assert node.result("debug_traceBlockByNumber", number, options) == expected
        assert node.result("debug_traceBlockByNumber", "latest", options) == expected
        assert node.result("debug_traceBlockByHash", block_hash, options) == expected
    # The staking transaction: no EVM, an empty struct log, a frame to the staking module.
    staking_receipt = node.receipt(hashes[2])
    assert staking_receipt["status"] == "0x1"
    assert node.result("debug_traceTransaction", hashes[2]) == {
        "gas": int(staking_receipt["gasUsed"], 16),
        "failed": False,
        "returnValue": "0x",
        "structLogs": [],
    }
    frame = node.result("debug_traceTransaction", hashes[2], {"tracer": "callTracer"})
    assert frame["to"] == "0x" + "00" * 17 + "c0de05"
    assert frame["gasUsed"] == staking_receipt["gasUsed"] and "calls" not in frame
    # The last contract call saw the slot the earlier one wrote in the same block.
    last = node.result("debug_traceTransaction", hashes[3])["structLogs"]
    sstore = [step for step in last if step["op"] == "SSTORE"][0]
    assert sstore["gasCost"] == 2_900 + 2_100  # 3 -> 4: a cold non-zero slot changed
    assert node.result("debug_traceBlockByNumber", "0x0") == []  # genesis has no transactions


# --- limits, the switch, bad input -----------------------------------------------------------


def test_a_trace_larger_than_the_response_limit_is_refused_while_it_runs() -> None:
    node = TraceNode(max_response_bytes=4_000)
    token = deploy_token(node, "cvm")
    tx = node.send({"to": token, "data": transfer_call(RECIPIENT, 5), "gas": 90_000})
    error = node.error("debug_traceTransaction", tx)
    assert error["code"] == -32005 and "rpc.max_response_bytes" in error["message"]
    assert (
        node.result("debug_traceTransaction", tx, {"tracer": "callTracer"})["to"] == token.lower()
    )


def test_the_timeout_option_shortens_the_deadline() -> None:
    node = TraceNode()
    contract = node.deploy(STORE_AND_RETURN)
    tx = node.send({"to": contract, "data": bytes(32), "gas": 90_000})
    error = node.error("debug_traceTransaction", tx, {"timeout": "1ns"})
    assert error["code"] == -32000 and "execution aborted" in error["message"]
    assert node.result("debug_traceTransaction", tx, {"timeout": "1m30s"})["failed"] is False


def test_off_a_devnet_the_methods_name_the_switch() -> None:
    node = TraceNode(debug_api=False)
    for method in ("debug_traceTransaction", "debug_traceCall", "trace_transaction"):
        error = node.error(method, "0x" + "00" * 32)
        assert error["code"] == -32601
        assert method in error["message"] and "rpc.debug_api = true" in error["message"]
    config = NodeConfig()
    assert not debug_api_enabled(config)
    assert debug_api_enabled(replace(config, rpc=replace(config.rpc, debug_api=True)))
    assert debug_api_enabled(replace(config, devnet=replace(config.devnet, enabled=True)))


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"tracer": "prestateTracer"}, "prestateTracer"),
        ({"tracer": 5}, "tracer"),
        ({"disableStack": "yes"}, "options.disableStack"),
        ({"enableMemory": 1}, "options.enableMemory"),
        ({"limit": -1}, "options.limit"),
        ({"timeout": "soon"}, "options.timeout"),
        ({"timeout": 5}, "options.timeout"),
        ({"bogus": True}, "bogus"),
        ({"tracer": "callTracer", "tracerConfig": {"withLog": True}}, "withLog"),
        ({"tracer": "callTracer", "tracerConfig": {"onlyTopCall": "x"}}, "onlyTopCall"),
        ({"tracerConfig": {"onlyTopCall": True}}, "onlyTopCall"),
        ("callTracer", "options"),
    ],
)
def test_malformed_options_are_invalid_params_naming_the_field(options: Any, named: str) -> None:
    node = TraceNode()
    tx = node.send({"to": RECIPIENT, "value": 1, "gas": 21_000})
    error = node.error("debug_traceTransaction", tx, options)
    assert error["code"] == -32602 and named in error["message"]


def test_unknown_or_malformed_transactions_and_blocks() -> None:
    node = TraceNode()
    assert node.error("debug_traceTransaction", "0x" + "ab" * 32)["code"] == -32000
    assert node.error("trace_transaction", "0x" + "ab" * 32)["message"] == "transaction not found"
    assert node.error("debug_traceTransaction", "0x1234")["code"] == -32602
    assert node.error("debug_traceBlockByNumber", "0x99")["code"] == -32000
    assert node.error("debug_traceBlockByHash", "0x" + "ab" * 32)["code"] == -32000
    assert node.error("debug_traceBlockByNumber", "soon")["code"] == -32602
    assert node.error("debug_traceCall", "not a call", "latest")["code"] == -32602
