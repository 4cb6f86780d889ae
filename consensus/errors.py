"""The consensus package's exception tree."""

from __future__ import annotations


class ConsensusError(Exception):
    """Base of every error raised by the consensus package."""


class MalformedMessage(ConsensusError):
    """A record from the network does not decode to a well-formed consensus message."""


class InvalidSignature(ConsensusError):
    """A signature does not verify, or its signer is not in the validator set."""


class InvalidCommit(ConsensusError):
    """A commit does not carry +2/3 of the voting power for its block."""


class DoubleSignRefused(ConsensusError):
    """The private validator refused to sign something conflicting with what it signed."""


class WalCorrupted(ConsensusError):
    """The write-ahead log holds a corrupt record before its last one (not a torn tail)."""


class InvalidBlock(ConsensusError):
    """A block (or a block sent with a commit by blocksync) does not validate."""
