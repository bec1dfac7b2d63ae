"""Link set-up: the TLS handshake, the identity check, and the hello exchange.

The caller puts the whole of it under one deadline. Every way it can fail raises
HandshakeFailed with a short reason that the manager counts (see docs/P2P.md).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import trio

from p2p.framing import FrameDecoder, FrameError, encode_frame
from p2p.link import KIND_HELLO, PROTOCOL_VERSION
from p2p.tls import PeerIdentityError, is_certificate_rejection, peer_node_id

HELLO_READ_CHUNK_BYTES = 64 * 1024


class HandshakeFailed(Exception):
    """Link set-up failed; `reason` is a counter name, `detail` is for logs."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Handshaken:
    """A stream whose peer proved its identity and sent a matching hello."""

    peer: bytes
    decoder: FrameDecoder  # may hold a partial frame that followed the hello
    early_frames: list[Any]  # complete frames that arrived together with the hello


def hello_message(*, node_id: bytes, chain_id: str) -> dict[str, Any]:
    return {"t": KIND_HELLO, "version": PROTOCOL_VERSION, "chain_id": chain_id, "node_id": node_id}


def check_hello(frame: Any, *, peer: bytes, chain_id: str) -> None:
    """Raise HandshakeFailed("hello_mismatch") unless frame is the hello we expect from peer."""
    if not isinstance(frame, dict) or frame.get("t") != KIND_HELLO:
        raise HandshakeFailed("hello_mismatch", "first frame is not a hello")
    version = frame.get("version")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise HandshakeFailed("hello_mismatch", f"protocol version {version!r}")
    if frame.get("chain_id") != chain_id:
        raise HandshakeFailed("hello_mismatch", f"chain_id {frame.get('chain_id')!r}")
    if frame.get("node_id") != peer:
        # TLS already proved the key; a hello naming another node is a confused or
        # lying peer either way.
        raise HandshakeFailed("hello_mismatch", "hello node_id differs from the TLS key")


async def _tls_handshake(stream: trio.SSLStream[Any], *, server_side: bool) -> None:
    try:
        await stream.do_handshake()
    except trio.BrokenResourceError as exc:
        if server_side and is_certificate_rejection(exc):
            raise HandshakeFailed("unknown_peer_refused", str(exc.__cause__)) from exc
        raise HandshakeFailed("tls_failed", str(exc.__cause__ or exc)) from exc


def _check_identity(
    stream: trio.SSLStream[Any],
    *,
    own_node_id: bytes,
    expected_peer: bytes | None,
    allowed: Container[bytes],
) -> bytes:
    try:
        peer = peer_node_id(stream)
    except PeerIdentityError as exc:
        raise HandshakeFailed("unknown_peer_refused", str(exc)) from exc
    if peer == own_node_id:
        raise HandshakeFailed("self_connection", "the peer holds our own key")
    if expected_peer is not None and peer != expected_peer:
        # A pinned node answered at the address of another: wrong config or a node that
        # moved. Never treat it as the node we meant to reach.
        raise HandshakeFailed(
            "peer_key_mismatch", f"expected {expected_peer.hex()[:16]}, got {peer.hex()[:16]}"
        )
    if peer not in allowed:
        raise HandshakeFailed("unknown_peer_refused", f"{peer.hex()[:16]} is not allowed")
    return peer


async def _read_hello(
    stream: trio.SSLStream[Any], decoder: FrameDecoder, *, server_side: bool
) -> list[Any]:
    # Bounded by the caller's deadline and by the decoder's frame limit.
    while True:
        try:
            data = await stream.receive_some(HELLO_READ_CHUNK_BYTES)
        except trio.BrokenResourceError as exc:
            data = b""
            detail = str(exc.__cause__ or exc)
        else:
            detail = "end of stream"
        if not data:
            # TLS 1.3: a client whose certificate the server refused sees its handshake
            # succeed and learns of the refusal here, on its first read.
            reason = "closed_before_hello" if server_side else "closed_after_handshake"
            raise HandshakeFailed(reason, detail)
        try:
            frames = decoder.feed(data)
        except FrameError as exc:
            raise HandshakeFailed("bad_hello_frame", str(exc)) from exc
        if frames:
            return frames


async def perform_handshake(
    stream: trio.SSLStream[Any],
    *,
    server_side: bool,
    own_node_id: bytes,
    chain_id: str,
    expected_peer: bytes | None,
    allowed: Container[bytes],
    max_frame_bytes: int,
) -> Handshaken:
    """TLS handshake, pinned-key check, hello exchange. Raises HandshakeFailed.

    The server sends its hello only after it has checked the client's key, so an unknown
    or mismatched peer gets nothing but a closed connection.
    """
    await _tls_handshake(stream, server_side=server_side)
    peer = _check_identity(
        stream, own_node_id=own_node_id, expected_peer=expected_peer, allowed=allowed
    )
    hello = encode_frame(hello_message(node_id=own_node_id, chain_id=chain_id))
    try:
        await stream.send_all(hello)
    except trio.BrokenResourceError as exc:
        reason = "closed_before_hello" if server_side else "closed_after_handshake"
        raise HandshakeFailed(reason, str(exc.__cause__ or exc)) from exc
    decoder = FrameDecoder(max_frame_bytes)
    frames = await _read_hello(stream, decoder, server_side=server_side)
    check_hello(frames[0], peer=peer, chain_id=chain_id)
    return Handshaken(peer=peer, decoder=decoder, early_frames=frames[1:])
