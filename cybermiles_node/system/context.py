"""What a block's rules see of the block being executed: `BlockContext`.

Building a block and validating one run the same pipeline (`Chain._run_block`): the modules'
`begin_block(ctx)`, the transactions, the modules' `end_block(ctx)`, then the seal. The context
is made from the block's header and its consensus metadata, never from a clock, so every
validator derives the same one: a proposer fills it with the values it is about to put in the
header, a validator reads them back from the header it received.
"""

from __future__ import annotations

from dataclasses import dataclass

from genesis import Params

__all__ = ["BlockContext", "Misbehaviour"]


@dataclass(frozen=True)
class Misbehaviour:
    """A validator's double vote, as committed evidence (staking slashes for it)."""

    validator: bytes  # consensus address
    height: int  # where it double-voted
    included_at: int  # the block that carries the evidence


@dataclass(frozen=True)
class BlockContext:
    height: int
    time: int  # the header's timestamp, unix seconds
    coinbase: bytes  # the proposer's fee address
    randomness: bytes  # the header's mix_hash: the beacon output of this block
    extra_data: bytes  # the header's commitment to the consensus metadata
    params: Params  # the chain parameters in force for this block (state after the parent)
    proposer: bytes = b""  # consensus address of the proposer; empty without BFT (automine)
    # Consensus addresses whose precommits are in the parent's commit, sorted; empty for
    # block 1 and without BFT.
    last_commit_signers: tuple[bytes, ...] = ()
    # Consensus addresses of the validator set that decided the parent (who could have
    # signed its commit), sorted; empty for block 1 and without BFT.
    last_commit_validators: tuple[bytes, ...] = ()
    misbehaviour: tuple[Misbehaviour, ...] = ()  # evidence this block carries
