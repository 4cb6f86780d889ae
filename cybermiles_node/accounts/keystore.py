"""The node keystore: geth v3 key files in HOME/keystore (the file I/O around `keyfile`).

Layout as geth's: one file per account named `UTC--<time>--<address hex>`, so a geth keystore
directory can be copied in and ours read by geth or `eth_account`. Files whose name starts with
a dot (our temporary files, editors' backups) and directories are not key files, as in geth;
every other file is one, and `Keystore.scan` reports those it cannot read instead of skipping
them.

Writes are crash-safe and private: the directory is created with mode 0700; a key file is
written to a temporary file (mode 0600) in the same directory, fsynced, renamed into place and
the directory fsynced, so a crash leaves either no file or the whole file. Every refusal
(wrong passphrase, malformed file, key already present) happens before anything is written: the
keystore is unchanged.

Interfaces for later slices (personal_* RPC, the Travis preset): `Keystore.addresses`,
`Keystore.decrypt(address, passphrase)` (what `Unlocker` needs), `Keystore.import_keyfile`
with `passphrase=None` for files copied in without their passphrase.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cybermiles_node.accounts.keyfile import (
    STANDARD_SCRYPT_N,
    Keyfile,
    KeystoreError,
    MalformedKeyfile,
    Randomness,
    address_of,
    decrypt,
    encrypt,
    keyfile_name,
    parse_keyfile,
)

KEYSTORE_DIR_MODE: Final = 0o700
KEYFILE_MODE: Final = 0o600
# A key file is ~500 bytes; anything far bigger is not one (and is not read whole).
MAX_KEYFILE_BYTES: Final = 64 * 1024


class AccountExists(KeystoreError):
    """The keystore already holds a key file for this address."""


class UnknownAccount(KeystoreError):
    """No key file in the keystore has this address."""


@dataclass(frozen=True)
class Entry:
    """A readable key file: its address and path."""

    address: bytes
    path: Path


@dataclass(frozen=True)
class Problem:
    """A file in the keystore directory that is not a readable key file, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Scan:
    """The keystore's content in file-name order (geth's names sort by creation time)."""

    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...]


def keystore_dir(home: Path) -> Path:
    return home / "keystore"


def fresh_randomness() -> Randomness:
    return Randomness(salt=secrets.token_bytes(32), iv=secrets.token_bytes(16), uuid=uuid.uuid4())


class Keystore:
    """A keystore directory. `clock` names new files; `scrypt_n` is the cost of new files
    (geth's standard by default; tests pass LIGHT_SCRYPT_N)."""

    def __init__(
        self,
        directory: Path,
        *,
        scrypt_n: int = STANDARD_SCRYPT_N,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.scrypt_n = scrypt_n
        self.clock = clock

    # ------------------------------------------------------------------ reading

    def scan(self) -> Scan:
        """Every key file, and every other file that should be one but cannot be read."""
        entries: list[Entry] = []
        problems: list[Problem] = []
        for path in self._candidate_files():
            try:
                keyfile = self._read(path)
            except KeystoreError as exc:
                problems.append(Problem(path, str(exc)))
                continue
            if keyfile.address is None:
                problems.append(Problem(path, f"{path}: no address field"))
                continue
            entries.append(Entry(keyfile.address, path))
        return Scan(tuple(entries), tuple(problems))

    def addresses(self) -> list[bytes]:
        """The addresses of the readable key files, in file-name order, without repeats."""
        return list(dict.fromkeys(entry.address for entry in self.scan().entries))

    def find(self, address: bytes) -> Entry:
        for entry in self.scan().entries:
            if entry.address == address:
                return entry
        raise UnknownAccount(f"no key file for 0x{address.hex()} in {self.directory}")

    def decrypt(self, address: bytes, passphrase: str) -> bytes:
        """The private key of `address` (WrongPassphrase, UnknownAccount, MalformedKeyfile)."""
        path = self.find(address).path
        return decrypt(self._read(path), passphrase, str(path))

    def _candidate_files(self) -> list[Path]:
        try:
            children = sorted(self.directory.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise KeystoreError(f"cannot read the keystore {self.directory}: {exc}") from None
        return [p for p in children if not p.name.startswith(".") and not p.is_dir()]

    def _read(self, path: Path) -> Keyfile:
        return parse_keyfile(read_small_file(path), str(path))

    # ------------------------------------------------------------------ writing

    def new_account(self, passphrase: str) -> Entry:
        """A new random key, encrypted with `passphrase`."""
        return self.import_key(secrets.token_bytes(32), passphrase)

    def import_key(self, private_key: bytes, passphrase: str) -> Entry:
        """Store `private_key` encrypted with `passphrase` (AccountExists if already here)."""
        address = address_of(private_key)
        self.check_absent(address)
        body = encrypt(private_key, passphrase, fresh_randomness(), scrypt_n=self.scrypt_n)
        return self._store(address, body)

    def import_keyfile(self, path: Path, passphrase: str | None) -> Entry:
        """Copy a v3 key file in, as it is (its own passphrase and KDF). With a passphrase the
        file must open with it and hold its address's key; without, it is checked for form
        only (for files whose passphrase the operator does not hold, e.g. a Travis fixture)."""
        return self.import_keyfile_text(read_small_file(path), str(path), passphrase)

    def import_keyfile_text(self, text: bytes, source: str, passphrase: str | None) -> Entry:
        """`import_keyfile` of a key file's content; `source` names it in errors."""
        keyfile = parse_keyfile(text, source)
        if passphrase is not None:
            address = address_of(decrypt(keyfile, passphrase, source))
        elif keyfile.address is not None:
            address = keyfile.address
        else:
            raise MalformedKeyfile(f"{source}: no address field (give the passphrase to derive it)")
        self.check_absent(address)
        body = json.loads(text)
        body["address"] = address.hex()  # geth lists only files that carry their address
        return self._store(address, body)

    def check_absent(self, address: bytes) -> None:
        """AccountExists when a key file of `address` is here (callers ask before prompting)."""
        for entry in self.scan().entries:
            if entry.address == address:
                raise AccountExists(f"0x{address.hex()} is already in the keystore: {entry.path}")

    def _store(self, address: bytes, body: dict[str, Any]) -> Entry:
        make_private_dir(self.directory)
        path = self.directory / keyfile_name(address, self.clock())
        if path.exists():  # same address and nanosecond: cannot happen unless the clock lies
            raise AccountExists(f"{path} exists")
        write_private_file(path, json.dumps(body).encode())
        return Entry(address, path)


def read_small_file(path: Path) -> bytes:
    """A key or passphrase file's bytes; KeystoreError (one line) when unreadable or too big."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_KEYFILE_BYTES + 1)
    except OSError as exc:
        raise KeystoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEYFILE_BYTES:
        raise MalformedKeyfile(f"{path}: larger than {MAX_KEYFILE_BYTES} bytes, not a key file")
    return data


def make_private_dir(directory: Path) -> None:
    """Create `directory` with mode 0700 (umask notwithstanding); an existing one is kept as
    it is: its owner chose its mode."""
    if directory.is_dir():
        return
    directory.mkdir(parents=True, mode=KEYSTORE_DIR_MODE)
    os.chmod(directory, KEYSTORE_DIR_MODE)
    fsync_dir(directory.parent)


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically with mode 0600: temp file, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEYFILE_MODE)
    try:
        os.fchmod(fd, KEYFILE_MODE)  # os.open's mode is filtered by the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or creation in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
