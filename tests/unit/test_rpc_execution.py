"""eth_call and eth_estimateGas are bounded: a gas cap, a wall-clock deadline, a worker thread.

An eth_call with gas 2^63 over an infinite loop used to pin the event loop forever (the node
stopped voting and ignored SIGTERM). Here the execution is stopped from inside the EVM by its
deadline, and it runs in a worker thread while the event loop keeps running.
"""

from __future__ import annotations

import time

import pytest
import trio

from evm.call import CallError, CallRequest, Deadline, ExecutionTimeout, estimate_gas, run_call
from evm.db import MemoryDB
from evm.executor import BlockEnv
from evm.profiles import get_profile
from evm.state import StateDB
from rpc.execution import EvmWorker

LOOP = bytes.fromhex("5b600056")  # JUMPDEST PUSH1 0 JUMP: loops until out of gas
LOOPER = b"\x11" * 20
CALLER = b"\x22" * 20
ENV = BlockEnv(
    number=1,
    timestamp=1,
    coinbase=b"\x00" * 20,
    gas_limit=30_000_000,
    mix_hash=b"\x00" * 32,
    chain_id=1234,
)


class FakeClock:
    """Reads `now`; moves `step` seconds on each reading (the EVM's time passing)."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        now = self.now
        self.now += self.step
        return now


def state_with_looper() -> tuple[MemoryDB, bytes]:
    db = MemoryDB()
    state = StateDB(db)  # type: ignore[arg-type]
    state.set_code(LOOPER, LOOP)
    state.persist()
    return db, state.state_root


@pytest.mark.parametrize("profile", ["cvm", "lity"])
def test_a_deadline_stops_an_infinite_loop_from_inside_the_evm(profile: str) -> None:
    db, root = state_with_looper()
    clock = FakeClock(step=0.01)
    deadline = Deadline(5.0, every=100, clock=clock)  # reads 0.0: expires at 5.0
    request = CallRequest(sender=CALLER, to=LOOPER, gas=2**63)
    with pytest.raises(ExecutionTimeout, match=r"execution aborted \(timeout = 5s\)"):
        run_call(get_profile(profile), db, root, ENV, request, gas_cap=2**62, deadline=deadline)
    assert clock.readings == 1 + 501  # stopped at the first check past 5.0 s


def test_the_gas_cap_lowers_the_gas_of_a_call() -> None:
    db, root = state_with_looper()
    request = CallRequest(sender=CALLER, to=LOOPER, gas=2**63)
    result = run_call(get_profile("cvm"), db, root, ENV, request, gas_cap=100_000)
    assert not result.success and result.gas_used == 100_000  # out of gas at the cap


def test_an_expired_deadline_stops_work_before_it_starts() -> None:
    db, root = state_with_looper()
    clock = FakeClock()
    deadline = Deadline(1.0, clock=clock)
    clock.now = 2.0  # waited too long for a worker thread
    with pytest.raises(ExecutionTimeout):
        run_call(get_profile("cvm"), db, root, ENV, CallRequest(CALLER, LOOPER), deadline=deadline)


def test_an_estimate_shares_one_deadline_and_is_not_mistaken_for_too_little_gas() -> None:
    db, root = state_with_looper()
    clock = FakeClock()
    deadline = Deadline(1.0, every=1, clock=clock)
    clock.now = 1.0
    with pytest.raises(ExecutionTimeout):
        estimate_gas(
            get_profile("cvm"), db, root, ENV, CallRequest(CALLER, LOOPER), deadline=deadline
        )


def test_calls_below_the_calldata_floor_are_refused_like_transactions() -> None:
    db, root = state_with_looper()
    with pytest.raises(CallError, match="calldata floor"):
        run_call(
            get_profile("cvm"), db, root, ENV, CallRequest(CALLER, CALLER, b"\x01" * 64, gas=22_100)
        )


def run(async_fn):  # noqa: ANN001,ANN201
    return lambda: trio.run(async_fn)


@run
async def test_the_worker_runs_evm_work_off_the_event_loop() -> None:
    db, root = state_with_looper()
    worker = EvmWorker(timeout=0.5)
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.01)
            ticks += 1

    request = CallRequest(sender=CALLER, to=LOOPER, gas=2**63)
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeat)
        with pytest.raises(ExecutionTimeout):
            await worker.run(
                lambda d: run_call(
                    get_profile("cvm"), db, root, ENV, request, gas_cap=2**62, deadline=d
                )
            )
        nursery.cancel_scope.cancel()
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3.0
    assert ticks >= 10  # the loop kept running while the EVM spun (about 50 if unhindered)


@run
async def test_a_cancelled_request_does_not_wait_for_its_thread() -> None:
    db, root = state_with_looper()
    worker = EvmWorker(timeout=3.0)
    request = CallRequest(sender=CALLER, to=LOOPER, gas=2**63)
    started = time.monotonic()
    with trio.move_on_after(0.2):
        await worker.run(
            lambda d: run_call(
                get_profile("cvm"), db, root, ENV, request, gas_cap=2**62, deadline=d
            )
        )
    assert time.monotonic() - started < 1.0


def test_an_estimate_the_balance_cannot_pay_for_says_so_as_geth_does() -> None:
    db, root = state_with_looper()
    profile = get_profile("cvm")
    broke = CallRequest(sender=CALLER, to=CALLER, gas_price=10**30)
    with pytest.raises(CallError, match=r"^gas required exceeds allowance \(0\)$"):
        estimate_gas(profile, db, root, ENV, broke)
    with pytest.raises(CallError, match="^insufficient funds for transfer$"):
        estimate_gas(profile, db, root, ENV, CallRequest(CALLER, CALLER, value=1, gas_price=1))
