"""Devnet state methods: set balances, code, nonces and storage, impersonate accounts, dump and
load the state. Served by devnets only (rpc/devnet_only.py), under anvil's and Hardhat's names.

| method (+ hardhat_ alias)                   | answers (anvil / hardhat)                |
|---------------------------------------------|------------------------------------------|
| anvil_setBalance(address, balance)          | null / true                              |
| anvil_setCode(address, code)                | null / true ("0x" removes the code)      |
| anvil_setNonce(address, nonce)              | null / true                              |
| anvil_setStorageAt(address, slot, value)    | true / true (value: exactly 32 bytes)    |
| anvil_impersonateAccount(address)           | null / true                              |
| anvil_stopImpersonatingAccount(address)     | null / true                              |
| anvil_autoImpersonateAccount(enabled)       | null (every address impersonated)        |
| anvil_dumpState()                           | the state dump document (genesis/state_dump.py) |
| anvil_loadState(dump)                       | true: the dump merged into the state     |

Numbers may carry leading zeros (anvil takes any 256-bit hex; ethers' `toBeHex` writes them).
Every bad argument is -32602 naming it, and changes nothing. The backend (`DevStateBackend`,
cybermiles_node/application/dev_state.py) turns each edit into a block of its own at once, so a
"latest" read right after the call sees it.

Impersonation: `eth_sendTransaction` from an impersonated address (rpc/node_signing.py asks this
API through `Impersonator`) builds the transaction the node would sign, puts a marker
signature on it (`impersonated_transaction`: r = 5, which is no point's x coordinate on
secp256k1 (5^3 + 7 is not a square mod p), so every sender recovery fails and
eth_sendRawTransaction or a peer can never submit it; s = the address + 1, so two senders'
otherwise equal transactions differ) and hands it to the backend with its sender. The marker is
within the ranges py-evm's execution checks of an EIP-1559 transaction, whose signer it does not
recover; it recovers the signer of every legacy and EIP-2930 transaction it executes, so an
impersonated transaction is always EIP-1559 (type 2): a request priced with gasPrice gets that
price as both its fee cap and its tip, the price it pays either way. Impersonation
lives in memory: a restart forgets it (as anvil's does). On a devnet that runs BFT consensus,
peers would refuse such a block: there the methods answer -32004 (the one-node automine devnet
serves them).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from evm.transactions import with_signature
from genesis import GenesisError, StateDump, parse_state_dump, state_dump_to_json
from rpc.devnet_only import install_devnet_only
from rpc.errors import InvalidParams, MethodNotSupported
from rpc.params import address, bool_param, data

__all__ = [
    "DevStateApi",
    "DevStateBackend",
    "IMPERSONATION_R",
    "impersonated_transaction",
]

MAX_CODE_BYTES: Final = 128 * 1024  # a resource bound, well above EIP-170's 24,576
MAX_NONCE: Final = 2**64 - 2  # EIP-2681
MAX_DUMP_BYTES: Final = 64 * 2**20  # a loadState document, decompressed
IMPERSONATION_R: Final = 5  # no curve point has x = 5: every sender recovery fails
# eth-account encodes the fields by signing them; this key's signature is then replaced.
_ENCODING_KEY: Final = b"\x01" * 32
_HEX_NUMBER: Final = re.compile(r"0[xX][0-9a-fA-F]{1,64}")


class DevStateBackend(Protocol):
    """The node side (cybermiles_node/application/dev_state.py `DevState`). Each edit is in
    the state the head serves when the call returns."""

    async def set_balance(self, address: bytes, balance: int) -> None: ...
    async def set_code(self, address: bytes, code: bytes) -> None: ...
    async def set_nonce(self, address: bytes, nonce: int) -> None: ...
    async def set_storage(self, address: bytes, slot: int, value: int) -> None: ...
    async def dump_state(self) -> StateDump: ...
    async def load_state(self, dump: StateDump) -> None: ...
    def submit_impersonated(self, raw: bytes, sender: bytes) -> bytes:
        """Admit `raw` as sent by `sender` (its signature is the marker); the tx hash."""
        ...


def impersonated_transaction(fields: Mapping[str, Any], sender: bytes) -> bytes:
    """The raw transaction of `fields` (eth-account's names, as node_signing fills them) with
    the impersonation marker signature for `sender`; EIP-1559 (module docstring)."""
    from eth_account import Account  # at the first impersonated send: start-up stays light

    typed = dict(fields)
    if "gasPrice" in typed:  # a legacy request: EIP-1559 at the same price
        typed["maxFeePerGas"] = typed["maxPriorityFeePerGas"] = typed.pop("gasPrice")
    try:
        signed = bytes(Account.sign_transaction(typed, _ENCODING_KEY).raw_transaction)
    except (TypeError, ValueError) as exc:  # eth-account's verdict on the field mix
        raise InvalidParams(f"transaction: {exc}") from None
    s = int.from_bytes(sender, "big") + 1  # below 2^160 + 1: within py-evm's 0 < s <= n/2
    return with_signature(signed, 0, IMPERSONATION_R, s)  # y_parity 0


def _number(value: object, name: str, maximum: int) -> int:
    if type(value) is not str or not _HEX_NUMBER.fullmatch(value):
        raise InvalidParams(f"invalid {name}: expected 0x + 1 to 64 hex digits, got {value!r:.80}")
    number = int(value[2:], 16)
    if number > maximum:
        raise InvalidParams(f"invalid {name}: at most {maximum}, got {number}")
    return number


def _word(value: object, name: str) -> int:
    raw = data(value, name)
    if len(raw) != 32:
        raise InvalidParams(
            f"invalid {name}: a storage value is exactly 32 bytes (0x + 64 hex digits), "
            f"got {len(raw)} bytes"
        )
    return int.from_bytes(raw, "big")


def _dump_document(value: object) -> StateDump:
    """A state dump given as its JSON object, or as 0x-hex of its (gzipped) JSON text (the
    form anvil passes around)."""
    if isinstance(value, str):
        raw = data(value, "state")
        if raw[:2] == b"\x1f\x8b":
            try:
                raw = _gunzip(raw)
            except (OSError, EOFError, zlib.error) as exc:
                raise InvalidParams(f"invalid state: not gzip data ({exc})") from None
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise InvalidParams(f"invalid state: not JSON ({exc})") from None
    try:
        return parse_state_dump(value)
    except GenesisError as exc:
        raise InvalidParams(f"invalid state: {exc}") from None


def _gunzip(raw: bytes) -> bytes:
    """Decompress at most MAX_DUMP_BYTES (a small body must not become gigabytes)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = decompressor.decompress(raw, MAX_DUMP_BYTES + 1)
    if len(out) > MAX_DUMP_BYTES:
        raise InvalidParams(f"invalid state: more than {MAX_DUMP_BYTES} bytes of JSON")
    if not decompressor.eof:
        raise EOFError("truncated gzip stream")
    return out


class DevStateApi:
    """The anvil_/hardhat_ state methods over a `DevStateBackend` (None: a devnet that runs
    BFT consensus, where they are not supported)."""

    def __init__(self, backend: DevStateBackend | None) -> None:
        self.backend = backend
        self._impersonated: set[bytes] = set()
        self._auto_impersonate = False

    def install(self, dispatcher: Any, *, enabled: bool) -> None:
        """Register every method through `install_devnet_only` (refused off devnets)."""
        install_devnet_only(dispatcher, self.methods(), enabled=enabled)

    def methods(self) -> dict[str, Callable[..., Any]]:
        # name: (anvil's answer, hardhat's answer); hardhat always answers true.
        anvil: dict[str, Callable[..., Any]] = {
            "setBalance": self._returns_none(self.set_balance),
            "setCode": self._returns_none(self.set_code),
            "setNonce": self._returns_none(self.set_nonce),
            "setStorageAt": self.set_storage_at,
            "impersonateAccount": self._returns_none(self.impersonate),
            "stopImpersonatingAccount": self._returns_none(self.stop_impersonating),
            "dumpState": self.dump_state,
            "loadState": self.load_state,
        }
        methods = {f"anvil_{name}": handler for name, handler in anvil.items()}
        for name, handler in anvil.items():
            methods[f"hardhat_{name}"] = (
                handler if name in ("dumpState", "loadState") else (self._returns_true(handler))
            )
        methods["anvil_autoImpersonateAccount"] = self._returns_none(self.auto_impersonate)
        return methods

    @staticmethod
    def _returns_none(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
        async def call(*params: Any) -> None:
            await handler(*params)

        return call

    @staticmethod
    def _returns_true(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[bool]]:
        async def call(*params: Any) -> bool:
            await handler(*params)
            return True

        return call

    def _backend(self, what: str) -> DevStateBackend:
        if self.backend is None:
            raise MethodNotSupported(
                f"{what} is served by the one-node automine devnet only (this devnet runs BFT "
                "consensus, whose peers would refuse the block)"
            )
        return self.backend

    # -- state edits ------------------------------------------------------------------------
    # Every handler is async: the edits wait for the devnet's block lock (a block executing in
    # the producer's worker thread finishes first); the others for uniform wrapping.
    async def set_balance(self, account: object, balance: object) -> None:
        who = address(account, "address")
        amount = _number(balance, "balance", 2**256 - 1)
        await self._backend("setBalance").set_balance(who, amount)

    async def set_code(self, account: object, code: object) -> None:
        who = address(account, "address")
        payload = data(code, "code")
        if len(payload) > MAX_CODE_BYTES:
            raise InvalidParams(f"invalid code: {len(payload)} bytes, at most {MAX_CODE_BYTES}")
        await self._backend("setCode").set_code(who, payload)

    async def set_nonce(self, account: object, nonce: object) -> None:
        who = address(account, "address")
        value = _number(nonce, "nonce", MAX_NONCE)
        await self._backend("setNonce").set_nonce(who, value)

    async def set_storage_at(self, account: object, slot: object, value: object) -> bool:
        who = address(account, "address")
        position = _number(slot, "slot", 2**256 - 1)
        word = _word(value, "value")
        await self._backend("setStorageAt").set_storage(who, position, word)
        return True

    # -- dumps ----------------------------------------------------------------------------
    async def dump_state(self) -> dict[str, object]:
        return state_dump_to_json(await self._backend("dumpState").dump_state())

    async def load_state(self, state: object) -> bool:
        dump = _dump_document(state)
        await self._backend("loadState").load_state(dump)
        return True

    # -- impersonation --------------------------------------------------------------------
    async def impersonate(self, account: object) -> None:
        who = address(account, "address")
        self._backend("impersonateAccount")
        self._impersonated.add(who)

    async def stop_impersonating(self, account: object) -> None:
        self._impersonated.discard(address(account, "address"))

    async def auto_impersonate(self, enabled: object) -> None:
        on = bool_param(enabled, "enabled")
        self._backend("autoImpersonateAccount")
        self._auto_impersonate = on

    def covers(self, sender: bytes) -> bool:
        """Whether eth_sendTransaction may send for `sender` without its key."""
        return self.backend is not None and (self._auto_impersonate or sender in self._impersonated)

    def send(self, sender: bytes, fields: Mapping[str, Any]) -> bytes:
        """Submit `fields` as a transaction of `sender` (rpc/node_signing.py `Impersonator`)."""
        raw = impersonated_transaction(fields, sender)
        return self._backend("impersonation").submit_impersonated(raw, sender)
