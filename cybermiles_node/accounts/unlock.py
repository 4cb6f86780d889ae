"""Which keystore accounts the node may sign for, and until when: `Unlocker`, pure.

geth's semantics (personal_unlockAccount): unlocking decrypts the key with the passphrase and
keeps it in memory for `duration` seconds; None means the node's default (300 s, geth's), 0
means until `lock` is called. Unlocking again replaces the expiry. An account is unlocked while
clock() < its expiry; `key_of` after that is the same `AccountLocked` as for an account never
unlocked, and the expired key is dropped from memory.

Time comes from an injected clock (seconds, e.g. time.monotonic), keys from an injected
`KeySource` (the Keystore): no I/O or wall clock here, so tests drive expiry with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from cybermiles_node.accounts.keyfile import KeystoreError

DEFAULT_UNLOCK_SECONDS: Final = 300
# Durations above this are refused rather than silently meaning "forever": use 0 for that.
MAX_UNLOCK_SECONDS: Final = 10 * 365 * 24 * 3600


class AccountLocked(KeystoreError):
    """Signing was asked of an account that is not unlocked (or whose unlock expired)."""


class BadDuration(KeystoreError):
    """A negative, fractional or absurdly long unlock duration."""


class KeySource(Protocol):
    def decrypt(self, address: bytes, passphrase: str) -> bytes: ...


@dataclass(frozen=True)
class _Unlocked:
    key: bytes
    expires: float | None  # None: until locked


class Unlocker:
    def __init__(
        self,
        keys: KeySource,
        clock: Callable[[], float],
        *,
        default_seconds: int = DEFAULT_UNLOCK_SECONDS,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._default = default_seconds
        self._unlocked: dict[bytes, _Unlocked] = {}

    def unlock(self, address: bytes, passphrase: str, duration: int | None = None) -> None:
        """Decrypt `address`'s key and hold it for `duration` seconds (module docstring).
        A wrong passphrase raises the keystore's WrongPassphrase and changes nothing."""
        seconds = self._default if duration is None else check_duration(duration)
        key = self._keys.decrypt(address, passphrase)
        expires = None if seconds == 0 else self._clock() + seconds
        self._unlocked[address] = _Unlocked(key, expires)

    def lock(self, address: bytes) -> None:
        """Forget `address`'s key (nothing happens when it is not unlocked)."""
        self._unlocked.pop(address, None)

    def is_unlocked(self, address: bytes) -> bool:
        return self._live(address) is not None

    def key_of(self, address: bytes) -> bytes:
        """The private key of an unlocked account; AccountLocked otherwise."""
        unlocked = self._live(address)
        if unlocked is None:
            raise AccountLocked(f"account 0x{address.hex()} is locked (unlock it first)")
        return unlocked.key

    def unlocked_addresses(self) -> list[bytes]:
        """The accounts unlocked now, in address order."""
        return sorted(a for a in list(self._unlocked) if self._live(a) is not None)

    def _live(self, address: bytes) -> _Unlocked | None:
        unlocked = self._unlocked.get(address)
        if unlocked is None:
            return None
        if unlocked.expires is not None and self._clock() >= unlocked.expires:
            del self._unlocked[address]  # expired: drop the key from memory
            return None
        return unlocked


def check_duration(duration: int) -> int:
    if isinstance(duration, bool) or not isinstance(duration, int):
        raise BadDuration(f"unlock duration must be whole seconds, got {duration!r}")
    if not 0 <= duration <= MAX_UNLOCK_SECONDS:
        raise BadDuration(
            f"unlock duration {duration} s out of range (0 = until locked, at most "
            f"{MAX_UNLOCK_SECONDS} s)"
        )
    return duration
