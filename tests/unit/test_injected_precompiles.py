"""Precompiles plugged in from outside evm (`EvmProfile.with_precompiles`, DESIGN.md §7 item 3).

The staking and governance modules will inject their precompiles from the composition root.
Here a stand-in, `tally`, is injected at 0x…c0de05 on both profiles. Like the staking
precompile it will stand for, it keeps state in its own account: each run adds 1 to slot 0 of
0x…c0de05 (except under STATICCALL) and answers `MARKER ‖ calldata`, charging TALLY_GAS. The
tests drive it through real
computations with the caller-contract helpers of test_cvm_precompiles.py: from a transaction,
from CALL/STATICCALL/DELEGATECALL, from a nested call, and under a reverting caller.
"""

from __future__ import annotations

import pytest
from eth.abc import ComputationAPI
from eth_account import Account
from eth_typing import Address
from eth_utils import to_checksum_address

from evm import precompiles as pc
from evm.db import MemoryDB
from evm.executor import BlockExecutor
from evm.profiles import CVM, LITY, EvmProfile
from evm.state import StateDB
from tests.unit.test_cvm_opcodes import sign
from tests.unit.test_cvm_precompiles import (
    CALL,
    DELEGATECALL,
    STATICCALL,
    Outcome,
    call_precompile,
    caller_code,
    make_env,
    new_state,
)

INJECTED = Address(bytes.fromhex("0000000000000000000000000000000000c0de05"))
CALLEE = Address(b"\x0d" * 20)
MARKER = b"tally:"
TALLY_GAS = 700
DATA = b"\x01\x02\x03"
ECHO = MARKER + DATA
INTRINSIC_GAS = 21_000


def tally(computation: ComputationAPI) -> ComputationAPI:
    """The stand-in module precompile: writes its own account's storage through the state.

    py-evm enforces STATICCALL in the opcodes (SSTORE, LOG, CALL with value) only; a precompile
    writing through `computation.state` must check `msg.is_static` itself.
    """
    computation.consume_gas(TALLY_GAS, reason="tally")
    state = computation.state
    if not computation.msg.is_static:
        state.set_storage(INJECTED, 0, state.get_storage(INJECTED, 0) + 1)
    computation.output = MARKER + computation.msg.data_as_bytes
    return computation


BASES = pytest.mark.parametrize("base", [CVM, LITY], ids=["cvm", "lity"])


def inject(base: EvmProfile) -> EvmProfile:
    return base.with_precompiles({INJECTED: tally})


def tallies(state: object) -> int:
    return state.get_storage(INJECTED, 0)  # type: ignore[attr-defined,no-any-return]


def state_with_stub(profile: EvmProfile):
    """A fresh state with INJECTED's genesis stub, as the composition root will give it."""
    state = new_state(profile)
    for address, code in pc.genesis_code_stubs([INJECTED]).items():
        state.set_code(address, code)
    return state


def reverting(code: bytes) -> bytes:
    """`caller_code`'s contract ending in REVERT instead of RETURN (same data handed back)."""
    assert code[-1] == 0xF3
    return code[:-1] + b"\xfd"


# --- the profile ----------------------------------------------------------------------------


@BASES
def test_injected_profile_keeps_its_name_and_lists_the_new_address(base: EvmProfile) -> None:
    profile = inject(base)
    assert profile.name == base.name
    assert profile.precompile_addresses == base.precompile_addresses | {INJECTED}
    assert profile.injected_precompile_addresses == {INJECTED}
    assert base.injected_precompile_addresses == frozenset()


@BASES
def test_base_profile_and_its_shared_classes_are_untouched(base: EvmProfile) -> None:
    computation_class = base.state_class.computation_class
    precompiles_before = dict(computation_class.get_precompiles())
    inject(base)
    assert INJECTED not in base.precompile_addresses
    assert base.state_class.computation_class is computation_class
    assert computation_class.get_precompiles() == precompiles_before
    # The base EVM sees an ordinary empty account: the call succeeds and returns nothing.
    outcome = call_precompile(base, INJECTED, DATA)
    assert outcome.success and outcome.returndata == b""


@BASES
def test_injecting_the_same_mapping_twice_reuses_the_classes(base: EvmProfile) -> None:
    assert inject(base).state_class is inject(base).state_class
    assert inject(base) == inject(base)
    assert base.with_precompiles({}) is base


@BASES
@pytest.mark.parametrize(
    "taken",
    [pc.ENI_ADDRESS, pc.FREEGAS_ADDRESS, Address(b"\x00" * 19 + b"\x01")],
    ids=["eni", "freegas", "ecrecover"],
)
def test_collision_with_an_existing_precompile_is_refused(base: EvmProfile, taken: bytes) -> None:
    with pytest.raises(ValueError, match=f"0x{taken.hex()}.*already has a precompile"):
        base.with_precompiles({INJECTED: tally, taken: tally})


@BASES
def test_injecting_at_an_already_injected_address_is_refused(base: EvmProfile) -> None:
    with pytest.raises(ValueError, match="already has a precompile"):
        inject(base).with_precompiles({INJECTED: tally})


@BASES
def test_injections_stack(base: EvmProfile) -> None:
    governance = Address(bytes.fromhex("0000000000000000000000000000000000c0de06"))
    profile = inject(base).with_precompiles({governance: tally})
    assert profile.injected_precompile_addresses == {INJECTED, governance}
    assert {INJECTED, governance} <= profile.precompile_addresses


def test_an_address_that_is_not_20_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="not 20 bytes"):
        CVM.with_precompiles({INJECTED[1:]: tally})


def test_genesis_code_stubs_are_the_cvm_stub() -> None:
    assert pc.genesis_code_stubs([INJECTED]) == {INJECTED: pc.PRECOMPILE_STUB_CODE}
    assert dict(pc.PRECOMPILE_GENESIS_CODE) == pc.genesis_code_stubs(pc.CVM_PRECOMPILES)


# --- reachable from every kind of message ------------------------------------------------------


@BASES
@pytest.mark.parametrize("op", [CALL, STATICCALL, DELEGATECALL], ids=["call", "static", "delegate"])
def test_reachable_from_a_contract(base: EvmProfile, op: int) -> None:
    state = state_with_stub(inject(base))
    outcome = call_precompile(inject(base), INJECTED, DATA, op=op, state=state)
    assert outcome.success
    assert outcome.returndata == ECHO
    assert outcome.gas == TALLY_GAS
    assert tallies(state) == (0 if op == STATICCALL else 1)  # it is told the frame is static


@BASES
def test_reachable_from_a_nested_call(base: EvmProfile) -> None:
    """TARGET calls CALLEE, which calls the precompile: depth 2."""
    profile = inject(base)
    state = state_with_stub(profile)
    state.set_code(CALLEE, caller_code(INJECTED, DATA))
    outcome = call_precompile(profile, CALLEE, b"", state=state)
    assert outcome.success
    assert outcome.returndata == (1).to_bytes(32, "big") + ECHO  # CALLEE's success word + echo
    assert outcome.child.children[0].msg.depth == 2
    assert tallies(state) == 1


def signed_transaction_to_injected(data: bytes):
    key = b"\x05" * 32
    sender = bytes.fromhex(Account.from_key(key).address[2:])
    return sender, sign(key, {"nonce": 0, "to": to_checksum_address(INJECTED), "data": data})


def executor_for(profile: EvmProfile, sender: bytes, *, stub: bool) -> BlockExecutor:
    db = MemoryDB()
    genesis = StateDB(db)
    genesis.set_balance(sender, 10**18)
    if stub:
        for address, code in pc.genesis_code_stubs([INJECTED]).items():
            genesis.set_code(address, code)
    genesis.persist()
    return BlockExecutor(profile, db, genesis.state_root, make_env())


@BASES
@pytest.mark.parametrize("data", [b"", DATA], ids=["no-data", "data"])
@pytest.mark.parametrize("stub", [False, True], ids=["no-stub", "stub"])
def test_reachable_from_a_transaction(base: EvmProfile, data: bytes, stub: bool) -> None:
    """A transaction to the address runs the precompile, through the block executor.

    Without a stub and without data, the transaction has the shape of a plain transfer to an
    account with no code: only `precompile_addresses` keeps it off the transfer fast path.
    """
    sender, tx = signed_transaction_to_injected(data)
    executor = executor_for(inject(base), sender, stub=stub)
    receipt = executor.apply(tx)
    assert receipt.state_root == b"\x01"  # status: success
    assert receipt.gas_used == tx.intrinsic_gas + TALLY_GAS


@BASES
def test_the_genesis_stub_keeps_the_precompiles_storage(base: EvmProfile) -> None:
    """Why the root must give injected addresses the stub: an account with no code, nonce or
    balance is empty (EIP-161), and a transaction that touches it deletes it, storage and all."""
    sender, tx = signed_transaction_to_injected(b"")
    for stub, kept in [(False, 0), (True, 1)]:
        executor = executor_for(inject(base), sender, stub=stub)
        executor.apply(tx)
        assert executor.account_db.get_storage(INJECTED, 0) == kept


# --- a reverting caller undoes the precompile's writes -----------------------------------------


@BASES
@pytest.mark.parametrize("callee_reverts", [False, True], ids=["returns", "reverts"])
def test_a_reverting_caller_undoes_the_precompiles_write(
    base: EvmProfile, callee_reverts: bool
) -> None:
    """TARGET calls CALLEE; CALLEE calls the precompile (which writes its storage), then
    returns or reverts. py-evm snapshots the state around every child message, so CALLEE's
    revert undoes the write while TARGET, which survives, goes on: DESIGN.md's "a reverting
    caller undoes a delegation for free"."""
    profile = inject(base)
    state = state_with_stub(profile)
    callee = caller_code(INJECTED, DATA)
    state.set_code(CALLEE, reverting(callee) if callee_reverts else callee)
    outcome: Outcome = call_precompile(profile, CALLEE, b"", state=state)  # TARGET succeeded
    precompile_run = outcome.child.children[0]
    assert precompile_run.is_success and precompile_run.output == ECHO  # it did run and write
    assert outcome.success is not callee_reverts
    assert outcome.returndata == (1).to_bytes(32, "big") + ECHO  # revert data reaches TARGET
    assert tallies(state) == (0 if callee_reverts else 1)
