"""Which ENI libraries the node ships, in which versions, and which version a block runs.

Nothing is ever downloaded (SPEC §7, deploy_libeni "Ours"): the versions that exist are the
implementations built into this node, listed in ``IMPLEMENTATIONS`` (function name -> version ->
implementation, versions oldest first). Every version is written "vX.Y.Z", the form
``deploy_libeni`` proposals and the chain state use (SPEC §7 pattern ``^v\\d+\\.\\d+\\.\\d+$``).

| function                          | version  | implementation                                  |
|-----------------------------------|----------|-------------------------------------------------|
| reverse                           | v1.3.7 * | Travis libENI (travis.py): reverses BYTES, so   |
|                                   |          | a multi-byte UTF-8 character comes out          |
|                                   |          | scrambled; any bytes accepted                   |
| reverse                           | v2.0.0   | ours (strings.py): reverses CODE POINTS, so     |
|                                   |          | UTF-8 text stays valid text; invalid UTF-8 is a |
|                                   |          | bad argument; same gas (10 per byte)            |
| scrypt, rsa_encrypt, rsa_decrypt, | v1.3.7 * | Travis libENI (travis.py)                       |
| json                              |          |                                                 |
| upper ... fromInt (strings.py),   | v1.0.0 * | ours                                            |
| json_get ... (jsonpath.py)        |          |                                                 |

(* = the default: what a chain runs until governance enables another version.)

A ``Registry`` is one choice of version per function: an immutable value, so forks, replays and
concurrent eth_calls cannot leak into each other. The registry a block runs with comes from the
chain STATE, per block: ``Registry.governed(versions)`` is the defaults with the versions
governance enabled (``cybermiles_node/governance/versions.py``, read by the chain) on top. The
chain passes those versions as plain data in ``BlockEnv.eni_versions`` (evm/executor.py), which
builds the registry into the execution context; the ENI opcode (evm/cvm.py) and the ENI
precompile (evm/precompiles.py) both read it there, in blocks and in eth_call alike.

Governance validates a ``deploy_libeni`` proposal with ``is_available`` / ``default_version`` /
``available``. A version in state that this node does not ship can only come from a broken
invariant (governance refuses unavailable versions; or a database written by a newer release):
``UnknownEniVersion``, deliberately not an ``EniError`` (which would only fail one contract call).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from evm.eni import jsonpath, strings, travis
from evm.eni.convention import EniError, Library

TRAVIS_VERSION = "v1.3.7"  # Travis's libENI release, whose results the fixtures pin
OURS_VERSION = "v1.0.0"  # our first string and JSON-path libraries
CODE_POINT_REVERSE_VERSION = "v2.0.0"  # reverse by code points (strings.reverse_code_points)

_TRAVIS: dict[str, Library] = {
    "reverse": travis.reverse,
    "scrypt": travis.scrypt,
    "rsa_encrypt": travis.rsa_encrypt,
    "rsa_decrypt": travis.rsa_decrypt,
    "json": travis.json,
}

# Newer versions of a function, oldest first after its default.
_LATER: dict[str, dict[str, Library]] = {
    "reverse": {CODE_POINT_REVERSE_VERSION: strings.reverse_code_points},
}

IMPLEMENTATIONS: Mapping[str, Mapping[str, Library]] = MappingProxyType(
    {
        **{name: {TRAVIS_VERSION: lib, **_LATER.get(name, {})} for name, lib in _TRAVIS.items()},
        **{name: {OURS_VERSION: lib} for name, lib in strings.LIBRARIES.items()},
        **{name: {OURS_VERSION: lib} for name, lib in jsonpath.LIBRARIES.items()},
    }
)

# What a chain runs before governance enables anything: the first version of each function.
DEFAULT_VERSIONS: Mapping[str, str] = MappingProxyType(
    {name: next(iter(versions)) for name, versions in IMPLEMENTATIONS.items()}
)


class UnknownEniVersion(ValueError):
    """A (function, version) pair this node does not ship: the chain state is inconsistent."""


def available() -> dict[str, tuple[str, ...]]:
    """Every function this node ships -> its versions, oldest first."""
    return {name: tuple(versions) for name, versions in IMPLEMENTATIONS.items()}


def is_available(name: str, version: str) -> bool:
    """Whether this node ships ``version`` of function ``name``."""
    return version in IMPLEMENTATIONS.get(name, {})


def default_version(name: str) -> str | None:
    """The version a chain runs until governance enables another; None: no such function."""
    return DEFAULT_VERSIONS.get(name)


class Registry:
    """Function name -> the version a block runs. Immutable."""

    __slots__ = ("_enabled",)

    def __init__(self, enabled: Mapping[str, str]) -> None:
        for name, version in sorted(enabled.items()):
            if not is_available(name, version):
                raise UnknownEniVersion(
                    f"ENI function {name!r} has no version {version!r} in this node "
                    f"(it ships {', '.join(IMPLEMENTATIONS.get(name, {})) or 'no such function'})"
                )
        self._enabled: Mapping[str, str] = MappingProxyType(dict(sorted(enabled.items())))

    @classmethod
    def default(cls) -> Registry:
        """Every function at its default version (a chain before any deploy_libeni)."""
        return DEFAULT

    @classmethod
    def governed(cls, versions: Mapping[str, str]) -> Registry:
        """The defaults with ``versions`` (what governance enabled, from state) on top;
        ``UnknownEniVersion`` if this node lacks one of them."""
        if not versions:
            return DEFAULT
        return cls({**DEFAULT_VERSIONS, **versions})

    def enabled(self) -> dict[str, str]:
        return dict(self._enabled)

    def version_of(self, name: str) -> str | None:
        return self._enabled.get(name)

    def resolve(self, name: str) -> Library:
        """The enabled implementation of ``name``; EniError (VM error) if there is none."""
        version = self._enabled.get(name)
        if version is None:
            raise EniError(f"unknown ENI function {name!r}")
        return IMPLEMENTATIONS[name][version]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Registry) and self._enabled == other._enabled

    def __hash__(self) -> int:
        return hash(tuple(self._enabled.items()))

    def __repr__(self) -> str:
        return f"Registry({dict(self._enabled)!r})"


DEFAULT = Registry(DEFAULT_VERSIONS)
