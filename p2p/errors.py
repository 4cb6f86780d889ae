"""The p2p package's exception tree.

Everything that goes wrong because of what a remote peer sent (or failed to send) is a
`P2PError`. The switch turns each of them into "drop this peer", possibly with a score
penalty or a ban; none of them ever reaches the node's top level.

```
P2PError
├── HandshakeFailed    key exchange, authentication or NodeInfo check failed (ban: bool)
├── FrameTooLarge      a frame header announced more than the limit (checked before the body)
├── MalformedFrame     undecodable frame payload
│   └── DecryptionFailed   AEAD tag mismatch: tampered or desynchronised stream
├── ConnectionClosed   the peer closed the stream
├── DialFailed         an outbound connection could not be established or was refused
└── PeerMisbehaved     raised by reactors to punish the peer that sent a message
```
"""

from __future__ import annotations


class P2PError(Exception):
    """Base of every error caused by the network or a remote peer."""


class HandshakeFailed(P2PError):
    """The secret handshake or the NodeInfo exchange failed.

    `ban` is set when the peer proved itself hostile or useless on purpose (a bad signature, a
    different network): the switch bans its IP, and its node id when it was authenticated.
    A plain mismatch (stale address book entry, timeout) only drops the connection.
    """

    def __init__(self, reason: str, *, ban: bool = False, node_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ban = ban
        self.node_id = node_id


class FrameTooLarge(P2PError):
    """A frame header announced a body larger than the connection's limit."""


class MalformedFrame(P2PError):
    """A frame's payload is not a valid packet (bad msgpack, wrong shape, unknown channel)."""


class DecryptionFailed(MalformedFrame):
    """A frame failed AEAD authentication: the stream cannot be trusted any more."""


class ConnectionClosed(P2PError):
    """The remote side closed the stream (possibly in the middle of a frame)."""


class DialFailed(P2PError):
    """An outbound connection failed or was refused (banned, duplicate, self, unreachable)."""


class PeerMisbehaved(P2PError):
    """Raised by a reactor's `receive` to lower the sending peer's score by `penalty`."""

    def __init__(self, reason: str, penalty: int = 10) -> None:
        super().__init__(reason)
        self.reason = reason
        self.penalty = penalty
