"""The CyberMiles precompiled contracts (SPEC.md §9), on both the `cvm` and `lity` profiles.

Bird's-eye view
---------------
Four precompiles give contracts from any compiler the CVM features without the new opcodes
(which only Lity emits). Each is called with the plain Solidity ABI: a 4-byte selector plus
ABI-encoded arguments, answered with ABI-encoded results, so a contract just declares an
interface and calls it (see docs/PRECOMPILES.md).

========  ==========  ============================================================
address   name        functions (gas)
========  ==========  ============================================================
0xc0de01  ENI         call(string,string) returns (string)
                      (400 + library gas + 3 per argument word)
0xc0de02  randomness  random() returns (uint256) (50)
                      randomAt(uint256) returns (uint256) (100)
0xc0de03  validators  isValidator(address) returns (bool) (100)
0xc0de04  freegas     freegas() (20)
========  ==========  ============================================================

Each address is the 20-byte 0x0000000000000000000000000000000000c0deNN.

Why these addresses: Ethereum numbers its precompiles upwards from 0x01 (0x01-0x11 in Prague,
0x100 for P-256 in Osaka) and places system contracts at hash-like addresses, so a block of
addresses at 0xc0de01.. (12.6 million) will not collide with present or future Ethereum
precompiles; 0xc0de05 onwards is kept for the staking/governance precompiles.

How a call runs (`abi_precompile`): look the selector up (unknown -> error), charge the
function's fixed gas (and, for ENI, a per-word charge before any decoding work), decode the
arguments strictly, run the handler, set the ABI-encoded output. "Strictly" means the calldata
must be the canonical ABI encoding of the arguments, exactly what `abi.encode` and every
Solidity/Vyper encoder produce: no short or trailing bytes, zero padding, clean address words,
offsets where the encoder puts them. Any violation is a `PrecompileInputError` (a `VMError`
that burns gas): the call fails and consumes all the gas it was given, like a bad opcode.
The one deliberate revert is `randomAt` of a height with no known randomness: it reverts with
`Error(string)` data (gas left is returned) so Solidity's `try/catch Error` and `require`
bubbling see a reason string.

Context: the handlers reuse the CVM opcode plumbing in evm/cvm.py: `draw_random` (RAND's
stream), `validator_owners(state)`, `eni_registry(state)` (the block's ENI library versions,
the same the ENI opcode runs) and `mark_freegas` (FREEGAS's transaction flag), and the
`past_randomness` reader of `CvmExecutionContext`. None writes account state, so all four
work under STATICCALL.

Deployment note: Solidity's high-level calls check `extcodesize(target) > 0` first (always
before 0.8.10, and since then still for functions without return values such as `freegas()`),
and a precompile has no code. `PRECOMPILE_GENESIS_CODE` is the stub code genesis puts at each
address so those checks pass; the stub (PUSH1 0 DUP1 REVERT, as Moonbeam uses) never runs,
because py-evm dispatches on the code address before looking at code. `genesis_code_stubs`
gives the same stub for any other addresses, such as precompiles a module plugs in with
`EvmProfile.with_precompiles` (evm/profiles.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from eth.abc import ComputationAPI
from eth.exceptions import Revert, VMError
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_typing import Address
from eth_utils import function_signature_to_4byte_selector

from evm import eni
from evm.cvm import draw_random, eni_registry, mark_freegas, validator_owners

ENI_ADDRESS = Address(bytes.fromhex("0000000000000000000000000000000000c0de01"))
RANDOMNESS_ADDRESS = Address(bytes.fromhex("0000000000000000000000000000000000c0de02"))
VALIDATORS_ADDRESS = Address(bytes.fromhex("0000000000000000000000000000000000c0de03"))
FREEGAS_ADDRESS = Address(bytes.fromhex("0000000000000000000000000000000000c0de04"))

GAS_RANDOM = 50
GAS_RANDOM_AT = 100
GAS_IS_VALIDATOR = 100
GAS_FREEGAS = 20
# ENI: charged per 32-byte word of ABI arguments before decoding, because decoding and JSON-parsing
# the arguments is work proportional to their size that some library prices ignore (json's
# parseString charges by result length). Same rate as the IDENTITY precompile's copy.
GAS_ENI_PER_WORD = 3

# PUSH1 0 DUP1 REVERT: code for extcodesize checks only; precompile dispatch never runs it.
PRECOMPILE_STUB_CODE = bytes.fromhex("60006000fd")

ERROR_SELECTOR = function_signature_to_4byte_selector("Error(string)")


class PrecompileInputError(VMError):
    """Unknown selector, non-canonical ABI calldata or a failing library: all gas consumed."""


Handler = Callable[[ComputationAPI, tuple[Any, ...]], bytes]

# What py-evm calls for a message whose code address is a precompile: it gets the child
# computation (msg, state, gas meter), sets `output`, charges gas, may raise a `VMError`
# (failure, all gas consumed) or `Revert`, and returns the computation. The one precompile
# interface of evm: the CVM precompiles below and those modules plug in with
# `EvmProfile.with_precompiles` have this type.
Precompile = Callable[[ComputationAPI], ComputationAPI]


@dataclass(frozen=True)
class AbiFunction:
    """One ABI function of a precompile: what it takes, what it costs up front, what it does.

    `handler` gets the decoded arguments and returns the ABI-encoded output; it may charge
    more gas itself (ENI's library gas) or raise `Revert`.
    """

    signature: str
    arg_types: tuple[str, ...]
    gas: int
    handler: Handler
    gas_per_word: int = 0

    @property
    def selector(self) -> bytes:
        return function_signature_to_4byte_selector(self.signature)


def decode_strict(arg_types: Sequence[str], body: bytes) -> tuple[Any, ...]:
    """The arguments of canonical ABI `body`; anything else is a `PrecompileInputError`.

    `string` arguments are decoded as `bytes` (same encoding) so that non-UTF-8 contract strings
    reach the handler intact; canonicality is checked by re-encoding.
    """
    wire_types = ["bytes" if t == "string" else t for t in arg_types]
    try:
        values = abi_decode(wire_types, body, strict=True)
    except Exception as exc:  # eth_abi raises several unrelated exception types
        raise PrecompileInputError(f"malformed ABI arguments: {exc}") from None
    if abi_encode(wire_types, values) != body:
        raise PrecompileInputError("ABI arguments are not canonically encoded")
    return tuple(values)


def abi_precompile(*functions: AbiFunction) -> Precompile:
    """A precompile dispatching its calldata to `functions` by selector."""
    by_selector = {f.selector: f for f in functions}
    assert len(by_selector) == len(functions), "selector clash"

    def precompile(computation: ComputationAPI) -> ComputationAPI:
        data = computation.msg.data_as_bytes
        function = by_selector.get(data[:4])
        if function is None:  # also calldata shorter than a selector
            raise PrecompileInputError(f"unknown selector 0x{data[:4].hex()}")
        body = data[4:]
        words = (len(body) + 31) // 32
        computation.consume_gas(
            function.gas + function.gas_per_word * words, reason=function.signature
        )
        args = decode_strict(function.arg_types, body)
        computation.output = function.handler(computation, args)
        return computation

    return precompile


def revert_with_reason(computation: ComputationAPI, reason: str) -> NoReturn:
    """Revert the precompile call with Solidity's `Error(string)` data (gas left is returned)."""
    computation.output = ERROR_SELECTOR + abi_encode(["string"], [reason])
    raise Revert(reason)


def encode_uint(value: int) -> bytes:
    return abi_encode(["uint256"], [value])


# --- ENI -----------------------------------------------------------------------------------


def eni_call(computation: ComputationAPI, args: tuple[Any, ...]) -> bytes:
    fn, args_json = (eni.text_from_bytes(raw) for raw in args)
    try:
        # The block's library versions, as the ENI opcode; gas includes ENI_BASE_GAS.
        result, gas = eni.precompile_call(fn, args_json, eni_registry(computation.state))
        output = eni.bytes_from_text(result)
    except eni.EniError as exc:
        raise PrecompileInputError(f"ENI {fn!r}: {exc}") from None
    computation.consume_gas(gas, reason="ENI library")
    return abi_encode(["bytes"], [output])


# --- randomness ----------------------------------------------------------------------------


def calling_address(computation: ComputationAPI) -> Address:
    """The address whose RAND the calling frame would use: its storage context.

    Under CALL/STATICCALL that is the sender (the contract calling the precompile); under
    DELEGATECALL/CALLCODE the precompile runs in the caller's storage context already.
    """
    msg = computation.msg
    return msg.sender if msg.storage_address == msg.code_address else msg.storage_address


def random(computation: ComputationAPI, _args: tuple[Any, ...]) -> bytes:
    return draw_random(computation, calling_address(computation))


def random_at(computation: ComputationAPI, args: tuple[Any, ...]) -> bytes:
    (height,) = args
    context = computation.state.execution_context
    if height > context.block_number:
        revert_with_reason(computation, f"randomAt: height {height} is in the future")
    if height == context.block_number:
        # The block being executed: its beacon is RAND's seed, not yet in past_randomness.
        return bytes(context.mix_hash)
    past: Callable[[int], bytes | None] = getattr(context, "past_randomness", lambda _n: None)
    value = past(height)
    if value is None:
        revert_with_reason(computation, f"randomAt: no randomness known for height {height}")
    return encode_uint(int.from_bytes(value, "big"))


# --- validators and freegas ----------------------------------------------------------------


def is_validator(computation: ComputationAPI, args: tuple[Any, ...]) -> bytes:
    (address,) = args  # eth_abi returns a checksummed hex string
    owner = bytes.fromhex(address[2:])
    return abi_encode(["bool"], [owner in validator_owners(computation.state)])


def freegas(computation: ComputationAPI, _args: tuple[Any, ...]) -> bytes:
    mark_freegas(computation)
    return b""


CVM_PRECOMPILES: Mapping[Address, Precompile] = {
    ENI_ADDRESS: abi_precompile(
        AbiFunction("call(string,string)", ("string", "string"), 0, eni_call, GAS_ENI_PER_WORD)
    ),
    RANDOMNESS_ADDRESS: abi_precompile(
        AbiFunction("random()", (), GAS_RANDOM, random),
        AbiFunction("randomAt(uint256)", ("uint256",), GAS_RANDOM_AT, random_at),
    ),
    VALIDATORS_ADDRESS: abi_precompile(
        AbiFunction("isValidator(address)", ("address",), GAS_IS_VALIDATOR, is_validator)
    ),
    FREEGAS_ADDRESS: abi_precompile(AbiFunction("freegas()", (), GAS_FREEGAS, freegas)),
}


def genesis_code_stubs(addresses: Iterable[bytes]) -> dict[Address, bytes]:
    """The code genesis puts at each of `addresses` (see "Deployment note" above)."""
    return {Address(address): PRECOMPILE_STUB_CODE for address in addresses}


PRECOMPILE_GENESIS_CODE: Mapping[Address, bytes] = genesis_code_stubs(CVM_PRECOMPILES)

__all__ = [
    "CVM_PRECOMPILES",
    "ENI_ADDRESS",
    "FREEGAS_ADDRESS",
    "PRECOMPILE_GENESIS_CODE",
    "PRECOMPILE_STUB_CODE",
    "RANDOMNESS_ADDRESS",
    "VALIDATORS_ADDRESS",
    "AbiFunction",
    "Precompile",
    "PrecompileInputError",
    "abi_precompile",
    "decode_strict",
    "genesis_code_stubs",
]
