"""ENI, the Ethereum Native Interface of the CyberMiles VM (SPEC §9).

Contracts call native libraries either through the ENI opcode 0xf5 (lity profile) or through the
ENI precompile ``call(string fn, string argsJson) returns (string)`` (both profiles).

Opcode flow (the opcode itself lives with the CVM opcodes)::

    name = function_name(word)
    args = decode_call(read, type_offset, data_offset)       # free reads, no memory expansion
    result, lib_gas = run(name, args, registry)              # charge ENI_BASE_GAS + lib_gas
    P, blob, free = encode_result(data_offset, L, result)    # pay expansion, write, mem[0x40]=free
    push(P + 32)

Any ``EniError`` means: the call errors and consumes all gas.

``registry`` is the block's: the library versions the chain state enables, carried in
``BlockEnv.eni_versions`` into the execution context (``registry.py`` has the whole path and the
table of versions). Without one, ``run`` uses the defaults.

Modules: ``convention`` (memory layout, JSON text rules, errors), ``registry`` (names, versions,
which version a block runs), ``travis`` (libENI 1.3.7: reverse, scrypt, rsa_encrypt,
rsa_decrypt, json), ``strings`` (our string library, and reverse v2.0.0) and ``jsonpath`` (our
JSON-path library).
"""

from __future__ import annotations

from evm.eni.convention import (
    EniError,
    LibResult,
    bytes_from_text,
    decode_call,
    encode_result,
    function_name,
    parse_args,
    parse_result,
    render_result,
    text_from_bytes,
)
from evm.eni.registry import (
    CODE_POINT_REVERSE_VERSION,
    DEFAULT_VERSIONS,
    IMPLEMENTATIONS,
    OURS_VERSION,
    TRAVIS_VERSION,
    Registry,
    UnknownEniVersion,
    available,
    default_version,
    is_available,
)

ENI_BASE_GAS = 400

__all__ = [
    "CODE_POINT_REVERSE_VERSION",
    "DEFAULT_VERSIONS",
    "ENI_BASE_GAS",
    "IMPLEMENTATIONS",
    "OURS_VERSION",
    "TRAVIS_VERSION",
    "EniError",
    "LibResult",
    "Registry",
    "UnknownEniVersion",
    "available",
    "bytes_from_text",
    "decode_call",
    "default_registry",
    "default_version",
    "encode_result",
    "function_name",
    "is_available",
    "parse_result",
    "precompile_call",
    "run",
    "text_from_bytes",
]


def default_registry() -> Registry:
    """Every function at its default version (a chain before any deploy_libeni)."""
    return Registry.default()


def run(function: str, args_json: str, registry: Registry | None = None) -> tuple[str, int]:
    """Call library ``function`` with the JSON-array text of its arguments.

    Returns ``(result JSON text, library gas)``; the caller adds ``ENI_BASE_GAS``.  Raises
    ``EniError`` for an unknown function, bad arguments or a library failure."""
    library = (registry or Registry.default()).resolve(function)
    args = parse_args(args_json)
    try:
        result = library(args)
    except RecursionError as exc:  # defensive: pathological nesting in a library input
        raise EniError(f"{function}: input nested too deeply") from exc
    return render_result(result.value), result.gas


def precompile_call(fn: str, args_json: str, registry: Registry | None = None) -> tuple[str, int]:
    """The ENI precompile ``call(string fn, string argsJson) returns (string)``.

    Same libraries as the opcode.  Returns ``(result string, gas)`` where the gas INCLUDES
    ``ENI_BASE_GAS`` (the precompile has no other base charge, so a call costs the same as the
    opcode minus memory expansion) and the result is the library's string itself, ready to be
    ABI-encoded as the returned ``string`` (not the ``["..."]`` JSON text).  ABI strings are
    bytes: decode ``fn``/``argsJson`` with ``text_from_bytes`` and encode the result with
    ``bytes_from_text``.  Raises ``EniError`` (the precompile reverts/fails, all gas consumed)."""
    result_json, gas = run(fn, args_json, registry)
    return parse_result(result_json), ENI_BASE_GAS + gas
