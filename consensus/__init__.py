"""Tendermint BFT consensus for the CyberMiles node.

Layers, innermost first:
- `types`, `errors`: the signed records and the exception tree;
- `validators` (proposer rotation), `parts` (blocks as Merkle-proven parts), `votes` (tallies),
  `verify` (signatures with a cache, commits): pure building blocks;
- `core`: the algorithm as a pure state machine `step(state, event) -> (state, outputs)`;
- `driver`: the sans-I/O shell that feeds the core, signs (`privval`), logs (`wal`), keeps
  evidence (`evidence`) and asks the application (`BlockSource`); shared by the live host
  and the deterministic simulation;
- `host`, `reactor`, `blocksync`: the trio and network side.

Names are exported lazily (importing `consensus.types` must not pull in the driver).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # core
    "ConsensusState": "consensus.core",
    "CoreConfig": "consensus.core",
    "HeightState": "consensus.core",
    "RoundStep": "consensus.core",
    "Step": "consensus.core",
    "TimeoutInfo": "consensus.core",
    "Timeouts": "consensus.core",
    "step": "consensus.core",
    # driver
    "BlockSource": "consensus.driver",
    "Broadcast": "consensus.driver",
    "Committed": "consensus.driver",
    "ConsensusDriver": "consensus.driver",
    "DecidedBlock": "consensus.driver",
    "DriverStatus": "consensus.driver",
    "ScheduleTimeout": "consensus.driver",
    # building blocks
    "BlockPart": "consensus.parts",
    "PartSet": "consensus.parts",
    "ValidatorSet": "consensus.validators",
    "HeightVoteSet": "consensus.votes",
    "VoteSet": "consensus.votes",
    "NO_MAJORITY": "consensus.votes",
    "verify_commit": "consensus.verify",
    "verify_vote_signature": "consensus.verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'consensus' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
