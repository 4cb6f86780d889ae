"""Crash points for fault-injection tests, switched on by an environment variable.

`CYBERMILES_FAILPOINT=crash-after-sign:<height>` makes the node exit abruptly (as kill -9 would:
no cleanup, no flush) right after its private validator has durably signed its first vote at
`height` or above, and before the vote reaches the WAL or any peer. The end-to-end test of
double-sign protection uses it; a node without the variable never checks anything else.
"""

from __future__ import annotations

import os
import sys

from consensus.privval import PrivValidator
from consensus.types import Proposal, Vote

ENV = "CYBERMILES_FAILPOINT"


class CrashAfterSign:
    """A PrivValidator that dies after signing a vote at or above `height`."""

    def __init__(self, inner: PrivValidator, height: int) -> None:
        self.inner = inner
        self.height = height
        self.address = inner.address
        self.pub_key = inner.pub_key

    def sign_vote(self, chain_id: str, vote: Vote) -> Vote:
        signed = self.inner.sign_vote(chain_id, vote)
        if vote.height >= self.height:
            sys.stderr.write(f"failpoint crash-after-sign: exiting after signing {vote}\n")
            sys.stderr.flush()
            os._exit(70)
        return signed

    def sign_proposal(self, chain_id: str, proposal: Proposal) -> Proposal:
        return self.inner.sign_proposal(chain_id, proposal)


def with_failpoints(signer: PrivValidator) -> PrivValidator:
    spec = os.environ.get(ENV, "")
    if spec.startswith("crash-after-sign:"):
        return CrashAfterSign(signer, int(spec.split(":", 1)[1]))
    return signer
