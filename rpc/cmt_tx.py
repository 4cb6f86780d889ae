"""The Travis `cmt_*` staking and governance transaction methods (SPEC §8), signed by the node's
unlocked accounts.

Each method takes ONE JSON object, as web3-cmt.js sends it: `from` (an account this node holds
unlocked: `rpc.node_signing.TransactionSigner`), an optional `nonce` (hex; default: the
sender's pending nonce) and the kind's fields in camelCase (table below). It builds the SPEC §5
envelope `{"type": "stake/<kind>", "data": {...snake_case fields...}}`, signs it as a legacy
EIP-155 transaction with no recipient, value 0, gasPrice 0 and gas 0, submits it through the
node's admission (the path of eth_sendRawTransaction), and answers once the block holding it has
committed, in Travis's shape:

    {"height": N, "hash": "0x<tx hash>",
     "check_tx": {"code": 0, "log": ""},
     "deliver_tx": {"code": 0, "data": "<base64>", "gasUsed": "<decimal>",
                    "fee": {"key": "R2FzRmVl", "value": "<wei, decimal>"}, "log": "<events>"}}

- `deliver_tx.code` is 0 when the receipt's status is 1 (else 1); `data` is the base64 of the
  result bytes: for updateCandidacyAccount the request id as decimal text (Travis: "MQ==" for
  request 1), for a governance proposal its id (below), else empty; `gasUsed` the receipt's;
  `fee` the fee charged (the receipt's gasUsed × the gas_price in force for the block), keyed
  by base64("GasFee") as Travis's Tendermint KVPair was, and `{}` for the free kinds (Travis's
  shape again); `log` the receipt's events as a JSON array of the module's event objects, or ""
  when there are none.
- Refused at admission is NOT a JSON-RPC error: the answer has height 0, the hash of the
  signed transaction, `check_tx: {"code": C, "log": "<why>"}` and `deliver_tx: {}`, where C is
  Travis's check_tx code (the backend maps the node's refusal):

  | C  | refusal                                                                 |
  |----|-------------------------------------------------------------------------|
  | 1  | malformed: a field's content does not decode (pub key, rate, signature, |
  |    | number range: the log names `data.<field>`), or the transaction itself  |
  | 5  | unknown candidate                                                       |
  | 6  | nonce too low or too high                                               |
  | 20 | insufficient funds (stake + fee)                                        |
  | 21 | any other staking rule; also other pool refusals (already known, full)  |

- JSON-RPC errors: a malformed request object (missing or unknown field, wrong JSON type, bad
  hex) is -32602 naming the field; a `from` this node cannot sign for is -32000 "unknown
  account" or "account locked"; no commit within `commit_timeout` seconds (default 30) is
  -32000 "timed out waiting for commit", and a transaction that left the pool without being
  committed is -32000 "... dropped ...", both with the transaction hash as `data`.

Field types are checked here, their content by the staking module (one place for each rule):
amounts are hex quantities (Travis's hexutil.Big), written into the envelope as decimal wei;
addresses are written lowercase; `pubKey`, `compRate`, `cubeBatch` and `sig` are strings passed
through; booleans are JSON booleans; `accountUpdateRequestId` is a JSON integer.

| method                           | kind                         | fields (? optional)          |
|----------------------------------|------------------------------|------------------------------|
| cmt_declareCandidacy             | declareCandidacy             | pubKey, maxAmount, compRate, |
|                                  |                              | description?                 |
| cmt_updateCandidacy              | updateCandidacy              | pubKey?, maxAmount?,         |
|                                  |                              | compRate?, description?      |
| cmt_withdrawCandidacy            | withdrawCandidacy            |                              |
| cmt_verifyCandidacy              | verifyCandidacy              | candidateAddress, verified?  |
|                                  |                              | (false, as Travis)           |
| cmt_activateCandidacy            | activateCandidacy            |                              |
| cmt_deactivateCandidacy          | deactivateCandidacy          |                              |
| cmt_setCompRate                  | setCompRate                  | delegatorAddress, compRate   |
| cmt_updateCandidacyAccount       | updateCandidacyAccount       | newCandidateAccount          |
| cmt_acceptCandidacyAccountUpdate | acceptCandidacyAccountUpdate | accountUpdateRequestId       |
| cmt_delegate                     | delegate                     | validatorAddress, amount,    |
|                                  |                              | cubeBatch?, sig?             |
| cmt_withdraw                     | withdraw                     | validatorAddress, amount,    |
|                                  |                              | completelyWithdraw?          |

The governance methods (SPEC §7, §8) go through the same path; their kinds are
`governance/propose/<type>` and `governance/vote`. Heights and timestamps are JSON integers,
`fileUrl`/`md5` strings (a JSON object as text, as Travis clients send them), `proposalId` the
base64 id cmt_queryProposals shows (0x hex of the 32 bytes works too), `answer` "Y" or "N".
Their refusals carry governance's check_tx codes (governance/errors.py): 1 malformed content
(a version not vX.Y.Z, an answer not Y/N, an id that is not 32 bytes, a height below 0), 5
unknown proposal, 20 insufficient funds, 21 any other rule (not a validator's owner, an expiry
in the past or both expiries, an unknown parameter or an unparsable value, a library version
this node does not carry, a vote on a decided proposal).

| method                    | kind                          | fields (? optional)                |
|---------------------------|-------------------------------|------------------------------------|
| cmt_proposeTransferFund   | governance/propose/           | transferFrom, transferTo, amount,  |
|                           | transfer_fund                 | reason?, expireTimestamp?,         |
|                           |                               | expireBlockHeight?                 |
| cmt_proposeChangeParam    | governance/propose/           | name, value, reason?,              |
|                           | change_param                  | expireTimestamp?,                  |
|                           |                               | expireBlockHeight?                 |
| cmt_proposeDeployLibEni   | governance/propose/           | name, version, fileUrl, md5,       |
|                           | deploy_libeni                 | reason?, deployTimestamp?,         |
|                           |                               | deployBlockHeight?                 |
| cmt_proposeRetireProgram  | governance/propose/           | preservedValidators?, reason?,     |
|                           | retire_program                | retiredBlockHeight?                |
| cmt_proposeUpgradeProgram | governance/propose/           | name, version, fileUrl, md5,       |
|                           | upgrade_program               | reason?, upgradeBlockHeight?       |
| cmt_vote                  | governance/vote               | proposalId, answer                 |

For a proposal, `deliver_tx.data` is its id: Travis's governance handler sets the result data
to the proposing transaction's hash, and Tendermint's JSON writes bytes as base64, so `data` is
base64 of the 32 hash bytes, the same text as the proposal's `Id` in cmt_queryProposals (and
what cmt_vote's `proposalId` takes). A vote's `data` is empty.

`cmt_sendRawTx(rawHex)` takes a transaction the client signed (any kind). A staking or
governance transaction is answered like the methods above, after its commit; any other with its
hash once admitted, as eth_sendRawTransaction. A refusal is the height-0 answer whatever the
kind (Travis broadcast every raw transaction with Tendermint's broadcast_tx_commit), bytes that
do not decode included (check_tx code 1); only a rawHex that is not hex is -32602. It needs no
node account, so every node serves it; the node-signed methods exist only where node-side
signing is enabled (`rpc.node_accounts`, devnets).

Waiting for the commit wakes on the node's block notification (`CommitSignal`, fed from the
application's commit listeners), never on a timer: after each block the transaction is looked
up in the chain, then in the pool.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Protocol

import trio
from eth_hash.auto import keccak

from rpc import formatting as fmt
from rpc.errors import InvalidInput, InvalidParams
from rpc.node_signing import TransactionSigner
from rpc.params import address, bool_param, data, json_object, optional_quantity, quantity

__all__ = [
    "COMMIT_TIMEOUT_S",
    "Admission",
    "GOVERNANCE_TX_METHODS",
    "STAKING_TX_METHODS",
    "TX_METHODS",
    "CheckTx",
    "CmtTxApi",
    "CmtTxBackend",
    "CommitSignal",
    "DeliverTx",
    "TxCall",
    "committed_json",
    "envelope",
    "parse_call",
    "rejected_json",
    "unsigned_fields",
]

COMMIT_TIMEOUT_S: Final = 30.0
GAS_FEE_KEY: Final = base64.b64encode(b"GasFee").decode()  # "R2FzRmVl", Travis's KVPair key
MAX_NONCE: Final = 2**64 - 1


# -- the backend ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckTx:
    """Admission's verdict: code 0 when admitted, else Travis's check_tx code and why."""

    code: int
    log: str = ""


@dataclass(frozen=True)
class Admission:
    """What admission made of a raw transaction: the verdict, and whether it was a staking or
    governance (system) transaction, which cmt_sendRawTx waits for."""

    check: CheckTx
    system: bool


@dataclass(frozen=True)
class DeliverTx:
    """A committed transaction's outcome, read from its block and receipt."""

    height: int
    success: bool  # the receipt's status
    data: bytes  # the result bytes (an account update's request id as text, a proposal's id)
    gas_used: int
    fee: int  # wei charged to the sender
    log: str  # the receipt's events as a JSON array, or ""


class CmtTxBackend(Protocol):
    """What the methods need of the node (`cybermiles_node.application.staking_txs`)."""

    @property
    def chain_id(self) -> int: ...

    def pending_nonce(self, sender: bytes) -> int: ...

    def submit(self, raw: bytes) -> Admission:
        """Admit a signed transaction as eth_sendRawTransaction does; never raises a refusal."""
        ...

    def delivered(self, tx_hash: bytes) -> DeliverTx | None:
        """The outcome if the transaction is in a committed block, else None."""
        ...

    def is_pending(self, tx_hash: bytes) -> bool:
        """Whether the transaction still waits in the pool."""
        ...


class CommitSignal:
    """Wakes every waiter once per committed block (the node calls `notify` on commit)."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self) -> None:
        event, self._event = self._event, trio.Event()
        event.set()

    async def wait(self) -> None:
        await self._event.wait()


# -- parameters ----------------------------------------------------------------------------------
Parser = Callable[[object, str], object]


def _text(v: object, name: str) -> str:
    if type(v) is str:
        return v
    raise InvalidParams(f"invalid {name}: expected a string, got {type(v).__name__}")


def _wei(v: object, name: str) -> str:
    """A hex quantity (Travis's hexutil.Big), as the envelope's decimal wei string."""
    return str(quantity(v, name))


def _account(v: object, name: str) -> str:
    return fmt.d(address(v, name))


def _integer(v: object, name: str) -> int:
    if type(v) is int:
        return v
    raise InvalidParams(f"invalid {name}: expected an integer, got {type(v).__name__}")


def _description(v: object, name: str) -> dict[str, str]:
    """An object of strings; which keys exist is the staking module's rule."""
    obj = json_object(v, name)
    return {key: _text(value, f"{name}.{key}") for key, value in obj.items()}


@dataclass(frozen=True)
class Field:
    param: str  # camelCase, in the request object
    wire: str  # snake_case, in the envelope's data
    parse: Parser
    required: bool = True
    default: object = None  # written when an optional field is omitted; None: left out


@dataclass(frozen=True)
class TxMethod:
    kind: str
    fields: tuple[Field, ...] = ()


_AMOUNT = Field("amount", "amount", _wei)
_VALIDATOR = Field("validatorAddress", "validator_address", _account)
_DESCRIPTION = Field("description", "description", _description, required=False)

_REASON = Field("reason", "reason", _text, required=False)
_EXPIRE = (
    _REASON,
    Field("expireTimestamp", "expire_timestamp", _integer, required=False),
    Field("expireBlockHeight", "expire_block_height", _integer, required=False),
)
_RELEASE = (
    Field("name", "name", _text),
    Field("version", "version", _text),
    Field("fileUrl", "file_url", _text),
    Field("md5", "md5", _text),
    _REASON,
)

STAKING_TX_METHODS: Final[Mapping[str, TxMethod]] = {
    "cmt_declareCandidacy": TxMethod(
        "stake/declareCandidacy",
        (
            Field("pubKey", "pub_key", _text),
            Field("maxAmount", "max_amount", _wei),
            Field("compRate", "comp_rate", _text),
            _DESCRIPTION,
        ),
    ),
    "cmt_updateCandidacy": TxMethod(
        "stake/updateCandidacy",
        (
            Field("pubKey", "pub_key", _text, required=False),
            Field("maxAmount", "max_amount", _wei, required=False),
            Field("compRate", "comp_rate", _text, required=False),
            _DESCRIPTION,
        ),
    ),
    "cmt_withdrawCandidacy": TxMethod("stake/withdrawCandidacy"),
    "cmt_verifyCandidacy": TxMethod(
        "stake/verifyCandidacy",
        (
            Field("candidateAddress", "candidate_address", _account),
            Field("verified", "verified", bool_param, required=False, default=False),
        ),
    ),
    "cmt_activateCandidacy": TxMethod("stake/activateCandidacy"),
    "cmt_deactivateCandidacy": TxMethod("stake/deactivateCandidacy"),
    "cmt_setCompRate": TxMethod(
        "stake/setCompRate",
        (
            Field("delegatorAddress", "delegator_address", _account),
            Field("compRate", "comp_rate", _text),
        ),
    ),
    "cmt_updateCandidacyAccount": TxMethod(
        "stake/updateCandidacyAccount",
        (Field("newCandidateAccount", "new_candidate_account", _account),),
    ),
    "cmt_acceptCandidacyAccountUpdate": TxMethod(
        "stake/acceptCandidacyAccountUpdate",
        (Field("accountUpdateRequestId", "account_update_request_id", _integer),),
    ),
    "cmt_delegate": TxMethod(
        "stake/delegate",
        (
            _VALIDATOR,
            _AMOUNT,
            Field("cubeBatch", "cube_batch", _text, required=False),
            Field("sig", "sig", _text, required=False),
        ),
    ),
    "cmt_withdraw": TxMethod(
        "stake/withdraw",
        (
            _VALIDATOR,
            _AMOUNT,
            Field("completelyWithdraw", "completely_withdraw", bool_param, required=False),
        ),
    ),
}

GOVERNANCE_TX_METHODS: Final[Mapping[str, TxMethod]] = {
    "cmt_proposeTransferFund": TxMethod(
        "governance/propose/transfer_fund",
        (
            Field("transferFrom", "transfer_from", _account),
            Field("transferTo", "transfer_to", _account),
            _AMOUNT,
            *_EXPIRE,
        ),
    ),
    "cmt_proposeChangeParam": TxMethod(
        "governance/propose/change_param",
        (Field("name", "name", _text), Field("value", "value", _text), *_EXPIRE),
    ),
    "cmt_proposeDeployLibEni": TxMethod(
        "governance/propose/deploy_libeni",
        (
            *_RELEASE,
            Field("deployTimestamp", "deploy_timestamp", _integer, required=False),
            Field("deployBlockHeight", "deploy_block_height", _integer, required=False),
        ),
    ),
    "cmt_proposeRetireProgram": TxMethod(
        "governance/propose/retire_program",
        (
            Field("preservedValidators", "preserved_validators", _text, required=False),
            _REASON,
            Field("retiredBlockHeight", "retired_block_height", _integer, required=False),
        ),
    ),
    "cmt_proposeUpgradeProgram": TxMethod(
        "governance/propose/upgrade_program",
        (*_RELEASE, Field("upgradeBlockHeight", "upgrade_block_height", _integer, required=False)),
    ),
    "cmt_vote": TxMethod(
        "governance/vote",
        (Field("proposalId", "proposal_id", _text), Field("answer", "answer", _text)),
    ),
}

TX_METHODS: Final[Mapping[str, TxMethod]] = {**STAKING_TX_METHODS, **GOVERNANCE_TX_METHODS}


@dataclass(frozen=True)
class TxCall:
    """One parsed request: who signs, with which nonce (None: pending), what envelope."""

    sender: bytes
    nonce: int | None
    kind: str
    data: Mapping[str, object]


def parse_call(method: TxMethod, params: object) -> TxCall:
    """The request object of `method`, checked field by field (InvalidParams names the field).
    A null field counts as omitted, as in eth_sendTransaction."""
    obj = json_object(params, "params")
    known = {"from", "nonce", *(f.param for f in method.fields)}
    unknown = sorted(key for key in obj if key not in known)
    if unknown:
        raise InvalidParams(f"invalid params: unknown field {unknown[0][:40]!r}")
    if obj.get("from") is None:
        raise InvalidParams("missing from")
    sender = address(obj["from"], "from")
    nonce = optional_quantity(obj.get("nonce"), "nonce")
    if nonce is not None and nonce > MAX_NONCE:
        raise InvalidParams("invalid nonce: above 2^64 - 1")
    data: dict[str, object] = {}
    for f in method.fields:
        value = obj.get(f.param)
        if value is not None:
            data[f.wire] = f.parse(value, f.param)
        elif f.required:
            raise InvalidParams(f"missing {f.param}")
        elif f.default is not None:
            data[f.wire] = f.default
    return TxCall(sender, nonce, method.kind, data)


def envelope(call: TxCall) -> bytes:
    """The transaction's data: SPEC §5's JSON, compact, fields in the table's order."""
    return json.dumps({"type": call.kind, "data": call.data}, separators=(",", ":")).encode()


def unsigned_fields(call: TxCall, nonce: int, chain_id: int) -> dict[str, Any]:
    """The legacy transaction SPEC §5 recognises as a system transaction (eth-account names)."""
    return {
        "nonce": nonce,
        "gasPrice": 0,
        "gas": 0,
        "to": b"",
        "value": 0,
        "data": envelope(call),
        "chainId": chain_id,
    }


# -- results -------------------------------------------------------------------------------------
def rejected_json(tx_hash: bytes, check: CheckTx) -> dict[str, Any]:
    return {
        "height": 0,
        "hash": fmt.d(tx_hash),
        "check_tx": {"code": check.code, "log": check.log},
        "deliver_tx": {},
    }


def committed_json(tx_hash: bytes, done: DeliverTx) -> dict[str, Any]:
    fee = {"key": GAS_FEE_KEY, "value": str(done.fee)} if done.fee else {}
    return {
        "height": done.height,
        "hash": fmt.d(tx_hash),
        "check_tx": {"code": 0, "log": ""},
        "deliver_tx": {
            "code": 0 if done.success else 1,
            "data": base64.b64encode(done.data).decode(),
            "gasUsed": str(done.gas_used),
            "fee": fee,
            "log": done.log,
        },
    }


# -- the methods ---------------------------------------------------------------------------------
class CmtTxApi:
    """The methods of `TX_METHODS` over a backend, the unlocked accounts and commit signals."""

    def __init__(
        self,
        backend: CmtTxBackend,
        accounts: TransactionSigner | None,
        commits: CommitSignal,
        *,
        commit_timeout: float = COMMIT_TIMEOUT_S,
    ) -> None:
        self.backend = backend
        self.accounts = accounts
        self.commits = commits
        self.commit_timeout = commit_timeout

    def install(self, dispatcher: Any) -> None:
        """cmt_sendRawTx always; the node-signed methods when the node signs (`accounts`)."""
        dispatcher.register("cmt_sendRawTx", self.cmt_sendRawTx)
        if self.accounts is None:
            return
        for name, method in sorted(TX_METHODS.items()):
            dispatcher.register(name, partial(self.send, method, self.accounts))

    async def send(
        self, method: TxMethod, signer: TransactionSigner, params: object
    ) -> dict[str, Any]:
        call = parse_call(method, params)
        signer.require(call.sender)
        nonce = call.nonce if call.nonce is not None else self.backend.pending_nonce(call.sender)
        raw = signer.sign(call.sender, unsigned_fields(call, nonce, self.backend.chain_id))
        tx_hash = keccak(raw)
        check = self.backend.submit(raw).check
        if check.code:
            return rejected_json(tx_hash, check)
        return committed_json(tx_hash, await self._committed(tx_hash))

    async def cmt_sendRawTx(self, raw_hex: object) -> dict[str, Any] | str:
        """A client-signed transaction: a staking or governance one is answered like the
        methods above, once committed; any other, once admitted, with its hash (as
        eth_sendRawTransaction). A refusal is Travis's height-0 answer whatever the kind,
        undecodable bytes included (check_tx code 1)."""
        raw = data(raw_hex, "rawTx")
        tx_hash = keccak(raw)
        admission = self.backend.submit(raw)
        if admission.check.code:
            return rejected_json(tx_hash, admission.check)
        if not admission.system:
            return fmt.d(tx_hash)
        return committed_json(tx_hash, await self._committed(tx_hash))

    async def _committed(self, tx_hash: bytes) -> DeliverTx:
        """Wait, block by block, until the transaction is committed (or leaves the pool)."""
        with trio.move_on_after(self.commit_timeout):
            while True:
                done = self.backend.delivered(tx_hash)
                if done is not None:
                    return done
                if not self.backend.is_pending(tx_hash):
                    raise InvalidInput(
                        "transaction dropped from the pool without being committed",
                        fmt.d(tx_hash),
                    )
                await self.commits.wait()
        raise InvalidInput("timed out waiting for commit", fmt.d(tx_hash))
