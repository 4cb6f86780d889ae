"""eth_sendTransaction and eth_signTransaction: transactions signed by the node's accounts.

SPEC §8: node-side signing is off unless enabled (`rpc.node_accounts`; devnets enable it). The
keys come from an `AccountsBackend` (rpc.personal; the node's keystore accounts once unlocked,
and a devnet's mnemonic accounts, always unlocked), so an account that is locked or unknown is
refused the same way by every method that signs for a `from`: these two and the cmt_* tx methods
of rpc/cmt_tx.py, all through `TransactionSigner`.

Missing fields are filled the way Travis (geth 1.8) filled them, with one kindness:
- nonce: the sender's pending nonce;
- gas: 90,000 (Travis's default), or the estimate when the transaction needs more, so a
  contract deployment without `gas` succeeds instead of running out of gas;
- price: a legacy transaction at the chain's `gas_price` parameter (in state, per block) when
  no fee field and no `type: 2` is given, as Travis did; with `gasPrice` a legacy transaction
  at that price; with `maxFeePerGas`, `maxPriorityFeePerGas` or `type: 2` an EIP-1559
  transaction whose missing fields take geth's defaults: tip = eth_maxPriorityFeePerGas, fee
  cap = 2 x the next block's base fee + tip (both pay `gas_price` on either profile).

eth_signTransaction answers `{"raw", "tx"}` as geth and the execution-apis spec do; nonces and
gas limits no node would run (EIP-2681, 2^64) are refused before signing.

Impersonation (devnets, rpc/dev_state.py): eth_sendTransaction from an address an `Impersonator`
covers, and whose key the node does not hold, is filled the same way and handed to the
impersonator instead of being signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from evm.errors import TxRejected
from evm.transactions import decode_transaction
from rpc import formatting as fmt
from rpc.errors import InvalidParams, RpcError
from rpc.eth import EthApi
from rpc.params import (
    address,
    optional_address,
    optional_data,
    optional_quantity,
    to_checksum,
)
from rpc.personal import AccountsBackend

DEFAULT_GAS: Final = 90_000
MAX_NONCE: Final = 2**64 - 2  # EIP-2681: a nonce of 2^64 - 1 can never be used
MAX_GAS: Final = 2**64 - 1


def _check_limits(fields: Mapping[str, Any]) -> None:
    """Refuse to sign what every node would refuse to run (evm/transactions.py's limits)."""
    if fields["nonce"] > MAX_NONCE:
        raise InvalidParams(f"nonce: at most 2^64 - 2 (EIP-2681), got {fields['nonce']}")
    if fields["gas"] > MAX_GAS:
        raise InvalidParams(f"gas: at most 2^64 - 1, got {fields['gas']}")


class TransactionSigner:
    """Signs transactions for the accounts `backend` holds unlocked."""

    def __init__(self, backend: AccountsBackend) -> None:
        self.backend = backend

    def require(self, sender: bytes) -> None:
        """Refuse (-32000 "unknown account", "account locked") a sender it cannot sign for."""
        self.backend.unlocked_key(sender)

    def sign(self, sender: bytes, fields: Mapping[str, Any]) -> bytes:
        """The raw signed transaction of `fields` (eth-account's names) by `sender`."""
        key = self.backend.unlocked_key(sender)
        # Imported at the first signature: eth-account takes a tenth of a second to load,
        # and a node's RPC should answer before that (issue #12's start-up time).
        from eth_account import Account

        try:
            return bytes(Account.sign_transaction(dict(fields), key).raw_transaction)
        except (TypeError, ValueError) as exc:  # eth-account's verdict on the field mix
            raise InvalidParams(f"transaction: {exc}") from None


class Impersonator(Protocol):
    """Sends transactions for addresses whose keys the node lacks (rpc/dev_state.py)."""

    def covers(self, sender: bytes) -> bool: ...
    def send(self, sender: bytes, fields: Mapping[str, Any]) -> bytes:
        """Submit the filled `fields` as `sender`'s transaction; its hash."""
        ...


class SendTransactionApi:
    """Fills a transaction object's missing fields, signs it with `signer`, and submits it like
    a raw transaction (eth_sendTransaction) or returns it (eth_signTransaction)."""

    def __init__(
        self, eth: EthApi, signer: TransactionSigner, impersonator: Impersonator | None = None
    ) -> None:
        self.eth = eth
        self.signer = signer
        self.impersonator = impersonator

    def install(self, dispatcher: Any) -> None:
        dispatcher.register("eth_sendTransaction", self.eth_sendTransaction)
        dispatcher.register("eth_signTransaction", self.eth_signTransaction)

    def _impersonated(self, sender: bytes) -> bool:
        """Covered by the impersonator, and not an account the node can sign for."""
        if self.impersonator is None or not self.impersonator.covers(sender):
            return False
        try:
            self.signer.require(sender)
        except RpcError:
            return True
        return False

    async def _sign(self, obj: object) -> bytes:
        sender, fields = await self._fields(obj, impersonation=False)
        return self.signer.sign(sender, fields)

    async def _fields(self, obj: object, *, impersonation: bool) -> tuple[bytes, dict[str, Any]]:
        """The sender and the filled fields; refuses a sender the node cannot sign for (unless
        `impersonation` allows one the impersonator covers)."""
        if not isinstance(obj, dict):
            raise InvalidParams("transaction: expected an object")
        sender = address(obj.get("from"), "from")
        if not (impersonation and self._impersonated(sender)):
            self.signer.require(sender)
        to = optional_address(obj.get("to"), "to")
        payload = optional_data(obj.get("input"), "input")
        if payload is None:
            payload = optional_data(obj.get("data"), "data") or b""
        fields: dict[str, Any] = {
            "chainId": self.eth.chain.chain_id,
            "value": optional_quantity(obj.get("value"), "value") or 0,
            "data": payload,
        }
        if to is not None:
            fields["to"] = to_checksum(to)
        nonce = optional_quantity(obj.get("nonce"), "nonce")
        fields["nonce"] = nonce if nonce is not None else self.eth.app.mempool.pending_nonce(sender)
        fields.update(self._price(obj))
        gas = optional_quantity(obj.get("gas"), "gas")
        fields["gas"] = gas if gas is not None else await self._default_gas(obj)
        _check_limits(fields)
        return sender, fields

    def _price(self, obj: dict[str, Any]) -> dict[str, int]:
        gas_price = optional_quantity(obj.get("gasPrice"), "gasPrice")
        tip = optional_quantity(obj.get("maxPriorityFeePerGas"), "maxPriorityFeePerGas")
        fee_cap = optional_quantity(obj.get("maxFeePerGas"), "maxFeePerGas")
        if gas_price is not None:
            return {"gasPrice": gas_price}
        wants_1559 = optional_quantity(obj.get("type"), "type") == 2
        if tip is None and fee_cap is None and not wants_1559:
            return {"gasPrice": self.eth.app.min_gas_price}
        # geth's defaults: the suggested tip, and twice the next base fee on top of it.
        if tip is None:
            tip = int(self.eth.eth_maxPriorityFeePerGas(), 16)
        if fee_cap is None:
            fee_cap = 2 * self.eth.chain.next_base_fee() + tip
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": fee_cap}

    async def _default_gas(self, obj: dict[str, Any]) -> int:
        estimate_input = {k: v for k, v in obj.items() if k != "gas"}
        estimate = int(await self.eth.eth_estimateGas(estimate_input), 16)
        return max(DEFAULT_GAS, estimate)

    async def eth_signTransaction(self, obj: object) -> dict[str, Any]:
        """geth's and the execution-apis' answer: the raw bytes and the transaction object."""
        raw = await self._sign(obj)
        try:
            signed = decode_transaction(
                raw, chain_id=self.eth.chain.chain_id, block_gas_limit=MAX_GAS
            )
        except TxRejected as exc:  # signed, but not a transaction this chain would take
            raise InvalidParams(f"transaction: {exc.message}") from None
        tx = fmt.tx_json(signed)
        for pending_only in ("blockHash", "blockNumber", "blockTimestamp", "transactionIndex"):
            del tx[pending_only]
        return {"raw": fmt.d(raw), "tx": tx}

    async def eth_sendTransaction(self, obj: object) -> str:
        sender, fields = await self._fields(obj, impersonation=True)
        if self.impersonator is not None and self._impersonated(sender):
            return fmt.d(self.impersonator.send(sender, fields))
        return self.eth.eth_sendRawTransaction(fmt.d(self.signer.sign(sender, fields)))
