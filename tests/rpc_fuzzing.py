"""Hostile JSON-RPC inputs and the properties every answer to them must have.

Shared by the in-process fuzz test (tests/unit/test_rpc_fuzz.py, a real ChainApp + EthApi +
Dispatcher) and the real-process one (tests/e2e/test_rpc_fuzz.py, a devnet over HTTP).

The inputs are client mistakes: wrong arities, wrong JSON types, huge and negative numbers,
bad hex, deep nesting, random bytes as raw transactions (0x00/0x7f type bytes included), and
valid parameter lists with one value or one object field replaced by garbage, alone or in mixed
batches. None of them is a valid state-changing request, so the properties are: no -32603 (a
client mistake is never an internal error), every request is answered on its own, and the
chain does not move.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import strategies as st

from rpc.cmt_tx import TX_METHODS

Json = Any
INTERNAL_ERROR = -32603

# Parameters that execute EVM code are kept cheap: the RPC gas cap and wall-clock limit bound
# eth_call/eth_estimateGas (tests/unit/test_rpc_execution.py), but random init code at the cap
# may spin for the whole 5 s limit, which the fuzz budget cannot afford per example. Parsing
# is still fuzzed: only a well-formed gas above this is lowered, and a missing gas is filled in.
MAX_FUZZ_GAS = 200_000
EXECUTING_METHODS = frozenset(
    {
        "debug_traceCall",
        "eth_call",
        "eth_estimateGas",
        "eth_createAccessList",
        "eth_sendTransaction",
        "eth_signTransaction",
    }
)
# The cmt_* staking and governance transaction methods sign for `from` and wait for the commit:
# `cheap` pins their nonce to the funded account's spent nonce 0, so none is admitted and none
# waits.
SIGNING_TX_METHODS = frozenset(TX_METHODS)
STAKING_PUB_KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="  # base64 of bytes 1..32


@dataclass(frozen=True)
class Known:
    """Real values of the chain under test, so that fuzzed params reach deep parsing."""

    funded: str  # an unlocked, funded account that has sent its nonce-0 transaction
    other: str  # an account without a key here
    block_hash: str
    tx_hash: str


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


BAD_STRINGS = [
    "",
    "0x",
    "0X",
    "0x-1",
    "0x+1",
    "-0x1",
    "0x1_0",
    " 0x1",
    "0x1 ",
    "0xg",
    "0x0g",
    "0x00",
    "0x01",
    "0x" + "f" * 65,
    "0x" + "1" * 200,
    "1",
    "-1",
    "latest ",
    "LATEST",
    "0x\u00e9",
    "\u0000",
    "null",
    "[]",
]
TAGS = ["latest", "earliest", "pending", "safe", "finalized"]
FIELD_NAMES = [
    "from",
    "to",
    "gas",
    "gasPrice",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "value",
    "data",
    "input",
    "nonce",
    "chainId",
    "type",
    "accessList",
    "address",
    "storageKeys",
    "topics",
    "fromBlock",
    "toBlock",
    "blockHash",
    "blockNumber",
    "requireCanonical",
]


def raw_txs() -> st.SearchStrategy[str]:
    """Random bytes as raw transactions, with every kind of first byte (0x00 and 0x7f too)."""
    first = st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x7F, 0x80, 0xC0, 0xF8, 0xFF])
    return st.builds(lambda b, rest: _hex(bytes([b]) + rest), first, st.binary(max_size=300))


def scalars(known: Known) -> st.SearchStrategy[Json]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**300), max_value=2**300),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(BAD_STRINGS + TAGS),
        st.integers(min_value=0, max_value=2**260).map(hex),
        st.integers(min_value=1, max_value=2**64).map(lambda n: "0x" + f"{n:x}".zfill(66)),
        st.binary(max_size=40).map(_hex),
        st.binary(min_size=20, max_size=20).map(_hex),
        st.binary(min_size=32, max_size=32).map(_hex),
        st.sampled_from([known.funded, known.other, known.block_hash, known.tx_hash]),
        st.sampled_from([known.funded.upper().replace("0X", "0x"), known.funded[:41]]),
        raw_txs(),
        st.text(max_size=12),
    )


def nested(depth: int) -> Json:
    """[[[...]]] `depth` deep (under the dispatcher's JSON recursion limit of 2,000)."""
    value: Json = []
    for _ in range(depth):
        value = [value]
    return value


def values(known: Known) -> st.SearchStrategy[Json]:
    """Any JSON value, with field names that Ethereum objects use and some deep nesting."""
    leaf = scalars(known)
    tree = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), inner, max_size=5),
        ),
        max_leaves=12,
    )
    return st.one_of(tree, st.sampled_from([nested(50), nested(1500), {"to": nested(1000)}]))


TRACE_OPTIONS = {
    "disableStack": False,
    "disableStorage": True,
    "enableMemory": True,
    "enableReturnData": True,
    "limit": 100,
    "timeout": "5s",
}
CALL_TRACER_OPTIONS = {"tracer": "callTracer", "tracerConfig": {"onlyTopCall": False}}


def valid_params(known: Known) -> dict[str, list[Json]]:
    """One well-formed parameter list per method, to be broken one value at a time."""
    access = [{"address": known.other, "storageKeys": ["0x0", "0x" + "00" * 32]}]
    call = {
        "from": known.funded,
        "to": known.other,
        "value": "0x1",
        "gas": "0x5208",
        "gasPrice": "0x77359400",
        "data": "0x",
        "accessList": access,
    }
    log_filter = {"fromBlock": "0x0", "toBlock": "latest", "address": known.other, "topics": []}
    addr_block = [known.funded, "latest"]
    return {
        "eth_call": [call, "latest"],
        "eth_estimateGas": [call, "latest"],
        "eth_createAccessList": [call, "latest"],
        "eth_sendTransaction": [call],
        "eth_signTransaction": [call],
        "eth_sendRawTransaction": ["0x02"],
        "cmt_sendRawTx": ["0x02"],
        "eth_getBalance": addr_block,
        "eth_getCode": addr_block,
        "eth_getTransactionCount": addr_block,
        "eth_getStorageAt": [known.funded, "0x0", "latest"],
        "eth_getProof": [known.funded, ["0x0", "0x1"], {"blockHash": known.block_hash}],
        "eth_getBlockByNumber": ["latest", False],
        "eth_getBlockByHash": [known.block_hash, True],
        "eth_getBlockReceipts": ["latest"],
        "eth_getBlockTransactionCountByNumber": ["latest"],
        "eth_getBlockTransactionCountByHash": [known.block_hash],
        "eth_getUncleCountByBlockNumber": ["latest"],
        "eth_getUncleCountByBlockHash": [known.block_hash],
        "eth_getTransactionByHash": [known.tx_hash],
        "eth_getRawTransactionByHash": [known.tx_hash],
        "eth_getTransactionReceipt": [known.tx_hash],
        "eth_getTransactionByBlockHashAndIndex": [known.block_hash, "0x0"],
        "eth_getTransactionByBlockNumberAndIndex": ["latest", "0x0"],
        "eth_feeHistory": ["0x2", "latest", [25, 75]],
        "eth_getLogs": [log_filter],
        "eth_newFilter": [log_filter],
        "eth_getFilterChanges": ["0x1"],
        "eth_getFilterLogs": ["0x1"],
        "eth_uninstallFilter": ["0x1"],
        "eth_subscribe": ["logs", {"address": known.other}],
        "eth_unsubscribe": ["0x1"],
        "web3_sha3": ["0x68656c6c6f"],
        "cmt_queryParams": [1],
        "cmt_queryValidators": [1],
        "cmt_queryValidator": [known.funded, 1],
        "cmt_queryDelegator": [known.funded, 1],
        "cmt_queryProposals": [1],
        "txpool_inspect": [],
        "cmt_syncing": [],
        "cmt_getBlockByNumber": [1, True],
        "cmt_getTransactionByHash": [known.tx_hash],
        "cmt_getTransactionFromBlock": [1, 0],
        "cmt_pendingTransactionCount": [],
        "cmt_getPendingTransactions": [0],
        "debug_traceTransaction": [known.tx_hash, TRACE_OPTIONS],
        "debug_traceCall": [call, "latest", CALL_TRACER_OPTIONS],
        "debug_traceBlockByNumber": ["latest", CALL_TRACER_OPTIONS],
        "debug_traceBlockByHash": [known.block_hash, TRACE_OPTIONS],
        "trace_transaction": [known.tx_hash],
        **personal_params(known),
        **tx_method_params(known),
    }


HELLO = "0x68656c6c6f"
# A signature that recovers (of HELLO by the key 0x11..11): ecRecover's template must succeed.
HELLO_SIGNATURE = _hex(
    bytes(Account.sign_message(encode_defunct(primitive=b"hello"), b"\x11" * 32).signature)
)
TYPED_DATA: dict[str, Json] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"},
        ],
        "Note": [{"name": "to", "type": "address"}, {"name": "text", "type": "string"}],
    },
    "primaryType": "Note",
    "domain": {"name": "fuzz", "chainId": 1},
    "message": {"to": "0x" + "09" * 20, "text": "hello"},
}


def personal_params(known: Known) -> dict[str, list[Json]]:
    """personal_* and the signing methods (rpc/personal.py). `cheap` keeps them stateless: a
    new account's passphrase is always refused (empty), and the funded account is a devnet key
    (unlock and lock leave it as it is)."""
    return {
        "personal_newAccount": [""],
        "personal_unlockAccount": [known.funded, "fuzz-passphrase", 60],
        "personal_lockAccount": [known.funded],
        "personal_listAccounts": [],
        "personal_sign": [HELLO, known.funded, "fuzz-passphrase"],
        "personal_ecRecover": [HELLO, HELLO_SIGNATURE],
        "eth_sign": [known.funded, HELLO],
        "eth_signTypedData_v4": [known.funded, TYPED_DATA],
    }


def tx_method_params(known: Known) -> dict[str, list[Json]]:
    """A well-formed request object per cmt_* transaction method, every field given."""
    sender = {"from": known.funded, "nonce": "0x0"}
    validator = {"validatorAddress": known.other, "amount": "0xde0b6b3a7640000"}
    description = {"name": "fuzz", "website": "https://example.com", "email": ""}
    objects: dict[str, dict[str, Json]] = {
        "cmt_declareCandidacy": {
            "pubKey": STAKING_PUB_KEY,
            "maxAmount": "0x3635c9adc5dea00000",
            "compRate": "0.2",
            "description": description,
        },
        "cmt_updateCandidacy": {
            "pubKey": STAKING_PUB_KEY,
            "maxAmount": "0x1",
            "compRate": "1/5",
            "description": description,
        },
        "cmt_withdrawCandidacy": {},
        "cmt_verifyCandidacy": {"candidateAddress": known.other, "verified": True},
        "cmt_activateCandidacy": {},
        "cmt_deactivateCandidacy": {},
        "cmt_setCompRate": {"delegatorAddress": known.other, "compRate": "0.1"},
        "cmt_updateCandidacyAccount": {"newCandidateAccount": known.other},
        "cmt_acceptCandidacyAccountUpdate": {"accountUpdateRequestId": 1},
        "cmt_delegate": {**validator, "cubeBatch": "01", "sig": "0x" + "ab" * 64},
        "cmt_withdraw": {**validator, "completelyWithdraw": False},
        **_governance_objects(known),
    }
    assert set(objects) == SIGNING_TX_METHODS  # a new method gets its template here
    return {name: [{**sender, **fields}] for name, fields in objects.items()}


def _governance_objects(known: Known) -> dict[str, dict[str, Json]]:
    expiry = {"reason": "fuzz", "expireBlockHeight": 1_000}
    release = {
        "name": "reverse",
        "version": "v2.0.0",
        "fileUrl": '{"linux": ["https://example.invalid/libreverse.so"]}',
        "md5": '{"linux": "00"}',
        "reason": "fuzz",
    }
    return {
        "cmt_proposeTransferFund": {
            "transferFrom": known.funded,
            "transferTo": known.other,
            "amount": "0xde0b6b3a7640000",
            **expiry,
        },
        "cmt_proposeChangeParam": {"name": "gas_price", "value": "3000000000", **expiry},
        "cmt_proposeDeployLibEni": {**release, "deployBlockHeight": 1_000},
        "cmt_proposeRetireProgram": {
            "preservedValidators": "",
            "reason": "fuzz",
            "retiredBlockHeight": 1_000,
        },
        "cmt_proposeUpgradeProgram": {
            **release,
            "name": "cybermiles",
            "version": "v9.0.0",
            "upgradeBlockHeight": 1_000,
        },
        "cmt_vote": {"proposalId": "AA" * 21 + "A=", "answer": "Y"},
    }


def _paths(value: Json, prefix: tuple[int | str, ...] = ()) -> list[tuple[int | str, ...]]:
    """Every place inside a params tree where a value can be replaced."""
    children: list[tuple[int | str, Json]] = []
    if isinstance(value, list):
        children = list(enumerate(value))
    elif isinstance(value, dict):
        children = list(value.items())
    out: list[tuple[int | str, ...]] = []
    for key, child in children:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _replaced(value: Json, path: tuple[int | str, ...], garbage: Json) -> Json:
    if not path:
        return garbage
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        assert isinstance(head, int)
        return [_replaced(v, rest, garbage) if i == head else v for i, v in enumerate(value)]
    return {**value, head: _replaced(value[head], rest, garbage)}


def _broken(template: list[Json], garbage: Json, where: int, field: str) -> list[Json]:
    """`template` with one value anywhere inside it replaced by `garbage`, a field added to one
    of its objects, or one argument too many."""
    paths = _paths(template)
    choice = where % (len(paths) + 2)
    if choice < len(paths):
        return list(_replaced(template, paths[choice], garbage))
    if choice == len(paths):
        return [*template, garbage]
    objects = [p for p in paths if isinstance(_at(template, p), dict)]
    if not objects:
        return [*template, garbage]
    target = objects[where % len(objects)]
    return list(_replaced(template, target, {**_at(template, target), field: garbage}))


def _at(value: Json, path: tuple[int | str, ...]) -> Json:
    for key in path:
        value = value[key]
    return value


def params_for(method: str, known: Known) -> st.SearchStrategy[Json]:
    """Hostile params of `method`: anything at all, or its valid params with one thing broken."""
    garbage = values(known)
    anything = st.one_of(
        st.lists(garbage, max_size=5),
        st.dictionaries(st.text(max_size=6), garbage, max_size=3),  # named params
        garbage,  # not even an array
    )
    template = valid_params(known).get(method)
    if template is None:
        return anything.map(lambda p: cheap(method, p, known))
    # Replacements favour the values parsers get wrong: malformed strings and raw bytes.
    replacement = st.one_of(st.sampled_from(BAD_STRINGS), raw_txs(), garbage)
    broken = st.builds(
        lambda g, w, f: _broken(template, g, w, f),
        replacement,
        st.integers(min_value=0, max_value=10_000),
        st.sampled_from(FIELD_NAMES),
    )
    return st.one_of(anything, broken, broken, broken).map(lambda p: cheap(method, p, known))


def sweep_values(known: Known) -> list[Json]:
    """The values a one-at-a-time sweep puts in every place of every valid parameter list."""
    huge = [hex(2**256 - 1), hex(2**255), hex(2**64), hex(2**63)]
    odd: list[Json] = [None, True, 0, -1, 1.5, 2**256, -(2**256), [], {}, [[]], {"": None}]
    raws = ["0x00", "0x7f", "0x00" + "c0" * 3, "0x7fc0", "0xc0", "0x80"]
    return BAD_STRINGS + TAGS + huge + odd + raws + [nested(100), known.other, known.block_hash]


def sweep(method: str, known: Known) -> list[Json]:
    """Deterministic hostile params of `method`: each sweep value at each place of its valid
    params, the valid params cut short (wrong arity), and one argument too many."""
    template = valid_params(known).get(method, [])
    garbage = sweep_values(known)
    cases: list[Json] = [template[:n] for n in range(len(template))]
    cases += [[*template, g] for g in garbage[:5]]
    for path in _paths(template):
        cases += [_replaced(template, path, g) for g in garbage]
    return [cheap(method, c, known) for c in cases]


def cheap(method: str, params: Json, known: Known) -> Json:
    """Keep executing methods bounded and stateless (see MAX_FUZZ_GAS): a call object that
    would parse gets a small gas, a signed transaction reuses the funded account's spent
    nonce 0, so no fuzzed eth_sendTransaction or cmt_* staking transaction can ever be
    admitted, and personal_newAccount's passphrase is made empty (refused: no key file)."""
    if method == "personal_newAccount":
        # Any non-empty string would create a key file: the fuzz only ever sends refused ones.
        if isinstance(params, list) and params and isinstance(params[0], str):
            return ["", *params[1:]]
        return params
    signing = method in SIGNING_TX_METHODS
    if not (signing or method in EXECUTING_METHODS) or not isinstance(params, list) or not params:
        return params
    obj = params[0]
    if not isinstance(obj, dict):
        return params
    fixed = dict(obj)
    if signing:
        return [{**fixed, "nonce": "0x0"}, *params[1:]]
    gas = fixed.get("gas")
    if gas is None or (isinstance(gas, str) and _quantity_above(gas, MAX_FUZZ_GAS)):
        fixed["gas"] = hex(MAX_FUZZ_GAS)
    if method == "eth_sendTransaction":
        fixed["nonce"] = "0x0"
    return [fixed, *params[1:]]


def _quantity_above(text: str, limit: int) -> bool:
    try:
        return int(text, 16) > limit
    except ValueError:
        return False


def request(method: str, params: Json, rid: int) -> dict[str, Json]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def requests_for(methods: Sequence[str], known: Known) -> st.SearchStrategy[dict[str, Json]]:
    """One hostile request to any of `methods`."""
    return st.sampled_from(sorted(methods)).flatmap(
        lambda m: params_for(m, known).map(lambda p: request(m, p, 1))
    )


def mixed_batches(
    methods: Sequence[str], known: Known, max_size: int = 12
) -> st.SearchStrategy[list[Json]]:
    """Batches of hostile requests, raw-tx submissions and non-request entries, ids 0..n-1."""
    entry: st.SearchStrategy[Json] = st.one_of(
        requests_for(methods, known),
        raw_txs().map(lambda raw: request("eth_sendRawTransaction", [raw], 1)),
        st.sampled_from([1, "x", None, [], {"jsonrpc": "2.0"}]),
    )

    def numbered(entries: list[Json]) -> list[Json]:
        return [{**e, "id": i} if isinstance(e, dict) else e for i, e in enumerate(entries)]

    return st.lists(entry, min_size=1, max_size=max_size).map(numbered)


def check_answer(sent: Json, body: bytes | str | None) -> None:
    """The answer to `sent` (one request or a batch) is well-formed JSON-RPC, has one response
    per request that has an id, and none of them is -32603."""
    assert body is not None, f"no answer to {_short(sent)}"
    answer = json.loads(body)
    if isinstance(sent, list):
        assert isinstance(answer, list), (_short(sent), answer)
        for item in answer:
            _check_response(item, sent)
        expected = sum(1 for e in sent if not isinstance(e, dict) or "id" in e)
        assert len(answer) == expected, (_short(sent), answer)
    else:
        assert isinstance(answer, dict), answer
        _check_response(answer, sent)


def _check_response(item: Json, sent: Json) -> None:
    assert isinstance(item, dict) and item.get("jsonrpc") == "2.0", item
    assert ("result" in item) != ("error" in item), item
    error = item.get("error")
    if error is not None:
        assert type(error.get("code")) is int and isinstance(error.get("message"), str), item
        assert error["code"] != INTERNAL_ERROR, f"-32603 for {_short(sent)}: {error}"


def _short(value: Json) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 600 else text[:600] + "..."


def chain_snapshot(
    call: Callable[[str, list[Json]], Json], accounts: Sequence[str]
) -> Mapping[str, Json]:
    """What garbage must not change: the head, the funded balances and nonces, the pool, the
    node's accounts."""
    snapshot: dict[str, Json] = {
        "head": call("eth_getBlockByNumber", ["latest", False])["hash"],
        "txpool": call("txpool_status", []),
        "accounts": call("personal_listAccounts", []),
    }
    for account in accounts:
        snapshot[account] = (
            call("eth_getBalance", [account, "latest"]),
            call("eth_getTransactionCount", [account, "pending"]),
        )
    return snapshot
