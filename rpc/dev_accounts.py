"""eth_sendTransaction and eth_signTransaction for a devnet's unlocked accounts.

SPEC §8: node-side signing is off unless enabled, and devnets enable it. The devnet's funded
mnemonic accounts are unlocked; missing fields are filled the way geth fills them: nonce from
the pending state, gas by estimation, EIP-1559 fees at the chain's minimum price (or the given
gasPrice as a legacy transaction).
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


class DevAccountsApi:
    """Signs with in-memory keys of unlocked accounts, then submits like a raw transaction."""

    def __init__(self, eth: EthApi, keys: Mapping[bytes, bytes]) -> None:
        self.eth = eth
        self.keys = dict(keys)

    def install(self, dispatcher: Any) -> None:
        dispatcher.register("eth_sendTransaction", self.eth_sendTransaction)
        dispatcher.register("eth_signTransaction", self.eth_signTransaction)

    async def _sign(self, obj: object) -> bytes:
        if not isinstance(obj, dict):
            raise InvalidParams("transaction: expected an object")
        sender = address(obj.get("from"), "from")
        key = self.keys.get(sender)
        if key is None:
            raise InvalidInput(f"unknown account 0x{sender.hex()} (not unlocked on this node)")
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
        try:
            return bytes(Account.sign_transaction(fields, key).raw_transaction)
        except (TypeError, ValueError) as exc:  # eth-account's verdict on the field mix
            raise InvalidParams(f"transaction: {exc}") from None

    async def eth_signTransaction(self, obj: object) -> str:
        return fmt.d(await self._sign(obj))

    async def eth_sendTransaction(self, obj: object) -> str:
        return self.eth.eth_sendRawTransaction(fmt.d(await self._sign(obj)))
