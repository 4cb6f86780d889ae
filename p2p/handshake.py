"""The authenticated encrypted handshake (station-to-station, as Tendermint's SecretConnection).

Sans-I/O: `Handshake` consumes and produces frame bodies; `connection.py` moves them over a
stream. Both sides run the same steps, concurrently:

1. send an ephemeral X25519 public key (frame body = 32 raw bytes);
2. on the peer's key: shared secret = X25519(ours, theirs). With `lo, hi` the two ephemeral
   keys sorted, HKDF-SHA256(secret, info = lo || hi) yields 96 bytes: the key for frames sent by
   the holder of `lo`, the key for frames sent by the holder of `hi`, and a 32-byte challenge.
   The transcript hash is SHA-256(label || lo || hi || challenge);
3. send, encrypted, `[ed25519 node public key, signature over the transcript hash]`;
4. on the peer's auth frame: verify the signature; the peer's node id is
   SHA-256(pubkey)[:20].hex(). A dialer that expected another id gives up.

A man in the middle has a different shared secret with each side, hence a different challenge,
so it cannot relay a signature. Reflecting our own ephemeral key back is refused (both
directions would use one key), as are low-order X25519 points (all-zero secret).

After the handshake every frame body is ChaCha20-Poly1305 ciphertext under the direction's key,
with a 96-bit big-endian counter as nonce (never reused: 2**96 frames exhaust the direction) and
the frame's length header as associated data, so a tampered length fails authentication too.
The first encrypted exchange after authentication is `NodeInfo`, validated with `check_peer_info`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from p2p.abc import NodeKey
from p2p.errors import DecryptionFailed, HandshakeFailed, MalformedFrame, P2PError
from p2p.framing import frame_header, unpack_strict
from p2p.netaddr import is_node_id, parse_host_port

P2P_VERSION = "cybermiles-p2p/1"
KEY_BYTES = 32
TAG_BYTES = 16
NONCE_LIMIT = 2**96
_HKDF_SALT = b"cybermiles-p2p/1 secret connection"
_TRANSCRIPT_LABEL = b"cybermiles-p2p/1 auth"
_AUTH_MAX_BYTES = 256
NODE_INFO_MAX_BYTES = 4096
MAX_MONIKER_CHARS = 64
MAX_NETWORK_CHARS = 256
MAX_VERSION_CHARS = 64
MAX_CHANNELS = 64


def node_id_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).digest()[:20].hex()


class FrameCipher:
    """One direction of an established connection: AEAD with a counter nonce."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self.counter = 0

    def _next_nonce(self) -> bytes:
        if self.counter >= NONCE_LIMIT:
            raise P2PError("nonce space of the connection exhausted")
        nonce = self.counter.to_bytes(12, "big")
        self.counter += 1
        return nonce

    def seal(self, plaintext: bytes) -> bytes:
        """Return a whole frame: header + ciphertext (header authenticated as AAD)."""
        header = frame_header(len(plaintext) + TAG_BYTES)
        return header + self._aead.encrypt(self._next_nonce(), plaintext, header)

    def open(self, body: bytes) -> bytes:
        """Decrypt one frame body. The counter advances even on failure: the stream is dead."""
        nonce = self._next_nonce()
        try:
            return self._aead.decrypt(nonce, body, frame_header(len(body)))
        except InvalidTag:
            raise DecryptionFailed("frame failed authentication") from None


@dataclass(frozen=True)
class Session:
    send: FrameCipher
    receive: FrameCipher
    peer_public_key: bytes

    @property
    def peer_id(self) -> str:
        return node_id_of(self.peer_public_key)


class Handshake:
    """One side of the handshake. Call `hello()`, then `receive_hello()`, then `receive_auth()`."""

    def __init__(
        self,
        node_key: NodeKey,
        *,
        expected_id: str | None = None,
        ephemeral: X25519PrivateKey | None = None,
    ) -> None:
        self._node_key = node_key
        self._expected_id = expected_id
        self._ephemeral = ephemeral or X25519PrivateKey.generate()
        self._ephemeral_pub = self._ephemeral.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )
        self._keys: tuple[FrameCipher, FrameCipher] | None = None
        self._transcript = b""

    def hello(self) -> bytes:
        return self._ephemeral_pub

    def receive_hello(self, body: bytes) -> bytes:
        """Derive the session keys from the peer's ephemeral key; return our auth frame."""
        if self._keys is not None:
            raise HandshakeFailed("second hello")
        if len(body) != KEY_BYTES:
            raise HandshakeFailed("ephemeral key must be 32 bytes")
        if body == self._ephemeral_pub:
            raise HandshakeFailed("peer reflected our ephemeral key", ban=True)
        try:
            secret = self._ephemeral.exchange(X25519PublicKey.from_public_bytes(body))
        except ValueError:  # all-zero shared secret: a low-order point
            raise HandshakeFailed("degenerate ephemeral key", ban=True) from None
        lo, hi = sorted((self._ephemeral_pub, body))
        okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=_HKDF_SALT, info=lo + hi).derive(
            secret
        )
        key_lo, key_hi, challenge = okm[:32], okm[32:64], okm[64:]
        we_are_lo = self._ephemeral_pub == lo
        send, receive = (key_lo, key_hi) if we_are_lo else (key_hi, key_lo)
        self._keys = (FrameCipher(send), FrameCipher(receive))
        self._transcript = hashlib.sha256(_TRANSCRIPT_LABEL + lo + hi + challenge).digest()
        signature = self._node_key.sign(self._transcript)
        auth = msgpack.packb([self._node_key.public_key, signature], use_bin_type=True)
        return self._keys[0].seal(auth)

    def receive_auth(self, body: bytes) -> Session:
        """Verify the peer's auth frame; return the established session."""
        if self._keys is None:
            raise HandshakeFailed("auth before hello")
        send, receive = self._keys
        try:
            plaintext = receive.open(body)
        except DecryptionFailed:
            raise HandshakeFailed("auth frame failed authentication", ban=True) from None
        public_key, signature = _decode_auth(plaintext)
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, self._transcript)
        except (InvalidSignature, ValueError):
            raise HandshakeFailed("bad node key signature", ban=True) from None
        peer_id = node_id_of(public_key)
        if self._expected_id is not None and peer_id != self._expected_id:
            raise HandshakeFailed(f"expected node {self._expected_id}, got {peer_id}")
        return Session(send=send, receive=receive, peer_public_key=public_key)


def _decode_auth(plaintext: bytes) -> tuple[bytes, bytes]:
    try:
        if len(plaintext) > _AUTH_MAX_BYTES:
            raise MalformedFrame("auth message too large")
        obj = unpack_strict(plaintext)
    except MalformedFrame:
        raise HandshakeFailed("undecodable auth message", ban=True) from None
    if (
        not isinstance(obj, list)
        or len(obj) != 2
        or not all(isinstance(x, bytes) for x in obj)
        or len(obj[0]) != 32
        or len(obj[1]) != 64
    ):
        raise HandshakeFailed("malformed auth message", ban=True)
    return obj[0], obj[1]


@dataclass(frozen=True)
class NodeInfo:
    """What a node tells its peers about itself right after authentication."""

    node_id: str
    listen_addr: str  # host:port
    network: str  # chain id + genesis hash: nodes of different chains never talk
    version: str = P2P_VERSION
    channels: tuple[int, ...] = ()
    moniker: str = ""

    def to_wire(self) -> bytes:
        return msgpack.packb(
            {
                "node_id": self.node_id,
                "listen_addr": self.listen_addr,
                "network": self.network,
                "version": self.version,
                "channels": list(self.channels),
                "moniker": self.moniker,
            },
            use_bin_type=True,
        )

    @classmethod
    def from_wire(cls, data: bytes) -> NodeInfo:
        """Strictly decode and validate; HandshakeFailed(ban=True) for anything malformed."""
        try:
            if len(data) > NODE_INFO_MAX_BYTES:
                raise ValueError("too large")
            return cls._validated(unpack_strict(data))
        except HandshakeFailed:
            raise
        except Exception as exc:  # msgpack errors and validation failures alike
            raise HandshakeFailed(f"malformed NodeInfo: {exc}", ban=True) from None

    @classmethod
    def _validated(cls, obj: Any) -> NodeInfo:
        if not isinstance(obj, dict):
            raise ValueError("not a map")
        node_id = obj.get("node_id")
        listen_addr = obj.get("listen_addr")
        channels = obj.get("channels")
        texts = {
            "network": MAX_NETWORK_CHARS,
            "version": MAX_VERSION_CHARS,
            "moniker": MAX_MONIKER_CHARS,
        }
        for field, limit in texts.items():
            value = obj.get(field)
            if not isinstance(value, str) or len(value) > limit or not value.isprintable():
                raise ValueError(f"{field} must be printable text of at most {limit} chars")
        if not is_node_id(node_id):
            raise ValueError("bad node_id")
        parse_host_port(listen_addr)
        if (
            not isinstance(channels, list)
            or len(channels) > MAX_CHANNELS
            or not all(type(c) is int and 0 <= c <= 0xFF for c in channels)
            or len(set(channels)) != len(channels)
        ):
            raise ValueError("channels must be distinct one-byte ids")
        return cls(
            node_id=obj["node_id"],
            listen_addr=obj["listen_addr"],
            network=obj["network"],
            version=obj["version"],
            channels=tuple(channels),
            moniker=obj["moniker"],
        )


def check_peer_info(ours: NodeInfo, theirs: NodeInfo, authenticated_id: str) -> None:
    """Raise HandshakeFailed unless the peer's NodeInfo is truthful and compatible with ours."""
    if theirs.node_id != authenticated_id:
        raise HandshakeFailed(
            f"NodeInfo claims {theirs.node_id} but the key is {authenticated_id}",
            ban=True,
            node_id=authenticated_id,
        )
    if theirs.network != ours.network:
        raise HandshakeFailed(
            f"peer is on network {theirs.network!r}, we are on {ours.network!r}",
            ban=True,
            node_id=authenticated_id,
        )
    if theirs.version != ours.version:
        raise HandshakeFailed(f"incompatible p2p version {theirs.version!r}")
    if not set(theirs.channels) & set(ours.channels):
        raise HandshakeFailed("no channel in common")
