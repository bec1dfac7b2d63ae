"""Shared helpers for the p2p tests: identities, manager clusters, and raw TLS peers.

Tests reach them through the `kit` fixture (pytest runs with --import-mode=importlib, so
test modules cannot import this file); type annotations name P2PKit under TYPE_CHECKING.
Everything listens on 127.0.0.1, port 0 unless a test reserves ports, and lives inside the
test's own nursery, so a cancelled test leaves no socket behind.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2p.framing import FrameDecoder, encode_frame
from p2p.handshake import hello_message
from p2p.identity import make_certificate, node_id_of, private_key_pem
from p2p.peers import PeerManager
from p2p.tls import make_client_context

CHAIN_ID = "test-chain"
HOST = "127.0.0.1"
POLL_INTERVAL_S = 0.01


@dataclass(frozen=True)
class Identity:
    name: str
    private_key: Ed25519PrivateKey
    node_id: bytes
    cert_pem: bytes
    key_pem: bytes


def make_identity(name: str) -> Identity:
    key = Ed25519PrivateKey.generate()
    return Identity(
        name=name,
        private_key=key,
        node_id=node_id_of(key),
        cert_pem=make_certificate(key, name),
        key_pem=private_key_pem(key),
    )


# Fast timers so that reconnects and timeouts happen within a test's budget.
FAST: dict[str, Any] = {
    "backoff_initial_ms": 20,
    "backoff_max_ms": 200,
    "handshake_timeout_ms": 2000,
    "ping_interval_ms": 200,
    "idle_timeout_ms": 3000,
}


def make_manager(
    me: Identity,
    allowed: list[Identity],
    dial: Mapping[bytes, tuple[str, int]],
    *,
    port: int = 0,
    **options: Any,
) -> PeerManager:
    settings = {**FAST, **options}
    return PeerManager(
        node_id=me.node_id,
        cert_pem=me.cert_pem,
        key_pem=me.key_pem,
        listen_host=HOST,
        listen_port=port,
        chain_id=settings.pop("chain_id", CHAIN_ID),
        allowed={ident.node_id: ident.cert_pem for ident in allowed},
        dial=dial,
        **settings,
    )


async def wait_until(predicate: Callable[[], bool], *, what: str = "condition") -> None:
    """Poll until predicate() is true; the caller bounds the time with trio.fail_after."""
    while not predicate():
        await trio.sleep(POLL_INTERVAL_S)


def fully_connected(managers: list[PeerManager]) -> bool:
    return all(len(m.connected_peers()) == len(managers) - 1 for m in managers)


@asynccontextmanager
async def running(manager: PeerManager) -> AsyncIterator[PeerManager]:
    """Run a manager in its own nursery for the duration of the block, then cancel it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        try:
            yield manager
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def mesh(
    members: list[Identity], allowed: list[Identity] | None = None, **options: Any
) -> AsyncIterator[list[PeerManager]]:
    """Start one manager per member, each dialling every member with a lower index.

    Managers start in order, so each new one can dial the ports already bound; the lower
    ones learn of it through its inbound links.
    """
    allowed = allowed if allowed is not None else members
    managers: list[PeerManager] = []
    async with trio.open_nursery() as nursery:
        for me in members:
            dial = {m.node_id: (HOST, m.listen_port) for m in managers}
            manager = make_manager(me, allowed, dial, **options)
            await nursery.start(manager.run)
            managers.append(manager)
        try:
            yield managers
        finally:
            nursery.cancel_scope.cancel()


async def receive_from(manager: PeerManager, count: int) -> list[tuple[bytes, dict[str, Any]]]:
    received = []
    for _ in range(count):
        received.append(await manager.inbox.receive())
    return received


class RawPeer:
    """A hand-driven TLS client: it can complete the real handshake and then misbehave."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream], me: Identity) -> None:
        self.stream = stream
        self.me = me
        self.decoder = FrameDecoder()

    async def send_hello(self, *, chain_id: str = CHAIN_ID, **override: Any) -> None:
        hello = {**hello_message(node_id=self.me.node_id, chain_id=chain_id), **override}
        await self.stream.send_all(encode_frame(hello))

    async def receive_frame(self) -> Any:
        frames: list[Any] = []
        while not frames:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("peer closed")
            frames = self.decoder.feed(data)
        return frames[0]

    async def at_eof(self) -> bool:
        """Read until the peer closes (True) -- the caller bounds the time."""
        try:
            while await self.stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True


@asynccontextmanager
async def raw_tls_peer(
    me: Identity, target_port: int, pinned: list[bytes], *, cert_pem: bytes | None = None
) -> AsyncIterator[RawPeer]:
    context = make_client_context(cert_pem or me.cert_pem, me.key_pem, pinned)
    tcp = await trio.open_tcp_stream(HOST, target_port)
    stream = trio.SSLStream(tcp, context, server_hostname=None)
    try:
        await stream.do_handshake()
        yield RawPeer(stream, me)
    finally:
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def linked_raw_peer(
    me: Identity, server: Identity, manager: PeerManager
) -> AsyncIterator[RawPeer]:
    """A RawPeer that completed TLS and the hello exchange with manager, now linked."""
    async with raw_tls_peer(me, manager.listen_port, [server.cert_pem]) as peer:
        hello = await peer.receive_frame()
        if not (isinstance(hello, dict) and hello.get("t") == "hello"):
            raise AssertionError(f"expected the server's hello, got {hello!r}")
        await peer.send_hello()
        await wait_until(lambda: me.node_id in manager.connected_peers())
        yield peer


def forged_certificate(victim: Identity, attacker_key: Ed25519PrivateKey) -> bytes:
    """A copy of the victim's certificate (same subject, issuer, serial, dates and
    extensions) that carries, and is signed by, the attacker's key."""
    original = x509.load_pem_x509_certificate(victim.cert_pem)
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.issuer)
        .public_key(attacker_key.public_key())
        .serial_number(original.serial_number)
        .not_valid_before(original.not_valid_before_utc)
        .not_valid_after(original.not_valid_after_utc)
    )
    for extension in original.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(attacker_key, None).public_bytes(serialization.Encoding.PEM)


def forger_of(victim: Identity) -> Identity:
    """An identity that presents a forged copy of victim's certificate with its own key."""
    attacker_key = Ed25519PrivateKey.generate()
    return Identity(
        name=f"forger-of-{victim.name}",
        private_key=attacker_key,
        node_id=victim.node_id,
        cert_pem=forged_certificate(victim, attacker_key),
        key_pem=private_key_pem(attacker_key),
    )


def frame_of_payload(payload: bytes) -> bytes:
    """A length prefix and raw payload bytes, whatever they are (for hostile frames)."""
    return struct.pack(">I", len(payload)) + payload


async def reserve_ports(count: int) -> list[int]:
    """Ports that were free a moment ago (bound then released), for tests that must know
    every address before any manager starts. Loopback only, so the race is with this
    machine alone."""
    sockets = []
    try:
        for _ in range(count):
            sock = trio.socket.socket()
            await sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class P2PKit:
    """The helpers above, as one object handed to tests by the `kit` fixture."""

    CHAIN_ID = CHAIN_ID
    HOST = HOST
    FAST = FAST
    Identity = Identity
    RawPeer = RawPeer
    identity = staticmethod(make_identity)
    manager = staticmethod(make_manager)
    wait_until = staticmethod(wait_until)
    fully_connected = staticmethod(fully_connected)
    running = staticmethod(running)
    mesh = staticmethod(mesh)
    receive_from = staticmethod(receive_from)
    raw_tls_peer = staticmethod(raw_tls_peer)
    reserve_ports = staticmethod(reserve_ports)
    linked_raw_peer = staticmethod(linked_raw_peer)
    forged_certificate = staticmethod(forged_certificate)
    forger_of = staticmethod(forger_of)
    frame_of_payload = staticmethod(frame_of_payload)


@pytest.fixture
def kit() -> P2PKit:
    return P2PKit()
