"""Double-sign protection: the FilePV rule, durability, and refusal to start on a corrupt state."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consensus.errors import ConsensusError, DoubleSignRefused
from consensus.keys import Ed25519Key
from consensus.privval import (
    FilePrivValidator,
    MemoryPrivValidator,
    PrivValidator,
    PrivValidatorStateError,
)
from consensus.types import BlockID, Proposal, SignedStep, Vote, VoteType, validator_address

CHAIN = "test-chain"
KEY = Ed25519Key.from_seed(b"\x07" * 32)
ADDR = validator_address(KEY.public_key)
BLOCK_A = BlockID(b"a" * 32, 1, b"A" * 32)
BLOCK_B = BlockID(b"b" * 32, 1, b"B" * 32)


def vote(height: int, rnd: int, kind: VoteType = VoteType.PREVOTE, block: Any = BLOCK_A) -> Vote:
    return Vote(kind, height, rnd, block, ADDR)


def proposal(height: int, rnd: int, block: BlockID = BLOCK_A) -> Proposal:
    return Proposal(height, rnd, -1, block, ADDR)


# Both implementations run the same behavioural tests; `restart` models a crash + new process.
Factory = Callable[[], PrivValidator]


@pytest.fixture(params=["file", "memory"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "file":
        return lambda: FilePrivValidator(KEY, tmp_path / "pv" / "state.json")
    disk: dict[str, Any] = {}
    return lambda: MemoryPrivValidator(KEY, disk)


def test_signature_verifies_and_identity(make: Factory) -> None:
    pv = make()
    assert pv.address == ADDR and pv.pub_key == KEY.public_key
    signed = pv.sign_vote(CHAIN, vote(1, 0))
    assert signed == dataclasses.replace(vote(1, 0), signature=signed.signature)
    Ed25519PublicKey.from_public_bytes(KEY.public_key).verify(
        signed.signature, signed.sign_bytes(CHAIN)
    )
    prop = pv.sign_proposal(CHAIN, proposal(2, 0))
    Ed25519PublicKey.from_public_bytes(KEY.public_key).verify(
        prop.signature, prop.sign_bytes(CHAIN)
    )


def test_steps_in_order_within_a_round(make: Factory) -> None:
    pv = make()
    pv.sign_proposal(CHAIN, proposal(5, 0))
    pv.sign_vote(CHAIN, vote(5, 0, VoteType.PREVOTE))
    pv.sign_vote(CHAIN, vote(5, 0, VoteType.PRECOMMIT))
    pv.sign_vote(CHAIN, vote(5, 1, VoteType.PREVOTE, None))  # next round, nil
    pv.sign_vote(CHAIN, vote(6, 0))  # next height


@pytest.mark.parametrize(
    "later",
    [
        lambda pv: pv.sign_vote(CHAIN, vote(5, 0, VoteType.PREVOTE)),  # lower step
        lambda pv: pv.sign_proposal(CHAIN, proposal(5, 0)),  # lower step
        lambda pv: pv.sign_vote(CHAIN, vote(5, 0, VoteType.PRECOMMIT, None)),  # nil conflicts too
        lambda pv: pv.sign_vote(CHAIN, vote(5, 0, VoteType.PRECOMMIT, BLOCK_B)),  # same step
        lambda pv: pv.sign_vote(CHAIN, vote(4, 9, VoteType.PRECOMMIT)),  # lower height
        lambda pv: pv.sign_vote("other-chain", vote(5, 0, VoteType.PRECOMMIT)),  # other bytes
    ],
)
def test_refusals(make: Factory, later: Callable[[PrivValidator], Any]) -> None:
    pv = make()
    pv.sign_vote(CHAIN, vote(5, 0, VoteType.PRECOMMIT))
    with pytest.raises(DoubleSignRefused):
        later(pv)
    with pytest.raises(DoubleSignRefused):
        later(make())  # ... and after a restart


def test_same_request_returns_the_stored_signature(make: Factory) -> None:
    first = make().sign_vote(CHAIN, vote(3, 1))
    again_same_instance = make().sign_vote(CHAIN, vote(3, 1))
    assert again_same_instance == first
    pv = make()
    assert pv.sign_proposal(CHAIN, proposal(4, 0)) == pv.sign_proposal(CHAIN, proposal(4, 0))


def test_state_survives_restart(make: Factory) -> None:
    make().sign_vote(CHAIN, vote(9, 2, VoteType.PRECOMMIT))
    pv = make()
    with pytest.raises(DoubleSignRefused):
        pv.sign_vote(CHAIN, vote(9, 2, VoteType.PREVOTE))
    pv.sign_vote(CHAIN, vote(9, 3))


def test_refused_request_leaves_state_unchanged(make: Factory) -> None:
    pv = make()
    signed = pv.sign_vote(CHAIN, vote(2, 0))
    with pytest.raises(DoubleSignRefused):
        pv.sign_vote(CHAIN, vote(2, 0, block=BLOCK_B))
    assert make().sign_vote(CHAIN, vote(2, 0)) == signed


def test_wrong_signer_is_a_programming_error(make: Factory) -> None:
    pv = make()
    with pytest.raises(ValueError):
        pv.sign_vote(CHAIN, Vote(VoteType.PREVOTE, 1, 0, BLOCK_A, b"\x01" * 20))
    with pytest.raises(ValueError):
        pv.sign_proposal(CHAIN, Proposal(1, 0, -1, BLOCK_A, b"\x01" * 20))


def test_file_layout(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    signed = FilePrivValidator(KEY, path).sign_vote(CHAIN, vote(7, 1, VoteType.PRECOMMIT))
    body = json.loads(path.read_text())
    assert body == {
        "height": 7,
        "round": 1,
        "step": int(SignedStep.PRECOMMIT),
        "sign_bytes": signed.sign_bytes(CHAIN).hex(),
        "signature": signed.signature.hex(),
    }
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp file left


def test_memory_dict_has_the_file_shape() -> None:
    disk: dict[str, Any] = {}
    MemoryPrivValidator(KEY, disk).sign_vote(CHAIN, vote(7, 1))
    assert disk["height"] == 7 and disk["step"] == int(SignedStep.PREVOTE)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{",
        "[]",
        '{"height": 1}',
        '{"height": 1, "round": 0, "step": 9, "sign_bytes": "00", "signature": "00"}',
        '{"height": -1, "round": 0, "step": 2, "sign_bytes": "00", "signature": "00"}',
        '{"height": 1.0, "round": 0, "step": 2, "sign_bytes": "00", "signature": "00"}',
        '{"height": true, "round": 0, "step": 2, "sign_bytes": "00", "signature": "00"}',
        '{"height": 1, "round": 0, "step": 2, "sign_bytes": "zz", "signature": "00"}',
        '{"height": 1, "round": 0, "step": 2, "sign_bytes": 5, "signature": "00"}',
    ],
)
def test_corrupt_state_file_refuses_to_start(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(PrivValidatorStateError) as info:
        FilePrivValidator(KEY, path)
    assert isinstance(info.value, ConsensusError) and str(path) in str(info.value)


def test_unreadable_state_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()  # a directory where the file should be: read fails with an OSError
    with pytest.raises(PrivValidatorStateError):
        FilePrivValidator(KEY, path)
    path.rmdir()
    path.write_bytes(b"\xff\xfe")  # not text
    with pytest.raises(PrivValidatorStateError):
        FilePrivValidator(KEY, path)


def test_corrupt_memory_state_refuses_to_start() -> None:
    with pytest.raises(PrivValidatorStateError):
        MemoryPrivValidator(KEY, {"height": "x"})


_SIGN_THEN_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from consensus.privval import FilePrivValidator
    from consensus.types import BlockID, Vote, VoteType, validator_address
    from consensus.keys import Ed25519Key

    key = Ed25519Key.from_seed(b"\\x07" * 32)
    block = BlockID(b"a" * 32, 1, b"A" * 32)
    vote = Vote(VoteType.PRECOMMIT, 11, 2, block, validator_address(key.public_key))
    signed = FilePrivValidator(key, Path(sys.argv[1])).sign_vote("test-chain", vote)
    os.write(1, signed.signature.hex().encode())
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_kill_9_right_after_signing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    proc = subprocess.run(
        [sys.executable, "-c", _SIGN_THEN_DIE, str(path)],
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        timeout=30,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    signature = bytes.fromhex(proc.stdout.decode())

    pv = FilePrivValidator(KEY, path)  # "a new process"
    with pytest.raises(DoubleSignRefused):
        pv.sign_vote(CHAIN, vote(11, 2, VoteType.PRECOMMIT, BLOCK_B))
    assert pv.sign_vote(CHAIN, vote(11, 2, VoteType.PRECOMMIT)).signature == signature
