"""personal_* and the node's message-signing methods, over an `AccountsBackend`.

The backend (the node's keystore + unlocker + a devnet's in-memory keys, composed in
cybermiles_node/node.py; rpc never imports cybermiles_node) answers what these methods need:
which accounts exist, a new account, unlock for a duration, lock, and the key of an account
that is unlocked now or opened with a passphrase. Its refusals are `RpcError`s (-32000
"account locked: ...", "unknown account ...", "wrong passphrase ..."); a refused call changes
nothing.

| method                                        | signs with                          |
|-----------------------------------------------|-------------------------------------|
| personal_newAccount(passphrase)               | (creates a key file; its address)   |
| personal_unlockAccount(addr, pw, duration)    | (null = node default 300 s, 0 = until locked) |
| personal_lockAccount(addr)                    |                                     |
| personal_listAccounts                         |                                     |
| personal_sign(data, addr, pw)                 | the key the passphrase opens; without |
|                                               | pw (MetaMask, ethers) an unlocked key |
| personal_ecRecover(data, sig)                 | (recovers the signer)               |
| eth_sign(addr, data)                          | an unlocked key only                |
| eth_signTypedData_v4(addr, typedData)         | an unlocked key only (EIP-712)      |

personal_sign, personal_ecRecover and eth_sign use EIP-191's personal message
("\\x19Ethereum Signed Message:\\n" + length + data); signatures are 65 bytes r || s || v with v 27
or 28, as geth writes them, and ecRecover accepts only those (geth's rule).

Unlocking over a server bound to a non-loopback address is refused unless the operator allowed
it (`rpc.allow_insecure_unlock`, geth's --allow-insecure-unlock): the caller passes
`unlock_allowed`. Key derivation (scrypt, ~1 s and 256 MiB for geth's standard files) runs in a
worker thread, one at a time (`_KDF_LIMIT`), so it never stalls the event loop and concurrent
unlocks cannot multiply its memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import trio
from eth_keys.exceptions import BadSignature

from rpc import formatting as fmt
from rpc.errors import InvalidInput, InvalidParams
from rpc.params import address, data

# eth-account is imported at the first signature (node_signing.py says why).
if TYPE_CHECKING:
    from eth_account.messages import SignableMessage

T = TypeVar("T")


class AccountsBackend(Protocol):
    """The node's accounts as personal_* sees them. Every refusal is an RpcError."""

    def addresses(self) -> list[bytes]:
        """Keystore accounts then unlocked in-memory accounts, without repeats."""
        ...

    def new_account(self, passphrase: str) -> bytes: ...

    def unlock(self, account: bytes, passphrase: str, duration: int | None) -> None: ...

    def lock(self, account: bytes) -> None: ...

    def unlocked_key(self, account: bytes) -> bytes:
        """The key of an account unlocked now ("account locked" otherwise)."""
        ...

    def key_with(self, account: bytes, passphrase: str) -> bytes:
        """The key the passphrase opens, without unlocking the account."""
        ...


class UnlockForbidden(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "account unlock with RPC on a non-loopback address is forbidden "
            "(set rpc.allow_insecure_unlock to allow it)"
        )


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidParams(f"{name}: expected a string")
    return value


def _duration(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParams("duration: expected whole seconds (a JSON integer) or null")
    return value


def encode_defunct(primitive: bytes) -> SignableMessage:
    from eth_account.messages import encode_defunct as encode

    return encode(primitive=primitive)


def encode_typed_data(full_message: dict[str, Any]) -> SignableMessage:
    from eth_account.messages import encode_typed_data as encode

    return encode(full_message=full_message)


def _signature(message: SignableMessage, key: bytes) -> str:
    from eth_account import Account

    return fmt.d(bytes(Account.sign_message(message, key).signature))


class PersonalApi:
    """personal_*, eth_sign and eth_signTypedData_v4 over `backend`."""

    def __init__(self, backend: AccountsBackend, *, unlock_allowed: bool) -> None:
        self.backend = backend
        self.unlock_allowed = unlock_allowed
        self._kdf_limit = trio.CapacityLimiter(1)

    def install(self, dispatcher: Any) -> None:
        for name in (
            "personal_newAccount",
            "personal_unlockAccount",
            "personal_lockAccount",
            "personal_listAccounts",
            "personal_sign",
            "personal_ecRecover",
            "eth_sign",
            "eth_signTypedData_v4",
        ):
            dispatcher.register(name, getattr(self, name))

    async def _kdf(self, work: Callable[[], T]) -> T:
        """Run passphrase work (scrypt) in a worker thread, one at a time."""
        return await trio.to_thread.run_sync(work, limiter=self._kdf_limit)

    async def personal_newAccount(self, passphrase: object) -> str:
        secret = _text(passphrase, "passphrase")
        return fmt.d(await self._kdf(lambda: self.backend.new_account(secret)))

    async def personal_unlockAccount(
        self, account: object, passphrase: object, duration: object = None
    ) -> bool:
        if not self.unlock_allowed:
            raise UnlockForbidden()
        who = address(account, "address")
        secret = _text(passphrase, "passphrase")
        seconds = _duration(duration)
        await self._kdf(lambda: self.backend.unlock(who, secret, seconds))
        return True

    def personal_lockAccount(self, account: object) -> bool:
        self.backend.lock(address(account, "address"))
        return True

    def personal_listAccounts(self) -> list[str]:
        return [fmt.d(a) for a in self.backend.addresses()]

    async def personal_sign(
        self, message: object, account: object, passphrase: object = None
    ) -> str:
        payload = data(message, "data")
        who = address(account, "address")
        if passphrase is None:  # MetaMask's and ethers' two-argument form: an unlocked key
            key = self.backend.unlocked_key(who)
        else:
            secret = _text(passphrase, "passphrase")
            key = await self._kdf(lambda: self.backend.key_with(who, secret))
        return _signature(encode_defunct(primitive=payload), key)

    def personal_ecRecover(self, message: object, signature: object) -> str:
        payload = data(message, "data")
        sig = data(signature, "signature")
        if len(sig) != 65:
            raise InvalidParams(f"signature: expected 65 bytes, got {len(sig)}")
        if sig[64] not in (27, 28):
            raise InvalidParams("signature: invalid Ethereum signature (V is not 27 or 28)")
        from eth_account import Account

        try:
            signer = Account.recover_message(encode_defunct(primitive=payload), signature=sig)
        except (ValueError, TypeError, BadSignature) as exc:  # r/s out of range, no key makes it
            raise InvalidParams(f"signature: {exc}") from None
        return signer.lower()

    def eth_sign(self, account: object, message: object) -> str:
        who = address(account, "address")
        payload = data(message, "data")
        return _signature(encode_defunct(primitive=payload), self.backend.unlocked_key(who))

    def eth_signTypedData_v4(self, account: object, typed_data: object) -> str:
        who = address(account, "address")
        message = _typed_message(typed_data)
        return _signature(message, self.backend.unlocked_key(who))


def _typed_message(typed_data: object) -> SignableMessage:
    """EIP-712 typed data, given as a JSON object or as its JSON text (MetaMask sends text)."""
    if isinstance(typed_data, str):
        try:
            typed_data = json.loads(typed_data)
        except ValueError:
            raise InvalidParams("typedData: not JSON") from None
    if not isinstance(typed_data, dict):
        raise InvalidParams("typedData: expected an object")
    try:
        return encode_typed_data(full_message=typed_data)
    except Exception as exc:  # eth_account raises many types for malformed typed data
        raise InvalidParams(f"typedData: {exc}") from None
