"""The secret handshake, frame ciphers and NodeInfo checks (p2p.handshake), mostly sans-I/O."""

from __future__ import annotations

from functools import partial

import msgpack
import pytest
import trio
import trio.testing

from consensus.keys import Ed25519Key
from p2p.connection import secure_handshake
from p2p.errors import DecryptionFailed, HandshakeFailed, P2PError
from p2p.framing import FrameDecoder, encode_frame
from p2p.handshake import (
    NONCE_LIMIT,
    FrameCipher,
    Handshake,
    NodeInfo,
    Session,
    check_peer_info,
)

A = Ed25519Key.from_seed(bytes([1]) * 32)
B = Ed25519Key.from_seed(bytes([2]) * 32)
M = Ed25519Key.from_seed(bytes([3]) * 32)
NETWORK = "cmt-test-1/0xgenesis"


def body(frame: bytes) -> bytes:
    """Strip the length header of one whole frame."""
    (only,) = FrameDecoder(1 << 20).feed(frame)
    return only


def complete(x: Handshake, y: Handshake) -> tuple[Session, Session]:
    """Run both sides' steps as the network would interleave them."""
    auth_x = x.receive_hello(y.hello())
    auth_y = y.receive_hello(x.hello())
    return x.receive_auth(body(auth_y)), y.receive_auth(body(auth_x))


def info(key: Ed25519Key, **changes: object) -> NodeInfo:
    fields: dict[str, object] = {
        "node_id": key.node_id,
        "listen_addr": "127.0.0.1:26656",
        "network": NETWORK,
        "channels": (0x00, 0x30),
        "moniker": "node",
    }
    fields.update(changes)
    return NodeInfo(**fields)  # type: ignore[arg-type]


def test_handshake_authenticates_both_sides_and_keys_match() -> None:
    for dialer, listener in ((A, B), (B, A)):
        sa, sb = complete(Handshake(dialer, expected_id=listener.node_id), Handshake(listener))
        assert sa.peer_id == listener.node_id and sb.peer_id == dialer.node_id
        for _ in range(3):
            assert sb.receive.open(body(sa.send.seal(b"ping"))) == b"ping"
            assert sa.receive.open(body(sb.send.seal(b"pong"))) == b"pong"


def test_directions_use_different_keys() -> None:
    sa, _ = complete(Handshake(A), Handshake(B))
    with pytest.raises(DecryptionFailed):  # our own frame reflected back does not open
        sa.receive.open(body(sa.send.seal(b"echo")))


def test_dialer_drops_an_unexpected_node_id() -> None:
    with pytest.raises(HandshakeFailed) as err:
        complete(Handshake(A, expected_id=M.node_id), Handshake(B))
    assert not err.value.ban  # a stale address, not an attack


def test_man_in_the_middle_cannot_relay_the_signature() -> None:
    alice, mallory_a = Handshake(A, expected_id=B.node_id), Handshake(M)
    mallory_b, bob = Handshake(M), Handshake(B)
    alice.receive_hello(mallory_a.hello())
    mallory_a.receive_hello(alice.hello())
    bob_auth = bob.receive_hello(mallory_b.hello())
    mallory_b.receive_hello(bob.hello())
    # Mallory decrypts Bob's auth (she shares a secret with him) and re-encrypts it for Alice.
    bob_session_keys = mallory_b._keys
    assert bob_session_keys is not None and mallory_a._keys is not None
    plaintext = bob_session_keys[1].open(body(bob_auth))
    mallory_a._keys[0].counter = 0  # as if Mallory had not sent her own auth frame to Alice
    forged = mallory_a._keys[0].seal(plaintext)
    with pytest.raises(HandshakeFailed, match="signature") as err:
        alice.receive_auth(body(forged))
    assert err.value.ban


def test_tampered_auth_frame_fails() -> None:
    x, y = Handshake(A), Handshake(B)
    auth_x = bytearray(body(x.receive_hello(y.hello())))
    y.receive_hello(x.hello())
    auth_x[5] ^= 1
    with pytest.raises(HandshakeFailed):
        y.receive_auth(bytes(auth_x))


@pytest.mark.parametrize(
    "payload",
    [b"", msgpack.packb([b"x" * 32]), msgpack.packb([b"x" * 31, b"y" * 64]), b"\xc1"],
)
def test_malformed_auth_messages(payload: bytes) -> None:
    x, y = Handshake(A), Handshake(B)
    x.receive_hello(y.hello())
    y.receive_hello(x.hello())
    assert x._keys is not None
    with pytest.raises(HandshakeFailed):
        y.receive_auth(body(x._keys[0].seal(payload)))


def test_reflected_and_degenerate_ephemeral_keys_are_refused() -> None:
    x = Handshake(A)
    with pytest.raises(HandshakeFailed, match="reflected"):
        x.receive_hello(x.hello())
    with pytest.raises(HandshakeFailed, match="degenerate"):
        Handshake(A).receive_hello(bytes(32))  # low-order point: all-zero shared secret
    with pytest.raises(HandshakeFailed):
        Handshake(A).receive_hello(b"short")
    with pytest.raises(HandshakeFailed, match="before hello"):
        Handshake(A).receive_auth(b"x" * 40)


def test_cipher_rejects_tampering_replay_and_reordering() -> None:
    key = bytes(range(32))
    sender, receiver = FrameCipher(key), FrameCipher(key)
    f1, f2 = body(sender.seal(b"one")), body(sender.seal(b"two"))
    tampered = bytearray(f1)
    tampered[0] ^= 0x80
    with pytest.raises(DecryptionFailed):
        FrameCipher(key).open(bytes(tampered))
    with pytest.raises(DecryptionFailed):
        FrameCipher(key).open(f2)  # out of order: wrong counter
    assert receiver.open(f1) == b"one"
    with pytest.raises(DecryptionFailed):
        receiver.open(f1)  # replay


def test_length_header_is_authenticated() -> None:
    key = bytes(32)
    frame = FrameCipher(key).seal(b"payload")
    # The same ciphertext behind a different length header (padded) fails: the header is AAD.
    with pytest.raises(DecryptionFailed):
        FrameCipher(key).open(body(encode_frame(frame[4:] + b"\x00")))


def test_nonce_counter_never_wraps() -> None:
    cipher = FrameCipher(bytes(32))
    cipher.counter = NONCE_LIMIT - 1
    cipher.seal(b"last one")
    with pytest.raises(P2PError, match="exhausted"):
        cipher.seal(b"one too many")


def test_node_info_roundtrip_and_checks() -> None:
    ours, theirs = info(A), info(B)
    assert NodeInfo.from_wire(theirs.to_wire()) == theirs
    check_peer_info(ours, theirs, B.node_id)
    with pytest.raises(HandshakeFailed, match="claims") as err:
        check_peer_info(ours, theirs, M.node_id)
    assert err.value.ban
    with pytest.raises(HandshakeFailed, match="network") as err:
        check_peer_info(ours, info(B, network="other-chain/0xabc"), B.node_id)
    assert err.value.ban and err.value.node_id == B.node_id
    with pytest.raises(HandshakeFailed, match="version") as err:
        check_peer_info(ours, info(B, version="cybermiles-p2p/2"), B.node_id)
    assert not err.value.ban
    with pytest.raises(HandshakeFailed, match="common"):
        check_peer_info(ours, info(B, channels=(0x40,)), B.node_id)


@pytest.mark.parametrize(
    "changes",
    [
        {"node_id": "ABC"},
        {"listen_addr": "nowhere"},
        {"listen_addr": "1.2.3.4:99999"},
        {"network": "x" * 300},
        {"moniker": "bad\nmoniker"},
        {"channels": (1, 1)},
        {"channels": (256,)},
        {"version": 7},
    ],
)
def test_malformed_node_info(changes: dict[str, object]) -> None:
    with pytest.raises(HandshakeFailed) as err:
        NodeInfo.from_wire(info(A, **changes).to_wire())
    assert err.value.ban


@pytest.mark.parametrize("data", [b"", b"\xc1", msgpack.packb([1, 2]), b"\x80" * 10])
def test_undecodable_node_info(data: bytes) -> None:
    with pytest.raises(HandshakeFailed):
        NodeInfo.from_wire(data)


def test_handshake_over_a_stream_in_both_directions() -> None:
    async def main() -> None:
        left, right = trio.testing.memory_stream_pair()
        results: dict[str, object] = {}

        async def side(name: str, stream: trio.abc.Stream, key: Ed25519Key, **kw: object) -> None:
            conn, their = await secure_handshake(stream, key, info(key), **kw)  # type: ignore[arg-type]
            results[name] = their
            await conn.send(f"hello from {name}".encode())
            results[name + "-msg"] = await conn.receive()

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(side, "a", left, A, expected_id=B.node_id))
                nursery.start_soon(partial(side, "b", right, B, expected_id=None))
        assert results["a"] == info(B) and results["b"] == info(A)
        assert results["a-msg"] == b"hello from b" and results["b-msg"] == b"hello from a"

    trio.run(main)


def test_stream_handshake_with_a_wrong_network_fails() -> None:
    async def main() -> None:
        left, right = trio.testing.memory_stream_pair()
        errors: list[HandshakeFailed] = []

        async def side(stream: trio.abc.Stream, key: Ed25519Key, node: NodeInfo) -> None:
            try:
                await secure_handshake(stream, key, node, expected_id=None)
            except HandshakeFailed as exc:
                errors.append(exc)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(side, left, A, info(A))
                nursery.start_soon(side, right, B, info(B, network="another/0x1"))
        assert len(errors) == 2 and all(e.ban for e in errors)

    trio.run(main)
