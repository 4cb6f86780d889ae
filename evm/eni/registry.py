"""Which ENI libraries exist, in which versions, and which version each chain enables.

``IMPLEMENTATIONS`` maps a function name to its available versions (each a Python
implementation).  A ``Registry`` is the chain's choice: function name -> enabled version.
Governance (``deploy_libeni`` proposals) switches versions by calling ``enable``/``disable`` on the
registry it derives from chain state; the VM passes that registry to ``run``.  A registry is a
plain value: nothing here is global mutable state, so forks and replays cannot leak into each
other.

Versions: Travis's libraries are libENI "1.3.7", ours "1.0".
"""

from __future__ import annotations

from evm.eni import jsonpath, strings, travis
from evm.eni.convention import EniError, Library

TRAVIS_VERSION = "1.3.7"
OURS_VERSION = "1.0"

_TRAVIS: dict[str, Library] = {
    "reverse": travis.reverse,
    "scrypt": travis.scrypt,
    "rsa_encrypt": travis.rsa_encrypt,
    "rsa_decrypt": travis.rsa_decrypt,
    "json": travis.json,
}

IMPLEMENTATIONS: dict[str, dict[str, Library]] = {
    **{name: {TRAVIS_VERSION: lib} for name, lib in _TRAVIS.items()},
    **{name: {OURS_VERSION: lib} for name, lib in strings.LIBRARIES.items()},
    **{name: {OURS_VERSION: lib} for name, lib in jsonpath.LIBRARIES.items()},
}


class Registry:
    """Function name -> enabled version."""

    def __init__(self, enabled: dict[str, str] | None = None) -> None:
        self._enabled: dict[str, str] = {}
        for name, version in (enabled or {}).items():
            self.enable(name, version)

    @classmethod
    def default(cls) -> Registry:
        """Every library enabled at its (only) version."""
        return cls({name: next(iter(versions)) for name, versions in IMPLEMENTATIONS.items()})

    def enable(self, name: str, version: str) -> None:
        """Enable ``version`` of ``name``; ValueError if no such implementation exists."""
        if version not in IMPLEMENTATIONS.get(name, {}):
            raise ValueError(f"no ENI library {name!r} version {version!r}")
        self._enabled[name] = version

    def disable(self, name: str) -> None:
        self._enabled.pop(name, None)

    def enabled(self) -> dict[str, str]:
        return dict(self._enabled)

    def copy(self) -> Registry:
        return Registry(self._enabled)

    def resolve(self, name: str) -> Library:
        """The enabled implementation of ``name``; EniError (VM error) if none is enabled."""
        version = self._enabled.get(name)
        if version is None:
            raise EniError(f"unknown or disabled ENI function {name!r}")
        return IMPLEMENTATIONS[name][version]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Registry) and self._enabled == other._enabled

    def __repr__(self) -> str:
        return f"Registry({self._enabled!r})"


def available() -> dict[str, list[str]]:
    """Every implemented (name, versions) pair, for governance validation."""
    return {name: sorted(versions) for name, versions in IMPLEMENTATIONS.items()}
