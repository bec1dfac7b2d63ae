"""TLS contexts: TLS 1.3 only, mutual authentication, pinning, no key left on disk."""

from __future__ import annotations

import os
import ssl
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from p2p.identity import private_key_pem

if TYPE_CHECKING:
    from conftest import P2PKit
from p2p.tls import (
    is_certificate_rejection,
    make_client_context,
    make_server_context,
    peer_node_id,
)


def test_contexts_are_tls13_mutual_and_pinned(kit: P2PKit) -> None:
    me, peer = kit.identity("me"), kit.identity("peer")
    for context in (
        make_server_context(me.cert_pem, me.key_pem, [peer.cert_pem]),
        make_client_context(me.cert_pem, me.key_pem, [peer.cert_pem]),
    ):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_3
        assert context.maximum_version == ssl.TLSVersion.TLSv1_3
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is False
        # Exactly the pinned certificate is trusted: no system CA store.
        assert context.cert_store_stats()["x509"] == 1


def test_key_material_is_not_left_in_the_temp_dir(
    kit: P2PKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    me = kit.identity("me")
    make_server_context(me.cert_pem, me.key_pem, [me.cert_pem])
    make_client_context(me.cert_pem, me.key_pem, [me.cert_pem])
    assert list(tmp_path.iterdir()) == []


def test_identity_can_be_loaded_from_node_home_files(kit: P2PKit, tmp_path: Path) -> None:
    me = kit.identity("me")
    cert_path, key_path = tmp_path / "node.crt", tmp_path / "node.key"
    cert_path.write_bytes(me.cert_pem)
    key_path.write_bytes(me.key_pem)
    os.chmod(key_path, 0o600)
    context = make_server_context(b"", b"", [me.cert_pem], cert_path=cert_path, key_path=key_path)
    assert context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError):
        make_server_context(me.cert_pem, me.key_pem, [me.cert_pem], cert_path=cert_path)


def test_a_certificate_cannot_be_loaded_without_its_private_key(kit: P2PKit) -> None:
    victim, attacker = kit.identity("victim"), kit.identity("attacker")
    with pytest.raises(ssl.SSLError):
        make_client_context(victim.cert_pem, attacker.key_pem, [victim.cert_pem])


def test_pins_must_be_ed25519_certificates(kit: P2PKit) -> None:
    me = kit.identity("me")
    with pytest.raises(ValueError):
        make_client_context(me.cert_pem, me.key_pem, [])
    with pytest.raises(ValueError):
        make_client_context(me.cert_pem, me.key_pem, [b"-----BEGIN CERTIFICATE-----\n"])


async def _handshake_pair(
    kit: P2PKit, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> tuple[BaseException | bytes, BaseException | bytes]:
    """Run one TLS handshake over 127.0.0.1; each side's outcome is the peer's node id or
    the exception it saw. The client also reads once, as TLS 1.3 clients learn of a
    refusal only then."""
    outcomes: dict[str, BaseException | bytes] = {}

    async def serve(tcp: trio.SocketStream) -> None:
        stream = trio.SSLStream(tcp, server_context, server_side=True)
        try:
            await stream.do_handshake()
            outcomes["server"] = peer_node_id(stream)
            await stream.send_all(b"ok")
        except trio.BrokenResourceError as exc:
            outcomes["server"] = exc
        finally:
            await trio.aclose_forcefully(stream)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host=kit.HOST))
            port = listeners[0].socket.getsockname()[1]
            stream = trio.SSLStream(
                await trio.open_tcp_stream(kit.HOST, port), client_context, server_hostname=None
            )
            try:
                await stream.do_handshake()
                identity = peer_node_id(stream)
                outcomes["client"] = identity if await stream.receive_some() else EOFError()
            except trio.BrokenResourceError as exc:
                outcomes["client"] = exc
            finally:
                await trio.aclose_forcefully(stream)
            while "server" not in outcomes:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    return outcomes["server"], outcomes["client"]


async def test_pinned_peers_authenticate_each_other(kit: P2PKit) -> None:
    server, client = kit.identity("server"), kit.identity("client")
    pins = [server.cert_pem, client.cert_pem]
    server_saw, client_saw = await _handshake_pair(
        kit,
        make_server_context(server.cert_pem, server.key_pem, pins),
        make_client_context(client.cert_pem, client.key_pem, pins),
    )
    assert server_saw == client.node_id
    assert client_saw == server.node_id


async def test_unpinned_client_is_refused_and_learns_it_on_first_read(kit: P2PKit) -> None:
    server, stranger = kit.identity("server"), kit.identity("stranger")
    server_saw, client_saw = await _handshake_pair(
        kit,
        make_server_context(server.cert_pem, server.key_pem, [server.cert_pem]),
        make_client_context(stranger.cert_pem, stranger.key_pem, [server.cert_pem]),
    )
    assert isinstance(server_saw, trio.BrokenResourceError)
    assert is_certificate_rejection(server_saw)
    assert isinstance(client_saw, trio.BrokenResourceError)


async def test_forged_copy_of_a_pinned_certificate_is_refused(kit: P2PKit) -> None:
    server, victim = kit.identity("server"), kit.identity("victim")
    attacker_key = Ed25519PrivateKey.generate()
    forged = kit.forged_certificate(victim, attacker_key)
    server_saw, client_saw = await _handshake_pair(
        kit,
        make_server_context(server.cert_pem, server.key_pem, [server.cert_pem, victim.cert_pem]),
        make_client_context(forged, private_key_pem(attacker_key), [server.cert_pem]),
    )
    assert isinstance(server_saw, trio.BrokenResourceError)
    assert is_certificate_rejection(server_saw)
    assert isinstance(client_saw, trio.BrokenResourceError)


async def test_client_refuses_an_unpinned_server(kit: P2PKit) -> None:
    impostor, client = kit.identity("impostor"), kit.identity("client")
    expected = kit.identity("expected")
    server_saw, client_saw = await _handshake_pair(
        kit,
        make_server_context(impostor.cert_pem, impostor.key_pem, [client.cert_pem]),
        make_client_context(client.cert_pem, client.key_pem, [expected.cert_pem]),
    )
    assert isinstance(client_saw, trio.BrokenResourceError)
    assert isinstance(client_saw.__cause__, ssl.SSLCertVerificationError)
    assert isinstance(server_saw, trio.BrokenResourceError)
