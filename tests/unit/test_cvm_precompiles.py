"""CVM precompiles (SPEC.md §9, evm/precompiles.py) on both profiles, through real computations.

A caller contract at TARGET writes ABI calldata built here into memory, CALLs (or STATICCALLs,
DELEGATECALLs) the precompile with a fixed gas allowance, and returns
`success word ‖ returndata`. The precompile's exact gas is read off the child computation
(`children[0]`), so caller-side gas (memory, CALL cost, warm/cold) does not blur it.
"""

from __future__ import annotations

import pytest
from eth.exceptions import Revert
from eth.vm.message import Message
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_hash.auto import keccak
from eth_typing import Address
from eth_utils import function_signature_to_4byte_selector as selector

from evm import precompiles as pc
from evm.call import CallRequest, decode_revert_reason, run_call
from evm.cvm import rand_word
from evm.db import MemoryDB
from evm.executor import BlockEnv, execution_context
from evm.profiles import CVM, LITY, EvmProfile
from evm.state import StateDB

ORIGIN = Address(b"\x0a" * 20)
TARGET = Address(b"\x0c" * 20)
OWNER = b"\x77" * 20
CHILD_GAS = 100_000
PROFILES = pytest.mark.parametrize("profile", [CVM, LITY], ids=["cvm", "lity"])
CALL, DELEGATECALL, STATICCALL = 0xF1, 0xF4, 0xFA
HEIGHT = 5
PAST = {1: b"\x21" * 32, 4: b"\x24" * 32}


def make_env(**changes: object) -> BlockEnv:
    fields: dict = {
        "number": HEIGHT,
        "timestamp": 1_700_000_000,
        "coinbase": b"\x00" * 20,
        "gas_limit": 30_000_000,
        "mix_hash": b"\x11" * 32,
        "chain_id": 1234,
        "validator_owners": frozenset({OWNER}),
        "past_randomness": PAST.get,
    }
    fields.update(changes)
    return BlockEnv(**fields)


def new_state(profile: EvmProfile, env: BlockEnv | None = None):
    empty_root = StateDB(MemoryDB()).state_root
    state = profile.state_class(MemoryDB(), execution_context(env or make_env()), empty_root)
    state.begin_transaction()
    return state


def abi_call(signature: str, types: list[str] | None = None, args: list | None = None) -> bytes:
    return selector(signature) + abi_encode(types or [], args or [])


def caller_code(address: bytes, calldata: bytes, op: int = CALL) -> bytes:
    """Store calldata at 0, call `address` with CHILD_GAS, return success word ‖ returndata."""
    code = bytearray()
    for offset in range(0, len(calldata), 32):
        word = calldata[offset : offset + 32].ljust(32, b"\x00")
        code += b"\x7f" + word + b"\x61" + offset.to_bytes(2, "big") + b"\x52"  # MSTORE
    code += bytes.fromhex("60006000") + b"\x61" + len(calldata).to_bytes(2, "big") + b"\x60\x00"
    if op == CALL:
        code += b"\x60\x00"  # value
    code += b"\x73" + address + b"\x62" + CHILD_GAS.to_bytes(3, "big") + bytes([op])
    code += bytes.fromhex("600052" + "3d60006020" + "3e" + "3d602001" + "6000f3")
    return bytes(code)


class Outcome:
    def __init__(self, computation) -> None:
        assert computation.is_success, computation.error
        self.success = int.from_bytes(computation.output[:32], "big") == 1
        self.returndata = computation.output[32:]
        self.child = computation.children[0]
        self.gas = self.child.msg.gas - self.child.get_gas_remaining()


def call_precompile(
    profile: EvmProfile, address: bytes, calldata: bytes, *, op: int = CALL, state=None
) -> Outcome:
    state = state if state is not None else new_state(profile)
    code = caller_code(address, calldata, op)
    state.set_code(TARGET, code)
    message = Message(gas=1_000_000, to=TARGET, sender=ORIGIN, value=0, data=b"", code=code)
    context = state.get_transaction_context_class()(gas_price=0, origin=ORIGIN)
    return Outcome(state.computation_class.apply_message(state, message, context))


def assert_failed_all_gas(outcome: Outcome) -> None:
    assert not outcome.success
    assert outcome.returndata == b""
    assert outcome.gas == CHILD_GAS
    assert isinstance(outcome.child.error, pc.PrecompileInputError)


def eni_data(fn: bytes | str, args_json: bytes | str) -> bytes:
    raw = [x.encode() if isinstance(x, str) else x for x in (fn, args_json)]
    return abi_call("call(string,string)", ["bytes", "bytes"], raw)


# --- registration ----------------------------------------------------------------------------


@PROFILES
def test_registered_on_both_profiles_and_seen_by_the_fast_path(profile: EvmProfile) -> None:
    addresses = {pc.ENI_ADDRESS, pc.RANDOMNESS_ADDRESS, pc.VALIDATORS_ADDRESS, pc.FREEGAS_ADDRESS}
    assert addresses == set(pc.CVM_PRECOMPILES) == set(pc.PRECOMPILE_GENESIS_CODE)
    assert addresses <= profile.precompile_addresses
    assert b"\x00" * 19 + b"\x01" in profile.precompile_addresses  # the stock ones stay


def test_addresses_clear_of_ethereum_precompiles() -> None:
    assert all(int.from_bytes(a, "big") >= 0xC0DE01 for a in pc.CVM_PRECOMPILES)


# --- ENI -------------------------------------------------------------------------------------


@PROFILES
def test_eni_reverse(profile: EvmProfile) -> None:
    data = eni_data("reverse", '["abc"]')
    outcome = call_precompile(profile, pc.ENI_ADDRESS, data)
    assert outcome.success
    assert abi_decode(["string"], outcome.returndata) == ("cba",)
    words = (len(data) - 4) // 32
    assert outcome.gas == 400 + 10 * 3 + 3 * words


@PROFILES
def test_eni_non_utf8_string_round_trips(profile: EvmProfile) -> None:
    outcome = call_precompile(profile, pc.ENI_ADDRESS, eni_data("reverse", b'["a\xff"]'))
    assert outcome.success
    assert abi_decode(["bytes"], outcome.returndata) == (b"\xffa",)


@PROFILES
@pytest.mark.parametrize(
    "data",
    [
        eni_data("no_such_function", "[]"),
        eni_data("reverse", "not json"),
        eni_data("reverse", "[1, 2, 3]"),
    ],
    ids=["unknown-fn", "bad-json", "bad-args"],
)
def test_eni_library_errors_burn_all_gas(profile: EvmProfile, data: bytes) -> None:
    assert_failed_all_gas(call_precompile(profile, pc.ENI_ADDRESS, data))


@PROFILES
def test_eni_out_of_gas_for_library(profile: EvmProfile) -> None:
    big = "x" * 20_000  # reverse costs 10 x len = 200_000 > CHILD_GAS
    outcome = call_precompile(profile, pc.ENI_ADDRESS, eni_data("reverse", f'["{big}"]'))
    assert not outcome.success and outcome.gas == CHILD_GAS


# --- strict ABI decoding ---------------------------------------------------------------------

GOOD_ENI = eni_data("reverse", '["abc"]')
GOOD_IS_VALIDATOR = abi_call("isValidator(address)", ["address"], [OWNER])
MALFORMED = {
    "empty": (pc.RANDOMNESS_ADDRESS, b""),
    "short-selector": (pc.RANDOMNESS_ADDRESS, selector("random()")[:3]),
    "unknown-selector": (pc.RANDOMNESS_ADDRESS, selector("randomm()")),
    "other-precompiles-selector": (pc.FREEGAS_ADDRESS, selector("random()")),
    "trailing-byte": (pc.RANDOMNESS_ADDRESS, selector("random()") + b"\x00"),
    "short-uint": (pc.RANDOMNESS_ADDRESS, selector("randomAt(uint256)") + b"\x00" * 31),
    "dirty-address": (
        pc.VALIDATORS_ADDRESS,
        GOOD_IS_VALIDATOR[:4] + b"\x01" + OWNER.rjust(31, b"\0"),
    ),
    "extra-word": (pc.VALIDATORS_ADDRESS, GOOD_IS_VALIDATOR + b"\x00" * 32),
    "eni-truncated": (pc.ENI_ADDRESS, GOOD_ENI[:-32]),
    "eni-bad-offset": (pc.ENI_ADDRESS, GOOD_ENI[:4] + (2**64).to_bytes(32, "big") + GOOD_ENI[36:]),
    "eni-dirty-padding": (pc.ENI_ADDRESS, GOOD_ENI[:-1] + b"\x01"),
    "eni-trailing-word": (pc.ENI_ADDRESS, GOOD_ENI + b"\x00" * 32),
}


@PROFILES
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_calldata_burns_all_gas(profile: EvmProfile, name: str) -> None:
    address, data = MALFORMED[name]
    assert_failed_all_gas(call_precompile(profile, address, data))


# --- randomness ------------------------------------------------------------------------------


@PROFILES
def test_random_continues_rands_stream_with_the_callers_code_hash(profile: EvmProfile) -> None:
    env = make_env()
    state = new_state(profile, env)
    state.set_nonce(ORIGIN, 300)
    state.rand_counter = 3  # as if two RANDs ran earlier in the transaction
    outcome = call_precompile(profile, pc.RANDOMNESS_ADDRESS, abi_call("random()"), state=state)
    assert outcome.success
    assert outcome.gas == pc.GAS_RANDOM
    code_hash = state.get_code_hash(TARGET)  # the calling contract, not the precompile
    assert code_hash == keccak(caller_code(pc.RANDOMNESS_ADDRESS, abi_call("random()")))
    assert outcome.returndata == rand_word(env.mix_hash, 300, code_hash, 3)
    assert state.rand_counter == 4  # RAND after it gets the next value


@PROFILES
def test_random_equals_rand_opcode_at_the_same_position(profile: EvmProfile) -> None:
    """The caller runs RAND (counter 1), calls random() (counter 2): both from one stream."""
    env = make_env()
    state = new_state(profile, env)
    code = bytes([0xF9, 0x50]) + caller_code(pc.RANDOMNESS_ADDRESS, abi_call("random()"))
    state.set_code(TARGET, code)
    message = Message(gas=1_000_000, to=TARGET, sender=ORIGIN, value=0, data=b"", code=code)
    context = state.get_transaction_context_class()(gas_price=0, origin=ORIGIN)
    outcome = Outcome(state.computation_class.apply_message(state, message, context))
    assert outcome.returndata == rand_word(env.mix_hash, 0, keccak(code), 2)


@PROFILES
def test_random_under_delegatecall_uses_the_callers_storage_context(profile: EvmProfile) -> None:
    env = make_env()
    state = new_state(profile, env)
    data = abi_call("random()")
    outcome = call_precompile(profile, pc.RANDOMNESS_ADDRESS, data, op=DELEGATECALL, state=state)
    assert outcome.returndata == rand_word(env.mix_hash, 0, state.get_code_hash(TARGET), 1)


def random_at(height: int) -> bytes:
    return abi_call("randomAt(uint256)", ["uint256"], [height])


@PROFILES
@pytest.mark.parametrize(
    ("height", "expected"),
    [(1, PAST[1]), (4, PAST[4]), (HEIGHT, b"\x11" * 32)],
    ids=["past", "parent", "current"],
)
def test_random_at_known_heights(profile: EvmProfile, height: int, expected: bytes) -> None:
    outcome = call_precompile(profile, pc.RANDOMNESS_ADDRESS, random_at(height))
    assert outcome.success
    assert outcome.gas == pc.GAS_RANDOM_AT
    assert abi_decode(["uint256"], outcome.returndata) == (int.from_bytes(expected, "big"),)


@PROFILES
@pytest.mark.parametrize(
    ("height", "reason"),
    [
        (HEIGHT + 1, "randomAt: height 6 is in the future"),
        (2**256 - 1, f"randomAt: height {2**256 - 1} is in the future"),
        (2, "randomAt: no randomness known for height 2"),
    ],
    ids=["next", "max", "unknown"],
)
def test_random_at_reverts_with_reason(profile: EvmProfile, height: int, reason: str) -> None:
    outcome = call_precompile(profile, pc.RANDOMNESS_ADDRESS, random_at(height))
    assert not outcome.success
    assert isinstance(outcome.child.error, Revert)
    assert outcome.gas == pc.GAS_RANDOM_AT  # a revert returns the gas left
    assert outcome.returndata[:4] == selector("Error(string)")
    assert decode_revert_reason(outcome.returndata) == reason


# --- validators and freegas ------------------------------------------------------------------


@PROFILES
@pytest.mark.parametrize(("who", "expected"), [(OWNER, True), (b"\x78" * 20, False)])
def test_is_validator(profile: EvmProfile, who: bytes, expected: bool) -> None:
    data = abi_call("isValidator(address)", ["address"], [who])
    outcome = call_precompile(profile, pc.VALIDATORS_ADDRESS, data)
    assert outcome.success
    assert outcome.gas == pc.GAS_IS_VALIDATOR
    assert abi_decode(["bool"], outcome.returndata) == (expected,)


@PROFILES
@pytest.mark.parametrize("op", [CALL, STATICCALL], ids=["call", "staticcall"])
def test_freegas_marks_the_transaction(profile: EvmProfile, op: int) -> None:
    state = new_state(profile)
    assert state.freegas_marked is False
    outcome = call_precompile(
        profile, pc.FREEGAS_ADDRESS, abi_call("freegas()"), op=op, state=state
    )
    assert outcome.success
    assert outcome.returndata == b""
    assert outcome.gas == pc.GAS_FREEGAS
    assert state.freegas_marked is True


STATIC_CALLS = {
    "eni": (pc.ENI_ADDRESS, GOOD_ENI),
    "random": (pc.RANDOMNESS_ADDRESS, abi_call("random()")),
    "randomAt": (pc.RANDOMNESS_ADDRESS, random_at(1)),
    "isValidator": (pc.VALIDATORS_ADDRESS, GOOD_IS_VALIDATOR),
}


@PROFILES
@pytest.mark.parametrize("name", sorted(STATIC_CALLS))
def test_reads_work_under_staticcall(profile: EvmProfile, name: str) -> None:
    address, data = STATIC_CALLS[name]
    assert call_precompile(profile, address, data, op=STATICCALL).success


# --- as a transaction (eth_call) and with genesis stub code ----------------------------------


@PROFILES
def test_eth_call_to_precompile_with_stub_code(profile: EvmProfile) -> None:
    db = MemoryDB()
    genesis = StateDB(db)
    for address, code in pc.PRECOMPILE_GENESIS_CODE.items():
        genesis.set_code(address, code)  # what genesis does so extcodesize checks pass
    genesis.persist()
    env = make_env(validator_owners=frozenset({OWNER}))
    request = CallRequest(sender=OWNER, to=pc.VALIDATORS_ADDRESS, data=GOOD_IS_VALIDATOR)
    result = run_call(profile, db, genesis.state_root, env, request)
    assert result.success
    assert abi_decode(["bool"], result.output) == (True,)
    reverted = run_call(
        profile,
        db,
        genesis.state_root,
        env,
        CallRequest(OWNER, pc.RANDOMNESS_ADDRESS, random_at(9)),
    )
    assert reverted.reverted
    assert reverted.revert_reason == "randomAt: height 9 is in the future"
    failed = run_call(
        profile, db, genesis.state_root, env, CallRequest(OWNER, pc.ENI_ADDRESS, b"\x00")
    )
    assert not failed.success and not failed.reverted
