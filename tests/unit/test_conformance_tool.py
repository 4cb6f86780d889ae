"""Tests for the OpenRPC conformance validator in tests/conformance.py."""

from __future__ import annotations

import copy
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from web3 import HTTPProvider, Web3

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) from elsewhere
    sys.path.insert(0, str(_ROOT))

from tests.conformance import (  # noqa: E402
    DEFAULT_SPEC_PATH,
    ConformanceError,
    ConformingHTTPProvider,
    OpenRpcValidator,
    check_raw_response,
    get_validator,
    install_conformance_check,
)

pytestmark = pytest.mark.skipif(
    not DEFAULT_SPEC_PATH.exists(), reason=f"spec not found at {DEFAULT_SPEC_PATH}"
)


def h(byte: int, size: int = 32) -> str:
    return "0x" + f"{byte:02x}" * size


ADDR_A = "0x" + "aa" * 20
ADDR_B = "0x" + "Bb" * 20  # addresses may be mixed-case (EIP-55)
ZERO_BLOOM = "0x" + "00" * 256


def type2_tx() -> dict[str, Any]:
    return {
        "blockHash": h(0x11),
        "blockNumber": "0x2a",
        "blockTimestamp": "0x6553f100",
        "from": ADDR_A,
        "hash": h(0x22),
        "transactionIndex": "0x0",
        "type": "0x2",
        "nonce": "0x0",
        "to": ADDR_B,
        "gas": "0x5208",
        "value": "0xde0b6b3a7640000",
        "input": "0x",
        "maxPriorityFeePerGas": "0x3b9aca00",
        "maxFeePerGas": "0x77359400",
        "gasPrice": "0x3b9aca07",
        "accessList": [{"address": ADDR_B, "storageKeys": [h(0x01)]}],
        "chainId": "0x4d2",
        "yParity": "0x1",
        "v": "0x1",
        "r": "0x" + "1f" * 32,
        "s": "0x" + "2e" * 31,
    }


def legacy_tx() -> dict[str, Any]:
    return {
        "blockHash": h(0x11),
        "blockNumber": "0x2a",
        "blockTimestamp": "0x6553f100",
        "from": ADDR_A,
        "hash": h(0x23),
        "transactionIndex": "0x1",
        "type": "0x0",
        "nonce": "0x1",
        "to": None,
        "gas": "0x30d40",
        "value": "0x0",
        "input": "0x6080604052",
        "gasPrice": "0x3b9aca07",
        "chainId": "0x4d2",
        "v": "0x9c7",
        "r": "0x" + "3c" * 32,
        "s": "0x" + "4d" * 32,
    }


def block(full: bool = True) -> dict[str, Any]:
    txs: list[Any] = [type2_tx(), legacy_tx()]
    return {
        "number": "0x2a",
        "hash": h(0x11),
        "parentHash": h(0x10),
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "miner": ADDR_A,
        "stateRoot": h(0x33),
        "transactionsRoot": h(0x34),
        "receiptsRoot": h(0x35),
        "logsBloom": ZERO_BLOOM,
        "difficulty": "0x0",
        "gasLimit": "0x1c9c380",
        "gasUsed": "0xa410",
        "timestamp": "0x6553f100",
        "extraData": "0x",
        "mixHash": h(0x00),
        "nonce": "0x0000000000000000",
        "baseFeePerGas": "0x7",
        "size": "0x2d1",
        "transactions": txs if full else [t["hash"] for t in txs],
        "uncles": [],
    }


def receipt() -> dict[str, Any]:
    return {
        "type": "0x2",
        "transactionHash": h(0x22),
        "transactionIndex": "0x0",
        "blockHash": h(0x11),
        "blockNumber": "0x2a",
        "from": ADDR_A,
        "to": ADDR_B,
        "cumulativeGasUsed": "0x5208",
        "gasUsed": "0x5208",
        "contractAddress": None,
        "logs": [
            {
                "removed": False,
                "logIndex": "0x0",
                "transactionIndex": "0x0",
                "transactionHash": h(0x22),
                "blockHash": h(0x11),
                "blockNumber": "0x2a",
                "blockTimestamp": "0x6553f100",
                "address": ADDR_B,
                "data": "0x" + "00" * 31 + "05",
                "topics": [h(0xDD), h(0x00)],
            }
        ],
        "logsBloom": ZERO_BLOOM,
        "status": "0x1",
        "effectiveGasPrice": "0x3b9aca07",
    }


@pytest.fixture(scope="module")
def validator() -> OpenRpcValidator:
    return OpenRpcValidator()


def test_full_block_passes(validator: OpenRpcValidator) -> None:
    validator.validate_result("eth_getBlockByNumber", block(full=True))
    validator.validate_result("eth_getBlockByHash", block(full=False))
    validator.validate_result("eth_getBlockByNumber", None)
    assert validator.checked["eth_getBlockByNumber"] >= 2


def test_block_with_withdrawals_passes(validator: OpenRpcValidator) -> None:
    b = block()
    b.update(withdrawalsRoot=h(0x56), withdrawals=[], blobGasUsed="0x0", excessBlobGas="0x0")
    b.update(parentBeaconBlockRoot=h(0x57), requestsHash=h(0x58), totalDifficulty="0x0")
    validator.validate_result("eth_getBlockByNumber", b)


@pytest.mark.parametrize("field", ["hash", "stateRoot", "mixHash", "nonce", "size", "uncles"])
def test_block_missing_required_field(validator: OpenRpcValidator, field: str) -> None:
    b = block()
    del b[field]
    with pytest.raises(ConformanceError) as info:
        validator.validate_result("eth_getBlockByNumber", b)
    assert f"'{field}' is a required property" in str(info.value)
    assert info.value.method == "eth_getBlockByNumber"


@pytest.mark.parametrize(
    ("field", "bad"),
    [("gasUsed", 42000), ("gasUsed", "0x00a410"), ("timestamp", "1700000000"), ("number", "0xA")],
)
def test_block_bad_quantity(validator: OpenRpcValidator, field: str, bad: object) -> None:
    b = block()
    b[field] = bad
    with pytest.raises(ConformanceError) as info:
        validator.validate_result("eth_getBlockByNumber", b)
    assert f"$.{field}:" in info.value.message


def test_block_bad_nested_tx_field_is_named(validator: OpenRpcValidator) -> None:
    b = block()
    del b["transactions"][0]["chainId"]
    with pytest.raises(ConformanceError) as info:
        validator.validate_result("eth_getBlockByNumber", b)
    assert "$.transactions[0]: 'chainId' is a required property" in info.value.message

    b = block()
    b["transactions"] = b["transactions"][:1]  # one tx: the hash-list branch fails just once too
    b["transactions"][0]["maxFeePerGas"] = "0x"
    with pytest.raises(ConformanceError) as info:
        validator.validate_result("eth_getBlockByNumber", b)
    assert "$.transactions[0].maxFeePerGas" in info.value.message

    b = block()
    b["transactions"][0]["yParity"] = 1
    with pytest.raises(ConformanceError) as info:
        validator.validate_result("eth_getBlockByNumber", b)
    assert "$.transactions[0].yParity" in info.value.message


def test_transactions(validator: OpenRpcValidator) -> None:
    validator.validate_result("eth_getTransactionByHash", type2_tx())
    validator.validate_result("eth_getTransactionByHash", legacy_tx())
    validator.validate_result("eth_getTransactionByHash", None)
    tx = type2_tx()
    del tx["accessList"]
    with pytest.raises(ConformanceError, match="'accessList' is a required property"):
        validator.validate_result("eth_getTransactionByHash", tx)
    tx = legacy_tx()
    del tx["blockTimestamp"]
    with pytest.raises(ConformanceError, match="'blockTimestamp' is a required property"):
        validator.validate_result("eth_getTransactionByHash", tx)


def test_receipt(validator: OpenRpcValidator) -> None:
    validator.validate_result("eth_getTransactionReceipt", receipt())
    validator.validate_result("eth_getBlockReceipts", [receipt()])
    r = receipt()
    del r["effectiveGasPrice"]
    with pytest.raises(ConformanceError, match="'effectiveGasPrice' is a required property"):
        validator.validate_result("eth_getTransactionReceipt", r)
    r = receipt()
    r["logs"][0]["transactionLogIndex"] = "0x0"  # additionalProperties: false on Log
    with pytest.raises(ConformanceError, match=r"\$\.logs\[0\]"):
        validator.validate_result("eth_getTransactionReceipt", r)


def test_filters_and_logs(validator: OpenRpcValidator) -> None:
    log = receipt()["logs"][0]
    validator.validate_result("eth_getLogs", [])  # both oneOf branches match []: accepted
    validator.validate_result("eth_getLogs", [log])
    validator.validate_result("eth_getFilterChanges", [h(0x44)])
    validator.validate_result("eth_newFilter", "0x1")
    validator.validate_result("eth_uninstallFilter", True)
    bad = dict(log, data="0xABC")
    with pytest.raises(ConformanceError, match=r"\$\[0\]\.data"):
        validator.validate_result("eth_getLogs", [bad])


def test_misc_results(validator: OpenRpcValidator) -> None:
    validator.validate_result("eth_chainId", "0x4d2")
    validator.validate_result("net_version", "1234")
    validator.validate_result("eth_syncing", False)
    validator.validate_result(
        "eth_syncing", {"startingBlock": "0x0", "currentBlock": "0x1", "highestBlock": "0x2"}
    )
    validator.validate_result(
        "eth_feeHistory",
        {
            "oldestBlock": "0x1",
            "baseFeePerGas": ["0x7", "0x7", "0x7"],
            "gasUsedRatio": [0.0, 0.5],
            "reward": [["0x0", "0x1"], ["0x0", "0x1"]],
        },
    )
    validator.validate_result(
        "eth_getProof",
        {
            "address": ADDR_A,
            "accountProof": ["0xf90211a0"],
            "balance": "0x0",
            "codeHash": h(0xC5),
            "nonce": "0x0",
            "storageHash": h(0x56),
            "storageProof": [{"key": "0x01", "value": "0x0", "proof": []}],
        },
    )
    validator.validate_result("eth_call", "0x")
    validator.validate_result("eth_getStorageAt", "0x" + "00" * 32)


def test_chain_id(validator: OpenRpcValidator) -> None:
    validator.validate_result("eth_chainId", "0x4d2")
    with pytest.raises(ConformanceError, match="is not of type 'string'"):
        validator.validate_result("eth_chainId", 1234)
    with pytest.raises(ConformanceError, match="does not match"):
        validator.validate_result("eth_chainId", "0x04d2")
    with pytest.raises(ConformanceError):
        validator.validate_result("net_version", "0x4d2")


def test_unknown_methods_are_skipped(validator: OpenRpcValidator) -> None:
    before = validator.checked.copy()
    for method in ["web3_clientVersion", "net_listening", "eth_subscribe", "cmt_getValidators"]:
        validator.validate_result(method, {"anything": 1})
        assert validator.skipped[method] >= 1
    assert validator.checked == before


def test_params(validator: OpenRpcValidator) -> None:
    validator.validate_params("eth_getBlockByNumber", ["latest", True])
    validator.validate_params("eth_getBalance", [ADDR_A])  # optional block omitted
    validator.validate_params("eth_getLogs", [{"fromBlock": "0x1", "topics": [None, [h(1)]]}])
    validator.validate_params("web3_sha3", ["0x00"])
    with pytest.raises(ConformanceError, match="missing required param"):
        validator.validate_params("eth_getBlockByNumber", ["latest"])
    with pytest.raises(ConformanceError, match="param #0"):
        validator.validate_params("eth_getBlockByNumber", ["newest", False])
    with pytest.raises(ConformanceError, match="too many params"):
        validator.validate_params("eth_chainId", [1])


def test_raw_response_envelope(validator: OpenRpcValidator) -> None:
    check_raw_response("eth_chainId", {"jsonrpc": "2.0", "id": 1, "result": "0x4d2"}, validator)
    error = {"code": 3, "message": "execution reverted", "data": "0x08c379a0"}
    check_raw_response("eth_call", {"jsonrpc": "2.0", "id": 1, "error": error}, validator)
    with pytest.raises(ConformanceError, match="jsonrpc"):
        check_raw_response("eth_chainId", {"id": 1, "result": "0x4d2"}, validator)
    with pytest.raises(ConformanceError, match="exactly one"):
        check_raw_response("eth_chainId", {"jsonrpc": "2.0", "id": 1}, validator)
    with pytest.raises(ConformanceError, match="error must be"):
        check_raw_response(
            "eth_call", {"jsonrpc": "2.0", "id": 1, "error": {"code": "3"}}, validator
        )
    with pytest.raises(ConformanceError, match="not of type 'string'"):
        check_raw_response("eth_chainId", {"jsonrpc": "2.0", "id": 1, "result": 1234}, validator)


def test_env_override_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_path = tmp_path / "spec.json"
    copy_path.write_text(DEFAULT_SPEC_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("CYBERMILES_OPENRPC", str(copy_path))
    assert OpenRpcValidator().spec_path == copy_path
    assert get_validator() is get_validator()
    assert get_validator().spec_path == copy_path.resolve()


# -- web3 integration against a tiny canned JSON-RPC server -------------------------------


@pytest.fixture
def rpc_server() -> Iterator[tuple[str, dict[str, Any]]]:
    results: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def answer(req: dict[str, Any]) -> dict[str, Any]:
                return {"jsonrpc": "2.0", "id": req["id"], "result": results[req["method"]]}

            out = [answer(r) for r in body] if isinstance(body, list) else answer(body)
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", results
    finally:
        server.shutdown()
        server.server_close()


def _web3_cases(w3: Web3, results: dict[str, Any], validator: OpenRpcValidator) -> None:
    results["eth_chainId"] = "0x4d2"
    results["eth_getBlockByNumber"] = block(full=True)
    assert w3.eth.chain_id == 1234
    assert w3.eth.get_block("latest", full_transactions=True)["number"] == 42
    assert validator.checked["eth_chainId"] == 1
    assert validator.checked["eth_getBlockByNumber"] == 1

    # web3's own formatters would happily accept an int chain id: the check runs before them
    results["eth_chainId"] = 1234
    with pytest.raises(ConformanceError, match="eth_chainId"):
        w3.eth.chain_id  # noqa: B018
    bad = copy.deepcopy(block())
    del bad["transactions"][1]["gasPrice"]
    results["eth_getBlockByNumber"] = bad
    with pytest.raises(ConformanceError, match=r"transactions\[1\]: 'gasPrice'"):
        w3.eth.get_block(42, full_transactions=True)

    results["eth_chainId"] = "0x4d2"
    results["eth_blockNumber"] = "0x2a"
    with w3.batch_requests() as batch:
        batch.add(w3.eth.get_block_number())
        batch.add(w3.eth.get_block(42, full_transactions=True))
        with pytest.raises(ConformanceError, match="gasPrice"):
            batch.execute()
    assert validator.checked["eth_blockNumber"] == 1


def test_install_conformance_check(rpc_server: tuple[str, dict[str, Any]]) -> None:
    url, results = rpc_server
    validator = OpenRpcValidator()
    w3 = Web3(HTTPProvider(url))
    install_conformance_check(w3, validator)
    install_conformance_check(w3, validator)  # idempotent
    assert list(w3.middleware_onion.as_tuple_of_middleware())[-1].__name__ == (
        "ConformanceMiddleware"
    )
    _web3_cases(w3, results, validator)


def test_conforming_http_provider(rpc_server: tuple[str, dict[str, Any]]) -> None:
    url, results = rpc_server
    validator = OpenRpcValidator()
    w3 = Web3(ConformingHTTPProvider(url, validator=validator))
    _web3_cases(w3, results, validator)


def test_collect_mode(rpc_server: tuple[str, dict[str, Any]]) -> None:
    url, results = rpc_server
    validator = OpenRpcValidator()
    w3 = Web3(ConformingHTTPProvider(url, validator=validator, raise_on_error=False))
    results["eth_gasPrice"] = "0x07"
    assert w3.eth.gas_price == 7
    assert [v.method for v in validator.violations] == ["eth_gasPrice"]
