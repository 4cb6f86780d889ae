"""eth_sendTransaction and eth_signTransaction for a devnet's unlocked accounts.

SPEC §8: node-side signing is off unless enabled, and devnets enable it. The devnet's funded
mnemonic accounts are unlocked; missing fields are filled the way geth fills them: nonce from
the pending state, gas by estimation, EIP-1559 fees at the chain's minimum price (or the given
gasPrice as a legacy transaction).

`UnlockedAccounts` holds the keys (in memory) and signs; every method that signs for a `from`
(these, and the cmt_* staking transactions of rpc/cmt_tx.py) goes through it, so an account
that is not unlocked is refused the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eth_account import Account

from rpc import formatting as fmt
from rpc.errors import InvalidInput, InvalidParams
from rpc.eth import EthApi
from rpc.params import (
    address,
    optional_address,
    optional_data,
    optional_quantity,
    to_checksum,
)


class UnlockedAccounts:
    """The accounts this node signs for: address -> secp256k1 private key, in memory."""

    def __init__(self, keys: Mapping[bytes, bytes]) -> None:
        self._keys = dict(keys)

    def addresses(self) -> list[bytes]:
        return list(self._keys)

    def require(self, sender: bytes) -> None:
        """Refuse (-32000) an account whose key this node does not hold."""
        if sender not in self._keys:
            raise InvalidInput(f"unknown account 0x{sender.hex()} (not unlocked on this node)")

    def sign(self, sender: bytes, fields: Mapping[str, Any]) -> bytes:
        """The raw signed transaction of `fields` (eth-account's names) by `sender`."""
        self.require(sender)
        try:
            return bytes(Account.sign_transaction(dict(fields), self._keys[sender]).raw_transaction)
        except (TypeError, ValueError) as exc:  # eth-account's verdict on the field mix
            raise InvalidParams(f"transaction: {exc}") from None


class DevAccountsApi:
    """Signs with in-memory keys of unlocked accounts, then submits like a raw transaction."""

    def __init__(self, eth: EthApi, accounts: UnlockedAccounts) -> None:
        self.eth = eth
        self.accounts = accounts

    def install(self, dispatcher: Any) -> None:
        dispatcher.register("eth_sendTransaction", self.eth_sendTransaction)
        dispatcher.register("eth_signTransaction", self.eth_signTransaction)

    async def _sign(self, obj: object) -> bytes:
        if not isinstance(obj, dict):
            raise InvalidParams("transaction: expected an object")
        sender = address(obj.get("from"), "from")
        self.accounts.require(sender)
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
        gas_price = optional_quantity(obj.get("gasPrice"), "gasPrice")
        if gas_price is not None:
            fields["gasPrice"] = gas_price
        else:
            minimum = self.eth.app.min_gas_price
            tip = optional_quantity(obj.get("maxPriorityFeePerGas"), "maxPriorityFeePerGas")
            fee_cap = optional_quantity(obj.get("maxFeePerGas"), "maxFeePerGas")
            fields["maxPriorityFeePerGas"] = tip if tip is not None else minimum
            fields["maxFeePerGas"] = (
                fee_cap if fee_cap is not None else max(minimum, fields["maxPriorityFeePerGas"])
            )
        gas = optional_quantity(obj.get("gas"), "gas")
        if gas is None:
            estimate_input = {k: v for k, v in obj.items() if k != "gas"}
            gas = int(await self.eth.eth_estimateGas(estimate_input), 16)
        fields["gas"] = gas
        return self.accounts.sign(sender, fields)

    async def eth_signTransaction(self, obj: object) -> str:
        return fmt.d(await self._sign(obj))

    async def eth_sendTransaction(self, obj: object) -> str:
        return self.eth.eth_sendRawTransaction(fmt.d(await self._sign(obj)))
