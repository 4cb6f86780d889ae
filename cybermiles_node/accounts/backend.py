"""`NodeAccounts`: the node's `rpc.personal.AccountsBackend` (composed in node.py).

Three sources of keys, one view: the keystore (HOME/keystore, locked until unlocked), the
`Unlocker` (keystore keys unlocked for a while), and a devnet's mnemonic accounts, held in
memory and always unlocked (as before personal_*: their keys are not encrypted anywhere, so
unlocking one is a no-op that succeeds and locking one leaves it unlocked).

Keystore refusals become JSON-RPC -32000 errors here, each one line: "account locked: ...",
"unknown account ...", "wrong passphrase ...", "invalid unlock duration ...". A refused call
changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from cybermiles_node.accounts.keyfile import KeystoreError, WrongPassphrase
from cybermiles_node.accounts.keystore import Keystore, UnknownAccount
from cybermiles_node.accounts.unlock import AccountLocked, BadDuration, Unlocker
from rpc.errors import InvalidInput, InvalidParams, RpcError

log = logging.getLogger(__name__)


def _rpc_error(exc: KeystoreError, account: bytes | None = None) -> RpcError:
    """The JSON-RPC form of a keystore refusal. The keystore's own lines name files; those stay
    in the node's log, never in an answer (they would show the node's home to any client)."""
    who = "" if account is None else f" 0x{account.hex()}"
    if isinstance(exc, BadDuration):
        return InvalidParams(f"invalid unlock duration: {exc}")
    if isinstance(exc, AccountLocked):
        return InvalidInput(f"account locked:{who} (unlock it first)")
    if isinstance(exc, UnknownAccount):
        return InvalidInput(f"unknown account{who} (not in the node's keystore)")
    if isinstance(exc, WrongPassphrase):
        return InvalidInput(f"wrong passphrase for account{who}")
    log.warning("keystore: %s", exc)
    return InvalidInput(f"keystore error for account{who} (see the node's log)")


class NodeAccounts:
    """Keystore + Unlocker + a devnet's always-unlocked keys (module docstring)."""

    def __init__(
        self, keystore: Keystore, unlocker: Unlocker, dev_keys: Mapping[bytes, bytes]
    ) -> None:
        self.keystore = keystore
        self.unlocker = unlocker
        self._dev_keys = dict(dev_keys)

    def addresses(self) -> list[bytes]:
        try:
            stored = self.keystore.addresses()
        except KeystoreError as exc:
            raise _rpc_error(exc) from None
        return list(dict.fromkeys([*stored, *self._dev_keys]))

    def new_account(self, passphrase: str) -> bytes:
        if not passphrase:
            raise InvalidParams("passphrase: a new account needs a non-empty passphrase")
        try:
            return self.keystore.new_account(passphrase).address
        except KeystoreError as exc:
            raise _rpc_error(exc) from None

    def unlock(self, account: bytes, passphrase: str, duration: int | None) -> None:
        if account in self._dev_keys:
            return  # always unlocked
        try:
            self.unlocker.unlock(account, passphrase, duration)
        except KeystoreError as exc:
            raise _rpc_error(exc, account) from None

    def lock(self, account: bytes) -> None:
        self.unlocker.lock(account)

    def unlocked_key(self, account: bytes) -> bytes:
        key = self._dev_keys.get(account)
        if key is not None:
            return key
        try:
            return self.unlocker.key_of(account)
        except AccountLocked as exc:
            if account not in self.addresses():
                raise InvalidInput(f"unknown account 0x{account.hex()}") from None
            raise _rpc_error(exc, account) from None

    def key_with(self, account: bytes, passphrase: str) -> bytes:
        key = self._dev_keys.get(account)
        if key is not None:
            return key
        try:
            return self.keystore.decrypt(account, passphrase)
        except KeystoreError as exc:
            raise _rpc_error(exc, account) from None
